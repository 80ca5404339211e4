//! The public `Log` handle: append, read, iterate, roll, lock, validation,
//! and recovery of the on-disk states a crash can leave between steps of a
//! segment roll.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actlog_engine::ids::IDS_FILE;
use actlog_engine::{
    Clock, Config, Direction, Error, Log, NewRecord, Order, Query, Selection, Severity,
};
use common::{files_with_ext, word_ids};

fn rec(n: u64) -> NewRecord {
    let mut r = NewRecord::new(
        "device",
        "device.connected",
        format!("Device {n} connected"),
    );
    r.entity_type = Some("device".into());
    r.entity_id = Some(format!("dev_{n}"));
    r.actor = Some("hub".into());
    r
}

fn small_segments() -> Config {
    Config {
        segment_max_bytes: 1024,
        ..Config::default()
    }
}

fn fill(log: &Log, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| log.append_one(&rec(i)).expect("append"))
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "log")
}

#[test]
fn ids_start_at_one_and_reads_return_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    assert_eq!(log.first_id(), None);
    assert_eq!(log.last_id(), None);
    assert_eq!(log.get(1).expect("get"), None);
    let mut r = rec(7);
    r.severity = Severity::Error;
    r.occurred_at = Some(1_700_000_000_000_000);
    let ids = log.append(&[rec(1), r.clone(), rec(3)]).expect("append");
    assert_eq!(ids, vec![1, 2, 3]);
    let got = log.get(2).expect("get").expect("present");
    assert_eq!(got.message, r.message);
    assert_eq!(got.severity, Severity::Error);
    assert_eq!(got.occurred_at, r.occurred_at);
    assert_eq!(got.actor, "hub");
    assert_eq!(log.get(0).expect("get"), None);
    assert_eq!(log.get(4).expect("get"), None);
    assert_eq!((log.first_id(), log.last_id()), (Some(1), Some(3)));
    assert_eq!(log.append(&[]).expect("empty batch"), Vec::<u64>::new());
}

#[test]
fn iterates_both_ways_from_any_id_across_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_segments()).expect("open");
    let ids = fill(&log, 120);
    let segs = log.segments();
    assert!(segs.len() > 3, "small segments roll: {}", segs.len());
    assert!(segs[..segs.len() - 1].iter().all(|s| s.sealed));
    assert_eq!(segs.iter().map(|s| s.records).sum::<u64>(), 120);
    let check = |log: &Log| {
        for from in [0, 1, 2, 37, 60, 119, 120, 121, u64::MAX] {
            let fwd: Vec<u64> = log
                .iter(from, Direction::Forward)
                .map(|r| r.expect("read").id)
                .collect();
            let want: Vec<u64> = ids.iter().copied().filter(|&i| i >= from).collect();
            assert_eq!(fwd, want, "forward from {from}");
            let back: Vec<u64> = log
                .iter(from, Direction::Backward)
                .map(|r| r.expect("read").id)
                .collect();
            let want: Vec<u64> = ids.iter().rev().copied().filter(|&i| i <= from).collect();
            assert_eq!(back, want, "backward from {from}");
        }
        for &id in &ids {
            let r = log.get(id).expect("get").expect("present");
            assert_eq!(
                r.entity_id.as_deref(),
                Some(format!("dev_{}", id - 1).as_str())
            );
        }
    };
    check(&log);
    log.close().expect("close");
    let log = Log::open(dir.path(), small_segments()).expect("reopen");
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.recovery_report().records, 120);
    check(&log);
    assert_eq!(log.append_one(&rec(0)).expect("append"), 121);
}

#[test]
fn segments_roll_by_age_with_day_granularity() {
    let now = Arc::new(AtomicI64::new(1_767_225_600_000_000));
    let clock_now = now.clone();
    let config = Config {
        segment_max_age: Duration::from_secs(86_400),
        clock: Clock::from_fn(move || clock_now.load(Ordering::SeqCst)),
        ..Config::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config.clone()).expect("open");
    for day in 0..3 {
        for hour in 0..24 {
            now.store(
                1_767_225_600_000_000 + (day * 24 + hour) * 3_600_000_000,
                Ordering::SeqCst,
            );
            log.append_one(&rec(hour as u64)).expect("append");
        }
    }
    let segs = log.segments();
    assert_eq!(segs.len(), 3, "{segs:?}");
    for s in &segs {
        let (a, b) = s.ts_range.expect("records");
        assert!(b - a < 86_400_000_000, "a segment spans less than a day");
        assert_eq!(s.records, 24);
    }
}

#[test]
fn ts_never_goes_backwards_even_when_the_clock_does() {
    let now = Arc::new(AtomicI64::new(5_000_000));
    let clock_now = now.clone();
    let config = Config {
        clock: Clock::from_fn(move || clock_now.load(Ordering::SeqCst)),
        ..Config::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config.clone()).expect("open");
    log.append_one(&rec(1)).expect("append");
    now.store(1_000_000, Ordering::SeqCst);
    log.append_one(&rec(2)).expect("append");
    drop(log);
    // Also across a reopen.
    let log = Log::open(dir.path(), config).expect("reopen");
    log.append_one(&rec(3)).expect("append");
    let ts: Vec<i64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("read").ts)
        .collect();
    assert_eq!(ts, vec![5_000_000; 3]);
}

#[test]
fn an_invalid_record_rejects_the_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    log.append_one(&rec(0)).expect("append");
    let mut bad = rec(2);
    bad.category = "Not A Token".into();
    let err = log.append(&[rec(1), bad, rec(3)]).expect_err("invalid");
    match err {
        Error::Invalid { index, source } => {
            assert_eq!(index, 1);
            assert_eq!(source.field, "category");
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(log.last_id(), Some(1), "nothing of the batch was written");
    assert_eq!(log.append_one(&rec(4)).expect("append"), 2);
}

/// A 1000-record batch: an invalid record anywhere is reported at its own
/// index and nothing is written; a valid one is stored and indexed in order.
#[test]
fn a_large_batch_reports_the_right_invalid_record_and_stores_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    for bad_at in [3usize, 777] {
        let mut batch: Vec<NewRecord> = (0..1000).map(rec).collect();
        batch[bad_at].action = "no dots".into();
        match log.append(&batch).expect_err("invalid") {
            Error::Invalid { index, source } => {
                assert_eq!(index, bad_at);
                assert_eq!(source.field, "action");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(log.last_id(), None, "nothing was written");
    let batch: Vec<NewRecord> = (0..1000).map(rec).collect();
    let ids = log.append(&batch).expect("append");
    assert_eq!(ids, (1..=1000).collect::<Vec<u64>>());
    for (i, id) in [(0u64, 1u64), (499, 500), (500, 501), (999, 1000)] {
        let r = log.get(id).expect("get").expect("present");
        assert_eq!(r.message, format!("Device {i} connected"));
        assert_eq!(word_ids(&log, &i.to_string()), vec![id], "word {i}");
    }
}

/// The active segment is mapped as far as the segment size bound; a first
/// batch larger than the bound (never split: an empty segment takes it
/// whole) puts frames past the map's end, which are read with positioned
/// reads. A page mixing both, `get` on either side, and the same after more
/// appends grow the file into the mapped pages.
#[test]
fn active_frames_past_the_mapped_bound_read_like_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_segments()).expect("open");
    let batch: Vec<NewRecord> = (0..60).map(rec).collect();
    let ids = log
        .append(&batch)
        .expect("one batch, larger than a segment");
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "the batch was not split"
    );
    let page = log
        .query(&Query {
            selection: Selection::default(),
            order: Order::Asc,
            limit: 60,
            cursor: None,
        })
        .expect("query");
    let messages: Vec<String> = page.items.iter().map(|r| r.message.clone()).collect();
    let expect: Vec<String> = (0..60).map(|n| format!("Device {n} connected")).collect();
    assert_eq!(messages, expect);
    for (n, id) in ids.iter().enumerate() {
        let r = log.get(*id).expect("get").expect("present");
        assert_eq!(r.entity_id.as_deref(), Some(format!("dev_{n}").as_str()));
    }
    // The next append rolls; its segment is read through its own map.
    let more = fill(&log, 30);
    for (n, id) in more.iter().enumerate() {
        let r = log.get(*id).expect("get").expect("present");
        assert_eq!(r.message, format!("Device {n} connected"));
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    let err = Log::open(dir.path(), Config::default()).expect_err("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another actlog process"));
    let clone = log.clone();
    drop(log);
    assert!(
        Log::open(dir.path(), Config::default()).is_err(),
        "a clone still holds it"
    );
    drop(clone);
    Log::open(dir.path(), Config::default()).expect("lock released with the last handle");
}

#[test]
fn concurrent_appenders_get_unique_contiguous_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_segments()).expect("open");
    let all: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0..40 {
                        let batch: Vec<_> = (0..(i % 3 + 1)).map(|j| rec(t * 1000 + j)).collect();
                        let got = log.append(&batch).expect("append");
                        assert!(
                            got.windows(2).all(|w| w[1] == w[0] + 1),
                            "batch ids contiguous"
                        );
                        ids.extend(got);
                    }
                    ids
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len());
    assert_eq!(unique, (1..=all.len() as u64).collect());
    drop(log);
    let log = Log::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.last_id(), Some(all.len() as u64));
}

/// A roll that a crash cut short after the seal's fdatasync but before the
/// new segment existed: the sealed file is the newest, and the id
/// reservation is still the one made for it.
fn crash_between_seal_and_create(dir: &Path) -> Vec<PathBuf> {
    let log = Log::open(dir, Config::default()).expect("open");
    fill(&log, 10);
    let ids_before = fs::read(dir.join(IDS_FILE)).expect("reservation");
    log.roll().expect("roll");
    drop(log);
    let files = segment_files(dir);
    assert_eq!(files.len(), 2);
    fs::remove_file(&files[1]).expect("remove new active");
    fs::write(dir.join(IDS_FILE), ids_before).expect("the reservation before the roll");
    files
}

#[test]
fn crash_after_seal_before_new_segment_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    crash_between_seal_and_create(dir.path());
    let log = Log::open(dir.path(), Config::default()).expect("recovers");
    // Only a successor makes a segment sealed: the newest file is active
    // again, its trailer cut as a torn tail.
    let torn = log
        .recovery_report()
        .torn_tail
        .clone()
        .expect("trailer cut");
    assert_eq!(torn.records_dropped, 0);
    assert!(!log.recovery_report().created_active);
    assert_eq!(log.last_id(), Some(10));
    assert_eq!(log.append_one(&rec(0)).expect("append"), 11);
    assert_eq!(log.iter(0, Direction::Forward).count(), 11);
    assert_eq!(log.segments().len(), 1);
}

#[test]
fn a_torn_seal_footer_reverts_the_segment_to_active() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = crash_between_seal_and_create(dir.path());
    // The footer write was torn: cut part of it off.
    let len = fs::metadata(&files[0]).expect("stat").len();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .expect("open");
    f.set_len(len - 7).expect("truncate");
    drop(f);
    let log = Log::open(dir.path(), Config::default()).expect("recovers");
    let torn = log
        .recovery_report()
        .torn_tail
        .clone()
        .expect("torn footer is a torn tail");
    assert_eq!(torn.records_dropped, 0);
    assert_eq!(log.last_id(), Some(10));
    assert_eq!(log.append_one(&rec(0)).expect("append"), 11);
    assert_eq!(log.segments().len(), 1);
}

#[test]
fn leftover_temp_files_are_removed_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    fill(&log, 3);
    drop(log);
    let tmp = dir.path().join("seg-00000000000000000004.log.tmp");
    fs::write(&tmp, b"half a header").expect("write");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    assert_eq!(log.recovery_report().removed_temp_files, vec![tmp.clone()]);
    assert!(!tmp.exists());
    assert_eq!(log.last_id(), Some(3));
}

#[test]
fn damage_in_a_sealed_segment_is_a_hard_error_never_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_segments()).expect("open");
    fill(&log, 60);
    let segs = log.segments();
    drop(log);
    let first = &segs[0];
    assert!(first.sealed);
    let bytes = fs::read(&first.path).expect("read");

    // A flipped byte inside a record: open trusts the footer, the read fails loudly.
    let mut flipped = bytes.clone();
    flipped[100] ^= 0x01;
    fs::write(&first.path, &flipped).expect("write");
    let log = Log::open(dir.path(), small_segments()).expect("footer is intact");
    let results: Vec<_> = log.iter(0, Direction::Forward).collect();
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("the damaged record is reported, not skipped");
    match err {
        Error::Corruption { file, offset, .. } => {
            assert_eq!(file, &first.path);
            assert!(*offset <= 100);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        results.last().expect("items").is_err(),
        "iteration stops at the damage"
    );
    // Scans (positioned reads) and pages (the map) report it the same way.
    for err in [
        log.scan(Selection::default(), Order::Asc)
            .find_map(Result::err)
            .expect("the scan reports the damage"),
        log.query(&Query {
            order: Order::Asc,
            ..Query::default()
        })
        .expect_err("the page reports the damage"),
    ] {
        assert!(
            matches!(&err, Error::Corruption { file, offset, .. } if file == &first.path && *offset <= 100),
            "{err}"
        );
    }
    drop(log);

    // A damaged footer on a segment with newer ones behind it: refuse to open.
    let mut footer = bytes.clone();
    let n = footer.len();
    footer[n - 20] ^= 0x01;
    fs::write(&first.path, &footer).expect("write");
    let err = Log::open(dir.path(), small_segments()).expect_err("refused");
    assert!(
        matches!(&err, Error::Corruption { file, .. } if file == &first.path),
        "{err}"
    );
    assert_eq!(
        fs::read(&first.path).expect("read"),
        footer,
        "nothing modified"
    );
}

#[test]
fn a_missing_segment_is_an_id_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_segments()).expect("open");
    fill(&log, 60);
    drop(log);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    fs::remove_file(&files[1]).expect("remove");
    let err = Log::open(dir.path(), small_segments()).expect_err("gap");
    assert!(err.to_string().contains("id gap"), "{err}");
}

#[test]
fn bad_config_is_rejected_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Log::open(
        dir.path(),
        Config {
            segment_max_bytes: 10,
            ..Config::default()
        },
    )
    .expect_err("too small");
    assert!(err.to_string().contains("segment_max_bytes"), "{err}");
}

/// Regression: a read-only open (what `actlog-inspect dump` and `stat` use on
/// a live directory) once tried to cut a torn tail like a writer does. It must
/// read around it and leave every byte alone, even while a writer holds the lock.
#[test]
fn read_only_open_never_modifies_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    fill(&log, 5);
    let active = log.segments().pop().expect("active").path;
    drop(log);
    let mut bytes = fs::read(&active).expect("read");
    bytes.extend_from_slice(b"half a frame of garbage....");
    fs::write(&active, &bytes).expect("write");
    let writer = Log::open(dir.path(), Config::default());
    // The writer's own open cuts the tail; undo that to keep a torn file while it holds the lock.
    drop(writer);
    fs::write(&active, &bytes).expect("write");
    let holder = fs::OpenOptions::new()
        .read(true)
        .open(dir.path().join(actlog_engine::LOCK_FILE))
        .expect("lock file");
    holder.lock().expect("lock, as a running server would");
    let ro = Log::open_read_only(dir.path(), Config::default()).expect("read-only open");
    assert!(ro.recovery_report().torn_tail.is_some());
    assert_eq!(ro.iter(0, Direction::Forward).count(), 5);
    assert!(matches!(ro.append_one(&rec(9)), Err(Error::ReadOnly)));
    assert_eq!(
        fs::read(&active).expect("read"),
        bytes,
        "not a byte changed"
    );
}

fn index_answers(log: &Log) -> Vec<String> {
    use actlog_engine::{Field, Order, Selection};
    let mut out = Vec::new();
    for f in Field::ALL {
        out.push(format!(
            "{:?}",
            log.facets(f, &Selection::default(), "", 1000)
                .expect("facets")
        ));
    }
    for q in ["device", "connected", "dev*", "hub"] {
        let ids: Vec<u64> = log
            .scan(Selection::default().with_words(q), Order::Asc)
            .map(|r| r.expect("scan").id)
            .collect();
        out.push(format!("{q}: {ids:?}"));
    }
    out
}

#[test]
fn a_clean_close_saves_the_active_index_and_open_trusts_it_only_when_it_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    fill(&log, 40);
    log.close().expect("close");
    let snap = files_with_ext(dir.path(), "aidx")
        .pop()
        .expect("a snapshot after a clean close");
    let old = fs::read(&snap).expect("read snapshot");

    // Used in full, then gone.
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(log.recovery_report().active_index_snapshot, Some(40));
    assert!(!snap.exists(), "a snapshot is used once");
    let full = index_answers(&log);
    fill(&log, 25);
    let after = index_answers(&log);
    drop(log);

    // An older snapshot covers a prefix: the tail is re-indexed.
    fs::write(&snap, &old).expect("restore old snapshot");
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(log.recovery_report().active_index_snapshot, Some(40));
    assert_eq!(index_answers(&log), after);
    drop(log);

    // A damaged one is ignored, and the answers are still right.
    let mut bad = old.clone();
    bad[7] ^= 0x01;
    fs::write(&snap, &bad).expect("write");
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(log.recovery_report().active_index_snapshot, None);
    assert!(log.recovery_report().snapshot_ignored.is_some());
    assert_eq!(index_answers(&log), after);
    drop(log);

    // One that does not match the segment's bytes is ignored too.
    let fresh = tempfile::tempdir().expect("tempdir");
    let other = Log::open(fresh.path(), Config::default()).expect("open");
    for i in 0..40 {
        let mut r = rec(i);
        r.message = format!("something else {i}");
        other.append_one(&r).expect("append");
    }
    drop(other);
    let foreign = files_with_ext(fresh.path(), "aidx")
        .pop()
        .expect("snapshot");
    fs::copy(&foreign, &snap).expect("copy");
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(log.recovery_report().active_index_snapshot, None);
    assert_eq!(index_answers(&log), after);
    assert_ne!(full, after);
}

/// Readers of the segment list and stats run beside appenders that stage
/// (holding `state`, waiting for the active table), leaders that flush
/// (holding `io`, then taking `state`) and rolls: no lock cycle. A reader
/// that held the active table while waiting for `io` closed one, and the
/// server's /metrics hung under ingest.
#[test]
fn segment_listing_during_appends_and_rolls_never_deadlocks() {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        Config {
            segment_max_bytes: 64 << 10,
            ..Config::default()
        },
    )
    .expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for t in 0..3u64 {
        let log = log.clone();
        let done = done_tx.clone();
        threads.push(std::thread::spawn(move || {
            for round in 0..60u64 {
                let n = if (round + t) % 4 == 0 {
                    150
                } else {
                    1 + (round % 3) as usize
                };
                let batch: Vec<NewRecord> = (0..n)
                    .map(|i| {
                        NewRecord::new("entity", "entity.updated", format!("t{t} r{round} i{i}"))
                    })
                    .collect();
                log.append(&batch).expect("append");
            }
            done.send(()).expect("report");
        }));
    }
    let reader = {
        let log = log.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut listed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                listed += log.segments().len() as u64;
                let _ = log.stats();
            }
            listed
        })
    };
    for _ in 0..3 {
        // Generous: the appends take well under a second; only a lock cycle
        // takes this long.
        done_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("appenders finish (a timeout here is a deadlock)");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    for t in threads {
        t.join().expect("appender");
    }
    assert!(log.segments().len() > 2, "rolls happened");
}

/// With more than 16 MiB of sealed segments, open loads their indexes on a
/// second thread while it recovers the active segment. That path must report
/// and repair exactly what the sequential one does: a deleted index file
/// rebuilt, a torn tail cut, the active segment re-indexed (no saved index
/// after a crash), every record and word query intact.
#[test]
fn a_large_log_recovers_a_crash_with_indexes_loaded_beside_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || Config {
        segment_max_bytes: 4 << 20,
        ..Config::default()
    };
    let big = |n: u64| {
        let mut r = rec(n);
        r.message = format!("Device {n} connected {}", "x".repeat(900));
        let mut m = serde_json::Map::new();
        m.insert("blob".into(), serde_json::Value::String("b".repeat(3900)));
        r.metadata = m;
        r
    };
    let total = 4400u64;
    // Where the active segment's data ends (preallocated zeros follow).
    let data_end = {
        let log = Log::open(dir.path(), config()).expect("open");
        for start in (0..total).step_by(100) {
            let batch: Vec<NewRecord> = (start..start + 100).map(big).collect();
            log.append(&batch).expect("append");
        }
        log.segments().last().expect("active").bytes
    };
    let segs = segment_files(dir.path());
    let sealed_bytes: u64 = segs[..segs.len() - 1]
        .iter()
        .map(|p| fs::metadata(p).expect("stat").len())
        .sum();
    assert!(sealed_bytes >= 16 << 20, "{sealed_bytes} bytes sealed");
    // The crash: no saved active index, a torn write at the tail, and an
    // index file lost.
    let active = segs.last().expect("active").clone();
    fs::remove_file(active.with_extension("aidx")).expect("a clean close saved the active index");
    let lost_index = segs[1].with_extension("idx");
    fs::remove_file(&lost_index).expect("remove an index file");
    let file_len = {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .expect("open active");
        f.write_all_at(&[0xab; 300], data_end).expect("torn bytes");
        f.metadata().expect("stat").len()
    };

    let log = Log::open(dir.path(), config()).expect("recover");
    let report = log.recovery_report();
    assert_eq!(report.active_index_snapshot, None, "{report:?}");
    // The torn bytes and the zeros after them are cut.
    assert_eq!(
        report
            .torn_tail
            .as_ref()
            .map(|t| (t.offset, t.bytes_dropped)),
        Some((data_end, file_len - data_end))
    );
    let rebuilt: Vec<&Path> = report
        .rebuilt_indexes
        .iter()
        .map(|(p, _)| p.as_path())
        .collect();
    assert_eq!(rebuilt, vec![lost_index.as_path()]);
    assert!(lost_index.exists(), "the rebuilt index was written");
    assert_eq!(log.last_id(), Some(total));
    for n in [0, 1234, 2500, total - 1] {
        assert_eq!(word_ids(&log, &n.to_string()), vec![n + 1], "word {n}");
        let r = log.get(n + 1).expect("get").expect("present");
        assert_eq!(r.message, big(n).message);
    }
}
