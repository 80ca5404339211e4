//! The active segment: the one file that takes appends.
//!
//! Readers use positioned reads (never a map: the file grows, and recovery may
//! truncate it). The in-memory table of frame offsets and timestamps is pushed
//! by the writer before a record becomes visible, so a reader that has seen an
//! id as durable always finds its offset.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use crate::env::FileHandle;
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN};
use crate::index::active::ActiveIndex;
use crate::index::terms::Terms;
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
        }
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

    /// Appends the CRC-checked payloads of durable records `ids` (in page
    /// order, ascending or descending) to `buf`, one slot each in `slots`
    /// (positioned reads; see `segment::read_runs`).
    pub(crate) fn read_payloads_into(
        &self,
        ids: &[u64],
        buf: &mut Vec<u8>,
        slots: &mut Vec<FrameSlot>,
    ) -> Result<()> {
        let ranges = {
            let t = self.table();
            ids.iter()
                .map(|&id| {
                    t.frame_range((id - self.base_id) as usize).ok_or_else(|| {
                        Error::corruption(
                            &self.path,
                            0,
                            format!("id {id} is not in the active segment's table"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        super::read_runs(&*self.file, &self.path, ids, &ranges, buf, slots)
    }

    /// Reads record `id`; the caller guarantees `id` is durable and in this segment.
    pub fn read(&self, id: u64) -> Result<Record> {
        let local = (id - self.base_id) as usize;
        let (offset, next) = {
            let t = self.table();
            match t.offsets.get(local) {
                Some(&o) => (u64::from(o), t.offsets.get(local + 1).copied()),
                None => {
                    return Err(Error::corruption(
                        &self.path,
                        0,
                        format!("id {id} is not in the active segment's table"),
                    ))
                }
            }
        };
        if let Some(next) = next {
            // The frame's length is known: one read.
            let len = (u64::from(next).saturating_sub(offset) as usize)
                .min(HEADER_LEN + frame::MAX_PAYLOAD);
            let mut buf = vec![0u8; len];
            self.file
                .read_exact_at(&mut buf, offset)
                .map_err(Error::io("read", &self.path))?;
            return self.decode_at(id, offset, &buf);
        }
        let mut head = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut head, offset)
            .map_err(Error::io("read", &self.path))?;
        let header = frame::parse_header(&head)
            .map_err(|e| Error::corruption(&self.path, offset, e.to_string()))?;
        let mut payload = vec![0u8; header.len];
        self.file
            .read_exact_at(&mut payload, offset + HEADER_LEN as u64)
            .map_err(Error::io("read", &self.path))?;
        frame::verify(&header, &head[4..], &payload)
            .map_err(|e| Error::corruption(&self.path, offset, e.to_string()))?;
        if header.id != id {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!("frame holds id {} where id {id} belongs", header.id),
            ));
        }
        Record::decode(header.id, header.ts, &payload)
            .map_err(|reason| Error::corruption(&self.path, offset, reason))
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
