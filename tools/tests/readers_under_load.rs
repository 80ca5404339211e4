//! Lock-free readers under load: `actlog-inspect verify`, `ls` and `dump`,
//! each in a loop as separate processes, against a log that rolls every few
//! KiB under four writers. No reader may die by a signal (SIGBUS from a
//! mapped file cut under it, especially), report damage that is not there,
//! or print a record that was not acknowledged (or out of order, or with a
//! hole before it). Bounded: the readers run for `READ_FOR`.
//!
//! The server has no setting for the segment size (`actlog serve` opens its
//! log with `Config::default()`, 64 MiB segments), so the writers here are
//! the engine itself, in this process, with 4 KiB segments: what a server
//! does under load, minus HTTP.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use actlog_engine::{Config, Direction, Log, NewRecord};
use serde_json::{json, Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_actlog-inspect");
/// How long the readers loop.
const READ_FOR: Duration = Duration::from_secs(8);
/// Records each writer appends at most.
const PER_WRITER: u64 = 5_000;
const WRITERS: u64 = 4;

fn small() -> Config {
    Config {
        segment_max_bytes: 4096,
        ..Config::default()
    }
}

fn rec(w: u64, s: u64) -> NewRecord {
    let mut r = NewRecord::new(
        ["entity", "device", "auth", "system"][w as usize],
        "load.event",
        format!("writer {w} seq {s} {}", "x".repeat((s % 40) as usize)),
    );
    r.actor = Some(format!("writer-{w}"));
    r.entity_id = Some(format!("e{}", s % 17));
    let mut meta = Map::new();
    meta.insert("w".into(), json!(w));
    meta.insert("s".into(), json!(s));
    r.metadata = meta;
    r
}

/// (id, writer, seq) of one dumped record.
type Row = (u64, u64, u64);

/// One reader run that went wrong.
#[derive(Debug)]
struct Bad {
    cmd: &'static str,
    what: String,
}

struct Run {
    signal: Option<i32>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("ACTLOG_TOKEN")
        .output()
        .expect("run actlog-inspect");
    Run {
        signal: out.status.signal(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn describe(r: &Run) -> String {
    let head = |s: &str| s.lines().take(20).collect::<Vec<_>>().join("\n");
    format!(
        "signal {:?} exit {:?}\n--- stdout (first lines)\n{}\n--- stderr\n{}",
        r.signal,
        r.code,
        head(&r.stdout),
        r.stderr
    )
}

/// Checks one dump: a gap-free run of ids from 1, each record one a writer
/// sent (message and metadata agree), each writer's records in its order.
/// Returns (id, writer, seq) per line.
fn check_dump(stdout: &str) -> Result<Vec<Row>, String> {
    let mut out = Vec::new();
    let mut last_seq: BTreeMap<u64, u64> = BTreeMap::new();
    for (n, line) in stdout.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("line {n} is not JSON ({e}): {line}"))?;
        let id = v["id"].as_u64().ok_or(format!("line {n}: no id"))?;
        if id != n as u64 + 1 {
            return Err(format!("line {n} has id {id}, expected {}", n + 1));
        }
        let w = v["metadata"]["w"]
            .as_u64()
            .ok_or(format!("id {id}: no w"))?;
        let s = v["metadata"]["s"]
            .as_u64()
            .ok_or(format!("id {id}: no s"))?;
        let want = rec(w, s);
        if v["message"].as_str() != Some(want.message.as_str())
            || v["category"].as_str() != Some(want.category.as_str())
            || v["actor"].as_str() != want.actor.as_deref()
        {
            return Err(format!(
                "id {id}: not what writer {w} sent as seq {s}: {line}"
            ));
        }
        if let Some(&prev) = last_seq.get(&w) {
            if s <= prev {
                return Err(format!("id {id}: writer {w} seq {s} after seq {prev}"));
            }
        }
        last_seq.insert(w, s);
        out.push((id, w, s));
    }
    Ok(out)
}

/// Counts `DAMAGE` and `warning` lines; adds the kinds of warnings (the
/// text after `@ <offset>: `) to `kinds`.
fn findings(stdout: &str, kinds: &mut BTreeMap<String, usize>) -> (usize, usize) {
    let damage = stdout.lines().filter(|l| l.starts_with("DAMAGE")).count();
    let mut warnings = 0;
    for l in stdout.lines().filter(|l| l.starts_with("warning")) {
        warnings += 1;
        let kind = l.split_once(" @ ").map_or(l, |(_, rest)| {
            rest.split_once(": ").map_or(rest, |(_, what)| what)
        });
        *kinds.entry(kind.to_string()).or_default() += 1;
    }
    (damage, warnings)
}

#[test]
fn verify_ls_and_dump_loop_against_a_log_rolling_under_four_writers() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let log = Log::open(&dir, small()).expect("open");
    // A first segment or two, so that every reader has something from the start.
    for s in 0..20 {
        log.append_one(&rec(0, s)).expect("append");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(20));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (log, stop, appended) = (log.clone(), stop.clone(), appended.clone());
            thread::spawn(move || {
                let mut acked = Vec::new();
                let mut s = if w == 0 { 20 } else { 0 };
                let mut batch_no = 0u64;
                while !stop.load(Ordering::Acquire) && s < PER_WRITER {
                    let n = 1 + (batch_no + w) % 4;
                    let batch: Vec<NewRecord> =
                        (s..(s + n).min(PER_WRITER)).map(|k| rec(w, k)).collect();
                    let ids = log.append(&batch).expect("append");
                    for (id, k) in ids.into_iter().zip(s..) {
                        acked.push((id, w, k));
                    }
                    appended.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    s += batch.len() as u64;
                    batch_no += 1;
                }
                acked
            })
        })
        .collect();

    let bad: Arc<Mutex<Vec<Bad>>> = Arc::default();
    let dumps: Arc<Mutex<Vec<Vec<Row>>>> = Arc::default();
    let deadline = Instant::now() + READ_FOR;
    let readers: Vec<_> = ["verify", "ls", "dump"]
        .into_iter()
        .map(|cmd| {
            let (dir, bad, dumps) = (dir.clone(), bad.clone(), dumps.clone());
            thread::spawn(move || {
                let mut iterations = 0u64;
                let mut warnings = 0usize;
                let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
                let mut max_segments = 0usize;
                let d = dir.to_str().expect("utf-8").to_string();
                while Instant::now() < deadline {
                    let r = run(&[cmd, &d]);
                    iterations += 1;
                    let fail = |what: String| {
                        bad.lock().expect("lock").push(Bad { cmd, what });
                    };
                    if r.signal.is_some() {
                        fail(format!("killed by a signal: {}", describe(&r)));
                        continue;
                    }
                    if r.code != Some(0) {
                        fail(format!("failed: {}", describe(&r)));
                        continue;
                    }
                    match cmd {
                        "verify" | "ls" => {
                            let (damage, warn) = findings(&r.stdout, &mut kinds);
                            warnings += warn;
                            if damage > 0 {
                                fail(format!("reported damage: {}", describe(&r)));
                            }
                            if cmd == "verify" && !r.stdout.contains(" 0 damaged, ") {
                                fail(format!("no clean summary: {}", describe(&r)));
                            }
                            if cmd == "ls" {
                                let segs =
                                    r.stdout.lines().filter(|l| l.starts_with("seg-")).count();
                                max_segments = max_segments.max(segs);
                                // Zero is possible: listed between a seal and
                                // the successor's creation, the newest is sealed.
                                let active = r.stdout.matches("  active  ").count();
                                if active > 1 {
                                    fail(format!(
                                        "{active} active segments listed: {}",
                                        describe(&r)
                                    ));
                                }
                            }
                        }
                        _ => match check_dump(&r.stdout) {
                            Ok(rows) => dumps.lock().expect("lock").push(rows),
                            Err(e) => fail(format!("bad dump: {e}\n{}", describe(&r))),
                        },
                    }
                }
                (cmd, iterations, warnings, max_segments, kinds)
            })
        })
        .collect();
    let reader_stats: Vec<_> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    stop.store(true, Ordering::Release);
    let mut acked: BTreeMap<u64, (u64, u64)> = (0..20).map(|s| (s + 1, (0, s))).collect();
    for w in writers {
        for (id, wr, s) in w.join().expect("writer") {
            assert!(acked.insert(id, (wr, s)).is_none(), "id {id} twice");
        }
    }
    let segments = log.segments().len();
    log.close().expect("close");
    let total = acked.len() as u64;
    assert_eq!(total, appended.load(Ordering::Relaxed));
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );

    // Everything a dump printed was acknowledged, as what was sent.
    let dumps = std::mem::take(&mut *dumps.lock().expect("lock"));
    let mut dumped_records = 0usize;
    for rows in &dumps {
        dumped_records += rows.len();
        for &(id, w, s) in rows {
            assert_eq!(acked.get(&id), Some(&(w, s)), "dumped id {id}");
        }
    }

    // And at rest: verify is clean and the engine reads every record.
    let r = run(&["verify", dir.to_str().expect("utf-8")]);
    assert_eq!(r.code, Some(0), "{}", describe(&r));
    assert!(
        r.stdout.contains(&format!(" {total} records, ")) && r.stdout.contains(" 0 damaged, "),
        "{}",
        describe(&r)
    );
    let reread = Log::open_read_only(&dir, Config::default()).expect("open read-only");
    let n = reread.iter(0, Direction::Forward).count() as u64;
    assert_eq!(n, total);

    eprintln!(
        "readers_under_load: {total} records by {WRITERS} writers, {segments} segments at the end, \
         {} dumps holding {dumped_records} records, {:.1} s",
        dumps.len(),
        t0.elapsed().as_secs_f64()
    );
    for (cmd, iterations, warnings, max_segments, kinds) in &reader_stats {
        eprintln!(
            "  {cmd:<6} {iterations} runs, {warnings} warning lines{}",
            if *cmd == "ls" {
                format!(", up to {max_segments} segments listed")
            } else {
                String::new()
            }
        );
        for (kind, n) in kinds {
            eprintln!("         {n} x warning: {kind}");
        }
    }
    let bad = std::mem::take(&mut *bad.lock().expect("lock"));
    for b in &bad {
        eprintln!("--- {} {}", b.cmd, b.what);
    }
    assert!(
        bad.is_empty(),
        "{} reader runs went wrong (above)",
        bad.len()
    );
    for (cmd, iterations, _, _, _) in &reader_stats {
        assert!(*iterations >= 3, "{cmd} ran only {iterations} times");
    }
    assert!(segments >= 20, "the log rolled: {segments} segments");
}
