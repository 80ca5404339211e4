//! actlog and the SQLite design side by side, per operation (issue 8).
//!
//! * `versus_queries/<case>/{actlog,"sqlite, ORDER BY …"}`: the query set of the
//!   engine-queries issue ([`actlog_benches::query_set`]) against the
//!   prepared 1 M-record log (`ACTLOG_BENCH_RECORDS` for another size) and a
//!   SQLite database of the same events ([`versus::prepared_sqlite`], built
//!   once under `target/bench-data/sqlite-<n>.db`, `ANALYZE`d). The word
//!   query runs on SQLite twice: `…_word_projector` with FTS5 and
//!   `…_word_projector_like` with `LIKE`.
//! * `versus_ingest/batch_1000/{actlog,sqlite}`: one durable batch of 1000
//!   records (SQLite: one transaction with FTS5 maintained), into a fresh
//!   store per sample. Reported as records/s.
//! * `versus_ingest/single_record/{actlog,sqlite}`: one durable single-record
//!   append / autocommit insert from one thread. Reported as records/s.
//!
//! The whole-process figures (peak RSS, open, exports, retention, 4–64
//! writers) and the README table come from the `versus` runner, which uses
//! the same code (`actlog_benches::versus`).
//!
//! Run with `cargo bench -p actlog-benches --bench versus`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use actlog_benches::query_set::QuerySet;
use actlog_benches::sqlite_design::{self, TextSearch};
use actlog_benches::versus::{self, SideQuery, BUSY_TIMEOUT_MS};
use actlog_benches::workload::{events_file, prepared_log, records_from_env, scratch_root, SEED};
use actlog_engine::{now_us, Config, Log};
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};

fn queries(c: &mut Criterion) {
    let n = records_from_env();
    let log =
        Log::open_read_only(prepared_log(n), Config::default()).expect("open the prepared log");
    let db = versus::prepared_sqlite(n);
    let conn = sqlite_design::open(&db, BUSY_TIMEOUT_MS).expect("open the prepared database");
    let set = QuerySet::prepare(&log);
    let mut group = c.benchmark_group("versus_queries");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for q in SideQuery::all(&set) {
        eprintln!("  {:<36} {}", q.id, q.actlog.what);
        if q.text == TextSearch::Fts5 {
            group.bench_function(BenchmarkId::new(q.id.as_str(), "actlog"), |b| {
                b.iter(|| black_box(q.actlog.run(&log)))
            });
        }
        // SQLite in each SQL shape (`ORDER BY id` is the design's own).
        for (v, (shape, _)) in q.sql.iter().enumerate() {
            let name = format!("sqlite, {shape}");
            group.bench_function(BenchmarkId::new(q.id.as_str(), name), |b| {
                b.iter(|| black_box(q.run_sqlite(&conn, v)))
            });
        }
    }
    group.finish();
}

fn ingest(c: &mut Criterion) {
    let events = events_file(records_from_env(), SEED);
    let pool = versus::record_pool(&events, versus::BULK_BATCH);
    let batch: Vec<(i64, actlog_engine::NewRecord)> =
        pool.iter().map(|r| (now_us(), r.clone())).collect();
    let root = scratch_root();
    let mut group = c.benchmark_group("versus_ingest");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function(BenchmarkId::new("batch_1000", "actlog"), |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir_in(&root).expect("temp dir");
            let log = Log::open(dir.path(), Config::default()).expect("open");
            let start = Instant::now();
            for _ in 0..iters {
                log.append_at(&batch).expect("durable batch");
            }
            start.elapsed()
        })
    });
    group.bench_function(BenchmarkId::new("batch_1000", "sqlite"), |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir_in(&root).expect("temp dir");
            let mut conn =
                sqlite_design::open(&dir.path().join("db"), BUSY_TIMEOUT_MS).expect("open");
            let start = Instant::now();
            for _ in 0..iters {
                sqlite_design::insert_batch(&mut conn, &batch, None).expect("durable batch");
            }
            start.elapsed()
        })
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("single_record", "actlog"), |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir_in(&root).expect("temp dir");
            let log = Log::open(dir.path(), Config::default()).expect("open");
            let start = Instant::now();
            for i in 0..iters {
                let r = &pool[i as usize % pool.len()];
                log.append(std::slice::from_ref(r)).expect("durable append");
            }
            start.elapsed()
        })
    });
    group.bench_function(BenchmarkId::new("single_record", "sqlite"), |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir_in(&root).expect("temp dir");
            let conn = sqlite_design::open(&dir.path().join("db"), BUSY_TIMEOUT_MS).expect("open");
            let start = Instant::now();
            for i in 0..iters {
                let r = &pool[i as usize % pool.len()];
                sqlite_design::insert_single(&conn, now_us(), r).expect("durable insert");
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// The harness entry point; `criterion_group!` generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::ingest, super::queries);
}
criterion_main!(harness::benches);
