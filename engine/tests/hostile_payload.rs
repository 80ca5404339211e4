//! Bytes a client chooses never decide how a file is read.
//!
//! A writer controls most of a record's payload: metadata strings (any
//! UTF-8, NUL included) and `occurred_at`, whose MessagePack encoding for
//! 65,536..2^32 µs is `0xce` and four big-endian bytes the client picks;
//! only the one-byte nil of an absent `recorded_by` (the last element since
//! format 3) follows it. A caller that let `recorded_by` be chosen would
//! hand over the last bytes entirely; both shapes are forged below. So the last 48 bytes of a frame can be made to
//! read as a valid seal footer whose geometry fits a file that ends right
//! there — which is exactly how a backup copies the active segment (up to
//! its last committed frame), and how open leaves it after cutting a torn
//! tail. Format 1 decided "sealed" from those 48 bytes: the restored log
//! then ended after one record and handed the acknowledged ids after it out
//! again. Now the newest segment is the active one whatever it ends with.
//!
//! The property: random logs in which a biased generator plants forged
//! footers and valid-looking frames at the end of payloads, backed up (the
//! active file cut at its last committed frame), restored, opened: exactly
//! the acknowledged records, and the next id above every id ever
//! acknowledged.

mod common;

use std::fs;
use std::path::Path;

use actlog_engine::backup::open_item;
use actlog_engine::frame::{encode_into, FLAG_COMMIT, FLAG_FLUSH};
use actlog_engine::segment::Footer;
use actlog_engine::{ids, Config, Direction, Log, NewRecord, Record};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// The engine's smallest segment, so that logs roll often.
fn config() -> Config {
    Config {
        segment_max_bytes: 4096,
        ..Config::default()
    }
}

fn record(message: &str, meta: Option<String>, occurred_at: Option<i64>) -> NewRecord {
    let mut metadata = Map::new();
    if let Some(s) = meta {
        metadata.insert("note".into(), Value::from(s));
    }
    NewRecord {
        metadata,
        occurred_at,
        ..NewRecord::new("entity", "entity.updated", message)
    }
}

/// Where the active segment's committed frames end.
fn active_end(log: &Log) -> u64 {
    log.segments().last().expect("an active segment").bytes
}

/// Where a forged footer lies at the end of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// In the metadata string and `occurred_at`, followed by the nil of an
    /// absent `recorded_by`: bytes a client chooses.
    Nil,
    /// In `recorded_by`, the payload's last element: the worst case, a
    /// caller that lets that string be chosen too (the server never does:
    /// it writes a key id or `server`).
    RecordedBy,
}

impl Tail {
    fn of(knob: u32) -> Tail {
        if knob.is_multiple_of(2) {
            Tail::Nil
        } else {
            Tail::RecordedBy
        }
    }

    /// A record of this shape around the string `s`.
    fn record(self, s: String, occurred_at: Option<i64>) -> NewRecord {
        match self {
            Tail::Nil => record("forged footer ahead", Some(s), occurred_at),
            Tail::RecordedBy => NewRecord {
                recorded_by: Some(s),
                ..record("forged footer ahead", None, None)
            },
        }
    }

    /// A record whose frame is as long as a forged one of this shape.
    fn probe(self) -> NewRecord {
        match self {
            // `occurred_at` ≥ 65,536 encodes as `0xce` and four bytes.
            Tail::Nil => self.record("A".repeat(46), Some(65_536)),
            Tail::RecordedBy => self.record("A".repeat(52), None),
        }
    }
}

/// A record whose frame, ending at `end`, has as its last 48 bytes a valid
/// footer for a file of `end` bytes (one record, `data_end = end - 52`),
/// if `end` allows an all-ASCII string.
fn forged_footer(end: u64, knob: u32, tail: Tail) -> Option<NewRecord> {
    let data_end = end.checked_sub(52)?;
    if data_end.to_le_bytes().iter().any(|&b| b >= 0x80) {
        return None;
    }
    let ascii = |x: u32| {
        let b = x.to_le_bytes();
        u32::from_le_bytes(b.map(|c| 0x20 + c % 0x5f))
    };
    for k in 0..200_000u32 {
        let t = ascii(k).to_le_bytes();
        let table_crc = match tail {
            // Footer byte 42 is the `0xce` that MessagePack writes before a
            // u32 `occurred_at`, whose four big-endian bytes are footer
            // bytes 43..47; byte 47 is the nil of `recorded_by`.
            Tail::Nil => u32::from_le_bytes([t[0], t[1], 0xce, t[3]]),
            Tail::RecordedBy => ascii(k),
        };
        let footer = Footer {
            count: 1,
            data_crc: ascii(knob.wrapping_add(k)),
            first_ts: 0x2020_2020_2020_2020,
            last_ts: 0x2020_2020_2020_2020,
            data_end,
            table_crc,
        };
        let bytes = footer.encode();
        // Four table bytes, then the footer's bytes that are string bytes.
        let mut s = b"    ".to_vec();
        match tail {
            Tail::Nil => {
                if bytes[47] != 0xc0 {
                    continue;
                }
                // At least 0x20 << 24: a u32 above 65,535.
                let occurred_at = u32::from_be_bytes([bytes[43], bytes[44], bytes[45], bytes[46]]);
                s.extend_from_slice(&bytes[..42]);
                return Some(tail.record(String::from_utf8(s).ok()?, Some(i64::from(occurred_at))));
            }
            Tail::RecordedBy => {
                if !bytes.is_ascii() {
                    continue;
                }
                s.extend_from_slice(&bytes);
                return Some(tail.record(String::from_utf8(s).ok()?, None));
            }
        }
    }
    None
}

/// Appends a record whose frame ends in a forged footer; returns its id.
/// Pads with small records until the footer's offsets can be ASCII.
fn append_forged(log: &Log, knob: u32, acked: &mut Vec<u64>) -> u64 {
    let tail = Tail::of(knob);
    // Learn the hostile record's frame length from a probe of the same shape.
    let probe = tail.probe();
    let before = active_end(log);
    acked.push(log.append_one(&probe).expect("probe"));
    let after = active_end(log);
    // A roll in between makes the difference meaningless: probe again.
    if after <= before {
        return append_forged(log, knob, acked);
    }
    let frame_len = after - before;
    loop {
        let end = active_end(log) + frame_len;
        if let Some(hostile) = forged_footer(end, knob, tail) {
            let id = log.append_one(&hostile).expect("hostile record");
            acked.push(id);
            if active_end(log) == end {
                return id;
            }
            // The segment rolled before the record: try again in the new one.
            continue;
        }
        acked.push(log.append_one(&record("pad", None, None)).expect("pad"));
    }
}

/// A record whose metadata holds a valid frame (with the next ids, commit
/// and flush flags): bytes a torn-tail search must never mistake for the
/// log's own.
fn planted_frame(next_id: u64) -> NewRecord {
    let mut frame = Vec::new();
    encode_into(
        &mut frame,
        next_id + 1,
        i64::MAX / 2,
        FLAG_COMMIT | FLAG_FLUSH,
        b"planted",
    );
    let text: String = frame.iter().map(|&b| char::from(b % 0x80)).collect();
    record("planted frame", Some(text), None)
}

#[derive(Debug, Clone)]
enum Op {
    Batch(Vec<String>),
    Forged(u32),
    Planted,
    Roll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec("[a-z ]{1,300}", 1..5).prop_map(Op::Batch),
        2 => any::<u32>().prop_map(Op::Forged),
        1 => Just(Op::Planted),
        1 => Just(Op::Roll),
    ]
}

/// Copies a consistent backup of the live log into `to` the way the
/// server's backup endpoint does (the plan, each item's bytes; the active
/// segment up to what is durable, so up to the last acknowledged record).
fn backup(log: &Log, to: &Path) {
    fs::create_dir(to).expect("mkdir");
    let from = log.dir();
    for item in log.backup_plan(&[]).expect("plan") {
        let mut r = open_item(from, &item).expect("open item");
        let mut out = fs::File::create(to.join(&item.name)).expect("create");
        std::io::copy(&mut r, &mut out).expect("copy");
    }
}

fn contents(log: &Log) -> Vec<Record> {
    log.iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("read every record")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn forged_footers_and_planted_frames_never_hide_or_reuse_ids(
        ops in prop::collection::vec(op(), 1..14),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let live = tmp.path().join("live");
        let log = Log::open(&live, config()).expect("open");
        let mut acked = Vec::new();
        let mut forged_at_end = false;
        for op in &ops {
            forged_at_end = false;
            match op {
                Op::Batch(msgs) => {
                    let batch: Vec<_> = msgs.iter().map(|m| record(m, None, None)).collect();
                    acked.extend(log.append(&batch).expect("append"));
                }
                Op::Forged(knob) => {
                    append_forged(&log, *knob, &mut acked);
                    forged_at_end = true;
                }
                Op::Planted => {
                    let next = acked.last().copied().unwrap_or(0) + 1;
                    acked.push(log.append_one(&planted_frame(next)).expect("planted"));
                }
                Op::Roll => log.roll().expect("roll"),
            }
        }
        let want = contents(&log);
        prop_assert_eq!(want.iter().map(|r| r.id).collect::<Vec<_>>(), acked.clone());
        let max_acked = acked.last().copied().unwrap_or(0);

        // The backup, taken live: its active file ends at the last committed
        // frame. When that frame is a forged one, its last 48 bytes are a
        // footer that fits the file (what format 1 took for a seal).
        let bk = tmp.path().join("backup");
        backup(&log, &bk);
        if forged_at_end {
            let newest = common::files_with_ext(&bk, "log").pop().expect("a segment");
            let bytes = fs::read(&newest).expect("read");
            prop_assert!(Footer::find(&bytes).is_some(), "the forgery fits the copied file");
        }

        // Opened as copied: exactly the acknowledged records, ids go on.
        let copy = tmp.path().join("copy");
        fs::create_dir(&copy).expect("mkdir");
        for e in fs::read_dir(&bk).expect("list") {
            let e = e.expect("entry");
            fs::copy(e.path(), copy.join(e.file_name())).expect("copy");
        }
        let opened = Log::open(&copy, config()).expect("open the copy");
        prop_assert_eq!(&contents(&opened), &want);
        let next = opened.append_one(&record("after", None, None)).expect("append");
        prop_assert_eq!(next, max_acked + 1);
        drop(opened);

        // Restored (marked so): the same records, and the next id is past
        // every id the live log could have handed out since the backup.
        let restored = tmp.path().join("restored");
        fs::create_dir(&restored).expect("mkdir");
        for e in fs::read_dir(&bk).expect("list") {
            let e = e.expect("entry");
            fs::copy(e.path(), restored.join(e.file_name())).expect("copy");
        }
        ids::mark_restored(&restored, 0).expect("mark restored");
        let opened = Log::open(&restored, config()).expect("open the restore");
        prop_assert_eq!(&contents(&opened), &want);
        let next = opened.append_one(&record("after", None, None)).expect("append");
        prop_assert!(next > max_acked);
        let more: Vec<u64> = (0..20)
            .map(|i| log.append_one(&record(&format!("live {i}"), None, None)).expect("live"))
            .collect();
        prop_assert!(more.iter().all(|&id| id < next), "{more:?} vs {next}");
        drop(opened);
        let reopened = Log::open(&restored, config()).expect("reopen the restore");
        prop_assert_eq!(reopened.last_id(), Some(next));
        drop(reopened);

        // And the live log itself, crashed (no clean close) and reopened.
        drop(log);
        let reopened = Log::open(&live, config()).expect("reopen live");
        prop_assert_eq!(reopened.last_id(), Some(more[19]));
    }
}

/// The audit's scenario, step by step: acknowledged records, a forged
/// footer as the last committed frame, a backup, the copy opened — with the
/// forgery in each shape a payload's tail can take.
#[test]
fn a_backup_ending_in_a_forged_footer_keeps_every_record() {
    for knob in [7, 8] {
        backup_ending_in_a_forged_footer(knob);
    }
}

fn backup_ending_in_a_forged_footer(knob: u32) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let live = tmp.path().join("live");
    let log = Log::open(&live, config()).expect("open");
    let mut acked: Vec<u64> = (0..5)
        .map(|i| {
            log.append_one(&record(&format!("before {i}"), None, None))
                .expect("append")
        })
        .collect();
    let forged = append_forged(&log, knob, &mut acked);
    let hostile = log.get(forged).expect("get").expect("the forged record");
    match Tail::of(knob) {
        Tail::Nil => assert_eq!(hostile.recorded_by, None),
        Tail::RecordedBy => assert_eq!(hostile.recorded_by.map(|s| s.len()), Some(52)),
    }
    assert_eq!(acked.last(), Some(&forged));
    let bk = tmp.path().join("backup");
    backup(&log, &bk);
    let newest = common::files_with_ext(&bk, "log").pop().expect("a segment");
    let bytes = fs::read(&newest).expect("read");
    let footer = Footer::find(&bytes).expect("the copied file ends in a footer that fits it");
    assert_eq!(footer.count, 1);

    let opened = Log::open(&bk, config()).expect("open the backup");
    assert_eq!(
        contents(&opened).iter().map(|r| r.id).collect::<Vec<_>>(),
        acked
    );
    assert_eq!(contents(&opened), contents(&log));
    assert_eq!(
        opened
            .append_one(&record("next", None, None))
            .expect("append"),
        forged + 1
    );
}
