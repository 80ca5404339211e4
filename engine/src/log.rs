//! The public handle: open (with recovery), append, read, iterate, close.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::group_commit::GroupCommit;
use crate::record::{NewRecord, Record};
use crate::recovery::{self, RecoveryReport};
use crate::segment::active::{ActiveSegment, ActiveTable};
use crate::segment::sealed::{map_file, SealedSegment};
use crate::segment::{
    parse_segment_file_name, segment_path, SegmentHeader, SEGMENT_HEADER_LEN, TEMP_SUFFIX,
};
use crate::writer::{IoState, WriterState};

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
    /// Durable records it holds.
    pub records: u64,
    /// Bytes on disk (for the active segment: durable bytes written so far).
    pub bytes: u64,
    /// ts of its first and last record, if it has any.
    pub ts_range: Option<(i64, i64)>,
    /// Sealed (immutable) or active.
    pub sealed: bool,
}

/// The segments readers see: sealed ones in id order, then the active one.
#[derive(Debug)]
pub(crate) struct View {
    pub sealed: Vec<Arc<SealedSegment>>,
    pub active: Arc<ActiveSegment>,
}

impl View {
    fn first_id(&self) -> u64 {
        self.sealed
            .first()
            .map(|s| s.base_id())
            .unwrap_or_else(|| self.active.base_id())
    }

    fn read(&self, id: u64) -> Result<Record> {
        if id >= self.active.base_id() {
            return self.active.read(id);
        }
        let i = self.sealed.partition_point(|s| s.end_id() <= id);
        match self.sealed.get(i) {
            Some(seg) if seg.base_id() <= id => seg.read(id),
            _ => Err(Error::corruption(
                self.active.path(),
                0,
                format!("no segment holds id {id}"),
            )),
        }
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
    report: RecoveryReport,
    /// Held (flock) for the life of the handle; released when the last clone drops.
    _lock: File,
}

impl Inner {
    pub(crate) fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn update_view(&self, f: impl FnOnce(&View) -> View) {
        let mut v = self.view.write().unwrap_or_else(|e| e.into_inner());
        *v = Arc::new(f(&v));
    }
}

/// An open log: a cheap, cloneable, `Send + Sync` handle.
///
/// Appends are durable when they return; readers never block the writer and
/// see a consistent prefix (every durable record, nothing beyond).
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering from any crash.
    ///
    /// Fails with [`Error::Locked`] if another handle owns the directory and
    /// with [`Error::Corruption`] if acknowledged data is damaged (nothing is
    /// modified then). A torn tail is cut and reported in
    /// [`Log::recovery_report`].
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&dir)?;
        let lock = lock_dir(&dir)?;
        let mut report = RecoveryReport::default();

        let (bases, temps) = list_dir(&dir)?;
        for tmp in temps {
            fs::remove_file(&tmp).map_err(Error::io("remove", &tmp))?;
            report.removed_temp_files.push(tmp);
        }
        if !report.removed_temp_files.is_empty() {
            fsutil::sync_dir(&dir)?;
        }

        let mut sealed: Vec<Arc<SealedSegment>> = Vec::new();
        let mut active: Option<(Arc<ActiveSegment>, WriterState, u64)> = None;
        let mut last_ts = i64::MIN;
        for (i, &base) in bases.iter().enumerate() {
            let path = segment_path(&dir, base);
            let is_last = i + 1 == bases.len();
            if let Some(prev) = sealed.last() {
                if prev.end_id() != base {
                    return Err(Error::corruption(
                        &path,
                        0,
                        format!(
                            "id gap: the previous segment ends before id {}, this one starts at {base}",
                            prev.end_id()
                        ),
                    ));
                }
            }
            match SealedSegment::open(&path)? {
                Some(seg) => {
                    check_base(&path, seg.header(), base)?;
                    if seg.count() > 0 {
                        last_ts = last_ts.max(seg.footer().last_ts);
                    }
                    sealed.push(Arc::new(seg));
                }
                None if is_last => {
                    let (seg, state, written) = recover_active(&path, base, &mut report)?;
                    if let Some(&ts) = seg.table().ts.last() {
                        last_ts = last_ts.max(ts);
                    }
                    active = Some((seg, state, written));
                }
                None => {
                    return Err(Error::corruption(
                        &path,
                        0,
                        "segment has no valid seal footer, but newer segments exist",
                    ))
                }
            }
        }
        report.segments = bases.len();

        let (active, mut state, written) = match active {
            Some(a) => a,
            None => {
                let base = sealed.last().map(|s| s.end_id()).unwrap_or(1);
                let header = SegmentHeader {
                    base_id: base,
                    created_us: config.clock.now(),
                };
                let path = segment_path(&dir, base);
                let file = fsutil::create_durable(&path, &header.encode())?;
                let seg = Arc::new(ActiveSegment::new(path, base, file, ActiveTable::default()));
                report.created_active = !bases.is_empty();
                let state = WriterState::fresh(seg.clone(), &header, last_ts);
                (seg, state, SEGMENT_HEADER_LEN as u64)
            }
        };
        state.last_ts = state.last_ts.max(last_ts);
        let durable = state.next_id - 1;
        let view = View { sealed, active };
        report.records = durable + 1 - view.first_id();

        Ok(Log {
            inner: Arc::new(Inner {
                dir,
                config,
                view: RwLock::new(Arc::new(view)),
                state: Mutex::new(state),
                io: Mutex::new(IoState { written }),
                commit: GroupCommit::new(durable),
                report,
                _lock: lock,
            }),
        })
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
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if batch.len() > MAX_BATCH_RECORDS {
            return Err(Error::Config(format!(
                "a batch holds at most {MAX_BATCH_RECORDS} records, this one {}",
                batch.len()
            )));
        }
        let payloads = batch
            .iter()
            .enumerate()
            .map(|(index, r)| {
                r.encode_payload()
                    .map_err(|source| Error::Invalid { index, source })
            })
            .collect::<Result<Vec<_>>>()?;
        let last = self.inner.stage(&payloads)?;
        let inner = &self.inner;
        inner.commit.wait_durable(last, || inner.flush())?;
        let first = last + 1 - batch.len() as u64;
        Ok((first..=last).collect())
    }

    /// Appends one record; see [`Log::append`].
    pub fn append_one(&self, record: &NewRecord) -> Result<u64> {
        let ids = self.append(std::slice::from_ref(record))?;
        Ok(ids[0])
    }

    /// Seals the active segment now (if it holds records) and starts a new one.
    pub fn roll(&self) -> Result<()> {
        self.inner.roll_now()
    }

    /// Whether an earlier I/O failure has fail-stopped this handle.
    pub fn is_failed(&self) -> bool {
        self.inner.commit.failed()
    }

    /// The record with `id`, if it exists and is durable.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        let last = self.inner.commit.visible();
        let view = self.inner.view();
        if id < view.first_id() || id > last {
            return Ok(None);
        }
        view.read(id).map(Some)
    }

    /// Smallest readable id, or `None` when the log is empty.
    pub fn first_id(&self) -> Option<u64> {
        let last = self.inner.commit.visible();
        let first = self.inner.view().first_id();
        (first <= last).then_some(first)
    }

    /// Largest durable id, or `None` when nothing was ever appended.
    pub fn last_id(&self) -> Option<u64> {
        let last = self.inner.commit.visible();
        (last > 0).then_some(last)
    }

    /// Iterates records from `from` (inclusive) in `direction`, over a
    /// snapshot of what is durable now. `from` outside the log is clamped: a
    /// forward walk from 0 starts at the oldest record, a backward walk from
    /// `u64::MAX` at the newest.
    pub fn iter(&self, from: u64, direction: Direction) -> Iter {
        let last = self.inner.commit.visible();
        let view = self.inner.view();
        let first = view.first_id();
        let next = match direction {
            Direction::Forward => Some(from.max(first)).filter(|&id| id <= last),
            Direction::Backward => Some(from.min(last)).filter(|&id| id >= first && id > 0),
        };
        Iter {
            view,
            next,
            first,
            last,
            direction,
        }
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let last = self.inner.commit.visible();
        let view = self.inner.view();
        let mut out: Vec<SegmentInfo> = view
            .sealed
            .iter()
            .map(|s| SegmentInfo {
                path: s.path().to_path_buf(),
                base_id: s.base_id(),
                records: s.count(),
                bytes: s.file_len(),
                ts_range: (s.count() > 0).then(|| (s.footer().first_ts, s.footer().last_ts)),
                sealed: true,
            })
            .collect();
        let active = &view.active;
        let table = active.table();
        let records = (last + 1).saturating_sub(active.base_id()) as usize;
        let records = records.min(table.offsets.len());
        let bytes = self.inner.io.lock().map(|io| io.written).unwrap_or(0);
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
        let staged_last = {
            let st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.failed {
                return Err(Error::PreviousIo);
            }
            st.next_id - 1
        };
        let inner = &self.inner;
        inner.commit.wait_durable(staged_last, || inner.flush())
    }
}

/// Iterator over records in id order (see [`Log::iter`]).
#[derive(Debug)]
pub struct Iter {
    view: Arc<View>,
    next: Option<u64>,
    first: u64,
    last: u64,
    direction: Direction,
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.next?;
        self.next = match self.direction {
            Direction::Forward => Some(id + 1).filter(|&n| n <= self.last),
            Direction::Backward => id.checked_sub(1).filter(|&n| n >= self.first && n > 0),
        };
        let item = self.view.read(id);
        if item.is_err() {
            self.next = None; // stop after reporting damage
        }
        Some(item)
    }
}

fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsutil::sync_dir(parent)?;
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io("lock", &path)(e)),
    }
}

/// Segment base ids (sorted) and leftover temporary files.
fn list_dir(dir: &Path) -> Result<(Vec<u64>, Vec<PathBuf>)> {
    let mut bases = Vec::new();
    let mut temps = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_file_name(name) {
            bases.push(base);
        } else if name.ends_with(TEMP_SUFFIX) {
            temps.push(entry.path());
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

/// Scans the active segment, cuts a torn tail, and builds its writer state.
fn recover_active(
    path: &Path,
    base: u64,
    report: &mut RecoveryReport,
) -> Result<(Arc<ActiveSegment>, WriterState, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    let (header, scan) = {
        // The map is dropped before any truncation below.
        let map = map_file(&file, path)?;
        let header = SegmentHeader::decode(&map, path)?;
        check_base(path, &header, base)?;
        (header, recovery::scan_active(&map, path, base)?)
    };
    if let Some(torn) = scan.torn {
        file.set_len(scan.end)
            .map_err(Error::io("truncate", path))?;
        file.sync_all().map_err(Error::io("fsync", path))?;
        report.torn_tail = Some(torn);
    }
    let count = scan.table.offsets.len() as u32;
    let first_ts = scan.table.ts.first().copied();
    let last_ts = scan.table.ts.last().copied().unwrap_or(i64::MIN);
    let seg = Arc::new(ActiveSegment::new(
        path.to_path_buf(),
        base,
        file,
        scan.table,
    ));
    let state = WriterState {
        active: seg.clone(),
        logical_len: scan.end,
        pending: Vec::new(),
        next_id: header.base_id + u64::from(count),
        last_ts,
        first_ts,
        count,
        crc: scan.crc,
        failed: false,
    };
    Ok((seg, state, scan.end))
}
