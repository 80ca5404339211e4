//! Retention and clear: a persisted low watermark plus whole-segment deletes.
//!
//! The watermark is the smallest id readers may see. Moving it is the logical
//! delete — instant and exact, whatever the segment boundaries. Segments that
//! lie wholly below it are then dropped from the view and unlinked once the
//! last reader lets go of them (O(segments), never O(records)).
//!
//! Crash order: the watermark file is written (temp, fsync, rename, directory
//! fsync) *before* any segment is unlinked, and open deletes segments found
//! wholly below the watermark. A crash at any point therefore recovers to the
//! new watermark or the old one, never to a log with holes.
//!
//! File `WATERMARK` (24 bytes): magic `ACTLOGWM` | version u16 | reserved u16 |
//! crc u32 (CRC32 of bytes 0..12 and 16..24) | low watermark u64.

use std::path::Path;

use crate::env::FileSystem;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::segment::footer::{le_u32, le_u64};

/// Name of the watermark file in a data directory.
pub const WATERMARK_FILE: &str = "WATERMARK";
const MAGIC: [u8; 8] = *b"ACTLOGWM";
/// The watermark file's own version (unchanged since format 1).
const WATERMARK_VERSION: u16 = 1;
const LEN: usize = 24;
/// µs in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Retention bounds; `None` means unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep records whose `ts` is within this many days of now.
    pub max_days: Option<u32>,
    /// Keep at most this many of the newest records.
    pub max_entries: Option<u64>,
}

/// What one retention run or clear did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Records that became invisible.
    pub dropped_records: u64,
    /// Segment files dropped (unlinked when their last reader finishes).
    pub dropped_segments: usize,
    /// The low watermark now in force.
    pub low_watermark: u64,
}

fn crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..12]);
    h.update(&b[16..LEN]);
    h.finalize()
}

/// Reads the persisted watermark; 1 (hide nothing) when there is none.
pub(crate) fn read_watermark(fs: &dyn FileSystem, dir: &Path) -> Result<u64> {
    let path = dir.join(WATERMARK_FILE);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(1),
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    if bytes.len() != LEN || bytes[0..8] != MAGIC || le_u32(&bytes[12..16]) != crc(&bytes) {
        return Err(Error::corruption(&path, 0, "watermark file damaged"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != WATERMARK_VERSION {
        return Err(Error::UnsupportedVersion {
            file: path,
            found: version,
            supported: WATERMARK_VERSION,
        });
    }
    Ok(le_u64(&bytes[16..24]).max(1))
}

/// Persists the watermark atomically and durably.
pub(crate) fn write_watermark(fs: &dyn FileSystem, dir: &Path, low: u64) -> Result<()> {
    let mut b = [0u8; LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&WATERMARK_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&low.to_le_bytes());
    let c = crc(&b);
    b[12..16].copy_from_slice(&c.to_le_bytes());
    fail::fail_point!("retention::write_watermark", |_| Err(fsutil::injected(
        "write",
        &dir.join(WATERMARK_FILE)
    )));
    fsutil::create_durable(
        fs,
        &dir.join(WATERMARK_FILE),
        &b,
        fsutil::Durable::Watermark,
    )
    .map(drop)
}

impl Retention {
    /// Checks the bounds the API allows (1–36,500 days, ≥ 1 entry).
    pub fn validate(&self) -> std::result::Result<(), crate::ValidationError> {
        if let Some(d) = self.max_days {
            if !(1..=36_500).contains(&d) {
                return Err(crate::ValidationError::new(
                    "max_days",
                    "must be between 1 and 36500, or null for no bound",
                ));
            }
        }
        if self.max_entries == Some(0) {
            return Err(crate::ValidationError::new(
                "max_entries",
                "must be at least 1, or null for no bound",
            ));
        }
        Ok(())
    }
}
