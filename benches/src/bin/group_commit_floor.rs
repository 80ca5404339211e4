//! What durable single-record appends can reach on this machine without the
//! engine: a minimal group commit over one preallocated file, with nothing
//! but `pwrite` + `fdatasync` per group.
//!
//! Each of N threads appends a 272-byte record (the mean size of the
//! `append` bench's records on disk) and waits until it is durable; the
//! first waiter to find no flush running writes everything staged so far
//! and fdatasyncs once (the classic leader/follower protocol: no gather, no
//! encoding, no CRC, no index). Followers wait in one of two ways:
//!
//! * `park`: on a condvar, woken by the leader (what a thread-per-writer
//!   design does; the engine's blocking `append` parks too);
//! * `spin`: yielding the CPU in a loop until their record is durable or no
//!   flush runs (no futex at all, but every waiting thread keeps a CPU busy).
//!
//! The rate of 1 writer is the disk's fsync rate; 64 writers ÷ 1 writer is
//! the group-commit ratio this disk and scheduler allow a design this
//! simple, for comparison with `cargo bench --bench append`
//! (`benches/README.md`, "Session 11").
//!
//! Run: `cargo run --release -p actlog-benches --bin group_commit_floor [SECONDS]`
//! (default 3 s per case). Writes a 256 MiB scratch file under
//! `target/bench-tmp` (or `$ACTLOG_BENCH_DIR`), removed at the end.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

/// Bytes per record: the mean frame of the `append` bench.
const RECORD: usize = 272;
/// Zeroed ahead of the appends, so that fdatasync commits no size change.
const PREALLOCATED: u64 = 256 << 20;

/// How followers wait for their group's fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Park,
    Spin,
}

struct Shared {
    state: Mutex<State>,
    done: Condvar,
    file: File,
    /// Mirrors `durable` and `leader` for spinning followers.
    durable: std::sync::atomic::AtomicU64,
    flushing: std::sync::atomic::AtomicBool,
}

struct State {
    staged: Vec<u8>,
    /// Sequence number of the last staged record.
    last: u64,
    durable: u64,
    leader: bool,
    written: u64,
    fsyncs: u64,
}

fn main() -> Result<()> {
    let secs: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().context("SECONDS must be a whole number")?,
        None => 3,
    };
    let dir = std::env::var_os("ACTLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-tmp"))
        });
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("group-commit-floor.dat");
    println!(
        "scratch file {}, {RECORD}-byte records, {secs} s per case",
        path.display()
    );
    let mut single = None;
    for (writers, wait) in [(1, Wait::Park), (64, Wait::Park), (64, Wait::Spin)] {
        let (rate, per_fsync, cores) = run(&path, writers, wait, Duration::from_secs(secs))?;
        let base = *single.get_or_insert(rate);
        println!(
            "{writers:>2} writers, followers {wait:?}: {rate:>9.0} records/s, \
             {per_fsync:.1} records/fsync, {:.1}x one writer, {cores:.2} CPUs busy",
            rate / base
        );
    }
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(())
}

/// CPU time this process has used so far, in seconds (`/proc/self/stat`,
/// in the kernel's fixed 100 ticks a second).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // Fields after the command name, which ends at the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        let f = fields.get(i).context("short /proc/self/stat")?;
        f.parse::<f64>()
            .context("a CPU time field of /proc/self/stat")
    };
    // utime and stime are fields 14 and 15, the 12th and 13th after ')'.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Runs `writers` closed-loop appenders for `time`; returns records/s,
/// records per fsync and the CPUs the process kept busy.
fn run(path: &Path, writers: usize, wait: Wait, time: Duration) -> Result<(f64, f64, f64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let zeros = vec![0u8; 1 << 20];
    for at in (0..PREALLOCATED).step_by(zeros.len()) {
        file.write_all_at(&zeros, at).context("preallocate")?;
    }
    file.sync_all().context("fsync the preallocated file")?;
    let shared = Shared {
        state: Mutex::new(State {
            staged: Vec::new(),
            last: 0,
            durable: 0,
            leader: false,
            written: 0,
            fsyncs: 0,
        }),
        done: Condvar::new(),
        file,
        durable: Default::default(),
        flushing: Default::default(),
    };
    let stop_at = Instant::now() + time;
    let started = Instant::now();
    let cpu_before = cpu_seconds()?;
    let appended: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|_| s.spawn(|| appender(&shared, wait, stop_at)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("an appender panicked")))
            })
            .sum::<Result<u64>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cores = (cpu_seconds()? - cpu_before) / elapsed;
    let fsyncs = shared.state.lock().map(|st| st.fsyncs).unwrap_or(1).max(1);
    Ok((
        appended as f64 / elapsed,
        appended as f64 / fsyncs as f64,
        cores,
    ))
}

/// One writer's loop: stage a record, wait until it is durable (leading a
/// flush when none runs), repeat until `stop_at`. Returns its record count.
fn appender(shared: &Shared, wait: Wait, stop_at: Instant) -> Result<u64> {
    use std::sync::atomic::Ordering;
    let record = [b'r'; RECORD];
    let mut appended = 0;
    let lock = || shared.state.lock().unwrap_or_else(|e| e.into_inner());
    while Instant::now() < stop_at {
        let mut st = lock();
        st.staged.extend_from_slice(&record);
        st.last += 1;
        let mine = st.last;
        while st.durable < mine {
            if !st.leader {
                st.leader = true;
                shared.flushing.store(true, Ordering::Release);
                let buf = std::mem::take(&mut st.staged);
                let (at, upto) = (st.written, st.last);
                drop(st);
                shared.file.write_all_at(&buf, at).context("write")?;
                shared.file.sync_data().context("fdatasync")?;
                st = lock();
                st.written += buf.len() as u64;
                st.durable = upto;
                st.fsyncs += 1;
                st.leader = false;
                shared.durable.store(upto, Ordering::Release);
                shared.flushing.store(false, Ordering::Release);
                shared.done.notify_all();
            } else if wait == Wait::Spin {
                drop(st);
                while shared.durable.load(Ordering::Acquire) < mine
                    && shared.flushing.load(Ordering::Acquire)
                {
                    std::thread::yield_now();
                }
                st = lock();
            } else {
                st = shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        appended += 1;
    }
    Ok(appended)
}
