//! End-to-end tests of the `actlog-inspect` binary on data directories built
//! through the engine: verify, repair, dump, backup and restore, and the exit
//! codes of API.md "CLI" (0 ok, 1 damage or failure, 2 usage).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use actlog_engine::export::{csv_cells, format_ts, RecordJson, CSV_COLUMNS};
use actlog_engine::{
    redacted, Config, Direction, Field, Log, NewRecord, Order, Query, Record, Retention, Selection,
    Severity, MAX_LIMIT, QUARANTINE_DIR,
};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------- helpers

/// What one run of the tool did.
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
    let out = Command::new(env!("CARGO_BIN_EXE_actlog-inspect"))
        .args(args)
        .env_remove("ACTLOG_TOKEN")
        .output()
        .expect("run actlog-inspect");
    Out {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
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

const CATEGORIES: [&str; 3] = ["entity", "auth", "device"];

/// A varied, deterministic record.
fn rec(i: u64) -> NewRecord {
    let category = CATEGORIES[(i % 3) as usize];
    let message = match i % 5 {
        0 => format!("Updated projector {i} in the hall"),
        1 => format!("Project plan {i} approved"),
        2 => format!("Kitchen light {i} switched on"),
        3 => format!("proj {i}: short word"),
        _ if i.is_multiple_of(4) => {
            format!("=HYPERLINK(\"x\"), \"quoted\", comma\nsecond line {i}")
        }
        _ => format!("Living room strip {i} dimmed"),
    };
    let mut r = NewRecord::new(category, format!("{category}.changed"), message);
    r.actor = (!i.is_multiple_of(4)).then(|| format!("kitchen-tablet-{}", i % 3));
    r.entity_type = Some("device".into());
    r.entity_id = Some(format!("dev_{}", i % 11));
    r.entity_name = i.is_multiple_of(2).then(|| format!("Lamp {}", i % 7));
    r.severity = Severity::ALL[(i % 3) as usize];
    let mut meta = Map::new();
    meta.insert("n".into(), json!(i));
    if i.is_multiple_of(6) {
        meta.insert("api_token".into(), json!("s3cret"));
        meta.insert("nested".into(), json!({"room": "hall", "level": [1, 2]}));
    }
    r.metadata = meta;
    r.occurred_at = i
        .is_multiple_of(5)
        .then_some(1_700_000_000_000_000 + i as i64);
    r
}

/// Asserts that a stored record is what was appended.
fn assert_same(r: &Record, n: &NewRecord) {
    let want_actor = n.actor.clone().unwrap_or_else(|| "system".into());
    assert_eq!(r.category, n.category, "id {}", r.id);
    assert_eq!(r.action, n.action, "id {}", r.id);
    assert_eq!(r.actor, want_actor, "id {}", r.id);
    assert_eq!(r.entity_type, n.entity_type, "id {}", r.id);
    assert_eq!(r.entity_id, n.entity_id, "id {}", r.id);
    assert_eq!(r.entity_name, n.entity_name, "id {}", r.id);
    assert_eq!(r.message, n.message, "id {}", r.id);
    assert_eq!(r.severity, n.severity, "id {}", r.id);
    assert_eq!(r.metadata, redacted(&n.metadata), "id {}", r.id);
    assert_eq!(r.occurred_at, n.occurred_at, "id {}", r.id);
}

/// Builds a closed log of `n` records in batches of 5 with small segments.
fn build(dir: &Path, n: u64) -> BTreeMap<u64, NewRecord> {
    build_with(dir, n, small())
}

/// [`build`] under `config`.
fn build_with(dir: &Path, n: u64, config: Config) -> BTreeMap<u64, NewRecord> {
    let log = Log::open(dir, config).expect("open");
    let mut acked = BTreeMap::new();
    let mut i = 0;
    while i < n {
        let batch: Vec<NewRecord> = (i..(i + 5).min(n)).map(rec).collect();
        let ids = log.append(&batch).expect("append");
        acked.extend(ids.into_iter().zip(batch));
        i += 5;
    }
    log.close().expect("close");
    acked
}

/// Every visible record, through the engine, read-only.
fn engine_records(dir: &Path) -> Vec<Record> {
    let log = Log::open_read_only(dir, Config::default()).expect("open read-only");
    log.iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("read records")
}

/// The segment files, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// The first id of a segment, from its name `seg-<20 digits>.log`.
fn base_of(seg: &Path) -> u64 {
    let name = seg.file_name().expect("name").to_string_lossy();
    name["seg-".len().."seg-".len() + 20]
        .parse()
        .expect("segment name")
}

fn idx_of(seg: &Path) -> PathBuf {
    seg.with_extension("idx")
}

/// Every file under `dir` (one level of subdirectories), by relative name.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).expect("list") {
        let path = e.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            for e in fs::read_dir(&path).expect("list sub") {
                let sub = e.expect("entry").path();
                let sub_name = sub
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                out.insert(format!("{name}/{sub_name}"), fs::read(&sub).expect("read"));
            }
        } else {
            out.insert(name, fs::read(&path).expect("read"));
        }
    }
    out
}

/// Frame offsets of a sealed segment, from its offset table and footer.
fn frame_offsets(seg: &[u8]) -> Vec<usize> {
    let footer = &seg[seg.len() - 48..];
    assert_eq!(&footer[..8], b"ACTLOGFT", "sealed segment");
    let count = u32::from_le_bytes(footer[8..12].try_into().expect("4 bytes")) as usize;
    let data_end = u64::from_le_bytes(footer[32..40].try_into().expect("8 bytes")) as usize;
    (0..count)
        .map(|i| {
            let at = data_end + 4 * i;
            u32::from_le_bytes(seg[at..at + 4].try_into().expect("4 bytes")) as usize
        })
        .collect()
}

/// The offsets of the `DAMAGE: <file> @ <offset>: ...` lines naming `file`
/// (at least one).
fn damage_offsets(out: &Out, file: &Path) -> Vec<u64> {
    let prefix = format!("DAMAGE: {} @ ", file.display());
    let offsets: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            rest.split(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no byte offset in `{rest}`"))
        })
        .collect();
    assert!(
        !offsets.is_empty(),
        "no damage line for {}:\n{out:?}",
        file.display()
    );
    offsets
}

fn json_line(r: &Record) -> String {
    serde_json::to_string(&RecordJson::from(r)).expect("serialize")
}

/// `dump` as ndjson: the lines, checked to be exactly the records' JSON.
fn dump_ndjson(dir: &Path, extra: &[&str]) -> Vec<u64> {
    let mut args = vec!["dump", p(dir)];
    args.extend_from_slice(extra);
    let out = inspect(&args);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("ndjson line");
            v["id"].as_u64().expect("id")
        })
        .collect()
}

fn assert_verify_clean(dir: &Path) -> Out {
    let out = inspect(&["verify", p(dir)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(" 0 damaged, "), "{out:?}");
    out
}

// ---------------------------------------------------------------- verify and repair

#[test]
fn verify_ls_and_stat_pass_on_a_clean_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acked = build(dir.path(), 200);
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 4, "several segments: {segs:?}");

    let out = assert_verify_clean(dir.path());
    assert!(out.stdout.contains("200 records"), "{out:?}");
    assert!(out.stdout.contains("0 damaged, 0 warnings"), "{out:?}");

    let ls = inspect(&["ls", p(dir.path())]);
    assert_eq!(ls.code, 0, "{ls:?}");
    assert_eq!(ls.stdout.lines().count(), segs.len(), "{ls:?}");
    assert_eq!(
        ls.stdout.matches("sealed").count(),
        segs.len() - 1,
        "{ls:?}"
    );
    assert_eq!(ls.stdout.matches("active").count(), 1, "{ls:?}");

    let stat = inspect(&["stat", p(dir.path())]);
    assert_eq!(stat.code, 0, "{stat:?}");
    assert!(stat.stdout.contains("entries          200"), "{stat:?}");

    let records = engine_records(dir.path());
    assert_eq!(records.len(), acked.len());
    for r in &records {
        assert_same(r, &acked[&r.id]);
    }
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_damage_and_repair_quarantines_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 200);
    let before = engine_records(dir.path());
    let segs = segment_files(dir.path());
    let victim = segs[segs.len() / 2].clone();
    assert!(victim != *segs.last().expect("segments"), "a sealed one");

    // Flip one payload byte of the middle frame.
    let mut bytes = fs::read(&victim).expect("read");
    let offsets = frame_offsets(&bytes);
    let frame = offsets[offsets.len() / 2];
    let flip = frame + 24 + 3;
    bytes[flip] ^= 0x20;
    fs::write(&victim, &bytes).expect("write");
    let base = base_of(&victim);
    let victim_ids = base..base + offsets.len() as u64;

    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 1, "{out:?}");
    let offsets = damage_offsets(&out, &victim);
    assert!(
        offsets
            .iter()
            .any(|&at| (frame..=flip).contains(&(at as usize))),
        "an offset should point at the damaged frame ({frame}..={flip}):\n{out:?}"
    );

    // A dry run changes nothing.
    let snap = snapshot(dir.path());
    let dry = inspect(&["repair", p(dir.path()), "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would move"), "{dry:?}");
    assert_eq!(snapshot(dir.path()), snap, "--dry-run changed files");

    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{rep:?}");
    let name = victim.file_name().expect("name");
    let quarantined = dir.path().join(QUARANTINE_DIR).join(name);
    assert_eq!(
        fs::read(&quarantined).expect("the segment is kept in quarantine/"),
        bytes
    );
    assert!(!victim.exists());
    assert_verify_clean(dir.path());

    // Every record of the other segments is still there, exactly.
    let want: Vec<&Record> = before
        .iter()
        .filter(|r| !victim_ids.contains(&r.id))
        .collect();
    assert!(want.len() >= 150, "{}", want.len());
    let out = inspect(&["dump", p(dir.path())]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let expect: Vec<String> = want.iter().map(|r| json_line(r)).collect();
    assert_eq!(lines, expect);
}

#[test]
fn damage_in_the_active_segment_is_cut_by_repair_without_reusing_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 200);
    let before = engine_records(dir.path());
    let max_acked = before.last().expect("records").id;
    let active = segment_files(dir.path()).pop().expect("segments");
    let base = base_of(&active);
    let mut bytes = fs::read(&active).expect("read");
    // The active file ends in zeros (preallocation) or at its last frame;
    // walk its frames to find the second one and flip a payload byte.
    let first_len = 24 + u32::from_le_bytes([bytes[36], bytes[37], bytes[38], 0]) as usize;
    let second = 32 + first_len;
    bytes[second + 24 + 3] ^= 0x20;
    fs::write(&active, &bytes).expect("write");
    assert!(
        max_acked > base + 1,
        "the damage lies in front of acknowledged records"
    );

    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        Log::open(dir.path(), small()).is_err(),
        "damage refuses the open"
    );

    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{rep:?}");
    assert!(rep.stdout.contains("cut"), "{rep:?}");
    // The file as it was is kept.
    let kept: Vec<PathBuf> = fs::read_dir(dir.path().join(QUARANTINE_DIR))
        .expect("quarantine")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains("before-repair"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(&kept[0]).expect("copy"), bytes);
    assert_verify_clean(dir.path());

    // The records of the sealed segments are served (the damage lies in the
    // active segment's first batch, so none of its records is committed
    // before it); no id after it is ever reused.
    let after = engine_records(dir.path());
    let ids = |v: &[Record]| v.iter().map(|r| r.id).collect::<Vec<_>>();
    let want: Vec<Record> = before.iter().filter(|r| r.id < base).cloned().collect();
    assert_eq!(ids(&after), ids(&want));
    assert!(after == want, "the kept records are unchanged");
    let log = Log::open(dir.path(), small()).expect("open");
    let next = log.append_one(&rec(999)).expect("append");
    assert!(
        next > max_acked,
        "id {next} reused (the log held ids up to {max_acked})"
    );
}

/// A payload of exactly `len` bytes that is no record, in one of the
/// shapes a writer other than this engine could leave behind a valid CRC:
/// `recorded_by` an integer, nine or twelve elements, an unknown severity,
/// metadata holding binary data or a repeated key. The message is padded
/// to reach `len`.
fn unreadable_payload(kind: usize, len: usize) -> Vec<u8> {
    let s = |t: &str| {
        let mut v = vec![0xa0 | t.len() as u8];
        v.extend_from_slice(t.as_bytes());
        v
    };
    let (n, severity, metadata, tail): (u8, u8, &[u8], &[u8]) = match kind {
        0 => (11, 1, &[0x80], &[0xc0, 0x05]),
        1 => (9, 1, &[0x80], &[]),
        2 => (12, 1, &[0x80], &[0xc0, 0xc0, 0xc0]),
        3 => (11, 9, &[0x80], &[0xc0, 0xc0]),
        4 => (11, 1, &[0x81, 0xa1, b'k', 0xc4, 0x01, 0xff], &[0xc0, 0xc0]),
        _ => (11, 1, &[0x82, 0xa1, b'k', 1, 0xa1, b'k', 2], &[0xc0, 0xc0]),
    };
    let mut head = vec![0x90 | n];
    for f in ["entity", "entity.deleted", "mallory"] {
        head.extend(s(f));
    }
    head.extend_from_slice(&[0xc0, 0xc0, 0xc0]);
    let fixed = head.len() + 3 + 1 + metadata.len() + tail.len();
    let pad = len
        .checked_sub(fixed)
        .expect("a frame long enough to forge");
    let mut b = head;
    b.push(0xda);
    b.extend_from_slice(&(pad as u16).to_be_bytes());
    b.extend(std::iter::repeat_n(b'x', pad));
    b.push(severity);
    b.extend_from_slice(metadata);
    b.extend_from_slice(tail);
    assert_eq!(b.len(), len);
    b
}

/// Replaces the payload of the frame at `at` in `bytes` with `payload` (of
/// the same length) and gives the frame a valid CRC again.
fn rewrite_payload(bytes: &mut [u8], at: usize, payload: &[u8]) {
    bytes[at + 24..at + 24 + payload.len()].copy_from_slice(payload);
    let crc = crc32fast::hash(&bytes[at + 4..at + 24 + payload.len()]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The payload length of the frame at `at`.
fn payload_len(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], 0]) as usize
}

/// After rewriting frames of a sealed segment: its data and footer
/// checksums hold again, so only the payload is wrong.
fn reseal(bytes: &mut [u8]) {
    let f = bytes.len() - 48;
    let data_end = u64::from_le_bytes(bytes[f + 32..f + 40].try_into().expect("8 bytes")) as usize;
    let crc = crc32fast::hash(&bytes[..data_end]);
    bytes[f + 12..f + 16].copy_from_slice(&crc.to_le_bytes());
    let fcrc = crc32fast::hash(&bytes[f..f + 44]);
    bytes[f + 44..f + 48].copy_from_slice(&fcrc.to_le_bytes());
}

#[test]
fn a_sealed_record_that_is_no_record_is_damage_that_repair_quarantines() {
    for kind in 0..6 {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), 200);
        let before = engine_records(dir.path());
        let segs = segment_files(dir.path());
        let victim = segs[segs.len() / 2].clone();
        let mut bytes = fs::read(&victim).expect("read");
        let offsets = frame_offsets(&bytes);
        let k = offsets.len() / 2;
        let frame = offsets[k];
        let forged = unreadable_payload(kind, payload_len(&bytes, frame));
        rewrite_payload(&mut bytes, frame, &forged);
        reseal(&mut bytes);
        fs::write(&victim, &bytes).expect("write");
        let base = base_of(&victim);
        let forged_id = base + k as u64;
        let victim_ids = base..base + offsets.len() as u64;
        // Without its index, the next open would have to rebuild it from
        // the unreadable record.
        if kind % 2 == 1 {
            fs::remove_file(idx_of(&victim)).expect("remove index");
        } else {
            // With it, the log opens, and every reader refuses the record
            // alike: a list of it and `get`.
            let log = Log::open_read_only(dir.path(), Config::default()).expect("open");
            assert!(log.get(forged_id).is_err(), "kind {kind}: get");
            let listed: Result<Vec<Record>, _> = log.iter(forged_id, Direction::Forward).collect();
            assert!(listed.is_err(), "kind {kind}: list");
        }

        let out = inspect(&["verify", p(dir.path())]);
        assert_eq!(out.code, 1, "kind {kind}: {out:?}");
        assert!(
            damage_offsets(&out, &victim).contains(&(frame as u64)),
            "kind {kind}: the damage is named at the frame ({frame}):\n{out:?}"
        );
        assert!(
            out.stdout
                .contains(&format!("record {forged_id} cannot be read")),
            "{out:?}"
        );

        let rep = inspect(&["repair", p(dir.path())]);
        assert_eq!(rep.code, 0, "kind {kind}: {rep:?}");
        let quarantined = dir
            .path()
            .join(QUARANTINE_DIR)
            .join(victim.file_name().expect("name"));
        assert_eq!(fs::read(&quarantined).expect("kept in quarantine/"), bytes);
        assert_verify_clean(dir.path());
        let want: Vec<Record> = before
            .iter()
            .filter(|r| !victim_ids.contains(&r.id))
            .cloned()
            .collect();
        assert!(
            engine_records(dir.path()) == want,
            "kind {kind}: the rest is served"
        );
    }
}

#[test]
fn an_active_record_that_is_no_record_is_damage_that_repair_cuts_before() {
    // Every kind, as the seventh record of an active segment after sealed
    // ones: the batch it lies in holds records before it, which go with it.
    for kind in 0..6 {
        forged_active_case(200, true, &[6], Beside::Nothing, &[kind]);
    }
}

#[test]
fn a_missing_oldest_segment_is_an_id_gap_that_repair_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 200);
    let before = engine_records(dir.path());
    let segs = segment_files(dir.path());
    let oldest = segs[0].clone();
    let second_base = base_of(&segs[1]);
    fs::remove_file(&oldest).expect("remove the oldest segment");
    fs::remove_file(idx_of(&oldest)).expect("and its index");

    // No watermark hides ids 1.. : the gap is damage, for verify and open.
    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("oldest segment starts"), "{out:?}");
    let err = Log::open(dir.path(), small()).expect_err("an unexplained gap refuses");
    assert!(
        err.to_string().contains("older segment is missing"),
        "{err}"
    );

    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{rep:?}");
    assert!(rep.stdout.contains("as lost"), "{rep:?}");
    assert_verify_clean(dir.path());
    let after = engine_records(dir.path());
    let want: Vec<u64> = before
        .iter()
        .map(|r| r.id)
        .filter(|&id| id >= second_base)
        .collect();
    assert_eq!(after.iter().map(|r| r.id).collect::<Vec<_>>(), want);
}

#[test]
fn truncated_index_is_damage_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 200);
    let before = engine_records(dir.path());
    let segs = segment_files(dir.path());
    let idx = idx_of(&segs[1]);
    let full = fs::read(&idx).expect("index");
    fs::write(&idx, &full[..full.len() / 2]).expect("truncate");

    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 1, "{out:?}");
    damage_offsets(&out, &idx);

    let snap = snapshot(dir.path());
    let dry = inspect(&["repair", "--dry-run", p(dir.path())]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would rebuild"), "{dry:?}");
    assert_eq!(snapshot(dir.path()), snap, "--dry-run changed files");

    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{rep:?}");
    assert!(rep.stdout.contains("rebuilt"), "{rep:?}");
    assert_eq!(fs::read(&idx).expect("index").len(), full.len());
    assert_verify_clean(dir.path());
    let out = inspect(&["dump", p(dir.path())]);
    assert_eq!(out.code, 0, "{out:?}");
    let expect: Vec<String> = before.iter().map(json_line).collect();
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expect);
}

#[test]
fn id_gap_is_damage_and_repair_records_the_loss_so_the_rest_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 200);
    let before = engine_records(dir.path());
    let segs = segment_files(dir.path());
    let gone = &segs[2];
    let gone_base: u64 = gone
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(actlog_engine::segment::parse_segment_file_name)
        .expect("segment name");
    fs::remove_file(gone).expect("remove segment");
    fs::remove_file(idx_of(gone)).expect("remove index");
    let next_base: u64 = segs[3]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(actlog_engine::segment::parse_segment_file_name)
        .expect("segment name");

    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(damage_offsets(&out, &segs[3]), [0], "{out:?}");
    assert!(out.stdout.contains("id gap"), "{out:?}");
    assert!(
        Log::open(dir.path(), small()).is_err(),
        "an unexplained gap refuses to open"
    );

    // --dry-run changes nothing; repair records the loss and nothing else.
    let snap = snapshot(dir.path());
    let dry = inspect(&["repair", "--dry-run", p(dir.path())]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would record ids"), "{dry:?}");
    assert_eq!(snapshot(dir.path()), snap, "dry run changed files");
    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{rep:?}");
    assert!(rep.stdout.contains("recorded ids"), "{rep:?}");
    assert!(actlog_engine::missing_marker_path(dir.path(), gone_base).is_file());

    // verify now passes with a warning, and every other record is served.
    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("recorded in quarantine/"), "{out:?}");
    let after = engine_records(dir.path());
    let want: Vec<_> = before
        .into_iter()
        .filter(|r| r.id < gone_base || r.id >= next_base)
        .collect();
    assert_eq!(after, want);
}

#[test]
fn repair_refuses_while_a_log_holds_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 100);
    let log = Log::open(dir.path(), small()).expect("open");
    let snap = snapshot(dir.path());
    let out = inspect(&["repair", p(dir.path())]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("lock"), "{out:?}");
    assert_eq!(snapshot(dir.path()), snap, "repair changed files");
    // verify reads without the lock.
    assert_verify_clean(dir.path());
    log.close().expect("close");
    let out = inspect(&["repair", p(dir.path())]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to repair"), "{out:?}");
}

#[test]
fn torn_tail_is_a_warning_and_repair_cuts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 120);
    let before = engine_records(dir.path());
    let active = segment_files(dir.path()).pop().expect("active segment");
    // The data's end: the writer preallocates zeros after it, and a torn
    // write lands there.
    let bytes = fs::read(&active).expect("read active");
    let base = actlog_engine::segment::SegmentHeader::decode(&bytes, &active)
        .expect("header")
        .base_id;
    let len = actlog_engine::recovery::scan_active(&bytes, &active, base)
        .expect("scan")
        .end;
    let garbage = b"\xde\xad\xbe\xef a torn write that is not a frame at all ..........";
    std::os::unix::fs::FileExt::write_all_at(
        &fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .expect("open active"),
        garbage,
        len,
    )
    .expect("write garbage");
    let file_len = fs::metadata(&active).expect("stat").len();

    let out = inspect(&["verify", p(dir.path())]);
    assert_eq!(out.code, 0, "a torn tail alone is a warning: {out:?}");
    let warning = format!("warning: {} @ {len}: torn tail", active.display());
    assert!(out.stdout.contains(&warning), "{out:?}");
    assert!(out.stdout.contains("0 damaged, 1 warnings"), "{out:?}");

    let snap = snapshot(dir.path());
    let dry = inspect(&["repair", p(dir.path()), "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would cut the torn tail"), "{dry:?}");
    assert_eq!(snapshot(dir.path()), snap, "--dry-run changed files");

    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{rep:?}");
    assert!(
        rep.stdout
            .contains(&format!("cut {} bytes", file_len - len)),
        "{rep:?}"
    );
    assert_eq!(fs::metadata(&active).expect("stat").len(), len);
    let out = assert_verify_clean(dir.path());
    assert!(out.stdout.contains("0 damaged, 0 warnings"), "{out:?}");
    assert_eq!(engine_records(dir.path()), before);
}

// ---------------------------------------------------------------- backup and restore

fn live_rec(k: u64) -> NewRecord {
    let mut r = NewRecord::new(
        CATEGORIES[(k % 3) as usize],
        "live.event",
        format!("live event {k}"),
    );
    r.entity_id = Some(format!("ent_{k}"));
    r.entity_name = k.is_multiple_of(2).then(|| format!("Entity {k}"));
    r.actor = Some(format!("writer-{}", k % 5));
    r.metadata.insert("k".into(), json!(k));
    r
}

/// Parses `(<c> copied, <k> unchanged)` from a backup's summary.
fn copied_unchanged(out: &Out) -> (usize, usize) {
    let s = &out.stdout;
    let open = s.rfind('(').unwrap_or_else(|| panic!("{out:?}"));
    let inner = &s[open + 1..s[open..].find(')').map(|c| open + c).expect(")")];
    let nums: Vec<usize> = inner
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().expect("number"))
        .collect();
    assert!(
        inner.contains("copied") && inner.contains("unchanged") && nums.len() == 2,
        "{out:?}"
    );
    (nums[0], nums[1])
}

#[test]
fn backup_of_a_live_log_under_appends_and_retention_restores_consistently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let stop = Arc::new(AtomicBool::new(false));
    let last_acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (data, stop, last_acked) = (data.clone(), stop.clone(), last_acked.clone());
        thread::spawn(move || {
            let log = Log::open(&data, small()).expect("open");
            log.set_retention(Retention {
                max_days: None,
                max_entries: Some(250),
            })
            .expect("retention");
            let mut acked = BTreeMap::new();
            let (mut k, mut batches, mut dropped_segments) = (0u64, 0u64, 0usize);
            while !stop.load(Ordering::Acquire) {
                let batch: Vec<NewRecord> = (0..1 + batches % 7)
                    .map(|_| {
                        k += 1;
                        live_rec(k)
                    })
                    .collect();
                let ids = log.append(&batch).expect("append");
                last_acked.store(*ids.last().expect("ids"), Ordering::Release);
                acked.extend(ids.into_iter().zip(batch));
                batches += 1;
                if batches.is_multiple_of(11) {
                    log.roll().expect("roll");
                }
                if batches.is_multiple_of(5) {
                    dropped_segments +=
                        log.enforce_retention().expect("retention").dropped_segments;
                }
            }
            log.close().expect("close");
            (acked, dropped_segments)
        })
    };
    let wait_for = |id: u64| {
        while last_acked.load(Ordering::Acquire) < id {
            assert!(!writer.is_finished(), "the writer stopped early");
            thread::sleep(Duration::from_millis(2));
        }
    };

    // Back up several times while the writer appends, rolls and drops segments.
    wait_for(600);
    let mut backups = Vec::new();
    for i in 0..6 {
        let to = tmp.path().join(format!("backup-{i}"));
        let out = inspect(&["backup", "--from", p(&data), "--to", p(&to)]);
        assert_eq!(out.code, 0, "{out:?}");
        let acked_at_end = last_acked.load(Ordering::Acquire);
        backups.push((to, acked_at_end));
        wait_for(acked_at_end + 40);
    }
    stop.store(true, Ordering::Release);
    let (acked, dropped_segments) = writer.join().expect("writer");
    assert!(dropped_segments > 0, "retention dropped segments meanwhile");

    for (i, (backup, acked_at_end)) in backups.iter().enumerate() {
        // Nothing torn was copied: the backup opens as it is.
        let report = Log::open_read_only(backup, Config::default())
            .expect("open backup read-only")
            .recovery_report()
            .clone();
        assert_eq!(report.torn_tail, None, "backup {i}");

        let restored = tmp.path().join(format!("restored-{i}"));
        let out = inspect(&["restore", "--from", p(backup), "--to", p(&restored)]);
        assert_eq!(out.code, 0, "backup {i}: {out:?}");
        assert_verify_clean(&restored);
        let log = Log::open(&restored, Config::default()).expect("open restored");
        assert_eq!(log.recovery_report().torn_tail, None, "backup {i}");
        let records: Vec<Record> = log
            .iter(0, Direction::Forward)
            .collect::<Result<_, _>>()
            .expect("read restored");
        log.close().expect("close");

        let (a, b) = (
            records.first().expect("records").id,
            records.last().expect("records").id,
        );
        assert!(a > 1, "backup {i}: retention had dropped the oldest ids");
        assert_eq!(
            records.iter().map(|r| r.id).collect::<Vec<_>>(),
            (a..=b).collect::<Vec<_>>(),
            "backup {i}: a contiguous id range"
        );
        assert!(
            b <= *acked_at_end,
            "backup {i} holds id {b}, but only {acked_at_end} was acknowledged when it ended"
        );
        for r in &records {
            let want = acked
                .get(&r.id)
                .unwrap_or_else(|| panic!("backup {i}: id {} was never acknowledged", r.id));
            assert_same(r, want);
        }
    }
}

#[test]
fn second_backup_is_incremental_and_restores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let backup = tmp.path().join("backup");
    build(&data, 150);

    let first = inspect(&["backup", "--from", p(&data), "--to", p(&backup)]);
    assert_eq!(first.code, 0, "{first:?}");
    let (copied, unchanged) = copied_unchanged(&first);
    assert!(copied > 4 && unchanged == 0, "{first:?}");

    // More records, a roll, and retention dropping the oldest segments.
    let oldest = segment_files(&data)[0].clone();
    {
        let log = Log::open(&data, small()).expect("open");
        for i in 0..20 {
            log.append(&[rec(1000 + i), rec(2000 + i)]).expect("append");
        }
        log.roll().expect("roll");
        log.append_one(&rec(3000)).expect("append");
        log.set_retention(Retention {
            max_days: None,
            max_entries: Some(120),
        })
        .expect("retention");
        let outcome = log.enforce_retention().expect("enforce");
        assert!(outcome.dropped_segments > 0, "{outcome:?}");
        log.close().expect("close");
    }
    assert!(!oldest.exists());

    let second = inspect(&["backup", "--from", p(&data), "--to", p(&backup)]);
    assert_eq!(second.code, 0, "{second:?}");
    let (copied2, unchanged2) = copied_unchanged(&second);
    assert!(unchanged2 >= 4 && copied2 >= 2, "{second:?}");
    assert!(
        !backup.join(oldest.file_name().expect("name")).exists(),
        "files retention dropped leave the backup"
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(backup.join("MANIFEST.json")).expect("manifest"))
            .expect("manifest json");
    let mut listed: Vec<String> = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect();
    listed.push("MANIFEST.json".into());
    listed.sort();
    let present: Vec<String> = snapshot(&backup).into_keys().collect();
    assert_eq!(
        present, listed,
        "the backup holds exactly its manifest's files"
    );

    // Nothing changed since: only the mutable files (watermark, id
    // reservation, active segment) are copied again.
    let third = inspect(&["backup", "--from", p(&data), "--to", p(&backup)]);
    assert_eq!(third.code, 0, "{third:?}");
    let (copied3, unchanged3) = copied_unchanged(&third);
    assert!(copied3 <= 3 && unchanged3 >= 4, "{third:?}");

    let restored = tmp.path().join("restored");
    let out = inspect(&["restore", "--from", p(&backup), "--to", p(&restored)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_verify_clean(&restored);
    let want = engine_records(&data);
    assert_eq!(want.len(), 120);
    assert_eq!(engine_records(&restored), want);
}

#[test]
fn restore_rejects_a_damaged_backup_and_a_non_empty_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let backup = tmp.path().join("backup");
    build(&data, 120);
    let out = inspect(&["backup", "--from", p(&data), "--to", p(&backup)]);
    assert_eq!(out.code, 0, "{out:?}");

    // A non-empty target without --force is a usage error; nothing changes.
    let occupied = tmp.path().join("occupied");
    fs::create_dir(&occupied).expect("mkdir");
    fs::write(occupied.join("notes.txt"), b"mine").expect("write");
    let out = inspect(&["restore", "--from", p(&backup), "--to", p(&occupied)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(snapshot(&occupied).len(), 1);

    // One altered byte in a segment of the backup.
    let seg = segment_files(&backup)[1].clone();
    let mut bytes = fs::read(&seg).expect("read");
    bytes[100] ^= 1;
    fs::write(&seg, &bytes).expect("write");
    let name = seg
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();

    let fresh = tmp.path().join("fresh");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    for target in [&fresh, &empty] {
        let out = inspect(&["restore", "--from", p(&backup), "--to", p(target)]);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains(&name), "names the file: {out:?}");
    }
    assert!(!fresh.exists(), "nothing written");
    assert!(snapshot(&empty).is_empty(), "nothing written");
}

// ---------------------------------------------------------------- dump

const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// Who sent record `i` in the dump test (`None`: as stored before the field
/// existed).
fn recorder_of(i: u64) -> Option<String> {
    [
        None,
        Some("key_0a1b2c3d4e5f"),
        Some("server"),
        Some("key_ffeeddccbbaa"),
    ][(i % 4) as usize]
        .map(str::to_owned)
}

#[test]
fn dump_filters_print_exactly_what_the_engine_query_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), small()).expect("open");
        for chunk in (0..300u64).collect::<Vec<_>>().chunks(10) {
            let batch: Vec<(i64, NewRecord)> = chunk
                .iter()
                .map(|&i| {
                    let r = NewRecord {
                        recorded_by: recorder_of(i),
                        ..rec(i)
                    };
                    (T0 + i as i64 * 1_000_000, r)
                })
                .collect();
            log.append_at(&batch).expect("append");
        }
        log.close().expect("close");
    }
    assert!(segment_files(dir.path()).len() >= 5);
    let log = Log::open_read_only(dir.path(), Config::default()).expect("open read-only");
    let since = format_ts(T0 + 120 * 1_000_000);

    let cases: Vec<(Vec<&str>, Selection, Order, usize)> = vec![
        (vec![], Selection::default(), Order::Asc, MAX_LIMIT),
        (
            vec!["--category", "entity"],
            Selection::default().with(Field::Category, "entity"),
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec!["--category", "entity", "--category", "device"],
            Selection::default()
                .with(Field::Category, "entity")
                .with(Field::Category, "device"),
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec!["--q", "proj*"],
            Selection::default().with_words("proj*"),
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec!["--q", "proj"],
            Selection::default().with_words("proj"),
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec!["--since", &since],
            Selection {
                since: Some(T0 + 120 * 1_000_000),
                ..Selection::default()
            },
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec!["--order", "desc", "--limit", "7"],
            Selection::default(),
            Order::Desc,
            7,
        ),
        (
            vec!["--recorded-by", "server"],
            Selection::default().with(Field::RecordedBy, "server"),
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec![
                "--recorded-by",
                "key_0a1b2c3d4e5f",
                "--recorded-by",
                "key_ffeeddccbbaa",
                "--category",
                "device",
            ],
            Selection::default()
                .with(Field::RecordedBy, "key_0a1b2c3d4e5f")
                .with(Field::RecordedBy, "key_ffeeddccbbaa")
                .with(Field::Category, "device"),
            Order::Asc,
            MAX_LIMIT,
        ),
        (
            vec![
                "--category",
                "device",
                "--q",
                "proj*",
                "--since",
                &since,
                "--order",
                "desc",
                "--limit",
                "5",
            ],
            Selection {
                since: Some(T0 + 120 * 1_000_000),
                ..Selection::default()
            }
            .with(Field::Category, "device")
            .with_words("proj*"),
            Order::Desc,
            5,
        ),
    ];
    for (flags, selection, order, limit) in cases {
        let page = log
            .query(&Query {
                selection,
                order,
                limit,
                cursor: None,
            })
            .expect("query");
        assert!(page.next_cursor.is_none() || limit < MAX_LIMIT);
        let want = page.items;
        assert!(!want.is_empty(), "{flags:?} matches something");
        if limit == MAX_LIMIT && flags.len() > 1 {
            assert!(want.len() < 300, "{flags:?} filters something");
        }

        // ndjson: the same records, byte for byte as the API's JSON.
        let mut args = vec!["dump", p(dir.path())];
        args.extend_from_slice(&flags);
        let out = inspect(&args);
        assert_eq!(out.code, 0, "{flags:?}: {out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        let expect: Vec<String> = want.iter().map(json_line).collect();
        assert_eq!(lines, expect, "{flags:?}");
        for (line, r) in lines.iter().zip(&want) {
            let v: Value = serde_json::from_str(line).expect("ndjson line");
            assert_eq!(
                v["recorded_by"].as_str(),
                recorder_of(r.id - 1).as_deref(),
                "{line}"
            );
        }
        if flags.first() == Some(&"--recorded-by") {
            assert!(
                want.iter()
                    .all(|r| r.recorded_by.as_deref().is_some_and(|k| flags.contains(&k))),
                "{flags:?}"
            );
        }
        assert_eq!(
            dump_ndjson(dir.path(), &flags),
            want.iter().map(|r| r.id).collect::<Vec<_>>(),
            "{flags:?}"
        );

        // csv: the header, then the same records' cells.
        args.extend_from_slice(&["--format", "csv"]);
        let out = inspect(&args);
        assert_eq!(out.code, 0, "{flags:?}: {out:?}");
        assert!(
            out.stdout.starts_with(
                "id,ts,category,action,actor,entity_type,entity_id,entity_name,message,severity,metadata,recorded_by\n"
            ),
            "{out:?}"
        );
        let mut reader = csv::Reader::from_reader(out.stdout.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(header, CSV_COLUMNS);
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|row| row.expect("csv row").iter().map(str::to_string).collect())
            .collect();
        let ids: Vec<u64> = rows.iter().map(|r| r[0].parse().expect("id")).collect();
        assert_eq!(
            ids,
            want.iter().map(|r| r.id).collect::<Vec<_>>(),
            "{flags:?}"
        );
        let expect: Vec<Vec<String>> = want
            .iter()
            .map(|r| csv_cells(r).iter().map(|c| c.to_string()).collect())
            .collect();
        assert_eq!(rows, expect, "{flags:?}");
        for (row, r) in rows.iter().zip(&want) {
            assert_eq!(row.len(), 12);
            assert_eq!(
                row[11],
                recorder_of(r.id - 1).unwrap_or_default(),
                "{row:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- usage

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    build(&tmp.path().join("data"), 20);
    let data = tmp.path().join("data");
    let missing = tmp.path().join("does-not-exist");
    let file = tmp.path().join("a-file");
    fs::write(&file, b"not a directory").expect("write");
    let (b, r) = (tmp.path().join("b"), tmp.path().join("r"));
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["verify"],
        vec!["ls"],
        vec!["stat"],
        vec!["dump"],
        vec!["repair"],
        vec!["verify", p(&missing)],
        vec!["verify", p(&file)],
        vec!["ls", p(&missing)],
        vec!["stat", p(&missing)],
        vec!["dump", p(&missing)],
        vec!["repair", p(&missing)],
        vec!["dump", p(&data), "--order", "sideways"],
        vec!["dump", p(&data), "--since", "yesterday"],
        vec!["dump", p(&data), "--format", "xml"],
        vec!["backup", "--to", p(&b)],
        vec!["backup", "--from", p(&missing), "--to", p(&b)],
        vec!["restore", "--from", p(&missing), "--to", p(&r)],
        vec!["frobnicate", p(&data)],
    ];
    for args in cases {
        let out = inspect(&args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: {out:?}");
    }
    assert!(!missing.exists());
    assert!(!r.exists() && !b.exists());
}

// ---------------------------------------------------------------- forged active records: edge cases

/// What else lies in the active segment next to the forged records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beside {
    Nothing,
    /// A complete frame with a forged payload after the last commit: an
    /// uncommitted batch, a torn tail (a warning), never damage.
    ForgedUncommittedTail,
    /// The active index snapshot (`.aidx`) left by the clean close, its
    /// data CRC recomputed so that the open trusts it and skips parsing
    /// the records it covers.
    TrustedSnapshot,
}

/// Builds `n` records in batches of 5 (in one segment unless `small`),
/// forges the payloads of the active segment's records `locals` (of the
/// [`unreadable_payload`] kinds `kinds`, in turn), and checks that the open
/// refuses them (unless a trusted snapshot covers them), that verify names
/// the first at its offset, that repair cuts before its batch and keeps
/// every batch before, and that no id is ever handed out again.
fn forged_active_case(
    n: u64,
    small_segments: bool,
    locals: &[usize],
    beside: Beside,
    kinds: &[usize],
) {
    let what = format!("n {n} small {small_segments} forged {locals:?} {beside:?} kinds {kinds:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = if small_segments {
        small()
    } else {
        Config::default()
    };
    build_with(dir.path(), n, config.clone());
    let before = engine_records(dir.path());
    let max_acked = before.last().expect("records").id;
    let active = segment_files(dir.path()).pop().expect("segments");
    let base = base_of(&active);
    let mut bytes = fs::read(&active).expect("read");
    let scan = actlog_engine::recovery::scan_active(&bytes, &active, base).expect("scan");
    let table = scan.table;
    for (j, &k) in locals.iter().enumerate() {
        let at = table.offsets[k] as usize;
        let forged = unreadable_payload(kinds[j % kinds.len()], payload_len(&bytes, at));
        rewrite_payload(&mut bytes, at, &forged);
    }
    let end = scan.end as usize;
    let mut max_acked_or_written = max_acked;
    if beside == Beside::ForgedUncommittedTail {
        let mut frame = Vec::new();
        let id = base + table.offsets.len() as u64;
        let ts = *table.ts.last().expect("a record");
        actlog_engine::frame::encode_into(
            &mut frame,
            id,
            ts,
            actlog_engine::frame::FLAG_FLUSH,
            &unreadable_payload(5, 60),
        );
        if bytes.len() < end + frame.len() {
            bytes.resize(end + frame.len(), 0);
        }
        bytes[end..end + frame.len()].copy_from_slice(&frame);
        max_acked_or_written = id;
    }
    fs::write(&active, &bytes).expect("write");
    if beside == Beside::TrustedSnapshot {
        let snap = active.with_extension("aidx");
        let mut s = fs::read(&snap).expect("a clean close leaves a snapshot");
        let t = s.len() - 24;
        let data_end = u64::from_le_bytes(s[t + 8..t + 16].try_into().expect("8")) as usize;
        let crc = crc32fast::hash(&bytes[..data_end]);
        s[t + 16..t + 20].copy_from_slice(&crc.to_le_bytes());
        let tcrc = crc32fast::hash(&s[t..t + 20]);
        s[t + 20..t + 24].copy_from_slice(&tcrc.to_le_bytes());
        fs::write(&snap, &s).expect("write snapshot");
        // The server starts on it; the forged record is what it cannot serve.
        let log = Log::open_read_only(dir.path(), Config::default()).expect("open on snapshot");
        let forged_id = base + locals[0] as u64;
        assert!(
            log.get(forged_id).is_err(),
            "{what}: get of the forged record"
        );
    }

    if !locals.is_empty() && beside != Beside::TrustedSnapshot {
        assert!(
            Log::open_read_only(dir.path(), Config::default()).is_err(),
            "{what}: an unreadable acknowledged record refuses the open"
        );
    }
    let out = inspect(&["verify", p(dir.path())]);
    if locals.is_empty() {
        assert_eq!(
            out.code, 0,
            "{what}: a forged uncommitted batch is a torn tail: {out:?}"
        );
        assert!(
            out.stdout
                .contains(&format!("{} @ {end}: torn tail", active.display())),
            "{what}: {out:?}"
        );
    } else {
        assert_eq!(out.code, 1, "{what}: {out:?}");
        let first = table.offsets[*locals.iter().min().expect("one")] as u64;
        assert!(
            damage_offsets(&out, &active).contains(&first),
            "{what}: the damage is named at the frame ({first}):\n{out:?}"
        );
    }

    let rep = inspect(&["repair", p(dir.path())]);
    assert_eq!(rep.code, 0, "{what}: {rep:?}");
    assert_verify_clean(dir.path());
    let after = engine_records(dir.path());
    // Every batch before the one holding the first forged record stays.
    let keep_below = match locals.iter().min() {
        None => u64::MAX,
        Some(&k) => {
            let forged_id = base + k as u64;
            // Batches of 5 from id 1.
            forged_id - (forged_id - 1) % 5
        }
    };
    let want: Vec<Record> = before
        .iter()
        .filter(|r| r.id < keep_below)
        .cloned()
        .collect();
    assert!(
        after == want,
        "{what}: kept {:?}..{:?}, want up to {keep_below}",
        after.first().map(|r| r.id),
        after.last().map(|r| r.id)
    );
    if !locals.is_empty() {
        let copies = fs::read_dir(dir.path().join(QUARANTINE_DIR))
            .expect("quarantine/")
            .map(|e| fs::read(e.expect("entry").path()).expect("read"))
            .filter(|c| *c == bytes)
            .count();
        assert_eq!(copies, 1, "{what}: the segment as it was is kept");
    }
    let log = Log::open(dir.path(), config).expect("open after repair");
    let next = log.append_one(&rec(999)).expect("append");
    // An uncommitted batch was never acknowledged: alone, its ids may be
    // handed out; after a cut for damage, repair marks past every id.
    let floor = if locals.is_empty() {
        max_acked
    } else {
        max_acked_or_written
    };
    assert!(
        next > floor,
        "{what}: id {next} reused (acked up to {max_acked}, written up to {max_acked_or_written})"
    );
    assert!(log.get(next).expect("get").is_some(), "{what}");
    log.close().expect("close");
    assert_verify_clean(dir.path());
}

#[test]
fn forged_active_records_in_every_position_are_cut_before_their_batch() {
    // The active segment is the only one; the forged record in its first
    // batch (first or middle record), its last batch, or two of them.
    forged_active_case(12, false, &[0], Beside::Nothing, &[5, 0]);
    forged_active_case(12, false, &[2], Beside::Nothing, &[5, 0]);
    forged_active_case(12, false, &[11], Beside::Nothing, &[5, 0]);
    forged_active_case(12, false, &[6, 10], Beside::Nothing, &[5, 0]);
    forged_active_case(12, false, &[10, 6], Beside::Nothing, &[5, 0]);
    // The first batch of an active segment after sealed ones.
    forged_active_case(200, true, &[0], Beside::Nothing, &[5, 0]);
    // Next to a forged uncommitted batch, and alone with one.
    forged_active_case(12, false, &[7], Beside::ForgedUncommittedTail, &[5, 0]);
    forged_active_case(12, false, &[], Beside::ForgedUncommittedTail, &[5, 0]);
    // Behind a snapshot the open trusts.
    forged_active_case(12, false, &[3], Beside::TrustedSnapshot, &[5, 0]);
    forged_active_case(12, false, &[11], Beside::TrustedSnapshot, &[5, 0]);
}
