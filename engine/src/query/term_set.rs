//! A term's bitmap as a page reads it: in place in a sealed segment's index
//! file, borrowed from the active segment's in-memory index, or decoded.
//!
//! A page tests a few dozen candidates near its cursor; decoding or cloning
//! whole bitmaps for that cost more than the page itself at 10 M records
//! (see `benches/README.md`, "Session 6"). Counts and histograms, which
//! need every value, still decode ([`TermSet::into_owned`]).

use std::ops::{ControlFlow, Range};
use std::sync::{Arc, RwLockReadGuard};

use roaring::RoaringBitmap;

use super::segment::SegmentReader;
use crate::error::Result;
use crate::index::active::ActiveIndex;
use crate::index::bitmap_view::BitmapView;
use crate::index::file::SealedIndex;
use crate::view::SegmentIndex;

/// One term's (or one filter's) set of local record numbers.
pub(crate) enum TermSet<'a> {
    /// Read in place from a sealed segment's index file; `offset` names the
    /// postings entry, to decode it if need be.
    View {
        index: &'a SealedIndex,
        offset: u64,
        view: BitmapView<'a>,
    },
    /// The active segment's bitmap, under its index's read lock.
    Borrowed(&'a RoaringBitmap),
    /// Decoded or combined: a union of a filter's values, a word prefix, a
    /// term missing from the segment (empty).
    Owned(RoaringBitmap),
}

impl TermSet<'_> {
    /// How many locals it holds.
    pub(crate) fn len(&self) -> u64 {
        match self {
            TermSet::View { view, .. } => view.len(),
            TermSet::Borrowed(b) => b.len(),
            TermSet::Owned(b) => b.len(),
        }
    }

    /// Whether it holds `local`.
    pub(crate) fn contains(&self, local: u32) -> bool {
        match self {
            TermSet::View { view, .. } => view.contains(local),
            TermSet::Borrowed(b) => b.contains(local),
            TermSet::Owned(b) => b.contains(local),
        }
    }

    /// Calls `f` with its locals in `range`, ascending or (`desc`)
    /// descending, until `f` breaks.
    pub(crate) fn walk(
        &self,
        range: Range<u32>,
        desc: bool,
        f: impl FnMut(u32) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let bm = match self {
            TermSet::View { view, .. } => return view.walk(range, desc, f),
            TermSet::Borrowed(b) => *b,
            TermSet::Owned(b) => b,
        };
        if desc {
            bm.range(range).rev().try_for_each(f)
        } else {
            bm.range(range).try_for_each(f)
        }
    }

    /// The set as a bitmap of its own.
    pub(crate) fn into_owned(self) -> Result<RoaringBitmap> {
        match self {
            TermSet::View { index, offset, .. } => index.decode_bitmap(offset),
            TermSet::Borrowed(b) => Ok(b.clone()),
            TermSet::Owned(b) => Ok(b),
        }
    }

    /// Adds its locals to `acc`.
    pub(crate) fn union_into(self, acc: &mut RoaringBitmap) -> Result<()> {
        match self {
            TermSet::Borrowed(b) => *acc |= b,
            other => *acc |= other.into_owned()?,
        }
        Ok(())
    }
}

/// A segment's term lookups, held for the length of one page.
pub(crate) enum SegmentTerms<'a> {
    /// A sealed segment's index file.
    File(Arc<SealedIndex>),
    /// The active segment's in-memory index, read-locked: appends that
    /// index a batch wait for the page's few microseconds.
    Active(RwLockReadGuard<'a, ActiveIndex>),
    /// A sealed segment whose index file is still being written: lookups
    /// decode (this lasts a second or so after a large seal).
    Pending(SegmentReader<'a>),
}

impl<'a> SegmentTerms<'a> {
    /// The lookups of `seg`.
    pub(crate) fn of(seg: &SegmentReader<'a>) -> Self {
        match seg {
            SegmentReader::Sealed(s) => match s.index() {
                SegmentIndex::File(index) => SegmentTerms::File(index),
                SegmentIndex::Memory(_) => SegmentTerms::Pending(*seg),
            },
            SegmentReader::Active(a, _) => SegmentTerms::Active(a.index()),
        }
    }

    /// The union of the sets of every key starting with `prefix`.
    ///
    /// Through the lock this already holds: taking the active index's read
    /// lock a second time on one thread can deadlock behind a queued writer
    /// (std's `RwLock` lets a waiting writer block new readers).
    pub(crate) fn prefix_union(&self, prefix: &[u8]) -> Result<RoaringBitmap> {
        match self {
            SegmentTerms::Active(idx) => Ok(idx.prefix_union(prefix)),
            SegmentTerms::File(index) => index.prefix_union(prefix),
            SegmentTerms::Pending(seg) => seg.prefix_union(prefix),
        }
    }

    /// The set of `key` (empty if the key does not occur).
    pub(crate) fn get(&self, key: &[u8]) -> Result<TermSet<'_>> {
        Ok(match self {
            SegmentTerms::File(index) => match index.view(key)? {
                Some((offset, view)) => TermSet::View {
                    index,
                    offset,
                    view,
                },
                None => TermSet::Owned(RoaringBitmap::new()),
            },
            SegmentTerms::Active(idx) => match idx.get(key) {
                Some(b) => TermSet::Borrowed(b),
                None => TermSet::Owned(RoaringBitmap::new()),
            },
            SegmentTerms::Pending(seg) => TermSet::Owned(seg.bitmap(key)?),
        })
    }
}
