//! The audit's scenario through the real `actlog-inspect backup` and
//! `restore`: a live log (held open by this process, as a server holds it)
//! whose last acknowledged record was crafted so that the last 48 bytes of
//! its frame read as a valid seal footer for a file ending right there,
//! which is exactly where a backup cuts the active segment. Restored, the
//! log must hold every acknowledged record and hand out ids above every id
//! acknowledged, including those acknowledged after the backup was taken.
//!
//! The writer side is the engine in-process (the tools' tests cannot start
//! the `actlog` server binary), which stores any `recorded_by` it is given:
//! the forgery is planted in both shapes a payload's tail can take.
//! server/tests/forged_footer_e2e.rs makes the same attempt over HTTP
//! against the real server, where the key id the server writes last in
//! every payload keeps it from fitting.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use actlog_engine::segment::Footer;
use actlog_engine::{Config, Direction, Log, NewRecord, Record};
use serde_json::{Map, Value};

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

fn active_end(log: &Log) -> u64 {
    log.segments().last().expect("an active segment").bytes
}

/// Where the forged footer lies at the end of the payload (as in
/// engine/tests/hostile_payload.rs): in the metadata string and
/// `occurred_at`, before the nil of an absent `recorded_by`; or in
/// `recorded_by` itself, the payload's last element (an engine caller that
/// lets it be chosen; the server never does).
#[derive(Debug, Clone, Copy)]
enum Tail {
    Nil,
    RecordedBy,
}

impl Tail {
    fn record(self, s: String, occurred_at: Option<i64>) -> NewRecord {
        match self {
            Tail::Nil => record("forged footer ahead", Some(s), occurred_at),
            Tail::RecordedBy => NewRecord {
                recorded_by: Some(s),
                ..record("forged footer ahead", None, None)
            },
        }
    }

    fn probe(self) -> NewRecord {
        match self {
            Tail::Nil => self.record("A".repeat(46), Some(65_536)),
            Tail::RecordedBy => self.record("A".repeat(52), None),
        }
    }
}

/// The record whose frame, ending at `end`, has as its last 48 bytes a
/// valid footer for a file of `end` bytes.
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
        let footer = Footer {
            count: 1,
            data_crc: ascii(knob.wrapping_add(k)),
            first_ts: 0x2020_2020_2020_2020,
            last_ts: 0x2020_2020_2020_2020,
            data_end,
            table_crc: match tail {
                // Byte 42: the `0xce` of a u32 `occurred_at`, whose bytes are
                // 43..47; byte 47: the nil of `recorded_by`.
                Tail::Nil => u32::from_le_bytes([t[0], t[1], 0xce, t[3]]),
                Tail::RecordedBy => ascii(k),
            },
        };
        let bytes = footer.encode();
        let mut s = b"    ".to_vec();
        match tail {
            Tail::Nil => {
                if bytes[47] != 0xc0 {
                    continue;
                }
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

/// Appends (padding first as needed) a record whose frame ends in a forged
/// footer at the end of the active segment; returns its id.
fn append_forged(log: &Log, knob: u32, tail: Tail, acked: &mut Vec<u64>) -> u64 {
    for _ in 0..1_000 {
        let before = active_end(log);
        acked.push(log.append_one(&tail.probe()).expect("probe"));
        let after = active_end(log);
        if after <= before {
            continue; // rolled in between: probe again
        }
        let frame_len = after - before;
        for _ in 0..200 {
            let end = active_end(log) + frame_len;
            if let Some(hostile) = forged_footer(end, knob, tail) {
                let id = log.append_one(&hostile).expect("hostile record");
                acked.push(id);
                if active_end(log) == end {
                    return id;
                }
                break; // the segment rolled before it: learn the length again
            }
            acked.push(log.append_one(&record("pad", None, None)).expect("pad"));
        }
    }
    panic!("could not place a forged footer at the end of the active segment");
}

fn records(log: &Log) -> Vec<Record> {
    log.iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("read records")
}

fn newest_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

#[test]
fn a_forged_footer_at_the_backup_cut_neither_loses_records_nor_reuses_ids() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (round, (knob, tail)) in [
        (7u32, Tail::Nil),
        (0x5eed, Tail::RecordedBy),
        (0xdead_beef, Tail::Nil),
    ]
    .into_iter()
    .enumerate()
    {
        let live = tmp.path().join(format!("live-{round}"));
        let bk = tmp.path().join(format!("backup-{round}"));
        let restored = tmp.path().join(format!("restored-{round}"));
        let log = Log::open(&live, small()).expect("open");
        let mut acked = Vec::new();
        for i in 0..(25 + 10 * round as u64) {
            let batch: Vec<NewRecord> = (0..3)
                .map(|k| record(&format!("acknowledged {i}.{k}"), None, None))
                .collect();
            acked.extend(log.append(&batch).expect("append"));
        }
        let forged = append_forged(&log, knob, tail, &mut acked);
        assert_eq!(acked.last(), Some(&forged));
        let want = records(&log);
        assert_eq!(want.iter().map(|r| r.id).collect::<Vec<_>>(), acked);
        // One more flush: a backup of a live directory leaves out the newest
        // flush (it may not be durable yet), so this one is where it cuts,
        // right after the forged frame.
        let newest = log
            .append_one(&record("n", None, None))
            .expect("append the newest flush");
        assert_eq!(newest, forged + 1);

        // The backup, taken while the log is open (lock-free, as from a
        // running server): the copied active file ends at the forged frame.
        let out = inspect(&["backup", "--from", p(&live), "--to", p(&bk)]);
        assert_eq!(out.code, 0, "{out:?}");
        let copied = fs::read(newest_segment(&bk)).expect("read");
        assert!(
            Footer::find(&copied).is_some(),
            "round {round}: the copied active segment does not end in the forged footer, so \
             this test does not test what it should"
        );

        // The live log goes on acknowledging after the backup.
        let after: Vec<u64> = (0..10)
            .map(|i| {
                log.append_one(&record(&format!("after the backup {i}"), None, None))
                    .expect("append")
            })
            .collect();
        let max_acked = *after.last().expect("ids");
        assert!(max_acked > forged);

        let out = inspect(&["restore", "--from", p(&bk), "--to", p(&restored)]);
        assert_eq!(out.code, 0, "round {round}: {out:?}");
        let out = inspect(&["verify", p(&restored)]);
        assert_eq!(out.code, 0, "round {round}: {out:?}");
        assert!(out.stdout.contains(" 0 damaged, "), "{out:?}");

        // What a server starting on the restored directory serves.
        let r = Log::open(&restored, Config::default()).expect("open the restore");
        let got = records(&r);
        assert_eq!(
            got.iter().map(|r| r.id).collect::<Vec<_>>(),
            acked,
            "round {round}: every record acknowledged before the backup, and nothing else"
        );
        assert_eq!(got, want, "round {round}");
        let next = r
            .append_one(&record("after the restore", None, None))
            .expect("append");
        assert!(
            next > max_acked,
            "round {round}: the restored log handed out id {next}, but ids up to {max_acked} \
             were acknowledged (forged record {forged})"
        );
        r.close().expect("close");
        log.close().expect("close live");

        // `dump` agrees, and sees the new record after the acknowledged ones.
        let out = inspect(&["dump", p(&restored)]);
        assert_eq!(out.code, 0, "{out:?}");
        let ids: Vec<u64> = out
            .stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("ndjson")["id"]
                    .as_u64()
                    .expect("id")
            })
            .collect();
        let mut expect = acked.clone();
        expect.push(next);
        assert_eq!(ids, expect, "round {round}");
        eprintln!(
            "round {round}: {} records acknowledged before the backup (forged id {forged}), \
             {} after; restored next id {next}",
            acked.len(),
            after.len()
        );
    }
}
