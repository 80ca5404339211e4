//! The write path: staging frames, flushing them for the group commit, and
//! rolling the active segment.
//!
//! Lock order, outermost first: `io` → `state` → `view` → commit state →
//! the active segment's `table` and `index` locks, which are leaves: a
//! thread holding one of them takes no other lock (readers included).
//! `state` is held only to assign ids and copy frames into the staging
//! buffer; `io` is held by whoever writes to disk (the commit leader or a
//! roll), so at most one thread does file I/O on the write path at a time.
//!
//! Seal order (a roll): write staged frames; write the offset table and the
//! footer; fdatasync the old segment; (small segments: write its index file)
//! create the new segment (temp, fsync, rename, directory fsync); write the
//! id reservation for it (`ids.rs`); swap the view; publish the old
//! segment's last id as durable; (large segments: write the index file on a
//! background thread, readers using the in-memory index until it is there).
//!
//! A segment is sealed once its successor exists, not once its footer is on
//! disk: recovery scans the newest file as the active one whatever its last
//! bytes are. So a crash anywhere before the new file's directory entry is
//! durable leaves the old segment active, its staged frames and trailer cut
//! like any torn tail (whatever subset of them reached the disk); one after
//! it finds the old segment complete, since its one fdatasync came first.
//!
//! Each flush marks its first frame with [`FLAG_FLUSH`]: the frame staged
//! into an empty staging buffer, since a flush takes the whole buffer.

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Config;
use crate::env::FileHandle;
use crate::env::FileSystem;
use crate::error::{Error, Result};
use crate::frame::{self, FLAG_COMMIT, FLAG_FLUSH, HEADER_LEN};
use crate::fsutil::{self, Durable};
use crate::ids::{self, Reservation};
use crate::index::active::ActiveIndex;
use crate::index::file::{self as index_file, IndexBytes, SealedIndex, Trust};
use crate::index::terms::Terms;
use crate::indexer::index_batches;
use crate::log::Inner;
use crate::segment::active::{ActiveSegment, ActiveTable};
use crate::segment::footer::Footer;
use crate::segment::sealed::{map_file, SealedSegment};
use crate::segment::{segment_path, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::view::{Sealed, SegmentIndex, View};

/// Mutable write-side state, behind `Inner::state`.
#[derive(Debug)]
pub(crate) struct WriterState {
    /// The segment taking appends.
    pub active: Arc<ActiveSegment>,
    /// Its length once everything staged is written.
    pub logical_len: u64,
    /// Frames staged but not yet written.
    pub pending: Vec<u8>,
    /// The id the next record gets.
    pub next_id: u64,
    /// The last ts handed out (ts never decreases).
    pub last_ts: i64,
    /// ts of the active segment's first record.
    pub first_ts: Option<i64>,
    /// Records in the active segment, staged ones included.
    pub count: u32,
    /// Estimated heap of the active segment's in-memory index.
    pub index_bytes: usize,
    /// Batches staged but not yet in the active index, in staging order:
    /// `(first local, terms)`. The next flush indexes them while its
    /// write+fdatasync runs (see [`DEFER_INDEX_MIN_RECORDS`]).
    pub unindexed: Vec<(u32, Terms)>,
    /// Set while a flush indexes batches it took from `unindexed`: until it
    /// is done, later batches queue behind them (locals are indexed in
    /// increasing order).
    pub indexing: bool,
    /// CRC32 of the active segment's bytes up to `logical_len`.
    pub crc: crc32fast::Hasher,
    /// Set on any write-path failure; appends then fail with `PreviousIo`.
    pub failed: bool,
    /// Bumped each time [`crate::Log::recover`] replaces a failed state:
    /// an appender staged under an older epoch never gets an ack.
    pub epoch: u64,
    /// The persisted id reservation's limit: no id at or above it may be
    /// staged (a batch that would reach it rolls first, and the roll
    /// reserves anew).
    pub id_limit: u64,
}

impl WriterState {
    /// A state for a freshly created, empty active segment.
    pub(crate) fn fresh(
        active: Arc<ActiveSegment>,
        header: &SegmentHeader,
        last_ts: i64,
        epoch: u64,
        id_limit: u64,
    ) -> Self {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header.encode());
        WriterState {
            active,
            logical_len: SEGMENT_HEADER_LEN as u64,
            pending: Vec::new(),
            next_id: header.base_id,
            last_ts,
            first_ts: None,
            count: 0,
            index_bytes: 0,
            unindexed: Vec::new(),
            indexing: false,
            crc,
            failed: false,
            epoch,
            id_limit,
        }
    }

    fn needs_roll(&self, batch_bytes: u64, records: usize, now: i64, config: &Config) -> bool {
        let Some(first_ts) = self.first_ts else {
            return false; // never roll an empty segment
        };
        self.logical_len + batch_bytes > config.segment_max_bytes
            || self.next_id.saturating_add(records as u64) > self.id_limit
            || now.saturating_sub(first_ts) >= config.max_age_us()
            || self.index_bytes >= config.active_index_max_bytes
    }
}

/// A batch at least this large is indexed by the flush that makes it durable,
/// on the log's indexing thread (`indexer.rs`) while the leader's
/// write+fdatasync runs, instead of under the `state` lock while staging. For
/// a batch of 1000 the index insert (~1.2 µs a record) is about as long as
/// the fdatasync, so overlapping the two takes a third off the batch; below
/// this size the hand-over (a thread wake-up, 20–40 µs on this project's
/// VM) would cost more than it hides.
pub(crate) const DEFER_INDEX_MIN_RECORDS: usize = 128;

/// Write-side file position, behind `Inner::io`.
#[derive(Debug)]
pub(crate) struct IoState {
    /// Bytes of the active segment already written to the file.
    pub written: u64,
    /// Bytes of the active segment known durable: its length after the last
    /// fdatasync that succeeded. [`crate::Log::recover`] cuts the file back
    /// to it, since after a failed fsync the page cache may hold bytes the
    /// disk never got.
    pub synced: u64,
    /// The active file holds zeros from `written` up to here (0: not known
    /// yet, read from the file's length at the next flush).
    pub zeroed_to: u64,
    /// The disk had no room for the last zeros: no more are written until
    /// the data reaches this offset (see [`PREALLOCATE_MIN`]).
    pub zero_again_at: u64,
}

impl IoState {
    /// The state for an active file whose data ends at `written`.
    pub(crate) fn new(written: u64) -> Self {
        IoState {
            written,
            synced: written,
            zeroed_to: 0,
            zero_again_at: 0,
        }
    }
}

/// The flush zeroes the active file ahead of its data: when less than a
/// quarter of a chunk is left zeroed, it zeroes one more chunk, half the
/// data's size but at least [`PREALLOCATE_MIN`] and at most
/// [`PREALLOCATE_MAX`] (a small log pays little, a large one refills
/// seldom; at most as many bytes of zeros are written as of data).
///
/// An append that extends the file makes `fdatasync` commit the size and
/// the new blocks through the filesystem journal; over zeroed, allocated
/// blocks it only writes the data and flushes the device cache. Measured on
/// this project's VM (ext4, virtio): 64-record groups synced in 287-355 µs
/// instead of 506-963 µs, single records in 190-280 µs instead of
/// 277-416 µs (`benches/README.md`). Recovery reads zeros right after the
/// last committed frame as this region, not as a torn tail.
///
/// The zeros are only room for data to come: when the disk has no space for
/// them (ENOSPC, EDQUOT) the flush syncs its data without them, and the
/// next try waits until another [`PREALLOCATE_MIN`] of data is written. On a
/// nearly full disk the log so takes records for as long as their frames
/// fit.
pub(crate) const PREALLOCATE_MIN: u64 = 64 << 10;
/// See [`PREALLOCATE_MIN`].
pub(crate) const PREALLOCATE_MAX: u64 = 1 << 20;

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_io(&self) -> MutexGuard<'_, IoState> {
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Assigns ids and ts to encoded payloads and stages their frames.
    /// Returns the batch's last id, the stamps and the epoch it was staged
    /// under. Rolls the active segment first when the
    /// batch would overflow it or it is too old.
    ///
    /// `given_ts`, when present, holds one ts per record (imports); each is
    /// raised to the previous record's ts if it is lower. `defer_index`:
    /// leave the index insert to the flush that makes the batch durable
    /// (async appenders, whose flush runs on the log's flusher thread), as
    /// batches of [`DEFER_INDEX_MIN_RECORDS`] and more always do.
    pub(crate) fn stage(
        &self,
        payloads: &[Vec<u8>],
        terms: Terms,
        given_ts: Option<&[i64]>,
        defer_index: bool,
    ) -> Result<(u64, Vec<i64>, u64)> {
        let batch_bytes: u64 = payloads.iter().map(|p| (HEADER_LEN + p.len()) as u64).sum();
        // A segment this call seals; dropped (its in-memory index freed)
        // only after the locks below are released.
        let mut _retired = None;
        let mut st = self.lock_state();
        if st.failed {
            return Err(Error::PreviousIo);
        }
        let now = match given_ts {
            Some(ts) => ts.first().copied().unwrap_or(i64::MIN).max(st.last_ts),
            None => self.config.clock.now(),
        };
        if st.needs_roll(batch_bytes, payloads.len(), now, &self.config) {
            drop(st);
            let mut io = self.lock_io();
            st = self.lock_state();
            if st.failed {
                return Err(Error::PreviousIo);
            }
            if st.needs_roll(batch_bytes, payloads.len(), now, &self.config) {
                _retired = Some(self.roll_locked(&mut io, &mut st)?);
            }
        }
        let mut ts = now.max(st.last_ts);
        let start = st.pending.len();
        // The first frame of the next flush (which takes the whole buffer).
        let mut flush_mark = if start == 0 { FLAG_FLUSH } else { 0 };
        let first_local = st.count;
        let mut offsets = Vec::with_capacity(payloads.len());
        let mut stamps = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            let id = st.next_id;
            let flags = if i + 1 == payloads.len() {
                FLAG_COMMIT
            } else {
                0
            } | mem::take(&mut flush_mark);
            if let Some(given) = given_ts {
                ts = given[i].max(ts);
            }
            offsets.push(st.logical_len as u32);
            stamps.push(ts);
            frame::encode_into(&mut st.pending, id, ts, flags, payload);
            st.logical_len += (HEADER_LEN + payload.len()) as u64;
            st.next_id += 1;
            st.count += 1;
        }
        // Records become visible only when a flush publishes them, and a
        // flush indexes what it took before it publishes: either way a
        // visible record is indexed.
        if defer_index
            || payloads.len() >= DEFER_INDEX_MIN_RECORDS
            || st.indexing
            || !st.unindexed.is_empty()
        {
            st.unindexed.push((first_local, terms));
        } else {
            st.index_bytes = st.active.index_batch(first_local, &terms);
        }
        st.active.push(&offsets, &stamps, st.logical_len);
        let last_id = st.next_id - 1;
        let WriterState { crc, pending, .. } = &mut *st;
        crc.update(&pending[start..]);
        st.last_ts = ts;
        if let Some(&first) = stamps.first() {
            st.first_ts.get_or_insert(first);
        }
        Ok((last_id, stamps, st.epoch))
    }

    /// Writes everything staged and fdatasyncs the active segment. Returns the
    /// highest id now durable. Called by the commit leader only, for
    /// appenders of `epoch`: after a recovery it does nothing and fails.
    pub(crate) fn flush(&self, epoch: u64) -> Result<u64> {
        let mut io = self.lock_io();
        let (buf, target, active, unindexed) = {
            let mut st = self.lock_state();
            if st.failed || st.epoch != epoch {
                return Err(Error::PreviousIo);
            }
            let unindexed = mem::take(&mut st.unindexed);
            st.indexing = !unindexed.is_empty();
            (
                mem::take(&mut st.pending),
                st.next_id - 1,
                st.active.clone(),
                unindexed,
            )
        };
        let zeros = match self.zero_ahead(&mut io, &active, buf.len() as u64) {
            Ok(z) => z,
            Err(e) => {
                self.lock_state().failed = true;
                return Err(e);
            }
        };
        let sync = || {
            let started = std::time::Instant::now();
            let result = write_and_sync(&active, &buf, io.written, zeros);
            self.io_counters
                .record_fsync(started.elapsed().as_micros() as u64);
            result
        };
        let result = if unindexed.is_empty() {
            sync()
        } else {
            // Index on the indexing thread while this one writes and syncs;
            // both finish before anything taken here is published.
            let indexing = self.indexer.start(active.clone(), unindexed);
            let result = sync();
            let bytes = indexing.wait();
            let mut st = self.lock_state();
            st.indexing = false;
            st.index_bytes = bytes;
            result
        };
        match result {
            Ok(zeroed) => {
                io.written += buf.len() as u64;
                io.synced = io.written;
                match zeros {
                    Some((_, to)) if zeroed => io.zeroed_to = to,
                    Some(_) => {
                        // Some of them may be there: the file's length says.
                        io.zeroed_to = 0;
                        io.zero_again_at = io.written + PREALLOCATE_MIN;
                    }
                    None => {}
                }
                Ok(target)
            }
            Err(e) => {
                self.lock_state().failed = true;
                Err(e)
            }
        }
    }

    /// Where this flush should extend the zeroed region of the active file
    /// (`Some((from, to))`), if its data (`len` bytes at `io.written`) comes
    /// near the region's end (see [`PREALLOCATE_MIN`]).
    fn zero_ahead(
        &self,
        io: &mut IoState,
        active: &ActiveSegment,
        len: u64,
    ) -> Result<Option<(u64, u64)>> {
        let end = io.written + len;
        if io.zeroed_to == 0 {
            // Past `written` the file holds only zeros: recovery cut anything
            // else, and a roll starts a file that ends at its header.
            let file_len = active
                .file()
                .len()
                .map_err(Error::io("stat", active.path()))?;
            io.zeroed_to = file_len.max(io.written);
        }
        let chunk = (end / 2).clamp(PREALLOCATE_MIN, PREALLOCATE_MAX);
        if end + chunk / 4 <= io.zeroed_to || end < io.zero_again_at {
            return Ok(None);
        }
        let from = end.max(io.zeroed_to);
        let to = (end + chunk).min(self.config.segment_max_bytes.max(end));
        Ok((to > from).then_some((from, to)))
    }

    /// Seals the active segment and starts a new one (see the module docs for
    /// the order). Callers hold `io` and `state`. Returns the old active
    /// segment for the caller to drop once it has released the locks:
    /// freeing its in-memory index (one allocation per term, 150,000 and
    /// more with unique words) took ~20–40 ms.
    pub(crate) fn roll_locked(
        &self,
        io: &mut IoState,
        st: &mut WriterState,
    ) -> Result<Arc<ActiveSegment>> {
        let result = self.try_roll(io, st);
        if result.is_err() {
            st.failed = true;
            self.commit.fail();
        }
        result
    }

    fn try_roll(&self, io: &mut IoState, st: &mut WriterState) -> Result<Arc<ActiveSegment>> {
        let old = st.active.clone();
        let path = old.path().to_path_buf();
        let fs = &*self.config.fs;
        // 0. Batches staged but not yet indexed (no flush is indexing: the
        // caller holds `io`). The roll publishes them and writes the index.
        debug_assert!(!st.indexing);
        let unindexed = mem::take(&mut st.unindexed);
        if !unindexed.is_empty() {
            st.index_bytes = index_batches(&old, &unindexed);
        }
        // 1. Staged frames.
        let staged = mem::take(&mut st.pending);
        write_at(&old, &staged, io.written)?;
        io.written += staged.len() as u64;
        debug_assert_eq!(io.written, st.logical_len);
        // 2. Offset table and footer, 3. one fdatasync for all of it.
        {
            let table = old.table();
            seal_file(
                fs,
                old.file(),
                &path,
                &table,
                st.crc.clone().finalize(),
                io.written,
            )?;
        }
        let sealed = SealedSegment::open_in(fs, &path)?.ok_or_else(|| {
            Error::corruption(&path, io.written, "footer just written does not read back")
        })?;
        // A large segment's index file is built and written after the locks
        // are released (building it took ~95 % of a 130-165 ms seal with
        // unique words in every record); until then readers use its
        // in-memory index, which stays exactly as it was.
        let background = io.written >= BACKGROUND_INDEX_MIN_BYTES;
        let index = if background {
            SegmentIndex::Memory(old.clone())
        } else {
            fsutil::crash_point(fs, "segment::roll::before_index", &path)?;
            SegmentIndex::File(Arc::new(write_index(fs, &old, &sealed)?))
        };
        // 4. The new active segment.
        fail::fail_point!("segment::roll::before_create", |_| Err(fsutil::injected(
            "create", &path
        )));
        fsutil::crash_point(fs, "segment::roll::before_create", &path)?;
        let header = SegmentHeader::new(st.next_id, self.config.clock.now());
        let new_path = segment_path(&self.dir, header.base_id);
        let file = fsutil::create_durable(fs, &new_path, &header.encode(), Durable::Segment)?;
        // Its ids, reserved before any is handed out.
        let reservation = Reservation::for_segment(header.base_id, header.base_id, &self.config);
        ids::write(fs, &self.dir, &reservation)?;
        let active = Arc::new(
            ActiveSegment::new(
                new_path,
                header.base_id,
                file,
                ActiveTable::default(),
                ActiveIndex::default(),
            )
            .mapped(self.config.segment_max_bytes),
        );
        // 5. Swap the view, then 6. publish.
        let sealed = Arc::new(Sealed::with_index(sealed, index, self.config.fs.clone()));
        self.update_view(|v| View {
            sealed: v.sealed.iter().cloned().chain([sealed.clone()]).collect(),
            active: active.clone(),
        });
        *st = WriterState::fresh(active, &header, st.last_ts, st.epoch, reservation.limit);
        *io = IoState::new(SEGMENT_HEADER_LEN as u64);
        self.commit.publish(header.base_id - 1);
        if background {
            // 7. The index file. A crash before it exists leaves a sealed
            // segment without one, which open rebuilds (and reports); if
            // writing it fails, its bytes serve from memory until then.
            let fs = self.config.fs.clone();
            let old = old.clone();
            self.in_background(move || {
                fail::fail_point!("segment::index::background");
                if let Ok(index) = write_index(&*fs, &old, &sealed.seg) {
                    let in_memory = sealed.set_index(index);
                    drop(old);
                    drop(in_memory); // the last reference, unless a reader holds one
                }
            });
        }
        Ok(old)
    }

    /// Seals the active segment now if it holds any record.
    pub(crate) fn roll_now(&self) -> Result<()> {
        let retired = {
            let mut io = self.lock_io();
            let mut st = self.lock_state();
            if st.failed {
                return Err(Error::PreviousIo);
            }
            if st.count == 0 {
                return Ok(());
            }
            self.roll_locked(&mut io, &mut st)?
        };
        drop(retired);
        Ok(())
    }
}

/// A sealed segment at least this large gets its index file written off the
/// write path's locks (see `try_roll`); smaller ones, whose index takes
/// milliseconds at most, write it under them, which keeps the order of file
/// operations fixed for the simulated-filesystem sweeps.
pub(crate) const BACKGROUND_INDEX_MIN_BYTES: u64 = 4 << 20;

/// Writes the index of a segment being sealed (temp, fsync, rename,
/// directory fsync) and maps it. The index is derived data: if writing it
/// fails, its bytes serve from memory and the next open rebuilds the file.
pub(crate) fn write_index(
    fs: &dyn FileSystem,
    old: &ActiveSegment,
    sealed: &SealedSegment,
) -> Result<SealedIndex> {
    let bytes = {
        let idx = old.index();
        let table = old.table();
        index_file::encode(sealed.base_id(), &idx.sorted(), &table.ts)
    };
    let path = index_file::index_path(sealed.path());
    let written = fsutil::create_durable(fs, &path, &bytes, Durable::Index)
        .and_then(|file| map_file(&*file, &path))
        .map(IndexBytes::Mapped);
    let source = written.unwrap_or(IndexBytes::Owned(bytes));
    SealedIndex::parse(
        &path,
        source,
        sealed.base_id(),
        sealed.count(),
        Trust::Built,
    )
    .map_err(|why| Error::corruption(&path, 0, format!("index just built does not parse: {why}")))
}

/// Runs `other` on a scoped thread while this thread runs `here`; returns
/// both results (a panic on the other thread resumes here). If the system
/// refuses a thread, runs both here, one after the other.
pub(crate) fn beside<A: Send, B>(
    other: impl FnOnce() -> A + Send,
    here: impl FnOnce() -> B,
) -> (A, B) {
    // The closure stays reachable when the spawn fails and drops its wrapper.
    let other = Mutex::new(Some(other));
    let run_other = || {
        let f = other.lock().unwrap_or_else(|e| e.into_inner()).take();
        f.map(|f| f())
    };
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new().spawn_scoped(s, run_other);
        let b = here();
        let a = match handle {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => run_other(),
        };
        // Taken once, by the thread or by the fallback: always there.
        (a.expect("`other` is taken exactly once"), b)
    })
}

/// Seals the active segment file `file` at `path`, whose frames (all of
/// them written) end at `data_end`: writes the offset table and footer,
/// cuts the file to end with them (dropping the preallocated zeros), and
/// fdatasyncs, which makes the frames, the trailer and the new length
/// durable at once. The file is sealed for good only when a successor
/// segment exists (see the module docs).
pub(crate) fn seal_file(
    fs: &dyn FileSystem,
    file: &dyn FileHandle,
    path: &std::path::Path,
    table: &ActiveTable,
    data_crc: u32,
    data_end: u64,
) -> Result<()> {
    fsutil::crash_point(fs, "segment::roll::before_trailer", path)?;
    let trailer = seal_trailer(table, data_crc, data_end);
    write_file_at(file, path, &trailer, data_end)?;
    let sealed_len = data_end + trailer.len() as u64;
    file.set_len(sealed_len)
        .map_err(Error::io("truncate", path))?;
    fail::fail_point!("segment::seal::before_sync", |_| Err(fsutil::injected(
        "fsync", path
    )));
    fsutil::crash_point(fs, "segment::roll::before_seal_sync", path)?;
    file.sync_data().map_err(Error::io("fsync", path))
}

/// Offset table + footer for a segment whose frames end at `data_end`.
fn seal_trailer(table: &ActiveTable, data_crc: u32, data_end: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.offsets.len() * 4 + 48);
    for off in &table.offsets {
        out.extend_from_slice(&off.to_le_bytes());
    }
    let footer = Footer {
        count: table.offsets.len() as u32,
        data_crc,
        first_ts: table.ts.first().copied().unwrap_or(0),
        last_ts: table.ts.last().copied().unwrap_or(0),
        data_end,
        table_crc: crc32fast::hash(&out),
    };
    out.extend_from_slice(&footer.encode());
    out
}

fn write_at(seg: &ActiveSegment, buf: &[u8], at: u64) -> Result<()> {
    write_file_at(seg.file(), seg.path(), buf, at)
}

fn write_file_at(file: &dyn FileHandle, path: &std::path::Path, buf: &[u8], at: u64) -> Result<()> {
    fail::fail_point!("segment::write", |_| Err(fsutil::injected("write", path)));
    file.write_all_at(buf, at).map_err(Error::io("write", path))
}

/// Writes `buf` at `at`, then zeros over `zeros` (`[from, to)`, past the
/// data), then fdatasyncs: one sync makes both durable. Returns whether the
/// zeros were all written: a disk without room for them is no failure (they
/// are only preallocation, see [`PREALLOCATE_MIN`]), the data is synced
/// without them.
fn write_and_sync(
    seg: &ActiveSegment,
    buf: &[u8],
    at: u64,
    zeros: Option<(u64, u64)>,
) -> Result<bool> {
    if !buf.is_empty() {
        write_at(seg, buf, at)?;
    }
    let mut zeroed = true;
    if let Some((from, to)) = zeros {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(ZEROS.len() as u64) as usize;
            match write_at(seg, &ZEROS[..n], pos) {
                Ok(()) => pos += n as u64,
                Err(e) if e.is_disk_full() => {
                    zeroed = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    fail::fail_point!("segment::sync", |_| Err(fsutil::injected(
        "fsync",
        seg.path()
    )));
    seg.file()
        .sync_data()
        .map_err(Error::io("fsync", seg.path()))?;
    Ok(zeroed)
}
