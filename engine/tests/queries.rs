//! Indexes, cursors, retention and clear beyond what the model test covers:
//! rebuilding damaged index files, cursor walks racing appends, rolls and
//! retention, query-parameter errors, and crash states of retention.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actlog_engine::{
    index_path, Clock, Config, Cursor, Direction, Error, Field, Log, NewRecord, Order, Query,
    Retention, Selection, DAY_US,
};
use common::{copy_crash_image, files_with_ext};

const START: i64 = 1_767_225_600_000_000;

fn rec(i: u64) -> NewRecord {
    let mut r = NewRecord::new(
        ["entity", "auth", "device", "system"][(i % 4) as usize],
        [
            "entity.updated",
            "auth.login_failed",
            "device.disconnected",
            "system.tick",
        ][(i % 4) as usize],
        format!(
            "Event {i}: projector {} dropped",
            ["kitchen", "studio", "den"][(i % 3) as usize]
        ),
    );
    r.actor = Some(["alice", "bob", "Kitchen Tablet"][(i % 3) as usize].into());
    r.entity_type = Some("device".into());
    r.entity_id = Some(format!("dev_{}", i % 7));
    r
}

fn small() -> Config {
    Config {
        segment_max_bytes: 2048,
        ..Config::default()
    }
}

fn idx_files(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "idx")
}

fn log_files(dir: &Path) -> usize {
    files_with_ext(dir, "log").len()
}

/// Dropped segments are unlinked by a background thread: wait for it.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn answers(log: &Log) -> Vec<String> {
    let sels = [
        Selection::default(),
        Selection::default().with(Field::Category, "auth"),
        Selection::default()
            .with(Field::Actor, "alice")
            .with(Field::Category, "entity"),
        Selection::default().with(Field::EntityId, "dev_3"),
        Selection::default().with_words("proj* kitchen"),
        Selection::default().with_words("Kitchen tablet"),
    ];
    let mut out = Vec::new();
    for s in &sels {
        let ids: Vec<u64> = log
            .scan(s.clone(), Order::Desc)
            .map(|r| r.expect("scan").id)
            .collect();
        out.push(format!("{ids:?}"));
        out.push(format!(
            "{:?}",
            log.facets(Field::Actor, s, "", 10).expect("facets")
        ));
        out.push(format!(
            "{:?}",
            log.histogram(s, 3_600_000_000, 0, 4 * 3_600_000_000)
                .map(|h| h.len())
                .ok()
        ));
    }
    out
}

#[test]
fn damaged_or_missing_index_files_are_rebuilt_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for chunk in (0..200u64).collect::<Vec<_>>().chunks(5) {
        let batch: Vec<_> = chunk.iter().map(|&i| rec(i)).collect();
        log.append(&batch).expect("append");
    }
    let before = answers(&log);
    log.close().expect("close");
    let files = idx_files(dir.path());
    assert!(files.len() >= 4, "several sealed segments: {}", files.len());
    let originals: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).expect("read")).collect();

    fs::remove_file(&files[0]).expect("delete");
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .expect("open");
    f.set_len(originals[1].len() as u64 / 2).expect("truncate");
    drop(f);
    let mut flipped = originals[2].clone();
    flipped[10] ^= 0x20;
    fs::write(&files[2], &flipped).expect("write");

    let log = Log::open(dir.path(), small()).expect("reopen");
    let rebuilt: Vec<&PathBuf> = log
        .recovery_report()
        .rebuilt_indexes
        .iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(rebuilt, vec![&files[0], &files[1], &files[2]]);
    assert_eq!(answers(&log), before, "queries unchanged");
    for (f, orig) in files.iter().zip(&originals) {
        assert_eq!(
            &fs::read(f).expect("read"),
            orig,
            "{} rebuilt byte for byte",
            f.display()
        );
    }
    drop(log);
    let log = Log::open(dir.path(), small()).expect("reopen");
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
}

/// The sections of an index file: (dictionary, the rest of the body).
fn split_index(file: &[u8]) -> (&[u8], &[u8]) {
    let body = &file[..file.len() - 48];
    let fst_len = u64::from_le_bytes(
        file[file.len() - 24..file.len() - 16]
            .try_into()
            .expect("8 bytes"),
    );
    body.split_at(fst_len as usize)
}

/// `file` with its term dictionary replaced by `dict` (same length), the
/// body and footer checksums recomputed: damage only a crafted file has.
fn with_dictionary(file: &[u8], dict: &[u8]) -> Vec<u8> {
    let (old, rest) = split_index(file);
    assert_eq!(old.len(), dict.len());
    let mut out = dict.to_vec();
    out.extend_from_slice(rest);
    let mut footer = file[file.len() - 48..].to_vec();
    footer[40..44].copy_from_slice(&crc32fast::hash(&out).to_le_bytes());
    let c = crc32fast::hash(&footer[..44]);
    footer[44..48].copy_from_slice(&c.to_le_bytes());
    out.extend_from_slice(&footer);
    out
}

/// What fst itself (unguarded) makes of a dictionary: every key and value
/// by streaming, and every one of `keys` looked up, or `None` if it panics.
type Plain = Option<(Vec<(Vec<u8>, u64)>, Vec<Option<u64>>)>;

fn plain_fst(dict: &[u8], keys: &[Vec<u8>]) -> Plain {
    std::panic::catch_unwind(|| {
        let map = fst::Map::new(dict.to_vec()).ok()?;
        let streamed = map.stream().into_byte_vec();
        let found = keys.iter().map(|k| map.get(k)).collect();
        Some((streamed, found))
    })
    .ok()
    .flatten()
}

/// A crafted version of `dict`: (0) its root address far out of range;
/// (1) a single-byte change of a node after which fst panics while
/// streaming; (2) one after which fst streams exactly the same keys and
/// values but some lookup finds another value or nothing (a node's
/// transition table, which only lookups read).
fn crafted(dict: &[u8], kind: usize) -> Vec<u8> {
    let good = plain_fst(dict, &[]).expect("a written dictionary streams");
    let keys: Vec<Vec<u8>> = good.0.iter().map(|(k, _)| k.clone()).collect();
    let values: Vec<Option<u64>> = good.0.iter().map(|(_, v)| Some(*v)).collect();
    let n = dict.len();
    if kind == 0 {
        // The root address: bytes -12..-4 of an fst.
        let mut d = dict.to_vec();
        d[n - 12..n - 4].copy_from_slice(&[0xf6; 8]);
        assert!(plain_fst(&d, &keys).is_none(), "fst panics on it");
        return d;
    }
    // Nodes lie after the 16-byte header, before the 20-byte trailer.
    for at in 16..n - 20 {
        for x in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut d = dict.to_vec();
            d[at] ^= x;
            let hit = match plain_fst(&d, &keys) {
                None => kind == 1,
                Some((streamed, found)) => kind == 2 && streamed == good.0 && found != values,
            };
            if hit {
                return d;
            }
        }
    }
    panic!("no single-byte change of kind {kind}")
}

/// fst 0.4 panics on a structurally invalid dictionary (it trusts the bytes;
/// the index's CRC keeps disk damage away, a crafted file gets through).
/// Three crafted dictionaries with valid checksums: a root address out of
/// range (fuzz/regressions/decode_index/fst-root-address-out-of-bounds-panics),
/// a node change that makes fst panic while streaming, and one that streams
/// exactly as before but breaks lookups through a node's transition table.
/// Each is found when the log opens, its file rebuilt from the segment, and
/// no query panics or answers differently.
#[test]
fn a_crafted_term_dictionary_is_rebuilt_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    // More than 32 distinct first letters of words: the word node gets a
    // transition table, which lookups read and streams do not.
    let words: Vec<String> = ('a'..='z')
        .chain('0'..='9')
        .map(|c| format!("{c}x"))
        .collect();
    for i in 0..60u64 {
        let mut r = rec(i);
        r.message = format!("{} {}", r.message, words.join(" "));
        log.append_one(&r).expect("append");
    }
    let before = answers(&log);
    let kilo = |log: &Log| -> Vec<u64> {
        log.scan(Selection::default().with_words("kx 9x"), Order::Asc)
            .map(|r| r.expect("scan").id)
            .collect()
    };
    let kilo_before = kilo(&log);
    assert_eq!(kilo_before.len(), 60);
    log.close().expect("close");
    let files = idx_files(dir.path());
    assert!(files.len() >= 3, "sealed segments: {}", files.len());
    let originals: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).expect("read")).collect();

    for (kind, (f, orig)) in files.iter().zip(&originals).take(3).enumerate() {
        let (dict, _) = split_index(orig);
        fs::write(f, with_dictionary(orig, &crafted(dict, kind))).expect("write");
    }

    let rebuilt = |log: &Log| -> Vec<PathBuf> {
        let report = log.recovery_report();
        for (_, why) in &report.rebuilt_indexes {
            assert!(why.contains("invalid term dictionary"), "{why}");
        }
        report
            .rebuilt_indexes
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    };
    // Read-only: rebuilt in memory, the files left as they are.
    let log = Log::open_read_only(dir.path(), small()).expect("open read-only");
    assert_eq!(rebuilt(&log), files[..3]);
    assert_eq!(answers(&log), before, "queries unchanged");
    assert_eq!(kilo(&log), kilo_before);
    drop(log);
    let log = Log::open(dir.path(), small()).expect("reopen");
    assert_eq!(rebuilt(&log), files[..3]);
    assert_eq!(answers(&log), before, "queries unchanged");
    assert_eq!(kilo(&log), kilo_before);
    for (f, orig) in files.iter().zip(&originals) {
        assert_eq!(&fs::read(f).expect("read"), orig, "{} rebuilt", f.display());
    }
}

#[test]
fn cursor_walks_never_repeat_or_skip_while_appends_rolls_and_retention_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for i in 0..300 {
        log.append_one(&rec(i)).expect("append");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let log = log.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 300;
            while !stop.load(Ordering::Relaxed) {
                log.append(&[rec(i), rec(i + 1)]).expect("append");
                if i % 40 == 0 {
                    log.roll().expect("roll");
                }
                if i % 60 == 0 {
                    log.set_retention(Retention {
                        max_days: None,
                        max_entries: Some(250),
                    })
                    .expect("retention");
                    log.enforce_retention().expect("enforce");
                }
                i += 2;
            }
        })
    };
    for order in [Order::Desc, Order::Asc] {
        for sel in [
            Selection::default(),
            Selection::default().with(Field::Category, "auth"),
            Selection::default().with_words("projector den"),
        ] {
            let mut q = Query {
                selection: sel.clone(),
                order,
                limit: 7,
                cursor: None,
            };
            let mut seen: Vec<u64> = Vec::new();
            loop {
                let page = log.query(&q).expect("query");
                seen.extend(page.items.iter().map(|r| r.id));
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            let unique: HashSet<u64> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "no record twice");
            match order {
                Order::Desc => assert!(seen.windows(2).all(|w| w[0] > w[1])),
                Order::Asc => assert!(seen.windows(2).all(|w| w[0] < w[1])),
            }
            // Nothing skipped: every record between the walk's ends that is
            // still visible and matches was returned.
            if let (Some(&a), Some(&b)) = (seen.iter().min(), seen.iter().max()) {
                for id in a..=b {
                    if let Some(r) = log.get(id).expect("get") {
                        if sel.matches(&r) {
                            assert!(unique.contains(&id), "{order:?} walk skipped id {id}");
                        }
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
}

#[test]
fn bad_query_parameters_are_errors_naming_the_parameter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    for i in 0..20 {
        log.append_one(&rec(i)).expect("append");
    }
    let param = |e: Error| match e {
        Error::InvalidQuery { param, .. } => param,
        other => panic!("unexpected {other}"),
    };
    for limit in [0, 1001] {
        let q = Query {
            limit,
            ..Query::default()
        };
        assert_eq!(param(log.query(&q).expect_err("limit")), "limit");
    }
    let auth = Selection::default().with(Field::Category, "auth");
    let page = log
        .query(&Query {
            selection: auth.clone(),
            limit: 2,
            ..Query::default()
        })
        .expect("query");
    let cursor = page.next_cursor.expect("more");
    let bytes = cursor.to_bytes();
    assert_eq!(Cursor::from_bytes(&bytes).expect("roundtrip"), cursor);
    // Same cursor with other filters or another order: refused.
    let other = Query {
        selection: Selection::default(),
        cursor: Some(cursor),
        ..Query::default()
    };
    assert_eq!(param(log.query(&other).expect_err("cursor")), "cursor");
    let asc = Query {
        selection: auth,
        order: Order::Asc,
        cursor: Some(cursor),
        ..Query::default()
    };
    assert_eq!(param(log.query(&asc).expect_err("cursor")), "cursor");
    for junk in [&b""[..], b"\x01", &[0u8; 14], &[2u8; 14], &bytes[..13]] {
        assert_eq!(param(Cursor::from_bytes(junk).expect_err("junk")), "cursor");
    }
    assert_eq!(
        param(
            log.histogram(&Selection::default(), 60_000_000, 0, DAY_US * 365)
                .expect_err("too many")
        ),
        "bucket"
    );
    assert_eq!(
        param(
            log.histogram(&Selection::default(), 0, 0, 10)
                .expect_err("zero")
        ),
        "bucket"
    );
}

fn clocked(now: &Arc<AtomicI64>) -> Config {
    let now = now.clone();
    Config {
        segment_max_age: Duration::from_secs(86_400),
        clock: Clock::from_fn(move || now.load(Ordering::SeqCst)),
        ..Config::default()
    }
}

#[test]
fn day_retention_deletes_whole_old_segments_and_hides_the_rest_exactly() {
    let now = Arc::new(AtomicI64::new(START));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), clocked(&now)).expect("open");
    // Ten days, six records a day, four hours apart.
    for i in 0..60 {
        now.store(START + i * 4 * 3_600_000_000, Ordering::SeqCst);
        log.append_one(&rec(i as u64)).expect("append");
    }
    assert_eq!(log_files(dir.path()), 10);
    let cutoff_days = 3;
    log.set_retention(Retention {
        max_days: Some(cutoff_days),
        max_entries: None,
    })
    .expect("retention");
    let now_us = now.load(Ordering::SeqCst);
    let cutoff = now_us - i64::from(cutoff_days) * DAY_US;
    // Logically exact at once, before enforcement frees anything.
    let visible: Vec<i64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("read").ts)
        .collect();
    assert!(visible.iter().all(|&t| t >= cutoff));
    assert_eq!(visible.len(), 19, "3 days of 6 + the boundary record");
    let out = log.enforce_retention().expect("enforce");
    assert_eq!(out.dropped_records, 41);
    assert_eq!(
        out.dropped_segments, 6,
        "only segments wholly outside are deleted"
    );
    eventually("old segments unlinked", || log_files(dir.path()) == 4);
    assert_eq!(log.stats().expect("stats").entries, 19);
    drop(log);
    // The watermark persists: without the policy set, the bound still holds.
    let log = Log::open(dir.path(), clocked(&now)).expect("reopen");
    assert_eq!(log.iter(0, Direction::Forward).count(), 19);
    assert_eq!(log.get(41).expect("get"), None);
    assert!(log.get(42).expect("get").is_some());
}

#[test]
fn a_crash_between_watermark_and_unlink_recovers_to_the_new_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for i in 0..200 {
        log.append_one(&rec(i)).expect("append");
    }
    // A reader holds the old view, so the dropped segments stay on disk …
    let reader = log.iter(0, Direction::Forward);
    log.set_retention(Retention {
        max_days: None,
        max_entries: Some(50),
    })
    .expect("retention");
    let out = log.enforce_retention().expect("enforce");
    assert!(out.dropped_segments > 0);
    // … and this is the crash image: watermark persisted, files not yet unlinked.
    copy_crash_image(dir.path(), copy.path());
    let before_files = log_files(copy.path());
    assert_eq!(
        reader.count(),
        200,
        "the old reader still sees its snapshot"
    );
    drop(log);
    let log = Log::open(copy.path(), small()).expect("open crash image");
    assert_eq!(
        log.recovery_report().deleted_below_watermark.len(),
        out.dropped_segments
    );
    assert_eq!(log_files(copy.path()), before_files - out.dropped_segments);
    let ids: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("read").id)
        .collect();
    assert_eq!(ids, (151..=200).collect::<Vec<_>>());
    // The files of the original directory went when the last reader let go.
    eventually("dropped segments unlinked", || {
        log_files(dir.path()) == before_files - out.dropped_segments
    });
}

#[test]
fn clear_hides_everything_keeps_counting_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for i in 0..100 {
        log.append_one(&rec(i)).expect("append");
    }
    assert_eq!(log.clear().expect("clear"), 100);
    assert_eq!(log.iter(0, Direction::Forward).count(), 0);
    assert_eq!(log.stats().expect("stats").entries, 0);
    eventually("cleared segments unlinked", || {
        log_files(dir.path()) == 1 && idx_files(dir.path()).is_empty()
    });
    assert_eq!(
        log.append_one(&rec(0)).expect("append"),
        101,
        "ids keep counting"
    );
    drop(log);
    let log = Log::open(dir.path(), small()).expect("reopen");
    let ids: Vec<u64> = log
        .iter(0, Direction::Forward)
        .map(|r| r.expect("read").id)
        .collect();
    assert_eq!(ids, vec![101]);
    assert_eq!(log.clear().expect("clear"), 1);
    assert_eq!(log.append_one(&rec(0)).expect("append"), 102);
}

#[test]
fn words_split_like_the_api_and_prefixes_use_the_dictionary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    let mut r = NewRecord::new(
        "device",
        "device.disconnected",
        "kitchen-display lost capture.fps",
    );
    r.entity_name = Some("Projector Bias Light".into());
    log.append_one(&r).expect("append");
    log.roll().expect("roll"); // the same answers from a sealed index
    log.append_one(&r).expect("append");
    let count = |q: &str| {
        log.scan(Selection::default().with_words(q), Order::Asc)
            .count()
    };
    assert_eq!(count("kitchen display"), 2);
    assert_eq!(count("KITCHEN-display"), 2);
    assert_eq!(count("fps capture"), 2);
    assert_eq!(count("proj"), 0, "whole words only");
    assert_eq!(count("proj*"), 2);
    assert_eq!(count("proj* bias"), 2);
    assert_eq!(count("proj* nothing"), 0);
    assert_eq!(count("system"), 2, "the default actor is a word too");
    let completions = log
        .facets(Field::Action, &Selection::default(), "device.", 10)
        .expect("facets");
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].count, 2);
    assert_eq!(
        log.distinct_values(Field::Category, "", 10)
            .expect("distinct"),
        vec!["device".to_string()]
    );
    assert!(index_path(&dir.path().join("seg-00000000000000000001.log")).exists());
}

/// `query_buf` pages, parsed in place, hold exactly what `get` returns, for
/// dense and sparse matches in sealed and active segments (sparse matches in
/// the active segment are further apart than one positioned read spans).
#[test]
fn in_place_pages_match_owned_records_dense_and_sparse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        segment_max_bytes: 256 * 1024,
        ..Config::default()
    };
    let log = Log::open(dir.path(), cfg).expect("open");
    let mut rare = Vec::new();
    for chunk in (0..1500u64).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let mut r = rec(i);
                // ~1 KiB per record: 37 records apart is ~37 KiB of gap.
                r.message = format!("{} {}", r.message, "x".repeat(900));
                if i % 37 == 0 {
                    r.category = "rare".into();
                    r.metadata
                        .insert("n".into(), serde_json::json!({"i": i, "s": "é"}));
                }
                r
            })
            .collect();
        let ids = log.append(&batch).expect("append");
        rare.extend(
            chunk
                .iter()
                .zip(ids)
                .filter(|(i, _)| *i % 37 == 0)
                .map(|(_, id)| id),
        );
    }
    assert!(log.stats().expect("stats").segments >= 3, "sealed + active");
    for sel in [
        Selection::default(),
        Selection::default().with(Field::Category, "rare"),
        Selection::default().with(Field::Category, "auth"),
    ] {
        for order in [Order::Desc, Order::Asc] {
            let mut q = Query {
                selection: sel.clone(),
                order,
                limit: 7,
                cursor: None,
            };
            let mut seen = Vec::new();
            loop {
                let page = log.query_buf(&q).expect("query_buf");
                for v in page.views() {
                    let v = v.expect("view");
                    let owned = log.get(v.id).expect("get").expect("present");
                    assert_eq!(v.to_record().expect("to_record"), owned);
                    seen.push(v.id);
                }
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            let mut expect: Vec<u64> = if sel == Selection::default() {
                (1..=1500).collect()
            } else if sel == Selection::default().with(Field::Category, "rare") {
                rare.clone()
            } else {
                (0..1500u64)
                    .filter(|i| i % 4 == 1 && i % 37 != 0)
                    .map(|i| i + 1)
                    .collect()
            };
            if order == Order::Desc {
                expect.reverse();
            }
            assert_eq!(seen, expect, "{sel:?} {order:?}");
            // Scans read sealed segments with positioned reads, not the map.
            let scanned: Vec<_> = log
                .scan(sel.clone(), order)
                .map(|r| r.expect("scan"))
                .collect();
            assert_eq!(scanned.iter().map(|r| r.id).collect::<Vec<_>>(), expect);
            for r in scanned.iter().step_by(17) {
                assert_eq!(Some(r), log.get(r.id).expect("get").as_ref());
            }
        }
    }
}

/// Facets and prefix completion agree whether a sealed segment serves a
/// field's keys from its cache (few values) or streams them from the term
/// dictionary (more than the cache holds), and on repeated calls.
#[test]
fn facets_agree_for_few_and_many_distinct_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    let batch: Vec<_> = (0..3000u64)
        .map(|i| {
            let mut r = rec(i);
            // 1500 distinct entity ids (beyond the cache), 3 actors (within it).
            r.entity_id = Some(format!("e{:04}", i % 1500));
            r
        })
        .collect();
    log.append(&batch).expect("append");
    log.roll().expect("seal");
    log.append(&batch[..10])
        .expect("append to the new active segment");
    for _ in 0..2 {
        let ids = log
            .facets(Field::EntityId, &Selection::default(), "e01", 1000)
            .expect("facets");
        assert_eq!(ids.len(), 100, "e0100..=e0199");
        assert!(ids.iter().all(|f| f.count == 2), "{ids:?}");
        // e0000..=e0009 occur twice sealed and once in the active segment.
        let first = log
            .facets(Field::EntityId, &Selection::default(), "e000", 1000)
            .expect("facets");
        assert_eq!(first.len(), 10);
        assert!(first.iter().all(|f| f.count == 3), "{first:?}");
        let actors = log
            .facets(Field::Actor, &Selection::default(), "", 10)
            .expect("facets");
        let total: u64 = actors.iter().map(|f| f.count).sum();
        assert_eq!(total, 3010);
        assert_eq!(actors[0].value, "alice");
        assert_eq!(actors[0].count, 1000 + 4);
        let kt = log
            .facets(Field::Actor, &Selection::default(), "Kit", 10)
            .expect("prefix facets");
        assert_eq!(kt.len(), 1);
        assert_eq!(kt[0].value, "Kitchen Tablet");
        assert_eq!(
            log.distinct_values(Field::EntityId, "e149", 100)
                .expect("distinct")
                .len(),
            10
        );
    }
}

/// Records with a unique word each grow the active index by a term per
/// record: the segment rolls at `active_index_max_bytes` long before it is
/// full, and every record stays findable by its word, before and after a
/// reopen.
#[test]
fn the_active_segment_rolls_when_its_index_outgrows_its_memory_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = || Config {
        active_index_max_bytes: 64 << 10,
        ..Config::default()
    };
    let n = 3000u64;
    {
        let log = Log::open(dir.path(), cfg()).expect("open");
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<NewRecord> = chunk.iter().map(|&i| rec(i)).collect();
            log.append(&batch).expect("append");
        }
        let segs = log.segments();
        assert!(segs.len() >= 3, "{} segments", segs.len());
        for s in segs.iter().filter(|s| s.sealed) {
            // Each is a small fraction of the 64 MiB size bound.
            assert!(s.bytes < 1 << 20, "sealed segment of {} bytes", s.bytes);
        }
    }
    let log = Log::open(dir.path(), cfg()).expect("reopen");
    for i in [0, 1, 777, 1500, n - 1] {
        // "Event {i}: ..." — the number is a word of its own record only.
        let page = log
            .query(&Query {
                selection: Selection::default().with_words(&i.to_string()),
                order: Order::Desc,
                limit: 10,
                cursor: None,
            })
            .expect("query");
        let ids: Vec<u64> = page.items.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![i + 1], "word {i}");
    }
}

/// Batches of at least 128 records are indexed by the flush that makes them
/// durable, on a second thread during its fdatasync, and smaller batches
/// staged meanwhile queue behind them. Whatever path a batch took, once
/// `append` returns its records are found through the index, by every
/// thread; segment rolls land among queued batches (small segments), and
/// a reopen (which rebuilds the active index from the frames) agrees.
#[test]
fn acknowledged_batches_are_indexed_when_append_returns_large_or_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = || Config {
        segment_max_bytes: 96 << 10,
        ..Config::default()
    };
    // Thread t's batch sizes: large ones (above and at the 128 threshold)
    // between single records and small batches.
    const SIZES: [&[usize]; 4] = [&[200, 1, 3], &[1], &[2, 128, 1, 1], &[129, 5]];
    fn batch_of(t: usize, seq: usize) -> Vec<NewRecord> {
        (0..SIZES[t][seq % SIZES[t].len()])
            .map(|i| {
                let mut r = rec(i as u64);
                r.entity_id = Some(format!("b{t}-{seq}"));
                r.message = format!("batch w{t}x{seq} item {i}");
                r
            })
            .collect()
    }
    fn by_entity(log: &Log, t: usize, seq: usize) -> Vec<u64> {
        let page = log
            .query(&Query {
                selection: Selection::default().with(Field::EntityId, format!("b{t}-{seq}")),
                order: Order::Asc,
                limit: 1000,
                cursor: None,
            })
            .expect("query by entity_id");
        page.items.iter().map(|r| r.id).collect()
    }
    fn by_word(log: &Log, t: usize, seq: usize) -> Vec<u64> {
        let page = log
            .query(&Query {
                selection: Selection::default().with_words(&format!("w{t}x{seq}")),
                order: Order::Asc,
                limit: 1000,
                cursor: None,
            })
            .expect("query by word");
        page.items.iter().map(|r| r.id).collect()
    }
    const BATCHES: usize = 24;
    let acked: Vec<Vec<Vec<u64>>> = {
        let log = Log::open(dir.path(), cfg()).expect("open");
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for seq in 0..BATCHES {
                        let ids = log.append(&batch_of(t, seq)).expect("append");
                        assert_eq!(
                            by_entity(&log, t, seq),
                            ids,
                            "thread {t} batch {seq} by entity_id"
                        );
                        assert_eq!(by_word(&log, t, seq), ids, "thread {t} batch {seq} by word");
                        acked.push(ids);
                    }
                    acked
                })
            })
            .collect();
        let acked: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("appender"))
            .collect();
        // Every thread's batches, seen from here after all are done.
        for (t, batches) in acked.iter().enumerate() {
            for (seq, ids) in batches.iter().enumerate() {
                assert_eq!(
                    &by_entity(&log, t, seq),
                    ids,
                    "thread {t} batch {seq} afterwards"
                );
            }
        }
        assert!(log.segments().len() > 3, "rolls happened among the batches");
        acked
    };
    let log = Log::open(dir.path(), cfg()).expect("reopen");
    for (t, batches) in acked.iter().enumerate() {
        for (seq, ids) in batches.iter().enumerate() {
            assert_eq!(
                &by_entity(&log, t, seq),
                ids,
                "thread {t} batch {seq} after reopen"
            );
            assert_eq!(
                &by_word(&log, t, seq),
                ids,
                "thread {t} batch {seq} word after reopen"
            );
        }
    }
}

/// A prefix word on the active segment takes its index's read lock once
/// per page. Taking it a second time on the same thread (as an earlier
/// version did, for the prefix union) deadlocks when an append's indexing
/// queues for the write lock in between: std's `RwLock` makes new readers
/// wait behind a queued writer. Appends race the pages here; a watchdog
/// turns a hang into a failure.
#[test]
fn prefix_pages_on_the_active_segment_do_not_wait_on_their_own_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    log.append(&(0..200).map(rec).collect::<Vec<_>>())
        .expect("append");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 1000 + w;
                while !stop.load(Ordering::Relaxed) {
                    log.append_one(&rec(i)).expect("append");
                    i += 4;
                }
            })
        })
        .collect();
    let (done, finished) = std::sync::mpsc::channel();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let q = Query {
                selection: Selection::default().with_words("proj* dropped"),
                order: Order::Desc,
                limit: 5,
                cursor: None,
            };
            for _ in 0..20_000 {
                assert_eq!(log.query(&q).expect("page").items.len(), 5);
            }
            let _ = done.send(());
        })
    };
    let outcome = finished.recv_timeout(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    assert!(
        outcome.is_ok(),
        "prefix pages stopped making progress: a read lock waits on itself"
    );
    reader.join().expect("reader");
    for w in writers {
        w.join().expect("writer");
    }
}

/// `recorded_by` is an indexed field like `actor`: an exact filter (values
/// OR-ed, AND-ed with the other fields), facets with counts and prefixes,
/// histograms — the same answers from the active segment's in-memory index,
/// from sealed index files, after a reopen, and after those files are
/// rebuilt (byte for byte). A record without one (as every record stored
/// before the field existed reads) matches no value and has no facet.
#[test]
fn recorded_by_filters_and_facets_agree_with_the_records() {
    const KEYS: [Option<&str>; 5] = [
        None,
        Some("key_0a1b2c3d4e5f"),
        Some("key_0a1b2c3d4e5f"),
        Some("key_ffeeddccbbaa"),
        Some("server"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for chunk in (0..150u64).collect::<Vec<_>>().chunks(4) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|&i| NewRecord {
                recorded_by: KEYS[(i % 5) as usize].map(str::to_owned),
                ..rec(i)
            })
            .collect();
        log.append(&batch).expect("append");
    }
    let check = |log: &Log, when: &str| {
        let all: Vec<_> = log
            .iter(0, Direction::Forward)
            .collect::<Result<_, _>>()
            .expect("read all");
        assert_eq!(all.len(), 150);
        let ids_of = |sel: Selection| -> Vec<u64> {
            log.scan(sel, Order::Asc)
                .map(|r| r.expect("scan").id)
                .collect()
        };
        for keys in [
            &["server"][..],
            &["key_0a1b2c3d4e5f"],
            &["key_ffeeddccbbaa", "server"],
            &["key_nobody"],
            &["key_0a1b2c3d4e5f", "key_nobody"],
            &["key_0a1b2c"], // exact, not a prefix
        ] {
            let mut sel = Selection::default();
            for k in keys {
                sel = sel.with(Field::RecordedBy, *k);
            }
            let of = |r: &&actlog_engine::Record| {
                r.recorded_by.as_deref().is_some_and(|k| keys.contains(&k))
            };
            let want: Vec<u64> = all.iter().filter(of).map(|r| r.id).collect();
            assert_eq!(ids_of(sel.clone()), want, "{when}: {keys:?}");
            // AND-ed with another field.
            let auth = sel.clone().with(Field::Category, "auth");
            let want: Vec<u64> = all
                .iter()
                .filter(of)
                .filter(|r| r.category == "auth")
                .map(|r| r.id)
                .collect();
            assert_eq!(ids_of(auth), want, "{when}: {keys:?} and auth");
            // Keyset pages walk the same records, newest first.
            let mut q = Query {
                selection: sel.clone(),
                order: Order::Desc,
                limit: 7,
                cursor: None,
            };
            let mut walked = Vec::new();
            loop {
                let page = log.query(&q).expect("page");
                walked.extend(page.items.iter().map(|r| r.id));
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            walked.reverse();
            assert_eq!(walked, ids_of(sel.clone()), "{when}: pages of {keys:?}");
            const HOUR: i64 = 3_600_000_000;
            let since = all[0].ts - all[0].ts.rem_euclid(HOUR);
            let until = all[all.len() - 1].ts + HOUR;
            let counted: u64 = log
                .histogram(&sel, HOUR, since, until)
                .expect("histogram")
                .iter()
                .map(|b| b.count)
                .sum();
            assert_eq!(
                counted,
                ids_of(sel).len() as u64,
                "{when}: histogram {keys:?}"
            );
        }
        // Facets: counts per value, most first, ties by value; records
        // without a value have no facet.
        let facets = |sel: &Selection, prefix: &str| -> Vec<(String, u64)> {
            log.facets(Field::RecordedBy, sel, prefix, 10)
                .expect("facets")
                .into_iter()
                .map(|f| (f.value, f.count))
                .collect()
        };
        let want = |filter: &dyn Fn(&actlog_engine::Record) -> bool, prefix: &str| {
            let mut counts: Vec<(String, u64)> = Vec::new();
            for r in all.iter().filter(|r| filter(r)) {
                if let Some(k) = r.recorded_by.as_deref().filter(|k| k.starts_with(prefix)) {
                    match counts.iter_mut().find(|(v, _)| v == k) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((k.to_string(), 1)),
                    }
                }
            }
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts
        };
        let everything = facets(&Selection::default(), "");
        assert_eq!(everything, want(&|_| true, ""), "{when}");
        assert_eq!(everything.len(), 3, "{when}: {everything:?}");
        assert_eq!(everything.iter().map(|f| f.1).sum::<u64>(), 120);
        assert_eq!(
            facets(&Selection::default(), "key_"),
            want(&|_| true, "key_")
        );
        let devices = Selection::default().with(Field::Category, "device");
        assert_eq!(
            facets(&devices, ""),
            want(&|r| r.category == "device", ""),
            "{when}"
        );
        assert_eq!(
            log.distinct_values(Field::RecordedBy, "se", 10)
                .expect("distinct"),
            ["server"]
        );
    };
    check(&log, "live");
    assert!(log.segments().len() >= 3, "sealed and active segments");
    log.close().expect("close");
    let files = idx_files(dir.path());
    let originals: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).expect("read")).collect();

    let log = Log::open(dir.path(), small()).expect("reopen");
    check(&log, "reopened");
    drop(log);
    for f in &files {
        fs::remove_file(f).expect("delete an index file");
    }
    let log = Log::open(dir.path(), small()).expect("reopen");
    assert_eq!(log.recovery_report().rebuilt_indexes.len(), files.len());
    check(&log, "rebuilt");
    for (f, orig) in files.iter().zip(&originals) {
        assert_eq!(
            &fs::read(f).expect("read"),
            orig,
            "{} rebuilt byte for byte",
            f.display()
        );
    }
}
