//! Reading a sealed (immutable) segment through one shared memory map.

use std::path::{Path, PathBuf};

use crate::env::{FileBytes, FileHandle, FileSystem, OpenMode, StdFs};

use super::footer::{le_u32, Footer, FOOTER_LEN};
use super::{FrameSlot, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::error::{Error, Result};
use crate::frame::{self, FrameRef};
use crate::record::Record;

/// A sealed segment. Opening checks the header and footer (O(1)); every
/// record read checks its frame's CRC; [`SealedSegment::verify`] checks every
/// byte.
#[derive(Debug)]
pub struct SealedSegment {
    path: PathBuf,
    header: SegmentHeader,
    footer: Footer,
    map: FileBytes,
    /// The same file, for positioned reads that should not pull pages into
    /// this process's mapped memory (scans).
    file: Box<dyn FileHandle>,
}

/// The whole of `file` as bytes (a read-only map on the real filesystem;
/// see `env/std_fs.rs` for why that is sound).
pub(crate) fn map_file(file: &dyn FileHandle, path: &Path) -> Result<FileBytes> {
    file.map().map_err(Error::io("mmap", path))
}

impl SealedSegment {
    /// Takes the map's pages out of this process's resident set; the next
    /// read faults them back from the page cache.
    pub(crate) fn release_pages(&self) {
        self.map.release_pages();
    }

    /// Opens a segment that carries a footer. `Ok(None)` means the file has no
    /// valid footer (it is an active segment, or its seal was torn).
    pub fn open(path: &Path) -> Result<Option<SealedSegment>> {
        Self::open_in(&StdFs, path)
    }

    /// [`SealedSegment::open`] through a given filesystem.
    ///
    /// The header and footer are read with positioned reads, and the file is
    /// mapped only once a footer that fits its length is found. A caller
    /// passes only a file that has a successor (so is sealed for good and
    /// never changes again), but the check costs two small reads, and a map
    /// of a file that a writer then cut would kill the process at the first
    /// read past the new end.
    pub fn open_in(fs: &dyn FileSystem, path: &Path) -> Result<Option<SealedSegment>> {
        let file = fs
            .open(path, OpenMode::Read)
            .map_err(Error::io("open", path))?;
        let len = file.len().map_err(Error::io("stat", path))?;
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        let got = file.read_exact_at(&mut head, 0);
        let header = SegmentHeader::decode(if got.is_ok() { &head } else { &[] }, path)?;
        let mut tail = [0u8; FOOTER_LEN];
        if len < (SEGMENT_HEADER_LEN + FOOTER_LEN) as u64
            || file
                .read_exact_at(&mut tail, len - FOOTER_LEN as u64)
                .is_err()
        {
            return Ok(None);
        }
        let Some(footer) = Footer::parse(&tail, len) else {
            return Ok(None);
        };
        let map = map_file(&*file, path)?;
        if map.len() as u64 != len {
            // Changed between the reads and the map: not a sealed file.
            return Ok(None);
        }
        Ok(Some(SealedSegment {
            path: path.to_path_buf(),
            header,
            footer,
            map,
            file,
        }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// First id.
    pub fn base_id(&self) -> u64 {
        self.header.base_id
    }

    /// Number of records.
    pub fn count(&self) -> u64 {
        u64::from(self.footer.count)
    }

    /// One past the last id.
    pub fn end_id(&self) -> u64 {
        self.base_id() + self.count()
    }

    /// The footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    fn table_start(&self) -> usize {
        self.footer.data_end as usize
    }

    /// Offset of the frame of the record `local` places after the base.
    pub(crate) fn frame_offset(&self, local: u64) -> usize {
        let at = self.table_start() + 4 * local as usize;
        le_u32(&self.map[at..at + 4]) as usize
    }

    /// The verified frame of the record `local` places after the base.
    pub fn frame(&self, local: u64) -> Result<FrameRef<'_>> {
        debug_assert!(local < self.count());
        let offset = self.frame_offset(local);
        let data = &self.map[..self.table_start()];
        let expect = self.base_id() + local;
        if offset < SEGMENT_HEADER_LEN || offset >= data.len() {
            return Err(Error::corruption(
                &self.path,
                (self.table_start() + 4 * local as usize) as u64,
                format!("offset table entry for id {expect} points outside the data ({offset})"),
            ));
        }
        let f = frame::decode(&data[offset..])
            .map_err(|e| Error::corruption(&self.path, offset as u64, e.to_string()))?;
        if f.header.id != expect {
            return Err(Error::corruption(
                &self.path,
                offset as u64,
                format!("frame holds id {} where id {expect} belongs", f.header.id),
            ));
        }
        Ok(f)
    }

    /// The ts of record `local` (reads only its frame header).
    pub fn ts_at(&self, local: u64) -> Result<i64> {
        Ok(self.frame(local)?.header.ts)
    }

    /// Appends the verified payloads of records `ids` (all in this segment)
    /// to `buf`, in the order given, with one slot each in `slots`.
    pub(crate) fn read_payloads_into(
        &self,
        ids: &[u64],
        buf: &mut Vec<u8>,
        slots: &mut Vec<FrameSlot>,
    ) -> Result<()> {
        for &id in ids {
            let local = id - self.base_id();
            let f = self.frame(local)?;
            super::push_payload(&f, self.frame_offset(local) as u64, buf, slots);
        }
        Ok(())
    }

    /// [`SealedSegment::read_payloads_into`] through positioned reads of the
    /// file instead of the map: for long scans (exports), whose pages would
    /// otherwise all stay in the process's resident set as mapped file
    /// pages. Only the offset table is read through the map.
    pub(crate) fn read_payloads_via_file(
        &self,
        ids: &[u64],
        buf: &mut Vec<u8>,
        slots: &mut Vec<FrameSlot>,
    ) -> Result<()> {
        let data_end = self.table_start() as u64;
        let ranges = ids
            .iter()
            .map(|&id| {
                let local = id - self.base_id();
                let start = self.frame_offset(local) as u64;
                let end = if local + 1 < self.count() {
                    self.frame_offset(local + 1) as u64
                } else {
                    data_end
                };
                // The table is not checksummed on reads: a range longer
                // than any frame can be is damage, not an allocation to make.
                let max_frame = (frame::HEADER_LEN + frame::MAX_PAYLOAD) as u64;
                if start < SEGMENT_HEADER_LEN as u64
                    || start >= end
                    || end > data_end
                    || end - start > max_frame
                {
                    return Err(Error::corruption(
                        &self.path,
                        (self.table_start() + 4 * local as usize) as u64,
                        format!("offset table entry for id {id} is out of order ({start}..{end})"),
                    ));
                }
                Ok((start, end))
            })
            .collect::<Result<Vec<_>>>()?;
        super::read_runs(&*self.file, &self.path, ids, &ranges, buf, slots)
    }

    /// Reads and decodes one record, `id` in `[base_id, end_id)`.
    pub fn read(&self, id: u64) -> Result<Record> {
        let local = id - self.base_id();
        let f = self.frame(local)?;
        let offset = self.frame_offset(local);
        Record::decode(f.header.id, f.header.ts, f.payload)
            .map_err(|reason| Error::corruption(&self.path, offset as u64, reason))
    }

    /// Checks every byte: the table CRC, that the table matches the frame
    /// layout, each frame's CRC and id, that every payload is a record (see
    /// `check_payload`), and the data CRC — in that order, so that damage
    /// inside a frame is named at the frame.
    pub fn verify(&self) -> Result<()> {
        let data_end = self.table_start();
        let table_end = self.map.len() - FOOTER_LEN;
        let tcrc = crc32fast::hash(&self.map[data_end..table_end]);
        if tcrc != self.footer.table_crc {
            return Err(Error::corruption(
                &self.path,
                data_end as u64,
                "offset table checksum mismatch",
            ));
        }
        let mut pos = SEGMENT_HEADER_LEN;
        for local in 0..self.count() {
            if self.frame_offset(local) != pos {
                return Err(Error::corruption(
                    &self.path,
                    pos as u64,
                    format!("offset table disagrees with frame layout at record {local}"),
                ));
            }
            let f = self.frame(local)?;
            super::check_payload(&self.path, pos, &f)?;
            pos += f.header.frame_len();
        }
        if pos != data_end {
            return Err(Error::corruption(
                &self.path,
                pos as u64,
                "bytes between the last frame and the offset table",
            ));
        }
        // Last: a damaged frame is named at its offset above, and this
        // catches what lies outside every frame (the header).
        let crc = crc32fast::hash(&self.map[..data_end]);
        if crc != self.footer.data_crc {
            return Err(Error::corruption(
                &self.path,
                0,
                format!(
                    "data checksum mismatch: footer says {:#010x}, data hashes to {crc:#010x}",
                    self.footer.data_crc
                ),
            ));
        }
        Ok(())
    }
}
