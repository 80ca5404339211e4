//! Per-segment indexes: for every value of the filterable fields and every
//! word, a roaring bitmap of *local record numbers* (id − segment base id),
//! found through a term dictionary keyed by `[field code] ++ term bytes`.
//!
//! The active segment's index lives in memory ([`active::ActiveIndex`]); at
//! seal it is written beside the segment as `seg-<base>.idx`
//! ([`file::SealedIndex`]: an fst map, the postings, a sparse time index and a
//! checksummed footer). Index files are derived data: a missing or damaged one
//! is rebuilt from its segment when the log opens. Every call into the fst
//! goes through [`fst_guard`], so that a crafted dictionary is an error, not a panic.

pub(crate) mod active;
pub(crate) mod bitmap_view;
pub mod file;
pub(crate) mod fst_guard;
pub(crate) mod snapshot;
pub(crate) mod terms;

use std::str::FromStr;

pub use terms::{parse_words, Word};

/// Key code of word terms (message, entity_name and actor words).
pub(crate) const WORD_CODE: u8 = 7;

/// The filterable fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `category`
    Category,
    /// `action`
    Action,
    /// `actor`
    Actor,
    /// `entity_type`
    EntityType,
    /// `entity_id`
    EntityId,
    /// `severity`
    Severity,
    /// `recorded_by` (records stored before the field existed have none)
    RecordedBy,
}

impl Field {
    /// All fields, in wire order.
    pub const ALL: [Field; 7] = [
        Field::Category,
        Field::Action,
        Field::Actor,
        Field::EntityType,
        Field::EntityId,
        Field::Severity,
        Field::RecordedBy,
    ];

    /// The wire name (`entity_type`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Category => "category",
            Field::Action => "action",
            Field::Actor => "actor",
            Field::EntityType => "entity_type",
            Field::EntityId => "entity_id",
            Field::Severity => "severity",
            Field::RecordedBy => "recorded_by",
        }
    }

    /// The byte that starts this field's keys in the term dictionary.
    pub(crate) fn code(self) -> u8 {
        match self {
            Field::Category => 1,
            Field::Action => 2,
            Field::Actor => 3,
            Field::EntityType => 4,
            Field::EntityId => 5,
            Field::Severity => 6,
            // 7 is the words' code ([`WORD_CODE`]).
            Field::RecordedBy => 8,
        }
    }

    /// The key of `value` in this field.
    pub(crate) fn key(self, value: &str) -> Vec<u8> {
        key(self.code(), value)
    }

    /// This field's value in a record.
    pub fn value_of(self, r: &crate::Record) -> Option<&str> {
        match self {
            Field::Category => Some(&r.category),
            Field::Action => Some(&r.action),
            Field::Actor => Some(&r.actor),
            Field::EntityType => r.entity_type.as_deref(),
            Field::EntityId => r.entity_id.as_deref(),
            Field::Severity => Some(r.severity.as_str()),
            Field::RecordedBy => r.recorded_by.as_deref(),
        }
    }
}

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Field::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a filterable field; use one of category, action, actor, \
                     entity_type, entity_id, severity, recorded_by"
                )
            })
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn key(code: u8, term: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(term.len() + 1);
    k.push(code);
    k.extend_from_slice(term.as_bytes());
    k
}

/// Every this-many records the sealed index stores one ts (the sparse time index).
pub(crate) const TS_STRIDE: u32 = 64;

/// The first index in `0..n` for which `below` is false, where `below` is
/// true on a prefix of `0..n` (a binary search over anything indexable).
pub(crate) fn partition_point(n: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// First local number in `0..count` whose ts is `>= t`, given a sparse sample
/// `sparse[k] = ts(k * TS_STRIDE)` and exact lookups through `ts_at`.
pub(crate) fn lower_bound_sparse(
    count: u32,
    sparse: impl Fn(u32) -> i64,
    sparse_len: u32,
    t: i64,
    ts_at: impl Fn(u32) -> crate::Result<i64>,
) -> crate::Result<u32> {
    if count == 0 || sparse_len == 0 {
        return Ok(0);
    }
    // Number of samples < t.
    let lo = partition_point(sparse_len as usize, |k| sparse(k as u32) < t) as u32;
    if lo == 0 {
        return Ok(0); // the first record is already >= t
    }
    // The answer lies in (sample lo-1, sample lo] — exclusive/inclusive locals.
    let mut a = (lo - 1) * TS_STRIDE + 1;
    let mut b = (lo * TS_STRIDE).min(count);
    while a < b {
        let mid = a + (b - a) / 2;
        if ts_at(mid)? < t {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_lower_bound_matches_a_linear_scan() {
        for count in [1u32, 2, 63, 64, 65, 128, 129, 300] {
            let ts: Vec<i64> = (0..count).map(|i| i64::from(i / 3) * 10).collect();
            let sparse: Vec<i64> = ts.iter().step_by(TS_STRIDE as usize).copied().collect();
            for t in -5..(i64::from(count) * 4 + 20) {
                let want = ts.iter().position(|&x| x >= t).unwrap_or(ts.len()) as u32;
                let got = lower_bound_sparse(
                    count,
                    |k| sparse[k as usize],
                    sparse.len() as u32,
                    t,
                    |i| Ok(ts[i as usize]),
                )
                .expect("no io");
                assert_eq!(got, want, "count {count} t {t}");
            }
        }
    }
}
