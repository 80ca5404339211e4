//! Query latency of `actlog-engine` over the deterministic event workload.
//!
//! The log holds `ACTLOG_BENCH_RECORDS` events (default 1 000 000) generated
//! by [`actlog_benches::generator`] (seed 42), loaded with `Log::append_at`
//! under the default config (64 MiB / 24 h segments). It is built once under
//! `target/bench-data/log-<count>/` and reused by later runs.
//!
//! Benchmark ids (group `queries`), see [`actlog_benches::query_set`]:
//!
//! * `newest50_unfiltered`, `newest50_category_auth`,
//!   `newest50_actor_and_category_entity` (the most frequent actor of
//!   `category=entity`), `newest50_rare_entity_id` (the rarest entity id, no
//!   entity type), `last_day_device_disconnected`, `newest50_word_projector`,
//!   `deep_page_category_device` (the page of 50 after a cursor 90 % of the way
//!   back through `category=device`; the walk there is untimed);
//! * `facets_category_last_7d`, `facets_actor_all_time`;
//! * `retention_drop_oldest_half`: `set_retention(max_entries = n / 2)` plus
//!   `enforce_retention()` on a fresh copy of the log each iteration (copy,
//!   open, close and delete untimed).
//!
//! Run with `cargo bench -p actlog-benches --bench queries`
//! (`ACTLOG_BENCH_RECORDS=10000000` for 10 M).

use std::hint::black_box;
use std::time::Duration;

use actlog_benches::query_set::{retention_run, QuerySet, RETENTION_ID};
use actlog_benches::workload::{data_root, prepared_log, records_from_env};
use actlog_engine::{Config, Log};
use criterion::{criterion_main, Criterion, SamplingMode};

fn queries(c: &mut Criterion) {
    let records = records_from_env();
    let dir = prepared_log(records);
    let log = Log::open(&dir, Config::default()).expect("open the prepared log");
    let set = QuerySet::prepare(&log);
    eprintln!(
        "log {}: {} records, {} segments",
        dir.display(),
        set.picks.records,
        log.stats().expect("stats").segments
    );
    for case in &set.cases {
        eprintln!("  {:<36} {}", case.id, case.what);
    }

    let mut group = c.benchmark_group("queries");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for case in &set.cases {
        group.bench_function(case.id, |b| b.iter(|| black_box(case.run(&log))));
    }
    group.finish();
    drop(log);

    // Each iteration copies the whole log (hundreds of MB) outside the timing,
    // so run exactly one iteration per sample: the tiny warm-up and
    // measurement times make criterion settle for its minimum (and say so).
    let scratch = data_root().join(format!("retention-copy-{records}"));
    let mut group = c.benchmark_group("queries");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_nanos(1))
        .measurement_time(Duration::from_nanos(1));
    group.bench_function(RETENTION_ID, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| retention_run(&dir, &scratch, records).0)
                .sum()
        })
    });
    group.finish();
}

/// The harness entry point; `criterion_group!` generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::queries);
}
criterion_main!(harness::benches);
