//! The public handle: open (with recovery), append, read, iterate, query,
//! retention, clear, stats, close.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};

use crate::config::Config;
use crate::env::{FileBytes, FileSystem, LockGuard, OpenMode};
use crate::error::{Error, Result};
use crate::fsutil::{self, Durable};
use crate::group_commit::{Entered, GroupCommit, IoCounters, IoStats};
use crate::index::active::ActiveIndex;
use crate::index::file::{self as index_file, IndexBytes, SealedIndex, Trust};
use crate::index::snapshot::{encode_snapshot, load_snapshot, snapshot_path};
use crate::index::terms::{TermSource, Terms};
use crate::indexer::Indexer;
use crate::record::{NewRecord, Record};
use crate::recovery::{self, RecoveryReport};
use crate::retention::{self, Retention, RetentionOutcome, DAY_US};
use crate::segment::active::{ActiveSegment, ActiveTable};
use crate::segment::sealed::{map_file, SealedSegment};
use crate::segment::{
    parse_segment_file_name, segment_path, SegmentHeader, SEGMENT_HEADER_LEN, TEMP_SUFFIX,
};
use crate::view::{Sealed, SegmentIndex, View};
use crate::writer::{beside, IoState, WriterState, DEFER_INDEX_MIN_RECORDS};

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
    pub dir: PathBuf,
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

/// A durable batch as [`Log::append_stored`] returns it: its ids, and its
/// records decoded on demand.
#[derive(Debug)]
pub struct Appended {
    first: u64,
    /// (ts, payload) of each record, in id order.
    stored: Vec<(i64, Vec<u8>)>,
    dir: PathBuf,
}

impl Appended {
    /// The ids assigned, in order (empty for an empty batch).
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.first..self.first + self.stored.len() as u64
    }

    /// The records as stored (ids, ts, default actor, redacted metadata).
    pub fn records(&self) -> Result<Vec<Record>> {
        self.stored
            .iter()
            .zip(self.ids())
            .map(|((ts, payload), id)| {
                Record::decode(id, *ts, payload).map_err(|why| {
                    Error::corruption(&self.dir, 0, format!("record {id} just written: {why}"))
                })
            })
            .collect()
    }
}

/// Who stages a batch: the write path treats the two differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Appender {
    /// A blocking [`Log::append`] caller: counted in for a leader's gather
    /// of threads (see `group_commit.rs`) and indexes its own batch.
    Thread,
    /// An [`Log::append_async`] caller: gathered by the number of waiting
    /// tasks instead (counting each in would make each wake a gathering
    /// leader), and its batch is indexed by the flush that syncs it.
    Task,
}

/// The index terms of a batch of new records.
fn terms_of(batch: &[NewRecord]) -> Terms {
    let sources: Vec<TermSource<'_>> = batch.iter().map(TermSource::of_new).collect();
    let mut terms =
        Terms::with_capacity(batch.len(), sources.iter().map(TermSource::text_len).sum());
    for src in sources {
        terms.add(src);
    }
    terms
}

/// A batch staged for the next flush.
struct Staged<'a> {
    last: u64,
    epoch: u64,
    stamps: Vec<i64>,
    payloads: Vec<Vec<u8>>,
    /// Dropped once the appender waits (see `group_commit.rs`).
    entered: Option<Entered<'a>>,
}

/// The durable completion of [`Log::append_async`]: the batch as stored, or
/// why not (the errors of [`Log::append`]).
#[derive(Debug)]
#[must_use = "the ids arrive only when the future is awaited"]
pub struct AppendFuture(Pending);

#[derive(Debug)]
enum Pending {
    /// Known at the call: an empty batch or an error.
    Ready(Option<Result<Appended>>),
    /// Staged; waiting for its fsync.
    Waiting {
        inner: Arc<Inner>,
        first: u64,
        last: u64,
        epoch: u64,
        token: u64,
        stored: Vec<(i64, Vec<u8>)>,
    },
}

impl Future for AppendFuture {
    type Output = Result<Appended>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ready = match &mut self.0 {
            Pending::Ready(r) => {
                return Poll::Ready(r.take().unwrap_or(Err(Error::PreviousIo)));
            }
            Pending::Waiting {
                inner,
                first,
                last,
                epoch,
                token,
                stored,
            } => match inner.commit.poll_durable(*last, *epoch, *token, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(|()| {
                    inner
                        .io_counters
                        .records_appended
                        .fetch_add(stored.len() as u64, Ordering::Relaxed);
                    Appended {
                        first: *first,
                        stored: std::mem::take(stored),
                        dir: inner.dir.clone(),
                    }
                }),
            },
        };
        // Finished: nothing left to forget on drop.
        self.0 = Pending::Ready(None);
        Poll::Ready(ready)
    }
}

impl Drop for AppendFuture {
    fn drop(&mut self) {
        if let Pending::Waiting {
            inner,
            last,
            epoch,
            token,
            ..
        } = &self.0
        {
            inner.commit.abandon_task(*last, *epoch, *token);
        }
    }
}

/// The flusher's loop: leads flushes for task waiters while there are any
/// (see [`GroupCommit::lead_for_tasks`]), parks when there are none. Exits
/// when the last handle is dropped.
fn flusher(inner: &Inner) {
    let stop = || inner.flusher_stop.load(Ordering::Acquire);
    while !stop() {
        // Checked again before parking: the gather's own park may have
        // taken the unpark that came with the stop.
        if !inner.commit.lead_for_tasks(|epoch| inner.flush(epoch)) && !stop() {
            std::thread::park();
        }
    }
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
        let last = self.commit.visible();
        let view = self.view();
        let mut first = self.low.load(Ordering::Acquire).max(view.first_id());
        let policy = *lock(&self.retention);
        if let Some(n) = policy.max_entries {
            first = first.max((last + 1).saturating_sub(n));
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
            let local = crate::query::segment::SegmentReader::Sealed(s).lower_bound_ts(t)?;
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
        } = recover_dir(&dir, &config, read_only, 0)?;
        let durable = state.next_id - 1;
        let inner = Arc::new(Inner {
            dir,
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
        let recovered = recover_dir(&inner.dir, &inner.config, false, epoch)?;
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

    /// Appends a batch atomically and durably; returns the assigned ids in order.
    ///
    /// Every record is validated first: one invalid record rejects the whole
    /// batch with [`Error::Invalid`] and nothing is written. The call returns
    /// only after the batch's bytes are fdatasynced; across a crash a batch
    /// whose append did not return is either entirely present or entirely
    /// absent. An empty batch returns no ids and does no I/O.
    pub fn append(&self, batch: &[NewRecord]) -> Result<Vec<u64>> {
        self.append_inner(batch, None)
            .map(|(first, n, _)| (first..first + n).collect())
    }

    /// Like [`Log::append`], but returns the records as stored (ids, ts,
    /// default actor, redacted metadata), e.g. to publish them.
    pub fn append_records(&self, batch: &[NewRecord]) -> Result<Vec<Record>> {
        self.append_stored(batch)?.records()
    }

    /// Like [`Log::append`], but keeps the stored payloads, so the caller
    /// can decide after the append whether it needs the records at all
    /// ([`Appended::records`]) — e.g. only when someone is listening.
    pub fn append_stored(&self, batch: &[NewRecord]) -> Result<Appended> {
        let (first, _, stored) = self.append_inner(batch, None)?;
        Ok(Appended {
            first,
            stored,
            dir: self.inner.dir.clone(),
        })
    }

    /// Appends records with given timestamps (µs), for importing history:
    /// demo data, a migration, a benchmark's fixed workload. Each ts is raised
    /// to the previous record's if lower, so ts still never decreases with id.
    /// Otherwise exactly [`Log::append`].
    pub fn append_at(&self, batch: &[(i64, NewRecord)]) -> Result<Vec<u64>> {
        let ts: Vec<i64> = batch.iter().map(|(t, _)| *t).collect();
        let records: Vec<NewRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        self.append_inner(&records, Some(&ts))
            .map(|(first, n, _)| (first..first + n).collect())
    }

    /// Appends; returns the first id, the count, and each record's (ts, payload).
    #[allow(clippy::type_complexity)]
    fn append_inner(
        &self,
        batch: &[NewRecord],
        ts: Option<&[i64]>,
    ) -> Result<(u64, u64, Vec<(i64, Vec<u8>)>)> {
        let Some(staged) = self.stage_batch(batch, ts, Appender::Thread)? else {
            return Ok((1, 0, Vec::new()));
        };
        let inner = &self.inner;
        let epoch = staged.epoch;
        inner
            .commit
            .wait_durable(staged.last, epoch, || inner.flush(epoch))?;
        drop(staged.entered);
        inner
            .io_counters
            .records_appended
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let first = staged.last + 1 - batch.len() as u64;
        Ok((
            first,
            batch.len() as u64,
            staged.stamps.into_iter().zip(staged.payloads).collect(),
        ))
    }

    /// Validates, encodes and stages `batch` (`None` for an empty one).
    fn stage_batch(
        &self,
        batch: &[NewRecord],
        ts: Option<&[i64]>,
        appender: Appender,
    ) -> Result<Option<Staged<'_>>> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        if batch.is_empty() {
            return Ok(None);
        }
        if batch.len() > MAX_BATCH_RECORDS {
            return Err(Error::Config(format!(
                "a batch holds at most {MAX_BATCH_RECORDS} records, this one {}",
                batch.len()
            )));
        }
        // Counted in until the appender waits: a commit leader waits
        // (briefly) for appenders between here and their wait.
        let entered = (appender == Appender::Thread).then(|| self.inner.commit.enter());
        let encode = || {
            batch
                .iter()
                .enumerate()
                .map(|(index, r)| {
                    r.encode_payload()
                        .map_err(|source| Error::Invalid { index, source })
                })
                .collect::<Result<Vec<_>>>()
        };
        // A large batch is indexed during its fdatasync (see `writer.rs`);
        // its terms are extracted on a second thread while this one encodes.
        // The terms are three buffers, so freeing them elsewhere is cheap (the
        // payloads, one allocation a record, stay on this thread).
        let (terms, payloads) = if batch.len() >= DEFER_INDEX_MIN_RECORDS {
            beside(|| terms_of(batch), encode)
        } else {
            (terms_of(batch), encode())
        };
        let payloads = payloads?;
        // Tasks leave their index insert to the flusher, which does it during
        // the fdatasync: a task's re-stage is then only encode + copy, and the
        // `state` lock is held for less.
        let defer_index = appender == Appender::Task;
        let (last, stamps, epoch) = self.inner.stage(&payloads, terms, ts, defer_index)?;
        Ok(Some(Staged {
            last,
            epoch,
            stamps,
            payloads,
            entered,
        }))
    }

    /// Appends a batch like [`Log::append_stored`], for callers that must
    /// not block: the records are validated, encoded and staged before this
    /// returns (errors then come out of the first poll), and the future
    /// completes with them once they are fdatasynced.
    ///
    /// Concurrent async appenders share fsyncs with each other and with
    /// blocking ones. A thread of the log's own does the writing and syncing
    /// for them (started with the first call; the last handle's drop syncs what is
    /// staged, then stops it), so
    /// a task costs no thread switch of its own; `benches/README.md` has the
    /// figures. The future needs no particular executor.
    ///
    /// Dropping the future does not withdraw the records: they were staged,
    /// and the flusher still makes them durable and visible.
    pub fn append_async(&self, batch: &[NewRecord]) -> AppendFuture {
        let staged = match self.stage_batch(batch, None, Appender::Task) {
            Ok(Some(staged)) => staged,
            Ok(None) => {
                return AppendFuture(Pending::Ready(Some(Ok(Appended {
                    first: 1,
                    stored: Vec::new(),
                    dir: self.inner.dir.clone(),
                }))))
            }
            Err(e) => return AppendFuture(Pending::Ready(Some(Err(e)))),
        };
        let token = self.inner.commit.task_token();
        if !self.inner.flusher_started.load(Ordering::Acquire) {
            self.start_flusher();
        }
        let first = staged.last + 1 - batch.len() as u64;
        AppendFuture(Pending::Waiting {
            inner: self.inner.clone(),
            first,
            last: staged.last,
            epoch: staged.epoch,
            token,
            stored: staged.stamps.into_iter().zip(staged.payloads).collect(),
        })
    }

    /// Starts the thread that leads flushes for async appenders; the last
    /// handle's drop stops and joins it.
    fn start_flusher(&self) {
        // Under the handle's mutex: concurrent first calls start one thread.
        let mut slot = lock(&self.inner.flusher);
        if self.inner.flusher_started.load(Ordering::Acquire) {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("actlog-flusher".into())
            .spawn(move || flusher(&inner));
        match spawned {
            Ok(h) => {
                self.inner.commit.set_flusher(h.thread().clone());
                *slot = Some(h);
                self.inner.flusher_started.store(true, Ordering::Release);
            }
            // Without it, async appends could wait forever: fail-stop
            // instead, so they (and every later append) return an error.
            Err(_) => self.inner.commit.fail(),
        }
    }

    /// Appends one record; see [`Log::append`].
    pub fn append_one(&self, record: &NewRecord) -> Result<u64> {
        let ids = self.append(std::slice::from_ref(record))?;
        Ok(ids[0])
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
                first = first.max((snap.last + 1).saturating_sub(keep));
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
        let visible = (snap.last + 1).saturating_sub(snap.first);
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
            dropped_records: low.saturating_sub(before),
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

/// Below this many bytes of sealed segments, [`recover_dir`] loads their
/// indexes on the opening thread: a second thread (~30 µs to start) is worth
/// it only when loading takes milliseconds.
const PARALLEL_OPEN_MIN_BYTES: u64 = 16 << 20;

/// What [`recover_dir`] rebuilt from a directory.
struct Recovered {
    view: View,
    state: WriterState,
    written: u64,
    low: u64,
    report: RecoveryReport,
}

/// Recovery: reads the directory as it is on disk and builds the reader view
/// and writer state from it, cutting a torn tail, finishing an interrupted
/// roll or retention run, removing temp files and rebuilding indexes
/// (unless `read_only`, which changes nothing on disk). `epoch` is the
/// writer state's (see `group_commit.rs`).
fn recover_dir(dir: &Path, config: &Config, read_only: bool, epoch: u64) -> Result<Recovered> {
    let fs = &*config.fs;
    let dir = dir.to_path_buf();
    let mut report = RecoveryReport::default();

    let (bases, temps) = list_dir(fs, &dir)?;
    if !read_only {
        for tmp in temps {
            fs.remove_file(&tmp).map_err(Error::io("remove", &tmp))?;
            report.removed_temp_files.push(tmp);
        }
        if !report.removed_temp_files.is_empty() {
            fsutil::sync_dir(fs, &dir)?;
        }
    }
    let low = retention::read_watermark(fs, &dir)?;

    let mut sealed_segs: Vec<SealedSegment> = Vec::new();
    let mut active_at: Option<(PathBuf, u64)> = None;
    let mut last_ts = i64::MIN;
    let mut prev_end: Option<u64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment_path(&dir, base);
        let is_last = i + 1 == bases.len();
        if let Some(end) = prev_end.filter(|&end| end != base) {
            if base <= low {
                // The gap lies wholly below the watermark: nothing there is visible anyway.
            } else if quarantined(fs, &dir, end) {
                report.quarantined_gaps.push((end, base));
            } else {
                return Err(Error::corruption(
                        &path,
                        0,
                        format!(
                            "id gap: the previous segment ends before id {end}, this one starts at {base}"
                        ),
                    ));
            }
        }
        if is_last && !read_only {
            // The newest segment may hold bytes that a failed fsync never
            // made durable (a handle recovered in place, or a process
            // restarted without a reboot). Recovery is about to trust them
            // and build on them (a new segment after its footer, appends
            // after its frames): make them durable first.
            match fs.open(&path, OpenMode::Read).and_then(|f| f.sync_all()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("fsync", &path)(e)),
            }
        }
        let opened = match SealedSegment::open_in(fs, &path) {
            // Unlinked since the listing (a dropped segment being reaped by
            // another handle): it lay below the watermark.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue
            }
            other => other?,
        };
        match opened {
            Some(seg) => {
                check_base(&path, seg.header(), base)?;
                if seg.count() > 0 {
                    last_ts = last_ts.max(seg.footer().last_ts);
                }
                prev_end = Some(seg.end_id());
                if seg.end_id() <= low && !is_last {
                    // Retention or clear dropped it; a crash came before the unlink.
                    if !read_only {
                        remove_segment_files(fs, &path)?;
                        report.deleted_below_watermark.push(path);
                    }
                    continue;
                }
                if !read_only {
                    // A snapshot of a segment since sealed is stale.
                    let _ = fs.remove_file(&snapshot_path(&path));
                }
                sealed_segs.push(seg);
            }
            None if is_last => active_at = Some((path, base)),
            None => {
                return Err(Error::corruption(
                    &path,
                    0,
                    "segment has no valid seal footer, but newer segments exist",
                ))
            }
        }
    }
    let sealed_bytes: u64 = sealed_segs.iter().map(SealedSegment::file_len).sum();
    // The sealed segments' indexes (checksums, dictionary checks, rebuilds)
    // and the active segment's re-indexing are independent and, after a
    // crash, most of an open: on a large log they run on two threads.
    let load_indexes = |rebuilt: &mut Vec<(PathBuf, String)>| -> Result<Vec<Arc<Sealed>>> {
        sealed_segs
            .into_iter()
            .map(|seg| {
                let index = open_index(fs, &seg, rebuilt, read_only)?;
                Ok(Arc::new(Sealed::new(seg, index, config.fs.clone())))
            })
            .collect()
    };
    let mut rebuilt = Vec::new();
    let recover_tail = |r: &mut RecoveryReport| {
        active_at
            .as_ref()
            .map(|(path, base)| recover_active(fs, path, *base, r, read_only, epoch, config))
            .transpose()
    };
    let (sealed, active) = if active_at.is_some() && sealed_bytes >= PARALLEL_OPEN_MIN_BYTES {
        crate::writer::beside(|| load_indexes(&mut rebuilt), || recover_tail(&mut report))
    } else {
        let sealed = load_indexes(&mut rebuilt)?;
        (Ok(sealed), recover_tail(&mut report))
    };
    let (sealed, active) = (sealed?, active?);
    report.rebuilt_indexes.extend(rebuilt);
    if let Some((seg, _, _)) = &active {
        last_ts = last_ts.max(seg.table().ts.last().copied().unwrap_or(i64::MIN));
    }
    if !report.deleted_below_watermark.is_empty() {
        fsutil::sync_dir(fs, &dir)?;
    }
    let last_sealed_path = sealed.last().map(|s| s.seg.path().to_path_buf());
    report.segments = bases.len() - report.deleted_below_watermark.len();

    let (active, mut state, written) = match active {
        Some(a) => a,
        None => {
            let base = prev_end.unwrap_or(1);
            let header = SegmentHeader {
                base_id: base,
                created_us: config.clock.now(),
            };
            let path = segment_path(&dir, base);
            let file = match (&last_sealed_path, read_only) {
                // Read-only: an empty stand-in; nothing is ever read from it.
                (Some(p), true) => fs.open(p, OpenMode::Read).map_err(Error::io("open", p))?,
                (None, true) => {
                    return Err(Error::io("open", &dir)(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no segment files: not an actlog data directory",
                    )))
                }
                (_, false) => {
                    fsutil::create_durable(fs, &path, &header.encode(), Durable::Segment)?
                }
            };
            let seg = ActiveSegment::new(
                path,
                base,
                file,
                ActiveTable::default(),
                ActiveIndex::default(),
            );
            let seg = Arc::new(if read_only {
                seg
            } else {
                seg.mapped(config.segment_max_bytes)
            });
            report.created_active = !bases.is_empty() && !read_only;
            let state = WriterState::fresh(seg.clone(), &header, last_ts, epoch);
            (seg, state, SEGMENT_HEADER_LEN as u64)
        }
    };
    if low > state.next_id {
        return Err(Error::corruption(
            dir.join(retention::WATERMARK_FILE),
            16,
            format!(
                "watermark {low} lies beyond the newest id {}",
                state.next_id - 1
            ),
        ));
    }
    state.last_ts = state.last_ts.max(last_ts);
    let view = View { sealed, active };
    report.records = (state.next_id).saturating_sub(low.max(view.first_id()));
    Ok(Recovered {
        view,
        state,
        written,
        low,
        report,
    })
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

fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    if fs.is_dir(dir) {
        return Ok(());
    }
    fs.create_dir_all(dir)
        .map_err(Error::io("create directory", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsutil::sync_dir(fs, parent)?;
    }
    Ok(())
}

fn lock_dir(fs: &dyn FileSystem, dir: &Path) -> Result<LockGuard> {
    let path = dir.join(LOCK_FILE);
    match fs.try_lock(&path) {
        Ok(Some(guard)) => Ok(guard),
        Ok(None) => Err(Error::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io("lock", &path)(e)),
    }
}

/// Segment base ids (sorted) and leftover temporary files.
fn list_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(Vec<u64>, Vec<PathBuf>)> {
    let mut bases = Vec::new();
    let mut temps = Vec::new();
    for name in fs.read_dir(dir).map_err(Error::io("list", dir))? {
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_file_name(name) {
            bases.push(base);
        } else if name.ends_with(TEMP_SUFFIX) {
            temps.push(dir.join(name));
        }
    }
    bases.sort_unstable();
    Ok((bases, temps))
}

fn check_base(path: &Path, header: &SegmentHeader, base: u64) -> Result<()> {
    if header.base_id != base {
        return Err(Error::corruption(
            path,
            16,
            format!(
                "header says the segment starts at id {}, its name says {base}",
                header.base_id
            ),
        ));
    }
    Ok(())
}

/// Name of the folder `actlog-inspect repair` moves unreadable segments to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Suffix of the marker `actlog-inspect repair` leaves in `quarantine/` for a
/// segment that was missing altogether: `seg-<base>.missing`.
pub const MISSING_MARKER_SUFFIX: &str = ".missing";

/// The marker file recording that the segment starting at `base` is lost.
pub fn missing_marker_path(dir: &Path, base: u64) -> PathBuf {
    let name = crate::segment::segment_file_name(base);
    let stem = name.strip_suffix(".log").unwrap_or(&name);
    dir.join(QUARANTINE_DIR)
        .join(format!("{stem}{MISSING_MARKER_SUFFIX}"))
}

/// Whether the ids from `base` on are a known gap rather than corruption:
/// repair moved that segment to quarantine, or recorded it as missing.
pub(crate) fn quarantined(fs: &dyn FileSystem, dir: &Path, base: u64) -> bool {
    fs.is_file(
        &dir.join(QUARANTINE_DIR)
            .join(crate::segment::segment_file_name(base)),
    ) || fs.is_file(&missing_marker_path(dir, base))
}

fn remove_segment_files(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    for p in [index_file::index_path(path), path.to_path_buf()] {
        match fs.remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &p)(e)),
        }
    }
    Ok(())
}

/// Loads a sealed segment's index, rebuilding (and rewriting) it when it is
/// missing or damaged.
fn open_index(
    fs: &dyn FileSystem,
    seg: &SealedSegment,
    rebuilt: &mut Vec<(PathBuf, String)>,
    read_only: bool,
) -> Result<SealedIndex> {
    let problem = match SealedIndex::load(fs, seg) {
        Ok(index) => return Ok(index),
        Err(problem) => problem,
    };
    let path = index_file::index_path(seg.path());
    let bytes = index_file::rebuild(seg)?;
    if read_only {
        rebuilt.push((path.clone(), format!("{problem} (rebuilt in memory only)")));
        return SealedIndex::parse(
            &path,
            IndexBytes::Owned(bytes),
            seg.base_id(),
            seg.count(),
            Trust::Built,
        )
        .map_err(|why| {
            Error::corruption(&path, 0, format!("rebuilt index does not parse: {why}"))
        });
    }
    let file = fsutil::create_durable(fs, &path, &bytes, Durable::Index)?;
    let map = map_file(&*file, &path)?;
    rebuilt.push((path.clone(), problem.to_string()));
    SealedIndex::parse(
        &path,
        IndexBytes::Mapped(map),
        seg.base_id(),
        seg.count(),
        Trust::Built,
    )
    .map_err(|why| Error::corruption(&path, 0, format!("rebuilt index does not parse: {why}")))
}

/// Scans the active segment, cuts a torn tail, rebuilds its in-memory index
/// and builds its writer state.
fn recover_active(
    fs: &dyn FileSystem,
    path: &Path,
    base: u64,
    report: &mut RecoveryReport,
    read_only: bool,
    epoch: u64,
    config: &Config,
) -> Result<(Arc<ActiveSegment>, WriterState, u64)> {
    let mode = if read_only {
        OpenMode::Read
    } else {
        OpenMode::ReadWrite
    };
    let file = fs.open(path, mode).map_err(Error::io("open", path))?;
    let (header, scan, index) = {
        // Read-write: a map, dropped before any truncation below. Read-only:
        // a plain read, since a server may truncate the file when it restarts.
        let map: FileBytes = if read_only {
            FileBytes::Owned(fs.read(path).map_err(Error::io("read", path))?)
        } else {
            map_file(&*file, path)?
        };
        let header = SegmentHeader::decode(&map, path)?;
        check_base(path, &header, base)?;
        let scan = recovery::scan_active(&map, path, base)?;
        let mut index = ActiveIndex::default();
        let mut from = 0;
        let snap_path = snapshot_path(path);
        if let Ok(bytes) = fs.read(&snap_path) {
            match load_snapshot(&snap_path, bytes, &map, base, &scan.table) {
                Ok((idx, covered)) => {
                    index = idx;
                    from = covered;
                    report.active_index_snapshot = Some(covered as u64);
                }
                Err(why) => report.snapshot_ignored = Some(why),
            }
            if !read_only {
                // Used or not, it now describes the past: never trust it twice.
                let _ = fs.remove_file(&snap_path);
            }
        }
        let mut terms = Terms::default();
        for (local, &off) in scan.table.offsets.iter().enumerate().skip(from) {
            let off = off as usize;
            let rec = crate::frame::decode(&map[off..])
                .map_err(|e| e.to_string())
                .and_then(|f| crate::RecordView::parse(f.header.id, f.header.ts, f.payload))
                .map_err(|why| Error::corruption(path, off as u64, why))?;
            terms.clear();
            terms.add(TermSource::of_view(&rec));
            index.insert(local as u32, terms.keys(0));
        }
        (header, scan, index)
    };
    if let Some(torn) = scan.torn {
        if !read_only {
            fsutil::crash_point(fs, "recovery::before_truncate", path)?;
            file.set_len(scan.end)
                .map_err(Error::io("truncate", path))?;
            file.sync_all().map_err(Error::io("fsync", path))?;
        }
        report.torn_tail = Some(torn);
    }
    let count = scan.table.offsets.len() as u32;
    let first_ts = scan.table.ts.first().copied();
    let last_ts = scan.table.ts.last().copied().unwrap_or(i64::MIN);
    let index_bytes = index.approx_bytes();
    let seg = ActiveSegment::new(path.to_path_buf(), base, file, scan.table, index);
    let seg = Arc::new(if read_only {
        seg
    } else {
        seg.mapped(config.segment_max_bytes)
    });
    let state = WriterState {
        index_bytes,
        unindexed: Vec::new(),
        indexing: false,
        active: seg.clone(),
        logical_len: scan.end,
        pending: Vec::new(),
        next_id: header.base_id + u64::from(count),
        last_ts,
        first_ts,
        count,
        crc: scan.crc,
        failed: false,
        epoch,
    };
    Ok((seg, state, scan.end))
}
