//! Reading one serialized roaring bitmap where it lies, without decoding it.
//!
//! A filtered page wants a few dozen matches next to its cursor, but
//! `RoaringBitmap::deserialize_from` allocates, copies and validates every
//! container of a term's bitmap. A sealed segment of 328,000 records holds
//! six containers; for a common term (`category=device`) they are 8 KiB
//! bitmaps, and decoding them was half of a deep page's instructions. A
//! [`BitmapView`] parses only the header (a few bytes a container); a
//! membership test or a walk then reads the container bytes in the mapped
//! index file, touching one or two of them.
//!
//! The `roaring` crate has no such reader, so this one follows the portable
//! format's specification (RoaringFormatSpec) for the three container kinds
//! the crate writes and reads. What it accepts, it reads as the crate would:
//! a property test compares the two on random bitmaps, and the `decode_index`
//! fuzz target on arbitrary bytes. Header, sizes and bounds are checked at
//! parse; the contents of arrays are not (that would cost what the view
//! saves). Bytes crafted to pass the index file's checksum with an unsorted
//! array can therefore give wrong answers, but never a panic or an
//! out-of-bounds read: every access is bounds-checked by construction.

use std::ops::{ControlFlow, Range};

use smallvec::SmallVec;

/// First word of a bitmap with no run containers; the count follows.
const NO_RUN_COOKIE: u32 = 12346;
/// Low half of the first word of a bitmap with run containers; the high half
/// is the container count − 1.
const RUN_COOKIE: u16 = 12347;
/// With run containers, the offset table is present from this many containers.
const NO_OFFSET_THRESHOLD: usize = 4;
/// Containers of at most this many values are arrays (unless runs).
const ARRAY_LIMIT: u32 = 4096;
/// A bitmap container: 1024 little-endian u64 words.
const BITMAP_BYTES: usize = 8192;

/// How a container stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Sorted u16 values.
    Array,
    /// 65,536 bits.
    Bitmap,
    /// Sorted, disjoint (start, length − 1) u16 pairs.
    Run,
}

/// One container: the high 16 bits it covers and where its data lies.
#[derive(Debug, Clone, Copy)]
struct Container {
    key: u16,
    kind: Kind,
    /// Byte range in the view's bytes (a postings entry's length is a u32).
    data: (u32, u32),
}

/// A serialized roaring bitmap, read in place.
#[derive(Debug, Clone)]
pub(crate) struct BitmapView<'a> {
    bytes: &'a [u8],
    /// Inline up to a segment of 8 × 65,536 records: no allocation a lookup.
    containers: SmallVec<[Container; 8]>,
    len: u64,
}

/// Why bytes are not a serialized roaring bitmap.
pub(crate) type ViewError = &'static str;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ViewError> {
        let end = self.at.checked_add(n).ok_or("length overflows")?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or("bitmap shorter than its header says")?;
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, ViewError> {
        self.take(2).map(u16_at0)
    }

    fn u32(&mut self) -> Result<u32, ViewError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A position in a view's bytes, which must fit a u32.
fn offset(at: usize) -> Result<u32, ViewError> {
    u32::try_from(at).map_err(|_| "bitmap longer than 4 GiB")
}

/// The little-endian u16 at the start of `b` (at least 2 bytes).
fn u16_at0(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// The `i`-th little-endian u16 of `b`.
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[2 * i], b[2 * i + 1]])
}

/// The `i`-th little-endian u64 of `b`.
fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[8 * i..8 * i + 8]);
    u64::from_le_bytes(a)
}

/// First index in `0..n` whose value is `>= x`, for values sorted ascending.
fn lower_bound(n: usize, x: u32, value: impl Fn(usize) -> u32) -> usize {
    super::partition_point(n, |i| value(i) < x)
}

impl<'a> BitmapView<'a> {
    /// Parses the header of `bytes` and checks that every container lies
    /// within them (trailing bytes are ignored, as the crate ignores them).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, ViewError> {
        let mut r = Reader { bytes, at: 0 };
        let cookie = r.u32()?;
        let (n, runs) = if cookie == NO_RUN_COOKIE {
            (r.u32()? as usize, None)
        } else if cookie as u16 == RUN_COOKIE {
            let n = (cookie >> 16) as usize + 1;
            (n, Some(r.take(n.div_ceil(8))?))
        } else {
            return Err("unknown roaring cookie");
        };
        if n > 1 << 16 {
            return Err("more containers than 16-bit keys");
        }
        let desc = r.take(n * 4)?;
        if runs.is_none() || n >= NO_OFFSET_THRESHOLD {
            r.take(n * 4)?;
        }
        let mut containers = SmallVec::with_capacity(n);
        let mut len = 0u64;
        for i in 0..n {
            let key = u16_at(desc, 2 * i);
            let card = u32::from(u16_at(desc, 2 * i + 1)) + 1;
            if containers.last().is_some_and(|c: &Container| c.key >= key) {
                return Err("container keys out of order");
            }
            let is_run = runs.is_some_and(|b| b[i / 8] & (1 << (i % 8)) != 0);
            let (kind, data) = if is_run {
                let count = usize::from(r.u16()?);
                let start = r.at;
                let data = r.take(count * 4)?;
                check_runs(data)?;
                (Kind::Run, start)
            } else if card <= ARRAY_LIMIT {
                let start = r.at;
                r.take(card as usize * 2)?;
                (Kind::Array, start)
            } else {
                let start = r.at;
                r.take(BITMAP_BYTES)?;
                (Kind::Bitmap, start)
            };
            containers.push(Container {
                key,
                kind,
                data: (offset(data)?, offset(r.at)?),
            });
            len += u64::from(card);
        }
        Ok(BitmapView {
            bytes,
            containers,
            len,
        })
    }

    /// The number of values, as the header gives it.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn data(&self, c: &Container) -> &'a [u8] {
        // In bounds: `parse` took exactly this range.
        &self.bytes[c.data.0 as usize..c.data.1 as usize]
    }

    /// Whether `x` is in the bitmap.
    pub(crate) fn contains(&self, x: u32) -> bool {
        let key = (x >> 16) as u16;
        let low = x & 0xffff;
        let Ok(i) = self.containers.binary_search_by_key(&key, |c| c.key) else {
            return false;
        };
        let c = &self.containers[i];
        let d = self.data(c);
        match c.kind {
            Kind::Array => {
                let n = d.len() / 2;
                let at = lower_bound(n, low, |i| u32::from(u16_at(d, i)));
                at < n && u32::from(u16_at(d, at)) == low
            }
            Kind::Bitmap => u64_at(d, low as usize / 64) >> (low % 64) & 1 == 1,
            Kind::Run => {
                let n = d.len() / 4;
                // The last run starting at or before `low`.
                let after = lower_bound(n, low + 1, |i| u32::from(u16_at(d, 2 * i)));
                after > 0 && {
                    let (start, extra) = run(d, after - 1);
                    low <= start + extra
                }
            }
        }
    }

    /// Calls `f` with every value in `range`, ascending or (`desc`)
    /// descending, until it breaks.
    pub(crate) fn walk(
        &self,
        range: Range<u32>,
        desc: bool,
        mut f: impl FnMut(u32) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if range.is_empty() {
            return ControlFlow::Continue(());
        }
        let (first, last) = (range.start, range.end - 1);
        let (kf, kl) = ((first >> 16) as u16, (last >> 16) as u16);
        let lo = self.containers.partition_point(|c| c.key < kf);
        let hi = self.containers.partition_point(|c| c.key <= kl);
        let visit = |c: &Container, f: &mut dyn FnMut(u32) -> ControlFlow<()>| {
            let base = u32::from(c.key) << 16;
            // The container's part of the range, as 16-bit lows.
            let a = if c.key == kf { first & 0xffff } else { 0 };
            let b = if c.key == kl { last & 0xffff } else { 0xffff };
            walk_container(c.kind, self.data(c), a, b, desc, &mut |low| f(base | low))
        };
        let picked = &self.containers[lo..hi.max(lo)];
        if desc {
            for c in picked.iter().rev() {
                visit(c, &mut f)?;
            }
        } else {
            for c in picked {
                visit(c, &mut f)?;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Run `i` of a run container's data: (start, length − 1).
fn run(d: &[u8], i: usize) -> (u32, u32) {
    (u32::from(u16_at(d, 2 * i)), u32::from(u16_at(d, 2 * i + 1)))
}

/// Runs must be sorted, disjoint and stay within 16 bits (the crate merges
/// overlapping ones; a view could not, so it refuses them).
fn check_runs(d: &[u8]) -> Result<(), ViewError> {
    let mut next_free = 0u32;
    for i in 0..d.len() / 4 {
        let (start, extra) = run(d, i);
        if start < next_free || start + extra > 0xffff {
            return Err("run container runs out of order or past 16 bits");
        }
        next_free = start + extra + 1;
    }
    Ok(())
}

/// Calls `f` with the lows in `a..=b` that container data `d` holds.
fn walk_container(
    kind: Kind,
    d: &[u8],
    a: u32,
    b: u32,
    desc: bool,
    f: &mut dyn FnMut(u32) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match kind {
        Kind::Array => {
            let n = d.len() / 2;
            let value = |i| u32::from(u16_at(d, i));
            let (from, to) = (lower_bound(n, a, value), lower_bound(n, b + 1, value));
            if desc {
                for i in (from..to).rev() {
                    f(value(i))?;
                }
            } else {
                for i in from..to {
                    f(value(i))?;
                }
            }
        }
        Kind::Bitmap => {
            let (wa, wb) = ((a / 64) as usize, (b / 64) as usize);
            // The bits of word `w` inside a..=b.
            let masked = |w: usize| {
                let mut bits = u64_at(d, w);
                if w == wa {
                    bits &= u64::MAX << (a % 64);
                }
                if w == wb {
                    bits &= u64::MAX >> (63 - b % 64);
                }
                bits
            };
            if desc {
                for w in (wa..=wb).rev() {
                    let mut bits = masked(w);
                    while bits != 0 {
                        let top = 63 - bits.leading_zeros();
                        f(w as u32 * 64 + top)?;
                        bits &= !(1u64 << top);
                    }
                }
            } else {
                for w in wa..=wb {
                    let mut bits = masked(w);
                    while bits != 0 {
                        f(w as u32 * 64 + bits.trailing_zeros())?;
                        bits &= bits - 1;
                    }
                }
            }
        }
        Kind::Run => {
            let n = d.len() / 4;
            let clipped = |i| {
                let (start, extra) = run(d, i);
                (start.max(a), (start + extra).min(b))
            };
            if desc {
                for i in (0..n).rev() {
                    let (s, e) = clipped(i);
                    for v in (s..=e).rev() {
                        f(v)?;
                    }
                }
            } else {
                for i in 0..n {
                    let (s, e) = clipped(i);
                    for v in s..=e {
                        f(v)?;
                    }
                }
            }
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use roaring::RoaringBitmap;

    fn serialized(bm: &RoaringBitmap) -> Vec<u8> {
        let mut v = Vec::new();
        bm.serialize_into(&mut v).expect("serialize into a Vec");
        v
    }

    /// The portable serialization of run containers (`roaring` 0.10 reads
    /// them but never writes them): cookie with the count, run flags,
    /// descriptions, offsets from four containers, then each container.
    fn with_runs(containers: &[(u16, Vec<(u16, u16)>)]) -> Vec<u8> {
        let n = containers.len();
        let mut out = (u32::from(RUN_COOKIE) | ((n as u32 - 1) << 16))
            .to_le_bytes()
            .to_vec();
        out.extend(std::iter::repeat_n(0xffu8, n.div_ceil(8)));
        for (key, runs) in containers {
            let card: u32 = runs.iter().map(|&(_, extra)| u32::from(extra) + 1).sum();
            out.extend(key.to_le_bytes());
            out.extend(((card - 1) as u16).to_le_bytes());
        }
        if n >= NO_OFFSET_THRESHOLD {
            // The crate skips offsets; so does the view.
            out.extend(std::iter::repeat_n(0u8, 4 * n));
        }
        for (_, runs) in containers {
            out.extend((runs.len() as u16).to_le_bytes());
            for &(start, extra) in runs {
                out.extend(start.to_le_bytes());
                out.extend(extra.to_le_bytes());
            }
        }
        out
    }

    fn walked(v: &BitmapView<'_>, range: Range<u32>, desc: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let _ = v.walk(range, desc, |x| {
            out.push(x);
            ControlFlow::Continue(())
        });
        out
    }

    /// The view holds what the bitmap holds: length, membership of `probes`
    /// and of every 31st value, and walks both ways over `ranges`, the whole
    /// space and an empty range.
    fn reads_alike(
        v: &BitmapView<'_>,
        bm: &RoaringBitmap,
        probes: &[u32],
        ranges: &[(u32, u32)],
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(v.len(), bm.len());
        for x in probes.iter().copied().chain(bm.iter().step_by(31)) {
            prop_assert_eq!(v.contains(x), bm.contains(x), "contains({})", x);
        }
        for &(a, b) in ranges.iter().chain(&[(0, u32::MAX), (0, 0)]) {
            let r = a.min(b)..a.max(b);
            let want: Vec<u32> = bm.range(r.clone()).collect();
            prop_assert_eq!(walked(v, r.clone(), false), want.clone());
            let mut back = want;
            back.reverse();
            prop_assert_eq!(walked(v, r, true), back);
        }
        Ok(())
    }

    /// Values spread over a few containers, some dense (bitmaps), some
    /// sparse (arrays), some in long runs.
    fn bitmaps() -> impl Strategy<Value = RoaringBitmap> {
        let part = (0u32..6, 0u32..3, any::<u64>());
        prop::collection::vec(part, 0..5).prop_map(|parts| {
            let mut bm = RoaringBitmap::new();
            for (key, shape, seed) in parts {
                let base = key << 16;
                let mut s = seed | 1;
                let mut next = || {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s
                };
                match shape {
                    0 => (0..(next() % 50)).for_each(|_| {
                        bm.insert(base | (next() as u32 & 0xffff));
                    }),
                    1 => (0..5000 + next() % 20000).for_each(|_| {
                        bm.insert(base | (next() as u32 & 0xffff));
                    }),
                    _ => {
                        let start = next() as u32 & 0xffff;
                        let len = (next() as u32 % 3000).min(0xffff - start);
                        bm.insert_range(base | start..=base | (start + len));
                    }
                }
            }
            bm
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_view_reads_what_the_crate_decodes(
            bm in bitmaps(),
            probes in prop::collection::vec(0u32..7 << 16, 64),
            ranges in prop::collection::vec((0u32..7 << 16, 0u32..7 << 16), 8),
        ) {
            let bytes = serialized(&bm);
            let v = BitmapView::parse(&bytes).expect("the crate's own bytes parse");
            reads_alike(&v, &bm, &probes, &ranges)?;
        }

        #[test]
        fn run_containers_read_as_the_crate_decodes_them(
            keys in prop::collection::btree_map(0u16..8, prop::collection::vec((1u32..400, 0u32..600), 1..12), 1..6),
            probes in prop::collection::vec(0u32..8 << 16, 64),
            ranges in prop::collection::vec((0u32..8 << 16, 0u32..8 << 16), 8),
        ) {
            // Sorted, disjoint runs from (gap, length) pairs, cut at 16 bits.
            let containers: Vec<(u16, Vec<(u16, u16)>)> = keys
                .into_iter()
                .map(|(key, steps)| {
                    let mut runs = Vec::new();
                    let mut at = 0u32;
                    for (gap, len) in steps {
                        let start = at + gap;
                        if start > 0xffff {
                            break;
                        }
                        let end = (start + len).min(0xffff);
                        runs.push((start as u16, (end - start) as u16));
                        at = end + 1;
                    }
                    (key, runs)
                })
                .filter(|(_, runs)| !runs.is_empty())
                .collect();
            prop_assume!(!containers.is_empty());
            let bytes = with_runs(&containers);
            let bm = RoaringBitmap::deserialize_from(&bytes[..]).expect("the crate reads it");
            let v = BitmapView::parse(&bytes).expect("the view reads it");
            reads_alike(&v, &bm, &probes, &ranges)?;
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(v) = BitmapView::parse(&bytes) {
                let _ = v.contains(12);
                let _ = walked(&v, 0..u32::MAX, true);
            }
        }
    }

    #[test]
    fn a_walk_stops_where_it_is_told() {
        let bm: RoaringBitmap = (0..200_000).step_by(3).collect();
        let bytes = serialized(&bm);
        let v = BitmapView::parse(&bytes).expect("parse");
        let mut seen = Vec::new();
        let flow = v.walk(1000..150_000, true, |x| {
            seen.push(x);
            if seen.len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(seen, [149_997, 149_994, 149_991]);
    }

    #[test]
    fn damaged_headers_are_errors() {
        let bm: RoaringBitmap = (0..100_000).collect();
        let bytes = serialized(&bm);
        for cut in 0..bytes.len().min(64) {
            assert!(BitmapView::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(BitmapView::parse(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad[0] ^= 0xff;
        assert_eq!(
            BitmapView::parse(&bad).err(),
            Some("unknown roaring cookie")
        );
        // Two containers (keys 0, 1): swap the keys.
        let mut swapped = bytes;
        swapped[8] = 1;
        assert_eq!(
            BitmapView::parse(&swapped).err(),
            Some("container keys out of order")
        );
    }
}
