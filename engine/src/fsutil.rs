//! Small filesystem helpers that carry the engine's fsync discipline:
//! a new file is written under a temporary name, fsynced, renamed into place,
//! and then its directory is fsynced, so after a crash the name either does
//! not exist or refers to complete contents.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::segment::TEMP_SUFFIX;

/// fsyncs a directory, making creates, renames and deletes in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fail::fail_point!("fs::sync_dir", |_| Err(injected("fsync", dir)));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

/// The temporary name used while `path` is being written.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Creates `path` with `contents` atomically (temp, fsync, rename, dir fsync)
/// and returns it opened for reading and writing.
pub fn create_durable(path: &Path, contents: &[u8]) -> Result<File> {
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(Error::io("create", &tmp))?;
    file.write_all(contents).map_err(Error::io("write", &tmp))?;
    file.sync_all().map_err(Error::io("fsync", &tmp))?;
    fail::fail_point!("fs::create_durable::before_rename", |_| Err(injected(
        "rename", &tmp
    )));
    fs::rename(&tmp, path).map_err(Error::io("rename", &tmp))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    sync_dir(dir)?;
    Ok(file)
}

/// Replaces (or creates) `path` with `contents` so that after a crash the
/// file holds either the old contents or the new ones, never a mix: write a
/// temporary file, fsync it, rename it over `path`, fsync the directory.
///
/// For small state files that live beside a log (settings, keys).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    create_durable(path, contents).map(drop)
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
