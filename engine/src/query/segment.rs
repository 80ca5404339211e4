//! One segment as the query engine sees it: a base id, a number of visible
//! records, a time index and a term → bitmap lookup, whether the segment is
//! sealed (file index) or active (in-memory index).

use std::path::Path;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index::lower_bound_sparse;
use crate::query::page::PageBuf;
use crate::segment::active::ActiveSegment;
use crate::view::{Sealed, SegmentIndex};

/// How a page reads sealed segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadVia {
    /// Through the shared map (sealed segments, and the active one where it
    /// is mapped): no syscall; the pages stay mapped (and resident) in this
    /// process. For interactive pages.
    Map,
    /// Positioned reads of the file: a syscall per run of frames, but the
    /// process's resident set does not grow with the log. For scans.
    File,
}

/// A segment, clipped to what a snapshot may see.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SegmentReader<'a> {
    /// A sealed segment (all of it is durable).
    Sealed(&'a Sealed),
    /// The active segment and how many of its records are durable.
    Active(&'a ActiveSegment, u32),
}

impl SegmentReader<'_> {
    pub(crate) fn base_id(&self) -> u64 {
        match self {
            SegmentReader::Sealed(s) => s.seg.base_id(),
            SegmentReader::Active(a, _) => a.base_id(),
        }
    }

    /// Records this reader may see.
    pub(crate) fn count(&self) -> u32 {
        match self {
            SegmentReader::Sealed(s) => s.seg.count() as u32,
            SegmentReader::Active(_, n) => *n,
        }
    }

    /// ts of the first and last visible record.
    pub(crate) fn ts_bounds(&self) -> Option<(i64, i64)> {
        match self {
            SegmentReader::Sealed(s) => {
                (s.seg.count() > 0).then(|| (s.seg.footer().first_ts, s.seg.footer().last_ts))
            }
            SegmentReader::Active(a, n) => {
                let t = a.table();
                (*n > 0).then(|| (t.ts[0], t.ts[*n as usize - 1]))
            }
        }
    }

    /// The segment's file.
    pub(crate) fn path(&self) -> &Path {
        match self {
            SegmentReader::Sealed(s) => s.seg.path(),
            SegmentReader::Active(a, _) => a.path(),
        }
    }

    /// Appends the CRC-checked payloads of records `ids` (all in this
    /// segment, all visible) to `page`, in that order.
    pub(crate) fn read_into(&self, ids: &[u64], page: &mut PageBuf, via: ReadVia) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        page.files
            .push((page.slots.len(), self.path().to_path_buf()));
        match self {
            SegmentReader::Sealed(s) if via == ReadVia::File => {
                s.seg
                    .read_payloads_via_file(ids, &mut page.bytes, &mut page.slots)
            }
            SegmentReader::Sealed(s) => {
                s.seg
                    .read_payloads_into(ids, &mut page.bytes, &mut page.slots)
            }
            SegmentReader::Active(a, _) => {
                a.read_payloads_into(ids, &mut page.bytes, &mut page.slots, via)
            }
        }
    }

    /// First local whose ts is `>= t` (or `count()`).
    pub(crate) fn lower_bound_ts(&self, t: i64) -> Result<u32> {
        match self {
            SegmentReader::Sealed(s) => match s.index() {
                SegmentIndex::File(index) => lower_bound_sparse(
                    s.seg.count() as u32,
                    |k| index.sparse_ts(k),
                    index.sparse_len(),
                    t,
                    |local| s.seg.ts_at(u64::from(local)),
                ),
                SegmentIndex::Memory(a) => as_active(s, &a).lower_bound_ts(t),
            },
            SegmentReader::Active(a, n) => {
                let table = a.table();
                Ok(table.ts[..*n as usize].partition_point(|&x| x < t) as u32)
            }
        }
    }

    /// The bitmap of `key` (empty when the key does not occur).
    pub(crate) fn bitmap(&self, key: &[u8]) -> Result<RoaringBitmap> {
        match self {
            SegmentReader::Sealed(s) => match s.index() {
                SegmentIndex::File(index) => Ok(index.bitmap(key)?.unwrap_or_default()),
                SegmentIndex::Memory(a) => as_active(s, &a).bitmap(key),
            },
            SegmentReader::Active(a, _) => Ok(a.index().get(key).cloned().unwrap_or_default()),
        }
    }

    /// The union of the bitmaps of every key starting with `prefix`.
    pub(crate) fn prefix_union(&self, prefix: &[u8]) -> Result<RoaringBitmap> {
        match self {
            SegmentReader::Sealed(s) => match s.index() {
                SegmentIndex::File(index) => index.prefix_union(prefix),
                SegmentIndex::Memory(a) => as_active(s, &a).prefix_union(prefix),
            },
            SegmentReader::Active(a, _) => Ok(a.index().prefix_union(prefix)),
        }
    }

    /// Calls `f(key, exact cardinality over the whole segment if known, loader)`
    /// for every key starting with `prefix`. The cardinality is `None` for the
    /// active segment, whose bitmaps may hold records not yet durable.
    pub(crate) fn for_prefix(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], Option<u64>, &dyn Fn() -> Result<RoaringBitmap>) -> Result<()>,
    ) -> Result<()> {
        match self {
            SegmentReader::Sealed(s) => match s.index() {
                SegmentIndex::File(index) => {
                    index.for_prefix(prefix, |key, card, load| f(key, Some(card), load))
                }
                SegmentIndex::Memory(a) => as_active(s, &a).for_prefix(prefix, f),
            },
            SegmentReader::Active(a, _) => {
                let idx = a.index();
                for (key, bm) in idx.with_prefix(prefix) {
                    f(key, None, &|| Ok(bm.clone()))?;
                }
                Ok(())
            }
        }
    }
}

/// A sealed segment whose index file is not written yet, read as the active
/// segment it was (all of it visible): its in-memory index and ts table.
fn as_active<'a>(s: &Sealed, a: &'a ActiveSegment) -> SegmentReader<'a> {
    SegmentReader::Active(a, s.seg.count() as u32)
}
