//! JSON on the wire: records out, events in, RFC 3339 times.

use actlog_engine::{NewRecord, Record, Severity};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ApiError;

/// Most events one POST takes.
pub const MAX_BATCH: usize = 1000;

pub use actlog_engine::export::format_ts;
/// A record as the API returns it.
pub use actlog_engine::export::RecordJson as RecordOut;

/// Parses an RFC 3339 time into µs since the epoch.
pub fn parse_ts(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map_err(|_| format!("`{s}` is not an RFC 3339 time such as 2026-11-25T20:01:02Z"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| format!("`{s}` is out of range"))
}

/// A record as a JSON value.
pub fn record_value(r: &Record) -> Value {
    serde_json::to_value(RecordOut::from(r)).unwrap_or(Value::Null)
}

const EVENT_FIELDS: &[&str] = &[
    "category",
    "action",
    "message",
    "actor",
    "entity_type",
    "entity_id",
    "entity_name",
    "severity",
    "metadata",
    "occurred_at",
];

/// Parses a POST body: one event object or an array of 1–1000. `actor` is the
/// default for events that name none. Every element is checked fully (types,
/// unknown fields, engine bounds) before anything is stored.
pub fn parse_events(body: &[u8], actor: &str) -> Result<Vec<NewRecord>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        obj @ Value::Object(_) => (vec![obj], false),
        _ => {
            return Err(ApiError::invalid(
                "body",
                "send one event object or an array of event objects",
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "body",
            format!(
                "a batch holds 1 to {MAX_BATCH} events, this one {}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let rec = parse_event(v, actor);
            let rec = rec.and_then(|r| {
                r.validate()
                    .map(|_| r)
                    .map_err(|e| ApiError::invalid(e.field, e.to_string()))
            });
            if batch {
                rec.map_err(|e| e.at(i))
            } else {
                rec
            }
        })
        .collect()
}

fn parse_event(v: Value, default_actor: &str) -> Result<NewRecord, ApiError> {
    let Value::Object(mut obj) = v else {
        return Err(ApiError::invalid(
            "body",
            "each event must be a JSON object",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            unknown.clone(),
            format!(
                "unknown field `{unknown}`; events take {}",
                EVENT_FIELDS.join(", ")
            ),
        ));
    }
    let mut take_str = |name: &'static str| -> Result<Option<String>, ApiError> {
        match obj.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(
                name,
                format!("`{name}` must be a string"),
            )),
        }
    };
    let required = |name: &'static str, v: Option<String>| {
        v.ok_or_else(|| ApiError::invalid(name, format!("`{name}` is required")))
    };
    let category = required("category", take_str("category")?)?;
    let action = required("action", take_str("action")?)?;
    let message = required("message", take_str("message")?)?;
    let actor = take_str("actor")?.or_else(|| Some(default_actor.to_string()));
    let entity_type = take_str("entity_type")?;
    let entity_id = take_str("entity_id")?;
    let entity_name = take_str("entity_name")?;
    let severity = match take_str("severity")? {
        None => Severity::Info,
        Some(s) => s.parse().map_err(|e: actlog_engine::ValidationError| {
            ApiError::invalid("severity", e.to_string())
        })?,
    };
    let occurred_at = match take_str("occurred_at")? {
        None => None,
        Some(s) => Some(parse_ts(&s).map_err(|m| ApiError::invalid("occurred_at", m))?),
    };
    let metadata = match obj.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid(
                "metadata",
                "`metadata` must be a JSON object",
            ))
        }
    };
    Ok(NewRecord {
        category,
        action,
        actor,
        entity_type,
        entity_id,
        entity_name,
        message,
        severity,
        metadata,
        occurred_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_roundtrip_with_microseconds() {
        let us = parse_ts("2026-11-25T20:01:02.123456Z").expect("valid");
        assert_eq!(format_ts(us), "2026-11-25T20:01:02.123456Z");
        assert_eq!(
            parse_ts("2026-11-25T21:01:02+01:00").map(format_ts),
            Ok("2026-11-25T20:01:02.000000Z".into())
        );
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59.999999Z");
        assert!(parse_ts("yesterday").is_err());
    }

    #[test]
    fn events_are_checked_field_by_field() {
        let ok =
            br#"{"category":"entity","action":"entity.created","message":"m","entity_id":null}"#;
        let recs = parse_events(ok, "kitchen").expect("valid");
        assert_eq!(recs[0].actor.as_deref(), Some("kitchen"));
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"category":"entity","action":"a","message":"m","colour":"red"}"#,
                "colour",
            ),
            (br#"{"action":"a","message":"m"}"#, "category"),
            (br#"{"category":"e","action":"a","message":5}"#, "message"),
            (
                br#"{"category":"e","action":"a","message":"m","severity":"fatal"}"#,
                "severity",
            ),
            (
                br#"{"category":"E E","action":"a","message":"m"}"#,
                "category",
            ),
            (
                br#"{"category":"e","action":"a","message":"m","metadata":[1]}"#,
                "metadata",
            ),
            (
                br#"{"category":"e","action":"a","message":"m","occurred_at":"soon"}"#,
                "occurred_at",
            ),
        ];
        for (body, field) in cases {
            let e = parse_events(body, "k").expect_err("invalid");
            assert_eq!(e.field.as_deref(), Some(*field), "{e:?}");
            assert_eq!(e.index, None);
        }
        let batch =
            br#"[{"category":"e","action":"a","message":"m"},{"category":"e","action":"a"}]"#;
        let e = parse_events(batch, "k").expect_err("second is bad");
        assert_eq!((e.field.as_deref(), e.index), (Some("message"), Some(1)));
        assert_eq!(
            parse_events(b"[]", "k")
                .expect_err("empty")
                .field
                .as_deref(),
            Some("body")
        );
        assert_eq!(
            parse_events(b"{", "k").expect_err("json").code,
            "invalid_json"
        );
    }
}
