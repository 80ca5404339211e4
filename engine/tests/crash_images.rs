//! Crash images over the whole write path.
//!
//! `fault_injection.rs` fails each write-path operation once and reopens
//! the durable state; this sweep restarts every crashed state with many
//! crash images. On the simulated filesystem (`actlog_engine::env::sim`):
//!
//! * a scripted workload — appends of one to three records, batches of 128
//!   and more (indexed during their flush, larger than a segment), records
//!   whose metadata carries a valid frame a client chose, rolls and seals
//!   with their index files, retention, clear, a clean close and reopen
//!   (the active index snapshot), the settings and keys files written with
//!   `write_atomic_in` — powered off at every one of its operations and at
//!   every named crash point, with 1 KiB and 4 KiB segments;
//! * appenders on three threads and one awaiting `append_async` (group
//!   commit, the flusher thread) while rolls run, powered off at every
//!   operation;
//! * a restored directory (its id reservation marked `RESTORED`, as
//!   `ids::mark_restored` leaves it) opened, appended to and rolled,
//!   powered off at every operation;
//! * the scripted workload with one fault — a failed fsync that drops the
//!   dirty pages (fsyncgate), a failed directory fsync, EIO at any
//!   operation, a short write — then `Log::recover` (also powered off at
//!   each of its operations), the rest of the workload, and a power cut.
//!
//! Each crashed machine is restarted with: every page-granular image
//! ([`Image::Mask`]) when at most ten units are pending, else random
//! non-prefix images ([`Image::Subset`]); a few subsets anyway (they keep a
//! prefix of the directory operations), a few prefix images torn at any
//! byte ([`Image::Partial`]), the durable state alone and the whole page
//! cache. Recovery itself is powered off at each of its own operations on
//! the messiest image. The clock is fixed, so every run (but the threaded
//! one) is the same and a failure names a state that can be rebuilt:
//! scenario, segment size, operation, image.
//!
//! After every crash: `Log::open` accepts the state; every acknowledged id
//! not below the watermark is there with its content (iteration, `get` and
//! an index lookup agree); a batch never acknowledged is whole or absent;
//! ids are dense but for recorded gaps; the state files hold the
//! acknowledged or the attempted contents; new ids lie above every id ever
//! acknowledged (and above a restored directory's floor). Then, in
//! alternate states, either the log is crashed again at once (recovery is
//! a fixed point) before it operates, or the handle recovery built
//! operates at once: a roll, a retention run keeping only the two newest
//! records, an append; a last crash finds exactly that.
//!
//! Backup and restore go through `std::fs`, so the last scenario runs on a
//! real directory: backups taken while the log appends, rolls and drops
//! segments (`Log::backup_plan`: exactly what was acknowledged;
//! `backup::plan` on a locked directory: everything before the newest
//! flush), and a restore over the old directory (the steps of
//! `actlog-inspect restore`, tools/src/backup.rs) killed before each of its
//! steps, then run again: the directory refuses to open while marked, and
//! ends up holding exactly the backup, handing out no id the old directory
//! acknowledged.
//!
//! Each scenario prints how many distinct crash states (image and model)
//! it checked; the last one to finish prints the total
//! (`cargo test --test crash_images -- --nocapture`).

mod common;

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actlog_engine::env::sim::{Fault, Image, Op, SimFs};
use actlog_engine::env::{Fs, CRASH_POINTS};
use actlog_engine::{write_atomic_in, Clock, Config, Direction, Error, Log, NewRecord, Retention};

thread_local! {
    /// `segment_max_bytes` of the simulated logs this test thread opens:
    /// small, so that the workload rolls every ten to forty records. Set
    /// per scenario ([`segment_bytes`]).
    static SEGMENT_BYTES: Cell<u64> = const { Cell::new(2048) };
}

fn segment_bytes(n: u64) {
    SEGMENT_BYTES.with(|c| c.set(n));
}

/// Up to this many pending units, every [`Image::Mask`] is checked.
const MASK_MAX_UNITS: u64 = 10;
/// Random [`Image::Subset`] images of a state with more units.
const SUBSETS: u64 = 12;
/// The state files a server keeps beside the log.
const STATE_FILES: [&str; 2] = ["settings.json", "keys.json"];

fn data_dir() -> PathBuf {
    PathBuf::from("/sim/data")
}

/// A fixed clock (ts never go backwards: the engine raises them to the
/// last one), so that a run, and so each crash image, is the same every
/// time: a failure names a reproducible state, and identical images
/// reached from different crash points are checked once.
fn config(sim: &SimFs) -> Config {
    Config {
        segment_max_bytes: SEGMENT_BYTES.with(Cell::get),
        fs: Fs::new(sim.clone()),
        clock: Clock::from_fn(|| 1_767_225_600_000_000),
        ..Config::default()
    }
}

/// A message with a word of its own (`z<tag>n<n>`), for index lookups.
fn msg(tag: &str, n: u64) -> String {
    let word: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{tag} {n} z{word}n{n} {}", "x".repeat((n % 7 * 9) as usize))
}

/// The word of its own of a message `msg` made.
fn own_word(message: &str) -> Option<&str> {
    message.split(' ').find(|w| w.starts_with('z'))
}

fn records(messages: &[String]) -> Vec<NewRecord> {
    messages
        .iter()
        .map(|m| NewRecord::new("system", "system.test", m.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------
// The model: what the workload was told, and what it was attempting.

/// A state file's acknowledged contents and those of a failed write.
type FileVersions = (Option<Vec<u8>>, Option<Vec<u8>>);

/// What the workload has had acknowledged, and what it was attempting when
/// it stopped.
#[derive(Debug, Clone)]
struct Model {
    /// Acknowledged records: id → message.
    acked: BTreeMap<u64, String>,
    /// Batches whose append returned an error: entirely present or absent
    /// after a crash.
    failed: Vec<Vec<String>>,
    /// The watermark after the last acknowledged retention run or clear.
    low: u64,
    /// The watermark a failed retention run or clear was writing.
    low_attempt: Option<u64>,
    /// Per state file (name): the acknowledged contents and those of a
    /// failed write.
    files: BTreeMap<String, FileVersions>,
    /// Steps completed.
    steps: usize,
    /// The step that failed, for messages.
    stopped: Option<String>,
    /// No id below this may be handed out (a restored directory's floor).
    min_next: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            acked: BTreeMap::new(),
            failed: Vec::new(),
            low: 1,
            low_attempt: None,
            files: BTreeMap::new(),
            steps: 0,
            stopped: None,
            min_next: 0,
        }
    }

    fn max_acked(&self) -> u64 {
        self.acked.keys().next_back().copied().unwrap_or(0)
    }

    fn at(&self) -> String {
        match &self.stopped {
            Some(s) => format!("step {} ({s})", self.steps),
            None => format!("after all {} steps", self.steps),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A batch of this many records.
    Append(u64),
    Roll,
    /// Retention with `max_entries`.
    Retain(u64),
    Clear,
    /// A state file (index into `STATE_FILES`) written with this version.
    Write(usize, u32),
    /// A clean close (which saves the active segment's index) and an open.
    Reopen,
    /// One record whose metadata holds a valid frame (ASCII bytes, a
    /// plausible later id) and padding past a page: what a client may
    /// send, and what the torn-tail search must not take for the log's own
    /// frames when a crash tears this record's flush.
    Planted,
}

/// The scripted single-threaded workload.
fn script() -> Vec<Step> {
    use Step::*;
    // Runs of small batches fill segments: at 1 KiB they roll every ten
    // records or so, at 4 KiB their flushes straddle page boundaries.
    let small = |n: u64| (0..n).map(|i| Append(1 + i % 3));
    let mut s = Vec::new();
    s.extend(small(5));
    s.push(Planted);
    s.push(Write(0, 1));
    s.extend(small(9));
    // Indexed during its flush (DEFER_INDEX_MIN_RECORDS), and larger than a
    // segment: it rolls first and fills one alone.
    s.push(Append(130));
    s.extend([Append(1), Append(2), Roll, Append(3), Retain(8)]);
    s.extend(small(4));
    s.extend([Write(1, 1), Append(2), Reopen, Append(1), Clear]);
    s.extend(small(6));
    s.push(Planted);
    s.extend([Append(128), Append(1), Roll, Append(2), Write(0, 2)]);
    s.extend(small(3));
    s.extend([Reopen, Write(1, 2), Append(3)]);
    s
}

/// Why [`run_steps`] stopped: the step's index, its error, and for an
/// append the ids its batch would have had.
struct Stop {
    index: usize,
    error: Error,
    batch_ids: Vec<u64>,
}

/// Runs `steps` until the first error. `log` is `None` after a reopen
/// that failed.
fn run_steps(
    sim: &SimFs,
    log: &mut Option<Log>,
    steps: &[(usize, Step)],
    m: &mut Model,
    seq: &mut u64,
) -> Result<(), Stop> {
    for &(index, step) in steps {
        let mut batch_ids = Vec::new();
        if let Step::Reopen = step {
            if let Some(old) = log.take() {
                // Best effort, as at a server's shutdown.
                let _ = old.close();
            }
            if let Err(error) = Log::open(data_dir(), config(sim)).map(|l| *log = Some(l)) {
                m.stopped = Some(format!("{step:?}"));
                return Err(Stop {
                    index,
                    error,
                    batch_ids,
                });
            }
            m.steps += 1;
            continue;
        }
        let Some(log) = log.as_ref() else {
            return Err(Stop {
                index,
                error: Error::PreviousIo,
                batch_ids,
            });
        };
        let result = match step {
            Step::Reopen => unreachable!("handled above"),
            Step::Append(_) | Step::Planted => {
                let n = match step {
                    Step::Append(n) => n,
                    _ => 1,
                };
                let batch: Vec<String> = (0..n)
                    .map(|_| {
                        *seq += 1;
                        msg("record", *seq)
                    })
                    .collect();
                // One thread: the batch gets the ids after the durable head.
                let next = log.last_id().unwrap_or(0) + 1;
                batch_ids = (next..next + n).collect();
                let mut recs = records(&batch);
                if let Step::Planted = step {
                    let mut meta = serde_json::Map::new();
                    meta.insert("p".into(), planted_frame(next + 4).into());
                    meta.insert("pad".into(), "x".repeat(3950).into());
                    recs[0].metadata = meta;
                }
                match log.append(&recs) {
                    Ok(ids) => {
                        assert_eq!(ids.len(), batch.len());
                        m.acked.extend(ids.into_iter().zip(batch));
                        Ok(())
                    }
                    Err(e) => {
                        m.failed.push(batch);
                        Err(e)
                    }
                }
            }
            Step::Roll => log.roll(),
            Step::Retain(n) => {
                let target = log.last_id().map_or(1, |l| (l + 1).saturating_sub(n));
                let r = log
                    .set_retention(Retention {
                        max_days: None,
                        max_entries: Some(n),
                    })
                    .and_then(|()| log.enforce_retention());
                log.wait_for_reapers();
                // Back to unbounded reads: what is checked is the persisted
                // watermark alone.
                log.set_retention(Retention::default()).expect("valid");
                match r {
                    Ok(out) => {
                        m.low = out.low_watermark;
                        m.low_attempt = None;
                        Ok(())
                    }
                    Err(e) => {
                        m.low_attempt = Some(target.max(m.low));
                        Err(e)
                    }
                }
            }
            Step::Clear => {
                let target = log.last_id().map_or(1, |l| l + 1);
                let r = log.clear();
                log.wait_for_reapers();
                match r {
                    Ok(_) => {
                        m.low = target;
                        m.low_attempt = None;
                        Ok(())
                    }
                    Err(e) => {
                        m.low_attempt = Some(target);
                        Err(e)
                    }
                }
            }
            Step::Write(f, version) => {
                let name = STATE_FILES[f];
                let bytes = format!("{{\"{name}\":{version}}}").into_bytes();
                let entry = m.files.entry(name.to_string()).or_default();
                match write_atomic_in(sim, &data_dir().join(name), &bytes) {
                    Ok(()) => {
                        *entry = (Some(bytes), None);
                        Ok(())
                    }
                    Err(e) => {
                        entry.1 = Some(bytes);
                        Err(e)
                    }
                }
            }
        };
        if let Err(error) = result {
            m.stopped = Some(format!("{step:?}"));
            return Err(Stop {
                index,
                error,
                batch_ids,
            });
        }
        m.steps += 1;
    }
    Ok(())
}

/// A valid frame (COMMIT, no FLUSH flag) whose bytes are all ASCII, so that
/// it can sit in a JSON string (as in `torn_flush.rs`), with the first id
/// from `id` on whose bytes are ASCII.
fn planted_frame(id: u64) -> String {
    let id = (id..)
        .find(|i| i.to_le_bytes().iter().all(|&b| b < 0x80))
        .expect("an id with ASCII bytes");
    for n in 0..1_000_000u64 {
        let payload = format!("PLANT{n:011}");
        let mut f = Vec::new();
        actlog_engine::frame::encode_into(
            &mut f,
            id,
            0x3030_3030_3030_3030,
            actlog_engine::frame::FLAG_COMMIT,
            payload.as_bytes(),
        );
        if f.iter().all(|&b| b < 0x80) {
            return String::from_utf8(f).expect("ascii");
        }
    }
    panic!("no payload makes a frame with id {id} ASCII")
}

fn numbered(steps: Vec<Step>) -> Vec<(usize, Step)> {
    steps.into_iter().enumerate().collect()
}

/// The scripted workload on a fresh machine, with `arm` applied before the
/// log is even created; stops at the first error, then the power goes.
fn run_scripted(sim: &SimFs, arm: impl FnOnce(&SimFs)) -> Model {
    arm(sim);
    let mut m = Model::new();
    let mut log = match Log::open(data_dir(), config(sim)) {
        Ok(log) => Some(log),
        Err(_) => {
            m.stopped = Some("the first open".into());
            sim.power_off();
            return m;
        }
    };
    let _ = run_steps(sim, &mut log, &numbered(script()), &mut m, &mut 0);
    sim.power_off();
    drop(log);
    m
}

// ---------------------------------------------------------------------------
// Checking one crash image.

/// Everything visible, as (id, message).
fn contents(log: &Log) -> Result<Vec<(u64, String)>, String> {
    log.iter(0, Direction::Forward)
        .map(|r| {
            r.map(|r| (r.id, r.message))
                .map_err(|e| format!("read: {e}"))
        })
        .collect()
}

/// Checks a log just opened after a crash against the model. Returns the
/// watermark and what is visible.
fn check_log(log: &Log, sim: &SimFs, m: &Model) -> Result<(u64, Vec<(u64, String)>), String> {
    let low = log
        .stats()
        .map_err(|e| format!("stats: {e}"))?
        .low_watermark;
    if low != m.low && Some(low) != m.low_attempt {
        return Err(format!(
            "watermark {low}, acknowledged {}, attempted {:?}",
            m.low, m.low_attempt
        ));
    }
    let got = contents(log)?;
    let by_id: BTreeMap<u64, &str> = got.iter().map(|(id, s)| (*id, s.as_str())).collect();
    let lost: Vec<u64> = m
        .acked
        .range(low..)
        .filter(|(id, s)| by_id.get(id) != Some(&s.as_str()))
        .map(|(id, _)| *id)
        .collect();
    if !lost.is_empty() {
        let changed: Vec<u64> = lost
            .iter()
            .copied()
            .filter(|id| by_id.contains_key(id))
            .collect();
        return Err(format!(
            "{} acknowledged ids lost or changed (watermark {low}): {:?}{}; changed: {:?}",
            lost.len(),
            &lost[..lost.len().min(12)],
            if lost.len() > 12 { " ..." } else { "" },
            &changed[..changed.len().min(12)],
        ));
    }
    let extra: HashSet<&str> = got
        .iter()
        .filter(|(id, _)| !m.acked.contains_key(id))
        .map(|(_, s)| s.as_str())
        .collect();
    if !extra.is_empty() {
        let allowed: HashSet<&str> = m.failed.iter().flatten().map(String::as_str).collect();
        let unknown: Vec<&&str> = extra.iter().filter(|s| !allowed.contains(**s)).collect();
        if !unknown.is_empty() {
            return Err(format!(
                "records that were never appended, or under another id: {unknown:?}"
            ));
        }
        for b in &m.failed {
            let present = b.iter().filter(|s| extra.contains(s.as_str())).count();
            if present != 0 && present != b.len() {
                return Err(format!(
                    "a batch that was never acknowledged is half there: {present} of {}",
                    b.len()
                ));
            }
        }
    }
    // The index finds records where reads do: the newest (the active
    // segment's index, rebuilt from frames or a saved snapshot), the oldest
    // and one in between (sealed indexes, loaded or rebuilt).
    let n = got.len();
    let sample = [
        0,
        n / 2,
        n.saturating_sub(3),
        n.saturating_sub(2),
        n.saturating_sub(1),
    ];
    for i in sample.into_iter().filter(|&i| i < n) {
        let (id, message) = &got[i];
        let Some(word) = own_word(message) else {
            continue;
        };
        let found = common::word_ids(log, word);
        if found != [*id] {
            return Err(format!(
                "the index finds {found:?} for the word of id {id} ({message:?})"
            ));
        }
        match log.get(*id) {
            Ok(Some(r)) if r.message == *message => {}
            other => return Err(format!("get({id}) gives {other:?}, iteration {message:?}")),
        }
    }
    let report = log.recovery_report();
    let mut gaps = report.quarantined_gaps.clone();
    gaps.extend(report.lost_ids);
    for w in got.windows(2) {
        let (a, b) = (w[0].0, w[1].0);
        if b != a + 1 && !gaps.iter().any(|&(from, to)| from <= a + 1 && b <= to) {
            return Err(format!("ids jump from {a} to {b}, no gap recorded"));
        }
    }
    for (name, (acked, attempt)) in &m.files {
        let now = sim.file(&data_dir().join(name));
        if now != *acked && !(now.is_some() && now == *attempt) {
            return Err(format!(
                "{name} holds {:?}, acknowledged {:?}, attempted {:?}",
                now.as_deref().map(String::from_utf8_lossy),
                acked.as_deref().map(String::from_utf8_lossy),
                attempt.as_deref().map(String::from_utf8_lossy),
            ));
        }
    }
    Ok((low, got))
}

/// The model of a log that recovery already opened: exactly `acked` from
/// `low` on, the state files as they are now, nothing else.
fn settled(sim: &SimFs, m: &Model, low: u64, acked: BTreeMap<u64, String>) -> Model {
    let mut settled = Model::new();
    settled.min_next = m.min_next;
    settled.low = low;
    settled.acked = acked;
    for name in STATE_FILES {
        let now = sim.file(&data_dir().join(name));
        settled.files.insert(name.to_string(), (now, None));
    }
    settled
}

/// Opens the restarted machine `sim` and checks it against `m`, then
/// appends (new ids above every id acknowledged). Then, by `variant`:
///
/// * `FixedPointFirst`: a crash with `second`; the reopened log holds
///   exactly what the first recovery showed and the append (recovery is a
///   fixed point, and made durable what it changed); then it operates (a
///   roll, a retention run keeping only the two newest records, which
///   unlinks every older segment, one more append) and a third crash
///   (durable state only) finds that;
/// * `OperateFirst`: the handle the first recovery built operates right
///   away (what recovery left in memory is used: a wrong view shows here),
///   then a crash with `second` finds that.
fn check_image(sim: &SimFs, m: &Model, second: Image, variant: Variant) -> Result<(), String> {
    let log = Log::open(data_dir(), config(sim)).map_err(|e| format!("open failed: {e}"))?;
    let (low, got) = check_log(&log, sim, m)?;
    let floor = m.max_acked().max(got.last().map_or(0, |g| g.0));
    let after: Vec<String> = (0..2).map(|i| msg("after the crash", i)).collect();
    let ids = log
        .append(&records(&after))
        .map_err(|e| format!("append after reopen: {e}"))?;
    if ids[0] <= floor || ids[0] < m.min_next {
        return Err(format!(
            "id {} handed out again (acknowledged up to {}, visible up to {floor}, none below \
             {} may be)",
            ids[0],
            m.max_acked(),
            m.min_next
        ));
    }
    let mut acked: BTreeMap<u64, String> = got
        .into_iter()
        .chain(ids.iter().copied().zip(after))
        .collect();
    let (log, last_image) = match variant {
        Variant::FixedPointFirst => {
            let m2 = settled(sim, m, low, acked.clone());
            sim.power_off();
            drop(log);
            sim.restart(second);
            let log = Log::open(data_dir(), config(sim))
                .map_err(|e| format!("second open (after {second:?}) failed: {e}"))?;
            check_log(&log, sim, &m2)
                .map_err(|e| format!("after a second crash ({second:?}): {e}"))?;
            (log, Image::DurableOnly)
        }
        Variant::OperateFirst => (log, second),
    };

    log.roll().map_err(|e| format!("roll after reopen: {e}"))?;
    log.set_retention(Retention {
        max_days: None,
        max_entries: Some(2),
    })
    .map_err(|e| format!("{e}"))?;
    let kept = log
        .enforce_retention()
        .map_err(|e| format!("retention after reopen: {e}"));
    log.wait_for_reapers();
    log.set_retention(Retention::default())
        .map_err(|e| format!("{e}"))?;
    let low3 = kept?.low_watermark;
    if low3 != ids[0] {
        return Err(format!(
            "retention keeping 2 after reopen: watermark {low3}, the newest two start at {}",
            ids[0]
        ));
    }
    let last: Vec<String> = vec![msg("after retention", 0)];
    let id3 = log
        .append(&records(&last))
        .map_err(|e| format!("append after retention: {e}"))?;
    if id3[0] <= ids[1] {
        return Err(format!("id {} handed out again after retention", id3[0]));
    }
    acked.extend(id3.into_iter().zip(last));
    let m3 = settled(sim, m, low3, acked);
    sim.power_off();
    drop(log);
    sim.restart(last_image);
    let log = Log::open(data_dir(), config(sim)).map_err(|e| {
        format!("open after the roll and retention and a crash ({last_image:?}) failed: {e}")
    })?;
    check_log(&log, sim, &m3)
        .map_err(|e| format!("after the roll and retention and a crash ({last_image:?}): {e}"))?;
    let id = log
        .append(&records(&[msg("after the last crash", 0)]))
        .map_err(|e| format!("append after the last reopen: {e}"))?[0];
    if id <= m3.max_acked() {
        return Err(format!(
            "after the last crash: id {id} handed out again (acknowledged up to {})",
            m3.max_acked()
        ));
    }
    sim.power_off();
    drop(log);
    Ok(())
}

/// What [`check_image`] does after the first recovery.
#[derive(Debug, Clone, Copy)]
enum Variant {
    FixedPointFirst,
    OperateFirst,
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A crash image's files and bytes, hashed.
fn fingerprint(sim: &SimFs, h: &mut DefaultHasher) {
    for path in sim.files() {
        path.hash(h);
        sim.file(&path).hash(h);
    }
}

/// The images to restart a crashed machine with.
fn images(crashed: &SimFs, salt: u64) -> Vec<Image> {
    let n = crashed.pending_units();
    let mut v = vec![Image::DurableOnly, Image::All];
    let subsets = if n <= MASK_MAX_UNITS {
        v.extend((0..1u128 << n).map(Image::Mask));
        // Masks keep every unsynced directory operation; subsets keep a
        // prefix of them.
        8
    } else {
        SUBSETS
    };
    let seed = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    v.extend((0..subsets).map(|i| Image::Subset(seed ^ i)));
    // Prefix images, the last kept write torn at any byte.
    v.extend((0..3).map(|i| Image::Partial(seed ^ (i + 100))));
    v
}

// ---------------------------------------------------------------------------
// A sweep: counts distinct crash states and collects failures.

static TOTAL_STATES: AtomicU64 = AtomicU64::new(0);
static SCENARIOS_DONE: AtomicU64 = AtomicU64::new(0);
/// The scenarios of this file (tests), for the total.
const SCENARIOS: u64 = 7;

struct Sweep {
    name: &'static str,
    /// Distinct crash states checked (image and model).
    states: u64,
    /// Images built, duplicates included.
    images: u64,
    /// Crashed machines the images were built from.
    crashes: u64,
    seen: HashSet<u64>,
    failures: Vec<String>,
    /// What the sweep went through, counted (printed with the totals).
    notes: BTreeMap<String, u64>,
    started: Instant,
}

impl Sweep {
    fn new(name: &'static str) -> Sweep {
        Sweep {
            name,
            states: 0,
            images: 0,
            crashes: 0,
            seen: HashSet::new(),
            failures: Vec::new(),
            notes: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    /// Restarts a copy of the crashed machine with `image` and checks it
    /// (unless an identical image was checked against the same model).
    fn check(&mut self, crashed: &SimFs, m: &Model, image: Image, what: &str) {
        let sim = crashed.fork();
        sim.restart(image);
        self.images += 1;
        let key = {
            let mut h = DefaultHasher::new();
            fingerprint(&sim, &mut h);
            // What the checks depend on (not the step labels).
            (&m.acked, &m.failed, m.low, m.low_attempt).hash(&mut h);
            (&m.files, m.min_next).hash(&mut h);
            SEGMENT_BYTES.with(Cell::get).hash(&mut h);
            h.finish()
        };
        if !self.seen.insert(key) {
            return;
        }
        self.states += 1;
        let second = if self.states.is_multiple_of(3) {
            Image::Subset(self.states)
        } else {
            Image::DurableOnly
        };
        let variant = if self.states.is_multiple_of(2) {
            Variant::OperateFirst
        } else {
            Variant::FixedPointFirst
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| check_image(&sim, m, second, variant)));
        let problem = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(p) => format!("panicked: {}", panic_text(&*p)),
        };
        self.failures.push(format!(
            "{what}, {}, image {image:?} ({variant:?}): {problem}",
            m.at()
        ));
    }

    /// Every image of one crashed machine.
    fn crash_state(&mut self, crashed: &SimFs, m: &Model, what: &str, salt: u64) {
        self.crashes += 1;
        for image in images(crashed, salt) {
            self.check(crashed, m, image, what);
        }
    }

    /// Restarts the crashed machine with everything the process wrote
    /// (the messiest image) and powers off during recovery, at each of its
    /// operations in turn; each of those states is checked.
    fn recovery_cuts(&mut self, crashed: &SimFs, m: &Model, what: &str) {
        let probe = crashed.fork();
        probe.restart(Image::All);
        let before = probe.total_ops();
        let ops = match Log::open(data_dir(), config(&probe)) {
            Ok(log) => {
                let ops = probe.total_ops() - before;
                probe.power_off();
                drop(log);
                ops
            }
            // Reported by the image sweep.
            Err(_) => return,
        };
        for j in 1..=ops {
            let sim = crashed.fork();
            sim.restart(Image::All);
            sim.fail_nth(None, j, Fault::PowerCut);
            let first = Log::open(data_dir(), config(&sim));
            sim.power_off();
            drop(first);
            self.crashes += 1;
            let what = format!("{what}, power cut at recovery op {j} of {ops}");
            for image in [Image::DurableOnly, Image::All, Image::Subset(j)] {
                self.check(&sim, m, image, &what);
            }
        }
    }

    /// Counts one more of `what` the sweep went through.
    fn note(&mut self, what: impl Into<String>) {
        *self.notes.entry(what.into()).or_default() += 1;
    }

    /// Prints the counts and failures; fails the test on any failure, or if
    /// fewer than `floor` states were checked.
    fn finish(self, floor: u64) {
        let secs = self.started.elapsed().as_secs_f64();
        let total = TOTAL_STATES.fetch_add(self.states, Ordering::SeqCst) + self.states;
        let done = SCENARIOS_DONE.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!(
            "crash_images: {}: {} distinct crash states checked ({} images of {} crashed \
             machines) in {secs:.1} s; {} failures",
            self.name,
            self.states,
            self.images,
            self.crashes,
            self.failures.len()
        );
        if !self.notes.is_empty() {
            eprintln!("crash_images: {}: {:?}", self.name, self.notes);
        }
        if done == SCENARIOS {
            eprintln!("crash_images: TOTAL: {total} distinct crash states checked");
        }
        for f in self.failures.iter().take(40) {
            eprintln!("  FAIL {}: {f}", self.name);
        }
        if self.failures.len() > 40 {
            eprintln!("  ... and {} more", self.failures.len() - 40);
        }
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} crash states failed; first: {}",
            self.name,
            self.failures.len(),
            self.states,
            self.failures[0]
        );
        assert!(
            self.states >= floor,
            "{}: only {} crash states checked (floor {floor}): the sweep shrank",
            self.name,
            self.states
        );
    }
}

// ---------------------------------------------------------------------------
// Scenarios on the simulated filesystem.

/// The scripted workload without a fault: its operation count (from before
/// the first open), and that it reaches every named crash point but
/// recovery's.
fn scripted_baseline() -> (u64, SimFs) {
    let sim = SimFs::new();
    let m = run_scripted(&sim, |_| {});
    assert!(m.stopped.is_none(), "no fault, no error: {m:?}");
    let seen = sim.points_seen();
    for p in CRASH_POINTS {
        if *p != "recovery::before_truncate" {
            assert!(seen.contains(p), "the workload never reaches {p}");
        }
    }
    (sim.total_ops(), sim)
}

#[test]
fn scripted_workload_power_cut_at_every_operation() {
    let mut sweep = Sweep::new("scripted workload, power cut at every operation");
    for seg in [1024, 4096] {
        segment_bytes(seg);
        let (ops, base) = scripted_baseline();
        eprintln!(
            "crash_images: scripted workload, {seg}-byte segments: {ops} write-path operations \
             {:?}",
            base.op_counts()
        );
        assert!(
            ops > 200,
            "the workload exercises the write path ({ops} ops)"
        );
        // One more than the workload has: a power cut after its last step.
        for k in 1..=ops + 1 {
            let sim = SimFs::new();
            let m = run_scripted(&sim, |s| s.fail_nth(None, k, Fault::PowerCut));
            let what = format!("{seg}-byte segments, power cut at op {k}");
            sweep.crash_state(&sim, &m, &what, k);
            sweep.recovery_cuts(&sim, &m, &what);
        }
        for point in CRASH_POINTS
            .iter()
            .filter(|p| **p != "recovery::before_truncate")
        {
            let sim = SimFs::new();
            let m = run_scripted(&sim, |s| s.crash_at(point));
            assert_eq!(sim.injected(), 1, "{point} fired");
            let what = format!("{seg}-byte segments, crash point {point}");
            sweep.crash_state(&sim, &m, &what, ops + 7);
        }
    }
    sweep.finish(900);
}

/// Appenders on three threads (their batches share fsyncs: group commit,
/// one of them 130 records) and a fourth awaiting `append_async` (the
/// flusher thread leads its flushes), while the main thread rolls. Each
/// stops at its first error; then the power goes.
fn run_group_commit(sim: &SimFs, arm: impl FnOnce(&SimFs)) -> Model {
    arm(sim);
    let mut m = Model::new();
    let log = match Log::open(data_dir(), config(sim)) {
        Ok(log) => log,
        Err(_) => {
            m.stopped = Some("the first open".into());
            sim.power_off();
            return m;
        }
    };
    type Outcome = (Vec<(u64, String)>, Option<Vec<String>>);
    let (outcomes, roll_failed): (Vec<Outcome>, bool) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3u64)
            .map(|t| {
                let log = log.clone();
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..10u64 {
                        let n = if t == 0 && i == 4 {
                            130
                        } else {
                            1 + (t + i) % 3
                        };
                        let batch: Vec<String> =
                            (0..n).map(|j| msg(&format!("t{t} b{i}"), j)).collect();
                        match log.append(&records(&batch)) {
                            Ok(ids) => acked.extend(ids.into_iter().zip(batch)),
                            Err(_) => return (acked, Some(batch)),
                        }
                    }
                    (acked, None)
                })
            })
            .collect();
        // A fourth appender awaits `append_async`: the flusher thread leads
        // its flushes.
        let tasks = {
            let log = log.clone();
            s.spawn(move || {
                let mut acked = Vec::new();
                for i in 0..8u64 {
                    let batch: Vec<String> =
                        (0..1 + i % 2).map(|j| msg(&format!("a b{i}"), j)).collect();
                    match common::block_on(log.append_async(&records(&batch))) {
                        Ok(done) => acked.extend(done.ids().zip(batch)),
                        Err(_) => return (acked, Some(batch)),
                    }
                }
                (acked, None)
            })
        };
        let mut roll_failed = false;
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_micros(400));
            if log.roll().is_err() {
                roll_failed = true;
                break;
            }
        }
        let outcomes = workers
            .into_iter()
            .chain([tasks])
            .map(|w| w.join().expect("appender thread"))
            .collect();
        (outcomes, roll_failed)
    });
    for (acked, failed) in outcomes {
        m.steps += acked.len();
        for (id, s) in acked {
            assert!(
                m.acked.insert(id, s).is_none(),
                "id {id} acknowledged twice"
            );
        }
        if let Some(batch) = failed {
            m.failed.push(batch);
        }
    }
    if !m.failed.is_empty() || roll_failed {
        m.stopped = Some(format!(
            "{} appenders failed{}",
            m.failed.len(),
            if roll_failed { ", and a roll" } else { "" }
        ));
    }
    sim.power_off();
    drop(log);
    m
}

#[test]
fn group_commit_power_cut_at_every_operation() {
    let mut sweep =
        Sweep::new("group commit (3 appenders, 1 async, and rolls), power cut at every operation");
    for seg in [2048, 4096] {
        segment_bytes(seg);
        group_commit_sweep(&mut sweep, seg);
    }
    sweep.finish(600);
}

fn group_commit_sweep(sweep: &mut Sweep, seg: u64) {
    // The number of flushes depends on how the threads meet: the most of a
    // few runs.
    let ops = (0..3)
        .map(|_| {
            let sim = SimFs::new();
            let m = run_group_commit(&sim, |_| {});
            assert!(m.stopped.is_none(), "no fault, no error: {:?}", m.stopped);
            assert_eq!(
                m.acked.len(),
                147 + 20 + 21 + 12,
                "every record acknowledged"
            );
            sim.total_ops()
        })
        .max()
        .expect("three runs");
    eprintln!("crash_images: group commit, {seg}-byte segments: up to {ops} write-path operations");
    for k in 1..=ops + 1 {
        let sim = SimFs::new();
        let m = run_group_commit(&sim, |s| s.fail_nth(None, k, Fault::PowerCut));
        let what = format!("{seg}-byte segments, power cut at op {k} (threads: not replayable)");
        sweep.crash_state(&sim, &m, &what, k);
        if k.is_multiple_of(2) {
            sweep.recovery_cuts(&sim, &m, &what);
        }
    }
}

// ---------------------------------------------------------------------------
// A fault, `Log::recover`, and on: fsyncgate, a failed directory fsync, any
// failed operation.

/// Where to power off during `Log::recover`.
#[derive(Debug, Clone, Copy)]
enum RecoverCut {
    None,
    /// Count the operations `recover` makes (returned), cut none.
    Probe,
    /// A power cut at this operation of `recover`.
    At(u64),
}

/// The scripted workload with `fault` at the `n`-th operation of `kind`
/// (counted from after the first open). The step that hits it fails; the
/// handle is recovered in place (`Log::recover`, retried), the failed batch
/// must be gone, then the rest of the script and three more appends run,
/// and the power goes: every crash image of that machine is checked. With
/// `cut`, the power goes during `recover` instead. Returns the operations
/// `recover` made.
fn fault_recover_go_on(
    sweep: &mut Sweep,
    kind: Option<Op>,
    fault: Fault,
    n: u64,
    cut: RecoverCut,
) -> u64 {
    let what = format!("{fault:?} at {kind:?} #{n}");
    let sim = SimFs::new();
    let mut log = Some(Log::open(data_dir(), config(&sim)).expect("open on an empty machine"));
    sim.fail_nth(kind, n, fault);
    let mut m = Model::new();
    let mut seq = 0;
    let mut steps = numbered(script());
    let tail = steps.len();
    let Err(stop) = run_steps(&sim, &mut log, &steps, &mut m, &mut seq) else {
        // Absorbed (an index file's fsync: derived data) or never reached.
        sim.power_off();
        drop(log);
        if matches!(cut, RecoverCut::None) {
            sweep.note("fault absorbed");
            sweep.crash_state(&sim, &m, &format!("{what} (absorbed)"), n);
        }
        return 0;
    };
    let before = sim.total_ops();
    // The fault hit the open of a reopen step: the process opens again.
    let log = match log {
        Some(log) => log,
        None => {
            if !matches!(cut, RecoverCut::None) {
                sim.power_off();
                return 0;
            }
            let mut reopened = None;
            for _ in 0..3 {
                if let Ok(l) = Log::open(data_dir(), config(&sim)) {
                    reopened = Some(l);
                    break;
                }
            }
            let Some(l) = reopened else {
                sweep.failures.push(format!(
                    "{what}, {}: the log does not open again: {}",
                    m.at(),
                    stop.error
                ));
                sim.power_off();
                return 0;
            };
            l
        }
    };
    if let RecoverCut::At(j) = cut {
        sim.fail_nth(None, j, Fault::PowerCut);
        let r = log.recover();
        sim.power_off();
        drop(log);
        if sim.injected() < 2 {
            // `recover` made fewer operations this time: nothing to cut.
            return 0;
        }
        assert!(r.is_err(), "{what}: a power cut inside recover fails it");
        let what = format!("{what}, then a power cut at recover op {j}");
        sweep.crash_state(&sim, &m, &what, n * 131 + j);
        return 0;
    }
    let mut recovered = log.recover();
    for _ in 0..2 {
        if recovered.is_ok() {
            break;
        }
        recovered = log.recover();
    }
    let recover_ops = sim.total_ops() - before;
    if let RecoverCut::Probe = cut {
        sim.power_off();
        return recover_ops;
    }
    let at = format!("{what}, {}", m.at());
    let kind_of_step = m.stopped.clone().unwrap_or_default();
    let kind_of_step = kind_of_step.split('(').next().unwrap_or_default();
    sweep.note(format!(
        "{kind_of_step} failed, handle {}",
        match &recovered {
            Ok(Some(_)) => "recovered",
            Ok(None) => "was not fail-stopped",
            Err(_) => "not recovered",
        }
    ));
    if !stop.batch_ids.is_empty() && recovered.is_ok() {
        sweep.note("failed batch checked gone after recover");
    }
    if let Err(e) = recovered {
        sweep
            .failures
            .push(format!("{at}: recover failed three times: {e}"));
        sim.power_off();
        drop(log);
        sweep.crash_state(&sim, &m, &format!("{what}, recover failed"), n);
        return recover_ops;
    }
    // Right after recover: the batch that failed is not there.
    for id in &stop.batch_ids {
        match log.get(*id) {
            Ok(None) => {}
            Ok(Some(r)) => sweep.failures.push(format!(
                "{at}: id {id} of the failed batch is visible after recover: {:?} (error was: {})",
                r.message, stop.error
            )),
            Err(e) => sweep
                .failures
                .push(format!("{at}: reading id {id} after recover: {e}")),
        }
    }
    // Nor, whatever its ids, any record of it; every acknowledged one is.
    m.failed.clear();
    if let Err(e) = check_log(&log, &sim, &m) {
        sweep
            .failures
            .push(format!("{at}: the recovered handle: {e}"));
    }
    // Go on: the rest of the script, and three more appends.
    steps.drain(..=stop.index);
    steps.extend(
        [Step::Append(1), Step::Append(2), Step::Append(3)]
            .into_iter()
            .enumerate()
            .map(|(i, s)| (tail + i, s)),
    );
    let mut log = Some(log);
    if let Err(again) = run_steps(&sim, &mut log, &steps, &mut m, &mut seq) {
        sweep.failures.push(format!(
            "{at}: after recover, step {} failed: {}",
            again.index, again.error
        ));
    }
    sim.power_off();
    drop(log);
    sweep.crash_state(&sim, &m, &format!("{what}, recovered, went on"), n);
    recover_ops
}

/// Runs [`fault_recover_go_on`] for every `n` over the workload's
/// operations of `kind`, and for every `cut_every`-th also cuts the power
/// at every operation of `recover`.
fn fault_sweep(name: &'static str, faults: &[(Option<Op>, Fault)], cut_every: u64, floor: u64) {
    let mut sweep = Sweep::new(name);
    for &(kind, fault) in faults {
        fault_sweep_one(&mut sweep, kind, fault, cut_every);
    }
    sweep.finish(floor);
}

fn fault_sweep_one(sweep: &mut Sweep, kind: Option<Op>, fault: Fault, cut_every: u64) {
    let name = format!("{fault:?} at every {kind:?}");
    let (_, base) = scripted_baseline();
    // Counted from after the first open, as the fault is armed.
    let first_open = {
        let sim = SimFs::new();
        drop(Log::open(data_dir(), config(&sim)).expect("open"));
        sim.op_counts()
    };
    let count = |c: &BTreeMap<Op, u64>| match kind {
        Some(k) => c.get(&k).copied().unwrap_or(0),
        None => c.values().sum(),
    };
    let ops = count(&base.op_counts()) - count(&first_open);
    let mut recover_cuts = 0;
    for n in 1..=ops {
        let recover_ops = if n.is_multiple_of(cut_every) {
            fault_recover_go_on(sweep, kind, fault, n, RecoverCut::Probe)
        } else {
            0
        };
        fault_recover_go_on(sweep, kind, fault, n, RecoverCut::None);
        for j in 1..=recover_ops {
            fault_recover_go_on(sweep, kind, fault, n, RecoverCut::At(j));
            recover_cuts += 1;
        }
    }
    eprintln!(
        "crash_images: {name}: {ops} operations failed in turn, {recover_cuts} power cuts \
         inside recover"
    );
}

/// fsyncgate: a failed fsync drops the dirty pages (Linux). The append that
/// hit it fails; `recover` cuts the active file back to its last synced
/// length, so the batch is gone for good even though the page cache still
/// shows it; everything acknowledged, before and after, survives any crash.
#[test]
fn fsyncgate_every_fsync_fails_once_then_recover() {
    fault_sweep(
        "fsyncgate (EIO dropping the dirty pages) at every fsync, recover, go on",
        &[(Some(Op::Sync), Fault::EioDropsDirty)],
        1,
        220,
    );
}

/// The audit's finding #3: a directory fsync fails after a rename (a new
/// segment, the id reservation, an index, the watermark, a state file);
/// `recover` makes the listing durable before it builds on it.
#[test]
fn directory_fsync_fails_once_then_recover() {
    fault_sweep(
        "EIO at every directory fsync, recover, go on",
        &[(Some(Op::SyncDir), Fault::Eio)],
        1,
        60,
    );
}

/// Every other operation failing once (EIO; a short write for writes),
/// then the same: recover, go on, crash.
#[test]
fn any_operation_fails_once_then_recover() {
    fault_sweep(
        "EIO at every operation, a short write at every write, recover, go on",
        &[(None, Fault::Eio), (Some(Op::Write), Fault::ShortWrite)],
        3,
        420,
    );
}

// ---------------------------------------------------------------------------
// Backup and restore, on a real directory (`backup::plan` reads through
// `std::fs`; `ids::mark_restored` writes through it). A crash is a process
// killed after some step: the files are as the step left them.

/// The real-filesystem log being backed up, and what it acknowledged.
struct Live {
    dir: PathBuf,
    log: Log,
    acked: BTreeMap<u64, String>,
    /// The ids of the last append (one append, one flush: one thread).
    last_batch: Vec<u64>,
    seq: u64,
}

impl Live {
    fn append(&mut self, n: u64) {
        let batch: Vec<String> = (0..n)
            .map(|_| {
                self.seq += 1;
                msg("live", self.seq)
            })
            .collect();
        let ids = self.log.append(&records(&batch)).expect("append");
        self.last_batch = ids.clone();
        self.acked.extend(ids.into_iter().zip(batch));
    }

    fn retain(&mut self, n: u64) {
        self.log
            .set_retention(Retention {
                max_days: None,
                max_entries: Some(n),
            })
            .expect("valid");
        self.log.enforce_retention().expect("retention");
        self.log.wait_for_reapers();
        self.log.set_retention(Retention::default()).expect("valid");
    }
}

/// A backup as copied, and what the live log had acknowledged when its
/// (last) plan was made.
struct Backup {
    names: Vec<String>,
    plans: usize,
    acked_at_plan: BTreeMap<u64, String>,
    low_at_plan: u64,
    last_batch_at_plan: Vec<u64>,
}

/// A backup of the live log, copied item by item as `actlog-inspect backup`
/// does while the log goes on: before each item two records are appended,
/// before the second a roll, and (once) before the third a retention run
/// that drops planned segments, so that a file vanishes and the backup
/// plans again. `exact`: [`Log::backup_plan`] (the server's, durable length
/// known), else the lock-free [`actlog_engine::backup::plan`].
fn take_backup(live: &mut Live, to: &Path, exact: bool) -> Backup {
    use actlog_engine::backup::{open_item, plan};
    let mut plans = 0;
    let mut dropped = false;
    'again: loop {
        plans += 1;
        assert!(plans < 10, "files kept vanishing");
        if to.exists() {
            std::fs::remove_dir_all(to).expect("clear the backup");
        }
        std::fs::create_dir_all(to).expect("mkdir backup");
        let acked_at_plan = live.acked.clone();
        let low_at_plan = live.log.stats().expect("stats").low_watermark;
        let last_batch_at_plan = live.last_batch.clone();
        let items = if exact {
            live.log.backup_plan(&STATE_FILES)
        } else {
            plan(&live.dir, &STATE_FILES)
        }
        .expect("plan");
        for (i, item) in items.iter().enumerate() {
            live.append(2);
            if i == 1 {
                live.log.roll().expect("roll");
            }
            if i == 2 && !dropped {
                dropped = true;
                live.retain(20);
            }
            let mut reader = match open_item(&live.dir, item) {
                Ok(r) => r,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue 'again;
                }
                Err(e) => panic!("open {}: {e}", item.name),
            };
            let mut out = std::fs::File::create(to.join(&item.name)).expect("create");
            let n = std::io::copy(&mut reader, &mut out).expect("copy");
            assert_eq!(n, item.len, "{} copied whole", item.name);
        }
        return Backup {
            names: items.iter().map(|i| i.name.clone()).collect(),
            plans,
            acked_at_plan,
            low_at_plan,
            last_batch_at_plan,
        };
    }
}

/// What a copy of the backup in `bk` opens to.
fn open_copy(bk: &Path, copy: &Path) -> BTreeMap<u64, String> {
    std::fs::create_dir(copy).expect("mkdir");
    common::copy_crash_image(bk, copy);
    let opened = Log::open(copy, real_config()).expect("the backup opens");
    contents(&opened).expect("readable").into_iter().collect()
}

fn real_config() -> Config {
    Config {
        segment_max_bytes: 64 << 10,
        ..Config::default()
    }
}

/// The marker's line with the old directory's id floor (tools/src/backup.rs).
const FLOOR_LINE: &str = "id floor: ";

/// `actlog-inspect restore`'s steps (tools/src/backup.rs), one at a time.
#[derive(Debug, Clone)]
enum RestoreStep {
    /// Write `RESTORING` (atomically).
    Marker,
    /// Remove one of the old data files.
    Remove(PathBuf),
    /// fsync the directory after the removals.
    SyncDir,
    /// Copy one backup file (temp, fsync, rename).
    Copy(String),
    /// fsync the directory; `ids::mark_restored` with the old id floor.
    Mark,
    /// Remove `RESTORING`; fsync the directory.
    Unmark,
}

fn sync_dir(dir: &Path) {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync directory");
}

/// The first id the directory cannot have handed out, as far as its files
/// tell (the tool's `old_id_floor`): its reservation's limit, and past every
/// id its segment files could hold.
fn old_id_floor(dir: &Path) -> u64 {
    let reserved = actlog_engine::ids::limit_of(dir)
        .ok()
        .flatten()
        .unwrap_or(0);
    let from_files = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let base =
                actlog_engine::segment::parse_segment_file_name(&e.file_name().to_string_lossy())?;
            let len = e.metadata().ok()?.len();
            Some(base.saturating_add(len / actlog_engine::frame::HEADER_LEN as u64))
        })
        .max()
        .unwrap_or(0);
    reserved.max(from_files)
}

/// Restores the backup in `from` (files `names`) over `to` as the tool
/// does, stopping (the process killed) before step `stop` if given.
/// Returns the steps and whether it finished.
fn restore(
    from: &Path,
    names: &[String],
    to: &Path,
    stop: Option<usize>,
) -> (Vec<RestoreStep>, bool) {
    use actlog_engine::backup::RESTORING_FILE;
    // As tools/src/backup.rs does since 96a8659: the floor of an earlier,
    // killed run is read back from its marker.
    let marker_floor = std::fs::read_to_string(to.join(RESTORING_FILE))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(FLOOR_LINE))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let floor = old_id_floor(to).max(marker_floor);
    let mut steps = vec![RestoreStep::Marker];
    let mut old: Vec<PathBuf> = std::fs::read_dir(to)
        .expect("list")
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("seg-")
                || name == actlog_engine::WATERMARK_FILE
                || name == actlog_engine::ids::IDS_FILE
                || STATE_FILES.contains(&name.as_str())
                || name.ends_with(".part")
                || name.ends_with(".tmp")
        })
        .map(|e| e.path())
        .collect();
    old.sort();
    steps.extend(old.into_iter().map(RestoreStep::Remove));
    steps.push(RestoreStep::SyncDir);
    steps.extend(names.iter().cloned().map(RestoreStep::Copy));
    steps.push(RestoreStep::Mark);
    steps.push(RestoreStep::Unmark);
    for (i, step) in steps.iter().enumerate() {
        if Some(i) == stop {
            return (steps, false);
        }
        match step {
            RestoreStep::Marker => actlog_engine::write_atomic(
                &to.join(RESTORING_FILE),
                format!("restore is writing this directory\n{FLOOR_LINE}{floor}\n").as_bytes(),
            )
            .expect("marker"),
            RestoreStep::Remove(p) => std::fs::remove_file(p).expect("remove"),
            RestoreStep::SyncDir => sync_dir(to),
            RestoreStep::Copy(name) => {
                let dest = to.join(name);
                let tmp = dest.with_extension("part");
                std::fs::copy(from.join(name), &tmp).expect("copy");
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .expect("fsync");
                std::fs::rename(tmp, dest).expect("rename");
            }
            RestoreStep::Mark => {
                sync_dir(to);
                actlog_engine::ids::mark_restored(to, floor).expect("mark restored");
            }
            RestoreStep::Unmark => {
                std::fs::remove_file(to.join(RESTORING_FILE)).expect("unmark");
                sync_dir(to);
            }
        }
    }
    (steps, true)
}

/// A restore step, shortly.
fn step_name(step: &RestoreStep) -> String {
    let file = |p: &Path| {
        p.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    match step {
        RestoreStep::Remove(p) => format!("remove the old {}", file(p)),
        RestoreStep::Copy(name) => format!("copy {name}"),
        other => format!("{other:?}"),
    }
}

/// Checks a restored log: exactly the backup's records, the backup's state
/// files, and new ids above every id the old log ever acknowledged.
fn check_restored(
    dir: &Path,
    want: &BTreeMap<u64, String>,
    files: &BTreeMap<String, Vec<u8>>,
    max_ever: u64,
) -> Result<(), String> {
    let log = Log::open(dir, real_config()).map_err(|e| format!("open failed: {e}"))?;
    let got: BTreeMap<u64, String> = contents(&log)?.into_iter().collect();
    if got != *want {
        let missing: Vec<u64> = want
            .keys()
            .filter(|id| !got.contains_key(id))
            .copied()
            .collect();
        return Err(format!(
            "{} records, the backup held {}; missing {:?}",
            got.len(),
            want.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    for (name, bytes) in files {
        let now = std::fs::read(dir.join(name)).ok();
        if now.as_ref() != Some(bytes) {
            return Err(format!("{name} is not the backup's"));
        }
    }
    let id = log
        .append(&records(&[msg("after the restore", 0)]))
        .map_err(|e| format!("append: {e}"))?[0];
    drop(log);
    let report_lost = {
        let log = Log::open(dir, real_config()).map_err(|e| format!("reopen failed: {e}"))?;
        log.recovery_report().lost_ids
    };
    if id <= max_ever {
        return Err(format!(
            "the restored log hands out id {id} again: the old log acknowledged ids up to \
             {max_ever} (lost ids recorded on reopen: {report_lost:?})"
        ));
    }
    Ok(())
}

#[test]
fn backup_while_writing_and_restore_killed_after_every_step() {
    let mut sweep = Sweep::new("backup while writing, restore killed after every step (real fs)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("live");
    let mut live = Live {
        log: Log::open(&dir, real_config()).expect("open"),
        dir,
        acked: BTreeMap::new(),
        last_batch: Vec::new(),
        seq: 0,
    };
    for i in 0..60 {
        live.append(1 + i % 3);
        if i % 10 == 9 {
            live.log.roll().expect("roll");
        }
        if i == 25 {
            actlog_engine::write_atomic(&live.dir.join(STATE_FILES[0]), b"{\"settings\":1}")
                .expect("settings");
            actlog_engine::write_atomic(&live.dir.join(STATE_FILES[1]), b"{\"keys\":1}")
                .expect("keys");
        }
    }
    live.retain(60);

    // The lock-free plan (`actlog-inspect backup --from`) of a directory a
    // log holds: everything acknowledged before the newest flush, which
    // may not be durable yet; never anything else.
    let bk = tmp.path().join("backup-lock-free");
    let b = take_backup(&mut live, &bk, false);
    assert!(
        b.plans >= 2,
        "a planned segment vanished and the backup planned again"
    );
    let got = open_copy(&bk, &tmp.path().join("copy-lock-free"));
    let outside: Vec<u64> = got
        .iter()
        .filter(|(id, s)| b.acked_at_plan.get(id) != Some(s))
        .map(|(id, _)| *id)
        .collect();
    let lost: Vec<u64> = b
        .acked_at_plan
        .range(b.low_at_plan..)
        .filter(|(id, _)| !got.contains_key(id) && !b.last_batch_at_plan.contains(id))
        .map(|(id, _)| *id)
        .collect();
    if !outside.is_empty() || !lost.is_empty() {
        sweep.failures.push(format!(
            "lock-free backup: records not acknowledged at the plan {outside:?}, acknowledged \
             records missing (beyond the newest flush {:?}): {lost:?}",
            b.last_batch_at_plan
        ));
    }
    sweep.states += 1;

    // The server's plan (`Log::backup_plan`): exactly what was acknowledged.
    let bk = tmp.path().join("backup");
    let b = take_backup(&mut live, &bk, true);
    assert!(b.plans >= 1);
    let want: BTreeMap<u64, String> = b
        .acked_at_plan
        .range(b.low_at_plan..)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let got = open_copy(&bk, &tmp.path().join("copy"));
    if got != want {
        sweep.failures.push(format!(
            "Log::backup_plan: the backup holds ids {:?}..={:?} ({}), acknowledged at the plan \
             {:?}..={:?} ({})",
            got.keys().next(),
            got.keys().next_back(),
            got.len(),
            want.keys().next(),
            want.keys().next_back(),
            want.len()
        ));
    }
    sweep.states += 1;
    let names = b.names;
    let files: BTreeMap<String, Vec<u8>> = STATE_FILES
        .iter()
        .filter_map(|n| Some((n.to_string(), std::fs::read(bk.join(n)).ok()?)))
        .collect();
    assert_eq!(files.len(), 2, "the state files are in the backup");

    // The live log goes on past the backup's id reservation: ids a restore
    // must never hand out again.
    let bk_limit = actlog_engine::ids::limit_of(&bk)
        .expect("readable")
        .expect("the backup has a reservation");
    while live.acked.keys().next_back().copied().unwrap_or(0) < bk_limit + 10 {
        live.append(1000);
    }
    live.append(3);
    let max_ever = live.acked.keys().next_back().copied().unwrap_or(0);
    let Live {
        log, dir: live_dir, ..
    } = live;
    drop(log);
    eprintln!(
        "crash_images: backup: {} files in {} plans, ids up to {:?}; the live log went on to \
         id {max_ever} (the backup's reservation limit {bk_limit})",
        names.len(),
        b.plans,
        want.keys().next_back()
    );

    // Restore over the live directory, killed before each step in turn;
    // then the operator runs it again.
    let pristine = tmp.path().join("pristine");
    std::fs::create_dir(&pristine).expect("mkdir");
    common::copy_crash_image(&live_dir, &pristine);
    let steps = {
        let probe = tmp.path().join("probe");
        std::fs::create_dir(&probe).expect("mkdir");
        common::copy_crash_image(&pristine, &probe);
        restore(&bk, &names, &probe, Some(usize::MAX)).0
    };
    let done = |k: usize| -> String {
        let names: Vec<String> = steps[..k].iter().map(step_name).collect();
        match names.len() {
            0 => "nothing done".into(),
            n if n <= 3 => names.join(", "),
            n => format!("{}, ... ({n} steps), last: {}", names[0], names[n - 1]),
        }
    };
    for k in 0..=steps.len() {
        let target = tmp.path().join(format!("restore-{k}"));
        std::fs::create_dir(&target).expect("mkdir");
        common::copy_crash_image(&pristine, &target);
        let (_, finished) = restore(&bk, &names, &target, Some(k));
        let what = format!(
            "restore killed before step {k} of {} ({}; done: {})",
            steps.len(),
            steps.get(k).map_or("none".into(), step_name),
            done(k)
        );
        if !finished {
            let marked = target.join(actlog_engine::backup::RESTORING_FILE).exists();
            match Log::open(&target, real_config()) {
                Err(Error::RestoreUnfinished { .. }) if marked => {}
                Ok(log) if !marked => {
                    // Nothing changed yet: the old log, whole.
                    let got = contents(&log).unwrap_or_default();
                    if got.last().map(|g| g.0) != Some(max_ever) {
                        sweep
                            .failures
                            .push(format!("{what}: the old log lost records"));
                    }
                }
                Ok(_) => sweep
                    .failures
                    .push(format!("{what}: a half-restored directory opened as a log")),
                Err(e) => sweep
                    .failures
                    .push(format!("{what}: open failed: {e} (marker: {marked})")),
            }
            sweep.states += 1;
            restore(&bk, &names, &target, None);
        }
        if let Err(e) = check_restored(&target, &want, &files, max_ever) {
            sweep.failures.push(format!("{what}, then run again: {e}"));
        }
        sweep.states += 1;
        std::fs::remove_dir_all(target).expect("clean up");
    }
    let floor = 2 * steps.len() as u64;
    sweep.finish(floor);
}

// ---------------------------------------------------------------------------
// A restored directory's first open, on the simulated filesystem.

/// The scripted workload, closed cleanly; then the directory is marked
/// restored (what `ids::mark_restored` writes, through `std::fs` only) with
/// the limit the backup carried raised by `extra` (the old directory's
/// floor). Returns the machine, the model and the limit.
fn restored_machine(extra: u64) -> (SimFs, Model, u64) {
    use actlog_engine::ids::{Reservation, IDS_FILE, RESTORED};
    let sim = SimFs::new();
    let mut m = Model::new();
    let mut log = Some(Log::open(data_dir(), config(&sim)).expect("open"));
    if run_steps(&sim, &mut log, &numbered(script()), &mut m, &mut 0).is_err() {
        panic!("no fault, no error: {m:?}");
    }
    log.take().expect("open").close().expect("clean close");
    let path = data_dir().join(IDS_FILE);
    let carried = Reservation::decode(&sim.file(&path).expect("a reservation"), &path)
        .expect("valid")
        .limit;
    let limit = carried + extra;
    let marked = Reservation {
        active_base: RESTORED,
        limit,
    };
    sim.put_file(&path, &marked.encode());
    m.min_next = limit;
    (sim, m, limit)
}

/// Opens the restored directory (with `arm` applied first), appends, rolls,
/// appends; stops at the first error, then the power goes.
fn run_restored(template: &SimFs, m0: &Model, arm: impl FnOnce(&SimFs)) -> (SimFs, Model) {
    let sim = template.fork();
    let mut m = m0.clone();
    m.steps = 0;
    arm(&sim);
    let mut log = match Log::open(data_dir(), config(&sim)) {
        Ok(log) => Some(log),
        Err(_) => {
            m.stopped = Some("the first open after the restore".into());
            sim.power_off();
            return (sim, m);
        }
    };
    use Step::*;
    let steps = numbered(vec![
        Append(2),
        Append(1),
        Roll,
        Append(3),
        Reopen,
        Append(1),
    ]);
    let _ = run_steps(&sim, &mut log, &steps, &mut m, &mut 1_000_000);
    sim.power_off();
    drop(log);
    (sim, m)
}

#[test]
fn restored_directory_first_open_power_cut_at_every_operation() {
    let mut sweep = Sweep::new("a restored directory's first open, power cut at every operation");
    for extra in [0, 777] {
        let (template, m0, limit) = restored_machine(extra);
        let (base, m) = run_restored(&template, &m0, |_| {});
        assert!(m.stopped.is_none(), "no fault, no error: {:?}", m.stopped);
        let first_new = m
            .acked
            .range(m0.max_acked() + 1..)
            .next()
            .map(|(id, _)| *id);
        assert!(
            first_new >= Some(limit),
            "the restored log goes on past its floor {limit}: {first_new:?}"
        );
        let ops = base.total_ops() - template.total_ops();
        for k in 1..=ops + 1 {
            let (sim, m) = run_restored(&template, &m0, |s| s.fail_nth(None, k, Fault::PowerCut));
            let what = format!("restored (floor {limit}), power cut at op {k}");
            sweep.crash_state(&sim, &m, &what, k + extra);
            sweep.recovery_cuts(&sim, &m, &what);
        }
    }
    sweep.finish(170);
}

// ---------------------------------------------------------------------------
// The smallest state the sweep finds that open refuses, on its own.

/// One record R, the first of a fresh log (so its flush writes no
/// preallocated zeros) and about 4.1 KiB long: its metadata holds a valid
/// frame a client chose (id R + 4, no FLUSH flag), then padding. The power
/// goes at R's fdatasync. Returns the crashed machine.
fn torn_record(planted: bool) -> SimFs {
    segment_bytes(1024);
    let sim = SimFs::new();
    let log = Log::open(data_dir(), config(&sim)).expect("open");
    sim.fail_nth(Some(Op::Sync), 1, Fault::PowerCut);
    let mut r = records(&[msg("carrier", 0)]);
    let mut meta = serde_json::Map::new();
    let p = if planted {
        planted_frame(5)
    } else {
        "y".repeat(40)
    };
    meta.insert("p".into(), p.into());
    meta.insert("pad".into(), "x".repeat(3950).into());
    r[0].metadata = meta;
    log.append(&r).expect_err("the power goes at its fdatasync");
    drop(log);
    assert_eq!(sim.pending_units(), 2, "R's write: two pages");
    sim
}

/// R's first page reached the disk, its second did not: the file ends at
/// 4096, inside R. R was never acknowledged and must be cut as a torn tail;
/// open instead finds the planted frame inside R's first page and refuses
/// the directory as damaged. (`Image::Partial`, a prefix of R cut at any
/// byte after the planted frame, is refused the same way.)
#[test]
fn a_record_cut_short_at_the_end_of_the_file_never_makes_open_refuse() {
    let crashed = torn_record(true);
    let sim = crashed.fork();
    sim.restart(Image::Mask(0b01));
    let len = sim
        .files()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .and_then(|p| sim.file(&p))
        .map(|b| b.len());
    assert_eq!(len, Some(4096), "the file ends where R's first page does");
    let log = Log::open(data_dir(), config(&sim))
        .unwrap_or_else(|e| panic!("a directory that only crashed must open: {e}"));
    assert_eq!(contents(&log).expect("readable"), vec![]);
    assert!(log.recovery_report().torn_tail.is_some());
}

/// Control: the same crash without the planted frame opens, R cut.
#[test]
fn control_the_same_record_without_a_planted_frame_is_cut() {
    let crashed = torn_record(false);
    let sim = crashed.fork();
    sim.restart(Image::Mask(0b01));
    let log = Log::open(data_dir(), config(&sim)).expect("opens");
    assert_eq!(contents(&log).expect("readable"), vec![]);
    assert!(log.recovery_report().torn_tail.is_some());
}
