//! The in-memory index of the active segment.

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::terms::Terms;

/// Term → bitmap of local record numbers, for the active segment.
///
/// Locals are inserted in increasing order, so every insert is an append
/// (`RoaringBitmap::push`).
#[derive(Debug, Default)]
pub struct ActiveIndex {
    // FxHash rather than SipHash: hashing was ~45% of re-indexing the active
    // segment on open. Keys come from authenticated writers only; one who
    // crafts colliding words can slow ingest on their own server, not read
    // or corrupt anything.
    postings: FxHashMap<Box<[u8]>, RoaringBitmap>,
}

impl ActiveIndex {
    /// Indexes record `local` under all of `terms`.
    pub fn insert(&mut self, local: u32, terms: &Terms) {
        for key in terms.keys() {
            match self.postings.get_mut(key) {
                Some(bm) => {
                    bm.push(local);
                }
                None => {
                    let mut bm = RoaringBitmap::new();
                    bm.push(local);
                    self.postings.insert(key.into(), bm);
                }
            }
        }
    }

    /// The bitmap of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&RoaringBitmap> {
        self.postings.get(key)
    }

    /// Every key starting with `prefix` and its bitmap (unordered).
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a RoaringBitmap)> + 'a {
        self.postings
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (&**k, v))
    }

    /// All keys and bitmaps, sorted by key.
    pub fn sorted(&self) -> Vec<(&[u8], &RoaringBitmap)> {
        let mut v: Vec<_> = self.postings.iter().map(|(k, b)| (&**k, b)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
}
