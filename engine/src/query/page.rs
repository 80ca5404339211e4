//! [`PageBuf`]: a page of results as CRC-checked payload bytes, decoded only
//! when and as far as the caller asks.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::query::{Cursor, Page};
use crate::record::Record;
use crate::record_view::RecordView;
use crate::segment::FrameSlot;

/// One page of results, kept as the frames' payloads in one buffer.
///
/// Every payload was CRC-checked when it was copied in. [`PageBuf::views`]
/// parses them in place into [`RecordView`]s that borrow their strings from
/// the buffer, so a caller that writes records out (JSON, CSV) allocates
/// nothing per record; [`PageBuf::into_page`] builds owned [`Record`]s.
#[derive(Debug, Default)]
pub struct PageBuf {
    pub(crate) bytes: Vec<u8>,
    pub(crate) slots: Vec<FrameSlot>,
    /// `(first slot, file)` of each segment the page read from, for errors.
    pub(crate) files: Vec<(usize, PathBuf)>,
    /// Present when more records match: pass it back for the next page.
    pub next_cursor: Option<Cursor>,
}

impl PageBuf {
    /// An empty page with room for `records` typical records, at most 64:
    /// a long page (a scan, a stream's catch-up) grows as it fills, so that
    /// many concurrent readers asking for 1000 and finding few do not each
    /// hold a quarter of a megabyte.
    pub(crate) fn with_capacity(records: usize) -> PageBuf {
        let records = records.min(64);
        PageBuf {
            bytes: Vec::with_capacity(records * 256),
            slots: Vec::with_capacity(records),
            files: Vec::with_capacity(2),
            next_cursor: None,
        }
    }

    /// Records on the page.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing matched.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The ids on the page, in page order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.slots.iter().map(|s| s.id)
    }

    /// The records on the page, in page order, parsed in place.
    pub fn views(&self) -> impl ExactSizeIterator<Item = Result<RecordView<'_>>> + '_ {
        (0..self.slots.len()).map(|i| self.view(i))
    }

    /// The `i`-th record, parsed in place.
    pub fn view(&self, i: usize) -> Result<RecordView<'_>> {
        let s = &self.slots[i];
        RecordView::parse(s.id, s.ts, &self.bytes[s.payload.clone()])
            .map_err(|reason| self.corruption(i, reason))
    }

    /// The owned page.
    pub fn into_page(self) -> Result<Page> {
        let items = (0..self.slots.len())
            .map(|i| {
                self.view(i)?
                    .to_record()
                    .map_err(|reason| self.corruption(i, reason))
            })
            .collect::<Result<Vec<Record>>>()?;
        Ok(Page {
            items,
            next_cursor: self.next_cursor,
        })
    }

    fn corruption(&self, slot: usize, reason: String) -> Error {
        let at = self.files.partition_point(|(first, _)| *first <= slot);
        let file = at
            .checked_sub(1)
            .and_then(|k| self.files.get(k))
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        Error::corruption(file, self.slots[slot].offset, reason)
    }
}
