//! Query-string parsing: one parser for every endpoint that takes filters
//! (list, export, stream, facets, histogram). It only turns text into the
//! engine's query types; the filter semantics live in the engine.
//!
//! Unknown parameters are ignored; a known parameter with a bad value is a
//! 422 naming it.

use actlog_engine::{Cursor, Field, Order, Selection, MAX_LIMIT};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::ApiError;
use crate::json::parse_ts;

/// Longest accepted value of any one parameter, in bytes.
pub const MAX_PARAM_LEN: usize = 4096;
/// Most values accepted for one repeatable filter.
pub const MAX_VALUES: usize = 100;

/// Everything the filter-taking endpoints read from a query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Filters, words and time range.
    pub selection: Selection,
    /// `order`, default newest first.
    pub order: Order,
    /// `limit`, if given (validated 1..=1000).
    pub limit: Option<usize>,
    /// `cursor`, decoded.
    pub cursor: Option<Cursor>,
    /// `format` (export).
    pub format: Option<String>,
    /// `prefix` (facets).
    pub prefix: Option<String>,
    /// `bucket` (histogram).
    pub bucket: Option<String>,
    /// `after_id` (stream resume).
    pub after_id: Option<u64>,
    /// `confirm=true` (clear).
    pub confirm: bool,
}

/// Encodes a cursor for the wire (URL-safe base64, no padding).
pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(c.to_bytes())
}

/// Parses a raw query string (without the `?`).
pub fn parse(raw: &str) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        if value.len() > MAX_PARAM_LEN {
            return Err(ApiError::invalid(
                key.as_ref(),
                format!("`{key}` is longer than {MAX_PARAM_LEN} bytes"),
            ));
        }
        let key = key.as_ref();
        if let Ok(field) = key.parse::<Field>() {
            let sel = std::mem::take(&mut p.selection);
            p.selection = sel.with(field, value.into_owned());
            let n = p
                .selection
                .filters
                .iter()
                .find(|(f, _)| *f == field)
                .map_or(0, |(_, v)| v.len());
            if n > MAX_VALUES {
                return Err(ApiError::invalid(
                    key,
                    format!("at most {MAX_VALUES} values of `{key}` are allowed"),
                ));
            }
            continue;
        }
        match key {
            "q" => {
                let sel = std::mem::take(&mut p.selection);
                p.selection = sel.with_words(&value);
            }
            "since" => {
                p.selection.since =
                    Some(parse_ts(&value).map_err(|m| ApiError::invalid("since", m))?)
            }
            "until" => {
                p.selection.until =
                    Some(parse_ts(&value).map_err(|m| ApiError::invalid("until", m))?)
            }
            "order" => {
                p.order = match value.as_ref() {
                    "desc" => Order::Desc,
                    "asc" => Order::Asc,
                    _ => {
                        return Err(ApiError::invalid(
                            "order",
                            "`order` must be `desc` or `asc`",
                        ))
                    }
                }
            }
            "limit" => {
                let n: usize = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "limit",
                            format!("`limit` must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?;
                p.limit = Some(n);
            }
            "cursor" => {
                let bytes = URL_SAFE_NO_PAD.decode(value.as_bytes()).map_err(|_| {
                    ApiError::invalid("cursor", "`cursor` is not a cursor this server issued")
                })?;
                p.cursor = Some(Cursor::from_bytes(&bytes).map_err(ApiError::from)?);
            }
            "format" => p.format = Some(value.into_owned()),
            "prefix" => p.prefix = Some(value.into_owned()),
            "bucket" => p.bucket = Some(value.into_owned()),
            "after_id" => {
                p.after_id = Some(value.parse().map_err(|_| {
                    ApiError::invalid("after_id", "`after_id` must be a non-negative integer")
                })?)
            }
            "confirm" => p.confirm = value == "true",
            _ => {} // unknown parameters are ignored
        }
    }
    // `since` equal to `until` is an empty window, not an error.
    if let (Some(s), Some(u)) = (p.selection.since, p.selection.until) {
        if s > u {
            return Err(ApiError::invalid(
                "until",
                "`until` must not be earlier than `since`",
            ));
        }
    }
    Ok(p)
}

/// The `parse_query` fuzz target's check (also replayed over the checked-in
/// corpus by the tests below): any bytes, taken as a query string, parse or
/// fail with a 422 that names a parameter, never panic; a parsed limit is in
/// range; a parsed cursor survives its wire encoding.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    match parse(&raw) {
        Ok(p) => {
            assert!(p.limit.is_none_or(|n| (1..=MAX_LIMIT).contains(&n)));
            if let (Some(s), Some(u)) = (p.selection.since, p.selection.until) {
                assert!(s <= u);
            }
            if let Some(c) = p.cursor {
                let again = parse(&format!("cursor={}", encode_cursor(&c)));
                assert_eq!(again.ok().and_then(|p| p.cursor), Some(c));
            }
        }
        Err(e) => {
            assert_eq!(e.status.as_u16(), 422, "{e:?}");
            assert!(e.field.is_some(), "{e:?}");
        }
    }
}

/// The bucket sizes the histogram accepts, in µs.
pub fn bucket_us(bucket: &str) -> Option<i64> {
    const MIN: i64 = 60_000_000;
    Some(match bucket {
        "1m" => MIN,
        "5m" => 5 * MIN,
        "15m" => 15 * MIN,
        "1h" => 60 * MIN,
        "6h" => 360 * MIN,
        "1d" => 1440 * MIN,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeatable_filters_words_and_times() {
        let p = parse("category=auth&category=device&actor=Kitchen%20Tablet&q=proj*+den&since=2026-01-01T00:00:00Z&order=asc&limit=7&zzz=1")
            .expect("valid");
        assert_eq!(
            p.selection.filters,
            vec![
                (
                    Field::Category,
                    vec!["auth".to_string(), "device".to_string()]
                ),
                (Field::Actor, vec!["Kitchen Tablet".to_string()]),
            ]
        );
        assert_eq!(p.selection.words.len(), 2);
        assert!(p.selection.words[0].prefix);
        assert_eq!(p.selection.since, Some(1_767_225_600_000_000));
        assert_eq!((p.order, p.limit), (Order::Asc, Some(7)));
    }

    #[test]
    fn fuzz_corpus_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let n = actlog_engine::fuzzing::replay_corpus(&root, "parse_query", fuzz_check);
        assert!(n > 0, "no corpus under fuzz/corpus/parse_query");
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (q, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("order=sideways", "order"),
            ("since=yesterday", "since"),
            (
                "until=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z",
                "until",
            ),
            ("cursor=!!", "cursor"),
            ("cursor=AAAA", "cursor"),
            ("after_id=-1", "after_id"),
        ] {
            let e = parse(q).expect_err(q);
            assert_eq!(e.field.as_deref(), Some(field), "{q}: {e:?}");
            assert_eq!(e.status.as_u16(), 422);
        }
    }
}
