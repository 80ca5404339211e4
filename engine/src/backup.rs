//! What a consistent backup of a live data directory consists of.
//!
//! Sealed segments and their index files never change, so a plain copy of
//! them is consistent. Every segment but the newest is sealed; the newest is
//! the active one, whatever its last bytes are (see `log/open.rs`), and is
//! copied up to the end of its last committed frame, found by scanning a
//! snapshot of it read with plain reads (never a map: the writer may seal
//! and cut it meanwhile): the file only grows below that point while a
//! server runs, so that prefix stays valid. A scan that finds damage is
//! repeated before it is believed: a read racing the writer's `pwrite` can
//! see part of a page written and the rest still zeros.
//!
//! The watermark and the id reservation are read into the plan itself, after
//! the segments were listed, so the backup holds them as they were at one
//! moment: a watermark read later could lie beyond the copied segments
//! (retention or a clear ran meanwhile), one read earlier could name
//! segments the listing no longer has. The server's state files (`extra`)
//! are copied whole when the backup copies them.
//!
//! Retention may delete a segment while the backup runs. It always deletes
//! the oldest, but the files before a vanished one may already have been
//! copied (a hole in the ids), or every planned segment may vanish behind a
//! fast writer; so a caller that finds a file gone must plan again rather
//! than go on.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ids::IDS_FILE;
use crate::index::file::index_path;
use crate::recovery::{scan_active, Scan};
use crate::retention::WATERMARK_FILE;
use crate::segment::sealed::SealedSegment;
use crate::segment::{parse_segment_file_name, segment_path};

/// The marker a restore writes into a data directory before it changes
/// anything there and removes once the backup is wholly in place: while it
/// is there, [`Log::open`](crate::Log::open) refuses the directory (a restore
/// killed halfway leaves part of the old files and part of the backup).
pub const RESTORING_FILE: &str = "RESTORING";

/// One file to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupItem {
    /// File name inside the data directory.
    pub name: String,
    /// Bytes to copy (a prefix, for the active segment).
    pub len: u64,
    /// Never changes once written (sealed segments and their indexes): an
    /// incremental backup may skip it when a copy of the same name and size exists.
    pub immutable: bool,
    /// The ids it holds, `[first, last]`, for segments with records.
    pub ids: Option<(u64, u64)>,
    /// The file's bytes as the plan read them (the watermark and the id
    /// reservation): what the backup holds, whatever the file says later.
    pub contents: Option<Vec<u8>>,
}

/// How often a lock-free reader reads the active segment again when its
/// scan finds damage, before it believes it (see the module docs).
pub const ACTIVE_READ_TRIES: u32 = 3;

/// Reads and scans the active segment at `path` (base id `base`) without a
/// lock and without a map, reading again (up to [`ACTIVE_READ_TRIES`] times
/// in all) while the scan finds damage or bytes after the last complete
/// batch: what a running writer is in the middle of writing is no damage,
/// and is usually complete a moment later.
pub fn read_active(path: &Path, base: u64) -> Result<(Vec<u8>, Scan)> {
    let mut tries = 1;
    loop {
        let data = fs::read(path).map_err(Error::io("read", path))?;
        let scan = scan_active(&data, path, base);
        let settled = match &scan {
            Err(Error::Corruption { .. }) => false,
            Ok(s) => s.torn.is_none(),
            Err(_) => true,
        };
        if settled || tries == ACTIVE_READ_TRIES {
            return scan.map(|scan| (data, scan));
        }
        std::thread::sleep(std::time::Duration::from_millis(20 << tries));
        tries += 1;
    }
}

/// Lists what to copy from `dir`: the watermark and id reservation (with
/// their bytes), each of `extra` that exists (the server's settings and
/// keys), then the segments oldest first, each sealed one followed by its
/// index.
///
/// The active segment is copied up to its last committed frame — but when a
/// process holds the directory's lock (a server is running), only up to the
/// start of its newest flush: that flush may be written but not yet
/// fdatasynced, and a backup must never hold a record that a crash could
/// still take back (the id would later name another record). Everything
/// before the newest flush is durable, since a flush starts only after the
/// previous one's fdatasync succeeded. [`crate::Log::backup_plan`] knows the
/// durable length exactly and copies all of it.
///
/// Seeing whether the lock is held takes it for a moment when it is free: a
/// server starting at that very moment reports the directory locked.
pub fn plan(dir: &Path, extra: &[&str]) -> Result<Vec<BackupItem>> {
    plan_with(dir, extra, None)
}

/// [`plan`], knowing that the active segment with base id `.0` is durable
/// up to `.1` bytes.
pub(crate) fn plan_with(
    dir: &Path,
    extra: &[&str],
    durable: Option<(u64, u64)>,
) -> Result<Vec<BackupItem>> {
    plan_with_attempt(dir, extra, durable, 0)
}

fn plan_with_attempt(
    dir: &Path,
    extra: &[&str],
    durable: Option<(u64, u64)>,
    attempt: u32,
) -> Result<Vec<BackupItem>> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .map_err(Error::io("list", dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_file_name(&e.file_name().to_string_lossy()))
        .collect();
    bases.sort_unstable();
    let mut segments = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let path = segment_path(dir, base);
        let name = file_name(&path);
        if i + 1 == bases.len() {
            let (data, scan) = match read_active(&path, base) {
                // Sealed and dropped by retention since the listing (a fast
                // writer with small segments): list again.
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 10 =>
                {
                    return plan_with_attempt(dir, extra, durable, attempt + 1);
                }
                other => other?,
            };
            let end = match durable {
                Some((b, len)) if b == base => len.min(scan.end),
                _ if writer_present(dir) => newest_flush_start(&data, &scan),
                _ => scan.end,
            };
            let n = scan
                .table
                .offsets
                .iter()
                .filter(|&&o| u64::from(o) < end)
                .count() as u64;
            segments.push(BackupItem {
                name,
                len: end,
                immutable: false,
                ids: (n > 0).then(|| (base, base + n - 1)),
                contents: None,
            });
            continue;
        }
        let seg = match SealedSegment::open(&path) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(Error::corruption(
                    &path,
                    0,
                    "segment has no valid seal footer, but newer segments exist",
                ))
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue; // dropped by retention just now
            }
            Err(e) => return Err(e),
        };
        segments.push(BackupItem {
            name,
            len: seg.file_len(),
            immutable: true,
            ids: (seg.count() > 0).then(|| (seg.base_id(), seg.end_id() - 1)),
            contents: None,
        });
        let idx = index_path(&path);
        if let Ok(m) = fs::metadata(&idx) {
            segments.push(BackupItem {
                name: file_name(&idx),
                len: m.len(),
                immutable: true,
                ids: None,
                contents: None,
            });
        }
    }
    let mut items = Vec::new();
    for name in [WATERMARK_FILE, IDS_FILE] {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => items.push(BackupItem {
                name: name.to_string(),
                len: bytes.len() as u64,
                immutable: false,
                ids: None,
                contents: Some(bytes),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &path)(e)),
        }
    }
    for name in extra {
        if let Ok(m) = fs::metadata(dir.join(name)) {
            items.push(BackupItem {
                name: name.to_string(),
                len: m.len(),
                immutable: false,
                ids: None,
                contents: None,
            });
        }
    }
    items.extend(segments);
    Ok(items)
}

/// Whether another process (or handle) holds the lock of the data directory
/// `dir`; an error reading it counts as held.
fn writer_present(dir: &Path) -> bool {
    use crate::env::FileSystem;
    !matches!(
        crate::env::StdFs.try_lock(&dir.join(crate::LOCK_FILE)),
        Ok(Some(_))
    )
}

/// Where the newest flush of the scanned active segment starts: the last
/// committed frame carrying `FLUSH` (format 2). Without flush marks, the
/// scan's end.
fn newest_flush_start(data: &[u8], scan: &Scan) -> u64 {
    if !scan.header.marks_flushes() {
        return scan.end;
    }
    scan.table
        .offsets
        .iter()
        .rev()
        .map(|&o| o as usize)
        .find(|&o| crate::frame::decode(&data[o..]).is_ok_and(|f| f.header.starts_flush()))
        .map_or(crate::segment::SEGMENT_HEADER_LEN as u64, |o| o as u64)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Opens `item` for copying: its planned bytes, or at most `item.len` bytes
/// of the file. A file that vanished since the plan (retention) is an
/// `Error::Io` with kind `NotFound`.
pub fn open_item(dir: &Path, item: &BackupItem) -> Result<Box<dyn Read + Send>> {
    if let Some(bytes) = &item.contents {
        return Ok(Box::new(std::io::Cursor::new(bytes.clone())));
    }
    let path = dir.join(&item.name);
    let f = File::open(&path).map_err(Error::io("open", &path))?;
    Ok(Box::new(f.take(item.len)))
}
