//! Whole-process figures for the engine over the shared workload: open time,
//! resident memory of a process serving the query set, bytes on disk per
//! record, per-query p50/p99 and retention time.
//!
//! ```text
//! cargo run --release -p actlog-benches --bin engine_figures -- \
//!     [--records N] [--iters N] [--opens N] [--crash-opens N] [--exports N]
//!     [--retention-runs N] [--no-cold]
//! ```
//!
//! For profiling one query: `engine_figures --serve <log dir> --iters 100000
//! --only <case id> --picks "$(engine_figures --print-picks)"`.
//!
//! `--records` defaults to `ACTLOG_BENCH_RECORDS` or 1 000 000; the log is
//! prepared (or reused) exactly as the `queries` bench does. The query set
//! runs in a child process (this binary with `--serve <dir>`), so the memory
//! figures are those of a process that only opens the log and serves queries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actlog_benches::query_set::{retention_run, Picks, QuerySet, RETENTION_ID};
use actlog_benches::sqlite_design::ExportFormat;
use actlog_benches::versus::export_actlog;
use actlog_benches::workload::{
    data_root, disk_usage, filesystem_of, prepared_log, records_from_env,
};
use actlog_engine::{Config, Log, RecordView, SealedSegment};

/// Command-line options.
struct Opts {
    records: u64,
    iters: usize,
    opens: usize,
    crash_opens: usize,
    exports: usize,
    retention_runs: usize,
    cold: bool,
    serve: Option<PathBuf>,
    picks: Option<String>,
    only: Option<String>,
    print_picks: bool,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        records: records_from_env(),
        iters: 1000,
        opens: 7,
        crash_opens: 3,
        exports: 3,
        retention_runs: 5,
        cold: true,
        serve: None,
        picks: None,
        only: None,
        print_picks: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--records" => o.records = value().replace('_', "").parse().expect("--records N"),
            "--iters" => o.iters = value().parse().expect("--iters N"),
            "--opens" => o.opens = value().parse().expect("--opens N"),
            "--crash-opens" => o.crash_opens = value().parse().expect("--crash-opens N"),
            "--exports" => o.exports = value().parse().expect("--exports N"),
            "--retention-runs" => o.retention_runs = value().parse().expect("--retention-runs N"),
            "--no-cold" => o.cold = false,
            "--serve" => o.serve = Some(PathBuf::from(value())),
            "--picks" => o.picks = Some(value()),
            "--only" => o.only = Some(value()),
            "--print-picks" => o.print_picks = true,
            other => panic!("unknown argument {other}; see the source's doc comment"),
        }
    }
    o
}

/// `field` of `/proc/self/status` in kB (`VmRSS`, `VmHWM`, `RssAnon`, `RssFile`).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn memory_line(when: &str) -> String {
    format!(
        "{when}: VmRSS {:.1} MB (anon {:.1} MB, file-backed {:.1} MB), VmHWM {:.1} MB",
        status_kb("VmRSS") as f64 / 1024.0,
        status_kb("RssAnon") as f64 / 1024.0,
        status_kb("RssFile") as f64 / 1024.0,
        status_kb("VmHWM") as f64 / 1024.0,
    )
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Sorted durations → (p50, p99, max).
fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99), v[v.len() - 1])
}

/// The child: open the log, run every case `iters` times, report latencies
/// and memory. The picks come from the parent, so that finding them (a walk
/// through 90 % of `category=device`) does not count towards this process's
/// memory; without them the child finds them itself, after the queries.
fn serve(dir: &Path, iters: usize, picks: Option<&str>, only: Option<&str>) {
    println!("{}", memory_line("child start"));
    let log = Log::open(dir, Config::default()).expect("open the prepared log");
    println!("{}", memory_line("after Log::open"));
    let picks = picks.map(|p| Picks::decode(p).expect("valid --picks"));
    let set = QuerySet::with_picks(picks.clone().unwrap_or_else(|| Picks::find(&log)));
    println!();
    println!("| query | items | p50 µs | p99 µs | max µs | mean µs | owned records p50 / p99 µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for case in set.cases.iter().filter(|c| only.is_none_or(|o| o == c.id)) {
        let mut items = 0;
        for _ in 0..iters.min(20) {
            items = std::hint::black_box(case.run(&log));
        }
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            std::hint::black_box(case.run(&log));
            times.push(start.elapsed());
        }
        let mean = times.iter().sum::<Duration>() / iters as u32;
        let (p50, p99, max) = percentiles(times);
        // The same page decoded into owned records (`Log::query`).
        let mut owned = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            std::hint::black_box(case.run_owned(&log));
            owned.push(start.elapsed());
        }
        let (o50, o99, _) = percentiles(owned);
        println!(
            "| {} | {items} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} |",
            case.id,
            micros(p50),
            micros(p99),
            micros(max),
            micros(mean),
            micros(o50),
            micros(o99)
        );
    }
    println!();
    for case in &set.cases {
        println!("  {:<36} {}", case.id, case.what);
    }
    println!();
    // Where a page's time goes: reading and decoding single records.
    let last = log.last_id().expect("not empty");
    let active_base = log
        .segments()
        .last()
        .map(|s| s.base_id)
        .expect("an active segment");
    let sealed_probe = active_base.saturating_sub(1000).max(1);
    for (what, first) in [
        ("active segment", last - 49),
        ("sealed segment", sealed_probe),
    ] {
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            for id in first..first + 50 {
                std::hint::black_box(log.get(id).expect("get").expect("visible"));
            }
            times.push(start.elapsed());
        }
        let (p50, p99, _) = percentiles(times);
        println!(
            "50 x Log::get in the {what}: p50 {:.1} µs ({:.2} µs/record), p99 {:.1} µs",
            micros(p50),
            micros(p50) / 50.0,
            micros(p99)
        );
    }
    println!();
    println!("{}", memory_line("after serving the query set"));
    if picks.is_some() && only.is_none() {
        Picks::find(&log);
        println!(
            "{}",
            memory_line("after also walking 90 % of category=device (finding the picks)")
        );
        // What a server does on its maintenance tick after queries.
        log.release_mapped_pages().expect("release mapped pages");
        println!(
            "{}",
            memory_line("after Log::release_mapped_pages (the page cache keeps them)")
        );
    }
}

/// Where the time of reading one page of 50 sealed records goes: the frame
/// lookup and CRC, a borrowed decode, the metadata map, the owned `Record`.
fn decode_anatomy(dir: &Path, iters: usize) {
    let path = {
        let log = Log::open(dir, Config::default()).expect("open");
        let segs = log.segments();
        segs.iter()
            .rev()
            .find(|s| s.sealed)
            .map(|s| s.path.clone())
            .expect("a sealed segment")
    };
    let seg = SealedSegment::open(&path)
        .expect("open the segment")
        .expect("sealed");
    let first = seg.count().saturating_sub(50);
    let locals = first..seg.count();
    let time = |f: &dyn Fn()| {
        for _ in 0..iters.min(50) {
            f();
        }
        let mut v = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            f();
            v.push(start.elapsed());
        }
        percentiles(v).0
    };
    let frames = time(&|| {
        for l in locals.clone() {
            std::hint::black_box(seg.frame(l).expect("frame"));
        }
    });
    let borrowed = time(&|| {
        for l in locals.clone() {
            let f = seg.frame(l).expect("frame");
            let v =
                RecordView::parse(f.header.id, f.header.ts, f.payload).expect("borrowed decode");
            std::hint::black_box(v);
        }
    });
    let with_map = time(&|| {
        for l in locals.clone() {
            let f = seg.frame(l).expect("frame");
            let v =
                RecordView::parse(f.header.id, f.header.ts, f.payload).expect("borrowed decode");
            std::hint::black_box(v.metadata.to_map().expect("decode metadata"));
        }
    });
    let owned = time(&|| {
        for l in locals.clone() {
            std::hint::black_box(seg.read(seg.base_id() + l).expect("read"));
        }
    });
    let payload: usize = locals
        .clone()
        .map(|l| seg.frame(l).expect("frame").payload.len())
        .sum();
    println!(
        "decode anatomy, 50 records of {} ({} payload bytes), p50 of {iters}:",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        payload
    );
    for (what, d) in [
        ("frame lookup + CRC only", frames),
        (
            "+ RecordView::parse (&str fields, metadata left encoded)",
            borrowed,
        ),
        ("+ metadata into a serde_json::Map", with_map),
        (
            "SealedSegment::read -> owned Record (what a page does)",
            owned,
        ),
    ] {
        println!(
            "  {what:<56} {:>7.1} µs  ({:.2} µs/record)",
            micros(d),
            micros(d) / 50.0
        );
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
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
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let fs = filesystem_of(&data_root())
        .map(|(m, t)| format!("{t} (mounted at {m})"))
        .unwrap_or_else(|| "unknown fs".into());
    format!("{cores} cores ({cpu}), {mem_gb:.1} GiB RAM, Linux {kernel}, data dir on {fs}")
}

/// Evicts the log's files from the page cache (`posix_fadvise(DONTNEED)`
/// through python3, which needs no unsafe code here). Returns whether it worked.
fn evict(dir: &Path) -> bool {
    let script = "import os,sys\n\
        d=sys.argv[1]\n\
        for n in os.listdir(d):\n\
        \x20   p=os.path.join(d,n)\n\
        \x20   fd=os.open(p,os.O_RDONLY)\n\
        \x20   os.fsync(fd)\n\
        \x20   os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\n\
        \x20   os.close(fd)\n";
    Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let o = parse_opts();
    if let Some(dir) = &o.serve {
        serve(dir, o.iters, o.picks.as_deref(), o.only.as_deref());
        return;
    }
    let dir = prepared_log(o.records);
    if o.print_picks {
        let log = Log::open(&dir, Config::default()).expect("open");
        println!("{}", Picks::find(&log).encode());
        return;
    }
    println!("machine: {}", machine());
    println!("log: {} ({} records)", dir.display(), o.records);

    let u = disk_usage(&dir);
    let per = |b: u64| b as f64 / o.records as f64;
    println!(
        "disk: {} segment files; segments {:.1} MB ({:.1} B/record), indexes {:.1} MB \
         ({:.1} B/record), other {} B; total {:.1} B/record",
        u.segment_files,
        u.segments as f64 / 1e6,
        per(u.segments),
        u.indexes as f64 / 1e6,
        per(u.indexes),
        u.other,
        per(u.total())
    );

    if o.cold {
        if evict(&dir) {
            let start = Instant::now();
            let log = Log::open(&dir, Config::default()).expect("open");
            let cold = start.elapsed();
            drop(log);
            println!(
                "Log::open with the log's files evicted from the page cache: {:.1} ms",
                cold.as_secs_f64() * 1e3
            );
        } else {
            println!("(could not evict the log's files from the page cache; no cold open)");
        }
    }
    if o.opens > 0 {
        let mut opens = Vec::new();
        let mut report = None;
        for _ in 0..o.opens {
            let start = Instant::now();
            let log = Log::open(&dir, Config::default()).expect("open");
            opens.push(start.elapsed());
            let r = log.recovery_report().clone();
            let segs = log.segments();
            let active = segs.last().map_or(0, |s| s.records);
            report = Some((segs.len(), active, r.rebuilt_indexes.len(), r.torn_tail));
            drop(log);
        }
        let min = opens.iter().min().copied().unwrap_or_default();
        let (p50, _, max) = percentiles(opens);
        if let Some((segments, active, rebuilt, torn)) = report {
            println!(
                "Log::open, page cache warm, {} runs: median {:.1} ms (min {:.1}, max {:.1}); \
                 {segments} segments, {active} records in the active segment, \
                 {rebuilt} indexes rebuilt, torn tail {torn:?}",
                o.opens,
                p50.as_secs_f64() * 1e3,
                min.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3,
            );
        }
    }

    if o.crash_opens > 0 {
        // A crash leaves no saved active index (`seg-*.aidx`, written by a
        // clean close): open re-indexes the whole active segment. Each run
        // deletes it, times the open, and closes cleanly (which saves it
        // again).
        let mut opens = Vec::new();
        for _ in 0..o.crash_opens {
            let snapshots: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("list the log")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "aidx"))
                .collect();
            for p in &snapshots {
                std::fs::remove_file(p).expect("remove the saved active index");
            }
            let start = Instant::now();
            let log = Log::open(&dir, Config::default()).expect("open");
            opens.push(start.elapsed());
            assert_eq!(log.recovery_report().active_index_snapshot, None);
            drop(log);
        }
        let (p50, _, max) = percentiles(opens);
        println!(
            "Log::open after a crash (no saved active index), page cache warm, {} runs: \
             median {:.1} ms (max {:.1})",
            o.crash_opens,
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }

    if o.exports > 0 {
        // The server's export loop (`versus::export_actlog`), into a sink
        // that only counts: what formatting rows costs, without HTTP.
        let log = Log::open(&dir, Config::default()).expect("open");
        for format in [ExportFormat::Csv, ExportFormat::Ndjson] {
            let mut rates = Vec::new();
            for _ in 0..o.exports {
                let mut sink = std::io::sink();
                let start = Instant::now();
                let rows = export_actlog(&log, format, &mut sink).expect("export");
                rates.push(rows as f64 / start.elapsed().as_secs_f64());
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "export {format:?} of the whole log in-process, {} runs: median {:.0} rows/s (max {:.0})",
                o.exports,
                rates[rates.len() / 2],
                rates[rates.len() - 1]
            );
        }
    }

    if o.iters > 0 {
        println!();
        decode_anatomy(&dir, o.iters);
        println!();
        println!("query set in a child process, {} iterations each:", o.iters);
        let picks = {
            let log = Log::open(&dir, Config::default()).expect("open");
            Picks::find(&log).encode()
        };
        let exe = std::env::current_exe().expect("current exe");
        let out = Command::new(exe)
            .arg("--serve")
            .arg(&dir)
            .args(["--iters", &o.iters.to_string(), "--picks", &picks])
            .output()
            .expect("run the serving child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the serving child failed");
    }

    if o.retention_runs > 0 {
        let scratch = data_root().join(format!("retention-copy-{}", o.records));
        let mut times = Vec::new();
        let mut outcome = None;
        for _ in 0..o.retention_runs {
            let (t, out) = retention_run(&dir, &scratch, o.records);
            times.push(t);
            outcome = Some(out);
        }
        let (p50, _, max) = percentiles(times);
        println!();
        println!(
            "{RETENTION_ID}: {} runs, median {:.2} ms, max {:.2} ms; {outcome:?}",
            o.retention_runs,
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
