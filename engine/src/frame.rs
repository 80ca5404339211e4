//! One record frame: encode, decode, verify.
//!
//! ```text
//!  0       4            8            16           24              24+len
//!  +-------+------------+------------+------------+----- ... ------+
//!  | crc   | len|flags  | id         | ts         | payload        |
//!  | u32LE | u32LE      | u64LE      | i64LE      | MessagePack    |
//!  +-------+------------+------------+------------+----- ... ------+
//! ```
//!
//! * `crc` — CRC-32/ISO-HDLC (the IEEE 802.3 polynomial, as computed by
//!   `crc32fast`) of bytes `4..24+len`: everything in the frame but itself.
//! * `len|flags` — low 24 bits: payload length, `1..=MAX_PAYLOAD`; high 8 bits:
//!   flags. Bit 0 ([`FLAG_COMMIT`]) marks the last frame of a batch; bit 1
//!   ([`FLAG_FLUSH`], segment format 2 on) the first frame of a flush; every
//!   other bit must be zero.
//! * `id` — the record id; `ts` — the engine's append time in µs since the epoch.
//!
//! The length is checked against [`MAX_PAYLOAD`] before anything is
//! allocated, and a header of all zeros is "end of log", never a record.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 24;
/// Hard cap on a payload. A record is bounded well below this (about 7 KiB
/// for a maximal one), so a larger length can only be damage.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Flag: the last frame of its batch. Frames after the last committed frame
/// of the active segment belong to a batch that was never acknowledged.
pub const FLAG_COMMIT: u8 = 0x01;
/// Flag bit 1 (segment format 2 on): the first frame of a flush, the bytes
/// one `pwrite` + `fdatasync` of the writer makes durable. Flushes are
/// serialized and each starts only after the previous one's fdatasync
/// succeeded, so a valid flagged frame on disk proves that every byte before
/// it was durable when it was written. Recovery uses that to tell a torn,
/// never-acknowledged flush from damage to acknowledged data
/// (`recovery.rs`).
pub const FLAG_FLUSH: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_COMMIT | FLAG_FLUSH;
const LEN_MASK: u32 = 0x00FF_FFFF;

/// The fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Stored CRC.
    pub crc: u32,
    /// Payload length.
    pub len: usize,
    /// Flag bits.
    pub flags: u8,
    /// Record id.
    pub id: u64,
    /// Append time, µs since the epoch.
    pub ts: i64,
}

impl FrameHeader {
    /// Total frame length including the header.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.len
    }

    /// Whether this frame ends its batch.
    pub fn is_commit(&self) -> bool {
        self.flags & FLAG_COMMIT != 0
    }

    /// Whether this frame starts a flush ([`FLAG_FLUSH`]).
    pub fn starts_flush(&self) -> bool {
        self.flags & FLAG_FLUSH != 0
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length needs.
    Short,
    /// A header of all zeros: the end of written data.
    Zeros,
    /// Length zero or above [`MAX_PAYLOAD`], or unknown flag bits.
    BadHeader,
    /// The CRC does not match.
    BadCrc,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameError::Short => "frame cut short",
            FrameError::Zeros => "zeros where a frame should start",
            FrameError::BadHeader => "frame length or flags out of range",
            FrameError::BadCrc => "frame CRC mismatch",
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and range-checks a header (no CRC check: the payload is not read yet).
pub fn parse_header(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::Short);
    }
    let head = &bytes[..HEADER_LEN];
    if head.iter().all(|&b| b == 0) {
        return Err(FrameError::Zeros);
    }
    let len_flags = u32_at(head, 4);
    let len = (len_flags & LEN_MASK) as usize;
    let flags = (len_flags >> 24) as u8;
    if len == 0 || len > MAX_PAYLOAD || flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::BadHeader);
    }
    Ok(FrameHeader {
        crc: u32_at(head, 0),
        len,
        flags,
        id: u64_at(head, 8),
        ts: u64_at(head, 16) as i64,
    })
}

/// CRC of a frame's header fields and payload: the value a valid `crc` holds.
pub fn compute_crc(header_tail: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header_tail);
    h.update(payload);
    h.finalize()
}

/// A verified frame borrowed from a buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    /// The header.
    pub header: FrameHeader,
    /// The payload bytes (CRC-checked).
    pub payload: &'a [u8],
}

/// Decodes and verifies the frame at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<FrameRef<'_>, FrameError> {
    let header = parse_header(bytes)?;
    let end = header.frame_len();
    if bytes.len() < end {
        return Err(FrameError::Short);
    }
    verify(&header, &bytes[4..HEADER_LEN], &bytes[HEADER_LEN..end])?;
    Ok(FrameRef {
        header,
        payload: &bytes[HEADER_LEN..end],
    })
}

/// Checks the CRC of a header already parsed against its raw tail and payload.
pub fn verify(header: &FrameHeader, header_tail: &[u8], payload: &[u8]) -> Result<(), FrameError> {
    if compute_crc(header_tail, payload) == header.crc {
        Ok(())
    } else {
        Err(FrameError::BadCrc)
    }
}

/// Appends one frame to `out`.
///
/// `payload` must be `1..=MAX_PAYLOAD` bytes; record validation guarantees it.
pub fn encode_into(out: &mut Vec<u8>, id: u64, ts: i64, flags: u8, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD);
    let start = out.len();
    let len_flags = (payload.len() as u32 & LEN_MASK) | (u32::from(flags) << 24);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len_flags.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 42, -7, FLAG_COMMIT, b"hello");
        let f = decode(&buf).expect("valid frame");
        assert_eq!(f.header.id, 42);
        assert_eq!(f.header.ts, -7);
        assert!(f.header.is_commit());
        assert_eq!(f.payload, b"hello");
        assert_eq!(f.header.frame_len(), buf.len());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 9, 1_700_000_000_000_000, 0, b"some payload bytes");
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad).is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn zeros_short_and_oversized() {
        assert_eq!(decode(&[0u8; 64]).err(), Some(FrameError::Zeros));
        assert_eq!(decode(&[1u8; 10]).err(), Some(FrameError::Short));
        let mut buf = Vec::new();
        encode_into(&mut buf, 1, 1, 0, b"x");
        let huge = ((MAX_PAYLOAD + 1) as u32).to_le_bytes();
        buf[4..8].copy_from_slice(&huge);
        assert_eq!(decode(&buf).err(), Some(FrameError::BadHeader));
        let mut short = Vec::new();
        encode_into(&mut short, 1, 1, 0, b"abcdef");
        short.pop();
        assert_eq!(decode(&short).err(), Some(FrameError::Short));
    }
}
