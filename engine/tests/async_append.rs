//! `Log::append_async`: many tasks share fsyncs through the flusher thread,
//! each gets its own ids only once they are durable, blocking and async
//! appenders mix, and a dropped future's records are still made durable.

mod common;

use std::time::{Duration, Instant};

use actlog_engine::{Config, Log, NewRecord, Order, Query, Selection};
use common::{block_on, block_on_all};

fn rec(tag: &str, n: u64) -> NewRecord {
    let mut r = NewRecord::new("system", "system.test", format!("{tag} record {n}"));
    r.entity_id = Some(format!("{tag}-{n}"));
    r
}

/// Each record's entity id names it, so a reopened log can be checked
/// against what was acknowledged.
fn assert_acked_present(log: &Log, acked: &[(u64, String)]) {
    for (id, want) in acked {
        let got = log
            .get(*id)
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged id {id} lost"));
        assert_eq!(got.entity_id.as_deref(), Some(want.as_str()), "id {id}");
    }
}

/// Four threads append `rounds` batches each, made by `batch(thread,
/// round)`: threads 0 and 2 through `append`, 1 and 3 through
/// `append_async`. `check(thread, round, ids)` sees each acknowledgement on
/// its thread; returns every acknowledged id with its record.
fn mixed_appenders(
    log: &Log,
    rounds: u64,
    batch: impl Fn(u64, u64) -> Vec<NewRecord> + Sync,
    check: impl Fn(u64, u64, &[u64]) + Sync,
) -> Vec<(u64, NewRecord)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (batch, check) = (&batch, &check);
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..rounds {
                        let recs = batch(t, i);
                        let ids: Vec<u64> = if t % 2 == 0 {
                            log.append(&recs).expect("durable")
                        } else {
                            block_on(log.append_async(&recs))
                                .expect("durable")
                                .ids()
                                .collect()
                        };
                        assert_eq!(ids.len(), recs.len());
                        check(t, i, &ids);
                        out.extend(ids.into_iter().zip(recs));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    })
}

#[test]
fn tasks_on_one_thread_share_fsyncs_and_every_ack_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    const ROUNDS: u64 = 10;
    const TASKS: u64 = 64;
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        // Sixty-four tasks on this one thread: all are staged before any is
        // polled, so the flusher's next flush covers every one of them.
        let futs: Vec<_> = (0..TASKS)
            .map(|t| log.append_async(&[rec("task", round * TASKS + t)]))
            .collect();
        for (t, ids) in block_on_all(futs).into_iter().enumerate() {
            let ids: Vec<u64> = ids.expect("durable").ids().collect();
            assert_eq!(ids.len(), 1);
            acked.push((ids[0], format!("task-{}", round * TASKS + t as u64)));
        }
    }
    let stats = log.io_stats();
    assert_eq!(stats.records_appended, ROUNDS * TASKS);
    assert!(
        stats.fsyncs <= 2 * ROUNDS,
        "{} fsyncs for {ROUNDS} rounds of {TASKS} staged tasks: they did not share",
        stats.fsyncs
    );
    // Ids are distinct and each task's is its own record.
    let mut ids: Vec<u64> = acked.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, ROUNDS * TASKS);
    assert_acked_present(&log, &acked);
    drop(log);
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_acked_present(&log, &acked);
}

#[test]
fn blocking_and_async_appenders_mix_and_ids_stay_contiguous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    let acked: Vec<(u64, String)> = mixed_appenders(
        &log,
        300,
        |t, i| {
            (0..1 + i % 3)
                .map(|j| rec(&format!("t{t}"), i * 10 + j))
                .collect()
        },
        |_, _, ids| assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}"),
    )
    .into_iter()
    .map(|(id, r)| (id, r.entity_id.expect("set")))
    .collect();
    let mut ids: Vec<u64> = acked.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let first = ids[0];
    assert_eq!(ids, (first..first + ids.len() as u64).collect::<Vec<_>>());
    drop(log);
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_acked_present(&log, &acked);
}

#[test]
fn a_dropped_future_still_has_its_records_made_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    let before = log.io_stats().fsyncs;
    // Staged, never polled: nobody waits, but the flusher must still sync it.
    drop(log.append_async(&[rec("dropped", 1)]));
    // Liveness, not timing: a generous bound so a hang fails instead of
    // stalling the suite.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.last_id() != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the dropped append never became durable"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(log.io_stats().fsyncs > before);
    // Visible means durable: a crash image taken now holds it.
    let image = tempfile::tempdir().expect("tempdir");
    common::copy_crash_image(dir.path(), image.path());
    let crashed = Log::open(image.path(), Config::default()).expect("open the image");
    let got = crashed
        .get(1)
        .expect("read")
        .expect("present after a crash");
    assert_eq!(got.entity_id.as_deref(), Some("dropped-1"));
}

#[test]
fn empty_and_invalid_batches_answer_at_the_first_poll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    assert!(block_on(log.append_async(&[]))
        .expect("empty")
        .ids()
        .is_empty());
    let mut bad = rec("bad", 1);
    bad.category = "NOT A TOKEN".into();
    let err = block_on(log.append_async(&[rec("ok", 1), bad])).expect_err("invalid");
    assert!(
        matches!(err, actlog_engine::Error::Invalid { index: 1, .. }),
        "{err}"
    );
    // Nothing of the refused batch was written; the log takes appends on.
    assert_eq!(log.last_id(), None);
    let appended = block_on(log.append_async(&[rec("ok", 2)])).expect("append");
    assert_eq!(appended.ids(), 1..2);
    // The records come back as stored (the engine's defaults filled in).
    let stored = appended.records().expect("decode");
    assert_eq!(stored[0].entity_id.as_deref(), Some("ok-2"));
    assert_eq!(stored[0], log.get(1).expect("read").expect("present"));
}

#[test]
fn the_last_handle_releases_the_log_at_once_despite_the_flusher() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..20u64 {
        let log = Log::open(dir.path(), Config::default()).expect("open: the lock is free");
        let futs: Vec<_> = (0..8)
            .map(|i| log.append_async(&[rec("a", round * 100 + i)]))
            .collect();
        block_on_all(futs).into_iter().for_each(|r| {
            r.expect("durable");
        });
        // One more staged and never awaited: the drop must still sync it.
        drop(log.append_async(&[rec("a", round * 100 + 99)]));
        drop(log);
    }
    // Nothing staged was lost on the way: 9 records a round.
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(log.last_id(), Some(20 * 9));
}

/// A task's batch is indexed by the flush that syncs it, not by the call
/// (see `writer.rs`); blocking appenders index their own unless batches
/// are queued. Either way a record is found by its words as soon as it is
/// acknowledged, and the index holds every record once, in id order.
#[test]
fn acknowledged_records_are_found_by_their_words_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), Config::default()).expect("open");
    let word = |t: u64, i: u64, j: usize| format!("w{t}x{i}x{j}");
    let mut acked: Vec<u64> = mixed_appenders(
        &log,
        150,
        |t, i| {
            (0..1 + i as usize % 3)
                .map(|j| {
                    NewRecord::new("system", "system.test", format!("shared {}", word(t, i, j)))
                })
                .collect()
        },
        |t, i, ids| {
            for (j, id) in ids.iter().enumerate() {
                let w = word(t, i, j);
                assert_eq!(common::word_ids(&log, &w), vec![*id], "{w}");
            }
        },
    )
    .into_iter()
    .map(|(id, _)| id)
    .collect();
    acked.sort_unstable();
    let walk = |log: &Log| {
        let mut found = Vec::new();
        let mut cursor = None;
        loop {
            let page = log
                .query(&Query {
                    selection: Selection::default().with_words("shared"),
                    order: Order::Asc,
                    limit: 1000,
                    cursor,
                })
                .expect("walk");
            found.extend(page.items.iter().map(|r| r.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return found,
            }
        }
    };
    assert_eq!(walk(&log), acked);
    drop(log);
    let log = Log::open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(walk(&log), acked);
}
