//! Data directories written by earlier formats (1 and 2) open with this
//! build: every record is served as it was (with no `recorded_by`), the old
//! active segment is sealed and a segment of the current format continues
//! it, the id reservation appears, records appended afterwards carry their
//! `recorded_by`, and the directory verifies clean afterwards.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use actlog_engine::ids::IDS_FILE;
use actlog_engine::segment::{SegmentHeader, FORMAT_VERSION};
use actlog_engine::{inspect, Config, Direction, Error, Field, Log, NewRecord, Order, Selection};
use common::files_with_ext;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_copy() -> tempfile::TempDir {
    copy_of("format-1")
}

fn copy_of(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = fixture(name);
    for e in fs::read_dir(&src).expect("fixture") {
        let e = e.expect("entry");
        fs::copy(e.path(), tmp.path().join(e.file_name())).expect("copy fixture file");
    }
    tmp
}

fn version_of(path: &Path) -> u16 {
    let bytes = fs::read(path).expect("read segment");
    SegmentHeader::decode(&bytes, path).expect("header").version
}

/// A record as the server appends it: `recorded_by` set.
fn by(key: &str, message: &str) -> NewRecord {
    NewRecord {
        recorded_by: Some(key.into()),
        ..NewRecord::new("system", "system.test", message)
    }
}

/// The ids of the records `recorded_by` one of `keys`, oldest first.
fn recorded_by(log: &Log, keys: &[&str]) -> Vec<u64> {
    let mut sel = Selection::default();
    for k in keys {
        sel = sel.with(Field::RecordedBy, *k);
    }
    log.scan(sel, Order::Asc)
        .map(|r| r.expect("scan").id)
        .collect()
}

fn recorded_by_facets(log: &Log) -> Vec<(String, u64)> {
    log.facets(Field::RecordedBy, &Selection::default(), "", 10)
        .expect("facets")
        .into_iter()
        .map(|f| (f.value, f.count))
        .collect()
}

#[test]
fn a_format_1_directory_opens_and_continues_in_the_current_format() {
    let dir = fixture_copy();
    let before = files_with_ext(dir.path(), "log");
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|p| version_of(p) == 1));
    assert!(!dir.path().join(IDS_FILE).exists());

    let log = Log::open(dir.path(), Config::default()).expect("a format-1 directory opens");
    let report = log.recovery_report().clone();
    assert_eq!(
        report.sealed_on_open.as_deref(),
        Some(before[2].as_path()),
        "{report:?}"
    );
    assert_eq!(report.lost_ids, None);
    // The watermark of 9 hides ids 1..=8; 9..=45 are served as written.
    let records: Vec<_> = log
        .iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("read all");
    assert_eq!(
        records.iter().map(|r| r.id).collect::<Vec<_>>(),
        (9..=45).collect::<Vec<u64>>()
    );
    for r in &records {
        assert_eq!(
            r.message,
            format!("record number {} of the format-1 fixture", r.id)
        );
        assert_eq!(r.actor, format!("user{}", r.id % 3));
        assert_eq!(r.metadata.get("n"), Some(&serde_json::Value::from(r.id)));
        assert_eq!(r.recorded_by, None, "stored before the field existed");
    }
    let id = log
        .append_one(&by("key_0a1b2c3d4e5f", "after the upgrade"))
        .expect("append");
    assert_eq!(id, 46);
    assert_eq!(
        log.get(46).expect("get").and_then(|r| r.recorded_by),
        Some("key_0a1b2c3d4e5f".into())
    );
    assert_eq!(recorded_by(&log, &["key_0a1b2c3d4e5f"]), [46]);
    log.close().expect("close");

    let after = files_with_ext(dir.path(), "log");
    assert_eq!(after.len(), 4);
    assert_eq!(version_of(&after[3]), FORMAT_VERSION);
    assert!(dir.path().join(IDS_FILE).exists());
    let st = inspect::verify(dir.path(), &mut |_| {}).expect("verify");
    assert!(!st.damaged(), "{:?}", st.findings);

    // And it opens again, the new segment still active.
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert!(log.recovery_report().sealed_on_open.is_none());
    assert_eq!(log.last_id(), Some(46));
    assert_eq!(log.get(45).expect("get").map(|r| r.id), Some(45));
    assert_eq!(log.get(45).expect("get").and_then(|r| r.recorded_by), None);
    assert_eq!(recorded_by(&log, &["key_0a1b2c3d4e5f"]), [46]);
}

/// A format-2 directory, closed cleanly (so with its active-index snapshot):
/// its ten-element records read with `recorded_by` `None`, its index files
/// are used as they are (a format-2 segment's records have no `recorded_by`,
/// so its index is exactly what this build would write: nothing is rebuilt),
/// its active segment is sealed — format-2 readers must never meet an
/// eleven-element payload in a segment they accept — and records appended
/// after it carry their provenance, indexed, in a format-3 segment.
#[test]
fn a_format_2_directory_opens_and_continues_with_recorded_by() {
    let dir = copy_of("format-2");
    let before = files_with_ext(dir.path(), "log");
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|p| version_of(p) == 2));
    assert_eq!(files_with_ext(dir.path(), "aidx").len(), 1);
    let old_indexes: Vec<(PathBuf, Vec<u8>)> = files_with_ext(dir.path(), "idx")
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).expect("read index");
            (p, bytes)
        })
        .collect();
    assert_eq!(old_indexes.len(), 2);

    let log = Log::open(dir.path(), Config::default()).expect("a format-2 directory opens");
    let report = log.recovery_report().clone();
    assert_eq!(
        report.sealed_on_open.as_deref(),
        Some(before[2].as_path()),
        "{report:?}"
    );
    assert!(report.rebuilt_indexes.is_empty(), "{report:?}");
    assert_eq!(report.lost_ids, None);
    // The watermark of 11 hides ids 1..=10.
    let records: Vec<_> = log
        .iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("read all");
    assert_eq!(
        records.iter().map(|r| r.id).collect::<Vec<_>>(),
        (11..=45).collect::<Vec<u64>>()
    );
    for r in &records {
        assert_eq!(
            r.message,
            format!("record number {} of the format-2 fixture", r.id)
        );
        assert_eq!(r.actor, format!("user{}", r.id % 3));
        assert_eq!(r.entity_id, Some(format!("scn_{}", r.id % 5)));
        assert_eq!(r.recorded_by, None);
    }
    // The old indexes answer as before; nothing is recorded by anyone yet.
    let by_entity = log
        .scan(
            Selection::default().with(Field::EntityId, "scn_2"),
            Order::Asc,
        )
        .map(|r| r.expect("scan").id)
        .collect::<Vec<_>>();
    assert_eq!(by_entity, [12, 17, 22, 27, 32, 37, 42]);
    assert!(recorded_by_facets(&log).is_empty());
    assert!(recorded_by(&log, &["server"]).is_empty());

    let ids = log
        .append(&[
            by("key_0a1b2c3d4e5f", "a writer's record"),
            by("server", "the server's record"),
            by("key_0a1b2c3d4e5f", "another"),
        ])
        .expect("append");
    assert_eq!(ids, [46, 47, 48]);
    assert_eq!(recorded_by(&log, &["key_0a1b2c3d4e5f"]), [46, 48]);
    assert_eq!(
        recorded_by(&log, &["server", "key_0a1b2c3d4e5f"]),
        [46, 47, 48]
    );
    assert_eq!(
        recorded_by_facets(&log),
        [
            ("key_0a1b2c3d4e5f".to_string(), 2),
            ("server".to_string(), 1)
        ]
    );
    log.close().expect("close");

    let after = files_with_ext(dir.path(), "log");
    assert_eq!(after.len(), 4);
    assert_eq!(version_of(&after[2]), 2, "the old active segment, sealed");
    assert_eq!(version_of(&after[3]), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 3);
    for (path, bytes) in &old_indexes {
        assert_eq!(&fs::read(path).expect("read index"), bytes, "{path:?}");
    }
    // The sealed segments' index files, old and new, match what this build
    // makes of their records (verify rebuilds each and compares bytes).
    let st = inspect::verify(dir.path(), &mut |_| {}).expect("verify");
    assert!(!st.damaged(), "{:?}", st.findings);

    // Reopened: the provenance survives (read from the frames, and from the
    // active segment's index rebuilt or restored from its snapshot).
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert!(log.recovery_report().sealed_on_open.is_none());
    assert_eq!(
        log.get(47).expect("get").and_then(|r| r.recorded_by),
        Some("server".into())
    );
    assert_eq!(log.get(45).expect("get").and_then(|r| r.recorded_by), None);
    assert_eq!(recorded_by(&log, &["server"]), [47]);
    // Rolled and reopened: the new segment's sealed index answers too.
    log.roll().expect("roll");
    drop(log);
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(recorded_by(&log, &["key_0a1b2c3d4e5f"]), [46, 48]);
    assert_eq!(recorded_by_facets(&log).len(), 2);
}

#[test]
fn a_format_2_directory_opens_read_only_without_changes() {
    let dir = copy_of("format-2");
    let log = Log::open_read_only(dir.path(), Config::default()).expect("read-only open");
    assert_eq!(log.iter(0, Direction::Forward).count(), 35);
    assert!(log
        .iter(0, Direction::Forward)
        .all(|r| r.expect("read").recorded_by.is_none()));
    drop(log);
    let logs = files_with_ext(dir.path(), "log");
    assert_eq!(logs.len(), 3);
    assert!(logs.iter().all(|p| version_of(p) == 2));
}

/// A segment of a format newer than this build's is refused by name, not
/// read as damage (what a format-2 build does with this build's files).
#[test]
fn a_newer_segment_format_is_refused_saying_which() {
    let dir = copy_of("format-2");
    let newest = files_with_ext(dir.path(), "log").pop().expect("a segment");
    let mut bytes = fs::read(&newest).expect("read");
    let mut header = SegmentHeader::decode(&bytes, &newest).expect("header");
    header.version = FORMAT_VERSION + 1;
    bytes[..32].copy_from_slice(&header.encode());
    fs::write(&newest, &bytes).expect("write");
    match Log::open(dir.path(), Config::default()) {
        Err(Error::UnsupportedVersion { found, .. }) => assert_eq!(found, FORMAT_VERSION + 1),
        other => panic!("not refused by version: {:?}", other.map(drop)),
    }
}

#[test]
fn a_format_1_directory_opens_read_only_without_changes() {
    let dir = fixture_copy();
    let log = Log::open_read_only(dir.path(), Config::default()).expect("read-only open");
    assert_eq!(log.iter(0, Direction::Forward).count(), 37);
    drop(log);
    assert_eq!(files_with_ext(dir.path(), "log").len(), 3);
    assert!(!dir.path().join(IDS_FILE).exists());
}
