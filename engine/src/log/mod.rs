//! The public handle: open (with recovery), append, read, iterate, query,
//! retention, clear, stats, close. The append path is in `append.rs`,
//! opening a directory (recovery included) in `open.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::config::Config;
use crate::env::LockGuard;
use crate::error::{Error, Result};
use crate::fsutil::{self, Durable};
use crate::group_commit::{GroupCommit, IoCounters, IoStats};
use crate::index::snapshot::{encode_snapshot, snapshot_path};
use crate::indexer::Indexer;
use crate::record::Record;
use crate::recovery::RecoveryReport;
use crate::retention::{self, Retention, RetentionOutcome, DAY_US};
use crate::view::{SegmentIndex, View};
use crate::writer::{IoState, WriterState};

mod append;
mod open;

pub use append::{AppendFuture, Appended};
pub(crate) use open::gap_recorded;
use open::{create_dir_durable, lock_dir, recover_dir, DurableHint, Recovered};
pub use open::{missing_marker_path, MISSING_MARKER_SUFFIX, MISSING_UNTIL, QUARANTINE_DIR};

/// Name of the lock file in a data directory.
pub const LOCK_FILE: &str = "LOCK";
/// Most records one `append` takes.
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// Upper bound of one batch's bytes (`MAX_BATCH_RECORDS` maximal frames).
pub const MAX_BATCH_BYTES: u64 =
    (MAX_BATCH_RECORDS * (crate::frame::HEADER_LEN + crate::frame::MAX_PAYLOAD)) as u64;

/// Which way an iterator walks ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Increasing ids (oldest first).
    Forward,
    /// Decreasing ids (newest first).
    #[default]
    Backward,
}

/// One segment, as [`Log::segments`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// First id.
    pub base_id: u64,
    /// Durable records it holds (including any below the watermark).
    pub records: u64,
    /// Bytes on disk: the segment file (durable part) plus its index file.
    pub bytes: u64,
    /// ts of its first and last record, if it has any.
    pub ts_range: Option<(i64, i64)>,
    /// Sealed (immutable) or active.
    pub sealed: bool,
}

/// Totals, as [`Log::stats`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Visible records.
    pub entries: u64,
    /// Segment files.
    pub segments: usize,
    /// Bytes on disk (segments and indexes).
    pub bytes: u64,
    /// Oldest visible record: (id, ts).
    pub oldest: Option<(u64, i64)>,
    /// Newest visible record: (id, ts).
    pub newest: Option<(u64, i64)>,
    /// The low watermark in force (smallest id that may be visible).
    pub low_watermark: u64,
}

/// A consistent read snapshot: the view, the last durable id, and the
/// smallest visible id (watermark and retention applied).
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub view: Arc<View>,
    /// Largest visible id (0 when none).
    pub last: u64,
    /// Smallest visible id; the log is empty when `first > last`.
    pub first: u64,
}

impl Snapshot {
    pub(crate) fn contains(&self, id: u64) -> bool {
        id >= self.first && id <= self.last
    }

    pub(crate) fn read(&self, id: u64) -> Result<Record> {
        self.view.read(id)
    }
}

/// Shared state behind every [`Log`] clone.
#[derive(Debug)]
pub(crate) struct Inner {
    pub dir: Arc<Path>,
    pub config: Config,
    pub view: RwLock<Arc<View>>,
    pub state: Mutex<WriterState>,
    pub io: Mutex<IoState>,
    pub commit: GroupCommit,
    pub io_counters: IoCounters,
    /// The persisted low watermark.
    low: AtomicU64,
    /// The retention bounds applied to reads and enforced on demand.
    retention: Mutex<Retention>,
    /// Serializes retention runs and clears.
    maintenance: Mutex<()>,
    /// Threads unlinking dropped segments; joined when the handle goes, so
    /// nothing outlives it in the background.
    reapers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    report: RecoveryReport,
    /// Opened with [`Log::open_read_only`]: no lock, no writes.
    read_only: bool,
    /// The thread that leads flushes for async appenders, once started.
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Tells the flusher to exit (set by the last handle's drop).
    flusher_stop: AtomicBool,
    /// `flusher` was set: spares every async append that mutex.
    flusher_started: AtomicBool,
    /// Indexes what a flush took while it writes and syncs.
    pub indexer: Indexer,
    /// Held (flock) for the life of the handle; released when the last clone drops.
    _lock: Option<LockGuard>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Inner {
    fn drop(&mut self) {
        let reapers = std::mem::take(self.reapers.get_mut().unwrap_or_else(|e| e.into_inner()));
        for h in reapers {
            let _ = h.join();
        }
        if !self.read_only {
            self.save_active_index();
        }
    }
}

impl Inner {
    /// On a clean close, saves the active segment's index so the next open
    /// re-indexes only what is appended after it (`index/snapshot.rs`).
    /// Best effort: without it, open rebuilds from the frames.
    fn save_active_index(&mut self) {
        let durable = self.commit.visible();
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.failed
            || !st.pending.is_empty()
            || !st.unindexed.is_empty()
            || st.count == 0
            || durable + 1 != st.next_id
        {
            return;
        }
        let active = st.active.clone();
        let bytes = {
            let table = active.table();
            if table.end != st.logical_len {
                return;
            }
            encode_snapshot(
                active.base_id(),
                &active.index(),
                &table,
                st.crc.clone().finalize(),
            )
        };
        let _ = fsutil::create_durable(
            &*self.config.fs,
            &snapshot_path(active.path()),
            &bytes,
            Durable::Other,
        );
    }

    /// Runs `work` (releasing resources: unlinking, unmapping, freeing;
    /// writing a sealed segment's index file) on a short-lived thread that
    /// the handle joins when it is dropped. If no thread can be had, the
    /// failed spawn drops the closure here unrun: what it owns is freed
    /// right away (slower, never wrong), and an index file it would have
    /// written is missing until the next open rebuilds it.
    pub(crate) fn in_background(&self, work: impl FnOnce() + Send + 'static) {
        if let Ok(handle) = std::thread::Builder::new()
            .name("actlog-background".into())
            .spawn(work)
        {
            let mut reapers = lock(&self.reapers);
            reapers.retain(|h| !h.is_finished());
            reapers.push(handle);
        }
    }

    /// Waits for the work [`Inner::in_background`] started: unlinks, and the
    /// index files of segments sealed off the locks.
    pub(crate) fn join_background(&self) {
        let reapers = std::mem::take(&mut *lock(&self.reapers));
        for h in reapers {
            let _ = h.join();
        }
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn update_view(&self, f: impl FnOnce(&View) -> View) {
        let mut v = self.view.write().unwrap_or_else(|e| e.into_inner());
        *v = Arc::new(f(&v));
    }

    /// Takes a read snapshot with retention applied as of now.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        // Visible first, then the view: a view taken later holds every id
        // published before it.
        let visible = self.commit.visible();
        let view = self.view();
        // The newest held id: ids of a gap at the head (lost ids recovery
        // skipped, see `ids.rs`) count as durable but no segment holds them.
        let last = view.nearest_held(visible, false).unwrap_or(0);
        let mut first = self.low.load(Ordering::Acquire).max(view.first_id());
        let policy = *lock(&self.retention);
        if let Some(n) = policy.max_entries {
            // The newest n records, not ids: a recorded gap holds none.
            first = first.max(view.start_of_newest(last, n));
        }
        if let Some(days) = policy.max_days {
            let cutoff = self
                .config
                .clock
                .now()
                .saturating_sub(i64::from(days) * DAY_US);
            first = first.max(first_id_at_or_after(&view, last, cutoff)?);
        }
        Ok(Snapshot { view, last, first })
    }
}

/// The first id `<= last + 1` whose ts is `>= t`.
fn first_id_at_or_after(view: &View, last: u64, t: i64) -> Result<u64> {
    for s in &view.sealed {
        if s.seg.count() > 0 && s.seg.footer().last_ts >= t {
            // A damaged frame header in this one segment must not fail every
            // read of the log: the bound then falls back to the segment's
            // start (its older records stay visible a little longer), and
            // reads of the damaged record itself report the damage.
            let local = crate::query::segment::SegmentReader::Sealed(s)
                .lower_bound_ts(t)
                .unwrap_or(0);
            return Ok(s.seg.base_id() + u64::from(local));
        }
    }
    let active = &view.active;
    let table = active.table();
    let visible = ((last + 1).saturating_sub(active.base_id()) as usize).min(table.ts.len());
    let local = table.ts[..visible].partition_point(|&x| x < t);
    Ok(active.base_id() + local as u64)
}

/// An open log: a cheap, cloneable, `Send + Sync` handle.
///
/// Appends are durable when they return; readers never block the writer and
/// see a consistent prefix (every durable record not hidden by retention,
/// nothing beyond).
#[derive(Debug, Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
    /// Shared by the handles only (not by the flusher or pending futures):
    /// the last handle's drop stops the flusher before the log can go.
    _handles: Arc<Handles>,
}

/// What the last [`Log`] handle's drop does, whoever else holds [`Inner`].
#[derive(Debug)]
struct Handles(Arc<Inner>);

impl Drop for Handles {
    fn drop(&mut self) {
        let inner = &self.0;
        let flusher = lock(&inner.flusher).take();
        let Some(flusher) = flusher else { return };
        // Sync what tasks staged (their futures may still be awaited), then
        // stop the flusher and wait for it: after the last handle nothing
        // writes, and the directory's lock goes with the log at once.
        let (staged_last, epoch) = {
            let st = lock(&inner.state);
            (st.next_id - 1, st.epoch)
        };
        let _ = inner
            .commit
            .wait_durable(staged_last, epoch, || inner.flush(epoch));
        inner.flusher_stop.store(true, Ordering::Release);
        flusher.thread().unpark();
        let _ = flusher.join();
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering from any crash.
    ///
    /// Fails with [`Error::Locked`] if another handle owns the directory and
    /// with [`Error::Corruption`] if acknowledged data is damaged (nothing is
    /// modified then). A torn tail is cut, missing or damaged index files are
    /// rebuilt, segments wholly below the watermark are deleted; all of it is
    /// reported in [`Log::recovery_report`].
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Log> {
        Self::open_mode(dir.as_ref(), config, false)
    }

    /// Opens a log for reading only, without taking the lock and without
    /// changing a byte on disk: a torn tail is left in place (and reported),
    /// missing or damaged indexes are rebuilt in memory only, temporary files
    /// and segments below the watermark are left alone. Works on a directory
    /// a server is writing to (it sees the records durable at open time).
    /// Appends fail with [`Error::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config) -> Result<Log> {
        Self::open_mode(dir.as_ref(), config, true)
    }

    fn open_mode(dir: &Path, config: Config, read_only: bool) -> Result<Log> {
        config.validate()?;
        let dir = dir.to_path_buf();
        let fs = &*config.fs;
        let lock_file = if read_only {
            if !fs.is_dir(&dir) {
                return Err(Error::io("open", &dir)(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such data directory",
                )));
            }
            None
        } else {
            create_dir_durable(fs, &dir)?;
            Some(lock_dir(fs, &dir)?)
        };
        let Recovered {
            view,
            state,
            written,
            low,
            report,
        } = recover_dir(&dir, &config, read_only, 0, None)?;
        let durable = state.next_id - 1;
        let inner = Arc::new(Inner {
            dir: dir.into(),
            config,
            view: RwLock::new(Arc::new(view)),
            state: Mutex::new(state),
            io: Mutex::new(IoState::new(written)),
            commit: GroupCommit::new(durable),
            io_counters: IoCounters::default(),
            low: AtomicU64::new(low),
            retention: Mutex::new(Retention::default()),
            maintenance: Mutex::new(()),
            reapers: Mutex::new(Vec::new()),
            report,
            read_only,
            flusher: Mutex::new(None),
            flusher_stop: AtomicBool::new(false),
            flusher_started: AtomicBool::new(false),
            indexer: Indexer::default(),
            _lock: lock_file,
        });
        Ok(Log {
            _handles: Arc::new(Handles(inner.clone())),
            inner,
        })
    }

    /// Brings a fail-stopped handle back: runs recovery on the directory as
    /// it is now on disk (exactly what [`Log::open`] does: a torn tail is cut,
    /// a half-finished roll completed, temp files removed, indexes rebuilt)
    /// and swaps the result in, so that appends work again. Returns `None`
    /// (and does nothing) when the handle is not failed.
    ///
    /// Safe against concurrent use: it holds the write path's locks, so no
    /// append, roll, retention run or clear runs meanwhile; an append that
    /// was staged before the failure never gets an ack afterwards, even if
    /// its id is later reused (see `group_commit.rs`); readers keep the view
    /// they had and see the recovered one from their next snapshot. If
    /// recovery itself fails (the disk is still full), the handle stays
    /// failed and the call can be repeated.
    pub fn recover(&self) -> Result<Option<RecoveryReport>> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        let _m = lock(&inner.maintenance);
        let mut io = lock(&inner.io);
        let mut st = lock(&inner.state);
        if !st.failed && !inner.commit.failed() {
            return Ok(None);
        }
        let epoch = st.epoch + 1;
        // An index file still being written would race recovery's rebuild of
        // the same (missing) file.
        inner.join_background();
        // Recovery may cut the active file: readers of the old view must not
        // read it through a map meanwhile (they fall back to positioned reads).
        st.active.unmap();
        // Nothing past the last fdatasync that succeeded is trusted: after a
        // failed fsync the page cache may still show bytes the disk never
        // got (Linux drops them from writeback but not from the cache).
        let durable = DurableHint {
            base: st.active.base_id(),
            len: io.synced,
        };
        let recovered = recover_dir(&inner.dir, &inner.config, false, epoch, Some(durable))?;
        inner.update_view(|_| recovered.view);
        *st = recovered.state;
        *io = IoState::new(recovered.written);
        inner.low.store(recovered.low, Ordering::Release);
        let new_epoch = inner.commit.reset(st.next_id - 1);
        debug_assert_eq!(new_epoch, epoch);
        st.epoch = new_epoch;
        Ok(Some(recovered.report))
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Seals the active segment now (if it holds records) and starts a new one.
    pub fn roll(&self) -> Result<()> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        self.inner.roll_now()
    }

    /// Takes the pages of every segment and index file that reads mapped
    /// out of this process's resident set. The kernel's page cache keeps
    /// them, so the next read of one is a minor fault, not a disk read.
    ///
    /// Interactive pages read sealed segments and index files through
    /// shared maps, and every page one touched counts in the process's RSS
    /// (clean and reclaimable, but what `top` shows) until the kernel needs
    /// the memory. A server calls this when idle, after a burst of queries.
    pub fn release_mapped_pages(&self) -> Result<()> {
        let snap = self.inner.snapshot()?;
        for s in &snap.view.sealed {
            s.seg.release_pages();
            if let SegmentIndex::File(index) = s.index() {
                index.release_pages();
            }
        }
        snap.view.active.release_pages();
        Ok(())
    }

    /// The files of a consistent backup of this log, as
    /// [`crate::backup::plan`] lists them, with the active segment copied up
    /// to exactly what is durable now (every acknowledged record, nothing a
    /// crash could take back). For a server that backs up its own directory.
    pub fn backup_plan(&self, extra: &[&str]) -> Result<Vec<crate::backup::BackupItem>> {
        let durable = {
            // Under `io`, which a roll holds while it swaps the view: the
            // base and the length belong to the same segment.
            let io = lock(&self.inner.io);
            (self.inner.view().active.base_id(), io.synced)
        };
        crate::backup::plan_with(&self.inner.dir, extra, Some(durable))
    }

    /// Counters of the durable-write path (fsync count and latency).
    pub fn io_stats(&self) -> IoStats {
        self.inner.io_counters.snapshot()
    }

    /// Lets go of the handle the way a process that died would: without the
    /// work of a clean close (the active segment's index is not saved). For
    /// the fuzz targets, after a simulated power cut (where that work could
    /// only fail) or when nothing will read what it writes: it costs an index
    /// encode.
    pub(crate) fn abandon(self) {
        lock(&self.inner.state).failed = true;
    }

    /// Whether an earlier I/O failure has fail-stopped this handle.
    pub fn is_failed(&self) -> bool {
        self.inner.commit.failed()
    }

    /// The record with `id`, if it exists, is durable and is not hidden by
    /// retention or clear.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        let snap = self.inner.snapshot()?;
        if !snap.contains(id) || !snap.view.holds(id) {
            return Ok(None);
        }
        snap.read(id).map(Some)
    }

    /// Smallest visible id, or `None` when nothing is visible.
    pub fn first_id(&self) -> Option<u64> {
        let snap = self.inner.snapshot().ok()?;
        (snap.first <= snap.last).then_some(snap.first)
    }

    /// Largest durable id, or `None` when nothing was ever appended.
    /// (Ids keep counting after a clear: this is the head, visible or not.)
    pub fn last_id(&self) -> Option<u64> {
        let last = self.inner.commit.visible();
        (last > 0).then_some(last)
    }

    /// Iterates visible records from `from` (inclusive) in `direction`, over
    /// a snapshot taken now. `from` outside the log is clamped: a forward
    /// walk from 0 starts at the oldest record, a backward walk from
    /// `u64::MAX` at the newest.
    pub fn iter(&self, from: u64, direction: Direction) -> Iter {
        let snap = match self.inner.snapshot() {
            Ok(s) => s,
            Err(e) => {
                return Iter {
                    snap: None,
                    next: None,
                    direction,
                    error: Some(e),
                }
            }
        };
        let next = match direction {
            Direction::Forward => Some(from.max(snap.first)).filter(|&id| id <= snap.last),
            Direction::Backward => {
                Some(from.min(snap.last)).filter(|&id| id >= snap.first && id > 0)
            }
        };
        Iter {
            snap: Some(snap),
            next,
            direction,
            error: None,
        }
    }

    /// Sets the retention bounds. They apply to every read at once; call
    /// [`Log::enforce_retention`] to persist them and free disk space.
    pub fn set_retention(&self, retention: Retention) -> Result<()> {
        retention
            .validate()
            .map_err(|source| Error::Invalid { index: 0, source })?;
        *lock(&self.inner.retention) = retention;
        Ok(())
    }

    /// The retention bounds in force.
    pub fn retention(&self) -> Retention {
        *lock(&self.inner.retention)
    }

    /// Persists the watermark the retention bounds imply and drops every
    /// segment that lies wholly below it. O(segments).
    pub fn enforce_retention(&self) -> Result<RetentionOutcome> {
        self.enforce_retention_leaving_room(0)
    }

    /// Like [`Log::enforce_retention`], but when it drops anything and a
    /// `max_entries` bound is set, it drops `room` more records, so that
    /// `room` records appended right after (a notice of what was dropped)
    /// do not push the log over the bound again. Without this, an idle log
    /// that records each retention run would evict one real record per run,
    /// forever.
    pub fn enforce_retention_leaving_room(&self, room: u64) -> Result<RetentionOutcome> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        let _m = lock(&self.inner.maintenance);
        let snap = self.inner.snapshot()?;
        let before = self
            .inner
            .low
            .load(Ordering::Acquire)
            .max(snap.view.first_id());
        let mut first = snap.first;
        if first > before && room > 0 {
            if let Some(n) = lock(&self.inner.retention).max_entries {
                let keep = n.saturating_sub(room).max(1);
                first = first.max(snap.view.start_of_newest(snap.last, keep));
            }
        }
        // Let go of the old view first, so the reaper (not this thread)
        // holds the last reference to what is dropped and unlinks it before
        // its directory fsync.
        drop(snap);
        self.move_watermark(first, before)
    }

    /// Hides every record appended so far and drops all sealed segments (the
    /// active one is sealed first, so its bytes go too). Ids keep counting.
    /// Returns how many records were visible before.
    pub fn clear(&self) -> Result<u64> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        let _m = lock(&self.inner.maintenance);
        self.inner.roll_now()?;
        let snap = self.inner.snapshot()?;
        let visible = snap.view.held_between(snap.first, snap.last);
        let before = self
            .inner
            .low
            .load(Ordering::Acquire)
            .max(snap.view.first_id());
        let new_low = snap.last + 1;
        drop(snap); // see enforce_retention_leaving_room
        self.move_watermark(new_low, before)?;
        Ok(visible)
    }

    fn move_watermark(&self, new_low: u64, before: u64) -> Result<RetentionOutcome> {
        let inner = &self.inner;
        let current = inner.low.load(Ordering::Acquire);
        let fs = &*inner.config.fs;
        let view = inner.view();
        // A watermark inside a recorded gap moves to the gap's end: the
        // oldest segment then starts at the watermark.
        let new_low = view.nearest_held(new_low, true).unwrap_or(new_low);
        let dropped_records = view.held_between(before, new_low.saturating_sub(1));
        drop(view);
        if new_low > current {
            retention::write_watermark(fs, &inner.dir, new_low)?;
            inner.low.store(new_low, Ordering::Release);
        }
        let low = new_low.max(current);
        let mut dropped = Vec::new();
        inner.update_view(|v| {
            let (gone, keep): (Vec<_>, Vec<_>) = v
                .sealed
                .iter()
                .cloned()
                .partition(|s| s.seg.end_id() <= low);
            dropped = gone;
            View {
                sealed: keep,
                active: v.active.clone(),
            }
        });
        for s in &dropped {
            fail::fail_point!("retention::before_unlink", |_| Err(fsutil::injected(
                "unlink",
                s.seg.path()
            )));
            fsutil::crash_point(fs, "retention::before_unlink", s.seg.path())?;
            s.doom();
        }
        let outcome = RetentionOutcome {
            dropped_records: if new_low > current {
                dropped_records
            } else {
                0
            },
            dropped_segments: dropped.len(),
            low_watermark: low,
        };
        if !dropped.is_empty() {
            // Unmapping a deleted file frees its cached pages (~20 ms per
            // 64 MiB segment): let a short-lived thread pay for that, so
            // retention costs two fsyncs whatever it drops. Readers still
            // holding a segment unlink it when they let go instead.
            let dir = inner.dir.clone();
            let fs = inner.config.fs.clone();
            let reap = move || {
                drop(dropped);
                if fs.crash_point("retention::before_dir_sync").is_ok() {
                    let _ = fsutil::sync_dir(&*fs, &dir);
                }
            };
            inner.in_background(reap);
        }
        Ok(outcome)
    }

    /// Waits until every segment file retention or clear dropped is
    /// unlinked (unless a reader still holds it). For tests that need a
    /// deterministic order of file operations.
    #[doc(hidden)]
    pub fn wait_for_reapers(&self) {
        self.inner.join_background();
    }

    /// Totals over the visible log.
    pub fn stats(&self) -> Result<Stats> {
        let snap = self.inner.snapshot()?;
        let segments = self.segments();
        let (oldest, newest) = match snap.view.nearest_held(snap.first, true) {
            Some(first) if first <= snap.last => (
                Some((first, snap.view.ts_of(first)?)),
                Some((snap.last, snap.view.ts_of(snap.last)?)),
            ),
            _ => (None, None),
        };
        Ok(Stats {
            entries: snap.view.held_between(snap.first, snap.last),
            segments: segments.len(),
            bytes: segments.iter().map(|s| s.bytes).sum(),
            oldest,
            newest,
            low_watermark: self.inner.low.load(Ordering::Acquire),
        })
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let last = self.inner.commit.visible();
        let view = self.inner.view();
        let mut out: Vec<SegmentInfo> = view
            .sealed
            .iter()
            .map(|s| SegmentInfo {
                path: s.seg.path().to_path_buf(),
                base_id: s.seg.base_id(),
                records: s.seg.count(),
                bytes: s.bytes_on_disk(),
                ts_range: (s.seg.count() > 0)
                    .then(|| (s.seg.footer().first_ts, s.seg.footer().last_ts)),
                sealed: true,
            })
            .collect();
        let active = &view.active;
        // `io` before the table, never while holding it: a writer holds `io`
        // (a flush) or `state` (staging) while it waits for the table, so a
        // reader holding the table while it waits for `io` closes a cycle.
        let bytes = lock(&self.inner.io).written;
        let table = active.table();
        let records =
            ((last + 1).saturating_sub(active.base_id()) as usize).min(table.offsets.len());
        out.push(SegmentInfo {
            path: active.path().to_path_buf(),
            base_id: active.base_id(),
            records: records as u64,
            bytes,
            ts_range: (records > 0).then(|| (table.ts[0], table.ts[records - 1])),
            sealed: false,
        });
        out
    }

    /// Makes sure everything appended is durable, then drops this handle. The
    /// directory lock is released when the last clone is dropped.
    pub fn close(self) -> Result<()> {
        let (staged_last, epoch) = {
            let st = lock(&self.inner.state);
            if st.failed {
                return Err(Error::PreviousIo);
            }
            (st.next_id - 1, st.epoch)
        };
        let inner = &self.inner;
        inner
            .commit
            .wait_durable(staged_last, epoch, || inner.flush(epoch))
    }
}

/// Iterator over visible records in id order (see [`Log::iter`]).
#[derive(Debug)]
pub struct Iter {
    snap: Option<Snapshot>,
    next: Option<u64>,
    direction: Direction,
    error: Option<Error>,
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let snap = self.snap.as_ref()?;
        let forward = self.direction == Direction::Forward;
        let id = self
            .next
            .and_then(|id| snap.view.nearest_held(id, forward))
            .filter(|&id| id >= snap.first && id <= snap.last && id > 0)?;
        self.next = match self.direction {
            Direction::Forward => Some(id + 1).filter(|&n| n <= snap.last),
            Direction::Backward => id.checked_sub(1).filter(|&n| n >= snap.first && n > 0),
        };
        let item = snap.read(id);
        if item.is_err() {
            self.next = None; // stop after reporting damage
        }
        Some(item)
    }
}
