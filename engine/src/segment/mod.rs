//! Segment files: naming, the fixed header, the seal footer, and the two kinds
//! of segment reader.
//!
//! A segment file holds a contiguous id range:
//!
//! ```text
//! +----------------+---------+---------+-----+---------+------------------+----------+
//! | header (32 B)  | frame 0 | frame 1 | ... | frame n | offsets (n × u32)| footer   |
//! +----------------+---------+---------+-----+---------+------------------+----------+
//!                   \______ active segments end here ___/\___ written once at seal ___/
//! ```
//!
//! The active segment is header + frames and grows by appends. Sealing writes
//! the offset table and the footer, fsyncs, and from then on the file never
//! changes: it is read through one shared memory map. See docs/FORMAT.md.

pub(crate) mod active;
pub(crate) mod footer;
pub use footer::{Footer, FOOTER_LEN};
pub(crate) mod sealed;

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::env::FileHandle;
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN};

/// Where one CRC-checked frame's payload was copied to (see `PageBuf`).
#[derive(Debug, Clone)]
pub(crate) struct FrameSlot {
    /// The record's id.
    pub id: u64,
    /// The record's ts.
    pub ts: i64,
    /// The payload's bytes in the page buffer.
    pub payload: Range<usize>,
    /// The frame's offset in its file (for error messages).
    pub offset: u64,
}

/// Largest span [`read_runs`] reads in one call.
const MAX_SPAN: u64 = 1 << 20;
/// Largest gap of unwanted bytes [`read_runs`] reads through rather than
/// issuing another positioned read.
const MAX_GAP: u64 = 4096;

/// Reads the frames of records `ids` at byte `ranges` of `file` (in page
/// order, ascending or descending), checks each frame's CRC and id, and
/// appends the payloads to `buf` with one slot each in `slots`. Frames
/// within [`MAX_GAP`] of each other come from one positioned read straight
/// into `buf` (the gap bytes stay there unused).
pub(crate) fn read_runs(
    file: &dyn FileHandle,
    path: &Path,
    ids: &[u64],
    ranges: &[(u64, u64)],
    buf: &mut Vec<u8>,
    slots: &mut Vec<FrameSlot>,
) -> Result<()> {
    let mut i = 0;
    while i < ids.len() {
        // The run ids[i..j] is read in one call.
        let (mut lo, mut hi) = ranges[i];
        let mut j = i + 1;
        while let Some(&(a, b)) = ranges.get(j) {
            let (nlo, nhi) = (lo.min(a), hi.max(b));
            let gap = if a >= hi {
                a - hi
            } else {
                lo.saturating_sub(b)
            };
            if gap > MAX_GAP || nhi - nlo > MAX_SPAN {
                break;
            }
            (lo, hi) = (nlo, nhi);
            j += 1;
        }
        let base = buf.len();
        buf.resize(base + (hi - lo) as usize, 0);
        file.read_exact_at(&mut buf[base..], lo)
            .map_err(Error::io("read", path))?;
        for (&id, &(a, b)) in ids[i..j].iter().zip(&ranges[i..j]) {
            let at = base + (a - lo) as usize;
            let f = checked_frame(path, id, a, &buf[at..base + (b - lo) as usize])?;
            let start = at + HEADER_LEN;
            slots.push(FrameSlot {
                id,
                ts: f.header.ts,
                payload: start..start + f.payload.len(),
                offset: a,
            });
        }
        i = j;
    }
    Ok(())
}

/// Decodes the frame of record `id` found at offset `at` of `path` (its
/// bytes `frame`), checking its CRC and id.
fn checked_frame<'a>(
    path: &Path,
    id: u64,
    at: u64,
    frame: &'a [u8],
) -> Result<frame::FrameRef<'a>> {
    let f = frame::decode(frame).map_err(|e| Error::corruption(path, at, e.to_string()))?;
    if f.header.id != id {
        return Err(Error::corruption(
            path,
            at,
            format!("frame holds id {} where id {id} belongs", f.header.id),
        ));
    }
    Ok(f)
}

/// Checks that the payload of a frame whose CRC holds (at offset `at` of
/// `path`) is a record every reader can read. A CRC protects bytes, not
/// meaning: a frame this engine did not write can carry any payload, and
/// `verify` must name it rather than leave the first reader to trip on it.
pub(crate) fn check_payload(path: &Path, at: usize, f: &frame::FrameRef<'_>) -> Result<()> {
    crate::RecordView::parse(f.header.id, f.header.ts, f.payload)
        .map(|_| ())
        .map_err(|why| {
            Error::corruption(
                path,
                at as u64,
                format!("record {} cannot be read: {why}", f.header.id),
            )
        })
}

/// Checks the frame of record `id` (its bytes `frame`, at offset `at` of
/// `path`) and appends its payload to `buf`, with a slot in `slots`.
pub(crate) fn push_frame(
    path: &Path,
    id: u64,
    at: u64,
    frame: &[u8],
    buf: &mut Vec<u8>,
    slots: &mut Vec<FrameSlot>,
) -> Result<()> {
    let f = checked_frame(path, id, at, frame)?;
    push_payload(&f, at, buf, slots);
    Ok(())
}

/// Appends a checked frame's payload (the frame of `slots`' next record, at
/// offset `at` of its file) to `buf`, with its slot in `slots`.
pub(crate) fn push_payload(
    f: &frame::FrameRef<'_>,
    at: u64,
    buf: &mut Vec<u8>,
    slots: &mut Vec<FrameSlot>,
) {
    let start = buf.len();
    buf.extend_from_slice(f.payload);
    slots.push(FrameSlot {
        id: f.header.id,
        ts: f.header.ts,
        payload: start..buf.len(),
        offset: at,
    });
}

/// First 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ACTLOGSG";
/// The segment format version this build writes. It reads this one and
/// every version from [`OLDEST_FORMAT_VERSION`] on (see `docs/FORMAT.md`,
/// "Versions"). Version 3 changes nothing in the file's own layout: its
/// records' payloads have an eleventh element (`recorded_by`), which a
/// format-2 reader would take for damage; the number makes it refuse the
/// file by version instead, and keeps such payloads out of any segment it
/// accepts (an older active segment is sealed on open).
pub const FORMAT_VERSION: u16 = 3;
/// The oldest segment format version this build still reads. A data
/// directory whose active segment is older has it sealed on open and
/// continues in a new segment of [`FORMAT_VERSION`].
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Every file name of a segment (and of its index and snapshot) starts so.
pub const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";
/// Suffix of files being written before their atomic rename.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The file name of the segment whose first id is `base_id`: `seg-<20 digits>.log`,
/// so that lexical order is id order.
pub fn segment_file_name(base_id: u64) -> String {
    format!("{SEGMENT_PREFIX}{base_id:020}{SEGMENT_SUFFIX}")
}

/// The largest base id a segment may have: ids stay below 2^62, so that a
/// base plus any count a file can describe (a `u32`) plus any reservation
/// (see `ids.rs`) never overflows a `u64`.
pub const MAX_BASE_ID: u64 = 1 << 62;

/// The base id encoded in a segment file name, if it is one. The name must
/// be `seg-` + 20 digits + `.log` and the id within `1..=MAX_BASE_ID`: a file
/// named otherwise is not a segment of this log (the listing of
/// `actlog-inspect` shows it as an unknown file).
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|&base| (1..=MAX_BASE_ID).contains(&base))
}

/// Path of the segment with `base_id` in `dir`.
pub fn segment_path(dir: &Path, base_id: u64) -> PathBuf {
    dir.join(segment_file_name(base_id))
}

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment format version ([`OLDEST_FORMAT_VERSION`]..=[`FORMAT_VERSION`]).
    pub version: u16,
    /// Id of the first record the segment holds (or will hold).
    pub base_id: u64,
    /// When the segment was created, µs since the epoch.
    pub created_us: i64,
}

impl SegmentHeader {
    /// The header of a new segment of this build's [`FORMAT_VERSION`].
    pub fn new(base_id: u64, created_us: i64) -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            base_id,
            created_us,
        }
    }

    /// Whether frames of this segment may carry
    /// [`FLAG_FLUSH`](crate::frame::FLAG_FLUSH) (format 2 on), which lets
    /// recovery tell a torn, never-acknowledged flush from damage.
    pub fn marks_flushes(&self) -> bool {
        self.version >= 2
    }

    /// The 32 header bytes:
    /// magic (8) | version u16 | reserved u16 = 0 | crc u32 | base_id u64 | created_us i64.
    /// The CRC covers bytes 0..12 and 16..32.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[16..24].copy_from_slice(&self.base_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_us.to_le_bytes());
        let crc = header_crc(&b);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks a header read from `path`.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<SegmentHeader> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(Error::corruption(
                path,
                0,
                format!(
                    "file is {} bytes, shorter than the {SEGMENT_HEADER_LEN}-byte segment header",
                    bytes.len()
                ),
            ));
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(Error::corruption(
                path,
                0,
                "not an actlog segment (bad magic)",
            ));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if stored != header_crc(bytes) {
            return Err(Error::corruption(path, 12, "segment header CRC mismatch"));
        }
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[16..24]);
        let mut created = [0u8; 8];
        created.copy_from_slice(&bytes[24..32]);
        let base_id = u64::from_le_bytes(id);
        if base_id == 0 || base_id > MAX_BASE_ID {
            return Err(Error::corruption(
                path,
                16,
                format!("segment base id {base_id} is outside 1..={MAX_BASE_ID}"),
            ));
        }
        Ok(SegmentHeader {
            version,
            base_id,
            created_us: i64::from_le_bytes(created),
        })
    }
}

fn header_crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..12]);
    h.update(&b[16..SEGMENT_HEADER_LEN]);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_id_and_roundtrip() {
        assert_eq!(segment_file_name(42), "seg-00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(MAX_BASE_ID)),
            Some(MAX_BASE_ID)
        );
        // Ids whose arithmetic could overflow, and id 0, name no segment.
        assert_eq!(parse_segment_file_name(&segment_file_name(0)), None);
        assert_eq!(
            parse_segment_file_name(&segment_file_name(MAX_BASE_ID + 1)),
            None
        );
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), None);
        assert_eq!(parse_segment_file_name("seg-42.log"), None);
        assert_eq!(
            parse_segment_file_name("seg-00000000000000000042.log.tmp"),
            None
        );
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn header_roundtrip_and_damage() {
        let h = SegmentHeader::new(1001, 1_767_225_600_000_000);
        let bytes = h.encode();
        let p = Path::new("x");
        assert_eq!(SegmentHeader::decode(&bytes, p).expect("valid"), h);
        for i in 0..SEGMENT_HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad, p).is_err(), "byte {i}");
        }
    }
}
