//! The flusher thread of `Log::append_async` waits for re-staging tasks by
//! yielding the CPU in a loop (`GATHER_SPIN_IDLE`), not by parking. That
//! wait must end when the tasks stop coming: an async appender that writes
//! now and then, or not at all, must not keep a core busy.
//!
//! Its own test binary, so no other test's flusher shares the process.

#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use actlog_engine::{Config, Log, NewRecord};
use common::block_on;

/// CPU time (user + system, in clock ticks) of this process's threads
/// named `actlog-flusher`, and how many there are.
fn flusher_ticks() -> (u64, usize) {
    let mut ticks = 0;
    let mut threads = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let task = task.expect("task entry").path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != "actlog-flusher" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).expect("stat");
        // Fields after the parenthesised name: state is the 3rd field,
        // utime the 14th and stime the 15th.
        let rest = &stat[stat.rfind(')').expect("comm ends") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields[n - 3].parse::<u64>().expect("a tick count");
        ticks += field(14) + field(15);
        threads += 1;
    }
    (ticks, threads)
}

#[test]
fn a_flusher_waiting_for_tasks_that_do_not_come_back_stays_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    // One task appends now and then: after each flush the flusher waits
    // for it to come back, and it does not (for 20 ms).
    for n in 0..25u64 {
        let r = NewRecord::new("system", "system.test", format!("record {n}"));
        let ids = block_on(log.append_async(&[r])).expect("durable append");
        assert_eq!(ids.ids(), n + 1..n + 2);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (after_appends, threads) = flusher_ticks();
    assert_eq!(threads, 1, "one flusher thread for the log");
    // Then nothing at all.
    std::thread::sleep(Duration::from_millis(500));
    let (after_idle, _) = flusher_ticks();
    // 25 flushes' waits are bounded by GATHER_SPIN_IDLE (100 µs) each and
    // their syncs take microseconds of CPU: a few ticks (10 ms each) at
    // most. A flusher that kept spinning would have burnt ~100 ticks in
    // the 1 s of sleeps.
    assert!(
        after_appends <= 20,
        "the flusher used {after_appends} ticks of CPU for 25 appends"
    );
    assert!(
        after_idle - after_appends <= 5,
        "the idle flusher used {} ticks of CPU in 500 ms",
        after_idle - after_appends
    );
    for id in 1..=25 {
        assert!(log.get(id).expect("read").is_some(), "record {id}");
    }
}
