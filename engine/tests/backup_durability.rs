//! A backup never holds a record a crash could still take back: a flush
//! written but not yet fdatasynced (paused at the `segment::sync` fault
//! site) is left out of a lock-free plan of a live directory. Reproduced a
//! break found by an adversarial review of format 2 (2026-12-06); failed
//! before the fix. Needs `--features failpoints`.
#![cfg(feature = "failpoints")]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use actlog_engine::backup::{open_item, plan};
use actlog_engine::segment::SEGMENT_HEADER_LEN;
use actlog_engine::{frame, Config, Log, NewRecord};

fn rec(msg: &str) -> NewRecord {
    NewRecord::new("system", "system.test", msg.to_string())
}

fn active_path(dir: &Path) -> std::path::PathBuf {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v.pop().expect("a segment")
}

fn frames(bytes: &[u8]) -> Vec<(usize, u64, usize)> {
    let mut out = vec![];
    let mut pos = SEGMENT_HEADER_LEN;
    while let Ok(f) = frame::decode(&bytes[pos..]) {
        out.push((pos, f.header.id, f.header.frame_len()));
        pos += f.header.frame_len();
    }
    out
}

/// The backup plan scans the active file through the page cache and copies
/// it "up to the end of its last committed frame": a COMMIT flag, not
/// durability. A flush that is written (pwrite) but not yet fdatasynced —
/// its append has not returned — is copied. If that flush then never
/// becomes durable (power cut, or a failed fsync followed by
/// `Log::recover`), the server hands its ids out again to other records,
/// while the backup holds the never-acknowledged record under the same id.
/// Restored, the backup serves a record nobody was told about at an id a
/// client was told belongs to another record.
#[test]
fn a_backup_never_holds_a_flush_that_is_not_durable_yet() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let log = Log::open(&dir, Config::default()).expect("open");
    log.append_one(&rec("acked zero")).expect("append");
    // The next flush stops after its pwrite, before its fdatasync.
    fail::cfg("segment::sync", "pause").expect("cfg");
    let l2 = log.clone();
    let appender = std::thread::spawn(move || l2.append_one(&rec("never acknowledged A")));
    let seg = active_path(&dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames(&fs::read(&seg).expect("read")).len() < 2 {
        assert!(Instant::now() < deadline, "A never written");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !appender.is_finished(),
        "A's append must not have returned yet"
    );

    // A backup runs now (lock-free, like `actlog-inspect backup --from` or the
    // server's backup endpoint).
    let items = plan(&dir, &[]).expect("plan");
    let backup = tmp.path().join("backup");
    fs::create_dir(&backup).expect("mkdir");
    for item in &items {
        let mut r = open_item(&dir, item).expect("open item");
        let mut out = fs::File::create(backup.join(&item.name)).expect("create");
        std::io::copy(&mut r, &mut out).expect("copy");
    }
    let seg_item = items
        .iter()
        .find(|i| i.name.ends_with(".log"))
        .expect("segment item");
    eprintln!("backup plan of the active segment: {seg_item:?}");

    // Power cut now: A's flush never reached the disk. The crash image is
    // the file with A's bytes back to the preallocated zeros.
    let image = tmp.path().join("image");
    fs::create_dir(&image).expect("mkdir");
    for e in fs::read_dir(&dir).expect("ls") {
        let p = e.expect("e").path();
        if p.file_name().is_some_and(|n| n != "LOCK") && p.is_file() {
            fs::copy(&p, image.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let img_seg = image.join(seg.file_name().expect("name"));
    let mut bytes = fs::read(&img_seg).expect("read");
    let (a_off, a_id, a_len) = frames(&bytes)[1];
    bytes[a_off..a_off + a_len].fill(0);
    fs::write(&img_seg, &bytes).expect("write");
    fail::remove("segment::sync");
    let _ = appender.join();
    drop(log);

    // The server restarts on the crash image and acknowledges B.
    let server = Log::open(&image, Config::default()).expect("open crash image");
    let b_id = server.append_one(&rec("acknowledged B")).expect("append B");
    eprintln!("A had id {a_id}; after the crash B was acknowledged with id {b_id}");

    // The backup, restored (the tool marks it, then opens it).
    actlog_engine::ids::mark_restored(&backup, 0).expect("mark");
    let restored = Log::open(&backup, Config::default()).expect("open restored");
    let served = restored.get(b_id).expect("get");
    eprintln!(
        "restored backup serves id {b_id} as {:?}",
        served.as_ref().map(|r| &r.message)
    );
    assert!(
        served
            .as_ref()
            .is_none_or(|r| r.message == "acknowledged B"),
        "the backup serves the never-acknowledged record A under id {b_id}, which was \
         acknowledged for B"
    );
}
