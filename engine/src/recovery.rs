//! Open-time scan of the active segment: where the log really ends, and
//! whether what follows is a torn tail (safe to cut) or damage to
//! acknowledged data (refuse to open).
//!
//! The scan reads frames from the header on. The first frame that is short,
//! has a bad length or flags, a bad CRC, an out-of-sequence id or a ts that
//! goes backwards ends the log. The log's end is then the end of the last
//! frame carrying [`FLAG_COMMIT`](crate::frame::FLAG_COMMIT): complete frames
//! after it belong to a batch whose append never returned.
//!
//! Only zero bytes right after the last committed frame are the region the
//! writer preallocates (see `writer.rs`): not a torn tail, nothing to cut.
//! Otherwise whatever follows the end is searched for a valid frame with a
//! later id. None: a torn tail, truncated by the caller and reported. One: acknowledged
//! records may sit behind damage, so the scan fails with
//! [`Error::Corruption`] and nothing is touched. The search only runs the CRC
//! on offsets whose id field is plausible, so it is linear in the bytes that
//! follow, and no length read from the file is ever allocated.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN};
use crate::segment::active::ActiveTable;
use crate::segment::footer::le_u64;
use crate::segment::SEGMENT_HEADER_LEN;

/// What recovery cut off the end of the active segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The active segment file.
    pub file: PathBuf,
    /// Where the log now ends (the file was truncated to this length).
    pub offset: u64,
    /// Bytes removed.
    pub bytes_dropped: u64,
    /// Complete frames removed because their batch never committed.
    pub records_dropped: u64,
    /// Why the scan stopped.
    pub reason: String,
}

/// What `Log::open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files opened (sealed and active).
    pub segments: usize,
    /// Records readable after recovery.
    pub records: u64,
    /// Set when the active segment ended in a torn write that was truncated.
    pub torn_tail: Option<TornTail>,
    /// Leftover temporary files (from a crash mid-create) that were deleted.
    pub removed_temp_files: Vec<PathBuf>,
    /// True when the newest segment was sealed and a new active one was created.
    pub created_active: bool,
    /// Index files that were missing or damaged and were rebuilt: (file, problem).
    pub rebuilt_indexes: Vec<(PathBuf, String)>,
    /// Segments wholly below the watermark (retention or clear was cut short
    /// by a crash before unlinking them) that were deleted.
    pub deleted_below_watermark: Vec<PathBuf>,
    /// Id ranges `[from, to)` missing because `actlog-inspect repair` moved
    /// the segment that held them to `quarantine/`.
    pub quarantined_gaps: Vec<(u64, u64)>,
    /// Records of the active segment whose index came from the snapshot a
    /// clean close saved (the rest were re-indexed from their frames).
    pub active_index_snapshot: Option<u64>,
    /// Why a snapshot that was present could not be used.
    pub snapshot_ignored: Option<String>,
}

impl RecoveryReport {
    /// True when recovery changed nothing on disk.
    pub fn is_clean(&self) -> bool {
        self.torn_tail.is_none()
            && self.removed_temp_files.is_empty()
            && !self.created_active
            && self.rebuilt_indexes.is_empty()
            && self.deleted_below_watermark.is_empty()
    }
}

/// The result of scanning an active segment's bytes.
#[derive(Debug)]
pub struct Scan {
    /// Committed records: offsets and ts.
    pub table: ActiveTable,
    /// CRC32 state over `[0, end)`.
    pub crc: crc32fast::Hasher,
    /// Where the committed log ends.
    pub end: u64,
    /// Present when bytes after `end` must be cut.
    pub torn: Option<TornTail>,
}

/// Scans `bytes` (the whole active segment, header included) of the segment
/// at `path` whose first id is `base_id`.
pub fn scan_active(bytes: &[u8], path: &Path, base_id: u64) -> Result<Scan> {
    let mut pos = SEGMENT_HEADER_LEN;
    let mut table = ActiveTable::default();
    let mut committed = 0usize;
    let mut end = SEGMENT_HEADER_LEN;
    let mut last_ts = i64::MIN;
    let mut next_id = base_id;
    let mut zeros = false;
    let stop: Option<String> = loop {
        if pos == bytes.len() {
            break None;
        }
        let f = match frame::decode(&bytes[pos..]) {
            Ok(f) => f,
            // Only zeros left, however few (shorter than a frame header
            // they decode as a short frame): the preallocated region if they
            // follow a commit.
            Err(_) if bytes[pos..].iter().all(|&b| b == 0) => {
                zeros = true;
                break Some("zeros after the last frame".to_string());
            }
            Err(e) => break Some(e.to_string()),
        };
        if f.header.id != next_id {
            break Some(format!(
                "frame holds id {} where id {next_id} belongs",
                f.header.id
            ));
        }
        if f.header.ts < last_ts {
            break Some(format!("frame ts {} goes backwards", f.header.ts));
        }
        table.offsets.push(pos as u32);
        table.ts.push(f.header.ts);
        last_ts = f.header.ts;
        next_id += 1;
        pos += f.header.frame_len();
        if f.header.is_commit() {
            committed = table.offsets.len();
            end = pos;
        }
    };
    let uncommitted = (table.offsets.len() - committed) as u64;
    table.offsets.truncate(committed);
    table.ts.truncate(committed);
    table.end = end as u64;

    if let Some(reason) = &stop {
        if let Some((offset, id)) = find_valid_frame(bytes, pos + 1, next_id - 1) {
            return Err(Error::corruption(
                path,
                pos as u64,
                format!(
                    "{reason}, but a valid frame (id {id}) follows at offset {offset}: \
                     acknowledged records lie behind damaged bytes"
                ),
            ));
        }
    }
    // Zeros right after the last committed frame: the preallocated region.
    let preallocated = zeros && pos == end;
    let torn = (end < bytes.len() && !preallocated).then(|| TornTail {
        file: path.to_path_buf(),
        offset: end as u64,
        bytes_dropped: (bytes.len() - end) as u64,
        records_dropped: uncommitted,
        reason: stop.unwrap_or_else(|| "the last batch never committed".to_string()),
    });
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..end]);
    Ok(Scan {
        table,
        crc,
        end: end as u64,
        torn,
    })
}

/// The first offset at or after `from` where a valid frame with an id above
/// `last_id` starts.
fn find_valid_frame(bytes: &[u8], from: usize, last_id: u64) -> Option<(usize, u64)> {
    if bytes.len() < from + HEADER_LEN {
        return None;
    }
    // No more frames fit in the remaining bytes than this.
    let max_frames = ((bytes.len() - from) / HEADER_LEN) as u64 + 1;
    (from..=bytes.len() - HEADER_LEN).find_map(|off| {
        let id = le_u64(&bytes[off + 8..off + 16]);
        if id <= last_id || id - last_id > max_frames {
            return None;
        }
        frame::decode(&bytes[off..])
            .ok()
            .map(|f| (off, f.header.id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_into, FLAG_COMMIT};
    use crate::segment::SegmentHeader;

    fn segment(batches: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut b = SegmentHeader {
            base_id: 10,
            created_us: 0,
        }
        .encode()
        .to_vec();
        let mut ends = vec![];
        let mut id = 10;
        for &n in batches {
            for i in 0..n {
                let flags = if i + 1 == n { FLAG_COMMIT } else { 0 };
                encode_into(&mut b, id, id as i64, flags, b"payload!");
                id += 1;
            }
            ends.push(b.len());
        }
        (b, ends)
    }

    #[test]
    fn clean_segment_has_no_tail() {
        let (b, _) = segment(&[1, 3, 2]);
        let s = scan_active(&b, Path::new("a"), 10).expect("clean");
        assert_eq!(s.table.offsets.len(), 6);
        assert_eq!(s.end, b.len() as u64);
        assert!(s.torn.is_none());
    }

    #[test]
    fn partial_batch_is_dropped_whole() {
        let (b, ends) = segment(&[2, 3]);
        // Cut inside the last frame of the second batch: its two complete frames go too.
        let cut = &b[..b.len() - 3];
        let s = scan_active(cut, Path::new("a"), 10).expect("torn tail");
        assert_eq!(s.table.offsets.len(), 2);
        assert_eq!(s.end, ends[0] as u64);
        let torn = s.torn.expect("reported");
        assert_eq!(torn.records_dropped, 2);
        assert_eq!(torn.bytes_dropped, (cut.len() - ends[0]) as u64);
    }

    #[test]
    fn zeros_after_the_last_commit_are_the_preallocated_region() {
        let (mut b, ends) = segment(&[2]);
        b.extend_from_slice(&[0u8; 100]);
        let s = scan_active(&b, Path::new("a"), 10).expect("zeros");
        assert_eq!(s.end, ends[0] as u64);
        assert!(s.torn.is_none(), "preallocated zeros are not a torn tail");
        // Garbage among the zeros is a torn tail again.
        b.extend_from_slice(b"\xde\xad\xbe\xef garbage that is not a frame at all........");
        let s = scan_active(&b, Path::new("a"), 10).expect("garbage");
        assert_eq!(
            s.torn.expect("torn").bytes_dropped,
            (b.len() - ends[0]) as u64
        );
    }

    #[test]
    fn fewer_zeros_than_a_frame_header_after_a_commit_are_not_torn() {
        // The zeroed region stops at the segment's size bound, so a few
        // bytes of it may be all that is left after the data.
        let (mut b, ends) = segment(&[2]);
        b.extend_from_slice(&[0u8; HEADER_LEN - 6]);
        let s = scan_active(&b, Path::new("a"), 10).expect("zeros");
        assert_eq!(s.end, ends[0] as u64);
        assert!(s.torn.is_none());
    }

    #[test]
    fn zeros_after_an_uncommitted_frame_are_a_torn_tail() {
        let (mut b, ends) = segment(&[2, 3]);
        // The second batch's last frame (the one with COMMIT) reads as zeros.
        let frame_len = (ends[1] - ends[0]) / 3;
        b.truncate(ends[1] - frame_len);
        b.extend_from_slice(&[0u8; 64]);
        let s = scan_active(&b, Path::new("a"), 10).expect("torn");
        assert_eq!(s.end, ends[0] as u64);
        let torn = s.torn.expect("the uncommitted frames are dropped");
        assert_eq!(torn.records_dropped, 2);
    }

    #[test]
    fn damage_before_valid_frames_is_corruption() {
        let (mut b, ends) = segment(&[2, 2]);
        b[ends[0] - 3] ^= 1; // inside the second frame of the first batch
        let err = scan_active(&b, Path::new("a"), 10).expect_err("corruption");
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
        assert!(err.to_string().contains("actlog-inspect"), "{err}");
    }
}
