//! A disk that syncs slower than the one the bench runs on, emulated on the
//! real one: [`SlowSync`] is the real filesystem ([`StdFs`]) with a fixed
//! delay added to every `fdatasync`, `fsync` and directory sync, as a
//! device with a slower cache flush would add it (the syncing thread
//! blocks, the CPU is free).
//!
//! The group commit's gain over one writer depends on how long a sync takes
//! against the CPU the appends cost: issue 2 set "64 writers ≥ 30× one
//! writer" on disks where the SQLite design managed ~1,600 commits/s, and
//! the `append` bench's `durable_single_record_slow_disk` cases replay the
//! single-record benchmark on such a disk (`benches/README.md`,
//! "Session 11"). Everything but the delay is real: files, writes, syncs.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::Duration;

use actlog_engine::env::{FileBytes, FileHandle, FileSystem, LockGuard, OpenMode, StdFs};

/// [`StdFs`] with `extra` added to every sync. See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct SlowSync {
    /// Added to each sync's own time.
    pub extra: Duration,
}

/// A file of [`SlowSync`].
#[derive(Debug)]
struct SlowFile {
    inner: Box<dyn FileHandle>,
    extra: Duration,
}

impl FileSystem for SlowSync {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(SlowFile {
            inner: StdFs.open(path, mode)?,
            extra: self.extra,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFs.read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        StdFs.read_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }

    fn is_dir(&self, path: &Path) -> bool {
        StdFs.is_dir(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        StdFs.is_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)?;
        std::thread::sleep(self.extra);
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        StdFs.try_lock(path)
    }
}

impl FileHandle for SlowFile {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, at)
    }

    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, at)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()?;
        std::thread::sleep(self.extra);
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()?;
        std::thread::sleep(self.extra);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn map(&self) -> io::Result<FileBytes> {
        self.inner.map()
    }

    fn map_ahead(&self, len: usize) -> Option<FileBytes> {
        self.inner.map_ahead(len)
    }
}
