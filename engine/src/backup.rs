//! What a consistent backup of a live data directory consists of.
//!
//! Sealed segments and their index files never change, so a plain copy of
//! them is consistent. The active segment is copied up to the end of its last
//! committed frame, found by scanning a snapshot of it: the file only grows
//! (or gains a footer) while a server runs, so that prefix stays valid. The
//! watermark and the server's state files are copied whole. Retention may
//! delete a segment while the backup runs. It always deletes the oldest, but
//! the files before a vanished one may already have been copied (a hole in
//! the ids), or every planned segment may vanish behind a fast writer; so a
//! caller that finds a file gone must plan again rather than go on.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::index::file::index_path;
use crate::recovery::scan_active;
use crate::retention::WATERMARK_FILE;
use crate::segment::sealed::SealedSegment;
use crate::segment::{parse_segment_file_name, segment_path};

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
}

/// Lists what to copy from `dir`: the watermark, each of `extra` that exists
/// (the server's settings and keys), then the segments oldest first, each
/// sealed one followed by its index.
pub fn plan(dir: &Path, extra: &[&str]) -> Result<Vec<BackupItem>> {
    let mut items = Vec::new();
    for name in [WATERMARK_FILE].iter().chain(extra) {
        if let Ok(m) = fs::metadata(dir.join(name)) {
            items.push(BackupItem {
                name: name.to_string(),
                len: m.len(),
                immutable: false,
                ids: None,
            });
        }
    }
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .map_err(Error::io("list", dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_file_name(&e.file_name().to_string_lossy()))
        .collect();
    bases.sort_unstable();
    for base in bases {
        let path = segment_path(dir, base);
        let name = file_name(&path);
        let seg = match SealedSegment::open(&path) {
            Ok(s) => s,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue; // dropped by retention just now
            }
            Err(e) => return Err(e),
        };
        match seg {
            Some(seg) => {
                items.push(BackupItem {
                    name,
                    len: seg.file_len(),
                    immutable: true,
                    ids: (seg.count() > 0).then(|| (seg.base_id(), seg.end_id() - 1)),
                });
                let idx = index_path(&path);
                if let Ok(m) = fs::metadata(&idx) {
                    items.push(BackupItem {
                        name: file_name(&idx),
                        len: m.len(),
                        immutable: true,
                        ids: None,
                    });
                }
            }
            None => {
                let data = fs::read(&path).map_err(Error::io("read", &path))?;
                let scan = scan_active(&data, &path, base)?;
                let n = scan.table.offsets.len() as u64;
                items.push(BackupItem {
                    name,
                    len: scan.end,
                    immutable: false,
                    ids: (n > 0).then(|| (base, base + n - 1)),
                });
            }
        }
    }
    Ok(items)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Opens `item` for copying: at most `item.len` bytes. A file that vanished
/// since the plan (retention) is an `Error::Io` with kind `NotFound`.
pub fn open_item(dir: &Path, item: &BackupItem) -> Result<impl Read> {
    let path = dir.join(&item.name);
    let f = File::open(&path).map_err(Error::io("open", &path))?;
    Ok(f.take(item.len))
}
