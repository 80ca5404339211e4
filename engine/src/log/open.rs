//! Opening a log directory: locking it, listing and checking its segment
//! files, loading or rebuilding their indexes, and recovering the active
//! segment's tail (see `docs/FORMAT.md`, "Recovery").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::env::{FileBytes, FileSystem, LockGuard, OpenMode};
use crate::error::{Error, Result};
use crate::fsutil::{self, Durable};
use crate::ids::{self, Reservation};
use crate::index::active::ActiveIndex;
use crate::index::file::{self as index_file, IndexBytes, SealedIndex, Trust};
use crate::index::snapshot::{load_snapshot, snapshot_path};
use crate::index::terms::{TermSource, Terms};
use crate::recovery::{self, RecoveryReport, TornTail};
use crate::retention::{self};
use crate::segment::active::{ActiveSegment, ActiveTable};
use crate::segment::sealed::{map_file, SealedSegment};
use crate::segment::{
    parse_segment_file_name, segment_path, SegmentHeader, FORMAT_VERSION, MAX_BASE_ID,
    SEGMENT_HEADER_LEN, SEGMENT_PREFIX, TEMP_SUFFIX,
};
use crate::view::{Sealed, SegmentIndex, View};
use crate::writer::WriterState;

use super::LOCK_FILE;

/// Below this many bytes of sealed segments, [`recover_dir`] loads their
/// indexes on the opening thread: a second thread (~30 µs to start) is worth
/// it only when loading takes milliseconds.
const PARALLEL_OPEN_MIN_BYTES: u64 = 16 << 20;

/// What [`recover_dir`] rebuilt from a directory.
pub(super) struct Recovered {
    /// Sealed segments and the active one, as readers see them.
    pub(super) view: View,
    /// The writer's state for the active segment.
    pub(super) state: WriterState,
    /// Where the active segment's data ends on disk.
    pub(super) written: u64,
    /// The persisted low watermark.
    pub(super) low: u64,
    /// What recovery found and did.
    pub(super) report: RecoveryReport,
}

/// Recovery: reads the directory as it is on disk and builds the reader view
/// and writer state from it, cutting a torn tail, finishing an interrupted
/// roll or retention run, removing temp files and rebuilding indexes
/// (unless `read_only`, which changes nothing on disk). `epoch` is the
/// writer state's (see `group_commit.rs`).
pub(super) fn recover_dir(
    dir: &Path,
    config: &Config,
    read_only: bool,
    epoch: u64,
    durable: Option<DurableHint>,
) -> Result<Recovered> {
    let fs = &*config.fs;
    let dir = dir.to_path_buf();
    let mut report = RecoveryReport::default();
    if fs.is_file(&dir.join(crate::backup::RESTORING_FILE)) {
        return Err(Error::RestoreUnfinished { dir });
    }

    let (bases, temps) = list_dir(fs, &dir)?;
    if !read_only {
        // Recovery builds on what it listed: a segment renamed into place
        // whose directory fsync failed (a roll that fail-stopped) must not
        // be appended to while its entry may still vanish in a power cut.
        fsutil::sync_dir(fs, &dir)?;
        for tmp in temps {
            fs.remove_file(&tmp).map_err(Error::io("remove", &tmp))?;
            report.removed_temp_files.push(tmp);
        }
        if !report.removed_temp_files.is_empty() {
            fsutil::sync_dir(fs, &dir)?;
        }
    }
    let low = retention::read_watermark(fs, &dir)?;
    let reservation = ids::read(fs, &dir)?;

    // Every segment but the newest is sealed: a successor is only created
    // after its seal is durable. Nothing is deleted before all are checked.
    let newest = bases.last().copied();
    let mut sealed_segs: Vec<SealedSegment> = Vec::new();
    let mut below_watermark: Vec<PathBuf> = Vec::new();
    let mut last_ts = i64::MIN;
    let mut prev_end: Option<u64> = None;
    for &base in &bases {
        let path = segment_path(&dir, base);
        check_gap(fs, &dir, &path, prev_end, base, low, &mut report)?;
        if Some(base) == newest {
            break;
        }
        let seg = match SealedSegment::open_in(fs, &path) {
            // Unlinked since the listing (a dropped segment being reaped by
            // another handle): it lay below the watermark.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue
            }
            other => other?,
        }
        .ok_or_else(|| {
            Error::corruption(
                &path,
                0,
                "segment has no valid seal footer, but newer segments exist",
            )
        })?;
        check_base(&path, seg.header(), base)?;
        if seg.count() > 0 {
            last_ts = last_ts.max(seg.footer().last_ts);
        }
        prev_end = Some(seg.end_id());
        if seg.end_id() <= low {
            // Retention or clear dropped it; a crash came before the unlink.
            below_watermark.push(path);
            continue;
        }
        sealed_segs.push(seg);
    }

    // The newest segment is the active one, whatever its last bytes are.
    let hint = durable.filter(|h| Some(h.base) == newest);
    let recover_tail = |r: &mut RecoveryReport| {
        newest
            .map(|base| {
                let path = segment_path(&dir, base);
                recover_active(fs, &path, base, r, read_only, epoch, config, hint)
            })
            .transpose()
    };
    let sealed_bytes: u64 = sealed_segs.iter().map(SealedSegment::file_len).sum();
    let load_indexes = |rebuilt: &mut Vec<(PathBuf, String)>| -> Result<Vec<Arc<Sealed>>> {
        sealed_segs
            .into_iter()
            .map(|seg| {
                let index = open_index(fs, &seg, rebuilt, read_only)?;
                Ok(Arc::new(Sealed::new(seg, index, config.fs.clone())))
            })
            .collect()
    };
    // The sealed segments' indexes (checksums, dictionary checks, rebuilds)
    // and the active segment's re-indexing are independent and, after a
    // crash, most of an open: on a large log they run on two threads.
    let mut rebuilt = Vec::new();
    let (sealed, active) = if newest.is_some() && sealed_bytes >= PARALLEL_OPEN_MIN_BYTES {
        crate::writer::beside(|| load_indexes(&mut rebuilt), || recover_tail(&mut report))
    } else {
        let sealed = load_indexes(&mut rebuilt)?;
        (Ok(sealed), recover_tail(&mut report))
    };
    let (mut sealed, active) = (sealed?, active?);
    report.rebuilt_indexes.extend(rebuilt);

    // Where ids continue: the active segment's end, unless the reservation
    // says ids up to its limit may have been handed out in a segment that is
    // no longer here (see `ids.rs`).
    let end = active
        .as_ref()
        .map_or(prev_end.unwrap_or(1), |a| a.state.next_id);
    let lost_to = match (reservation, newest) {
        (Some(r), Some(newest)) if r.active_base > newest => Some(r.limit.max(end)),
        (Some(r), None) => Some(r.limit.max(1)),
        _ => None,
    };
    if low > end.max(lost_to.unwrap_or(0)) {
        return Err(Error::corruption(
            dir.join(retention::WATERMARK_FILE),
            16,
            format!("watermark {low} lies beyond the newest id {}", end - 1),
        ));
    }
    if !read_only {
        for path in below_watermark {
            remove_segment_files(fs, &path)?;
            report.deleted_below_watermark.push(path);
        }
        if !report.deleted_below_watermark.is_empty() {
            fsutil::sync_dir(fs, &dir)?;
        }
    }
    report.segments = bases.len() - report.deleted_below_watermark.len();

    let old_format = active
        .as_ref()
        .is_some_and(|a| a.header.version < FORMAT_VERSION);
    let (active, mut state, written) = match active {
        // Read-only, or nothing to change: the active segment as it is.
        Some(a) if read_only || (lost_to.is_none() && !old_format) => (a.seg, a.state, a.written),
        _ if read_only => {
            return Err(Error::io("open", &dir)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no segment files: not an actlog data directory",
            )))
        }
        previous => {
            // A new active segment: the directory is empty, ids past the
            // newest segment's end may have been handed out (the
            // reservation says so), or the active segment is of an older
            // format. Only the newest segment may lack a seal, so it is
            // sealed first — unless it holds no record: then it goes (its
            // successor may start at its very base, and two segments must
            // never share one).
            let next = lost_to.unwrap_or(end);
            if next > MAX_BASE_ID {
                return Err(Error::corruption(
                    dir.join(ids::IDS_FILE),
                    24,
                    format!("the next id {next} lies beyond the id space (1..={MAX_BASE_ID})"),
                ));
            }
            if let Some(a) = previous {
                last_ts = last_ts.max(a.state.last_ts);
                if a.state.count > 0 {
                    sealed.push(seal_at_open(fs, config, &a.seg, &a.state, a.written)?);
                    report.sealed_on_open = Some(a.seg.path().to_path_buf());
                } else if a.seg.base_id() != next {
                    // (At `next` the new segment's create replaces it atomically.)
                    let path = a.seg.path().to_path_buf();
                    drop(a);
                    fs.remove_file(&path).map_err(Error::io("remove", &path))?;
                }
            }
            if next > end {
                record_lost_ids(fs, &dir, end, next)?;
                report.lost_ids = Some((end, next));
            }
            let header = SegmentHeader::new(next, config.clock.now());
            let path = segment_path(&dir, next);
            let file = fsutil::create_durable(fs, &path, &header.encode(), Durable::Segment)?;
            let seg = Arc::new(
                ActiveSegment::new(
                    path,
                    next,
                    file,
                    ActiveTable::default(),
                    ActiveIndex::default(),
                )
                .mapped(config.segment_max_bytes),
            );
            report.created_active = !bases.is_empty();
            let state = WriterState::fresh(seg.clone(), &header, last_ts, epoch, 0);
            (seg, state, SEGMENT_HEADER_LEN as u64)
        }
    };
    if !read_only {
        // The reservation for the active segment, unless it is already the
        // one on disk.
        let base = active.base_id();
        let current =
            ids::read(fs, &dir)?.filter(|r| r.active_base == base && r.limit > state.next_id);
        let r = match current {
            Some(r) => r,
            None => {
                let r = Reservation::for_segment(base, state.next_id, config);
                ids::write(fs, &dir, &r)?;
                r
            }
        };
        state.id_limit = r.limit;
    } else {
        state.id_limit = u64::MAX;
    }
    state.last_ts = state.last_ts.max(last_ts);
    let view = View { sealed, active };
    report.records = view.held_between(low.max(view.first_id()), state.next_id - 1);
    Ok(Recovered {
        view,
        state,
        written,
        low,
        report,
    })
}

pub(super) fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
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

pub(super) fn lock_dir(fs: &dyn FileSystem, dir: &Path) -> Result<LockGuard> {
    let path = dir.join(LOCK_FILE);
    match fs.try_lock(&path) {
        Ok(Some(guard)) => Ok(guard),
        Ok(None) => Err(Error::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io("lock", &path)(e)),
    }
}

/// Whether `name` is a temporary file the engine writes (a segment, index,
/// snapshot, watermark or id reservation being created): those recovery
/// deletes. Others (the server's `settings.json.tmp`) belong to writers that
/// may be about to rename them.
fn is_engine_temp(name: &str) -> bool {
    name.strip_suffix(TEMP_SUFFIX).is_some_and(|stem| {
        stem.starts_with(SEGMENT_PREFIX)
            || stem == retention::WATERMARK_FILE
            || stem == ids::IDS_FILE
    })
}

/// Segment base ids (sorted) and leftover temporary files.
fn list_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(Vec<u64>, Vec<PathBuf>)> {
    let mut bases = Vec::new();
    let mut temps = Vec::new();
    for name in fs.read_dir(dir).map_err(Error::io("list", dir))? {
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_file_name(name) {
            bases.push(base);
        } else if is_engine_temp(name) {
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

/// The line of a `.missing` marker that says where the recorded gap ends.
pub const MISSING_UNTIL: &str = "until: ";

/// Every gap `quarantine/` records, as `(first id, end)`: a moved segment
/// (its end from its footer) or a `.missing` marker (its end from its
/// `until:` line, or from repair's older "Records A..B were lost" text).
/// `None` when the end cannot be read.
pub(crate) fn recorded_gaps(fs: &dyn FileSystem, dir: &Path) -> Vec<(u64, Option<u64>)> {
    let qdir = dir.join(QUARANTINE_DIR);
    let Ok(names) = fs.read_dir(&qdir) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|n| n.to_str())
        .filter_map(|n| {
            if let Some(stem) = n.strip_suffix(MISSING_MARKER_SUFFIX) {
                let from = parse_segment_file_name(&format!("{stem}.log"))?;
                let text = fs.read(&qdir.join(n)).ok()?;
                let text = String::from_utf8_lossy(&text);
                Some((from, marker_end(&text)))
            } else {
                let from = parse_segment_file_name(n)?;
                let end = SealedSegment::open_in(fs, &qdir.join(n))
                    .ok()
                    .flatten()
                    .map(|seg| seg.end_id());
                Some((from, end))
            }
        })
        .collect()
}

/// The end of the gap a `.missing` marker's text records.
fn marker_end(text: &str) -> Option<u64> {
    if let Some(n) = text.lines().find_map(|l| l.strip_prefix(MISSING_UNTIL)) {
        return n.trim().parse().ok();
    }
    // repair's text: "Records A..B were lost: ..."
    let rest = text.strip_prefix("Records ")?;
    let (_, b) = rest.split_once("..")?;
    let last: u64 = b
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    last.checked_add(1)
}

/// Whether `quarantine/` records that ids `[from, to)` are missing: a gap
/// starting at or below `from` (exactly at it, unless `from_below`) that
/// reaches `to`.
pub(crate) fn gap_recorded(
    fs: &dyn FileSystem,
    dir: &Path,
    from: u64,
    to: u64,
    from_below: bool,
) -> bool {
    recorded_gaps(fs, dir).into_iter().any(|(start, end)| {
        let starts = if from_below {
            start <= from
        } else {
            start == from
        };
        starts && end.is_some_and(|end| end >= to)
    })
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
    // Derived data: a disk too full (or failing) to take the rebuilt file
    // does not keep the log from opening; the index serves from memory and
    // the next open tries again.
    let source = match fsutil::create_durable(fs, &path, &bytes, Durable::Index)
        .and_then(|file| map_file(&*file, &path))
    {
        Ok(map) => {
            rebuilt.push((path.clone(), problem.to_string()));
            IndexBytes::Mapped(map)
        }
        Err(e) => {
            rebuilt.push((
                path.clone(),
                format!("{problem} (rebuilt in memory only: writing it failed: {e})"),
            ));
            IndexBytes::Owned(bytes)
        }
    };
    SealedIndex::parse(&path, source, seg.base_id(), seg.count(), Trust::Built)
        .map_err(|why| Error::corruption(&path, 0, format!("rebuilt index does not parse: {why}")))
}

/// The active segment as recovery found it.
pub(super) struct ActiveRecovered {
    pub(super) seg: Arc<ActiveSegment>,
    pub(super) state: WriterState,
    /// Where its data ends on disk.
    pub(super) written: u64,
    pub(super) header: SegmentHeader,
}

/// What an in-place recovery ([`crate::Log::recover`]) knows that the
/// files do not say: the active segment's length after its last fdatasync
/// that succeeded. Past it, the page cache may hold bytes the disk never got
/// (a failed fsync drops them from writeback but not from the cache).
#[derive(Debug, Clone, Copy)]
pub(super) struct DurableHint {
    /// The active segment's base id.
    pub(super) base: u64,
    /// Its length known durable.
    pub(super) len: u64,
}

/// Scans the active segment, cuts a torn tail, rebuilds its in-memory index
/// and builds its writer state. With `durable`, first cuts the file back to
/// the length known durable.
#[allow(clippy::too_many_arguments)]
fn recover_active(
    fs: &dyn FileSystem,
    path: &Path,
    base: u64,
    report: &mut RecoveryReport,
    read_only: bool,
    epoch: u64,
    config: &Config,
    durable: Option<DurableHint>,
) -> Result<ActiveRecovered> {
    let mode = if read_only {
        OpenMode::Read
    } else {
        OpenMode::ReadWrite
    };
    let file = fs.open(path, mode).map_err(Error::io("open", path))?;
    let mut unsynced_cut = None;
    if let Some(hint) = durable.filter(|_| !read_only) {
        let len = file.len().map_err(Error::io("stat", path))?;
        if len > hint.len {
            file.set_len(hint.len)
                .map_err(Error::io("truncate", path))?;
            file.sync_all().map_err(Error::io("fsync", path))?;
            unsynced_cut = Some(TornTail {
                file: path.to_path_buf(),
                offset: hint.len,
                bytes_dropped: len - hint.len,
                records_dropped: 0,
                reason: "bytes past the last successful fdatasync: after a failed \
                         write or fsync the disk may not hold them"
                    .into(),
            });
        }
    } else if !read_only {
        // The newest segment may hold bytes that a failed fsync never made
        // durable (a process restarted without a reboot): make them durable
        // before building on them. (This cannot undo a failed fsync whose
        // pages the kernel already dropped from writeback; see
        // docs/OPERATIONS.md.)
        file.sync_all().map_err(Error::io("fsync", path))?;
    }
    let (scan, index) = {
        // Read-write: a map, dropped before any truncation below. Read-only:
        // a plain read, since a running writer may seal (and cut) the file.
        let map: FileBytes = if read_only {
            FileBytes::Owned(fs.read(path).map_err(Error::io("read", path))?)
        } else {
            map_file(&*file, path)?
        };
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
        (scan, index)
    };
    if let Some(torn) = scan.torn {
        if !read_only {
            fsutil::crash_point(fs, "recovery::before_truncate", path)?;
            file.set_len(scan.end)
                .map_err(Error::io("truncate", path))?;
            file.sync_all().map_err(Error::io("fsync", path))?;
        }
        report.torn_tail = Some(torn);
    } else if let Some(cut) = unsynced_cut {
        report.torn_tail = Some(cut);
    }
    let header = scan.header;
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
        id_limit: 0,
    };
    Ok(ActiveRecovered {
        seg,
        state,
        written: scan.end,
        header,
    })
}

/// Seals the recovered active segment `seg` (all of whose frames are on
/// disk, ending at `written`) so that a new active segment can follow it,
/// and returns it as readers see a sealed segment, with its index file.
fn seal_at_open(
    fs: &dyn FileSystem,
    config: &Config,
    seg: &ActiveSegment,
    state: &WriterState,
    written: u64,
) -> Result<Arc<Sealed>> {
    let path = seg.path();
    {
        let table = seg.table();
        crate::writer::seal_file(
            fs,
            seg.file(),
            path,
            &table,
            state.crc.clone().finalize(),
            written,
        )?;
    }
    let sealed = SealedSegment::open_in(fs, path)?.ok_or_else(|| {
        Error::corruption(path, written, "footer just written does not read back")
    })?;
    let index = crate::writer::write_index(fs, seg, &sealed)?;
    Ok(Arc::new(Sealed::with_index(
        sealed,
        SegmentIndex::File(Arc::new(index)),
        config.fs.clone(),
    )))
}

/// Records in `quarantine/` that ids `[from, to)` are lost: they may have
/// been handed out in a segment that is no longer in the directory, and
/// will never be handed out again.
fn record_lost_ids(fs: &dyn FileSystem, dir: &Path, from: u64, to: u64) -> Result<()> {
    create_dir_durable(fs, &dir.join(QUARANTINE_DIR))?;
    let marker = missing_marker_path(dir, from);
    let text = format!(
        "Ids {from}..{} may have been handed out in a segment that is no longer in this \
         directory (a segment moved to quarantine/ by repair, or a restore from an older \
         backup); the log continues at id {to} and never hands them out again. Delete this \
         file only if you put that segment back.\n{MISSING_UNTIL}{to}\n",
        to - 1
    );
    fsutil::create_durable(fs, &marker, text.as_bytes(), Durable::Other).map(drop)
}

/// Checks that the segment at `path` starting at `base` follows the previous
/// one (ending before `prev_end`, `None` for the first) without a gap, or
/// that the gap is one `repair` or recovery recorded, or lies wholly below
/// the watermark `low`. The first segment must start at or below the
/// watermark (a missing oldest segment is a gap too).
#[allow(clippy::too_many_arguments)]
fn check_gap(
    fs: &dyn FileSystem,
    dir: &Path,
    path: &Path,
    prev_end: Option<u64>,
    base: u64,
    low: u64,
    report: &mut RecoveryReport,
) -> Result<()> {
    let expected = prev_end.unwrap_or(low.max(1));
    if base == expected || (prev_end.is_none() && base < expected) || base <= low {
        return Ok(());
    }
    // A recorded gap that covers [expected, base). Before the oldest
    // segment it may start below the watermark (ids lost, then retention
    // moved past them).
    if gap_recorded(fs, dir, expected, base, prev_end.is_none()) {
        report.quarantined_gaps.push((expected, base));
        return Ok(());
    }
    let what = match prev_end {
        Some(end) => {
            format!("id gap: the previous segment ends before id {end}, this one starts at {base}")
        }
        None => format!(
            "id gap: the oldest segment starts at id {base}, but records from id {expected} \
             on should be here (the watermark is {low}): an older segment is missing"
        ),
    };
    Err(Error::corruption(path, 0, what))
}
