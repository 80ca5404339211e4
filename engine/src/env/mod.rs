//! The filesystem seam: every file and directory operation the engine's
//! [`Log`](crate::Log) makes goes through a [`FileSystem`].
//!
//! The real implementation, [`StdFs`], is the default and a thin layer over
//! `std::fs` (positioned I/O, `fdatasync`, `flock`, one `mmap` per sealed
//! file). [`sim::SimFs`] is an in-memory filesystem for tests and fuzzing
//! that keeps *live* and *durable* bytes apart: it can fail the N-th write,
//! fsync, rename or unlink (EIO, ENOSPC, short writes), stop at a named crash
//! point, and hand back the crash image — what a power cut would leave —
//! on which the engine is then reopened.
//!
//! The trait is deliberately small: only what the engine really calls.
//! Directory entries (create, rename, unlink) are durable only after
//! [`FileSystem::sync_dir`] of their directory; file bytes only after
//! [`FileHandle::sync_data`] / [`FileHandle::sync_all`].
//!
//! Not behind the seam: the offline tooling paths (`inspect`, `backup`),
//! which read a directory with `std::fs` directly.

pub mod sim;
mod std_fs;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use std_fs::{StdFs, DIR_MODE, FILE_MODE};

/// How [`FileSystem::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created if missing and truncated to zero bytes.
    CreateTruncate,
}

/// An open file. All I/O is positioned (`pread`/`pwrite`), so one handle is
/// shared between threads without a cursor.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `at`.
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
    /// Writes all of `buf` at `at` (a short write is retried; an error may
    /// leave a prefix of `buf` written).
    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the file's bytes (and its size) are durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: bytes and metadata are durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        self.len().map(|n| n == 0)
    }
    /// The whole file as bytes: a read-only memory map for [`StdFs`]
    /// (only ever used on files that never change again, or dropped before
    /// the file is truncated), a copy for simulated filesystems.
    fn map(&self) -> io::Result<FileBytes>;
    /// A read-only map of the file's first `len` bytes, `len` possibly past
    /// its end, that shows what is written later (the active segment, read
    /// without a syscall per page). Only bytes below the file's length may
    /// be read through it, and the file must not shrink below what a reader
    /// reads while the map is alive. `None` where the filesystem cannot do
    /// this (simulated ones): callers then use positioned reads.
    fn map_ahead(&self, _len: usize) -> Option<FileBytes> {
        None
    }
}

/// A held directory lock; released when dropped.
pub type LockGuard = Box<dyn fmt::Debug + Send + Sync>;

/// The filesystem operations the engine uses. See the module docs.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Opens `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to` (durable after `sync_dir`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Unlinks a file (durable after `sync_dir`).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// File names in `dir` (no `.` / `..`), in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether `path` is a regular file.
    fn is_file(&self, path: &Path) -> bool;
    /// fsyncs a directory: creates, renames and unlinks in it become durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing); `Ok(None)`
    /// when someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
    /// A named crash point on the write path (`segment::roll::before_index`,
    /// ...). The real filesystem does nothing; a simulated one may stop the
    /// "machine" here (return an error and fail everything after).
    #[inline]
    fn crash_point(&self, _name: &'static str) -> io::Result<()> {
        Ok(())
    }
}

/// Every named crash point the engine passes, in write-path order. Tests
/// check each is reached by their workload.
pub const CRASH_POINTS: &[&str] = &[
    "segment::roll::before_trailer",
    "segment::roll::before_seal_sync",
    "segment::roll::before_index",
    "index::seal::before_rename",
    "index::seal::before_dir_sync",
    "segment::roll::before_create",
    "segment::create::before_rename",
    "segment::create::before_dir_sync",
    "watermark::before_rename",
    "watermark::before_dir_sync",
    "ids::before_rename",
    "ids::before_dir_sync",
    "retention::before_unlink",
    "retention::before_dir_sync",
    "atomic::before_rename",
    "atomic::before_dir_sync",
    "recovery::before_truncate",
];

/// A shared filesystem: the handle [`Config::fs`](crate::Config::fs) holds.
/// Defaults to [`StdFs`].
#[derive(Clone)]
pub struct Fs(Arc<dyn FileSystem>);

impl Fs {
    /// Wraps a filesystem implementation.
    pub fn new(fs: impl FileSystem + 'static) -> Fs {
        Fs(Arc::new(fs))
    }

    /// Wraps an already shared implementation (e.g. a [`sim::SimFs`] the
    /// test keeps a handle to).
    pub fn from_arc(fs: Arc<dyn FileSystem>) -> Fs {
        Fs(fs)
    }
}

impl Default for Fs {
    fn default() -> Self {
        Fs::new(StdFs)
    }
}

impl Deref for Fs {
    type Target = dyn FileSystem;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Fs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A file's bytes: a read-only memory map, or an owned copy.
#[derive(Debug)]
pub enum FileBytes {
    /// Mapped by [`StdFs`].
    Mapped(memmap2::Mmap),
    /// Read into memory (simulated filesystems; read-only opens).
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Takes a map's pages out of this process's resident set (the page
    /// cache keeps them; see `std_fs::release_pages`). Nothing for a copy.
    pub(crate) fn release_pages(&self) {
        if let FileBytes::Mapped(m) = self {
            std_fs::release_pages(m);
        }
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}
