//! The active segment: the one file that takes appends.
//!
//! Readers copy frames out of a map of the file made ahead of its end
//! ([`ActiveSegment::mapped`]), so that the pages the file grows into show
//! new frames without a syscall; where there is no map (read-only handles,
//! whose file a restarting server may truncate; simulated filesystems; a
//! frame past the map's end) they use positioned reads. Only durable frames
//! are ever read, so no read reaches past the file's end; the map is taken
//! away ([`ActiveSegment::unmap`]) before recovery may truncate the file.
//!
//! The in-memory table of frame offsets and timestamps is pushed by the
//! writer before a record becomes visible, so a reader that has seen an id as
//! durable always finds its offset.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use crate::env::{FileBytes, FileHandle};
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN};
use crate::index::active::ActiveIndex;
use crate::index::terms::Terms;
use crate::query::segment::ReadVia;
use crate::record::Record;
use crate::segment::FrameSlot;

/// Offsets and timestamps of the records in the active segment, by local number.
#[derive(Debug, Default)]
pub struct ActiveTable {
    /// Byte offset of each frame.
    pub offsets: Vec<u32>,
    /// ts of each record.
    pub ts: Vec<i64>,
    /// Where the last frame in the table ends.
    pub end: u64,
}

impl ActiveTable {
    /// The byte range of frame `local`.
    fn frame_range(&self, local: usize) -> Option<(u64, u64)> {
        let start = u64::from(*self.offsets.get(local)?);
        let end = self
            .offsets
            .get(local + 1)
            .map_or(self.end, |&o| u64::from(o));
        Some((start, end))
    }
}

/// The active segment as readers see it.
#[derive(Debug)]
pub struct ActiveSegment {
    path: PathBuf,
    base_id: u64,
    file: Box<dyn FileHandle>,
    table: RwLock<ActiveTable>,
    index: RwLock<ActiveIndex>,
    /// The file mapped ahead of its end, if it is; a leaf lock, held only
    /// while frames are copied out.
    map: RwLock<Option<FileBytes>>,
}

impl ActiveSegment {
    pub(crate) fn new(
        path: PathBuf,
        base_id: u64,
        file: Box<dyn FileHandle>,
        table: ActiveTable,
        index: ActiveIndex,
    ) -> Self {
        ActiveSegment {
            path,
            base_id,
            file,
            table: RwLock::new(table),
            index: RwLock::new(index),
            map: RwLock::new(None),
        }
    }

    /// Maps the file's first `len` bytes (the segment size bound) for
    /// readers; frames beyond them, or every frame if the map fails, are read
    /// with positioned reads. Only for a handle that owns the directory.
    pub(crate) fn mapped(self, len: u64) -> Self {
        let map = usize::try_from(len)
            .ok()
            .and_then(|len| self.file.map_ahead(len));
        ActiveSegment {
            map: RwLock::new(map),
            ..self
        }
    }

    /// Drops the map, waiting for readers copying out of it; later reads use
    /// positioned reads. Called before recovery may truncate the file.
    pub(crate) fn unmap(&self) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Takes the map's pages out of this process's resident set.
    pub(crate) fn release_pages(&self) {
        if let Some(m) = self.map().as_ref() {
            m.release_pages();
        }
    }

    /// Read access to the map (see the module docs).
    fn map(&self) -> RwLockReadGuard<'_, Option<FileBytes>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Read access to the in-memory index.
    pub(crate) fn index(&self) -> RwLockReadGuard<'_, ActiveIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes records `first_local..` under their terms.
    /// Indexes a batch; returns the index's estimated heap afterwards.
    pub(crate) fn index_batch(&self, first_local: u32, terms: &Terms) -> usize {
        let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
        idx.insert_batch(first_local, terms);
        idx.approx_bytes()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// First id this segment holds.
    pub fn base_id(&self) -> u64 {
        self.base_id
    }

    pub(crate) fn file(&self) -> &dyn FileHandle {
        &*self.file
    }

    /// Read access to the offset/ts table.
    pub(crate) fn table(&self) -> RwLockReadGuard<'_, ActiveTable> {
        // A poisoned lock only means a panic elsewhere while pushing; the
        // vectors are still consistent (push is the only mutation).
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, offsets: &[u32], ts: &[i64], end: u64) {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        t.offsets.extend_from_slice(offsets);
        t.ts.extend_from_slice(ts);
        t.end = end;
    }

    /// The byte ranges of durable records `ids`' frames.
    fn frame_ranges(&self, ids: &[u64]) -> Result<Vec<(u64, u64)>> {
        let t = self.table();
        ids.iter().map(|&id| self.frame_range(&t, id)).collect()
    }

    /// The byte range of durable record `id`'s frame in `table`.
    fn frame_range(&self, table: &ActiveTable, id: u64) -> Result<(u64, u64)> {
        table
            .frame_range((id - self.base_id) as usize)
            .ok_or_else(|| {
                Error::corruption(
                    &self.path,
                    0,
                    format!("id {id} is not in the active segment's table"),
                )
            })
    }

    /// Appends the CRC-checked payloads of durable records `ids` (in page
    /// order, ascending or descending) to `buf`, one slot each in `slots`:
    /// copied out of the map, or read with positioned reads (see
    /// `segment::read_runs`) where there is none or `via` asks for them.
    pub(crate) fn read_payloads_into(
        &self,
        ids: &[u64],
        buf: &mut Vec<u8>,
        slots: &mut Vec<FrameSlot>,
        via: ReadVia,
    ) -> Result<()> {
        let ranges = self.frame_ranges(ids)?;
        if via == ReadVia::Map {
            let map = self.map();
            let end = ranges.iter().map(|&(_, b)| b).max().unwrap_or(0);
            if let Some(map) = map.as_deref().filter(|m| end <= m.len() as u64) {
                for (&id, &(a, b)) in ids.iter().zip(&ranges) {
                    super::push_frame(&self.path, id, a, &map[a as usize..b as usize], buf, slots)?;
                }
                return Ok(());
            }
        }
        super::read_runs(&*self.file, &self.path, ids, &ranges, buf, slots)
    }

    /// Reads record `id`; the caller guarantees `id` is durable and in this segment.
    pub fn read(&self, id: u64) -> Result<Record> {
        let (offset, end) = self.frame_range(&self.table(), id)?;
        let len = (end.saturating_sub(offset) as usize).min(HEADER_LEN + frame::MAX_PAYLOAD);
        {
            let map = self.map();
            if let Some(map) = map
                .as_deref()
                .filter(|m| offset + len as u64 <= m.len() as u64)
            {
                let at = offset as usize;
                return self.decode_at(id, offset, &map[at..at + len]);
            }
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(Error::io("read", &self.path))?;
        self.decode_at(id, offset, &buf)
    }

    fn decode_at(&self, id: u64, offset: u64, buf: &[u8]) -> Result<Record> {
        let f =
            frame::decode(buf).map_err(|e| Error::corruption(&self.path, offset, e.to_string()))?;
        if f.header.id != id {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!("frame holds id {} where id {id} belongs", f.header.id),
            ));
        }
        Record::decode(f.header.id, f.header.ts, f.payload)
            .map_err(|reason| Error::corruption(&self.path, offset, reason))
    }
}
