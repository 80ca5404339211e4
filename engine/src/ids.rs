//! The id reservation: what keeps an id from ever being handed out twice.
//!
//! Ids come from the files: the next id is where the active segment's
//! committed frames end. That is enough while the files are all there, but
//! not when the newest segment goes (`actlog-inspect repair` moves a damaged
//! one to `quarantine/`) or the directory is restored from a backup taken
//! before the last records: the next id would then fall back to ids clients
//! were already given. So the writer keeps, durable, a bound on every id it
//! may have handed out:
//!
//! File `IDS` (32 bytes): magic `ACTLOGID` | version u16 = 1 | reserved u16 |
//! crc u32 (of bytes 0..12 and 16..32) | `active_base` u64 | `limit` u64.
//!
//! * `active_base` is the base id of the active segment the reservation was
//!   made for, or [`RESTORED`] after a restore.
//! * `limit`: no id at or above it has been handed out.
//!
//! The writer writes it (temp, fsync, rename, directory fsync) right after it
//! creates an active segment, with `limit = base + span` where the span
//! ([`span`]) is more records than the segment can hold; a batch that would
//! reach the limit rolls the segment first. So the file costs one atomic write
//! a segment and nothing an append. On open, with the newest segment's base
//! `newest` (see `log/open.rs`):
//!
//! * `active_base == newest`: the normal case; the next id is the segment's end.
//! * `active_base < newest`: a crash between creating a segment and writing
//!   its reservation. The segment is empty (nothing is appended before the
//!   reservation is durable): a new reservation is written.
//! * `active_base > newest` (the segment it was made for is gone, or
//!   [`RESTORED`]): ids up to `limit` may have been handed out. The newest
//!   segment is sealed, the gap up to `limit` is recorded in `quarantine/`
//!   as missing, and a new active segment starts at `limit`.
//!
//! A directory without the file (format 1) gets one on open.

use std::path::Path;

use crate::config::Config;
use crate::env::FileSystem;
use crate::error::{Error, Result};
use crate::frame::HEADER_LEN;
use crate::fsutil::{self, Durable};
use crate::segment::footer::{le_u32, le_u64};

/// File name of the id reservation in a data directory.
pub const IDS_FILE: &str = "IDS";
const MAGIC: [u8; 8] = *b"ACTLOGID";
const VERSION: u16 = 1;
const LEN: usize = 32;

/// `active_base` of a reservation written by a restore: the active segment
/// it was made for is not in the directory, so the next open starts past
/// `limit`.
pub const RESTORED: u64 = u64::MAX;

/// A persisted id reservation (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Base id of the active segment it was made for ([`RESTORED`]: none here).
    pub active_base: u64,
    /// No id at or above this has been handed out.
    pub limit: u64,
}

/// How many ids a reservation spans past its segment's base: more records
/// than a segment of `config.segment_max_bytes` can hold (a frame is at
/// least a header long), plus a whole batch, since a batch can overshoot
/// the size bound by up to its own size.
pub fn span(config: &Config) -> u64 {
    (config.segment_max_bytes / HEADER_LEN as u64 + 1)
        .saturating_add(crate::log::MAX_BATCH_RECORDS as u64)
}

impl Reservation {
    /// The reservation for an active segment starting at `base` whose
    /// records end before `end` (`end >= base`), under `config`.
    pub fn for_segment(base: u64, end: u64, config: &Config) -> Reservation {
        Reservation {
            active_base: base,
            limit: end.max(base).saturating_add(span(config)),
        }
    }

    /// The 32 bytes of the file.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.active_base.to_le_bytes());
        b[24..32].copy_from_slice(&self.limit.to_le_bytes());
        let crc = crc(&b);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses the file's bytes (read from `path`, for errors).
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Reservation> {
        if bytes.len() != LEN || bytes[0..8] != MAGIC || le_u32(&bytes[12..16]) != crc(bytes) {
            return Err(Error::corruption(path, 0, "id reservation file damaged"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        Ok(Reservation {
            active_base: le_u64(&bytes[16..24]),
            limit: le_u64(&bytes[24..32]),
        })
    }
}

fn crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..12]);
    h.update(&b[16..LEN]);
    h.finalize()
}

/// Reads the reservation of `dir`; `None` when there is none (format 1).
pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Reservation>> {
    let path = dir.join(IDS_FILE);
    match fs.read(&path) {
        Ok(bytes) => Reservation::decode(&bytes, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path)(e)),
    }
}

/// Makes `r` the reservation of `dir` (temp, fsync, rename, directory fsync).
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, r: &Reservation) -> Result<()> {
    fsutil::create_durable(fs, &dir.join(IDS_FILE), &r.encode(), Durable::Ids).map(drop)
}

/// Marks the data directory `dir`, just restored from a backup, so that its
/// next open hands out no id below `floor` (nor below the limit of the
/// reservation the backup carried): ids given out after the backup was taken
/// are never given out again. Call it with the old directory's reservation
/// limit when restoring over it, or with 0.
pub fn mark_restored(dir: &Path, floor: u64) -> Result<()> {
    let fs = crate::env::StdFs;
    let carried = read(&fs, dir)?.map_or(0, |r| r.limit);
    let limit = floor.max(carried);
    write(
        &fs,
        dir,
        &Reservation {
            active_base: RESTORED,
            limit,
        },
    )
}

/// The reservation limit of the data directory `dir` as it is on disk
/// (`None` without one): what [`mark_restored`] should carry over when a
/// restore replaces that directory. Reads only.
pub fn limit_of(dir: &Path) -> Result<Option<u64>> {
    Ok(read(&crate::env::StdFs, dir)?.map(|r| r.limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_every_damaged_byte_is_refused() {
        let r = Reservation {
            active_base: 1001,
            limit: 2_000_000,
        };
        let b = r.encode();
        let p = Path::new("IDS");
        assert_eq!(Reservation::decode(&b, p).expect("valid"), r);
        for i in 0..LEN {
            let mut bad = b;
            bad[i] ^= 0x01;
            assert!(Reservation::decode(&bad, p).is_err(), "byte {i}");
        }
        assert!(Reservation::decode(&b[..31], p).is_err());
    }

    #[test]
    fn the_span_exceeds_what_a_segment_can_hold() {
        let config = Config {
            segment_max_bytes: 1 << 20,
            ..Config::default()
        };
        let records_that_fit = (1u64 << 20) / HEADER_LEN as u64;
        assert!(span(&config) > records_that_fit + crate::log::MAX_BATCH_RECORDS as u64);
        let r = Reservation::for_segment(5, 9, &config);
        assert_eq!(r.active_base, 5);
        assert_eq!(r.limit, 9 + span(&config));
    }
}
