//! No id is ever handed out twice, and no acknowledged record is lost, on
//! the paths that start a new active segment at open (a format upgrade, a
//! skip past reserved ids) and around recorded id gaps. Each test here was a
//! reproduction of a break found by an adversarial review of format 2
//! (2026-12-06) and failed before its fix.

use std::fs;
use std::path::Path;

use actlog_engine::ids::{Reservation, IDS_FILE, RESTORED};
use actlog_engine::segment::{segment_path, SegmentHeader};
use actlog_engine::{Config, Direction, Log, NewRecord};

fn rec(i: u64) -> NewRecord {
    NewRecord::new("system", "system.test", format!("record {i}"))
}

fn ids_of(log: &Log) -> Vec<u64> {
    log.iter(0, Direction::Forward)
        .map(|r| r.expect("read").id)
        .collect()
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A format-1 directory whose active segment is empty (a v1 server that was
/// never written to, or the state right after any v1 roll / clear) is
/// upgraded: open seals the empty v1 segment and creates the v2 successor at
/// the SAME base id (`next = end = base`), renaming it over the sealed file.
/// The view then holds an empty sealed segment and the active one under one
/// path; retention (even with no bound) dooms the empty sealed one
/// (`end_id <= low`) and its drop unlinks the ACTIVE file.
#[test]
fn an_empty_format_1_active_segment_is_replaced_not_sealed_under_its_successor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let mut h = SegmentHeader::new(1, 1_000);
    h.version = 1;
    fs::write(segment_path(dir, 1), h.encode()).expect("v1 segment");

    let log = Log::open(dir, Config::default()).expect("open v1");
    eprintln!("report: {:?}", log.recovery_report());
    eprintln!("segments after open: {:?}", log.segments());
    let ids = log.append(&[rec(1), rec(2), rec(3)]).expect("append");
    assert_eq!(ids, vec![1, 2, 3]);
    // Retention with no bounds at all: should be a no-op.
    let out = log.enforce_retention().expect("retention");
    eprintln!("retention: {out:?}");
    log.wait_for_reapers();
    let more = log.append(&[rec(4)]).expect("append after retention");
    eprintln!("acked ids {ids:?} {more:?}; files now {:?}", list(dir));
    log.close().expect("close");

    let log = Log::open(dir, Config::default()).expect("reopen");
    let got = ids_of(&log);
    eprintln!("after reopen: {got:?}, report {:?}", log.recovery_report());
    assert_eq!(got, vec![1, 2, 3, 4], "acknowledged records lost");
}

/// Same defect through the version-2 path: a crash in the `active_base >
/// newest` branch after the successor segment (at `limit`) is durable but
/// before its reservation is written. The reopen sees an EMPTY newest
/// segment at `limit` and IDS still `(RESTORED, limit)`: it seals the empty
/// segment and creates a new one at the same base.
#[test]
fn a_crash_before_the_reservation_after_a_skip_keeps_every_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    {
        let log = Log::open(dir, Config::default()).expect("open");
        log.append(&[rec(1), rec(2)]).expect("append");
        log.close().expect("close");
    }
    // A restore marks the directory (here, floor 100).
    actlog_engine::ids::mark_restored(dir, 100).expect("mark");
    let limit = {
        let b = fs::read(dir.join(IDS_FILE)).expect("ids");
        Reservation::decode(&b, &dir.join(IDS_FILE))
            .expect("r")
            .limit
    };
    {
        let log = Log::open(dir, Config::default()).expect("open after restore");
        eprintln!("report: {:?}", log.recovery_report().lost_ids);
        log.close().expect("close");
    }
    // Crash image: everything but the IDS rename (the last step) is there.
    let r = Reservation {
        active_base: RESTORED,
        limit,
    };
    fs::write(dir.join(IDS_FILE), r.encode()).expect("ids back");
    eprintln!("crash state: {:?}", list(dir));

    let log = Log::open(dir, Config::default()).expect("reopen the crash state");
    eprintln!("report: {:?}", log.recovery_report());
    eprintln!("segments: {:?}", log.segments());
    let acked = log.append(&[rec(10), rec(11)]).expect("append");
    // Keep the newest 2 records: drops the restored segment (ids 1, 2) and
    // must keep the two just acknowledged.
    log.set_retention(actlog_engine::Retention {
        max_days: None,
        max_entries: Some(2),
    })
    .expect("set retention");
    let _ = log.enforce_retention().expect("retention");
    log.wait_for_reapers();
    log.close().expect("close");
    eprintln!("files: {:?}", list(dir));

    let log = Log::open(dir, Config::default()).expect("reopen");
    let got = ids_of(&log);
    eprintln!("after reopen: {got:?} report {:?}", log.recovery_report());
    for id in &acked {
        assert!(got.contains(id), "acknowledged id {id} lost: {got:?}");
    }
}

/// After a restore (or repair) the log continues past a recorded gap
/// `[end, limit)` (marker `quarantine/seg-<end>.missing`). A `max_entries`
/// retention bound larger than what the new active segment holds puts the
/// watermark INSIDE the gap; the segment before the gap is dropped. The
/// next open checks the oldest segment against the watermark and looks for
/// a marker at the watermark, not at the gap's start: it refuses a
/// directory the engine itself produced without any crash.
#[test]
fn retention_after_a_recorded_gap_keeps_the_log_openable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    {
        let log = Log::open(dir, Config::default()).expect("open");
        log.append(&[rec(1), rec(2), rec(3)]).expect("append");
        log.close().expect("close");
    }
    actlog_engine::ids::mark_restored(dir, 0).expect("mark restored");
    let acked;
    {
        let log = Log::open(dir, Config::default()).expect("open after restore");
        eprintln!("lost ids: {:?}", log.recovery_report().lost_ids);
        acked = log.append(&[rec(10), rec(11)]).expect("append");
        log.set_retention(actlog_engine::Retention {
            max_days: None,
            max_entries: Some(5),
        })
        .expect("retention");
        let out = log.enforce_retention().expect("enforce");
        eprintln!("retention: {out:?}");
        log.wait_for_reapers();
        log.close().expect("close");
    }
    eprintln!("files: {:?}", list(dir));
    let log = Log::open(dir, Config::default()).expect("a directory the engine produced opens");
    let got = ids_of(&log);
    // `max_entries = 5` keeps the five newest records; the ids of the gap
    // are no records, so the watermark never lands inside it.
    let mut want = vec![1, 2, 3];
    want.extend(acked);
    assert_eq!(got, want);
}

/// `max_entries` counts ids, and after a restore or repair the skipped ids
/// (up to ~2.8 M with the default segment size) count as entries: a bound
/// of 1,000 newest records hides, and at the next enforcement deletes,
/// every restored record although the log holds only 4.
#[test]
fn max_entries_counts_records_not_the_ids_of_a_gap() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let restored = {
        let log = Log::open(dir, Config::default()).expect("open");
        let ids = log.append(&[rec(1), rec(2), rec(3)]).expect("append");
        log.close().expect("close");
        ids
    };
    actlog_engine::ids::mark_restored(dir, 0).expect("mark restored");
    let log = Log::open(dir, Config::default()).expect("open after restore");
    let new = log.append(&[rec(10)]).expect("append");
    log.set_retention(actlog_engine::Retention {
        max_days: None,
        max_entries: Some(1000),
    })
    .expect("retention");
    let out = log.enforce_retention().expect("enforce");
    eprintln!("retention: {out:?}");
    let got = ids_of(&log);
    let mut want = restored.clone();
    want.extend(new);
    assert_eq!(got, want, "4 records, a bound of 1000: nothing should go");
}
