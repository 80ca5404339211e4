//! The torn-flush rule against one flipped bit in an acknowledged frame of
//! the last flush (its length, id or flags, with or without zeros a client
//! put in its payload), and against a frame a client planted with a flush
//! mark: damage is refused, never cut as if torn; a crash is never refused.
//! Reproductions from a second adversarial review (2026-12-06); each failed
//! before the header-repair check in `recovery.rs::torn_flush`.
use std::fs;
use std::path::{Path, PathBuf};

use actlog_engine::frame::{self, FLAG_COMMIT, FLAG_FLUSH};
use actlog_engine::segment::SEGMENT_HEADER_LEN;
use actlog_engine::{Config, Direction, Error, Log, NewRecord};
use serde_json::{json, Map};

fn plain(i: u64) -> NewRecord {
    NewRecord::new("system", "system.test", format!("record {i}"))
}
fn with_meta(msg: &str, meta: Vec<(&str, String)>) -> NewRecord {
    let mut r = NewRecord::new("system", "system.test", msg.to_string());
    let mut m = Map::new();
    for (k, v) in meta {
        m.insert(k.to_string(), json!(v));
    }
    r.metadata = m;
    r
}
fn only_segment(dir: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("test step")
        .map(|e| e.expect("test step").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}
fn frame_offsets(bytes: &[u8]) -> Vec<(usize, u64, usize, u8)> {
    let mut out = vec![];
    let mut pos = SEGMENT_HEADER_LEN;
    while let Ok(h) = frame::parse_header(&bytes[pos..]) {
        out.push((pos, h.id, h.frame_len(), h.flags));
        pos += h.frame_len();
    }
    out
}
fn drop_snapshots(dir: &Path) {
    for e in fs::read_dir(dir).expect("test step") {
        let p = e.expect("test step").path();
        if p.extension().is_some_and(|e| e == "aidx") {
            fs::remove_file(p).expect("test step");
        }
    }
}
fn ids(log: &Log) -> Vec<u64> {
    log.iter(0, Direction::Forward)
        .map(|r| r.expect("test step").id)
        .collect()
}

/// Appends one record, then one batch (one flush, all acknowledged); the
/// log is dropped without close (a crash after the ack). Returns (dir, acked).
fn acked_batch(dir: &Path, batch: Vec<NewRecord>, clean_close: bool) -> Vec<u64> {
    let log = Log::open(dir, Config::default()).expect("test step");
    let mut acked = vec![log.append_one(&plain(0)).expect("test step")];
    acked.extend(log.append(&batch).expect("test step"));
    if clean_close {
        log.close().expect("test step");
    } else {
        drop(log);
    }
    drop_snapshots(dir);
    acked
}

fn expect_refused(dir: &Path, acked: &[u64], what: &str) {
    match Log::open(dir, Config::default()) {
        Err(Error::Corruption { .. }) => {}
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(log) => {
            let got = ids(&log);
            let lost: Vec<u64> = acked.iter().copied().filter(|i| !got.contains(i)).collect();
            panic!(
                "{what}: acknowledged records {lost:?} cut silently (acked {acked:?}, served {got:?}); torn_tail {:?}",
                log.recovery_report().torn_tail
            );
        }
    }
}

/// One bit flip in the LENGTH field of the first frame of the last,
/// acknowledged flush (a 3-record batch of plain records, no client bytes
/// involved): the header still reads as plausible, no valid frame starts at
/// its new end, and the extent runs into the preallocated zeros (or past
/// the file's end) -- "lost sector" -- so the two acknowledged records after
/// it (and it) are cut as a torn flush.
fn len_flip(bit: u32, clean_close: bool) {
    let tmp = tempfile::tempdir().expect("test step");
    let dir = tmp.path();
    let acked = acked_batch(dir, vec![plain(1), plain(2), plain(3)], clean_close);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("test step");
    let fr = frame_offsets(&bytes);
    assert_eq!(fr.len(), 4, "{fr:?}");
    eprintln!("file len {} frames {fr:?}", bytes.len());
    let (off, _, _, _) = fr[1];
    let lf = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().expect("test step"));
    let nlf = lf ^ (1 << bit);
    bytes[off + 4..off + 8].copy_from_slice(&nlf.to_le_bytes());
    fs::write(&seg, &bytes).expect("test step");
    expect_refused(dir, &acked, &format!("len bit {bit}"));
}

#[test]
fn a_flipped_length_bit_12_after_a_crash_is_refused() {
    len_flip(12, false);
}
#[test]
fn a_flipped_length_bit_12_after_a_clean_close_is_refused() {
    len_flip(12, true);
}
#[test]
fn a_flipped_length_bit_9_after_a_crash_is_refused() {
    len_flip(9, false);
}
#[test]
fn a_flipped_length_bit_15_after_a_clean_close_is_refused() {
    len_flip(15, true);
}

/// One bit flip in the ID (or the flag byte) of a frame of the last
/// acknowledged flush whose payload holds client NULs: plausible_frame_len
/// says None, so the "confined to one frame" refusal does not apply and the
/// client's aligned zero sector in the damaged frame's payload counts as a
/// lost sector.
fn hdr_flip_zeros(byte: usize, mask: u8) {
    let tmp = tempfile::tempdir().expect("test step");
    let dir = tmp.path();
    let acked = acked_batch(
        dir,
        vec![
            with_meta("has zeros", vec![("z", "\0".repeat(1100))]),
            plain(2),
            plain(3),
        ],
        true,
    );
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("test step");
    let fr = frame_offsets(&bytes);
    let (off, _, _, _) = fr[1];
    bytes[off + byte] ^= mask;
    fs::write(&seg, &bytes).expect("test step");
    expect_refused(dir, &acked, &format!("byte {byte} mask {mask:#x}"));
}
#[test]
fn a_flipped_id_bit_with_client_zeros_is_refused() {
    hdr_flip_zeros(8, 0x01);
}
#[test]
fn a_flipped_flag_bit_with_client_zeros_is_refused() {
    hdr_flip_zeros(7, 0x80);
}

/// Control for the above: the ts flip (the case the first fix covered) refuses.
#[test]
fn a_flipped_ts_bit_with_client_zeros_is_refused() {
    hdr_flip_zeros(16, 0x04);
}

fn planted(id: u64, flags: u8) -> Vec<u8> {
    for n in 0u64.. {
        let payload = format!("PLANT{n:011}");
        let mut f = Vec::new();
        frame::encode_into(&mut f, id, 0x3030_3030_3030_3030, flags, payload.as_bytes());
        if f.iter().all(|&b| b < 0x80) {
            return f;
        }
    }
    unreachable!()
}

/// A crash tears the flush of one never-acknowledged record R (its second
/// page is lost, reads as the preallocated zeros). R's metadata holds a
/// planted frame WITH FLAG_FLUSH: open refuses a directory that only crashed.
#[test]
fn a_planted_flush_frame_never_makes_a_crashed_directory_refuse() {
    let tmp = tempfile::tempdir().expect("test step");
    let dir = tmp.path();
    let first_id;
    {
        let log = Log::open(dir, Config::default()).expect("test step");
        first_id = log.append_one(&plain(0)).expect("test step");
        let p =
            String::from_utf8(planted(first_id + 2, FLAG_COMMIT | FLAG_FLUSH)).expect("test step");
        let r = with_meta("carrier", vec![("p", p), ("pad", "x".repeat(3950))]);
        log.append_one(&r).expect("test step");
        drop(log);
    }
    drop_snapshots(dir);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("test step");
    let fr = frame_offsets(&bytes);
    let (r_off, _, r_len, _) = fr[1];
    assert!(r_off < 4096 && r_off + r_len > 4096);
    let hi = 8192.min(bytes.len());
    bytes[4096..hi].fill(0);
    fs::write(&seg, &bytes).expect("test step");
    let log = Log::open(dir, Config::default()).expect("a directory that only crashed opens");
    assert_eq!(ids(&log), vec![first_id]);
}

/// The one crash the rule refuses, by design (docs/FORMAT.md,
/// "Assumptions"): a sector lost wholly inside one large frame of the last,
/// never acknowledged flush, whose neighbours reached the disk, looks like
/// bit rot inside one frame. Recovery refuses rather than guess; `repair`
/// cuts it without reusing ids.
#[test]
fn a_lost_sector_inside_one_large_frame_is_refused_not_guessed() {
    let tmp = tempfile::tempdir().expect("test step");
    let dir = tmp.path();
    {
        let log = Log::open(dir, Config::default()).expect("test step");
        log.append_one(&plain(0)).expect("test step");
        log.append(&[with_meta("big", vec![("pad", "x".repeat(3000))]), plain(2)])
            .expect("test step");
        drop(log);
    }
    drop_snapshots(dir);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("test step");
    let fr = frame_offsets(&bytes);
    let (r_off, _, _, _) = fr[1];
    let s = (r_off / 512 + 2) * 512;
    bytes[s..s + 512].fill(0);
    fs::write(&seg, &bytes).expect("test step");
    let err = Log::open(dir, Config::default()).expect_err("refused, not guessed");
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
}
