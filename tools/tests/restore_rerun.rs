//! A restore killed after it marked the target (and perhaps removed the old
//! files and copied some of the backup's) and then run again, as the marker
//! says: the old directory's id floor must survive the kill, so that the
//! restored log hands out no id the old directory had acknowledged.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actlog_engine::backup::RESTORING_FILE;
use actlog_engine::{Config, Log, NewRecord};

const BIN: &str = env!("CARGO_BIN_EXE_actlog-inspect");

fn small() -> Config {
    Config {
        segment_max_bytes: 1024,
        ..Config::default()
    }
}

fn rec(i: u64) -> NewRecord {
    NewRecord::new("system", "system.test", format!("record {i}"))
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("ACTLOG_TOKEN")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("mkdir");
    for e in fs::read_dir(from).expect("ls") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn p(x: &Path) -> &str {
    x.to_str().expect("utf8")
}

/// Restore over a live directory is killed right after it removed the old
/// data files (RESTORING is there, as the tool promises). The marker text
/// says: run the restore again with --force. The rerun computes the old id
/// floor from the directory as it is NOW (`old_id_floor(to)`), where the old
/// IDS and segments are already gone: the floor the first run computed is
/// lost, and the restored log hands out ids the old directory acknowledged.
#[test]
fn a_restore_run_again_after_a_kill_keeps_the_old_id_floor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let backup = tmp.path().join("backup");
    let mut last_acked = 0;
    {
        let log = Log::open(&data, small()).expect("open");
        for i in 0..3 {
            last_acked = log.append_one(&rec(i)).expect("append");
        }
        log.close().expect("close");
    }
    let (code, out) = run(&["backup", "--from", p(&data), "--to", p(&backup)]);
    assert_eq!(code, 0, "{out}");
    {
        // The server goes on after the backup: well past the backup's
        // reservation limit (base + span, span ~ 10,043 for 1 KiB segments).
        let log = Log::open(&data, small()).expect("open");
        for b in 0..25u64 {
            let batch: Vec<NewRecord> = (0..1000).map(|i| rec(b * 1000 + i)).collect();
            last_acked = *log.append(&batch).expect("append").last().expect("ids");
        }
        log.close().expect("close");
    }
    eprintln!("last acknowledged id in the old directory: {last_acked}");

    // The first restore run, SIGKILLed once its marker is there and before
    // it is gone again (the old files may be removed, backup files copied).
    // The first restore run, SIGKILLed after it removed the old id
    // reservation (the marker is there, the old files are going or gone,
    // backup files may be copied) and before it finished. The window is
    // short, so each try starts from a copy of the old directory.
    let backup_ids = fs::read(backup.join("IDS")).expect("the backup's IDS");
    let template = tmp.path().join("old");
    fs::rename(&data, &template).expect("keep the old directory");
    let mut killed_midway = false;
    for _ in 0..10 {
        let _ = fs::remove_dir_all(&data);
        copy_dir(&template, &data);
        let mut child = Command::new(BIN)
            .args(["restore", "--from", p(&backup), "--to", p(&data), "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn restore");
        let started = Instant::now();
        let old_ids_gone = || {
            data.join(RESTORING_FILE).exists()
                && fs::read(data.join("IDS")).map_or(true, |b| b == backup_ids)
        };
        while !old_ids_gone()
            && child.try_wait().expect("try_wait").is_none()
            && started.elapsed() < Duration::from_secs(20)
        {
            std::hint::spin_loop();
        }
        let _ = child.kill();
        let _ = child.wait();
        if data.join(RESTORING_FILE).exists() && old_ids_gone() {
            killed_midway = true;
            break;
        }
    }
    assert!(killed_midway, "the kill landed after the restore finished");
    assert!(matches!(
        Log::open(&data, Config::default()),
        Err(actlog_engine::Error::RestoreUnfinished { .. })
    ));

    // Run again, as the marker says.
    let (code, out) = run(&["restore", "--from", p(&backup), "--to", p(&data), "--force"]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    let log = Log::open(&data, Config::default()).expect("open restored");
    let id = log.append_one(&rec(999_999)).expect("append");
    eprintln!("first new id after the restore: {id}");
    assert!(
        id > last_acked,
        "id {id} was already handed out by the old directory (up to {last_acked})"
    );
}
