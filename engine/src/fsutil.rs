//! Small filesystem helpers that carry the engine's fsync discipline:
//! a new file is written under a temporary name, fsynced, renamed into place,
//! and then its directory is fsynced, so after a crash the name either does
//! not exist or refers to complete contents.

use std::path::{Path, PathBuf};

use crate::env::{FileHandle, FileSystem, OpenMode, StdFs};
use crate::error::{Error, Result};
use crate::segment::TEMP_SUFFIX;

/// fsyncs a directory, making creates, renames and deletes in it durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fail::fail_point!("fs::sync_dir", |_| Err(injected("fsync", dir)));
    fs.sync_dir(dir).map_err(Error::io("fsync directory", dir))
}

/// Passes the named crash point `name` (see [`crate::env::CRASH_POINTS`]).
pub(crate) fn crash_point(fs: &dyn FileSystem, name: &'static str, path: &Path) -> Result<()> {
    fs.crash_point(name).map_err(Error::io("write", path))
}

/// The temporary name used while `path` is being written.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Which file [`create_durable`] writes: names its two crash points.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Durable {
    /// A new segment file.
    Segment,
    /// A sealed segment's index file.
    Index,
    /// The watermark file.
    Watermark,
    /// The id reservation file (`ids.rs`).
    Ids,
    /// Anything else (settings, keys, snapshots).
    Other,
}

impl Durable {
    fn points(self) -> (&'static str, &'static str) {
        match self {
            Durable::Segment => (
                "segment::create::before_rename",
                "segment::create::before_dir_sync",
            ),
            Durable::Index => ("index::seal::before_rename", "index::seal::before_dir_sync"),
            Durable::Watermark => ("watermark::before_rename", "watermark::before_dir_sync"),
            Durable::Ids => ("ids::before_rename", "ids::before_dir_sync"),
            Durable::Other => ("atomic::before_rename", "atomic::before_dir_sync"),
        }
    }
}

/// Creates `path` with `contents` atomically (temp, fsync, rename, dir fsync)
/// and returns it opened for reading and writing.
pub(crate) fn create_durable(
    fs: &dyn FileSystem,
    path: &Path,
    contents: &[u8],
    what: Durable,
) -> Result<Box<dyn FileHandle>> {
    let (before_rename, before_dir_sync) = what.points();
    let tmp = temp_path(path);
    let file = fs
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(Error::io("create", &tmp))?;
    file.write_all_at(contents, 0)
        .map_err(Error::io("write", &tmp))?;
    file.sync_all().map_err(Error::io("fsync", &tmp))?;
    fail::fail_point!("fs::create_durable::before_rename", |_| Err(injected(
        "rename", &tmp
    )));
    crash_point(fs, before_rename, &tmp)?;
    fs.rename(&tmp, path).map_err(Error::io("rename", &tmp))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    crash_point(fs, before_dir_sync, path)?;
    sync_dir(fs, dir)?;
    Ok(file)
}

/// Replaces (or creates) `path` with `contents` so that after a crash the
/// file holds either the old contents or the new ones, never a mix: write a
/// temporary file, fsync it, rename it over `path`, fsync the directory.
///
/// For small state files that live beside a log (settings, keys).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_in(&StdFs, path, contents)
}

/// [`write_atomic`] through a given filesystem (tests use a simulated one).
pub fn write_atomic_in(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> Result<()> {
    create_durable(fs, path, contents, Durable::Other).map(drop)
}

/// The error a fault injection point returns.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) fn injected(op: &'static str, path: &Path) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source: std::io::Error::other("injected fault"),
    }
}
