//! actlog beside the SQLite design it replaces (issue 8): the whole-process
//! figures, the README table and the SVG chart, from one command.
//!
//! ```text
//! cargo run --release -p actlog-benches --bin versus            # 1 M records
//! ACTLOG_BENCH_RECORDS=10000000 cargo run --release -p actlog-benches --bin versus
//! ```
//!
//! Options: `--records N`, `--iters N` (timed calls per query, default 1000),
//! `--opens N` (open + first query repeats, default 5), `--retention-runs N`
//! (default 2), `--writer-seconds S` (per writer count, default 3),
//! `--no-readme` (print the table, leave README.md and the chart alone).
//!
//! Both stores get the same events (the shared workload, seed 42) in the same
//! run. Bulk ingest and serving (open + first query, the query set, exports)
//! run in a child process per store (this binary with `--child-…`), so each
//! store's peak RSS is its own. Retention and concurrent single-record
//! ingest run in this process on fresh copies / fresh stores. Everything is
//! written under `target/bench-data/versus-<N>/` (`ACTLOG_BENCH_SCRATCH`),
//! on the real disk; the events file comes from `ACTLOG_BENCH_DATA`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actlog_benches::query_set::{Picks, QuerySet};
use actlog_benches::report::{self, num, Row};
use actlog_benches::sqlite_design::{self, ExportFormat};
use actlog_benches::versus::{
    export_actlog, ingest_actlog, ingest_sqlite, p50_p99, record_pool, remove_db, retention_actlog,
    retention_sqlite, writers_actlog, writers_sqlite, CountingSink, Cut, SideQuery,
    BUSY_TIMEOUT_MS,
};
use actlog_benches::workload::{
    disk_usage, events_file, filesystem_of, records_from_env, scratch_root, SEED,
};
use actlog_engine::{Config, Log, Query, DAY_US};
use serde_json::{json, Value};

/// Writer counts for actlog's concurrent single-record ingest.
const ACTLOG_WRITERS: [usize; 4] = [1, 4, 16, 64];
/// Thread counts tried for SQLite (its best one is the comparison at 64).
const SQLITE_WRITERS: [usize; 5] = [1, 2, 4, 16, 64];
/// Marker line a child prints its result JSON after.
const RESULT: &str = "VERSUS-RESULT ";

struct Opts {
    records: u64,
    iters: usize,
    opens: usize,
    retention_runs: usize,
    writer_seconds: f64,
    readme: bool,
    child: Option<(String, String, PathBuf)>,
    events: Option<PathBuf>,
    picks: Option<String>,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        records: records_from_env(),
        iters: 1000,
        opens: 5,
        retention_runs: 2,
        writer_seconds: 3.0,
        readme: true,
        child: None,
        events: None,
        picks: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--records" => o.records = value().replace('_', "").parse().expect("--records N"),
            "--iters" => o.iters = value().parse().expect("--iters N"),
            "--opens" => o.opens = value().parse().expect("--opens N"),
            "--retention-runs" => o.retention_runs = value().parse().expect("--retention-runs N"),
            "--writer-seconds" => o.writer_seconds = value().parse().expect("--writer-seconds S"),
            "--no-readme" => o.readme = false,
            "--child-ingest" | "--child-serve" => {
                let side = value();
                let path = PathBuf::from(value());
                o.child = Some((a.trim_start_matches("--child-").to_string(), side, path));
            }
            "--events" => o.events = Some(PathBuf::from(value())),
            "--picks" => o.picks = Some(value()),
            other => panic!("unknown argument {other}; see the source's doc comment"),
        }
    }
    o
}

/// `field` of `/proc/self/status` in MB (`VmHWM`: peak resident set).
fn status_mb(field: &str) -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------- children

/// Bulk ingest in a child: prints records, store time, finish time, peak RSS.
fn child_ingest(side: &str, path: &Path, events: &Path, n: u64) -> Value {
    let out = match side {
        "actlog" => ingest_actlog(path, events, n, Config::default()),
        _ => ingest_sqlite(path, events, n),
    };
    json!({
        "records": out.records,
        "store_s": out.store_time.as_secs_f64(),
        "finish_s": out.finish_time.as_secs_f64(),
        "hwm_mb": status_mb("VmHWM"),
    })
}

/// Serving in a child: open + first query (`opens` times), the query set
/// (`iters` timed calls each), both exports; peak RSS after the queries and
/// after the exports.
fn child_serve(side: &str, path: &Path, picks: &str, iters: usize, opens: usize) -> Value {
    let picks = Picks::decode(picks).expect("valid --picks");
    let cases = SideQuery::all(&QuerySet::with_picks(picks));
    let first_page = Query::default();
    // Up to `iters` timed calls, fewer for slow queries (about 2 s each, at
    // least 20), after a few untimed ones.
    let time_case = |run: &dyn Fn() -> usize| {
        let start = Instant::now();
        let mut items = std::hint::black_box(run());
        let first = start.elapsed();
        let n = ((2.0 / first.as_secs_f64().max(1e-9)) as usize).clamp(20, iters.max(20));
        for _ in 0..n.min(20) - 1 {
            items = std::hint::black_box(run());
        }
        let times: Vec<Duration> = (0..n)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(run());
                start.elapsed()
            })
            .collect();
        let (p50, p99) = p50_p99(times);
        json!({ "items": items, "calls": n, "p50_us": micros(p50), "p99_us": micros(p99) })
    };
    let mut opens_t = Vec::new();
    let mut result = serde_json::Map::new();
    let mut queries = serde_json::Map::new();
    let mut exports = serde_json::Map::new();
    match side {
        "actlog" => {
            for _ in 0..opens.max(1) {
                let start = Instant::now();
                let log = Log::open(path, Config::default()).expect("open");
                let page = log.query(&first_page).expect("first query");
                opens_t.push(start.elapsed());
                assert!(!page.items.is_empty());
                // A clean shutdown, as a server's: it saves the active index.
                log.close().expect("close");
            }
            let log = Log::open(path, Config::default()).expect("open");
            for c in &cases {
                if c.text == sqlite_design::TextSearch::Like {
                    continue; // the same actlog query as its FTS5 twin
                }
                queries.insert(c.id.clone(), time_case(&|| c.actlog.run(&log)));
            }
            result.insert("hwm_after_queries_mb".into(), status_mb("VmHWM").into());
            for (name, format) in [("csv", ExportFormat::Csv), ("ndjson", ExportFormat::Ndjson)] {
                let mut sink = CountingSink::default();
                let start = Instant::now();
                let rows = export_actlog(&log, format, &mut sink).expect("export");
                exports.insert(
                    name.into(),
                    json!({"rows": rows, "s": start.elapsed().as_secs_f64(), "bytes": sink.bytes}),
                );
            }
        }
        _ => {
            for _ in 0..opens.max(1) {
                let start = Instant::now();
                let conn = sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("open");
                let q = sqlite_design::SqlQuery::page(
                    &first_page.selection,
                    first_page.order,
                    None,
                    first_page.limit,
                    sqlite_design::TextSearch::Fts5,
                    sqlite_design::OrderBy::Id,
                );
                let rows = q.rows(&conn).expect("first query");
                opens_t.push(start.elapsed());
                assert!(!rows.is_empty());
            }
            // Each query with the statistics ANALYZE left (the planner may
            // then prefer an index and sort) and without any (it then tends
            // to walk the rowid backwards); SQLite is credited with the faster.
            let mut plans = serde_json::Map::new();
            for stats in [true, false] {
                let conn = sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("open");
                if !stats {
                    conn.execute_batch(
                        "DROP TABLE IF EXISTS sqlite_stat1; DROP TABLE IF EXISTS sqlite_stat4;",
                    )
                    .expect("drop the statistics");
                    drop(conn);
                }
                let conn = sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("open");
                let tag = if stats {
                    "with ANALYZE"
                } else {
                    "no statistics"
                };
                for c in &cases {
                    for (v, (shape, sql)) in c.sql.iter().enumerate() {
                        let mut t = time_case(&|| c.run_sqlite(&conn, v));
                        let label = format!("{shape}, {tag}");
                        t["plan"] = label.clone().into();
                        let better = queries
                            .get(&c.id)
                            .is_none_or(|old| t["p50_us"].as_f64() < old["p50_us"].as_f64());
                        if better {
                            queries.insert(c.id.clone(), t);
                        }
                        let plan = sql.plan(&conn).expect("query plan").join("; ");
                        plans.insert(format!("{} ({label})", c.id), plan.into());
                    }
                }
            }
            let conn = sqlite_design::open(path, BUSY_TIMEOUT_MS).expect("open");
            sqlite_design::analyze(&conn).expect("restore the statistics");
            result.insert("plans".into(), plans.into());
            result.insert("hwm_after_queries_mb".into(), status_mb("VmHWM").into());
            for (name, format) in [("csv", ExportFormat::Csv), ("ndjson", ExportFormat::Ndjson)] {
                let mut sink = CountingSink::default();
                let start = Instant::now();
                let rows = sqlite_design::export(&conn, format, &mut sink).expect("export");
                exports.insert(
                    name.into(),
                    json!({"rows": rows, "s": start.elapsed().as_secs_f64(), "bytes": sink.bytes}),
                );
            }
        }
    }
    result.insert("hwm_after_exports_mb".into(), status_mb("VmHWM").into());
    result.insert(
        "open_first_ms".into(),
        (opens_t[0].as_secs_f64() * 1e3).into(),
    );
    result.insert(
        "open_median_ms".into(),
        (median(opens_t).as_secs_f64() * 1e3).into(),
    );
    result.insert("queries".into(), queries.into());
    result.insert("exports".into(), exports.into());
    result.into()
}

/// Runs this binary as a child with `args`; returns the JSON it reports.
fn run_child(args: &[String]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(args)
        .output()
        .expect("run a child process");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {args:?} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT))
        .expect("the child reports a result");
    serde_json::from_str(line).expect("the child's result is JSON")
}

// ---------------------------------------------------------------- machine

/// `write(300 B) + fdatasync` per second in `dir` over `secs` seconds.
fn fdatasync_rate(dir: &Path, secs: f64) -> f64 {
    use std::io::Write;
    let path = dir.join("fdatasync-probe");
    let mut f = fs::File::create(&path).expect("create the probe file");
    let buf = [b'x'; 300];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f.write_all(&buf).expect("write");
        f.sync_data().expect("fdatasync");
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    let _ = fs::remove_file(&path);
    rate
}

fn machine(dir: &Path) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let fs_name = filesystem_of(dir)
        .map(|(m, t)| format!("{t} (mount {m})"))
        .unwrap_or_else(|| "unknown fs".into());
    format!("nproc {cores}, {cpu}, {mem_gb:.1} GiB RAM, Linux {kernel}, data on {fs_name}")
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------- parent

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The target advantage of a query case, by the issue's classes.
fn query_target(id: &str) -> Option<f64> {
    if id.ends_with("_like") {
        None // words are held to FTS5; LIKE is shown for scale
    } else if id == "newest50_rare_entity_id"
        || id == "deep_page_category_device"
        || id.starts_with("facets_")
    {
        Some(100.0)
    } else {
        Some(10.0)
    }
}

fn dur_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1e3)
    }
}

fn main() {
    let o = parse_opts();
    if let Some((mode, side, path)) = &o.child {
        let v = match mode.as_str() {
            "ingest" => child_ingest(
                side,
                path,
                o.events.as_deref().expect("--events"),
                o.records,
            ),
            _ => child_serve(
                side,
                path,
                o.picks.as_deref().expect("--picks"),
                o.iters,
                o.opens,
            ),
        };
        println!("{RESULT}{v}");
        return;
    }
    let wall = Instant::now();
    let n = o.records;
    let events = events_file(n, SEED);
    let work = scratch_root().join(format!("versus-{n}"));
    if work.exists() {
        fs::remove_dir_all(&work).expect("remove the previous run's stores");
    }
    fs::create_dir_all(&work).expect("create the work directory");
    let machine_line = machine(&work);
    let sync_before = fdatasync_rate(&work, 2.0);
    let load_before = load_average();
    eprintln!("machine: {machine_line}; fdatasync {sync_before:.0}/s; load {load_before}");

    // 1. Bulk ingest, each store in its own process.
    let log_dir = work.join("actlog");
    let db = work.join("sqlite.db");
    let ingest = |side: &str, path: &Path| {
        eprintln!("bulk ingest: {side} ...");
        run_child(&[
            "--child-ingest".into(),
            side.into(),
            path.display().to_string(),
            "--events".into(),
            events.display().to_string(),
            "--records".into(),
            n.to_string(),
        ])
    };
    let ing_a = ingest("actlog", &log_dir);
    let ing_s = ingest("sqlite", &db);

    // 2. Bytes on disk.
    let bytes_a = disk_usage(&log_dir).total() as f64;
    let bytes_s = sqlite_design::bytes_on_disk(&db) as f64;
    let fts_s = {
        let conn = sqlite_design::open(&db, BUSY_TIMEOUT_MS).expect("open db");
        assert!(
            sqlite_design::has_fts5(&conn).expect("compile options"),
            "this SQLite lacks FTS5"
        );
        sqlite_design::fts_bytes(&conn).expect("dbstat") as f64
    };

    // 3. Serving, each store in its own process, with the same picks.
    let picks = {
        let log = Log::open(&log_dir, Config::default()).expect("open the log");
        let picks = Picks::find(&log);
        log.close().expect("close the log");
        picks
    };
    let serve = |side: &str, path: &Path| {
        eprintln!("serving: {side} ...");
        run_child(&[
            "--child-serve".into(),
            side.into(),
            path.display().to_string(),
            "--picks".into(),
            picks.encode(),
            "--iters".into(),
            o.iters.to_string(),
            "--opens".into(),
            o.opens.to_string(),
        ])
    };
    let srv_a = serve("actlog", &log_dir);
    let srv_s = serve("sqlite", &db);

    // 4. Retention on fresh copies.
    let oldest_ts = {
        let conn = sqlite_design::open(&db, BUSY_TIMEOUT_MS).expect("open db");
        sqlite_design::oldest(&conn)
            .expect("oldest")
            .expect("rows")
            .1
    };
    let cuts = [
        ("half", Cut::KeepNewest(n - n / 2)),
        ("day", Cut::Before(oldest_ts + DAY_US)),
    ];
    let mut retention: BTreeMap<&str, (Duration, Duration, u64)> = BTreeMap::new();
    for (name, cut) in cuts {
        eprintln!("retention ({name}) ...");
        let mut ta = Vec::new();
        let mut ts = Vec::new();
        let mut dropped = (0, 0);
        for _ in 0..o.retention_runs.max(1) {
            let (t, d) = retention_actlog(&log_dir, &work.join("retention-actlog"), cut);
            ta.push(t);
            dropped.0 = d;
            let (t, d) = retention_sqlite(&db, &work.join("retention.db"), cut);
            ts.push(t);
            dropped.1 = d;
        }
        assert_eq!(dropped.0, dropped.1, "both stores drop the same records");
        retention.insert(name, (median(ta), median(ts), dropped.0));
    }

    // 5. Durable single-record ingest, fresh stores.
    let pool = record_pool(&events, 4096);
    let secs = Duration::from_secs_f64(o.writer_seconds);
    let mut single_a = BTreeMap::new();
    let mut single_s = BTreeMap::new();
    for w in ACTLOG_WRITERS {
        eprintln!("single-record ingest: actlog, {w} writers ...");
        let dir = work.join(format!("single-actlog-{w}"));
        let (recs, t) = writers_actlog(&dir, &pool, w, secs);
        fs::remove_dir_all(&dir).expect("remove the store");
        single_a.insert(w, recs as f64 / t.as_secs_f64());
    }
    for w in SQLITE_WRITERS {
        eprintln!("single-record ingest: SQLite, {w} threads ...");
        let path = work.join(format!("single-{w}.db"));
        let (recs, t) = writers_sqlite(&path, &pool, w, secs);
        remove_db(&path);
        single_s.insert(w, recs as f64 / t.as_secs_f64());
    }
    let sync_after = fdatasync_rate(&work, 2.0);
    let load_after = load_average();

    // 6. The table.
    let mut rows = Vec::new();
    let rate_row = |op: String, a: f64, s: f64, target: Option<f64>| Row {
        operation: op,
        actlog: num(a),
        sqlite: num(s),
        advantage: Some(a / s),
        target,
    };
    let (ra, rs) = (
        f(&ing_a, &["records"]) / f(&ing_a, &["store_s"]),
        f(&ing_s, &["records"]) / f(&ing_s, &["store_s"]),
    );
    rows.push(rate_row(
        "bulk ingest, batches of 1000, durable (records/s; SQLite maintains FTS5)".into(),
        ra,
        rs,
        Some(10.0),
    ));
    rows.push(Row {
        operation: "… after the load: actlog close / SQLite ANALYZE + checkpoint".into(),
        actlog: dur_ms(f(&ing_a, &["finish_s"]) * 1e3),
        sqlite: dur_ms(f(&ing_s, &["finish_s"]) * 1e3),
        advantage: None,
        target: None,
    });
    for w in ACTLOG_WRITERS {
        rows.push(rate_row(
            format!("durable single-record ingest, {w} writers (records/s)"),
            single_a[&w],
            single_s[&w],
            None,
        ));
    }
    let (best_w, best_s) = single_s
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(w, r)| (*w, *r))
        .expect("SQLite writer runs");
    rows.push(rate_row(
        format!("… actlog 64 writers vs SQLite's best ({best_w} threads)"),
        single_a[&64],
        best_s,
        Some(30.0),
    ));
    let cases = SideQuery::all(&QuerySet::with_picks(picks.clone()));
    for c in &cases {
        let actlog_id = c.actlog.id;
        let qa = &srv_a["queries"][actlog_id];
        let qs = &srv_s["queries"][c.id.as_str()];
        let (a50, a99) = (f(qa, &["p50_us"]), f(qa, &["p99_us"]));
        let (s50, s99) = (f(qs, &["p50_us"]), f(qs, &["p99_us"]));
        let text = if c.id.ends_with("_like") {
            " (SQLite: LIKE)"
        } else if !c.counts && c.id.contains("word") {
            " (SQLite: FTS5)"
        } else {
            ""
        };
        let plan = qs["plan"].as_str().unwrap_or("");
        rows.push(Row {
            operation: format!("`{}`{text}, p50 / p99 (SQLite plan: {plan})", c.id),
            actlog: format!("{} / {}", dur_ms(a50 / 1e3), dur_ms(a99 / 1e3)),
            sqlite: format!("{} / {}", dur_ms(s50 / 1e3), dur_ms(s99 / 1e3)),
            advantage: Some(s50 / a50),
            target: query_target(&c.id),
        });
    }
    for (name, label) in [("csv", "CSV"), ("ndjson", "NDJSON")] {
        let rate = |v: &Value| f(v, &["exports", name, "rows"]) / f(v, &["exports", name, "s"]);
        rows.push(rate_row(
            format!("export {label}, whole log (rows/s)"),
            rate(&srv_a),
            rate(&srv_s),
            Some(2.0),
        ));
    }
    for (name, label, target) in [
        ("half", "retention: drop the oldest half", Some(1000.0)),
        ("day", "retention: drop the oldest day", None),
    ] {
        let (ta, ts, dropped) = retention[name];
        rows.push(Row {
            operation: format!(
                "{label} ({} records; median of {})",
                num(dropped as f64),
                o.retention_runs.max(1)
            ),
            actlog: dur_ms(ta.as_secs_f64() * 1e3),
            sqlite: dur_ms(ts.as_secs_f64() * 1e3),
            advantage: Some(ts.as_secs_f64() / ta.as_secs_f64()),
            target,
        });
    }
    let (oa, os) = (
        f(&srv_a, &["open_median_ms"]),
        f(&srv_s, &["open_median_ms"]),
    );
    rows.push(Row {
        operation: format!(
            "open + first query (newest 50), median of {}; first in a fresh process: {} / {}",
            o.opens.max(1),
            dur_ms(f(&srv_a, &["open_first_ms"])),
            dur_ms(f(&srv_s, &["open_first_ms"]))
        ),
        actlog: dur_ms(oa),
        sqlite: dur_ms(os),
        advantage: Some(os / oa),
        target: None,
    });
    let per = |b: f64| b / n as f64;
    rows.push(Row {
        operation: "bytes on disk per record, indexes included (SQLite with FTS5)".into(),
        actlog: format!("{:.1}", per(bytes_a)),
        sqlite: format!("{:.1}", per(bytes_s)),
        advantage: Some(bytes_s / bytes_a),
        target: Some(1.0 / 0.75),
    });
    rows.push(Row {
        operation: "… SQLite without its FTS5 index (table + 5 indexes)".into(),
        actlog: format!("{:.1}", per(bytes_a)),
        sqlite: format!("{:.1}", per(bytes_s - fts_s)),
        advantage: Some((bytes_s - fts_s) / bytes_a),
        target: Some(1.0 / 0.75),
    });
    for (key, label, a, s) in [
        (
            "ingest",
            "peak RSS, bulk ingest process (MB)",
            &ing_a,
            &ing_s,
        ),
        (
            "queries",
            "peak RSS, process serving the query set (MB)",
            &srv_a,
            &srv_s,
        ),
        (
            "exports",
            "… after also exporting the whole log twice (MB)",
            &srv_a,
            &srv_s,
        ),
    ] {
        let field = match key {
            "ingest" => "hwm_mb",
            "queries" => "hwm_after_queries_mb",
            _ => "hwm_after_exports_mb",
        };
        let (ma, ms) = (f(a, &[field]), f(s, &[field]));
        rows.push(Row {
            operation: label.into(),
            actlog: format!("{ma:.0}"),
            sqlite: format!("{ms:.0}"),
            advantage: Some(ms / ma),
            target: None,
        });
    }

    // 7. README block and chart.
    let table = report::markdown(&rows);
    let mut plans = String::new();
    if let Some(p) = srv_s["plans"].as_object() {
        for (id, plan) in p {
            plans.push_str(&format!("* `{id}`: {}\n", plan.as_str().unwrap_or("")));
        }
    }
    let elapsed = wall.elapsed().as_secs_f64();
    let chart_name = format!("versus-{n}.svg");
    let block = format!(
        "Generated by `cargo run --release -p actlog-benches --bin versus` \
         ({} records{}) at commit {} — do not edit by hand.\n\n\
         * Machine: {machine_line}.\n\
         * `write(300 B) + fdatasync` rate in the data directory: {sync_before:.0}/s before \
         the run, {sync_after:.0}/s after. Load average (1/5/15 min) before / after: \
         {load_before} / {load_after}.\n\
         * SQLite {} (bundled, FTS5 compiled in): WAL, `synchronous=FULL`, 64 MiB cache, \
         256 MiB mmap, `ANALYZE` after the load; one connection per writer thread, busy \
         timeout {BUSY_TIMEOUT_MS} ms.\n\
         * Query figures: p50 / p99 of up to {} timed calls each (fewer for slow queries: \
         about 2 s each, at least 20), in a process serving only that store; SQLite runs \
         each page query ordered by `id` and by `ts, id` (same rows), each with and without \
         `ANALYZE` statistics, and is credited with the fastest. Single-record ingest: {}s per writer count. The whole run took {:.0} s.\n\n\
         {table}\n![actlog advantage over SQLite, {} records]({chart_name})\n\n\
         <details><summary>SQLite's query plans (EXPLAIN QUERY PLAN)</summary>\n\n{plans}\n</details>\n\n",
        num(n as f64),
        if n == 1_000_000 { "" } else { ", `ACTLOG_BENCH_RECORDS`" },
        git_head(),
        sqlite_design::sqlite_version(),
        o.iters,
        o.writer_seconds,
        elapsed,
        num(n as f64),
    );
    println!("{block}");
    if o.readme {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = dir.join("README.md");
        let doc = fs::read_to_string(&readme).expect("read benches/README.md");
        fs::write(
            &readme,
            report::splice(&doc, &format!("versus-{n}"), &block),
        )
        .expect("write benches/README.md");
        fs::write(
            dir.join(&chart_name),
            report::svg(
                &rows,
                &format!("actlog vs the SQLite design, {} records", num(n as f64)),
            ),
        )
        .expect("write the chart");
        eprintln!(
            "wrote {} and {}",
            readme.display(),
            dir.join(&chart_name).display()
        );
    }
    fs::remove_dir_all(&work).expect("remove the run's stores");
}
