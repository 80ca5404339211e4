//! The operations of the side-by-side comparison (issue 8), each written
//! once for actlog and once for the SQLite design, shared by the `versus`
//! runner (`src/bin/versus.rs`), the `versus` criterion suite and the
//! cross-check test.
//!
//! * [`ingest_actlog`] / [`ingest_sqlite`]: bulk load of the workload in
//!   batches of [`BULK_BATCH`], each batch durable before the next.
//! * [`writers_actlog`] / [`writers_sqlite`]: `n` threads each appending one
//!   record per durable commit for a fixed time.
//! * [`SideQuery`]: one case of the query set in both forms.
//! * [`export_actlog`] (the server's export loop) beside
//!   [`sqlite_design::export`].
//! * [`retention_actlog`] / [`retention_sqlite`]: drop the oldest records
//!   from a fresh copy, timing only the drop.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use actlog_engine::export::{write_csv_row, RecordJson, CSV_COLUMNS};
use actlog_engine::RecordView;
use actlog_engine::{now_us, Clock, Config, Log, NewRecord, Order, Retention, DAY_US};
use rusqlite::Connection;

use crate::query_set::{CaseKind, QueryCase, QuerySet};
use crate::sqlite_design::{self, ExportFormat, OrderBy, SqlQuery, TextSearch};
use crate::workload::{copy_log, for_each_batch};

/// Records per durable batch in the bulk ingest.
pub const BULK_BATCH: usize = 1000;
/// Busy timeout of each SQLite writer connection.
pub const BUSY_TIMEOUT_MS: u64 = 60_000;

/// What a bulk ingest did.
#[derive(Debug, Clone, Copy)]
pub struct IngestOutcome {
    /// Records stored.
    pub records: u64,
    /// Time spent inside the store's append/insert calls (parsing excluded).
    pub store_time: Duration,
    /// Work after the load that the store needs before serving well (SQLite:
    /// `ANALYZE` and a WAL checkpoint; actlog: closing, which saves the
    /// active index).
    pub finish_time: Duration,
}

impl IngestOutcome {
    /// Records per second of the load itself.
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.store_time.as_secs_f64()
    }
}

/// Loads the first `n` events of `events` into a new actlog log at `dir`
/// with `append_at` (the events' own ts), [`BULK_BATCH`] per durable append.
pub fn ingest_actlog(dir: &Path, events: &Path, n: u64, config: Config) -> IngestOutcome {
    let log = Log::open(dir, config).expect("create the actlog log");
    let mut store_time = Duration::ZERO;
    let records = for_each_batch(events, n, BULK_BATCH, |batch| {
        let start = Instant::now();
        log.append_at(batch).expect("durable batch append");
        store_time += start.elapsed();
    });
    let start = Instant::now();
    log.close().expect("close the log");
    IngestOutcome {
        records,
        store_time,
        finish_time: start.elapsed(),
    }
}

/// Loads the first `n` events of `events` into a new SQLite database at
/// `path` (ids 1..=n like actlog's), [`BULK_BATCH`] per transaction, the FTS5
/// index maintained by its trigger; then `ANALYZE` and a checkpoint.
pub fn ingest_sqlite(path: &Path, events: &Path, n: u64) -> IngestOutcome {
    let mut conn = sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("create the database");
    let mut store_time = Duration::ZERO;
    let mut next_id = 1u64;
    let records = for_each_batch(events, n, BULK_BATCH, |batch| {
        let start = Instant::now();
        sqlite_design::insert_batch(&mut conn, batch, Some(next_id)).expect("insert a batch");
        store_time += start.elapsed();
        next_id += batch.len() as u64;
    });
    let start = Instant::now();
    sqlite_design::analyze(&conn).expect("ANALYZE");
    sqlite_design::checkpoint(&conn).expect("checkpoint");
    drop(conn);
    IngestOutcome {
        records,
        store_time,
        finish_time: start.elapsed(),
    }
}

/// The first `n` records of the events file, for the single-record writers.
pub fn record_pool(events: &Path, n: usize) -> Vec<NewRecord> {
    let mut pool = Vec::with_capacity(n);
    for_each_batch(events, n as u64, BULK_BATCH, |batch| {
        pool.extend(batch.iter().map(|(_, r)| r.clone()))
    });
    pool
}

/// Runs `writers` threads that each append one record per call until
/// `duration` has passed since they were released together; returns
/// `(records appended, wall time until the last returned)`.
fn run_writers<'a>(
    writers: usize,
    duration: Duration,
    setup: impl Fn(usize) -> Box<dyn FnMut(u64) + Send + 'a> + Sync,
) -> (u64, Duration) {
    let total = AtomicU64::new(0);
    let start_line = Barrier::new(writers + 1);
    let started = std::thread::scope(|s| {
        for t in 0..writers {
            let (total, start_line, setup) = (&total, &start_line, &setup);
            s.spawn(move || {
                let mut append = setup(t);
                start_line.wait();
                let deadline = Instant::now() + duration;
                let mut k = 0u64;
                while Instant::now() < deadline {
                    append((t as u64) + k * writers as u64);
                    k += 1;
                }
                total.fetch_add(k, Ordering::Relaxed);
            });
        }
        start_line.wait();
        Instant::now()
    });
    (total.load(Ordering::Relaxed), started.elapsed())
}

/// Durable single-record appends by `writers` threads sharing one new
/// actlog log at `dir` (group commit), for `duration`.
pub fn writers_actlog(
    dir: &Path,
    pool: &[NewRecord],
    writers: usize,
    duration: Duration,
) -> (u64, Duration) {
    let log = Log::open(dir, Config::default()).expect("create the log");
    let out = run_writers(writers, duration, |_| {
        let log = log.clone();
        Box::new(move |i| {
            let r = &pool[i as usize % pool.len()];
            log.append(std::slice::from_ref(r)).expect("durable append");
        })
    });
    drop(log);
    out
}

/// Durable single-record inserts by `writers` threads into one new SQLite
/// database at `path`, each thread with its own connection (busy timeout
/// [`BUSY_TIMEOUT_MS`]), each insert its own fsynced transaction.
pub fn writers_sqlite(
    path: &Path,
    pool: &[NewRecord],
    writers: usize,
    duration: Duration,
) -> (u64, Duration) {
    drop(sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("create the database"));
    run_writers(writers, duration, |_| {
        let conn = sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("open a writer connection");
        Box::new(move |i| {
            let r = &pool[i as usize % pool.len()];
            sqlite_design::insert_single(&conn, now_us(), r).expect("durable insert");
        })
    })
}

/// A `Write` that counts bytes and keeps none (the export's client).
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Bytes written so far.
    pub bytes: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams every record of `log`, oldest first, to `out` exactly as the
/// server's export does (`Log::scan_pages`, each record written from its
/// stored bytes with `write_csv_row` / `RecordJson`); returns the
/// records written.
pub fn export_actlog(log: &Log, format: ExportFormat, out: &mut impl Write) -> io::Result<u64> {
    let mut n = 0u64;
    let mut each = |f: &mut dyn FnMut(RecordView<'_>) -> io::Result<()>| -> io::Result<()> {
        for page in log.scan_pages(actlog_engine::Selection::default(), Order::Asc) {
            let page = page.map_err(|e| io::Error::other(e.to_string()))?;
            for v in page.views() {
                f(v.map_err(|e| io::Error::other(e.to_string()))?)?;
                n += 1;
            }
        }
        Ok(())
    };
    match format {
        ExportFormat::Csv => {
            // As the server: rows written straight into a buffer
            // (`write_csv_row`), handed over in 64 KiB chunks.
            let mut buf = Vec::with_capacity(1 << 16);
            buf.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
            buf.push(b'\n');
            let mut scratch = Vec::new();
            each(&mut |v| {
                write_csv_row(&mut buf, &v, &mut scratch);
                if buf.len() >= 1 << 16 {
                    out.write_all(&buf)?;
                    buf.clear();
                }
                Ok(())
            })?;
            out.write_all(&buf)?;
        }
        ExportFormat::Ndjson => {
            // As the server: records serialize into a buffer handed over in
            // 64 KiB chunks.
            let mut buf = Vec::with_capacity(1 << 16);
            each(&mut |v| {
                serde_json::to_writer(&mut buf, &RecordJson::from(v))?;
                buf.push(b'\n');
                if buf.len() >= 1 << 16 {
                    out.write_all(&buf)?;
                    buf.clear();
                }
                Ok(())
            })?;
            out.write_all(&buf)?;
        }
    }
    out.flush()?;
    Ok(n)
}

/// One case of the query set in both stores' terms.
#[derive(Debug, Clone)]
pub struct SideQuery {
    /// Case id; the `LIKE` variant of a word query gets `_like` appended.
    pub id: String,
    /// The actlog case.
    pub actlog: QueryCase,
    /// The same question in SQL, in each shape worth trying (a page: ordered
    /// by `id` and by `ts, id`, and a word query also as an FTS5 join in
    /// rowid order), with a label for each; the first is the design's own.
    pub sql: Vec<(&'static str, SqlQuery)>,
    /// How SQLite answers words in it.
    pub text: TextSearch,
    /// A count query (facets) rather than a page.
    pub counts: bool,
}

impl SideQuery {
    /// Every case of `set`, plus a `LIKE` variant of each word query.
    pub fn all(set: &QuerySet) -> Vec<SideQuery> {
        let mut out = Vec::new();
        for case in &set.cases {
            let mut variants = vec![TextSearch::Fts5];
            if let CaseKind::Page(q) = &case.kind {
                if !q.selection.words.is_empty() {
                    variants.push(TextSearch::Like);
                }
            }
            for text in variants {
                let (sql, counts) = match &case.kind {
                    CaseKind::Page(q) => (
                        [OrderBy::Id, OrderBy::TsId, OrderBy::FtsRowid]
                            .into_iter()
                            .filter(|by| {
                                *by != OrderBy::FtsRowid
                                    || (text == TextSearch::Fts5 && !q.selection.words.is_empty())
                            })
                            .map(|by| {
                                let after = q.cursor.map(|c| c.last_id());
                                let sql =
                                    SqlQuery::page(&q.selection, q.order, after, q.limit, text, by);
                                (by.as_str(), sql)
                            })
                            .collect(),
                        false,
                    ),
                    CaseKind::Facets {
                        field,
                        selection,
                        limit,
                    } => (
                        vec![(
                            "GROUP BY",
                            SqlQuery::facets(*field, selection, *limit, text),
                        )],
                        true,
                    ),
                };
                let id = match text {
                    TextSearch::Fts5 => case.id.to_string(),
                    TextSearch::Like => format!("{}_like", case.id),
                };
                out.push(SideQuery {
                    id,
                    actlog: case.clone(),
                    sql,
                    text,
                    counts,
                });
            }
        }
        out
    }

    /// Runs SQL shape `variant` once; returns how many rows (records or values) it gave.
    pub fn run_sqlite(&self, conn: &Connection, variant: usize) -> usize {
        let sql = &self.sql[variant].1;
        if self.counts {
            sql.counts(conn).expect("facet query").len()
        } else {
            sql.rows(conn).expect("page query").len()
        }
    }
}

/// How a retention run drops records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Keep only the newest `n` records (actlog `max_entries`; SQLite
    /// `DELETE … WHERE id < first kept`).
    KeepNewest(u64),
    /// Drop every record with `ts` below this (actlog `max_days` with the
    /// clock set so the bound falls there; SQLite `DELETE … WHERE ts < t`).
    Before(i64),
}

/// Days of the `max_days` bound used for [`Cut::Before`].
const RETENTION_DAYS: u32 = 29;

/// Copies the log at `src` to `scratch` (untimed), opens it (untimed), and
/// times setting the retention bound plus `enforce_retention()`; returns the
/// time and the records dropped. The copy is removed afterwards (untimed).
pub fn retention_actlog(src: &Path, scratch: &Path, cut: Cut) -> (Duration, u64) {
    if scratch.exists() {
        fs::remove_dir_all(scratch).expect("remove an old retention copy");
    }
    copy_log(src, scratch);
    let (retention, config) = match cut {
        Cut::KeepNewest(n) => (
            Retention {
                max_days: None,
                max_entries: Some(n),
            },
            Config::default(),
        ),
        Cut::Before(cutoff) => {
            let now = cutoff + i64::from(RETENTION_DAYS) * DAY_US;
            (
                Retention {
                    max_days: Some(RETENTION_DAYS),
                    max_entries: None,
                },
                Config {
                    clock: Clock::from_fn(move || now),
                    ..Config::default()
                },
            )
        }
    };
    let log = Log::open(scratch, config).expect("open the copy");
    let start = Instant::now();
    log.set_retention(retention).expect("set retention");
    let outcome = log.enforce_retention().expect("enforce retention");
    let elapsed = start.elapsed();
    drop(log);
    fs::remove_dir_all(scratch).expect("remove the retention copy");
    (elapsed, outcome.dropped_records)
}

/// Copies the (checkpointed) database at `src` to `scratch` and fsyncs it
/// (untimed), opens it (untimed), and times the `DELETE` (one transaction,
/// FTS5 rows removed by the trigger, commit fsynced); returns the time and
/// the rows deleted. The copy is removed afterwards (untimed).
pub fn retention_sqlite(src: &Path, scratch: &Path, cut: Cut) -> (Duration, u64) {
    remove_db(scratch);
    fs::copy(src, scratch).expect("copy the database");
    fs::File::open(scratch)
        .and_then(|f| f.sync_all())
        .expect("fsync the copy");
    let conn = sqlite_design::open(scratch, BUSY_TIMEOUT_MS).expect("open the copy");
    let start = Instant::now();
    let deleted = match cut {
        Cut::KeepNewest(n) => {
            let count = sqlite_design::count(&conn).expect("count");
            let (first, _) = sqlite_design::oldest(&conn)
                .expect("oldest")
                .expect("not empty");
            let first_kept = first + count.saturating_sub(n);
            sqlite_design::delete_below_id(&conn, first_kept).expect("delete")
        }
        Cut::Before(cutoff) => sqlite_design::delete_before_ts(&conn, cutoff).expect("delete"),
    };
    let elapsed = start.elapsed();
    drop(conn);
    remove_db(scratch);
    (elapsed, deleted as u64)
}

/// Removes a database file and its `-wal` / `-shm` companions, if present.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = fs::remove_file(&p);
    }
}

/// Sorted durations → (p50, p99).
pub fn p50_p99(mut v: Vec<Duration>) -> (Duration, Duration) {
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}

/// The prepared SQLite database of the first `n` events (seed
/// [`crate::workload::SEED`]) under [`crate::workload::scratch_root`],
/// built with [`ingest_sqlite`] if missing or not holding exactly `n` rows;
/// the criterion suite's counterpart of [`crate::workload::prepared_log`].
pub fn prepared_sqlite(n: u64) -> std::path::PathBuf {
    let path = crate::workload::scratch_root().join(format!("sqlite-{n}.db"));
    let holds = |p: &Path| -> Option<u64> {
        if !p.exists() {
            return None;
        }
        let conn = sqlite_design::open(p, BUSY_TIMEOUT_MS).ok()?;
        sqlite_design::count(&conn).ok()
    };
    if holds(&path) == Some(n) {
        return path;
    }
    remove_db(&path);
    let partial = path.with_extension("partial.db");
    remove_db(&partial);
    let events = crate::workload::events_file(n, crate::workload::SEED);
    eprintln!("loading {n} events into {} ...", path.display());
    let out = ingest_sqlite(&partial, &events, n);
    assert_eq!(out.records, n, "{} holds a wrong count", events.display());
    fs::rename(&partial, &path).expect("rename the prepared database into place");
    remove_db(&partial);
    eprintln!("loaded in {:.1} s", out.store_time.as_secs_f64());
    path
}
