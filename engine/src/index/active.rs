//! The in-memory index of the active segment.

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::terms::Terms;

/// One map per key code (field or word), so that listing a field's values
/// (facets, completion) never walks the words, which can be far more
/// numerous (every distinct number in a message is one). Codes run 1..=8
/// ([`super::Field::code`], [`super::WORD_CODE`]).
const CODES: usize = 9;

type Postings = FxHashMap<Box<[u8]>, Posting>;

/// A term's bitmap, plus what makes appending to it cheap.
///
/// Locals arrive in increasing order, so every insert lands in the bitmap's
/// last container. roaring 0.10 has no O(1) append for both container kinds:
/// `insert` binary-searches an array container (up to 4096 values), `push`
/// scans a bitmap container from the top for its maximum (up to 1024 words).
/// Counting the values in the last container tells which kind it is, so each
/// append takes the call that is O(1) for it.
#[derive(Debug, Default)]
struct Posting {
    bitmap: RoaringBitmap,
    /// The largest value held (meaningless while `tail_len` is 0).
    last: u32,
    /// Values in the last container (an array container up to 4096).
    tail_len: u32,
}

/// roaring's array-to-bitmap threshold: a container of more values is a bitmap.
const ARRAY_MAX: u32 = 4096;

/// Estimated heap of one term beyond its key bytes: the boxed key's
/// allocation, the map slot, the `Posting` and its first container.
const TERM_OVERHEAD: usize = 160;
/// Estimated heap of one more container.
const CONTAINER_BYTES: usize = 48;

impl Posting {
    fn of(bitmap: RoaringBitmap) -> Posting {
        let Some(last) = bitmap.max() else {
            return Posting::default();
        };
        let below_tail = match last >> 16 {
            0 => 0,
            high => bitmap.rank((high << 16) - 1),
        };
        Posting {
            tail_len: (bitmap.rank(last) - below_tail) as u32,
            bitmap,
            last,
        }
    }

    /// Adds `local`, which is no smaller than every value held; returns the
    /// estimated heap it added.
    fn append(&mut self, local: u32) -> usize {
        if self.tail_len > 0 && local == self.last {
            return 0; // a word repeated in one record
        }
        let mut added = 0;
        if self.tail_len == 0 || local >> 16 != self.last >> 16 {
            self.tail_len = 0; // a new container
            added += CONTAINER_BYTES;
        }
        // An array grows by 2 bytes a value; a bitmap (8 KiB, what the
        // array had reached) by nothing.
        if self.tail_len < ARRAY_MAX {
            added += 2;
        }
        if self.tail_len < ARRAY_MAX {
            self.bitmap.push(local); // the maximum of an array is its last value
        } else {
            self.bitmap.insert(local); // a bitmap sets one bit
        }
        self.last = local;
        self.tail_len += 1;
        added
    }
}

/// Term → bitmap of local record numbers, for the active segment.
#[derive(Debug, Default)]
pub struct ActiveIndex {
    // FxHash rather than SipHash: hashing was ~45% of re-indexing the active
    // segment on open. Keys come from authenticated writers only; one who
    // crafts colliding words can slow ingest on their own server, not read
    // or corrupt anything.
    by_code: [Postings; CODES],
    /// Estimated heap held, see [`ActiveIndex::approx_bytes`].
    approx_bytes: usize,
}

fn slot(key: &[u8]) -> usize {
    key.first().map_or(0, |&c| usize::from(c) % CODES)
}

impl ActiveIndex {
    /// Indexes record `local` under all of `keys`. Locals arrive in
    /// increasing order; a key repeated within one record counts once.
    pub fn insert<'k>(&mut self, local: u32, keys: impl IntoIterator<Item = &'k [u8]>) {
        for key in keys {
            let map = &mut self.by_code[slot(key)];
            match map.get_mut(key) {
                Some(p) => self.approx_bytes += p.append(local),
                None => {
                    let mut p = Posting::default();
                    self.approx_bytes += p.append(local) + key.len() + TERM_OVERHEAD;
                    map.insert(key.into(), p);
                }
            }
        }
    }

    /// Indexes a batch: record `i` of `terms` is local `first_local + i`.
    pub(crate) fn insert_batch(&mut self, first_local: u32, terms: &Terms) {
        for i in 0..terms.len() {
            self.insert(first_local + i as u32, terms.keys(i));
        }
    }

    /// Adds a whole bitmap under `key` (loading a snapshot).
    pub(crate) fn insert_bitmap(&mut self, key: &[u8], bm: RoaringBitmap) {
        self.approx_bytes += key.len() + TERM_OVERHEAD + bm.serialized_size();
        self.by_code[slot(key)].insert(key.into(), Posting::of(bm));
    }

    /// Estimated heap held by keys, map entries and bitmaps: what the
    /// writer compares with `Config::active_index_max_bytes`.
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    /// The bitmap of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&RoaringBitmap> {
        self.by_code[slot(key)].get(key).map(|p| &p.bitmap)
    }

    /// Every key starting with `prefix` (which starts with a key code) and
    /// its bitmap, unordered. Only the keys of that code are looked at.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a RoaringBitmap)> + 'a {
        let maps: &'a [Postings] = if prefix.is_empty() {
            &self.by_code
        } else {
            std::slice::from_ref(&self.by_code[slot(prefix)])
        };
        maps.iter()
            .flat_map(|m| m.iter())
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, p)| (&**k, &p.bitmap))
    }

    /// The union of the bitmaps of every key starting with `prefix`.
    pub(crate) fn prefix_union(&self, prefix: &[u8]) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for (_, bm) in self.with_prefix(prefix) {
            out |= bm;
        }
        out
    }

    /// All keys and bitmaps, sorted by key.
    ///
    /// Runs under the write locks when a segment is sealed, over every term
    /// (150,000 and more with unique words). Each entry carries its key's
    /// first 8 bytes as a big-endian integer, so most comparisons are one
    /// integer compare instead of two pointer chases into the keys' heap.
    pub fn sorted(&self) -> Vec<(&[u8], &RoaringBitmap)> {
        let mut v: Vec<(u64, &[u8], &RoaringBitmap)> = self
            .by_code
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, p)| (sort_prefix(k), &**k, &p.bitmap))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        v.into_iter().map(|(_, k, b)| (k, b)).collect()
    }
}

/// The first 8 bytes of `key`, zero-padded, as a big-endian integer: its order
/// agrees with the keys' byte order wherever two prefixes differ (a zero pad
/// sorts a shorter key before any longer key it starts).
fn sort_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sorted` orders keys exactly as a plain byte sort does, with keys that
    /// share 8-byte prefixes, are prefixes of each other, or hold zero bytes.
    #[test]
    fn sorted_matches_a_plain_byte_sort() {
        let mut index = ActiveIndex::default();
        let mut x: u64 = 99;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for i in 0..5000u32 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 59) as usize; // 0..32
            let mut k = vec![[1u8, 7, 7, 3][(x & 3) as usize]];
            k.extend((0..len).map(|j| [0u8, 1, b'a', b'z', 0xff][((x >> (j % 50)) % 5) as usize]));
            if i % 7 == 0 {
                k.truncate(1 + (i as usize % 9)); // prefixes of others
            }
            index.insert(i, [&k[..]]);
            keys.push(k);
        }
        keys.sort();
        keys.dedup();
        let got: Vec<&[u8]> = index.sorted().into_iter().map(|(k, _)| k).collect();
        let want: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        assert!(got == want, "sorted() differs from a byte sort");
    }

    /// Appends cross container boundaries and the array/bitmap threshold,
    /// repeat keys within a record, and resume from a loaded bitmap (a
    /// snapshot): the bitmaps hold exactly the locals given.
    #[test]
    fn appends_match_a_set_model_across_containers() {
        let keys: [&[u8]; 3] = [b"\x01dense", b"\x07sparse", b"\x03mid"];
        let mut index = ActiveIndex::default();
        let mut model: [std::collections::BTreeSet<u32>; 3] = Default::default();
        let mut x: u64 = 7;
        let mut local = 0u32;
        while local < 3 * 65_536 + 100 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut record: Vec<&[u8]> = vec![keys[0]];
            if x >> 60 == 0 {
                record.push(keys[1]);
            }
            if (x >> 40).is_multiple_of(3) {
                record.extend([keys[2], keys[2]]);
            }
            for k in &record {
                let i = keys.iter().position(|q| q == k).expect("known key");
                model[i].insert(local);
            }
            index.insert(local, record.iter().copied());
            if local == 70_000 {
                // Reload every bitmap as a snapshot would, then go on.
                let mut reloaded = ActiveIndex::default();
                for (k, bm) in index.sorted() {
                    reloaded.insert_bitmap(k, bm.clone());
                }
                index = reloaded;
            }
            local += 1 + (x >> 62) as u32;
        }
        for (i, k) in keys.iter().enumerate() {
            let got: Vec<u32> = index.get(k).map_or(vec![], |b| b.iter().collect());
            let want: Vec<u32> = model[i].iter().copied().collect();
            assert_eq!(got.len(), want.len(), "key {i}");
            assert!(got == want, "key {i} differs");
        }
    }
}
