//! A problem in derived or peripheral data never blocks the log: an index
//! that cannot be rewritten serves from memory, a damaged frame header in
//! the segment where a `max_days` bound falls does not fail every read, and
//! recovery leaves other writers' temporary files alone.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actlog_engine::env::sim::SimFs;
use actlog_engine::env::{FileSystem, Fs};
use actlog_engine::{index_path, Clock, Config, Direction, Log, NewRecord, Retention, DAY_US};

fn rec(i: usize) -> NewRecord {
    NewRecord::new(
        "entity",
        "entity.updated",
        format!("record {i} {}", "z".repeat(i % 40)),
    )
}

#[test]
fn an_index_that_cannot_be_rewritten_serves_from_memory() {
    let sim = SimFs::new();
    let config = || Config {
        segment_max_bytes: 2048,
        fs: Fs::new(sim.clone()),
        ..Config::default()
    };
    let dir = Path::new("/data");
    let log = Log::open(dir, config()).expect("open");
    for i in 0..60 {
        log.append_one(&rec(i)).expect("append");
    }
    let sealed = log
        .segments()
        .into_iter()
        .find(|s| s.sealed)
        .expect("a sealed segment");
    log.close().expect("close");
    sim.remove_file(&index_path(&sealed.path))
        .expect("remove an index file");
    // No room for the rebuilt index file: the log opens all the same.
    sim.set_disk_full(true);
    let log = Log::open(dir, config()).expect("a missing index never blocks the open");
    let rebuilt = &log.recovery_report().rebuilt_indexes;
    assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
    assert!(rebuilt[0].1.contains("in memory only"), "{rebuilt:?}");
    assert_eq!(log.iter(0, Direction::Forward).count(), 60);
    let words = log
        .query(&actlog_engine::Query {
            selection: actlog_engine::Selection::default().with_words("record"),
            limit: 100,
            ..Default::default()
        })
        .expect("an indexed query");
    assert_eq!(words.items.len(), 60);
    drop(log);
    // With room again, the next open writes it.
    sim.set_disk_full(false);
    let log = Log::open(dir, config()).expect("open");
    assert_eq!(log.recovery_report().rebuilt_indexes.len(), 1);
    drop(log);
    let log = Log::open(dir, config()).expect("open");
    assert!(log.recovery_report().rebuilt_indexes.is_empty());
}

#[test]
fn a_damaged_frame_at_the_retention_bound_does_not_fail_every_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = Arc::new(AtomicI64::new(1_767_225_600_000_000));
    let clock = now.clone();
    let config = || {
        let clock = clock.clone();
        Config {
            segment_max_bytes: 2048,
            segment_max_age: std::time::Duration::from_secs(30 * 86_400),
            clock: Clock::from_fn(move || clock.load(Ordering::Relaxed)),
            ..Config::default()
        }
    };
    let log = Log::open(tmp.path(), config()).expect("open");
    // One record an hour for four days.
    for i in 0..96 {
        log.append_one(&rec(i)).expect("append");
        now.fetch_add(DAY_US / 24, Ordering::Relaxed);
    }
    log.close().expect("close");
    now.fetch_add(DAY_US / 4, Ordering::Relaxed);
    // Damage the frame header of a record in the segment holding "three
    // days ago", where a max_days = 3 bound falls.
    let cutoff = now.load(Ordering::Relaxed) - 3 * DAY_US;
    let log = Log::open_read_only(tmp.path(), config()).expect("open");
    let seg = log
        .segments()
        .into_iter()
        .find(|s| s.sealed && s.ts_range.is_some_and(|(a, b)| a < cutoff && cutoff <= b))
        .expect("the bound falls inside a sealed segment");
    drop(log);
    let mut bytes = fs::read(&seg.path).expect("read");
    // Flip a byte of the id field of every frame but the first, so that
    // whatever frames the bound's search reads are damaged.
    let footer = actlog_engine::segment::Footer::find(&bytes).expect("sealed");
    for i in 1..footer.count as usize {
        let at = footer.data_end as usize + 4 * i;
        let off = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        bytes[off as usize + 9] ^= 0x55;
    }
    fs::write(&seg.path, &bytes).expect("write the damage");

    let log = Log::open(tmp.path(), config()).expect("open");
    log.set_retention(Retention {
        max_days: Some(3),
        max_entries: None,
    })
    .expect("retention");
    let stats = log.stats().expect("stats still answer");
    assert!(stats.entries >= 66, "{stats:?}");
    let newest = log.get(96).expect("get still answers");
    assert!(newest.is_some());
    // The damaged records themselves report their damage.
    assert!(log.get(seg.base_id + 1).is_err());
    assert!(log
        .iter(u64::MAX, Direction::Backward)
        .take(10)
        .all(|r| r.is_ok()));
}

#[test]
fn recovery_leaves_other_writers_temp_files_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    drop(Log::open(tmp.path(), Config::default()).expect("open"));
    fs::write(tmp.path().join("settings.json.tmp"), b"{}").expect("write");
    fs::write(tmp.path().join("seg-00000000000000000009.idx.tmp"), b"x").expect("write");
    let log = Log::open(tmp.path(), Config::default()).expect("reopen");
    let removed = &log.recovery_report().removed_temp_files;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(tmp.path().join("settings.json.tmp").exists());
    assert!(!tmp.path().join("seg-00000000000000000009.idx.tmp").exists());
}
