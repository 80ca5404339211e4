//! Filtered keyset pages, facets and histograms over the segments of a
//! snapshot.
//!
//! Filter semantics (API.md "Filters"): values of one field are OR-ed, fields
//! are AND-ed, every word must occur (a trailing `*` matches a prefix),
//! `since` is inclusive and `until` exclusive. A query walks segments newest
//! to oldest (or the reverse), skips whole segments by time range, watermark
//! and cursor, turns the time range into a local-number range through the time
//! index, intersects bitmaps, and decodes only the records it returns. Counts
//! come from bitmap cardinalities without decoding anything.

pub(crate) mod page;
pub(crate) mod segment;
pub(crate) mod term_set;

use rustc_hash::FxHashMap;
use std::ops::{ControlFlow, Range};

use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::index::{Field, Word, WORD_CODE};
use crate::log::{Log, Snapshot};
use crate::record::Record;
pub use page::PageBuf;
use segment::{ReadVia, SegmentReader};
use term_set::{SegmentTerms, TermSet};

/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Most buckets one histogram returns.
pub const MAX_BUCKETS: usize = 10_000;

/// Which records: field filters, words and a time range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Exact-match filters; values of one field are OR-ed, fields AND-ed.
    /// A field with no values does not filter.
    pub filters: Vec<(Field, Vec<String>)>,
    /// Every word must occur in `message`, `entity_name` or `actor`.
    pub words: Vec<Word>,
    /// Inclusive lower bound on `ts` (µs).
    pub since: Option<i64>,
    /// Exclusive upper bound on `ts` (µs).
    pub until: Option<i64>,
}

impl Selection {
    /// Adds `value` to the filter on `field`.
    pub fn with(mut self, field: Field, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.filters.iter_mut().find(|(f, _)| *f == field) {
            Some((_, values)) => values.push(value),
            None => self.filters.push((field, vec![value])),
        }
        self
    }

    /// Adds the words of a `q` string (see [`crate::parse_words`]).
    pub fn with_words(mut self, q: &str) -> Self {
        self.words.extend(crate::index::parse_words(q));
        self
    }

    /// Whether `r` matches (the reference semantics; the index must agree).
    pub fn matches(&self, r: &Record) -> bool {
        let fields_ok = self.filters.iter().all(|(field, values)| {
            values.is_empty()
                || field
                    .value_of(r)
                    .is_some_and(|v| values.iter().any(|x| x == v))
        });
        let time_ok = self.since.is_none_or(|s| r.ts >= s) && self.until.is_none_or(|u| r.ts < u);
        fields_ok && time_ok && self.words.iter().all(|w| record_has_word(r, w))
    }

    /// A checksum of the selection, so a cursor can tell it is used with the
    /// query it came from.
    fn fingerprint(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        let mut filters: Vec<(Field, Vec<&String>)> = self
            .filters
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(f, v)| {
                let mut v: Vec<&String> = v.iter().collect();
                v.sort();
                v.dedup();
                (*f, v)
            })
            .collect();
        filters.sort();
        for (f, values) in filters {
            h.update(&[f.code(), 0xff]);
            for v in values {
                h.update(v.as_bytes());
                h.update(&[0]);
            }
        }
        let mut words: Vec<&Word> = self.words.iter().collect();
        words.sort_by(|a, b| (&a.text, a.prefix).cmp(&(&b.text, b.prefix)));
        for w in words {
            h.update(&[WORD_CODE, u8::from(w.prefix)]);
            h.update(w.text.as_bytes());
        }
        for t in [self.since, self.until] {
            h.update(&t.map_or([0xff; 8], i64::to_le_bytes));
        }
        h.finalize()
    }
}

fn record_has_word(r: &Record, w: &Word) -> bool {
    let mut scratch = String::new();
    let mut found = false;
    for text in [
        Some(r.message.as_str()),
        r.entity_name.as_deref(),
        Some(&r.actor),
    ]
    .into_iter()
    .flatten()
    {
        crate::index::terms::for_each_word(text, &mut scratch, |word| {
            found |= if w.prefix {
                word.starts_with(&w.text)
            } else {
                word == w.text
            };
        });
    }
    found
}

/// Page order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// A keyset page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Which records.
    pub selection: Selection,
    /// Newest or oldest first.
    pub order: Order,
    /// Page size, 1..=1000. Default: 50.
    pub limit: usize,
    /// Where the previous page ended (`Page::next_cursor`), with the same selection.
    pub cursor: Option<Cursor>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            selection: Selection::default(),
            order: Order::Desc,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records, in the query's order.
    pub items: Vec<Record>,
    /// Present when more records match: pass it back for the next page.
    pub next_cursor: Option<Cursor>,
}

/// An opaque position in a walk: the last id returned, the order and the
/// selection's fingerprint. Encoded as 14 bytes (version 1 | order | last
/// id u64 LE | fingerprint u32 LE); the server base64-encodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    order: Order,
    last_id: u64,
    fingerprint: u32,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_LEN: usize = 14;

impl Cursor {
    /// A cursor positioned after `last_id` for `selection` in `order`: the
    /// next page holds the matching records past it (for resuming a live
    /// stream from a known id).
    pub fn after(selection: &Selection, order: Order, last_id: u64) -> Cursor {
        Cursor {
            order,
            last_id,
            fingerprint: selection.fingerprint(),
        }
    }

    /// The id the previous page ended with.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(CURSOR_LEN);
        b.push(CURSOR_VERSION);
        b.push(match self.order {
            Order::Desc => 0,
            Order::Asc => 1,
        });
        b.extend_from_slice(&self.last_id.to_le_bytes());
        b.extend_from_slice(&self.fingerprint.to_le_bytes());
        b
    }

    /// Parses wire bytes; any malformed input is an [`Error::InvalidQuery`] on `cursor`.
    pub fn from_bytes(b: &[u8]) -> Result<Cursor> {
        let bad = || Error::InvalidQuery {
            param: "cursor",
            reason: "is not a cursor returned by this server".into(),
        };
        if b.len() != CURSOR_LEN || b[0] != CURSOR_VERSION {
            return Err(bad());
        }
        let order = match b[1] {
            0 => Order::Desc,
            1 => Order::Asc,
            _ => return Err(bad()),
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[2..10]);
        let mut fp = [0u8; 4];
        fp.copy_from_slice(&b[10..14]);
        Ok(Cursor {
            order,
            last_id: u64::from_le_bytes(id),
            fingerprint: u32::from_le_bytes(fp),
        })
    }
}

/// One value and how many selected records carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetCount {
    /// The field value.
    pub value: String,
    /// Matching records with that value.
    pub count: u64,
}

/// One histogram bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Bucket start, µs since the epoch (a multiple of the bucket size).
    pub start: i64,
    /// Matching records with `start <= ts < start + size`.
    pub count: u64,
}

/// The segments of a snapshot in walk order, clipped to what it may see.
fn readers(snap: &Snapshot, order: Order) -> Vec<SegmentReader<'_>> {
    let active = &snap.view.active;
    let n = ((snap.last + 1).saturating_sub(active.base_id()) as usize)
        .min(active.table().offsets.len()) as u32;
    let mut v: Vec<SegmentReader<'_>> = snap
        .view
        .sealed
        .iter()
        .map(|s| SegmentReader::Sealed(s))
        .collect();
    v.push(SegmentReader::Active(active, n));
    if order == Order::Desc {
        v.reverse();
    }
    v
}

/// Local numbers of `seg` inside the snapshot and the selection's time range.
fn local_range(seg: &SegmentReader<'_>, snap: &Snapshot, sel: &Selection) -> Result<Range<u32>> {
    let base = seg.base_id();
    let n = seg.count();
    let lo = (snap.first.saturating_sub(base)).min(u64::from(n)) as u32;
    let hi = ((snap.last + 1).saturating_sub(base)).min(u64::from(n)) as u32;
    if lo >= hi {
        return Ok(0..0);
    }
    if let Some((first_ts, last_ts)) = seg.ts_bounds() {
        if sel.since.is_some_and(|s| s > last_ts) || sel.until.is_some_and(|u| u <= first_ts) {
            return Ok(0..0);
        }
    }
    let lo = match sel.since {
        Some(s) => lo.max(seg.lower_bound_ts(s)?),
        None => lo,
    };
    let hi = match sel.until {
        Some(u) => hi.min(seg.lower_bound_ts(u)?),
        None => hi,
    };
    Ok(lo..hi.max(lo))
}

/// The locals in `range` matching the selection's filters and words; `None`
/// when the selection has neither (everything in `range` matches).
fn matching(
    seg: &SegmentReader<'_>,
    sel: &Selection,
    range: &Range<u32>,
) -> Result<Option<RoaringBitmap>> {
    let mut m = term_bitmaps(seg, sel)?.map(intersect_all);
    if let Some(bm) = m.as_mut() {
        bm.remove_range(..range.start);
        bm.remove_range(range.end..);
    }
    Ok(m)
}

/// A selection's index keys, built once a query rather than once a segment.
struct SelectionKeys {
    /// Per filter with values, its values' keys.
    filters: Vec<Vec<Vec<u8>>>,
    /// Per word, its key and whether it is a prefix.
    words: Vec<(Vec<u8>, bool)>,
}

impl SelectionKeys {
    fn of(sel: &Selection) -> Self {
        SelectionKeys {
            filters: sel
                .filters
                .iter()
                .filter(|(_, values)| !values.is_empty())
                .map(|(field, values)| values.iter().map(|v| field.key(v)).collect())
                .collect(),
            words: sel
                .words
                .iter()
                .map(|w| (crate::index::key(WORD_CODE, &w.text), w.prefix))
                .collect(),
        }
    }
}

/// One set per filter (the union of its values) and per word, over the
/// whole segment; `None` when the selection has neither (everything
/// matches). An empty one ends the list early: nothing can match.
fn term_sets<'t>(
    terms: &'t SegmentTerms<'_>,
    keys: &SelectionKeys,
) -> Result<Option<Vec<TermSet<'t>>>> {
    let mut out = Vec::with_capacity(keys.filters.len() + keys.words.len());
    for values in &keys.filters {
        let set = match values.as_slice() {
            [one] => terms.get(one)?,
            many => {
                let mut union = RoaringBitmap::new();
                for key in many {
                    terms.get(key)?.union_into(&mut union)?;
                }
                TermSet::Owned(union)
            }
        };
        let empty = set.len() == 0;
        out.push(set);
        if empty {
            return Ok(Some(out));
        }
    }
    for (key, prefix) in &keys.words {
        let set = if *prefix {
            TermSet::Owned(terms.prefix_union(key)?)
        } else {
            terms.get(key)?
        };
        let empty = set.len() == 0;
        out.push(set);
        if empty {
            return Ok(Some(out));
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// [`term_sets`] decoded, for counts that need every value.
fn term_bitmaps(seg: &SegmentReader<'_>, sel: &Selection) -> Result<Option<Vec<RoaringBitmap>>> {
    let terms = SegmentTerms::of(seg);
    let sets = term_sets(&terms, &SelectionKeys::of(sel))?;
    sets.map(|sets| sets.into_iter().map(TermSet::into_owned).collect())
        .transpose()
}

/// The intersection, smallest bitmap first.
fn intersect_all(mut bms: Vec<RoaringBitmap>) -> RoaringBitmap {
    bms.sort_by_key(RoaringBitmap::len);
    let mut it = bms.into_iter();
    let mut acc = it.next().unwrap_or_default();
    for bm in it {
        if acc.is_empty() {
            break;
        }
        acc &= bm;
    }
    acc
}

/// Up to `want` locals in `range`, in page order, that every set in `sets`
/// holds (all of `range` when `sets` is `None`).
///
/// A page usually fills long before a segment's matches run out, so rather
/// than intersecting whole bitmaps (a quarter of a filtered page's work) it
/// walks the smallest set from the page's end and tests each candidate
/// against the others, all read in place. If the candidates it rejects pass
/// a budget sized to what the whole intersection would cost, it decodes and
/// intersects after all.
fn page_matches(
    sets: Option<Vec<TermSet<'_>>>,
    range: Range<u32>,
    order: Order,
    want: usize,
    out: &mut Vec<u32>,
) -> Result<()> {
    fn take(
        it: impl DoubleEndedIterator<Item = u32>,
        order: Order,
        want: usize,
        out: &mut Vec<u32>,
    ) {
        match order {
            Order::Asc => out.extend(it.take(want)),
            Order::Desc => out.extend(it.rev().take(want)),
        }
    }
    out.clear();
    let Some(mut sets) = sets else {
        take(range, order, want, out);
        return Ok(());
    };
    sets.sort_by_key(TermSet::len);
    let desc = order == Order::Desc;
    let Some((driver, others)) = sets.split_first() else {
        return Ok(());
    };
    let mut budget = (sets.iter().map(TermSet::len).sum::<u64>() / 8).max(64);
    let mut gave_up_at = None;
    let _ = driver.walk(range.clone(), desc, |local| {
        if others.iter().all(|s| s.contains(local)) {
            out.push(local);
            if out.len() == want {
                return ControlFlow::Break(());
            }
        } else {
            budget -= 1;
            if budget == 0 {
                gave_up_at = Some(local);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    let Some(local) = gave_up_at else {
        return Ok(());
    };
    let rest = match order {
        Order::Asc => local + 1..range.end,
        Order::Desc => range.start..local,
    };
    let all = intersect_all(
        sets.into_iter()
            .map(TermSet::into_owned)
            .collect::<Result<Vec<_>>>()?,
    );
    let left = want - out.len();
    take(all.range(rest), order, left, out);
    Ok(())
}

/// Applies a cursor to a segment's local range.
fn after_cursor(range: Range<u32>, base: u64, order: Order, last_id: Option<u64>) -> Range<u32> {
    let Some(last) = last_id else { return range };
    match order {
        Order::Desc => {
            let hi = last.saturating_sub(base).min(u64::from(range.end)) as u32;
            range.start..hi.max(range.start)
        }
        Order::Asc => {
            let lo = (last + 1).saturating_sub(base).max(u64::from(range.start));
            let lo = lo.min(u64::from(range.end)) as u32;
            lo..range.end
        }
    }
}

fn check_limit(limit: usize) -> Result<()> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::InvalidQuery {
            param: "limit",
            reason: format!("must be between 1 and {MAX_LIMIT}"),
        })
    }
}

impl Log {
    /// One page of records matching `q`, with a cursor for the next page.
    ///
    /// A walk that passes each `next_cursor` back never repeats or skips a
    /// record while appends, rolls and retention run (records retention
    /// hides meanwhile are, of course, not returned).
    pub fn query(&self, q: &Query) -> Result<Page> {
        self.query_buf(q)?.into_page()
    }

    /// [`Log::query`] without decoding: the page's payloads, CRC-checked, in
    /// one buffer, to be parsed in place by [`PageBuf::views`]. Servers that
    /// write records straight out use this and build no owned record.
    pub fn query_buf(&self, q: &Query) -> Result<PageBuf> {
        self.query_via(q, ReadVia::Map)
    }

    fn query_via(&self, q: &Query, via: ReadVia) -> Result<PageBuf> {
        check_limit(q.limit)?;
        let fp = q.selection.fingerprint();
        let last_id = match &q.cursor {
            Some(c) if c.order != q.order || c.fingerprint != fp => {
                return Err(Error::InvalidQuery {
                    param: "cursor",
                    reason: "belongs to a query with other filters or order; \
                             start again without a cursor"
                        .into(),
                })
            }
            Some(c) => Some(c.last_id),
            None => None,
        };
        let snap = self.inner.snapshot()?;
        let keys = SelectionKeys::of(&q.selection);
        let mut found = Vec::with_capacity(q.limit.min(64) + 1);
        let mut page = PageBuf::with_capacity(q.limit);
        let mut ids = Vec::with_capacity(q.limit.min(64));
        let mut more = false;
        for seg in readers(&snap, q.order) {
            let range = local_range(&seg, &snap, &q.selection)?;
            let range = after_cursor(range, seg.base_id(), q.order, last_id);
            if range.is_empty() {
                continue;
            }
            let want = q.limit - page.len() + 1;
            {
                let terms = SegmentTerms::of(&seg);
                let sets = term_sets(&terms, &keys)?;
                page_matches(sets, range, q.order, want, &mut found)?;
            }
            ids.clear();
            for &local in &found {
                if page.len() + ids.len() == q.limit {
                    more = true;
                    break;
                }
                ids.push(seg.base_id() + u64::from(local));
            }
            seg.read_into(&ids, &mut page, via)?;
            if more {
                break;
            }
        }
        page.next_cursor = match (more, page.slots.last()) {
            (true, Some(s)) => Some(Cursor {
                order: q.order,
                last_id: s.id,
                fingerprint: fp,
            }),
            _ => None,
        };
        Ok(page)
    }

    /// Every record matching `selection`, in `order`, read page by page (so
    /// memory stays constant however many match). The walk is a cursor walk:
    /// records appended after it passes their position are not included.
    pub fn scan(&self, selection: Selection, order: Order) -> Scan {
        Scan {
            pages: self.scan_pages(selection, order),
            buf: Vec::new().into_iter(),
        }
    }

    /// [`Log::scan`] as the pages of [`MAX_LIMIT`] records it reads, not
    /// decoded (see [`Log::query_buf`]): for exports that write records out.
    pub fn scan_pages(&self, selection: Selection, order: Order) -> ScanPages {
        ScanPages {
            log: self.clone(),
            query: Query {
                selection,
                order,
                limit: MAX_LIMIT,
                cursor: None,
            },
            done: false,
        }
    }

    /// The most frequent values of `field` among the records `selection`
    /// matches (every filter applies, one on `field` itself included), limited
    /// to values starting with `prefix`, by count descending then value. Records
    /// where the field is null are not counted.
    pub fn facets(
        &self,
        field: Field,
        selection: &Selection,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<FacetCount>> {
        check_limit(limit)?;
        let counts = self.count_values(field, selection, prefix)?;
        let mut v: Vec<FacetCount> = counts
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .map(|(value, count)| FacetCount { value, count })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v.truncate(limit);
        Ok(v)
    }

    /// The distinct values of `field` starting with `prefix` among visible
    /// records, in byte order, at most `limit`.
    pub fn distinct_values(&self, field: Field, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let counts = self.count_values(field, &Selection::default(), prefix)?;
        let mut v: Vec<String> = counts
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .map(|(value, _)| value)
            .collect();
        v.sort();
        v.truncate(limit);
        Ok(v)
    }

    fn count_values(
        &self,
        field: Field,
        selection: &Selection,
        prefix: &str,
    ) -> Result<Vec<(String, u64)>> {
        let snap = self.inner.snapshot()?;
        // Keyed by the raw term, so that a value seen in many segments is
        // allocated once.
        let mut counts: FxHashMap<Vec<u8>, u64> = FxHashMap::default();
        let key_prefix = field.key(prefix);
        for seg in readers(&snap, Order::Asc) {
            let range = local_range(&seg, &snap, selection)?;
            if range.is_empty() {
                continue;
            }
            let m = matching(&seg, selection, &range)?;
            let whole = range.start == 0 && range.end == seg.count();
            seg.for_prefix(&key_prefix, |key, card, load| {
                let n = match (&m, card) {
                    (None, Some(card)) if whole => card,
                    (None, _) => load()?.range_cardinality(range.clone()),
                    (Some(m), _) => m.intersection_len(&load()?),
                };
                if n > 0 {
                    match counts.get_mut(key) {
                        Some(c) => *c += n,
                        None => {
                            counts.insert(key.to_vec(), n);
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(counts
            .into_iter()
            .map(|(key, n)| (String::from_utf8_lossy(&key[1..]).into_owned(), n))
            .collect())
    }

    /// Counts of matching records per `bucket_us`-wide bucket, buckets aligned
    /// to multiples of the bucket size since the epoch, every bucket from the
    /// one holding `since` up to `until` listed (empty ones with 0). The
    /// selection's own `since`/`until` are replaced by these.
    pub fn histogram(
        &self,
        selection: &Selection,
        bucket_us: i64,
        since: i64,
        until: i64,
    ) -> Result<Vec<Bucket>> {
        if bucket_us <= 0 {
            return Err(Error::InvalidQuery {
                param: "bucket",
                reason: "must be a positive duration".into(),
            });
        }
        if since > until {
            return Err(Error::InvalidQuery {
                param: "until",
                reason: "must not be before `since`".into(),
            });
        }
        if since == until {
            return Ok(Vec::new()); // an empty window has no buckets
        }
        let first = since.div_euclid(bucket_us) * bucket_us;
        let n = ((until - first) as i128 + bucket_us as i128 - 1) / bucket_us as i128;
        if n > MAX_BUCKETS as i128 {
            return Err(Error::InvalidQuery {
                param: "bucket",
                reason: format!(
                    "gives {n} buckets for this window; at most {MAX_BUCKETS} are allowed — \
                     use a larger bucket or a shorter window"
                ),
            });
        }
        let mut buckets: Vec<Bucket> = (0..n as i64)
            .map(|i| Bucket {
                start: first + i * bucket_us,
                count: 0,
            })
            .collect();
        let sel = Selection {
            since: Some(since),
            until: Some(until),
            ..selection.clone()
        };
        let snap = self.inner.snapshot()?;
        for seg in readers(&snap, Order::Asc) {
            let range = local_range(&seg, &snap, &sel)?;
            if range.is_empty() {
                continue;
            }
            let m = matching(&seg, &sel, &range)?;
            let Some((seg_first, seg_last)) = seg.ts_bounds() else {
                continue;
            };
            let i0 = ((seg_first.max(since) - first) / bucket_us) as usize;
            let i1 = ((seg_last.min(until - 1) - first) / bucket_us) as usize;
            let mut lo = range.start;
            for b in buckets.iter_mut().take(i1 + 1).skip(i0) {
                let end = b.start.saturating_add(bucket_us);
                let hi = seg.lower_bound_ts(end)?.clamp(lo, range.end);
                b.count += match &m {
                    Some(bm) => bm.range_cardinality(lo..hi),
                    None => u64::from(hi - lo),
                };
                lo = hi;
            }
        }
        Ok(buckets)
    }
}

/// Iterator over the pages of a scan (see [`Log::scan_pages`]).
#[derive(Debug)]
pub struct ScanPages {
    log: Log,
    query: Query,
    done: bool,
}

impl Iterator for ScanPages {
    type Item = Result<PageBuf>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Scans read sealed segments with positioned reads, so an export
        // of the whole log does not leave it all mapped in this process.
        match self.log.query_via(&self.query, ReadVia::File) {
            Ok(page) => {
                self.done = page.next_cursor.is_none();
                self.query.cursor = page.next_cursor;
                // An empty last page ends the walk without a visit.
                (!page.is_empty()).then_some(Ok(page))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterator over every record a selection matches (see [`Log::scan`]).
#[derive(Debug)]
pub struct Scan {
    pages: ScanPages,
    buf: std::vec::IntoIter<Record>,
}

impl Iterator for Scan {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(Ok(r));
            }
            match self.pages.next()? {
                Ok(page) => match page.into_page() {
                    Ok(p) => self.buf = p.items.into_iter(),
                    Err(e) => {
                        self.pages.done = true;
                        return Some(Err(e));
                    }
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The lazy walk, its budget fallback and the plain paths give exactly
    /// the intersection's locals in the range, in order, up to `want`.
    #[test]
    fn page_matches_equals_the_intersection_in_range_and_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..400 {
            let n: u32 = rng.gen_range(1..20_000);
            let k = rng.gen_range(1..4);
            let bms: Vec<RoaringBitmap> = (0..k)
                .map(|_| {
                    // Dense, sparse and empty sets, so both the walk and the
                    // fallback run.
                    let p = [0.0, 0.001, 0.02, 0.3, 0.9][rng.gen_range(0..5)];
                    (0..n).filter(|_| rng.gen_bool(p)).collect()
                })
                .collect();
            let a = rng.gen_range(0..n);
            let b = rng.gen_range(a..=n);
            let want = rng.gen_range(1..120);
            let all = bms.iter().skip(1).fold(bms[0].clone(), |acc, bm| acc & bm);
            for order in [Order::Asc, Order::Desc] {
                let mut expect: Vec<u32> = all.iter().filter(|l| (a..b).contains(l)).collect();
                if order == Order::Desc {
                    expect.reverse();
                }
                expect.truncate(want);
                // Borrowed and owned sets alike (views are crossed by the
                // model test in tests/queries.rs, whose sealed segments
                // answer from index files).
                let sets = bms
                    .iter()
                    .enumerate()
                    .map(|(i, bm)| match (round + i) % 2 {
                        0 => TermSet::Borrowed(bm),
                        _ => TermSet::Owned(bm.clone()),
                    })
                    .collect();
                let mut got = Vec::new();
                page_matches(Some(sets), a..b, order, want, &mut got).expect("no views to decode");
                assert_eq!(got, expect, "round {round}, {order:?}, {k} bitmaps");
            }
        }
        // Matches only far from the page's end: the walk gives up and the
        // intersection finds them.
        let evens: RoaringBitmap = (0..20_000).step_by(2).collect();
        let odds_and_low: RoaringBitmap = (1..20_000)
            .step_by(2)
            .chain((0..2_000).step_by(6))
            .collect();
        let sets = vec![TermSet::Owned(evens), TermSet::Borrowed(&odds_and_low)];
        let mut got = vec![1, 2, 3];
        page_matches(Some(sets), 0..20_000, Order::Desc, 50, &mut got).expect("no views");
        let expect: Vec<u32> = (0..2_000).step_by(6).rev().take(50).collect();
        assert_eq!(got, expect);
        page_matches(None, 3..9, Order::Desc, 4, &mut got).expect("no sets");
        assert_eq!(got, vec![8, 7, 6, 5]);
    }
}
