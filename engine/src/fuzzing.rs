//! The checks behind the fuzz targets in `fuzz/`, kept here so that the
//! same functions replay the checked-in corpora as ordinary `cargo test`
//! cases (see the tests at the bottom) and can reach crate-private decoders.
//!
//! Every function takes arbitrary bytes and panics only when an invariant
//! is broken; errors on bad input are the expected outcome.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::env::sim::{Fault, Image, SimFs};
use crate::env::Fs;
use crate::frame;
use crate::index::file::{
    IndexBytes, SealedIndex, Trust, INDEX_FOOTER_LEN, INDEX_MAGIC, INDEX_VERSION,
};
use crate::index::TS_STRIDE;
use crate::query::Cursor;
use crate::record::Record;
use crate::segment::{segment_path, SegmentHeader};
use crate::{write_atomic_in, Config, Direction, Log, NewRecord, Retention};

/// Reads bytes off the front of the fuzz input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, i| acc | u64::from(self.byte()) << (8 * i))
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/fuzz/data")
}

fn sim_config(sim: &SimFs) -> Config {
    Config {
        segment_max_bytes: 1024,
        fs: Fs::new(sim.clone()),
        ..Config::default()
    }
}

fn all_records(log: &Log) -> Vec<Record> {
    log.iter(0, Direction::Forward)
        .collect::<crate::Result<Vec<_>>>()
        .unwrap_or_else(|e| panic!("a served record fails to read: {e}"))
}

fn message(n: u64, len: u8) -> NewRecord {
    NewRecord::new(
        "device",
        "device.changed",
        format!("m{n} {}", "z".repeat(usize::from(len % 96))),
    )
}

/// `recover_segment`: arbitrary bytes as a segment file.
///
/// The first byte picks the shape: (0) the bytes as the active segment,
/// (1) behind a valid segment header, (2) a genuine log — two sealed
/// segments with index files and an active one — damaged by the input's
/// (file, offset, xor) triples and optional truncation. Opening must not
/// panic; every record it serves must pass its CRC and be one of the
/// records written (never a record decoded from damaged bytes); a second
/// recovery is a fixed point.
pub fn recover_segment(data: &[u8]) {
    let mut input = Input(data);
    let sim = SimFs::new();
    let mut written: BTreeMap<u64, Record> = BTreeMap::new();
    match input.byte() % 3 {
        0 => sim.put_file(&segment_path(&dir(), 1), input.0),
        1 => {
            let mut bytes = SegmentHeader::new(1, 0).encode().to_vec();
            bytes.extend_from_slice(input.0);
            sim.put_file(&segment_path(&dir(), 1), &bytes);
        }
        _ => {
            let (files, records) = &base_logs()[usize::from(input.byte() & 1)];
            for (path, bytes) in files {
                sim.put_file(path, bytes);
            }
            for r in records {
                written.insert(r.id, r.clone());
            }
            let files: Vec<PathBuf> = sim
                .files()
                .into_iter()
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "log" || e == "idx" || e == "aidx")
                })
                .collect();
            let flips = input.byte() % 8;
            for _ in 0..flips {
                let f = &files[usize::from(input.byte()) % files.len()];
                let Some(mut bytes) = sim.file(f) else {
                    continue;
                };
                if bytes.is_empty() {
                    continue;
                }
                let at = usize::from(input.u16()) % bytes.len();
                bytes[at] ^= input.byte().max(1);
                sim.put_file(f, &bytes);
            }
            if input.byte() & 1 == 1 {
                let f = &files[usize::from(input.byte()) % files.len()];
                if let Some(bytes) = sim.file(f) {
                    let keep = usize::from(input.u16()) % (bytes.len() + 1);
                    sim.put_file(f, &bytes[..keep]);
                }
            }
        }
    }
    let Ok(log) = Log::open(dir(), sim_config(&sim)) else {
        return;
    };
    // Active-segment damage is caught by the open-time scan, so every
    // record then reads back. Sealed segments are trusted by their footer
    // and each read checks its frame: there a read may fail, never lie.
    let first = readable_records(&log);
    if written.is_empty() {
        assert!(
            first.1.is_none(),
            "a recovered record fails to read: {:?}",
            first.1
        );
    }
    for r in &first.0 {
        if let Some(orig) = written.get(&r.id) {
            assert_eq!(r, orig, "a served record differs from the one written");
        } else {
            assert!(
                written.is_empty(),
                "record {} was never written but is served",
                r.id
            );
        }
    }
    drop(log);
    // Read-only: it reports a torn tail without cutting it, so "none" means
    // the first recovery left nothing to cut (and it writes no snapshot,
    // which keeps the target fast).
    let log = match Log::open_read_only(dir(), sim_config(&sim)) {
        Ok(log) => log,
        Err(e) => panic!("a recovered log fails to reopen: {e}"),
    };
    assert!(
        log.recovery_report().torn_tail.is_none(),
        "recovery is idempotent: {:?}",
        log.recovery_report()
    );
    assert_eq!(first, readable_records(&log), "second recovery differs");
}

type BaseLog = (Vec<(PathBuf, Vec<u8>)>, Vec<Record>);

/// Two genuine logs to damage, built once: two sealed segments with index
/// files, and an active segment that is (0) non-empty or (1) empty.
fn base_logs() -> &'static [BaseLog; 2] {
    static LOGS: std::sync::OnceLock<[BaseLog; 2]> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| [base_log(false), base_log(true)])
}

fn base_log(roll_last: bool) -> BaseLog {
    let sim = SimFs::new();
    let Ok(log) = Log::open(dir(), sim_config(&sim)) else {
        panic!("open on an empty simulated directory")
    };
    for i in 0..30u64 {
        let batch: Vec<NewRecord> = (0..=i % 3)
            .map(|j| message(i * 4 + j, (i * 7) as u8))
            .collect();
        if log.append(&batch).is_err() {
            panic!("append on a healthy simulated directory");
        }
        if i % 12 == 11 && log.roll().is_err() {
            panic!("roll on a healthy simulated directory");
        }
    }
    if roll_last && log.roll().is_err() {
        panic!("roll on a healthy simulated directory");
    }
    let records = all_records(&log);
    drop(log);
    let files = sim
        .files()
        .into_iter()
        .filter_map(|p| sim.file(&p).map(|b| (p, b)))
        .collect();
    (files, records)
}

/// Records that read back, and the error that stopped the walk, if any.
fn readable_records(log: &Log) -> (Vec<Record>, Option<String>) {
    let mut out = Vec::new();
    for r in log.iter(0, Direction::Forward) {
        match r {
            Ok(r) => out.push(r),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

/// `append_crash`: an arbitrary sequence of appends, rolls, retention runs,
/// clears and settings writes on the simulated filesystem, some appends hit
/// by an injected fault (EIO, ENOSPC, a short write) after which the handle
/// is brought back with [`Log::recover`]; then the power is cut at an
/// arbitrary operation and the directory rebuilt from an arbitrary crash
/// image (a prefix of the unsynced writes and directory operations: a file
/// cut short, a rename lost, a temp file left). Recovery must yield every
/// acknowledged record at or above the recovered watermark, in order, each
/// failed batch entirely or not at all, nothing else; and, if that recovery
/// changed anything on disk, recover again to the same after another crash.
///
/// The input starts with the power cut (u16) and a byte whose bits 0–1 pick
/// the crash image and bits 2–3 the segment size, 1 KiB (the smallest
/// allowed: the most rolls) to 8 KiB (fewer rolls, so more of the run's time
/// goes to appends and recoveries; each roll encodes an index, whose fst
/// builder costs a fixed ~1 MB registry).
pub fn append_crash(data: &[u8]) {
    let mut input = Input(data);
    let cut = u64::from(input.u16() % 512) + 1;
    let shape = input.byte();
    let image = match shape % 4 {
        0 => Image::DurableOnly,
        1 => Image::All,
        _ => Image::Partial(input.u64()),
    };
    let sim = SimFs::new();
    let config = Config {
        segment_max_bytes: 1024 << (shape >> 2 & 3),
        ..sim_config(&sim)
    };
    let Ok(log) = Log::open(dir(), config.clone()) else {
        panic!("open on an empty simulated directory")
    };
    sim.fail_nth(None, cut, Fault::PowerCut);
    let settings = dir().join("settings.json");
    let mut events: Vec<Event> = Vec::new();
    let (mut low, mut low_attempt) = (1u64, None);
    let (mut set, mut set_attempt) = (None, None);
    let mut seq = 0u64;
    for step in 0..48u32 {
        if input.0.is_empty() {
            break;
        }
        let op = input.byte();
        let ok = match op % 8 {
            0..=3 => {
                if op & 0x80 != 0 {
                    let fault = [Fault::Eio, Fault::Enospc, Fault::ShortWrite][usize::from(op % 3)];
                    sim.fail_nth(None, u64::from(op >> 3 & 3) + 1, fault);
                }
                let batch: Vec<NewRecord> = (0..=op / 8 % 8)
                    .map(|_| {
                        seq += 1;
                        message(seq, input.byte())
                    })
                    .collect();
                match log.append(&batch) {
                    Ok(ids) => {
                        for (id, r) in ids.into_iter().zip(batch) {
                            events.push(Event::Acked(id, r.message));
                        }
                        true
                    }
                    Err(_) => {
                        events.push(Event::Failed(
                            batch.into_iter().map(|r| r.message).collect(),
                        ));
                        assert!(log.is_failed(), "a failed append fail-stops the handle");
                        // Brought back in place; fails only if the power is off.
                        log.recover().is_ok()
                    }
                }
            }
            4 => log.roll().is_ok() || log.recover().is_ok(),
            5 => {
                let n = u64::from(op / 8) + 1;
                let target = log.last_id().map_or(1, |l| (l + 1).saturating_sub(n));
                let r = log
                    .set_retention(Retention {
                        max_days: None,
                        max_entries: Some(n),
                    })
                    .and_then(|()| log.enforce_retention());
                log.wait_for_reapers();
                let _ = log.set_retention(Retention::default());
                match r {
                    Ok(out) => low = out.low_watermark,
                    Err(_) => low_attempt = Some(target.max(low)),
                }
                r.is_ok()
            }
            6 => {
                let target = log.last_id().map_or(1, |l| l + 1);
                let r = log.clear();
                log.wait_for_reapers();
                match r {
                    Ok(_) => low = target,
                    Err(_) => low_attempt = Some(target),
                }
                r.is_ok()
            }
            _ => {
                let bytes = format!("{{\"step\":{step}}}").into_bytes();
                match write_atomic_in(&sim, &settings, &bytes) {
                    Ok(()) => set = Some(bytes),
                    Err(_) => set_attempt = Some(bytes),
                }
                set_attempt.is_none()
            }
        };
        if !ok {
            break;
        }
    }
    sim.power_off();
    // A process that loses power runs no destructor: no close-time work.
    log.abandon();
    sim.restart(image);
    let crashed = files_of(&sim);
    let log = match Log::open(dir(), config.clone()) {
        Ok(log) => log,
        Err(e) => panic!("recovery after a crash failed: {e}"),
    };
    let wm = match log.stats() {
        Ok(s) => s.low_watermark,
        Err(e) => panic!("stats: {e}"),
    };
    assert!(
        wm == low || Some(wm) == low_attempt,
        "watermark {wm}: acknowledged {low}, attempted {low_attempt:?}"
    );
    let got: Vec<(u64, String)> = all_records(&log)
        .into_iter()
        .map(|r| (r.id, r.message))
        .collect();
    check_history(&got, &events, wm);
    let on_disk = sim.file(&settings);
    assert!(
        on_disk == set || (on_disk.is_some() && on_disk == set_attempt),
        "settings file is neither the old nor the new contents"
    );
    // Everything that recovery did is durable: a power cut now changes
    // nothing. When recovery changed no byte and no file of the crash image
    // (most runs) and nothing is left unsynced, a second recovery would start
    // from that same image and prove nothing: skip it, and the close (whose
    // index snapshot only a second recovery would read). Only recovery's
    // effects, as the simulator sees them, decide; not its own report.
    if sim.is_durable() && files_of(&sim) == crashed {
        log.abandon();
        return;
    }
    drop(log);
    // (Read-only: it neither cuts nor saves, which also keeps the target
    // fast.)
    sim.power_off();
    sim.restart(Image::DurableOnly);
    let log = match Log::open_read_only(dir(), config) {
        Ok(log) => log,
        Err(e) => panic!("second recovery failed: {e}"),
    };
    assert!(
        log.recovery_report().torn_tail.is_none(),
        "recovery left a torn tail: {:?}",
        log.recovery_report()
    );
    let again: Vec<(u64, String)> = all_records(&log)
        .into_iter()
        .map(|r| (r.id, r.message))
        .collect();
    assert_eq!(got, again, "second recovery differs");
}

/// Every file of `sim` with its bytes, in path order.
fn files_of(sim: &SimFs) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    sim.files()
        .into_iter()
        .map(|p| {
            let bytes = sim.file(&p);
            (p, bytes)
        })
        .collect()
}

/// What the workload of [`append_crash`] did, in order.
enum Event {
    /// An acknowledged record.
    Acked(u64, String),
    /// The messages of a batch whose append failed.
    Failed(Vec<String>),
}

/// `got` (the recovered records, by id) is the acknowledged history at or
/// above `wm`, with each failed batch entirely present or absent (one cut
/// by the watermark may show its tail).
fn check_history(got: &[(u64, String)], events: &[Event], wm: u64) {
    let mut at = 0;
    for ev in events {
        match ev {
            Event::Acked(id, msg) if *id >= wm => {
                assert_eq!(
                    got.get(at),
                    Some(&(*id, msg.clone())),
                    "acknowledged record {id} lost or changed (watermark {wm}); got {got:?}"
                );
                at += 1;
            }
            Event::Acked(..) => {}
            Event::Failed(msgs) => {
                let Some((id, first)) = got.get(at) else {
                    continue;
                };
                let Some(k) = msgs.iter().position(|m| m == first) else {
                    continue;
                };
                assert!(
                    k == 0 || *id == wm,
                    "failed batch {msgs:?} is half there: starts at {first} (id {id})"
                );
                for m in &msgs[k..] {
                    assert_eq!(
                        got.get(at).map(|g| &g.1),
                        Some(m),
                        "failed batch {msgs:?} is half there"
                    );
                    at += 1;
                }
            }
        }
    }
    assert_eq!(at, got.len(), "records nobody wrote: {:?}", &got[at..]);
}

/// `decode_record`: arbitrary bytes as a frame and as a MessagePack
/// payload. Decoding never panics; a frame that decodes has a CRC that
/// verifies and a length within the cap; a payload that decodes yields a
/// record with the frame's id and ts; a payload the in-place view accepts
/// reads the same through every reader.
pub fn decode_record(data: &[u8]) {
    if let Ok(f) = frame::decode(data) {
        assert!(f.payload.len() <= frame::MAX_PAYLOAD);
        assert!(frame::verify(&f.header, &data[4..frame::HEADER_LEN], f.payload).is_ok());
        if let Ok(r) = Record::decode(f.header.id, f.header.ts, f.payload) {
            assert_eq!((r.id, r.ts), (f.header.id, f.header.ts));
        }
    }
    let _ = frame::parse_header(data);
    if let Ok(r) = Record::decode(7, 11, data) {
        assert_eq!((r.id, r.ts), (7, 11));
    }
    if let Ok(view) = crate::RecordView::parse(7, 11, data) {
        assert_readers_agree(&view);
    }
}

/// Whatever the view accepts, every reader renders alike: the owned record
/// (what `get` answers) builds, and its metadata written as JSON is the
/// very text lists and exports write straight from the stored bytes. (Text,
/// not maps: a key repeated in the bytes, or a 32-bit float, would read the
/// same as a map and differently as text.)
pub(crate) fn assert_readers_agree(view: &crate::RecordView<'_>) {
    let owned = view
        .to_record()
        .expect("a payload the view accepts decodes into a record");
    let listed = serde_json::to_vec(&view.metadata).expect("accepted metadata transcodes");
    let got = serde_json::to_vec(&owned.metadata).expect("a map writes");
    assert_eq!(
        String::from_utf8_lossy(&listed),
        String::from_utf8_lossy(&got)
    );
}

/// `decode_index`: arbitrary bytes as an index file. The first byte picks
/// the shape:
///
/// * odd: the raw bytes as the whole file;
/// * even, bit 1 clear: a body behind a footer with valid checksums and
///   section lengths, its term dictionary a valid fst built from input keys,
///   each pointing at an input-chosen place in the postings (mostly right
///   after the previous key's entry, as the encoder writes them), then input
///   bytes as the postings and the sparse ts: this reaches what actlog
///   itself parses (postings entries, roaring bitmaps, sparse ts);
/// * even, bit 1 set: the same, but input bytes as the term dictionary
///   itself, which reaches fst's node decoding (fst 0.4 panics on an
///   invalid dictionary; the engine must contain it, see
///   `index/fst_guard.rs`).
///
/// The checksums are what stand between disk damage and the parser;
/// assembling past them lets the fuzzer reach the rest. Parsing never
/// panics (a panic inside fst is turned into an error by the engine; the
/// fuzz target's hook, [`contain_fst_panics`], lets only those pass). In a
/// parsed index, whose dictionary passed the load-time check, no walk or
/// lookup reaches a panic inside fst (entries and bitmaps may still be bad:
/// errors of their own); looking a streamed key up finds that key's entry;
/// every sparse ts sample reads.
pub fn decode_index(data: &[u8]) {
    let Some(Ok(idx)) = index_of(data) else {
        return;
    };
    // A panic inside fst that the guard turned into an error: after the
    // load-time check, none may happen (bad postings entries and bitmaps
    // are still errors of their own).
    fn contained<T>(r: &crate::Result<T>) -> bool {
        matches!(r, Err(e) if e.to_string().contains("fst panicked"))
    }
    let mut keys = Vec::new();
    let walked = idx.for_prefix(&[], |key, _, load| {
        let loaded = load();
        let found = idx.bitmap(key);
        assert!(
            !contained(&found),
            "a key that streamed fails to look up: {found:?}"
        );
        // The same entry, so the same bitmap or the same error.
        assert_eq!(
            found.map_err(|e| e.to_string()),
            loaded.map(Some).map_err(|e| e.to_string()),
            "looking key {key:?} up finds another entry than streaming it"
        );
        view_agrees(&idx, key);
        keys.push(key.to_vec());
        Ok(())
    });
    assert!(
        !contained(&walked),
        "a checked dictionary fails to stream: {walked:?}"
    );
    for key in &keys {
        let mut next = key.clone();
        if let Some(last) = next.last_mut() {
            *last = last.wrapping_add(1);
        }
        let longer = [&key[..], &[0]].concat();
        for probe in [&next[..], &longer[..], &key[..key.len().saturating_sub(1)]] {
            let r = idx.bitmap(probe);
            assert!(
                !contained(&r),
                "looking up {probe:?} panics inside fst: {r:?}"
            );
        }
    }
    for code in 0..=8u8 {
        let r = idx.for_prefix(&[code], |_, _, _| Ok(()));
        assert!(
            !contained(&r),
            "a checked dictionary fails to stream field {code}: {r:?}"
        );
    }
    for k in 0..idx.sparse_len() {
        let _ = idx.sparse_ts(k);
    }
}

/// Where both read an entry, the in-place view pages use holds exactly
/// what the decoded bitmap holds, in both walk orders. (Either may refuse
/// bytes the other takes: the crate checks array order and bitmap counts,
/// which the view leaves alone; the view refuses unordered keys and runs,
/// which the crate takes. A refusal is an error, never a panic.)
fn view_agrees(idx: &SealedIndex, key: &[u8]) {
    let (Ok(Some(bm)), Ok(Some((_, view)))) = (idx.bitmap(key), idx.view(key)) else {
        return;
    };
    for desc in [false, true] {
        let mut walked = Vec::new();
        let _ = view.walk(0..u32::MAX, desc, |x| {
            walked.push(x);
            std::ops::ControlFlow::Continue(())
        });
        let mut want: Vec<u32> = bm.iter().filter(|&x| x < u32::MAX).collect();
        if desc {
            want.reverse();
        }
        assert_eq!(walked, want, "the view of {key:?} walks other values");
    }
    for x in bm.iter().take(64) {
        for probe in [x, x.wrapping_add(1), x.wrapping_sub(1)] {
            assert_eq!(
                view.contains(probe),
                bm.contains(probe),
                "the view of {key:?} disagrees on {probe}"
            );
        }
    }
}

/// The index file [`decode_index`] makes of `data`, parsed (`None` when no
/// file can be made of it).
fn index_of(data: &[u8]) -> Option<std::result::Result<SealedIndex, String>> {
    let mut input = Input(data);
    let mode = input.byte();
    let count = u64::from(input.u16() % 512);
    let bytes = if mode & 1 == 1 {
        input.0.to_vec()
    } else if mode & 2 == 0 {
        let fst_bytes = built_dictionary(&mut input)?;
        behind_valid_footer(&fst_bytes, input.0, count)
    } else {
        let len = usize::from(input.u16()).min(input.0.len());
        let (fst_bytes, postings) = input.0.split_at(len);
        behind_valid_footer(fst_bytes, postings, count)
    };
    Some(SealedIndex::parse(
        Path::new("fuzz.idx"),
        IndexBytes::Owned(bytes),
        1,
        count,
        Trust::Unchecked,
    ))
}

/// A valid term dictionary for [`decode_index`]: up to 15 keys from the
/// input, each with an offset that is (selector % 4) 0: any u64, 1: a u16
/// gap after the previous key's entry, 2–3: right after it (entries are
/// read from the postings, which are the rest of the input).
fn built_dictionary(input: &mut Input<'_>) -> Option<Vec<u8>> {
    enum At {
        Anywhere(u64),
        Gap(u64),
    }
    let mut keys: BTreeMap<Vec<u8>, At> = BTreeMap::new();
    for _ in 0..input.byte() % 16 {
        let len = usize::from(input.byte() % 6) + 1;
        let key: Vec<u8> = (0..len).map(|_| input.byte()).collect();
        let at = match input.byte() % 4 {
            0 => At::Anywhere(input.u64()),
            1 => At::Gap(u64::from(input.u16())),
            _ => At::Gap(0),
        };
        keys.insert(key, at);
    }
    let postings = input.0;
    let mut end = 0u64;
    let keys = keys.into_iter().map(|(key, at)| {
        let off = match at {
            At::Anywhere(off) => off,
            At::Gap(gap) => end.saturating_add(gap),
        };
        let len = usize::try_from(off)
            .ok()
            .and_then(|o| postings.get(o.checked_add(4)?..o.checked_add(8)?))
            .map_or(0, |l| u64::from(crate::segment::footer::le_u32(l)));
        end = off.saturating_add(8).saturating_add(len);
        (key, off)
    });
    fst::Map::from_iter(keys)
        .ok()
        .map(|m| m.into_fst().into_inner())
}

/// An index file of `fst_bytes`, `rest` (postings, then as much of the
/// sparse ts as it covers, zeros for the remainder) and a footer with valid
/// checksums and section lengths, for `count` records from id 1.
fn behind_valid_footer(fst_bytes: &[u8], rest: &[u8], count: u64) -> Vec<u8> {
    let ts_len = (count as usize).div_ceil(TS_STRIDE as usize) * 8;
    let mut body = fst_bytes.to_vec();
    body.extend_from_slice(rest);
    body.resize(body.len().max(fst_bytes.len() + ts_len), 0);
    let fst_len = fst_bytes.len();
    let post_len = body.len() - fst_len - ts_len;
    let mut footer = [0u8; INDEX_FOOTER_LEN];
    footer[0..8].copy_from_slice(&INDEX_MAGIC);
    footer[8..10].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    footer[12..16].copy_from_slice(&(count as u32).to_le_bytes());
    footer[16..24].copy_from_slice(&1u64.to_le_bytes());
    footer[24..32].copy_from_slice(&(fst_len as u64).to_le_bytes());
    footer[32..40].copy_from_slice(&(post_len as u64).to_le_bytes());
    footer[40..44].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let c = crc32fast::hash(&footer[0..44]);
    footer[44..48].copy_from_slice(&c.to_le_bytes());
    body.extend_from_slice(&footer);
    body
}

/// For fuzz targets that feed crafted index files (`decode_index`): installs
/// a panic hook that lets a panic inside fst which the engine contains
/// (`index/fst_guard.rs`) unwind quietly to the guard, which turns it into a
/// corruption error; every other panic goes to the hook installed before
/// (libFuzzer's, which prints it and aborts: a reported crash). Call it once,
/// after libFuzzer's initialisation (the `init:` block of `fuzz_target!`).
///
/// Why this is sound: the flag it consults is thread-local and set only for
/// the dynamic extent of a guarded closure, which calls fst and nothing else
/// that can panic (no engine code, no caller's callback), and it is cleared
/// on return and on unwind alike. So a panic seen with the flag set was
/// raised by fst on this thread and is caught by that guard's
/// `catch_unwind` (fuzz builds unwind; under `panic=abort` nothing unwinds
/// and the process aborts anyway, which is still reported). A panic while
/// unwinding aborts in std regardless of any hook. A panic on another
/// thread, or in engine code between two guarded fst calls, sees the flag
/// clear and aborts. What is given up: a panic inside fst caused by actlog
/// misusing fst would be contained too; but it would surface as an error
/// the checks assert against (`decode_index` asserts that a dictionary
/// which passed the load-time check never panics again), and the other
/// targets, which only ever see dictionaries the engine wrote, keep the
/// aborting hook.
pub fn contain_fst_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !crate::index::fst_guard::inside() {
            previous(info);
        }
    }));
}

/// `decode_cursor`: arbitrary bytes as a cursor. Never panics; a cursor
/// that parses re-encodes to the same bytes.
pub fn decode_cursor(data: &[u8]) {
    if let Ok(c) = Cursor::from_bytes(data) {
        assert_eq!(c.to_bytes(), data, "cursor round trip");
        assert_eq!(Cursor::from_bytes(&c.to_bytes()).ok(), Some(c));
    }
}

/// Seed inputs for the corpora: (target, file name, bytes). Built from a
/// real log on the simulated filesystem with a fixed clock, so they are
/// deterministic and in step with the on-disk format.
#[doc(hidden)]
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let sim = SimFs::new();
    let config = Config {
        clock: crate::Clock::from_fn(|| 1_767_225_600_000_000),
        ..sim_config(&sim)
    };
    let Ok(log) = Log::open(dir(), config) else {
        return out;
    };
    for i in 0..6u64 {
        let mut r = message(i, (i * 17) as u8);
        r.entity_type = Some("scene".into());
        r.entity_id = Some(format!("s{i}"));
        r.recorded_by = (i != 5).then(|| format!("key_{i:012x}"));
        let _ = log.append(&[r]);
    }
    let active = sim
        .files()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "log"));
    if let Some((path, file)) = active.and_then(|p| sim.file(&p).map(|b| (p, b))) {
        // The frames, without most of the zeros the writer preallocates
        // after them (64 are kept: recovery must read them as that region).
        let end =
            crate::recovery::scan_active(&file, &path, 1).map_or(file.len(), |s| s.end as usize);
        let bytes = &file[..end];
        let mut raw = vec![0u8];
        raw.extend_from_slice(bytes);
        raw.extend_from_slice(&file[end..file.len().min(end + 64)]);
        out.push(("recover_segment", "active-raw".into(), raw));
        let mut behind = vec![1u8];
        behind.extend_from_slice(bytes.get(32..).unwrap_or_default());
        out.push(("recover_segment", "active-frames".into(), behind.clone()));
        behind.truncate(behind.len() - 5);
        out.push(("recover_segment", "active-torn".into(), behind));
        if let Ok(f) = frame::decode(bytes.get(32..).unwrap_or_default()) {
            let len = f.header.frame_len();
            out.push((
                "decode_record",
                "frame".into(),
                bytes[32..32 + len].to_vec(),
            ));
            out.push(("decode_record", "payload".into(), f.payload.to_vec()));
        }
    }
    // A payload as format 2 and older wrote it: ten elements, no `recorded_by`.
    if let Ok(mut legacy) = message(9, 30).encode_payload() {
        if legacy.first() == Some(&0x9b) && legacy.pop() == Some(0xc0) {
            legacy[0] = 0x9a;
            out.push(("decode_record", "payload-format-2".into(), legacy));
        }
    }
    let _ = log.roll();
    let index = sim
        .files()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "idx"));
    if let Some(bytes) = index.and_then(|p| sim.file(&p)) {
        let mut raw = vec![1u8, 6, 0];
        raw.extend_from_slice(&bytes);
        out.push(("decode_index", "raw".into(), raw));
        // The real postings and sparse ts behind a dictionary of two keys
        // pointing at their first two entries.
        let body = &bytes[..bytes.len() - INDEX_FOOTER_LEN];
        let fst_len = crate::segment::footer::le_u64(&bytes[body.len() + 24..]) as usize;
        let mut fixed = vec![0u8, 6, 0, 2];
        fixed.extend_from_slice(&[1, 0x01, 0x61, 2]);
        fixed.extend_from_slice(&[1, 0x02, 0x62, 2]);
        fixed.extend_from_slice(&body[fst_len..]);
        out.push(("decode_index", "body".into(), fixed));
        // The whole real body, its dictionary as raw bytes.
        let mut raw_fst = vec![2u8, 6, 0];
        raw_fst.extend_from_slice(&(fst_len as u16).to_le_bytes());
        raw_fst.extend_from_slice(body);
        out.push(("decode_index", "fst".into(), raw_fst));
    }
    let sel = crate::Selection::default();
    for (name, order) in [("desc", crate::Order::Desc), ("asc", crate::Order::Asc)] {
        let c = Cursor::after(&sel, order, 42);
        out.push(("decode_cursor", name.into(), c.to_bytes()));
    }
    out.push(("recover_segment", "sealed-intact".into(), vec![2, 0, 0, 0]));
    out.push(("recover_segment", "sealed-rolled".into(), vec![2, 1, 0, 0]));
    out.push((
        "recover_segment",
        "sealed-flipped".into(),
        vec![2, 0, 2, 0, 0x40, 0x01, 0x10, 1, 0x90, 0, 0x80, 0],
    ));
    out.push((
        "recover_segment",
        "sealed-cut".into(),
        vec![2, 0, 0, 1, 2, 0x00, 0x02],
    ));
    out.push((
        "append_crash",
        "appends".into(),
        vec![40, 0, 2, 0, 1, 8, 3, 16, 4, 24, 5],
    ));
    out.push((
        "append_crash",
        "roll-retain-clear".into(),
        vec![
            90, 0, 3, 5, 6, 7, 8, 9, 1, 2, 3, 4, 40, 9, 12, 20, 4, 13, 1, 6, 7, 2,
        ],
    ));
    out.push((
        "append_crash",
        "settings".into(),
        vec![30, 0, 1, 7, 1, 1, 7, 12, 7],
    ));
    out
}

/// Runs `check` on every file of `fuzz/corpus/<target>/` (and of
/// `fuzz/regressions/<target>/` if present); returns how many ran.
#[doc(hidden)]
pub fn replay_corpus(root: &Path, target: &str, check: impl Fn(&[u8])) -> usize {
    let mut n = 0;
    for sub in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                check(&bytes);
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    //! The checked-in fuzz corpora, replayed as plain tests.
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
    }

    fn replay(target: &str, check: impl Fn(&[u8])) {
        let n = replay_corpus(&root(), target, check);
        assert!(n > 0, "no corpus for {target} under fuzz/corpus/{target}");
    }

    #[test]
    fn corpus_recover_segment() {
        replay("recover_segment", recover_segment);
    }

    #[test]
    fn corpus_append_crash() {
        replay("append_crash", append_crash);
    }

    #[test]
    fn corpus_decode_record() {
        replay("decode_record", decode_record);
    }

    #[test]
    fn corpus_decode_index() {
        replay("decode_index", decode_index);
    }

    #[test]
    fn corpus_decode_cursor() {
        replay("decode_cursor", decode_cursor);
    }

    /// The generated seeds are checked in (`ACTLOG_WRITE_SEEDS=1` rewrites
    /// them, e.g. after a format change).
    #[test]
    fn seeds_are_checked_in() {
        let seeds = seeds();
        assert!(seeds.len() >= 12, "{} seeds", seeds.len());
        let write = std::env::var_os("ACTLOG_WRITE_SEEDS").is_some();
        for (target, name, bytes) in seeds {
            let path = root()
                .join("corpus")
                .join(target)
                .join(format!("seed-{name}"));
            if write {
                std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
                std::fs::write(&path, &bytes).expect("write seed");
            }
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{} is stale: rerun with ACTLOG_WRITE_SEEDS=1",
                path.display()
            );
        }
    }

    /// Each shape of `decode_index` has a seed that gets past the checks,
    /// so the fuzzer starts from parsed indexes in every mode.
    #[test]
    fn decode_index_seeds_parse() {
        for (target, name, bytes) in seeds() {
            if target != "decode_index" {
                continue;
            }
            let parsed = index_of(&bytes).expect("an index file is made");
            let idx = parsed.unwrap_or_else(|e| panic!("seed-{name} does not parse: {e}"));
            let mut keys = 0;
            idx.for_prefix(&[], |_, _, load| {
                keys += 1;
                load().map(drop)
            })
            .unwrap_or_else(|e| panic!("seed-{name}: {e}"));
            assert!(keys >= 2, "seed-{name} has {keys} keys");
        }
    }

    /// The checked-in fst panic still reaches fst (so its replay tests the
    /// containment, not an earlier rejection) and is a load-time error.
    #[test]
    fn the_fst_panic_regression_is_contained_at_load() {
        let path = root().join("regressions/decode_index/fst-root-address-out-of-bounds-panics");
        let bytes = std::fs::read(&path).expect("read the regression");
        match index_of(&bytes) {
            Some(Err(why)) => assert!(why.contains("fst panicked"), "{why}"),
            other => panic!(
                "not rejected as a panic inside fst: {:?}",
                other.map(|r| r.map(drop))
            ),
        }
    }

    #[test]
    fn small_inputs_never_panic() {
        for len in 0..64usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            recover_segment(&data);
            append_crash(&data);
            decode_record(&data);
            decode_index(&data);
            decode_cursor(&data);
        }
    }
}
