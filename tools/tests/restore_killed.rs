//! A restore killed (SIGKILL) at every step it takes, then the directory
//! opened the way a server opens it at start (`Log::open`): it must refuse
//! (`RestoreUnfinished`), or hold exactly the old contents, or exactly the
//! whole backup. Never a mix. Then the restore, run again with `--force`,
//! finishes: the backup's records, and new ids above every id the backup and
//! the old directory ever held.
//!
//! The kill points are found by watching the target directory from the test
//! in a tight loop (no timing guesses): the marker `RESTORING` appearing, the
//! old files gone, the i-th backup file renamed into place, the id
//! reservation marked restored, the marker removed, the tool's own open
//! creating a new segment. The kill lands at or shortly after the point it
//! waits for; what the directory held when the process was dead is recorded
//! and printed (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actlog_engine::backup::RESTORING_FILE;
use actlog_engine::ids::{Reservation, IDS_FILE, RESTORED};
use actlog_engine::segment::parse_segment_file_name;
use actlog_engine::{Config, Direction, Error, Log, NewRecord, Record, Retention, LOCK_FILE};
use serde_json::{json, Map};

const BIN: &str = env!("CARGO_BIN_EXE_actlog-inspect");
/// The longest one restore may take before the test gives up.
const RUN_LIMIT: Duration = Duration::from_secs(20);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn inspect(args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("ACTLOG_TOKEN")
        .output()
        .expect("run actlog-inspect");
    Out {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn small() -> Config {
    Config {
        segment_max_bytes: 4096,
        ..Config::default()
    }
}

/// A record of about 200 bytes, so that a few dozen fill several segments.
fn rec(tag: &str, i: u64) -> NewRecord {
    let mut r = NewRecord::new(
        "entity",
        "entity.updated",
        format!("{tag} record {i}: {}", "padding words ".repeat(8)),
    );
    r.entity_id = Some(format!("{tag}_{i}"));
    let mut meta = Map::new();
    meta.insert("tag".into(), json!(tag));
    meta.insert("i".into(), json!(i));
    r.metadata = meta;
    r
}

fn records_of(log: &Log) -> Vec<Record> {
    log.iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("read records")
}

fn read_only_records(dir: &Path) -> Vec<Record> {
    let log = Log::open_read_only(dir, Config::default()).expect("open read-only");
    records_of(&log)
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("mkdir");
    for e in fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        assert!(e.file_type().expect("type").is_file(), "{:?}", e.path());
        fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// What the test knows about the backup and the old directory.
struct Setup {
    /// The backup's files (from its manifest), in the order restore copies them.
    backup_files: Vec<String>,
    /// Bytes of the backup files whose names the old directory also has.
    shared: BTreeMap<String, Vec<u8>>,
    /// The old directory's data files that no backup file replaces.
    old_only: BTreeSet<String>,
    /// Every segment file name of the backup or the old directory.
    known_segments: BTreeSet<String>,
}

/// The directory as the watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Obs {
    marker: bool,
    /// Old data files still there.
    old_left: usize,
    /// Backup files in place under their final names.
    in_place: usize,
    /// `IDS` is a reservation marked restored.
    marked: bool,
    /// Segments neither the backup nor the old directory had (the tool's
    /// open after the restore created them).
    new_segments: usize,
    /// Temporary copies (`.part`, `.tmp`).
    temps: Vec<String>,
}

impl Obs {
    fn describe(&self, total: usize) -> String {
        format!(
            "RESTORING={} old_left={} in_place={}/{} IDS_marked={} new_segments={} temps={:?}",
            if self.marker { "yes" } else { "no" },
            self.old_left,
            self.in_place,
            total,
            self.marked,
            self.new_segments,
            self.temps
        )
    }
}

fn observe(dir: &Path, s: &Setup) -> Obs {
    let present = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<BTreeSet<String>>(),
        Err(_) => BTreeSet::new(),
    };
    let ids = if present.contains(IDS_FILE) {
        fs::read(dir.join(IDS_FILE)).ok()
    } else {
        None
    };
    let marked = ids
        .as_deref()
        .and_then(|b| Reservation::decode(b, Path::new(IDS_FILE)).ok())
        .is_some_and(|r| r.active_base == RESTORED);
    let in_place = s
        .backup_files
        .iter()
        .filter(|n| present.contains(*n))
        .filter(|n| match s.shared.get(*n) {
            None => true,
            Some(want) if n.as_str() == IDS_FILE => marked || ids.as_deref() == Some(want),
            Some(want) => fs::read(dir.join(n)).ok().as_deref() == Some(want),
        })
        .count();
    Obs {
        marker: present.contains(RESTORING_FILE),
        old_left: s.old_only.iter().filter(|n| present.contains(*n)).count(),
        in_place,
        marked,
        new_segments: present
            .iter()
            .filter(|n| parse_segment_file_name(n).is_some() && !s.known_segments.contains(*n))
            .count(),
        temps: present
            .iter()
            .filter(|n| n.ends_with(".part") || n.ends_with(".tmp"))
            .cloned()
            .collect(),
    }
}

/// Where to kill the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// As soon as it is spawned.
    Spawned,
    /// `RESTORING` exists.
    Marker,
    /// `RESTORING` exists and every old data file is gone.
    Cleared,
    /// The i-th backup file is in place.
    Files(usize),
    /// `IDS` is marked restored.
    Marked,
    /// `RESTORING` was there and is gone again.
    Unmarked,
    /// The tool's own open created a new active segment.
    Opened,
    /// Never: it runs to the end.
    Finished,
}

/// What the watcher has seen so far.
#[derive(Debug, Default)]
struct Seen {
    marker: bool,
    cleared: bool,
    max_in_place: usize,
    marked: bool,
    unmarked: bool,
    opened: bool,
}

impl Seen {
    fn update(&mut self, o: &Obs) {
        if o.marker {
            self.marker = true;
            if o.old_left == 0 {
                self.cleared = true;
            }
        } else if self.marker {
            self.unmarked = true;
        }
        self.max_in_place = self.max_in_place.max(o.in_place);
        self.marked |= o.marked;
        self.opened |= o.new_segments > 0;
    }

    fn reached(&self, point: Point) -> bool {
        match point {
            Point::Spawned => true,
            Point::Marker => self.marker,
            Point::Cleared => self.cleared,
            Point::Files(i) => self.marker && self.max_in_place >= i,
            Point::Marked => self.marked,
            Point::Unmarked => self.unmarked,
            Point::Opened => self.opened,
            Point::Finished => false,
        }
    }
}

/// How an open after the kill went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Refused,
    Locked,
    Old,
    Backup,
}

#[test]
fn restore_killed_after_each_file_is_refused_or_old_or_whole() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    let bk = tmp.path().join("backup");
    let t = tmp.path().join("t");

    // A: the log that is backed up. Its state files ride along.
    {
        let log = Log::open(&a, small()).expect("open a");
        for i in (0..120).step_by(3) {
            let batch: Vec<NewRecord> = (i..i + 3).map(|k| rec("backup", k)).collect();
            log.append(&batch).expect("append a");
        }
        log.close().expect("close a");
    }
    fs::write(a.join("settings.json"), br#"{"from":"backup"}"#).expect("settings a");
    let a_records = read_only_records(&a);
    assert_eq!(a_records.len(), 120);
    let out = inspect(&["backup", "--from", p(&a), "--to", p(&bk)]);
    assert_eq!(out.code, 0, "{out:?}");

    // T: a different, longer log whose oldest segments retention dropped, so
    // that its segment names differ from the backup's and its ids go higher.
    {
        let log = Log::open(&t, small()).expect("open t");
        for i in (0..300).step_by(5) {
            let batch: Vec<NewRecord> = (i..i + 5).map(|k| rec("old", k)).collect();
            log.append(&batch).expect("append t");
        }
        log.set_retention(Retention {
            max_days: None,
            max_entries: Some(100),
        })
        .expect("retention");
        assert!(log.enforce_retention().expect("enforce").dropped_segments > 0);
        log.close().expect("close t");
    }
    fs::write(t.join("settings.json"), br#"{"from":"old"}"#).expect("settings t");
    let t_records = read_only_records(&t);
    assert!(t_records.len() >= 100, "{}", t_records.len());
    let max_a = a_records.last().expect("records").id;
    let max_t = t_records.last().expect("records").id;
    assert!(max_t > max_a, "the old directory's ids go higher");

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(bk.join("MANIFEST.json")).expect("manifest"))
            .expect("manifest json");
    let backup_files: Vec<String> = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect();
    let t_names = names(&t);
    let shared: BTreeMap<String, Vec<u8>> = backup_files
        .iter()
        .filter(|n| t_names.contains(*n))
        .map(|n| (n.clone(), fs::read(bk.join(n)).expect("backup file")))
        .collect();
    assert_eq!(
        shared.keys().map(String::as_str).collect::<Vec<_>>(),
        [IDS_FILE, "settings.json"],
        "only the id reservation and the settings share a name"
    );
    for (n, bytes) in &shared {
        assert_ne!(
            &fs::read(t.join(n)).expect("old file"),
            bytes,
            "{n} differs"
        );
    }
    let old_only: BTreeSet<String> = t_names
        .iter()
        .filter(|n| !shared.contains_key(*n) && n.as_str() != LOCK_FILE)
        .cloned()
        .collect();
    let known_segments: BTreeSet<String> = backup_files
        .iter()
        .chain(t_names.iter())
        .filter(|n| parse_segment_file_name(n).is_some())
        .cloned()
        .collect();
    let setup = Setup {
        backup_files: backup_files.clone(),
        shared,
        old_only,
        known_segments,
    };
    let n_files = backup_files.len();
    assert!(n_files >= 8, "several files to restore: {backup_files:?}");

    let mut points = vec![Point::Spawned, Point::Marker, Point::Cleared];
    points.extend((1..=n_files).map(Point::Files));
    points.extend([
        Point::Marked,
        Point::Unmarked,
        Point::Opened,
        Point::Finished,
    ]);

    let mut outcomes: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut lock_probes_locked = 0;
    let mut table = Vec::new();
    for (k, &point) in points.iter().enumerate() {
        let target = tmp.path().join(format!("t-{k}"));
        copy_dir(&t, &target);
        let run_start = Instant::now();
        let mut child = Command::new(BIN)
            .args(["restore", "--from", p(&bk), "--to", p(&target), "--force"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn restore");
        let mut seen = Seen::default();
        let mut last = observe(&target, &setup);
        let mut probe = String::from("-");
        let mut probe_opened = false;
        let mut polls = 0u64;
        let exited_by_itself = loop {
            if seen.reached(point) {
                // While the marker is there the restore holds the lock: an
                // open must fail with `Locked` (or, if the restore released
                // the lock meanwhile, open the finished directory).
                if last.marker {
                    match Log::open(&target, Config::default()) {
                        Err(Error::Locked { .. }) => {
                            lock_probes_locked += 1;
                            probe = "Locked".into();
                        }
                        Ok(log) => {
                            assert!(
                                !target.join(RESTORING_FILE).exists(),
                                "{point:?}: an open succeeded on a directory marked RESTORING"
                            );
                            probe = "opened (restore had finished)".into();
                            probe_opened = true;
                            log.close().expect("close probe");
                        }
                        Err(e) => {
                            panic!("{point:?}: an open during the restore failed with {e:?}")
                        }
                    }
                }
                child.kill().expect("SIGKILL");
                break false;
            }
            if child.try_wait().expect("try_wait").is_some() {
                break true;
            }
            assert!(
                run_start.elapsed() < RUN_LIMIT,
                "{point:?}: the restore ran for {RUN_LIMIT:?}; last seen {}",
                last.describe(n_files)
            );
            last = observe(&target, &setup);
            seen.update(&last);
            polls += 1;
        };
        let status = child.wait().expect("wait");
        if exited_by_itself {
            assert_eq!(status.code(), Some(0), "{point:?}: the restore failed");
        } else {
            // A probe that opened the log first makes the tool's own
            // open fail (exit 1) if it had not been killed yet.
            assert!(
                status.signal() == Some(9)
                    || status.code() == Some(0)
                    || (probe_opened && status.code() == Some(1)),
                "{point:?}: {status:?}"
            );
        }
        let killed_in = observe(&target, &setup);
        let state = killed_in.describe(n_files);

        // What a server starting now would do.
        let mut handed_out = max_t.max(max_a);
        let outcome = match Log::open(&target, Config::default()) {
            Err(Error::RestoreUnfinished { .. }) => {
                assert!(killed_in.marker, "{point:?}: refused without the marker");
                Outcome::Refused
            }
            Err(Error::Locked { .. }) => Outcome::Locked,
            Err(e) => panic!("{point:?} ({state}): open failed with {e:?}"),
            Ok(log) => {
                let got = records_of(&log);
                let settings = fs::read(target.join("settings.json")).ok();
                let outcome = if got == t_records {
                    assert_eq!(
                        settings.as_deref(),
                        Some(&br#"{"from":"old"}"#[..]),
                        "{point:?} ({state}): old records but not the old settings"
                    );
                    Outcome::Old
                } else if got == a_records {
                    assert_eq!(
                        settings.as_deref(),
                        Some(&br#"{"from":"backup"}"#[..]),
                        "{point:?} ({state}): the backup's records but not its settings"
                    );
                    Outcome::Backup
                } else {
                    panic!(
                        "{point:?} ({state}): the log opened with {} records, neither the old \
                         ({}) nor the backup's ({}): ids {:?}",
                        got.len(),
                        t_records.len(),
                        a_records.len(),
                        got.iter().map(|r| r.id).collect::<Vec<_>>()
                    )
                };
                let id = log.append_one(&rec("after-kill", 0)).expect("append");
                assert!(
                    id > handed_out,
                    "{point:?} ({state}): new id {id} is not above every id the old \
                     directory ({max_t}) and the backup ({max_a}) held"
                );
                handed_out = id;
                log.close().expect("close");
                outcome
            }
        };
        *outcomes.entry(outcome).or_default() += 1;

        // Run again to the end: the backup, and ids above everything.
        let out = inspect(&["restore", "--from", p(&bk), "--to", p(&target), "--force"]);
        assert_eq!(out.code, 0, "{point:?} ({state}): {out:?}");
        assert!(!target.join(RESTORING_FILE).exists());
        let log = Log::open(&target, Config::default()).expect("open after the rerun");
        assert_eq!(records_of(&log), a_records, "{point:?} ({state})");
        let id = log.append_one(&rec("after-rerun", 0)).expect("append");
        assert!(
            id > handed_out,
            "{point:?} ({state}): after the rerun, new id {id} is not above {handed_out}"
        );
        log.close().expect("close");
        assert_eq!(
            fs::read(target.join("settings.json")).expect("settings"),
            br#"{"from":"backup"}"#
        );
        let point_name = format!("{point:?}");
        table.push(format!(
            "{k:>2} {point_name:<10} {:<22} polls={polls:<6} probe={probe:<8} -> {outcome:?} ({} ms) | {state}",
            if exited_by_itself {
                "exited before the kill"
            } else {
                "killed"
            },
            run_start.elapsed().as_millis(),
        ));
        fs::remove_dir_all(&target).expect("clean up");
    }
    eprintln!(
        "restore_killed: {n_files} backup files, {} runs, {:.1} s",
        points.len(),
        t0.elapsed().as_secs_f64()
    );
    for line in &table {
        eprintln!("  {line}");
    }
    eprintln!("  outcomes {outcomes:?}, lock probes answered Locked: {lock_probes_locked}");
    assert!(
        outcomes.get(&Outcome::Refused).copied().unwrap_or(0) > 0,
        "no kill landed inside the restore: {outcomes:?}"
    );
    assert!(
        outcomes.get(&Outcome::Backup).copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    assert!(lock_probes_locked > 0, "the lock was never seen held");
}
