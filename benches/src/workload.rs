//! The deterministic event workload ([`crate::generator`]) written to events
//! files and loaded into prepared logs for the query benchmarks.
//!
//! * [`events_file`] runs the generator once per `(count, seed)` and caches
//!   its JSON lines under [`data_root`].
//! * [`parse_event`] turns one line into `(ts, NewRecord)`.
//! * [`prepared_log`] builds `log-<count>/` once with [`Log::append_at`] in
//!   batches of [`LOAD_BATCH`] and reuses it while it holds the right number
//!   of records, so repeated benchmark runs do not reload.
//! * [`copy_log`], [`disk_usage`] and [`filesystem_of`] are small helpers for
//!   retention runs and the whole-process figures.
//!
//! Everything lives on the real disk (`target/bench-data` in the workspace):
//! [`data_root`] refuses a tmpfs.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use actlog_engine::{Config, Log, NewRecord, Severity};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::generator::{Event, Generator, Options};

/// The generator seed every benchmark uses.
pub const SEED: u64 = 42;
/// The `recorded_by` of every workload record: the server stamps each record
/// with the id of the API key that sent it, and the workload's events come
/// from one integration's writer key (events files hold what a client
/// POSTs, which never names it).
pub const WORKLOAD_KEY: &str = "key_5e4d3c2b1a09";
/// Records per `append_at` call while loading.
pub const LOAD_BATCH: usize = 1000;
/// Default log size of the query benchmarks.
pub const DEFAULT_RECORDS: u64 = 1_000_000;
/// Environment variable that overrides [`DEFAULT_RECORDS`].
pub const RECORDS_ENV: &str = "ACTLOG_BENCH_RECORDS";

/// The log size to benchmark: `ACTLOG_BENCH_RECORDS` (underscores allowed,
/// e.g. `10_000_000`) or [`DEFAULT_RECORDS`].
pub fn records_from_env() -> u64 {
    match std::env::var(RECORDS_ENV) {
        Ok(s) => s
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{RECORDS_ENV}={s:?} is not a record count")),
        Err(_) => DEFAULT_RECORDS,
    }
}

/// Where events files and prepared logs are kept: `ACTLOG_BENCH_DATA` or
/// `target/bench-data` in the workspace. Panics if that is a tmpfs or ramfs,
/// where neither fsync nor page-cache behaviour resembles a real disk.
pub fn data_root() -> PathBuf {
    let dir = std::env::var_os("ACTLOG_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-data"))
        });
    fs::create_dir_all(&dir).expect("create the benchmark data directory");
    let dir = dir
        .canonicalize()
        .expect("canonicalize the benchmark data directory");
    if let Some((mount, fs_type)) = filesystem_of(&dir) {
        assert!(
            fs_type != "tmpfs" && fs_type != "ramfs",
            "{} is on a {fs_type} ({mount}); point ACTLOG_BENCH_DATA at a real disk",
            dir.display()
        );
    }
    dir
}

/// The mount point and filesystem type holding `path` (from `/proc/mounts`;
/// `None` when that cannot be read).
pub fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let _device = parts.next()?;
            let mount = parts.next()?.replace("\\040", " ");
            let fs_type = parts.next()?.to_string();
            Some((mount, fs_type))
        })
        .filter(|(mount, _)| path.starts_with(mount))
        // The longest matching mount point wins; among equals, the last mounted.
        .fold(None, |best: Option<(String, String)>, cur| match &best {
            Some(b) if b.0.len() > cur.0.len() => best,
            _ => Some(cur),
        })
}

/// The cached generator output for `(count, seed)`, generating it first if
/// needed (written to a temporary name and renamed, so an interrupted run
/// never leaves a short file behind).
pub fn events_file(count: u64, seed: u64) -> PathBuf {
    // `chacha8` names the generator's stream, so files of an earlier
    // generator are never mistaken for this one's.
    let path = data_root().join(format!("events-chacha8-{count}-{seed}.jsonl"));
    if path.exists() {
        return path;
    }
    let tmp = path.with_extension("jsonl.partial");
    eprintln!("generating {count} events (seed {seed}) ...");
    let start = Instant::now();
    generate_events(count, seed, &tmp);
    fs::rename(&tmp, &path).expect("rename the events file into place");
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    path
}

/// Runs the generator for `(count, seed)` into `path` (overwritten): one
/// JSON line per event, flushed and synced before it returns.
pub fn generate_events(count: u64, seed: u64, path: &Path) {
    let file = File::create(path).expect("create the events file");
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write_events(Generator::new(Options::new(count, seed)), &mut out)
        .expect("write the events file");
    let file = out.into_inner().expect("flush the events file");
    file.sync_all().expect("fsync the events file");
}

/// Writes `events` as JSON lines (the events-file format) to `out`.
pub fn write_events(events: impl Iterator<Item = Event>, out: &mut impl Write) -> io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut *out, &e)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Calls `f` with successive batches of at most `batch` parsed events of the
/// events file at `path` (at most `limit` events in all). Parsing happens
/// between calls, so a caller timing only `f` times only its store.
pub fn for_each_batch(
    path: &Path,
    limit: u64,
    batch: usize,
    mut f: impl FnMut(&[(i64, NewRecord)]),
) -> u64 {
    let reader = BufReader::with_capacity(1 << 20, File::open(path).expect("open the events file"));
    let mut buf: Vec<(i64, NewRecord)> = Vec::with_capacity(batch);
    let mut n = 0u64;
    for (i, line) in reader.lines().enumerate() {
        if n == limit {
            break;
        }
        let line = line.expect("read an events line");
        let event = parse_event(&line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        buf.push(event);
        n += 1;
        if buf.len() == batch {
            f(&buf);
            buf.clear();
        }
    }
    if !buf.is_empty() {
        f(&buf);
    }
    n
}

/// Where benchmarks write their own stores and scratch copies:
/// `ACTLOG_BENCH_SCRATCH` or `target/bench-data` in this workspace (so
/// pointing `ACTLOG_BENCH_DATA` at another checkout's cached events reads
/// them without writing there). Panics on a tmpfs, like [`data_root`].
pub fn scratch_root() -> PathBuf {
    let dir = std::env::var_os("ACTLOG_BENCH_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-data"))
        });
    fs::create_dir_all(&dir).expect("create the benchmark scratch directory");
    let dir = dir
        .canonicalize()
        .expect("canonicalize the benchmark scratch directory");
    if let Some((mount, fs_type)) = filesystem_of(&dir) {
        assert!(
            fs_type != "tmpfs" && fs_type != "ramfs",
            "{} is on a {fs_type} ({mount}); point ACTLOG_BENCH_SCRATCH at a real disk",
            dir.display()
        );
    }
    dir
}

/// One generator line, as a client would POST it plus its `ts`.
#[derive(Debug, Deserialize)]
struct EventLine {
    ts: i64,
    category: String,
    action: String,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    entity_type: Option<String>,
    #[serde(default)]
    entity_id: Option<String>,
    #[serde(default)]
    entity_name: Option<String>,
    message: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    occurred_at: Option<i64>,
}

/// Parses one generator line into `(ts µs, record)`. Optional fields may be
/// null or absent; a missing severity is `info`.
pub fn parse_event(line: &str) -> Result<(i64, NewRecord), String> {
    let e: EventLine = serde_json::from_str(line).map_err(|e| format!("bad event line: {e}"))?;
    let severity = match e.severity.as_deref() {
        None => Severity::Info,
        Some(s) => s
            .parse()
            .map_err(|e| format!("bad severity {s:?}: {e:?}"))?,
    };
    let record = NewRecord {
        category: e.category,
        action: e.action,
        actor: e.actor,
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        entity_name: e.entity_name,
        message: e.message,
        severity,
        metadata: e.metadata.unwrap_or_default(),
        occurred_at: e.occurred_at,
        recorded_by: Some(WORKLOAD_KEY.to_string()),
    };
    Ok((e.ts, record))
}

/// The directory of the prepared log of `count` records.
pub fn log_dir(count: u64) -> PathBuf {
    data_root().join(format!("log-{count}"))
}

/// Visible records in the log at `dir`, or `None` if it cannot be opened.
fn records_in(dir: &Path) -> Option<u64> {
    // Read-only: checking a prepared log (maybe another checkout's) changes nothing.
    let log = Log::open_read_only(dir, Config::default()).ok()?;
    let stats = log.stats().ok()?;
    Some(stats.entries)
}

/// The prepared log of `count` events (seed [`SEED`], default [`Config`]),
/// building it if it is missing or does not hold exactly `count` records.
///
/// The log is built in `log-<count>.partial/` and renamed into place when
/// complete. Its active segment is left as loading left it (the newest
/// records, less than a day's worth), as a running server's would be.
pub fn prepared_log(count: u64) -> PathBuf {
    let dir = log_dir(count);
    if dir.is_dir() {
        match records_in(&dir) {
            Some(n) if n == count => return dir,
            other => {
                eprintln!(
                    "{} holds {other:?} records, not {count}: rebuilding it",
                    dir.display()
                );
                fs::remove_dir_all(&dir).expect("remove the stale prepared log");
            }
        }
    }
    let events = events_file(count, SEED);
    let partial = dir.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial).expect("remove a partial log");
    }
    eprintln!("loading {count} events into {} ...", dir.display());
    let start = Instant::now();
    let log = Log::open(&partial, Config::default()).expect("create the log");
    let reader =
        BufReader::with_capacity(1 << 20, File::open(&events).expect("open the events file"));
    let mut batch: Vec<(i64, NewRecord)> = Vec::with_capacity(LOAD_BATCH);
    let mut loaded = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let line = line.expect("read an events line");
        let event = parse_event(&line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        batch.push(event);
        if batch.len() == LOAD_BATCH {
            log.append_at(&batch).expect("append a batch");
            loaded += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        log.append_at(&batch).expect("append the last batch");
        loaded += batch.len() as u64;
    }
    assert_eq!(loaded, count, "{} holds a wrong count", events.display());
    log.close().expect("close the loaded log");
    fs::rename(&partial, &dir).expect("rename the prepared log into place");
    eprintln!("loaded in {:.1} s", start.elapsed().as_secs_f64());
    dir
}

/// Copies the files of the log at `src` into a new directory `dst` (which
/// must not exist) and fsyncs them, so that none of the copy's writeback is
/// left for whatever is timed next. The lock file is not copied.
pub fn copy_log(src: &Path, dst: &Path) {
    fs::create_dir(dst).expect("create the copy's directory");
    for entry in fs::read_dir(src).expect("list the log directory") {
        let entry = entry.expect("list the log directory");
        if entry.file_name() == actlog_engine::LOCK_FILE {
            continue;
        }
        let to = dst.join(entry.file_name());
        fs::copy(entry.path(), &to).expect("copy a log file");
        File::open(&to)
            .and_then(|f| f.sync_all())
            .expect("fsync a copied file");
    }
    File::open(dst)
        .and_then(|d| d.sync_all())
        .expect("fsync the copy's directory");
}

/// Bytes on disk of a log directory, by kind of file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Segment files (`seg-*.log`): frames, offset tables, footers.
    pub segments: u64,
    /// Index files (`seg-*.idx`): term dictionary, postings, sparse ts.
    pub indexes: u64,
    /// Everything else (lock, watermark).
    pub other: u64,
    /// Number of segment files.
    pub segment_files: usize,
}

impl DiskUsage {
    /// All bytes.
    pub fn total(&self) -> u64 {
        self.segments + self.indexes + self.other
    }
}

/// Sums the file sizes in `dir` by kind (apparent sizes, as `ls -l` shows).
pub fn disk_usage(dir: &Path) -> DiskUsage {
    let mut u = DiskUsage::default();
    for entry in fs::read_dir(dir).expect("list the log directory") {
        let entry = entry.expect("list the log directory");
        let len = entry.metadata().expect("stat a log file").len();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".log") {
            u.segments += len;
            u.segment_files += 1;
        } else if name.ends_with(".idx") {
            u.indexes += len;
        } else {
            u.other += len;
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generator_lines_with_null_and_absent_fields() {
        let (ts, r) = parse_event(
            r#"{"ts":5,"category":"auth","action":"auth.login_failed","actor":"unknown",
               "entity_type":null,"entity_id":null,"entity_name":null,
               "message":"Failed sign-in","severity":"warning","metadata":{"ip":"10.0.0.1"}}"#,
        )
        .expect("valid line");
        assert_eq!(ts, 5);
        assert_eq!(r.category, "auth");
        assert_eq!(r.entity_id, None);
        assert_eq!(r.severity, Severity::Warning);
        assert_eq!(r.metadata.get("ip"), Some(&Value::from("10.0.0.1")));
        assert_eq!(r.recorded_by.as_deref(), Some(WORKLOAD_KEY));
        let (_, r) =
            parse_event(r#"{"ts":6,"category":"system","action":"system.x","message":"m"}"#)
                .expect("minimal line");
        assert_eq!(r.actor, None);
        assert_eq!(r.severity, Severity::Info);
        assert!(r.metadata.is_empty());
        assert!(parse_event("{}").is_err());
    }
}
