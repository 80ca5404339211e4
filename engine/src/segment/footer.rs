//! The seal footer: the last 48 bytes of a sealed segment.
//!
//! ```text
//!  0  magic "ACTLOGFT"     8 bytes
//!  8  count         u32    records in the segment
//! 12  data_crc      u32    CRC32 of bytes [0, data_end): header and every frame
//! 16  first_ts      i64    ts of the first record (0 when count = 0)
//! 24  last_ts       i64    ts of the last record  (0 when count = 0)
//! 32  data_end      u64    offset where the offset table starts
//! 40  table_crc     u32    CRC32 of the offset table
//! 44  footer_crc    u32    CRC32 of footer bytes 0..44
//! ```
//!
//! A file is sealed exactly when its last 48 bytes are a footer whose CRC
//! holds and whose geometry matches the file length
//! (`data_end + 4 × count + 48 == file length`).

/// First 8 bytes of a footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"ACTLOGFT";
/// Footer length.
pub const FOOTER_LEN: usize = 48;

/// A decoded footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Records in the segment.
    pub count: u32,
    /// CRC32 of `[0, data_end)`.
    pub data_crc: u32,
    /// ts of the first record.
    pub first_ts: i64,
    /// ts of the last record.
    pub last_ts: i64,
    /// Where the frames end and the offset table begins.
    pub data_end: u64,
    /// CRC32 of the offset table.
    pub table_crc: u32,
}

impl Footer {
    /// Length of the offset table and footer that follow `data_end`.
    pub fn trailer_len(&self) -> u64 {
        u64::from(self.count) * 4 + FOOTER_LEN as u64
    }

    /// The 48 footer bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&FOOTER_MAGIC);
        b[8..12].copy_from_slice(&self.count.to_le_bytes());
        b[12..16].copy_from_slice(&self.data_crc.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_ts.to_le_bytes());
        b[24..32].copy_from_slice(&self.last_ts.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_end.to_le_bytes());
        b[40..44].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads the footer at the end of a file of `file_bytes`, if there is a
    /// valid one that fits the file's length.
    pub fn find(file_bytes: &[u8]) -> Option<Footer> {
        let len = file_bytes.len();
        if len < super::SEGMENT_HEADER_LEN + FOOTER_LEN {
            return None;
        }
        Self::parse(&file_bytes[len - FOOTER_LEN..], len as u64)
    }

    /// Reads the footer from `b`, the last [`FOOTER_LEN`] bytes of a file of
    /// `len` bytes, if it is a valid one that fits that length.
    pub fn parse(b: &[u8], len: u64) -> Option<Footer> {
        if b.len() != FOOTER_LEN || len < (super::SEGMENT_HEADER_LEN + FOOTER_LEN) as u64 {
            return None;
        }
        if b[0..8] != FOOTER_MAGIC || le_u32(&b[44..48]) != crc32fast::hash(&b[0..44]) {
            return None;
        }
        let footer = Footer {
            count: le_u32(&b[8..12]),
            data_crc: le_u32(&b[12..16]),
            first_ts: le_u64(&b[16..24]) as i64,
            last_ts: le_u64(&b[24..32]) as i64,
            data_end: le_u64(&b[32..40]),
            table_crc: le_u32(&b[40..44]),
        };
        let fits = footer.data_end >= super::SEGMENT_HEADER_LEN as u64
            && footer.data_end.checked_add(footer.trailer_len()) == Some(len);
        fits.then_some(footer)
    }
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
