//! What readers see: the sealed segments (each with its index) and the
//! active segment, swapped atomically as a whole when a segment rolls or
//! retention drops segments.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::env::Fs;
use crate::error::{Error, Result};
use crate::index::file::{index_path, SealedIndex};
use crate::record::Record;
use crate::segment::active::ActiveSegment;
use crate::segment::sealed::SealedSegment;

/// A sealed segment with its index.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub seg: SealedSegment,
    /// Where its index is read from; see [`SegmentIndex`].
    index: RwLock<SegmentIndex>,
    /// Set when retention dropped it: the files are unlinked when the last
    /// reader lets go of it.
    doomed: AtomicBool,
    /// Where the files are unlinked.
    fs: Fs,
}

/// A sealed segment's index: its file, or, from the seal until that file is
/// written (off the write path's locks, see `writer.rs`), the in-memory
/// index the segment had while it was active.
#[derive(Debug, Clone)]
pub(crate) enum SegmentIndex {
    /// The index file, mapped.
    File(Arc<SealedIndex>),
    /// The segment as it was active: its in-memory index and offset/ts
    /// table, all of it durable.
    Memory(Arc<ActiveSegment>),
}

impl Sealed {
    pub(crate) fn new(seg: SealedSegment, index: SealedIndex, fs: Fs) -> Self {
        Self::with_index(seg, SegmentIndex::File(Arc::new(index)), fs)
    }

    pub(crate) fn with_index(seg: SealedSegment, index: SegmentIndex, fs: Fs) -> Self {
        Sealed {
            seg,
            index: RwLock::new(index),
            doomed: AtomicBool::new(false),
            fs,
        }
    }

    /// The index as it is now (readers keep what they got for one query).
    pub(crate) fn index(&self) -> SegmentIndex {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Switches to the index file; returns what it replaces, for the caller
    /// to drop (freeing an in-memory index takes milliseconds).
    pub(crate) fn set_index(&self, index: SealedIndex) -> SegmentIndex {
        let mut slot = self.index.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, SegmentIndex::File(Arc::new(index)))
    }

    /// Marks the files for deletion once the last reader drops this segment.
    pub(crate) fn doom(&self) {
        self.doomed.store(true, Ordering::Release);
    }

    pub(crate) fn bytes_on_disk(&self) -> u64 {
        let index = match self.index() {
            SegmentIndex::File(i) => i.len_bytes(),
            SegmentIndex::Memory(_) => 0,
        };
        self.seg.file_len() + index
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if self.doomed.load(Ordering::Acquire) {
            // Best effort: the persisted watermark already hides these records,
            // and open deletes any segment wholly below it that is still here.
            // No directory fsync here: the reaper does one for the whole
            // batch, and a crash before it only leaves files that open deletes.
            let _ = self.fs.remove_file(self.seg.path());
            let _ = self.fs.remove_file(&index_path(self.seg.path()));
        }
    }
}

/// The segments readers see: sealed ones in id order, then the active one.
#[derive(Debug)]
pub(crate) struct View {
    pub sealed: Vec<Arc<Sealed>>,
    pub active: Arc<ActiveSegment>,
}

impl View {
    /// Smallest id any segment holds.
    pub(crate) fn first_id(&self) -> u64 {
        self.sealed
            .first()
            .map(|s| s.seg.base_id())
            .unwrap_or_else(|| self.active.base_id())
    }

    /// The sealed segment holding `id`, if any.
    pub(crate) fn sealed_for(&self, id: u64) -> Option<&Arc<Sealed>> {
        let i = self.sealed.partition_point(|s| s.seg.end_id() <= id);
        self.sealed.get(i).filter(|s| s.seg.base_id() <= id)
    }

    /// Whether some segment holds `id` (false inside a quarantined gap).
    pub(crate) fn holds(&self, id: u64) -> bool {
        id >= self.active.base_id() || self.sealed_for(id).is_some()
    }

    /// The nearest held id at or after `id` (forward) or at or before it (backward).
    pub(crate) fn nearest_held(&self, id: u64, forward: bool) -> Option<u64> {
        if self.holds(id) {
            return Some(id);
        }
        let i = self.sealed.partition_point(|s| s.seg.end_id() <= id);
        if forward {
            Some(
                self.sealed
                    .get(i)
                    .map_or_else(|| self.active.base_id(), |s| s.seg.base_id()),
            )
        } else {
            i.checked_sub(1)
                .and_then(|j| self.sealed.get(j))
                .and_then(|s| s.seg.end_id().checked_sub(1))
        }
    }

    /// The smallest id from which the segments hold `n` ids up to `last`
    /// (ids in gaps do not count); 0 when they hold fewer.
    pub(crate) fn start_of_newest(&self, last: u64, n: u64) -> u64 {
        if n == 0 {
            return last.saturating_add(1);
        }
        let end = last.saturating_add(1);
        let held = std::iter::once((self.active.base_id(), end)).chain(
            self.sealed
                .iter()
                .rev()
                .map(|s| (s.seg.base_id(), s.seg.end_id().min(end))),
        );
        let mut need = n;
        for (from, to) in held.filter(|(from, to)| to > from) {
            if to - from >= need {
                return to - need;
            }
            need -= to - from;
        }
        0
    }

    /// How many ids in `[first, last]` some segment holds.
    pub(crate) fn held_between(&self, first: u64, last: u64) -> u64 {
        if first > last {
            return 0;
        }
        let clip = |a: u64, b: u64| b.min(last + 1).saturating_sub(a.max(first));
        let sealed: u64 = self
            .sealed
            .iter()
            .map(|s| clip(s.seg.base_id(), s.seg.end_id()))
            .sum();
        sealed + clip(self.active.base_id(), last + 1)
    }

    /// Reads `id`, which the caller has checked is durable and not below the watermark.
    pub(crate) fn read(&self, id: u64) -> Result<Record> {
        if id >= self.active.base_id() {
            return self.active.read(id);
        }
        match self.sealed_for(id) {
            Some(s) => s.seg.read(id),
            None => Err(Error::corruption(
                self.active.path(),
                0,
                format!("no segment holds id {id}"),
            )),
        }
    }

    /// ts of `id` (frame header only).
    pub(crate) fn ts_of(&self, id: u64) -> Result<i64> {
        if id >= self.active.base_id() {
            let local = (id - self.active.base_id()) as usize;
            return self.active.table().ts.get(local).copied().ok_or_else(|| {
                Error::corruption(self.active.path(), 0, format!("id {id} not in table"))
            });
        }
        match self.sealed_for(id) {
            Some(s) => s.seg.ts_at(id - s.seg.base_id()),
            None => Err(Error::corruption(
                self.active.path(),
                0,
                format!("no segment holds id {id}"),
            )),
        }
    }
}
