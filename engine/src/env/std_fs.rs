//! The real filesystem: `std::fs` with positioned I/O.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileExt, OpenOptionsExt as _};
use std::path::Path;

use super::{FileBytes, FileHandle, FileSystem, LockGuard, OpenMode};

/// The operating system's filesystem (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl FileHandle for File {
    #[inline]
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, at)
    }

    #[inline]
    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, at)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn len(&self) -> io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    fn map(&self) -> io::Result<FileBytes> {
        map_file(self).map(FileBytes::Mapped)
    }

    fn map_ahead(&self, len: usize) -> Option<FileBytes> {
        map_ahead(self, len).ok().map(FileBytes::Mapped)
    }
}

/// Maps `file` read-only.
///
/// The engine never truncates or rewrites a file while a map of it is alive:
/// sealed segments and index files are immutable, and recovery drops its map
/// of the active segment before cutting a torn tail; the data directory's
/// lock keeps other actlog processes out. That is the condition under which
/// reading through the map is sound.
#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: see the function docs — the mapped file does not change for
    // the lifetime of the map by the engine's own protocol.
    unsafe { memmap2::Mmap::map(file) }
}

/// Maps the first `len` bytes of `file` read-only, past its end if it is
/// shorter: the pages the file grows into show the bytes written later (one
/// page cache). Reading a page wholly past the file's end would raise
/// SIGBUS, so the map's owner reads only bytes it knows are written (the
/// active segment's durable frames) and takes the map away before the file
/// may be truncated (`ActiveSegment::unmap`, called before `Log::recover`
/// runs recovery); the data directory's lock keeps other actlog processes
/// out, and read-only handles never map a file that may change.
#[allow(unsafe_code)]
fn map_ahead(file: &File, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: see the function docs: no byte past the file's end is read,
    // and the file is not truncated while the map is alive.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}

/// Drops `map`'s pages from this process's page tables
/// (`madvise(MADV_DONTNEED)`): the resident set shrinks, the kernel's page
/// cache keeps the file's pages, and the next read of a page faults it back
/// in from there. A hint: an error is ignored.
#[allow(unsafe_code)]
pub(crate) fn release_pages(map: &memmap2::Mmap) {
    // SAFETY: memmap2 marks DONTNEED unsafe because on a private writable
    // map it discards the process's changes. These maps are read-only and
    // shared (`Mmap::map`), so no change exists to lose: afterwards every
    // page reads exactly the file's bytes, as before.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

/// Mode of every file the engine creates: the owner reads and writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the engine creates: the owner only.
pub const DIR_MODE: u32 = 0o700;

impl FileSystem for StdFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
        };
        // The audit log is readable by its owner only (the umask may take
        // more away, never add).
        o.mode(FILE_MODE);
        Ok(Box::new(o.open(path)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}
