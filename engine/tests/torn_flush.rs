//! The torn-flush rule of recovery against bytes a client chose: zeros in
//! a payload never turn damage to acknowledged records into a cut, and a
//! frame planted in a payload never makes a directory that only crashed
//! refuse to open. The first two tests reproduced breaks found by an
//! adversarial review of format 2 (2026-12-06) and failed before the fix;
//! the controls show the same crash and damage without the client's bytes.

use std::fs;
use std::path::{Path, PathBuf};

use actlog_engine::frame::{self, FLAG_COMMIT};
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
        .expect("ls")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

/// Frame offsets of the file (header walk, no checks beyond the length).
fn frame_offsets(bytes: &[u8]) -> Vec<(usize, u64)> {
    let mut out = vec![];
    let mut pos = SEGMENT_HEADER_LEN;
    while let Ok(h) = frame::parse_header(&bytes[pos..]) {
        out.push((pos, h.id));
        pos += h.frame_len();
    }
    out
}

/// A clean close leaves an active-index snapshot: a crash would not.
fn drop_snapshots(dir: &Path) {
    for e in fs::read_dir(dir).expect("ls") {
        let p = e.expect("e").path();
        if p.extension().is_some_and(|e| e == "aidx") {
            fs::remove_file(p).expect("rm aidx");
        }
    }
}

/// Media damage (one flipped bit, synced data) in the LAST flush, which was
/// acknowledged. FORMAT.md: "bit rot or a stray write does not leave an
/// aligned run of zeros", so open should refuse (Corruption). But a client
/// chose 1,100 NUL bytes in its metadata: the aligned zero sector inside the
/// payload is taken for a "lost sector", and recovery silently cuts the
/// three acknowledged records as a "torn tail".
#[test]
fn client_zeros_never_turn_damage_to_acknowledged_records_into_a_cut() {
    bit_rot_case("\0");
}

/// Control: the same bit rot without the client's zeros is refused.
#[test]
fn control_bit_rot_without_client_zeros_is_refused() {
    bit_rot_case("a");
}

fn bit_rot_case(fill: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let acked = {
        let log = Log::open(dir, Config::default()).expect("open");
        let mut acked = vec![log.append_one(&plain(0)).expect("append")];
        let batch = vec![
            with_meta("has zeros", vec![("z", fill.repeat(1100))]),
            plain(2),
            plain(3),
        ];
        acked.extend(log.append(&batch).expect("append batch"));
        log.close().expect("close");
        acked
    };
    drop_snapshots(dir);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("read");
    let frames = frame_offsets(&bytes);
    assert_eq!(frames.len(), 4);
    // Bit rot in the ts field of the batch's first frame.
    let (off, id) = frames[1];
    bytes[off + 16] ^= 0x04;
    fs::write(&seg, &bytes).expect("write");

    match Log::open(dir, Config::default()) {
        Err(Error::Corruption { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(log) => {
            let got: Vec<u64> = log
                .iter(0, Direction::Forward)
                .map(|r| r.expect("r").id)
                .collect();
            panic!(
                "damaged acknowledged record {id} (of acked {acked:?}) was cut silently: \
                 served {got:?}, report {:?}",
                log.recovery_report().torn_tail
            );
        }
    }
}

/// Builds a frame (ASCII-only bytes, so it can sit in a JSON string) with
/// id `id`, no FLUSH flag.
fn planted_frame(id: u64) -> Vec<u8> {
    for n in 0u64.. {
        let payload = format!("PLANT{n:011}");
        let mut f = Vec::new();
        frame::encode_into(
            &mut f,
            id,
            0x3030_3030_3030_3030,
            FLAG_COMMIT,
            payload.as_bytes(),
        );
        if f.iter().all(|&b| b < 0x80) {
            return f;
        }
    }
    unreachable!()
}

/// A crash tears the flush of one record R (its first page reaches the disk,
/// its second does not: the zeros of the preallocated region show there).
/// R was never acknowledged; open should cut it as a torn tail. R's metadata
/// holds a frame a client planted (a plausible id, NO flush flag). The search
/// for valid frames after the stop point finds the planted frame inside R's
/// first sector, before the lost one; `torn_flush` then finds no lost
/// sector between the stop point and that "first valid frame" and open
/// refuses a directory that only crashed.
#[test]
fn a_planted_frame_never_makes_a_crashed_directory_refuse() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let first_id;
    {
        let log = Log::open(dir, Config::default()).expect("open");
        first_id = log.append_one(&plain(0)).expect("append");
        let planted = String::from_utf8(planted_frame(first_id + 4)).expect("ascii");
        // R: the planted frame early in its payload, then enough padding
        // to reach into the next 4 KiB page.
        let r = with_meta("carrier", vec![("p", planted), ("pad", "x".repeat(3950))]);
        log.append_one(&r)
            .expect("append R (its flush is what the crash tears)");
        log.close().expect("close");
    }
    drop_snapshots(dir);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("read");
    let frames = frame_offsets(&bytes);
    let (r_off, _) = frames[1];
    let r_end = r_off + frame::parse_header(&bytes[r_off..]).expect("h").frame_len();
    assert!(
        r_end > 4096 && r_off < 4096,
        "R must span a page boundary: {r_off}..{r_end}"
    );
    // The crash image: R's second page never reached the disk.
    let hi = 8192.min(bytes.len());
    bytes[4096..hi].fill(0);
    fs::write(&seg, &bytes).expect("write");

    let log = Log::open(dir, Config::default()).expect("a directory that only crashed opens");
    let got: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("r").id)
        .collect();
    assert_eq!(got, vec![first_id]);
}

/// Control: the same crash image without a planted frame opens (R is cut).
#[test]
fn control_same_crash_without_planted_frame_opens() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let first_id;
    {
        let log = Log::open(dir, Config::default()).expect("open");
        first_id = log.append_one(&plain(0)).expect("append");
        let r = with_meta(
            "carrier",
            vec![("p", "y".repeat(40)), ("pad", "x".repeat(3950))],
        );
        log.append_one(&r).expect("append R");
        log.append_one(&plain(5))
            .expect("append after R (same torn flush? no: later)");
        log.close().expect("close");
    }
    drop_snapshots(dir);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("read");
    // Drop the third record's flush entirely and R's second page.
    let frames = frame_offsets(&bytes);
    let (third, _) = frames[2];
    bytes[third..].fill(0);
    let hi = 8192.min(bytes.len());
    bytes[4096..hi].fill(0);
    fs::write(&seg, &bytes).expect("write");
    let log = Log::open(dir, Config::default()).expect("opens");
    let got: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("r").id)
        .collect();
    assert_eq!(got, vec![first_id]);
}

/// Cost of the search for valid frames behind a torn flush when client
/// payloads are full of plausible frame headers (an in-window id every 16
/// bytes, a 32 KiB length, ASCII only): every such offset costs a 32 KiB
/// CRC, so the "linear" search does ~2,000 bytes of CRC per byte searched.
#[test]
fn payloads_full_of_plausible_frame_headers_still_recover() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let n_records: u64 = std::env::var("ZZ_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    {
        let log = Log::open(dir, Config::default()).expect("open");
        let first = log.append_one(&plain(0)).expect("append");
        // In-window id: a little above the batch's ids, ASCII bytes only.
        let id = first + 0x0102;
        let mut unit = vec![b'A'; 4];
        unit.extend_from_slice(&[0x7f, 0x7f, 0x00, 0x00]); // len 32639, flags 0
        unit.extend_from_slice(&id.to_le_bytes());
        assert!(unit.iter().all(|&b| b < 0x80));
        let s = String::from_utf8(unit.repeat(240)).expect("ascii");
        let batch: Vec<NewRecord> = (0..n_records)
            .map(|_| with_meta("pattern", vec![("p", s.clone())]))
            .collect();
        log.append(&batch)
            .expect("append the batch (its flush is torn below)");
        log.close().expect("close");
    }
    drop_snapshots(dir);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).expect("read");
    let frames = frame_offsets(&bytes);
    let (batch_start, _) = frames[1];
    // The crash lost the page holding the batch's first frame header.
    let page = batch_start / 4096 * 4096;
    bytes[batch_start..page + 4096].fill(0);
    let searched = bytes.len() - batch_start;
    fs::write(&seg, &bytes).expect("write");
    let t = std::time::Instant::now();
    let r = Log::open(dir, Config::default());
    let took = t.elapsed();
    eprintln!(
        "open over {searched} torn bytes took {took:?}: {:?}",
        r.as_ref().map(|l| l.recovery_report().torn_tail.clone())
    );
    let log = r.expect("a torn flush opens");
    let torn = log
        .recovery_report()
        .torn_tail
        .clone()
        .expect("the torn flush is cut");
    assert_eq!(torn.offset as usize, batch_start);
    assert_eq!(log.iter(0, Direction::Forward).count(), 1);
}
