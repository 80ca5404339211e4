//! A data directory written by the previous format (1) opens with this
//! build: every record is served as it was, the old active segment is
//! sealed and a format-2 segment continues it, the id reservation appears,
//! and the directory verifies clean afterwards.

mod common;

use std::fs;
use std::path::Path;

use actlog_engine::ids::IDS_FILE;
use actlog_engine::segment::{SegmentHeader, FORMAT_VERSION};
use actlog_engine::{inspect, Config, Direction, Log, NewRecord};
use common::files_with_ext;

fn fixture_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1");
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

#[test]
fn a_format_1_directory_opens_and_continues_in_format_2() {
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
    }
    let id = log
        .append_one(&NewRecord::new(
            "system",
            "system.test",
            "after the upgrade",
        ))
        .expect("append");
    assert_eq!(id, 46);
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
