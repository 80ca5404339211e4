//! Durable batch appends of real workload records, timed end to end: the
//! figure `benches/README.md` quotes as "a standalone loop", and the binary
//! to run under `valgrind --tool=callgrind` for instruction counts.
//!
//! ```text
//! cargo run --release -p actlog-benches --bin append_loop -- [RECORDS] [BATCH] [ROUNDS]
//! ```
//!
//! Appends the first `RECORDS` (default 200 000) events of the
//! deterministic workload (`actlog_benches::generator`, seed 42) in batches of `BATCH` (default 1000)
//! to a fresh log under `target/bench-tmp/append-loop` (default config),
//! `ROUNDS` times (default 3, each into a fresh log), and prints records/s
//! and the engine's fsync counters for each round. Parsing the events is not
//! timed.

use std::io::BufRead;
use std::time::Instant;

use actlog_benches::workload::{self, scratch_root};
use actlog_engine::{Config, Log, NewRecord};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn arg(n: usize, default: usize) -> Result<usize> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|e| {
            format!("argument {n} ({s:?}): {e}; usage: append_loop [RECORDS] [BATCH] [ROUNDS]")
                .into()
        }),
    }
}

fn main() -> Result<()> {
    let records = arg(1, 200_000)?;
    let batch = arg(2, 1000)?.clamp(1, 1000);
    let rounds = arg(3, 3)?;
    let file = workload::events_file(records.max(1_000_000) as u64, 42);
    let lines = std::io::BufReader::new(std::fs::File::open(&file)?).lines();
    let recs = lines
        .take(records)
        .map(|l| {
            let l = l?;
            workload::parse_event(&l)
                .map(|(_, r)| r)
                .map_err(|e| format!("{}: {e}", file.display()).into())
        })
        .collect::<Result<Vec<NewRecord>>>()?;
    let dir = scratch_root().join("append-loop");
    for round in 1..=rounds {
        let _ = std::fs::remove_dir_all(&dir);
        let log = Log::open(&dir, Config::default())?;
        let started = Instant::now();
        for chunk in recs.chunks(batch) {
            log.append(chunk)?;
        }
        let elapsed = started.elapsed();
        let io = log.io_stats();
        println!(
            "round {round}: {} records in batches of {batch}: {:.3} s, {:.0} records/s; {io:?}",
            recs.len(),
            elapsed.as_secs_f64(),
            recs.len() as f64 / elapsed.as_secs_f64(),
        );
        drop(log);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
