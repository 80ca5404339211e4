//! The active segment's index, saved when the log is closed cleanly, so the
//! next open re-indexes only the records appended after it (at 10 M records
//! re-indexing a full active segment was 90% of open time).
//!
//! File `seg-<base>.aidx`: an index in the sealed-index format covering the
//! first `M` records, then a 24-byte trailer: magic `ACTLOGAS` | data_end
//! u64 (where record `M`'s frame ends) | data_crc u32 (CRC32 of the segment's
//! bytes `[0, data_end)`) | trailer_crc u32 (CRC32 of trailer bytes 0..20).
//!
//! It is only a cache. Open uses it when every check holds (trailer, data CRC
//! against the segment as it is now, a record boundary at `data_end`, the
//! index's own checksums, count and base id) and otherwise rebuilds from the
//! frames; either way it then deletes it, so it can never describe a segment
//! that has changed since.

use std::path::{Path, PathBuf};

use super::active::ActiveIndex;
use super::file::{encode, IndexBytes, SealedIndex, Trust, INDEX_FOOTER_LEN};
use crate::segment::active::ActiveTable;
use crate::segment::footer::{le_u32, le_u64};

const MAGIC: [u8; 8] = *b"ACTLOGAS";
const TRAILER: usize = 24;

/// The snapshot file of a segment file.
pub fn snapshot_path(segment: &Path) -> PathBuf {
    segment.with_extension("aidx")
}

/// Serializes `index` (covering every record of `table`) with its trailer.
pub(crate) fn encode_snapshot(
    base_id: u64,
    index: &ActiveIndex,
    table: &ActiveTable,
    data_crc: u32,
) -> Vec<u8> {
    let mut out = encode(base_id, &index.sorted(), &table.ts);
    let mut t = [0u8; TRAILER];
    t[0..8].copy_from_slice(&MAGIC);
    t[8..16].copy_from_slice(&table.end.to_le_bytes());
    t[16..20].copy_from_slice(&data_crc.to_le_bytes());
    let c = crc32fast::hash(&t[0..20]);
    t[20..24].copy_from_slice(&c.to_le_bytes());
    out.extend_from_slice(&t);
    out
}

/// Loads a snapshot for the active segment whose bytes are `segment` and
/// whose committed records are `table`. Returns the index and how many
/// records it covers, or why it cannot be used.
pub(crate) fn load_snapshot(
    path: &Path,
    bytes: Vec<u8>,
    segment: &[u8],
    base_id: u64,
    table: &ActiveTable,
) -> Result<(ActiveIndex, usize), String> {
    if bytes.len() < TRAILER + INDEX_FOOTER_LEN {
        return Err("too short".into());
    }
    let (body, t) = bytes.split_at(bytes.len() - TRAILER);
    if t[0..8] != MAGIC || le_u32(&t[20..24]) != crc32fast::hash(&t[0..20]) {
        return Err("trailer damaged".into());
    }
    let data_end = le_u64(&t[8..16]);
    let covered = table.offsets.partition_point(|&o| u64::from(o) < data_end);
    let boundary = table
        .offsets
        .get(covered)
        .map_or(table.end, |&o| u64::from(o));
    if boundary != data_end || data_end as usize > segment.len() {
        return Err("does not end at a record boundary of the segment".into());
    }
    if crc32fast::hash(&segment[..data_end as usize]) != le_u32(&t[16..20]) {
        return Err("the segment changed since the snapshot".into());
    }
    let idx = SealedIndex::parse(
        path,
        IndexBytes::Owned(body.to_vec()),
        base_id,
        covered as u64,
        Trust::Unchecked,
    )?;
    let mut active = ActiveIndex::default();
    idx.for_prefix(&[], |key, _, load| {
        active.insert_bitmap(key, load()?);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok((active, covered))
}
