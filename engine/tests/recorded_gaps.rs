//! A gap recorded in `quarantine/` excuses only the ids it covers: an old
//! marker (ids 1..10 lost long ago, retention since moved past them) does
//! not excuse a later missing oldest segment. Reproduction from a second
//! adversarial review (2026-12-06); failed before gaps were checked against
//! their recorded end.
use std::fs;
use std::path::Path;

use actlog_engine::{Config, Direction, Error, Log, NewRecord, Retention};

fn plain(i: u64) -> NewRecord {
    NewRecord::new("system", "system.test", format!("record {i}"))
}

fn build(dir: &Path) -> Vec<u64> {
    let log = Log::open(dir, Config::default()).expect("test step");
    let mut acked = vec![];
    for r in 0..4 {
        for i in 0..10 {
            acked.push(log.append_one(&plain(i)).expect("test step"));
        }
        if r < 3 {
            log.roll().expect("test step");
        }
    }
    log.set_retention(Retention {
        max_days: None,
        max_entries: Some(15),
    })
    .expect("test step");
    let out = log.enforce_retention().expect("test step");
    eprintln!("retention {out:?}");
    log.wait_for_reapers();
    let visible: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("test step").id)
        .collect();
    log.close().expect("test step");
    visible
}

fn case(stale_marker: bool) {
    let tmp = tempfile::tempdir().expect("test step");
    let dir = tmp.path();
    let visible = build(dir);
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("test step")
        .map(|e| {
            e.expect("test step")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    eprintln!("visible {visible:?}\nfiles {names:?}");
    if stale_marker {
        // An old gap, ids 1..=10, recorded long ago; retention has since
        // moved past it.
        fs::create_dir_all(dir.join("quarantine")).expect("test step");
        fs::write(
            dir.join("quarantine/seg-00000000000000000001.missing"),
            format!(
                "Records 1..10 were lost.\n{}11\n",
                actlog_engine::MISSING_UNTIL
            ),
        )
        .expect("test step");
    }
    // The oldest remaining segment (holding visible acknowledged records) goes missing.
    let oldest = names
        .iter()
        .find(|n| n.ends_with(".log"))
        .expect("test step")
        .clone();
    let stem = oldest.strip_suffix(".log").expect("test step");
    for n in &names {
        if n.starts_with(stem) {
            fs::remove_file(dir.join(n)).expect("test step");
        }
    }
    match Log::open(dir, Config::default()) {
        Err(Error::Corruption { .. }) => {}
        Err(e) => panic!("unexpected {e}"),
        Ok(log) => {
            let got: Vec<u64> = log
                .iter(0, Direction::Forward)
                .map(|r| r.expect("test step").id)
                .collect();
            panic!("missing oldest segment {oldest} accepted: visible before {visible:?}, served now {got:?}, quarantined_gaps {:?}", log.recovery_report().quarantined_gaps);
        }
    }
}

#[test]
fn an_old_recorded_gap_does_not_excuse_a_later_missing_segment() {
    case(true);
}
#[test]
fn a_missing_oldest_segment_is_refused() {
    case(false);
}
