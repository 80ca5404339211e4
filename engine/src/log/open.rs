//! Opening a log directory: locking it, listing and checking its segment
//! files, loading or rebuilding their indexes, and recovering the active
//! segment's tail (see `docs/FORMAT.md`, "Recovery").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::env::{FileBytes, FileSystem, LockGuard, OpenMode};
use crate::error::{Error, Result};
use crate::fsutil::{self, Durable};
use crate::index::active::ActiveIndex;
use crate::index::file::{self as index_file, IndexBytes, SealedIndex, Trust};
use crate::index::snapshot::{load_snapshot, snapshot_path};
use crate::index::terms::{TermSource, Terms};
use crate::recovery::{self, RecoveryReport};
use crate::retention::{self};
use crate::segment::active::{ActiveSegment, ActiveTable};
use crate::segment::sealed::{map_file, SealedSegment};
use crate::segment::{
    parse_segment_file_name, segment_path, SegmentHeader, SEGMENT_HEADER_LEN, TEMP_SUFFIX,
};
use crate::view::{Sealed, View};
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
) -> Result<Recovered> {
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
