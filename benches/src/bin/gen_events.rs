//! Writes the deterministic event workload as JSON lines on stdout, one event
//! a line (the format of the benchmarks' events files):
//!
//! ```text
//! gen_events --count N --seed S [--start-ts US] [--span-days D] [--stats]
//! ```
//!
//! `--stats` also prints the sample's mix (actions, severities, message
//! lengths) to stderr.

use std::collections::BTreeMap;
use std::io::{self, BufWriter};

use actlog_benches::generator::{Generator, Options};
use actlog_benches::workload::write_events;
use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let mut options = Options::new(0, 0);
    let (mut count, mut seed, mut stats) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--count" => count = Some(value("--count")?.parse().context("--count")?),
            "--seed" => seed = Some(value("--seed")?.parse().context("--seed")?),
            "--start-ts" => {
                options.start_ts = value("--start-ts")?.parse().context("--start-ts")?
            }
            "--span-days" => {
                options.span_days = value("--span-days")?.parse().context("--span-days")?
            }
            "--stats" => stats = true,
            other => bail!(
                "unknown argument {other:?}; usage: gen_events --count N --seed S \
                 [--start-ts US] [--span-days D] [--stats]"
            ),
        }
    }
    options.count = count.context("--count is required")?;
    options.seed = seed.context("--seed is required")?;
    if !(options.span_days > 0.0 && options.span_days.is_finite()) {
        bail!("--span-days must be > 0");
    }

    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let (mut actions, mut severities) = (BTreeMap::new(), BTreeMap::new());
    let (mut shortest, mut longest) = (usize::MAX, 0);
    let events = Generator::new(options).inspect(|e| {
        if stats {
            *actions.entry(e.action).or_insert(0u64) += 1;
            *severities.entry(e.severity).or_insert(0u64) += 1;
            let len = e.message.chars().count();
            shortest = shortest.min(len);
            longest = longest.max(len);
        }
    });
    write_events(events, &mut out)?;
    if stats && options.count > 0 {
        let n = options.count as f64;
        for (k, v) in &actions {
            eprintln!("{k:<32} {v:>8} {:>6.2}%", 100.0 * *v as f64 / n);
        }
        for (k, v) in &severities {
            eprintln!("severity {k:<23} {v:>8} {:>6.2}%", 100.0 * *v as f64 / n);
        }
        eprintln!("message length min {shortest} max {longest}");
    }
    Ok(())
}
