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
//! Otherwise whatever follows the end is searched for valid frames with later
//! ids. None: a torn tail, truncated by the caller and reported. Some: they
//! are either the rest of a flush that a crash tore (its pages reached the
//! disk in any order, some not at all) or acknowledged records behind
//! damage. Segment format 2 tells the two apart (see [`torn_flush`]); in
//! format 1, and whenever the evidence is not there, the scan fails with
//! [`Error::Corruption`] and nothing is touched. The search only runs the
//! CRC on offsets whose id field is plausible, so it is linear in the bytes
//! that follow, and no length read from the file is ever allocated.
//!
//! Which file is scanned this way is decided by position, never by its
//! bytes: the newest segment of a directory is the active one, whatever it
//! ends with (a record's payload can imitate a seal footer; only a
//! successor proves that a segment was sealed, see `log/open.rs`). A seal
//! trailer at the end of the newest file is cut like any torn tail.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN};
use crate::segment::active::ActiveTable;
use crate::segment::footer::le_u64;
use crate::segment::{SegmentHeader, SEGMENT_HEADER_LEN};

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
    /// Ids `[from, to)` skipped by this open: the id reservation said they
    /// may have been handed out in a segment no longer here (quarantined, or
    /// newer than the backup the directory was restored from). Recorded in
    /// `quarantine/`; never handed out.
    pub lost_ids: Option<(u64, u64)>,
    /// The active segment this open sealed before starting a new one (the
    /// ids went on past a gap, or the segment was of an older format).
    pub sealed_on_open: Option<PathBuf>,
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
            && self.lost_ids.is_none()
            && self.sealed_on_open.is_none()
    }
}

/// The result of scanning an active segment's bytes.
#[derive(Debug)]
pub struct Scan {
    /// The segment's header.
    pub header: SegmentHeader,
    /// Committed records: offsets and ts.
    pub table: ActiveTable,
    /// CRC32 state over `[0, end)`.
    pub crc: crc32fast::Hasher,
    /// Where the committed log ends.
    pub end: u64,
    /// Present when bytes after `end` must be cut.
    pub torn: Option<TornTail>,
}

/// Bytes of the unit a disk writes whole: a torn write keeps or loses whole
/// sectors (512 bytes; a 4 KiB page is eight of them).
pub const SECTOR: usize = 512;

/// Walks the frames of an active segment from its header on, up to the
/// first that does not continue the log (see the module docs).
fn walk(bytes: &[u8], path: &Path, base_id: u64) -> Result<Walk> {
    let header = SegmentHeader::decode(bytes, path)?;
    if header.base_id != base_id {
        return Err(Error::corruption(
            path,
            16,
            format!(
                "header says the segment starts at id {}, its name says {base_id}",
                header.base_id
            ),
        ));
    }
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
    Ok(Walk {
        header,
        table,
        end,
        pos,
        next_id,
        stop,
        zeros,
        uncommitted,
    })
}

/// Where [`walk`] stopped and what it found before.
struct Walk {
    header: SegmentHeader,
    /// The committed frames.
    table: ActiveTable,
    /// End of the last committed frame.
    end: usize,
    /// Where the walk stopped.
    pos: usize,
    /// The id a frame at `pos` would have held.
    next_id: u64,
    /// Why it stopped before the file's end.
    stop: Option<String>,
    /// Only zeros from `pos` on.
    zeros: bool,
    /// Complete frames after the last commit.
    uncommitted: u64,
}

/// Where the committed frames at the start of the active segment end,
/// whatever follows them (damage included), and before offset `before`
/// (where damage was found in a frame whose CRC holds, such as a payload
/// that is no record): `(offset, records)`, always at the end of a
/// committed batch. For `actlog-inspect repair`, which cuts a damaged
/// active segment there after keeping a copy.
pub fn committed_prefix(
    bytes: &[u8],
    path: &Path,
    base_id: u64,
    before: u64,
) -> Result<(u64, u64)> {
    let w = walk(bytes, path, base_id)?;
    if w.end as u64 <= before {
        return Ok((w.end as u64, w.table.offsets.len() as u64));
    }
    let mut cut = (SEGMENT_HEADER_LEN as u64, 0);
    for (i, &off) in w.table.offsets.iter().enumerate() {
        // The walk decoded every frame it put in the table.
        let f = frame::decode(&bytes[off as usize..])
            .map_err(|e| Error::corruption(path, u64::from(off), e.to_string()))?;
        let end = u64::from(off) + f.header.frame_len() as u64;
        if end > before {
            break;
        }
        if f.header.is_commit() {
            cut = (end, i as u64 + 1);
        }
    }
    Ok(cut)
}

/// Scans `bytes` (the whole active segment, header included) of the segment
/// at `path`, whose name says its first id is `base_id`.
pub fn scan_active(bytes: &[u8], path: &Path, base_id: u64) -> Result<Scan> {
    let Walk {
        header,
        table,
        end,
        pos,
        next_id,
        stop,
        zeros,
        uncommitted,
    } = walk(bytes, path, base_id)?;
    let marks_flushes = header.marks_flushes();

    let mut stop = stop;
    let mut dropped_after = 0u64;
    if let Some(reason) = &stop {
        if let Some((offset, id)) = find_valid_frame(bytes, pos + 1, next_id - 1) {
            match torn_flush(bytes, pos, next_id - 1).filter(|_| marks_flushes) {
                Some(frames) => {
                    dropped_after = frames;
                    stop = Some(format!(
                        "{reason}; the {frames} valid frame(s) after it, from offset {offset}, \
                         belong to the same flush, which a crash tore before it was \
                         acknowledged"
                    ));
                }
                None => {
                    return Err(Error::corruption(
                        path,
                        pos as u64,
                        format!(
                            "{reason}, but a valid frame (id {id}) follows at offset {offset}: \
                             acknowledged records lie behind damaged bytes"
                        ),
                    ))
                }
            }
        }
    }
    // Zeros right after the last committed frame: the preallocated region.
    let preallocated = zeros && pos == end;
    let torn = (end < bytes.len() && !preallocated).then(|| TornTail {
        file: path.to_path_buf(),
        offset: end as u64,
        bytes_dropped: (bytes.len() - end) as u64,
        records_dropped: uncommitted + dropped_after,
        reason: stop.unwrap_or_else(|| "the last batch never committed".to_string()),
    });
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..end]);
    Ok(Scan {
        header,
        table,
        crc,
        end: end as u64,
        torn,
    })
}

/// Whether the valid frames found after the scan's stop point `stop` are the
/// rest of a torn flush that was never acknowledged; if so, how many there
/// are. `last_id` is the id of the last valid frame before `stop`.
///
/// Flushes are serialized: the writer starts one only after the previous
/// one's fdatasync succeeded, and marks its first frame with
/// [`FLAG_FLUSH`](crate::frame::FLAG_FLUSH). So:
///
/// * if the frame at the stop point passes its checksum once its header is
///   set to what it must have been (the next id, a length reaching a valid
///   frame after it, known flags), only bits of its header were damaged:
///   damage (bit rot), not a lost write;
/// * if the frame at the stop point reads as the next one (its header holds
///   the next id and a length in range) and a valid frame starts right
///   where it ends, the damage lies within that one frame, with intact
///   frames on both sides: damage (bit rot), not a lost write;
/// * if any valid frame after the stop point, outside the stop frame's own
///   extent, starts a flush, the flush the damage lies in had completed (and
///   was acknowledged): damage;
/// * otherwise the damage and every valid frame after it lie in the last
///   flush the file received. It is torn, not damaged, when a sector that
///   did not reach the disk shows in the bytes that no valid frame covers
///   between the stop point and the last valid frame: it reads as the
///   preallocated zeros, so either the bytes from the stop point to the end
///   of its sector are zeros (the lost sector holds the stop point) or a
///   whole aligned sector is, or the file ends inside the stop frame. Zeros
///   inside a valid frame (a client may put any number in its payload) never
///   count.
///
/// Frames a client planted inside its own payload can only be found inside
/// damaged bytes; they can make this refuse (a planted flush start outside
/// the stop frame's extent, when its header is lost; bytes they cover),
/// never cut more than the torn tail would be cut without them.
///
/// What this cannot tell apart: a disk that loses whole sectors of the last
/// flush *after* acknowledging it, and returns zeros for them; and a lost
/// sector that lies wholly inside one large frame whose neighbours reached
/// the disk (refused as damage: `actlog-inspect repair` cuts it without
/// reusing ids).
fn torn_flush(bytes: &[u8], stop: usize, last_id: u64) -> Option<u64> {
    // The valid frames after the stop point: (offset, length, starts a flush).
    let mut frames: Vec<(usize, usize, bool)> = Vec::new();
    let mut at = stop + 1;
    let mut last = last_id;
    while let Some((off, _)) = find_valid_frame(bytes, at, last) {
        let f = frame::decode(&bytes[off..]).ok()?;
        frames.push((off, f.header.frame_len(), f.header.starts_flush()));
        last = f.header.id;
        at = off + f.header.frame_len();
    }
    // Damage confined to the stop frame's header: given the header it must
    // have had (the next id, a length reaching a valid frame found after
    // it, known flags), its checksum holds. A flipped bit in an intact
    // frame's length, id or flags, not a lost write: refuse.
    if frames
        .iter()
        .any(|&(off, _, _)| header_repairs(bytes, stop, off, last_id + 1))
    {
        return None;
    }
    // Damage within the stop frame's body, its header intact and a valid
    // frame right after it: refuse.
    let plausible = plausible_frame_len(bytes, stop, last_id + 1);
    if let Some(len) = plausible {
        if frames.iter().any(|&(off, _, _)| off == stop + len) {
            return None;
        }
    }
    // A later flush had started: the damage lies in an acknowledged one.
    // (Frames inside the stop frame's own extent lie where its payload was,
    // which a client chose: they say nothing about flushes.)
    let inside = |off: usize| plausible.is_some_and(|len| off < stop + len);
    if frames.iter().any(|&(off, _, flush)| flush && !inside(off)) {
        return None;
    }
    // The region to look for a lost sector in: up to the last valid frame,
    // and at least over the stop frame's own extent when its header reads
    // as the next frame's.
    let mut region_end = frames.last().map_or(stop, |&(off, _, _)| off);
    if let Some(len) = plausible {
        if stop + len > bytes.len() {
            // The file ends inside the stop frame: the rest of it never
            // reached the disk (what a torn tail is), and whatever valid
            // frames were found lie inside it, where its payload was.
            return Some(frames.len() as u64);
        }
        // Up to the end of the sector the frame ends in: a lost sector there
        // holds the frame's last bytes and the zeros after them.
        let frame_end = (stop + len).div_ceil(SECTOR) * SECTOR;
        region_end = region_end.max(frame_end.min(bytes.len()));
    }
    let zero = |range: &[u8]| range.iter().all(|&b| b == 0);
    let sector_end = |at: usize| (at / SECTOR + 1) * SECTOR;
    let mut lost_sector = false;
    let mut hole_start = stop;
    let bounds = frames
        .iter()
        .map(|&(off, len, _)| (off, len))
        .chain(std::iter::once((region_end, 0)));
    for (off, len) in bounds {
        if off > hole_start {
            // The hole [hole_start, off): is a lost sector in it?
            let first_full = if hole_start == stop {
                let end = sector_end(stop);
                if end <= off && zero(&bytes[stop..end]) {
                    lost_sector = true;
                }
                end
            } else {
                hole_start.div_ceil(SECTOR) * SECTOR
            };
            lost_sector |= (first_full..off.saturating_sub(SECTOR - 1))
                .step_by(SECTOR)
                .any(|s| zero(&bytes[s..s + SECTOR]));
        }
        hole_start = hole_start.max(off + len);
    }
    lost_sector.then_some(frames.len() as u64)
}

/// Whether the frame at `at` passes its stored checksum once its header is
/// what it must have been if the frame held id `id` and ended where the
/// valid frame at `next` starts (any known flags; its ts and payload as
/// stored).
fn header_repairs(bytes: &[u8], at: usize, next: usize, id: u64) -> bool {
    let Some(len) = next.checked_sub(at + HEADER_LEN) else {
        return false;
    };
    if !(1..=frame::MAX_PAYLOAD).contains(&len) {
        return false;
    }
    let stored = crate::segment::footer::le_u32(&bytes[at..at + 4]);
    let ts = &bytes[at + 16..at + HEADER_LEN];
    let payload = &bytes[at + HEADER_LEN..next];
    let known = crate::frame::FLAG_COMMIT | crate::frame::FLAG_FLUSH;
    (0..=known).any(|flags| {
        let mut h = crc32fast::Hasher::new();
        h.update(&((len as u32) | (u32::from(flags) << 24)).to_le_bytes());
        h.update(&id.to_le_bytes());
        h.update(ts);
        h.update(payload);
        h.finalize() == stored
    })
}

/// The length of the frame at `at` if its header reads as the frame of id
/// `id` (a length in range, known flags), whatever its CRC says.
fn plausible_frame_len(bytes: &[u8], at: usize, id: u64) -> Option<usize> {
    let head = bytes.get(at..at + HEADER_LEN)?;
    let len_flags = crate::segment::footer::le_u32(&head[4..8]);
    let len = (len_flags & 0x00FF_FFFF) as usize;
    let flags = (len_flags >> 24) as u8;
    let known = crate::frame::FLAG_COMMIT | crate::frame::FLAG_FLUSH;
    (le_u64(&head[8..16]) == id && (1..=frame::MAX_PAYLOAD).contains(&len) && flags & !known == 0)
        .then_some(HEADER_LEN + len)
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

    fn segment(batches: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut b = SegmentHeader::new(10, 0).encode().to_vec();
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

    /// A format-`version` segment of `flushes`, each a list of batch sizes,
    /// with 200-byte payloads; returns the bytes and where each flush starts.
    fn flushed(version: u16, flushes: &[&[usize]]) -> (Vec<u8>, Vec<usize>) {
        let mut h = SegmentHeader::new(10, 0);
        h.version = version;
        let mut b = h.encode().to_vec();
        let mut starts = vec![];
        let mut id = 10;
        for batches in flushes {
            starts.push(b.len());
            let mut first = version >= 2;
            for &n in batches.iter() {
                for i in 0..n {
                    let mut flags = if i + 1 == n { FLAG_COMMIT } else { 0 };
                    if std::mem::take(&mut first) {
                        flags |= crate::frame::FLAG_FLUSH;
                    }
                    encode_into(&mut b, id, id as i64, flags, &[b'x'; 200]);
                    id += 1;
                }
            }
        }
        (b, starts)
    }

    /// Zeros the aligned sector `k` sectors after the one holding `at`.
    fn lose_sector(b: &mut [u8], at: usize, k: usize) {
        let s = (at / SECTOR + k) * SECTOR;
        b[s..s + SECTOR].fill(0);
    }

    #[test]
    fn a_torn_last_flush_is_cut_even_with_valid_frames_after_the_hole() {
        // Three flushes; the last (ten 1-record batches, ~2.2 KiB) lost its
        // second sector, while later sectors reached the disk.
        let (mut b, starts) = flushed(2, &[&[2], &[1, 1], &[1; 10]]);
        b.extend_from_slice(&[0u8; 1024]);
        lose_sector(&mut b, starts[2], 1);
        let s = scan_active(&b, Path::new("a"), 10).expect("a torn flush is no damage");
        let hole = (starts[2] / SECTOR + 1) * SECTOR;
        assert!(
            s.end >= starts[2] as u64 && s.end <= hole as u64,
            "{}",
            s.end
        );
        let torn = s.torn.expect("the rest of the flush is cut");
        assert!(torn.records_dropped >= 4, "{torn:?}");
        assert!(torn.reason.contains("same flush"), "{}", torn.reason);
        // Every record of the first two flushes is kept.
        assert!(s.table.offsets.len() >= 4);

        // The flush's first sector lost: the stop point is its first frame.
        let (mut b, starts) = flushed(2, &[&[2], &[1; 10]]);
        b.extend_from_slice(&[0u8; 1024]);
        let first_sector_end = (starts[1] / SECTOR + 1) * SECTOR;
        b[starts[1]..first_sector_end].fill(0);
        let s = scan_active(&b, Path::new("a"), 10).expect("torn");
        assert_eq!(s.end, starts[1] as u64);
        assert_eq!(s.table.offsets.len(), 2);
    }

    #[test]
    fn a_hole_followed_by_a_later_flush_is_corruption() {
        // The hole lies in the second flush, and the third flush's first
        // frame is on disk: the second flush had been acknowledged.
        let (mut b, starts) = flushed(2, &[&[2], &[1; 10], &[1, 1]]);
        lose_sector(&mut b, starts[1], 1);
        let err = scan_active(&b, Path::new("a"), 10).expect_err("acknowledged data damaged");
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
    }

    #[test]
    fn damage_in_the_last_flush_that_is_not_a_lost_sector_is_corruption() {
        let (mut b, starts) = flushed(2, &[&[2], &[1; 10]]);
        let at = starts[1] + 700;
        b[at] ^= 0x40; // bit rot, not a sector of zeros
        let err = scan_active(&b, Path::new("a"), 10).expect_err("bit rot");
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
    }

    #[test]
    fn format_1_has_no_flush_marks_and_keeps_refusing() {
        let (mut b, starts) = flushed(1, &[&[2], &[1; 10]]);
        lose_sector(&mut b, starts[1], 1);
        let err = scan_active(&b, Path::new("a"), 10).expect_err("format 1 cannot tell");
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
    }

    #[test]
    fn a_forged_footer_at_the_end_of_the_active_file_changes_nothing() {
        // The newest file is scanned as active whatever its last bytes
        // look like: a seal trailer there (real or imitated by a payload)
        // is cut like any torn tail, never read as a seal.
        let (mut b, _) = segment(&[1, 2]);
        let end = b.len();
        let footer = crate::segment::footer::Footer {
            count: 1,
            data_crc: 0,
            first_ts: 10,
            last_ts: 10,
            data_end: end as u64 - 52 + 4,
            table_crc: 0,
        };
        b.extend_from_slice(&[0x20, 0, 0, 0]);
        b.extend_from_slice(&footer.encode());
        let s = scan_active(&b, Path::new("a"), 10).expect("scan");
        assert_eq!(s.table.offsets.len(), 3);
        assert_eq!(s.end, end as u64);
        assert!(s.torn.is_some());
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
