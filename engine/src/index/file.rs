//! The sealed index file `seg-<base>.idx`, written once when its segment is
//! sealed (or rebuilt from the segment when missing or damaged).
//!
//! ```text
//! +-----------+-----------------------+-------------------------+-------------+
//! | fst map   | postings              | sparse ts               | footer 48 B |
//! +-----------+-----------------------+-------------------------+-------------+
//! ```
//!
//! * fst map: key `[field code] ++ term` → offset of its entry in postings.
//! * postings entry: `cardinality u32 | len u32 | roaring bitmap (len bytes,
//!   the portable roaring serialization)` of local record numbers.
//! * sparse ts: i64 ts of every 64th record (local 0, 64, 128, ...).
//! * footer: magic `ACTLOGIX` | version u16 | reserved u16 | count u32 |
//!   base_id u64 | fst_len u64 | postings_len u64 | body_crc u32 (CRC32 of
//!   everything before the footer) | footer_crc u32 (CRC32 of footer bytes 0..44).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use fst::{IntoStreamer, Streamer};
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::active::ActiveIndex;
use super::bitmap_view::BitmapView;
use super::fst_guard::{self, guard};
use super::terms::{TermSource, Terms};
use super::TS_STRIDE;
use crate::env::{FileBytes, FileHandle, FileSystem, OpenMode};
use crate::error::{Error, Result};
use crate::segment::footer::{le_u32, le_u64};
use crate::segment::sealed::{map_file, SealedSegment};

/// First 8 bytes of an index footer.
pub const INDEX_MAGIC: [u8; 8] = *b"ACTLOGIX";
/// Index format version.
pub const INDEX_VERSION: u16 = 1;
/// Footer length.
pub const INDEX_FOOTER_LEN: usize = 48;

/// The index file that belongs to a segment file.
pub fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// Serializes an index for a segment of `ts.len()` records starting at `base_id`.
/// `postings` must be sorted by key.
pub(crate) fn encode(base_id: u64, postings: &[(&[u8], &RoaringBitmap)], ts: &[i64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut post = Vec::new();
    let mut builder = fst::MapBuilder::memory();
    for (key, bm) in postings {
        // Keys are unique and sorted, so insert cannot fail.
        if builder.insert(key, post.len() as u64).is_err() {
            debug_assert!(false, "index keys out of order");
            continue;
        }
        post.extend_from_slice(&(bm.len() as u32).to_le_bytes());
        post.extend_from_slice(&(bm.serialized_size() as u32).to_le_bytes());
        // Writing to a Vec cannot fail.
        let _ = bm.serialize_into(&mut post);
    }
    let fst_bytes = builder.into_inner().unwrap_or_default();
    body.extend_from_slice(&fst_bytes);
    body.extend_from_slice(&post);
    for t in ts.iter().step_by(TS_STRIDE as usize) {
        body.extend_from_slice(&t.to_le_bytes());
    }
    let mut footer = [0u8; INDEX_FOOTER_LEN];
    footer[0..8].copy_from_slice(&INDEX_MAGIC);
    footer[8..10].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    footer[12..16].copy_from_slice(&(ts.len() as u32).to_le_bytes());
    footer[16..24].copy_from_slice(&base_id.to_le_bytes());
    footer[24..32].copy_from_slice(&(fst_bytes.len() as u64).to_le_bytes());
    footer[32..40].copy_from_slice(&(post.len() as u64).to_le_bytes());
    footer[40..44].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let fcrc = crc32fast::hash(&footer[0..44]);
    footer[44..48].copy_from_slice(&fcrc.to_le_bytes());
    body.extend_from_slice(&footer);
    body
}

/// Builds the index of a sealed segment by reading every record.
pub(crate) fn rebuild(seg: &SealedSegment) -> Result<Vec<u8>> {
    let mut idx = ActiveIndex::default();
    let mut ts = Vec::with_capacity(seg.count() as usize);
    let mut terms = Terms::default();
    for local in 0..seg.count() {
        let f = seg.frame(local)?;
        let rec = crate::RecordView::parse(f.header.id, f.header.ts, f.payload)
            .map_err(|why| Error::corruption(seg.path(), seg.frame_offset(local) as u64, why))?;
        terms.clear();
        terms.add(TermSource::of_view(&rec));
        idx.insert(local as u32, terms.keys(0));
        ts.push(rec.ts);
    }
    Ok(encode(seg.base_id(), &idx.sorted(), &ts))
}

/// Bytes an index is read from.
#[derive(Debug)]
pub(crate) enum IndexBytes {
    Mapped(FileBytes),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for IndexBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            IndexBytes::Mapped(m) => m,
            IndexBytes::Owned(v) => v,
        }
    }
}

/// A sub-range of shared index bytes (what the fst map reads).
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    bytes: Arc<IndexBytes>,
    range: Range<usize>,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        &(*self.bytes).as_ref()[self.range.clone()]
    }
}

/// A loaded sealed index.
pub struct SealedIndex {
    path: PathBuf,
    bytes: Arc<IndexBytes>,
    fst: fst::Map<Slice>,
    postings: Range<usize>,
    ts: Range<usize>,
    count: u32,
    /// Keys of small fields, by field code, cached on first use (see
    /// [`SealedIndex::for_prefix`]). The index never changes, so neither do they.
    field_keys: RwLock<FxHashMap<u8, Option<Arc<[FieldKey]>>>>,
}

/// One cached key: the term, its cardinality and its postings offset.
type FieldKey = (Box<[u8]>, u32, u64);

/// Most keys of one field a segment's cache holds; a field with more (words,
/// entity ids) is streamed from the fst every time instead.
const FIELD_CACHE_MAX_KEYS: usize = 1024;

impl std::fmt::Debug for SealedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedIndex")
            .field("path", &self.path)
            .field("terms", &self.fst.len())
            .field("count", &self.count)
            .finish()
    }
}

/// How much [`SealedIndex::parse`] checks of the bytes it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Encoded by this process just now: only the footer is read.
    Built,
    /// Read from a file whose body checksum the caller has verified: the
    /// term dictionary is checked (see `SealedIndex::check_dictionary`).
    Checksummed,
    /// Read from a file: the body checksum and the term dictionary are checked.
    Unchecked,
}

/// Why an index could not be used.
#[derive(Debug)]
pub enum IndexProblem {
    /// No index file.
    Missing,
    /// The file exists but is damaged or does not match its segment.
    Damaged(String),
}

impl std::fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexProblem::Missing => f.write_str("index file missing"),
            IndexProblem::Damaged(why) => write!(f, "index file damaged: {why}"),
        }
    }
}

impl SealedIndex {
    /// Parses index bytes for the segment `(base_id, count)`, checking as
    /// much as `trust` says (the body CRC is skipped when the caller verified
    /// it by streaming the file, to keep the map's pages untouched).
    pub(crate) fn parse(
        path: &Path,
        bytes: IndexBytes,
        base_id: u64,
        count: u64,
        trust: Trust,
    ) -> std::result::Result<SealedIndex, String> {
        let b = bytes.as_ref();
        if b.len() < INDEX_FOOTER_LEN {
            return Err("shorter than its footer".into());
        }
        let body_len = b.len() - INDEX_FOOTER_LEN;
        let f = &b[body_len..];
        if f[0..8] != INDEX_MAGIC || le_u32(&f[44..48]) != crc32fast::hash(&f[0..44]) {
            return Err("footer missing or damaged".into());
        }
        let version = u16::from_le_bytes([f[8], f[9]]);
        if version != INDEX_VERSION {
            return Err(format!("unknown index version {version}"));
        }
        let n = le_u32(&f[12..16]);
        let fbase = le_u64(&f[16..24]);
        if u64::from(n) != count || fbase != base_id {
            return Err(format!(
                "index describes ids {fbase}.. ({n} records), the segment holds {base_id}.. ({count})"
            ));
        }
        let fst_len = le_u64(&f[24..32]) as usize;
        let post_len = le_u64(&f[32..40]) as usize;
        let ts_len = n.div_ceil(TS_STRIDE) as usize * 8;
        if fst_len
            .checked_add(post_len)
            .and_then(|x| x.checked_add(ts_len))
            != Some(body_len)
        {
            return Err("section lengths do not add up to the file length".into());
        }
        if trust == Trust::Unchecked && crc32fast::hash(&b[..body_len]) != le_u32(&f[40..44]) {
            return Err("body checksum mismatch".into());
        }
        let bytes = Arc::new(bytes);
        let slice = Slice {
            bytes: bytes.clone(),
            range: 0..fst_len,
        };
        let fst = guard(|| fst::Map::new(slice))?.map_err(|e| format!("term dictionary: {e}"))?;
        let index = SealedIndex {
            path: path.to_path_buf(),
            bytes,
            fst,
            postings: fst_len..fst_len + post_len,
            ts: fst_len + post_len..body_len,
            count: n,
            field_keys: RwLock::default(),
        };
        if trust != Trust::Built {
            index.check_dictionary()?;
        }
        Ok(index)
    }

    /// Checks the whole term dictionary of bytes read from a file, so that a
    /// crafted one (valid checksums, invalid fst) is found at load, where a
    /// damaged index is rebuilt, rather than by a query: see
    /// [`fst_guard::check_nodes`]. A key's value is the offset of its
    /// postings entry, which is at least 8 bytes long and its own, hence the
    /// bounds on keys and values. Costs one pass over the dictionary's nodes
    /// (not over its keys, nor its postings, whose pages stay untouched);
    /// entries are checked when read, as before.
    fn check_dictionary(&self) -> std::result::Result<(), String> {
        let post_len = (self.postings.end - self.postings.start) as u64;
        fst_guard::check_nodes(self.fst.as_fst(), post_len / 8, post_len.saturating_sub(8))
    }

    /// A panic inside fst, as the corruption error of this index file.
    fn dictionary_error(&self, why: String) -> Error {
        Error::corruption(&self.path, 0, why)
    }

    /// Loads `seg`'s index file, verifying its checksum by streaming the file
    /// (so that the map's pages stay out of memory until queries touch them).
    pub(crate) fn load(
        fs: &dyn FileSystem,
        seg: &SealedSegment,
    ) -> std::result::Result<SealedIndex, IndexProblem> {
        let path = index_path(seg.path());
        let file = match fs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexProblem::Missing)
            }
            Err(e) => return Err(IndexProblem::Damaged(format!("cannot open: {e}"))),
        };
        let map = map_file(&*file, &path).map_err(|e| IndexProblem::Damaged(e.to_string()))?;
        let stored =
            (map.len() >= INDEX_FOOTER_LEN).then(|| le_u32(&map[map.len() - 8..map.len() - 4]));
        let body_len = map.len().saturating_sub(INDEX_FOOTER_LEN);
        let crc = stream_crc(&*file, body_len as u64)
            .map_err(|e| IndexProblem::Damaged(format!("cannot read: {e}")))?;
        if stored.is_some_and(|s| s != crc) {
            return Err(IndexProblem::Damaged("body checksum mismatch".into()));
        }
        SealedIndex::parse(
            &path,
            IndexBytes::Mapped(map),
            seg.base_id(),
            seg.count(),
            Trust::Checksummed,
        )
        .map_err(IndexProblem::Damaged)
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the file's mapped pages out of this process's resident set.
    pub(crate) fn release_pages(&self) {
        if let IndexBytes::Mapped(m) = &*self.bytes {
            m.release_pages();
        }
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> u64 {
        (*self.bytes).as_ref().len() as u64
    }

    fn entry(&self, offset: u64) -> Result<(u32, &[u8])> {
        let post = &(*self.bytes).as_ref()[self.postings.clone()];
        let bad = || {
            Error::corruption(
                &self.path,
                (self.postings.start as u64).saturating_add(offset),
                "postings entry out of bounds",
            )
        };
        // The offset comes from the file: checked arithmetic, so that a
        // huge one is an error, not an overflow (fuzz/regressions/decode_index).
        let at = usize::try_from(offset).map_err(|_| bad())?;
        let body = at.checked_add(8).ok_or_else(bad)?;
        let head = post.get(at..body).ok_or_else(bad)?;
        let card = le_u32(&head[0..4]);
        let len = le_u32(&head[4..8]) as usize;
        let end = body.checked_add(len).ok_or_else(bad)?;
        let bm = post.get(body..end).ok_or_else(bad)?;
        Ok((card, bm))
    }

    /// The bitmap of the postings entry at `offset`, decoded.
    pub(crate) fn decode_bitmap(&self, offset: u64) -> Result<RoaringBitmap> {
        let (_, bytes) = self.entry(offset)?;
        RoaringBitmap::deserialize_from(bytes).map_err(|e| self.bad_bitmap(offset, e))
    }

    /// The error for a postings entry at `offset` that holds no bitmap.
    fn bad_bitmap(&self, offset: u64, why: impl std::fmt::Display) -> Error {
        Error::corruption(
            &self.path,
            self.postings.start as u64 + offset,
            format!("bad bitmap: {why}"),
        )
    }

    /// The bitmap of `key`, if the key occurs.
    pub(crate) fn bitmap(&self, key: &[u8]) -> Result<Option<RoaringBitmap>> {
        match guard(|| self.fst.get(key)).map_err(|why| self.dictionary_error(why))? {
            Some(off) => self.decode_bitmap(off).map(Some),
            None => Ok(None),
        }
    }

    /// The bitmap of `key` read in place (see [`BitmapView`]), with the
    /// offset of its entry for [`SealedIndex::decode_bitmap`]; `None` if the key
    /// does not occur.
    pub(crate) fn view(&self, key: &[u8]) -> Result<Option<(u64, BitmapView<'_>)>> {
        let Some(off) = guard(|| self.fst.get(key)).map_err(|why| self.dictionary_error(why))?
        else {
            return Ok(None);
        };
        let (_, bytes) = self.entry(off)?;
        let view = BitmapView::parse(bytes).map_err(|why| self.bad_bitmap(off, why))?;
        Ok(Some((off, view)))
    }

    /// The union of the bitmaps of every key starting with `prefix`.
    pub(crate) fn prefix_union(&self, prefix: &[u8]) -> Result<RoaringBitmap> {
        let mut out = RoaringBitmap::new();
        self.for_prefix(prefix, |_, _, load| {
            out |= load()?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f(key, cardinality, bitmap loader)` for every key starting with `prefix`, in key order.
    pub(crate) fn for_prefix(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], u64, &dyn Fn() -> Result<RoaringBitmap>) -> Result<()>,
    ) -> Result<()> {
        // Facets walk a small field's keys in every segment on every call:
        // serve them from the cache rather than stream the fst (~0.5 µs a key).
        if let Some(keys) = prefix.first().and_then(|&code| self.field_keys(code)) {
            let start = keys.partition_point(|(k, _, _)| &**k < prefix);
            for (key, card, off) in keys[start..]
                .iter()
                .take_while(|(k, _, _)| k.starts_with(prefix))
            {
                f(key, u64::from(*card), &|| self.decode_bitmap(*off))?;
            }
            return Ok(());
        }
        let end = successor(prefix);
        let mut stream = guard(|| match end {
            Some(end) => self.fst.range().ge(prefix).lt(end).into_stream(),
            None => self.fst.range().ge(prefix).into_stream(),
        })
        .map_err(|why| self.dictionary_error(why))?;
        let mut key = Vec::new();
        while let Some(off) =
            next_key(&mut stream, &mut key).map_err(|why| self.dictionary_error(why))?
        {
            let (card, _) = self.entry(off)?;
            f(&key, u64::from(card), &|| self.decode_bitmap(off))?;
        }
        Ok(())
    }

    /// The keys with field code `code`, in order, if there are at most
    /// [`FIELD_CACHE_MAX_KEYS`] of them (looked up once per segment and code).
    fn field_keys(&self, code: u8) -> Option<Arc<[FieldKey]>> {
        if let Some(cached) = self
            .field_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&code)
        {
            return cached.clone();
        }
        // A damaged dictionary or entry is not cached; the uncached path
        // reports it.
        let mut stream = guard(|| match code.checked_add(1) {
            Some(end) => self.fst.range().ge([code]).lt([end]).into_stream(),
            None => self.fst.range().ge([code]).into_stream(),
        })
        .ok()?;
        let mut keys = Vec::new();
        let mut small = true;
        let mut key = Vec::new();
        while let Some(off) = next_key(&mut stream, &mut key).ok()? {
            if keys.len() == FIELD_CACHE_MAX_KEYS {
                small = false;
                break;
            }
            let Ok((card, _)) = self.entry(off) else {
                return None;
            };
            keys.push((Box::from(&key[..]), card, off));
        }
        let keys: Option<Arc<[FieldKey]>> = small.then(|| keys.into());
        self.field_keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(code, keys.clone());
        keys
    }

    /// Number of sparse ts samples.
    pub(crate) fn sparse_len(&self) -> u32 {
        ((self.ts.end - self.ts.start) / 8) as u32
    }

    /// Sample `k`: the ts of local `k * TS_STRIDE`.
    pub(crate) fn sparse_ts(&self, k: u32) -> i64 {
        let at = self.ts.start + k as usize * 8;
        le_u64(&(*self.bytes).as_ref()[at..at + 8]) as i64
    }

    /// Checks that this index is exactly what `seg`'s records produce.
    pub fn verify_against(&self, seg: &SealedSegment) -> Result<()> {
        let expected = rebuild(seg)?;
        let path = &self.path;
        let actual = (*self.bytes).as_ref();
        if actual != expected.as_slice() {
            let at = actual
                .iter()
                .zip(expected.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(actual.len().min(expected.len()));
            return Err(Error::corruption(
                path,
                at as u64,
                "index does not match its segment's records",
            ));
        }
        Ok(())
    }
}

/// The next key of `stream`, copied into `key`, and its value; a panic inside
/// fst is an error (and the stream must not be used after it).
fn next_key(
    stream: &mut fst::map::Stream<'_>,
    key: &mut Vec<u8>,
) -> std::result::Result<Option<u64>, String> {
    guard(|| {
        stream.next().map(|(k, v)| {
            key.clear();
            key.extend_from_slice(k);
            v
        })
    })
}

/// The smallest byte string greater than every string starting with `prefix`.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < u8::MAX {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

fn stream_crc(file: &dyn FileHandle, len: u64) -> std::io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    // No bigger than the file: most index files are far smaller than 64 KiB
    // (a log of small segments, the simulated ones of the fuzz targets), and
    // zeroing the whole buffer was a tenth of `append_crash`'s time.
    let mut buf = vec![0u8; len.min(1 << 16) as usize];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize())
}

impl<'a> TermSource<'a> {
    pub(crate) fn of_view(r: &crate::RecordView<'a>) -> Self {
        TermSource {
            category: r.category,
            action: r.action,
            actor: r.actor,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            entity_name: r.entity_name,
            message: r.message,
            severity: r.severity.as_str(),
            recorded_by: r.recorded_by,
        }
    }

    pub(crate) fn of_new(r: &'a crate::NewRecord) -> Self {
        TermSource {
            category: &r.category,
            action: &r.action,
            actor: r.actor.as_deref().unwrap_or(crate::SYSTEM_ACTOR),
            entity_type: r.entity_type.as_deref(),
            entity_id: r.entity_id.as_deref(),
            entity_name: r.entity_name.as_deref(),
            message: &r.message,
            severity: r.severity.as_str(),
            recorded_by: r.recorded_by.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index of three keys whose dictionary's root address is far out of
    /// range (checksums recomputed): fst panics on any access to it.
    fn crafted() -> (Vec<u8>, Vec<u8>) {
        let bm: RoaringBitmap = [0u32, 2].into_iter().collect();
        let keys: [&[u8]; 3] = [b"\x01auth", b"\x01device", b"\x07kitchen"];
        let postings: Vec<(&[u8], &RoaringBitmap)> = keys.iter().map(|k| (*k, &bm)).collect();
        let good = encode(1, &postings, &[10, 20, 30]);
        let f = &good[good.len() - INDEX_FOOTER_LEN..];
        let fst_len = le_u64(&f[24..32]) as usize;
        let mut bad = good.clone();
        bad[fst_len - 12..fst_len - 4].copy_from_slice(&[0xf6; 8]);
        let body_len = bad.len() - INDEX_FOOTER_LEN;
        let crc = crc32fast::hash(&bad[..body_len]);
        bad[body_len + 40..body_len + 44].copy_from_slice(&crc.to_le_bytes());
        let fcrc = crc32fast::hash(&bad[body_len..body_len + 44]);
        bad[body_len + 44..].copy_from_slice(&fcrc.to_le_bytes());
        (good, bad)
    }

    fn parse(bytes: Vec<u8>, trust: Trust) -> std::result::Result<SealedIndex, String> {
        SealedIndex::parse(Path::new("t.idx"), IndexBytes::Owned(bytes), 1, 3, trust)
    }

    #[test]
    fn a_crafted_dictionary_fails_the_load_check() {
        let (good, bad) = crafted();
        assert!(parse(good, Trust::Unchecked).is_ok());
        for trust in [Trust::Unchecked, Trust::Checksummed] {
            let e = parse(bad.clone(), trust).expect_err("rejected at load");
            assert!(e.contains("fst panicked"), "{e}");
        }
    }

    /// Past the load check (here skipped), every lookup is still guarded:
    /// a panic inside fst is a corruption error of the file, not a panic.
    #[test]
    fn lookups_on_a_crafted_dictionary_are_errors() {
        let (_, bad) = crafted();
        let idx = parse(bad, Trust::Built).expect("the footer is valid");
        let is_dictionary_error = |e: &Error| matches!(e, Error::Corruption { reason, .. } if reason.contains("fst panicked"));
        let e = idx.bitmap(b"\x01auth").expect_err("a lookup fails");
        assert!(is_dictionary_error(&e), "{e}");
        // Every key, a small field's keys (the cached path), the words.
        for prefix in [&b""[..], b"\x01", b"\x07k"] {
            let mut calls = 0;
            let e = idx
                .for_prefix(prefix, |_, _, _| {
                    calls += 1;
                    Ok(())
                })
                .expect_err("a walk fails");
            assert!(is_dictionary_error(&e), "{prefix:?}: {e}");
            assert_eq!(calls, 0);
        }
    }
}
