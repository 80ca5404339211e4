//! Injected I/O failures at named fault sites (build with
//! `--features failpoints`). What must hold:
//!
//! * a failed write or fsync is fail-stop: the append that hit it errors,
//!   every concurrent and later append errors with `PreviousIo`, and nothing
//!   is retried;
//! * reopening reads what is really on disk: every acknowledged record is
//!   there, and the batch that failed is entirely present or entirely absent.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::Mutex;

use actlog_engine::{
    Config, Direction, Error, Field, Log, NewRecord, Order, Query, RecoveryReport, Selection,
};
use common::{copy_crash_image, files_with_ext, word_ids};

/// Fault sites are process-global: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn rec(n: usize) -> NewRecord {
    NewRecord::new(
        "system",
        "system.test",
        format!("record {n} {}", "y".repeat(n % 50)),
    )
}

fn config() -> Config {
    Config {
        segment_max_bytes: 2048,
        ..Config::default()
    }
}

/// Appends until a fault fires; returns (acknowledged ids, ids of the failed batch attempt).
/// Batches hold 1–3 records, every 7th 130 (indexed during its flush's
/// fdatasync, see `DEFER_INDEX_MIN_RECORDS`).
fn run_until_failure(log: &Log) -> (Vec<u64>, usize) {
    let mut acked = Vec::new();
    for i in 0..500 {
        let n = if i % 7 == 6 { 130 } else { i % 3 + 1 };
        let batch: Vec<_> = (0..n).map(|j| rec(i * 1000 + j)).collect();
        match log.append(&batch) {
            Ok(ids) => acked.extend(ids),
            Err(e) => {
                assert!(e.is_storage_failure(), "{e}");
                // Fail-stop: the handle refuses everything from now on.
                assert!(log.is_failed());
                for _ in 0..3 {
                    let again = log.append(&[rec(0)]).expect_err("fail-stop");
                    assert!(matches!(again, Error::PreviousIo), "{again}");
                }
                return (acked, batch.len());
            }
        }
    }
    panic!("the fault never fired");
}

fn check_reopen(dir: &std::path::Path, acked: &[u64], failed_batch: usize) -> RecoveryReport {
    let log = Log::open(dir, config()).expect("reopen after a fault");
    let ids: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("readable").id)
        .collect();
    assert_eq!(
        &ids[..acked.len()],
        acked,
        "every acknowledged record survives"
    );
    let extra = ids.len() - acked.len();
    assert!(
        extra == 0 || extra == failed_batch,
        "the failed batch is all or nothing, found {extra} of {failed_batch}"
    );
    let next = log.append_one(&rec(1)).expect("appends work after reopen");
    assert_eq!(next, ids.len() as u64 + 1);
    log.recovery_report().clone()
}

fn with_fault(site: &str, actions: &str) -> RecoveryReport {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    fail::cfg(site, actions).expect("fail cfg");
    let (acked, failed_batch) = run_until_failure(&log);
    fail::remove(site);
    drop(log);
    check_reopen(dir.path(), &acked, failed_batch)
}

#[test]
fn fsync_failure_is_fail_stop() {
    with_fault("segment::sync", "20*off->return");
}

#[test]
fn fsync_failure_of_a_batch_indexed_during_its_flush_is_fail_stop() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    // Batches 0–5 are small (one flush each); batch 6 holds 130 records.
    fail::cfg("segment::sync", "6*off->return").expect("fail cfg");
    let (acked, failed_batch) = run_until_failure(&log);
    fail::remove("segment::sync");
    assert_eq!(failed_batch, 130, "the fault hit the large batch");
    drop(log);
    check_reopen(dir.path(), &acked, failed_batch);
}

#[test]
fn write_failure_is_fail_stop() {
    with_fault("segment::write", "30*off->return");
}

#[test]
fn failure_while_sealing_is_fail_stop() {
    with_fault("segment::seal::before_sync", "2*off->return");
}

#[test]
fn failure_creating_the_next_segment_is_fail_stop() {
    with_fault("segment::roll::before_create", "1*off->return");
}

#[test]
fn failed_rename_leaves_a_temp_file_that_recovery_removes() {
    let report = with_fault("fs::create_durable::before_rename", "return");
    // The index write (derived data, non-fatal) and the next segment's
    // create both stopped before their rename.
    let names: Vec<String> = report
        .removed_temp_files
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".log.tmp")), "{report:?}");
    assert!(names.iter().any(|n| n.ends_with(".idx.tmp")), "{report:?}");
    // The roll never created a successor, so the segment it sealed is still
    // the active one: reopen cuts its trailer like any torn tail and goes on
    // appending to it (no index to rebuild, no new segment).
    let torn = report.torn_tail.as_ref().expect("the seal trailer is cut");
    assert_eq!(torn.records_dropped, 0, "{torn:?}");
    assert!(report.rebuilt_indexes.is_empty(), "{report:?}");
    assert!(!report.created_active, "{report:?}");
}

#[test]
fn concurrent_waiters_all_fail_when_the_leader_fsync_fails() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    fail::cfg("segment::sync", "50*off->return").expect("fail cfg");
    let results: Vec<Vec<Result<Vec<u64>, Error>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                // Until this thread sees the failure: how many syncs the 50
                // good ones cover depends on how the group commit batches.
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..100_000 {
                        let r = log.append(&[rec(t * 100_000 + i)]);
                        let failed = r.is_err();
                        out.push(r);
                        if failed {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    fail::remove("segment::sync");
    let mut acked = Vec::new();
    for per_thread in &results {
        let mut failed = false;
        for r in per_thread {
            match r {
                Ok(ids) => {
                    assert!(
                        !failed,
                        "no append succeeds after one failed on this handle"
                    );
                    acked.extend(ids.iter().copied());
                }
                Err(_) => failed = true,
            }
        }
    }
    assert!(log.is_failed());
    for per_thread in &results {
        assert!(
            per_thread.last().is_some_and(|r| r.is_err()),
            "every thread saw the failure"
        );
    }
    drop(log);
    acked.sort_unstable();
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    for id in &acked {
        assert!(log.get(*id).expect("read").is_some(), "acked id {id} lost");
    }
}

/// Async appenders never lead: the flusher thread's failed fsync must reach
/// every task waiting on it (as an error, never a hang or an ack), and every
/// later async append.
#[test]
fn async_appenders_fail_when_the_flushers_fsync_fails() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    fail::cfg("segment::sync", "5*off->return").expect("fail cfg");
    let mut acked = Vec::new();
    let mut failures = 0;
    for round in 0..50 {
        // 16 futures staged together, then awaited together.
        let futs: Vec<_> = (0..16)
            .map(|i| log.append_async(&[rec(round * 100 + i)]))
            .collect();
        for r in common::block_on_all(futs) {
            match r {
                Ok(appended) => {
                    assert_eq!(failures, 0, "no ack after a failure on this handle");
                    acked.extend(appended.ids());
                }
                Err(e) => {
                    assert!(e.is_storage_failure(), "{e}");
                    failures += 1;
                }
            }
        }
        if failures > 0 {
            break;
        }
    }
    fail::remove("segment::sync");
    assert!(failures > 0, "the fault fired");
    assert!(log.is_failed());
    let later = common::block_on(log.append_async(&[rec(0)])).expect_err("fail-stop");
    assert!(matches!(later, Error::PreviousIo), "{later}");
    drop(log);
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    for id in &acked {
        assert!(log.get(*id).expect("read").is_some(), "acked id {id} lost");
    }
}

/// The active segment is read through a map made ahead of the file's end.
/// `Log::recover` may cut that file; a reader still holding the view from
/// before must then get records or errors, never read a mapped page past the
/// new end (SIGBUS would kill the process). Here the disk "loses" the newer
/// half of the acknowledged records (garbage; zeros right after a frame would
/// read as the preallocated region and not be cut), so recovery cuts inside
/// what the old reader may read.
#[test]
fn recover_cutting_the_active_file_under_an_old_reader_never_faults() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    for b in 0..40 {
        let batch: Vec<_> = (0..10).map(|j| rec(b * 10 + j)).collect();
        log.append(&batch).expect("append");
    }
    let oldest_first = log.iter(0, Direction::Forward);
    let mut newest_first = log.iter(u64::MAX, Direction::Backward);
    fail::cfg("segment::sync", "return").expect("fail cfg");
    log.append(&[rec(0)]).expect_err("the fsync fails");
    fail::remove("segment::sync");
    assert!(log.is_failed());

    let seg = files_with_ext(dir.path(), "log")
        .pop()
        .expect("the active segment");
    // Its acknowledged data ends at `len`; the file goes on with the failed
    // append's frame and preallocated zeros, all overwritten below.
    let len = log.segments().last().expect("the active segment").bytes;
    let file_len = std::fs::metadata(&seg).expect("stat").len();
    let cut = len / 2;
    assert!(
        len - cut > 3 * 4096,
        "the cut spans whole pages ({len} bytes)"
    );
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open segment");
        f.write_all_at(&vec![0xA5u8; (file_len - cut) as usize], cut)
            .expect("overwrite the tail");
        f.sync_all().expect("sync");
    }
    let report = log.recover().expect("recover").expect("was failed");
    let torn = report.torn_tail.expect("recovery cut the damaged tail");
    assert!(torn.offset <= cut, "{torn:?}");
    assert!(std::fs::metadata(&seg).expect("stat").len() <= cut);

    // The newest record's frame lies whole pages past the new end.
    assert!(
        matches!(newest_first.next(), Some(Err(_))),
        "the cut-off newest record reads as an error"
    );
    let mut read = 0;
    let mut errors = 0;
    for r in oldest_first {
        match r {
            Ok(rec) => {
                assert_eq!(errors, 0, "no record after a read error");
                assert_eq!(rec.id, read + 1);
                read += 1;
            }
            Err(_) => errors += 1,
        }
    }
    assert!(read > 0 && errors > 0, "read {read}, errors {errors}");
    let kept: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("recovered log reads").id)
        .collect();
    assert_eq!(kept, (1..=read).collect::<Vec<_>>());
}

/// A segment of at least 4 MiB is sealed without waiting for its index
/// file: readers use its in-memory index until a background thread has
/// written the file. Held at that point (the thread paused), every query
/// answers from memory, the directory as it is on disk is a crash image
/// (no index file) that open repairs, and once the thread runs the file
/// exists and nothing changes for readers.
#[test]
fn a_sealed_segment_serves_from_memory_until_its_index_file_is_written() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || Config {
        segment_max_bytes: 5 << 20,
        ..Config::default()
    };
    let big = |n: usize| {
        let mut r = rec(n);
        r.message = format!("record {n} {}", "m".repeat(900));
        r.entity_id = Some(format!("ent_{}", n % 7));
        let mut m = serde_json::Map::new();
        m.insert("blob".into(), serde_json::Value::String("b".repeat(3900)));
        r.metadata = m;
        r
    };
    let log = Log::open(dir.path(), config()).expect("open");
    /// Lets the paused thread go when dropped, so that a failing assertion
    /// fails instead of hanging in the handle's drop (which joins it).
    struct Unpause;
    impl Drop for Unpause {
        fn drop(&mut self) {
            fail::remove("segment::index::background");
        }
    }
    fail::cfg("segment::index::background", "pause").expect("fail cfg");
    let unpause = Unpause;
    let mut n = 0;
    while log.segments().len() < 2 {
        let batch: Vec<_> = (n..n + 50).map(big).collect();
        log.append(&batch).expect("append");
        n += 50;
    }
    let sealed = log.segments()[0].clone();
    assert!(sealed.sealed && sealed.records > 500, "{sealed:?}");
    let idx = sealed.path.with_extension("idx");
    assert!(!idx.exists(), "the index file waits for the paused thread");

    let answers = |log: &Log| {
        let words: Vec<Vec<u64>> = [0, 1, sealed.records as usize - 1, n - 1]
            .iter()
            .map(|k| word_ids(log, &k.to_string()))
            .collect();
        let ent = log
            .facets(Field::EntityId, &Selection::default(), "ent_", 10)
            .expect("facets");
        let since = log
            .get(sealed.base_id + 3)
            .expect("get")
            .expect("present")
            .ts;
        let until = log.get(n as u64).expect("get").expect("present").ts + 1;
        let hist: Vec<u64> = log
            .histogram(&Selection::default(), 1000, since, until)
            .expect("histogram")
            .iter()
            .map(|b| b.count)
            .collect();
        let from_since: Vec<u64> = log
            .query(&Query {
                selection: Selection {
                    since: Some(since),
                    ..Selection::default()
                },
                order: Order::Asc,
                limit: 3,
                cursor: None,
            })
            .expect("query")
            .items
            .iter()
            .map(|r| r.id)
            .collect();
        (words, ent, hist, from_since)
    };
    let from_memory = answers(&log);
    assert_eq!(
        from_memory.0,
        vec![vec![1], vec![2], vec![sealed.records], vec![n as u64]],
        "each word's one record"
    );
    assert_eq!(from_memory.1.iter().map(|f| f.count).sum::<u64>(), n as u64);

    // A crash now: the files as they are, without the index file.
    let image = tempfile::tempdir().expect("tempdir");
    copy_crash_image(dir.path(), image.path());
    {
        let crashed = Log::open(image.path(), config()).expect("open the crash image");
        let rebuilt: Vec<_> = crashed
            .recovery_report()
            .rebuilt_indexes
            .iter()
            .map(|(p, _)| p.file_name().map(|f| f.to_owned()))
            .collect();
        assert_eq!(rebuilt, vec![idx.file_name().map(|f| f.to_owned())]);
        assert_eq!(answers(&crashed), from_memory);
    }

    drop(unpause);
    log.wait_for_reapers();
    assert!(idx.exists(), "the thread wrote the index file");
    assert_eq!(answers(&log), from_memory);
    drop(log);
    let log = Log::open(dir.path(), config()).expect("reopen");
    assert!(log.recovery_report().rebuilt_indexes.is_empty());
    assert_eq!(answers(&log), from_memory);
}
