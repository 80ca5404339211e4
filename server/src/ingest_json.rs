//! Parsing an ingest body straight into [`NewRecord`]s.
//!
//! The body is read in one pass by serde_json with a visitor per event: no
//! `serde_json::Value` tree is built first (only `metadata` becomes one),
//! so each string is allocated once. That tree and its conversion were over
//! a third of the server's CPU under batched ingest.
//!
//! Errors keep the API's shape (`field`, and `index` in a batch): a visitor
//! that finds a bad field stores the [`ApiError`] and stops the parse. A body
//! that is not JSON at all is `invalid_json`, also when a field error came
//! earlier in it, as when the whole body was parsed first.

use std::cell::{Cell, RefCell};
use std::fmt;

use actlog_engine::{NewRecord, Severity};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;
use serde_json::Value;

use crate::error::ApiError;
use crate::json::{parse_ts, MAX_BATCH};

/// The fields an event may carry. `recorded_by` is deliberately not one of
/// them: the server sets it from the key that sent the event
/// (`Recorder::ingest`), and an event that names it is refused like any
/// other unknown field.
/// Most values (objects, arrays, strings, numbers, ...) in one event's
/// metadata: each takes at least one byte of MessagePack, so metadata with
/// more can never fit `MAX_METADATA_BYTES` (4096), and a tree is never
/// built past it.
pub const MAX_EVENT_METADATA_VALUES: usize = actlog_engine::MAX_METADATA_BYTES;

/// Most JSON values (objects, arrays, strings, numbers, ...) in the metadata
/// of all events of one body together: ~20 MiB of trees at most. A full
/// batch of 1000 events stays under it with up to 250 values each; more
/// metadata than that goes in several requests.
pub const MAX_METADATA_VALUES: usize = 250_000;

/// An event's metadata, parsed as written and within budget. `Value`'s own
/// `Deserialize` is not used: with serde_json's `raw_value` feature (which
/// the server needs) it reads an object whose first key is
/// `$serde_json::private::RawValue` as the JSON text of that key's value,
/// so a client's metadata would be silently rewritten (or refused) instead
/// of stored as sent. Every value built counts against the event's budget
/// ([`MAX_EVENT_METADATA_VALUES`]) and the body's
/// ([`MAX_METADATA_VALUES`]); past either, the parse stops with a 422.
#[derive(Clone, Copy)]
struct Budgeted<'e, 'a> {
    event: &'e Event<'a>,
    mine: &'e Cell<usize>,
}

impl Budgeted<'_, '_> {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        let mine = self.mine.get() + 1;
        self.mine.set(mine);
        if mine > MAX_EVENT_METADATA_VALUES {
            return Err(self.event.error(ApiError::invalid(
                "metadata",
                format!(
                    "holds over {MAX_EVENT_METADATA_VALUES} values; metadata is at most {} \
                     bytes encoded, and every value takes at least one",
                    actlog_engine::MAX_METADATA_BYTES
                ),
            )));
        }
        let total = self.event.values.get() + 1;
        self.event.values.set(total);
        if total > MAX_METADATA_VALUES {
            return Err(self.event.error(ApiError::invalid(
                "metadata",
                format!(
                    "the metadata of this request holds over {MAX_METADATA_VALUES} \
                     values in all; send the batch in smaller parts"
                ),
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budgeted<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budgeted<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.count()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.count()?;
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element_seed(self)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.count()?;
        let mut m = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
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
    // Malformed JSON is 400 whatever else is wrong, and the checks below
    // skip strings without decoding them: invalid UTF-8 is caught here.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::invalid_json(format!(
            "the body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )));
    }
    let failed = RefCell::new(None);
    let values = Cell::new(0);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = (&mut de)
        .deserialize_any(Body {
            actor,
            failed: &failed,
            values: &values,
        })
        .and_then(|events| de.end().map(|()| events));
    match (parsed, failed.into_inner()) {
        (Ok(events), _) => Ok(events),
        (Err(_), Some(field_error)) => {
            // The API checks the body as a whole before any field: a body
            // that is not JSON stays `invalid_json`, and a batch of the wrong
            // size says so, whatever an element holds.
            if let Ok(items) = serde_json::from_slice::<Vec<IgnoredAny>>(body) {
                if items.is_empty() || items.len() > MAX_BATCH {
                    return Err(too_many(items.len()));
                }
            }
            match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => Err(field_error),
                Err(e) => Err(not_json(e)),
            }
        }
        // JSON, but neither an object nor an array (serde's own error for
        // the top-level visitor's unhandled types).
        (Err(e), None) if e.is_syntax() || e.is_eof() => Err(not_json(e)),
        (Err(e), None) => match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(wrong_body()),
            Err(_) => Err(not_json(e)),
        },
    }
}

fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::invalid_json(format!("the body is not valid JSON: {e}"))
}

/// Stops the parse after recording `error` as the answer.
fn fail<E: de::Error>(failed: &RefCell<Option<ApiError>>, error: ApiError) -> E {
    *failed.borrow_mut() = Some(error);
    E::custom("invalid event")
}

fn body_error(message: impl Into<String>) -> ApiError {
    ApiError::invalid("body", message)
}

/// The top level: an array of events or one event.
struct Body<'a> {
    actor: &'a str,
    failed: &'a RefCell<Option<ApiError>>,
    /// Metadata values (every JSON value in every event's metadata) parsed
    /// so far in this body; see [`MAX_METADATA_VALUES`].
    values: &'a Cell<usize>,
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = Vec<NewRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one event object or an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH));
        loop {
            if events.len() == MAX_BATCH {
                // Count the rest (without parsing them) to say how many.
                let mut n = events.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                if n > MAX_BATCH {
                    return Err(fail(self.failed, too_many(n)));
                }
                break;
            }
            let next = seq.next_element_seed(Event {
                values: self.values,
                actor: self.actor,
                index: Some(events.len()),
                failed: self.failed,
            })?;
            match next {
                None => break,
                Some(event) => events.push(event),
            }
        }
        if events.is_empty() {
            return Err(fail(self.failed, too_many(0)));
        }
        Ok(events)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let event = Event {
            values: self.values,
            actor: self.actor,
            index: None,
            failed: self.failed,
        }
        .visit_map(map)?;
        Ok(vec![event])
    }
}

fn wrong_body() -> ApiError {
    body_error("send one event object or an array of event objects")
}

fn too_many(n: usize) -> ApiError {
    body_error(format!(
        "a batch holds 1 to {MAX_BATCH} events, this one {n}"
    ))
}

/// One event; `index` is its place in a batch (`None` for a lone object).
#[derive(Clone, Copy)]
struct Event<'a> {
    values: &'a Cell<usize>,
    actor: &'a str,
    index: Option<usize>,
    failed: &'a RefCell<Option<ApiError>>,
}

impl Event<'_> {
    fn error<E: de::Error>(&self, error: ApiError) -> E {
        let error = match self.index {
            Some(i) => error.at(i),
            None => error,
        };
        fail(self.failed, error)
    }
}

impl<'de> DeserializeSeed<'de> for Event<'_> {
    type Value = NewRecord;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<NewRecord, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Event<'_> {
    type Value = NewRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NewRecord, A::Error> {
        let mut category = None;
        let mut action = None;
        let mut message = None;
        let mut actor = None;
        let mut entity_type = None;
        let mut entity_id = None;
        let mut entity_name = None;
        let mut severity = None;
        let mut occurred_at = None;
        let mut metadata = None;
        while let Some(key) = map.next_key::<Key<'_>>()? {
            let name = match EVENT_FIELDS.iter().find(|f| **f == key.0) {
                Some(name) => *name,
                None => {
                    return Err(self.error(ApiError::invalid(
                        key.0.clone(),
                        format!(
                            "unknown field `{}`; events take {}",
                            key.0,
                            EVENT_FIELDS.join(", ")
                        ),
                    )))
                }
            };
            if name == "metadata" {
                // Built value by value under two budgets, so that no
                // body can pile up trees (a value costs ~80 bytes, and 2
                // bytes of text can make one): this event's (no more values
                // than fit the engine's 4096 encoded bytes) and the whole
                // body's (every event's tree is kept until the batch has
                // been parsed).
                let event_values = Cell::new(0);
                let parsed = map.next_value_seed(Budgeted {
                    event: &self,
                    mine: &event_values,
                })?;
                metadata = match parsed {
                    Value::Null => None,
                    Value::Object(m) => Some(m),
                    _ => {
                        return Err(self.error(ApiError::invalid(
                            "metadata",
                            "`metadata` must be a JSON object",
                        )))
                    }
                };
                continue;
            }
            // A field that should be a string but holds an array or object
            // is skipped over, never built (see `Scalar`).
            let value = match map.next_value::<Scalar>()? {
                Scalar::Null => None,
                Scalar::Str(s) => Some(s),
                Scalar::Other => {
                    return Err(self.error(ApiError::invalid(
                        name,
                        format!("`{name}` must be a string"),
                    )))
                }
            };
            let slot = match name {
                "category" => &mut category,
                "action" => &mut action,
                "message" => &mut message,
                "actor" => &mut actor,
                "entity_type" => &mut entity_type,
                "entity_id" => &mut entity_id,
                "entity_name" => &mut entity_name,
                "severity" => &mut severity,
                _ => &mut occurred_at,
            };
            *slot = value;
        }
        let required = |name: &'static str, v: Option<String>| {
            v.ok_or_else(|| ApiError::invalid(name, format!("`{name}` is required")))
        };
        let build = || -> Result<NewRecord, ApiError> {
            let severity = match severity {
                None => Severity::Info,
                Some(s) => s.parse().map_err(|e: actlog_engine::ValidationError| {
                    ApiError::invalid("severity", e.to_string())
                })?,
            };
            let rec = NewRecord {
                category: required("category", category)?,
                action: required("action", action)?,
                message: required("message", message)?,
                actor: actor.or_else(|| Some(self.actor.to_string())),
                entity_type,
                entity_id,
                entity_name,
                severity,
                metadata: metadata.unwrap_or_default(),
                occurred_at: match occurred_at {
                    None => None,
                    Some(s) => Some(parse_ts(&s).map_err(|m| ApiError::invalid("occurred_at", m))?),
                },
                // The recorder sets it from the key that sent the batch.
                recorded_by: None,
            };
            rec.validate()
                .map_err(|e| ApiError::invalid(e.field, e.to_string()))?;
            Ok(rec)
        };
        build().map_err(|e| self.error(e))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<NewRecord, A::Error> {
        Err(self.error(not_an_object()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NewRecord, E> {
        Err(self.error(not_an_object()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NewRecord, E> {
        Err(self.error(not_an_object()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NewRecord, E> {
        Err(self.error(not_an_object()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NewRecord, E> {
        Err(self.error(not_an_object()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<NewRecord, E> {
        Err(self.error(not_an_object()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<NewRecord, E> {
        Err(self.error(not_an_object()))
    }
}

fn not_an_object() -> ApiError {
    body_error("each event must be a JSON object")
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(s.into()))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(s.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(s.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field that should be a string: the string, `null`, or anything else —
/// skipped over without being built, so a huge array in `actor` costs no
/// memory (a wrong type is this API's 422 naming the field, not serde's).
enum Scalar {
    Null,
    Str(String),
    Other,
}

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(s))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_stored_as_sent_whatever_its_keys() {
        // `Value`'s Deserialize (with the raw_value feature) would read
        // the first object as the array [1, 2] and refuse the second.
        let body = br#"[
            {"category":"e","action":"a","message":"m",
             "metadata":{"$serde_json::private::RawValue":"[1, 2]","z":3}},
            {"category":"e","action":"a","message":"m",
             "metadata":{"o":{"$serde_json::private::RawValue":"not json"}}}
        ]"#;
        let recs = parse_events(body, "kitchen").expect("valid");
        assert_eq!(
            Value::Object(recs[0].metadata.clone()),
            serde_json::json!({"$serde_json::private::RawValue": "[1, 2]", "z": 3})
        );
        assert_eq!(
            Value::Object(recs[1].metadata.clone()),
            serde_json::json!({"o": {"$serde_json::private::RawValue": "not json"}})
        );
    }

    #[test]
    fn one_events_metadata_is_never_built_past_what_can_fit() {
        let values = |n: usize| {
            let zeros = vec!["0"; n - 2].join(",");
            format!(r#"{{"category":"e","action":"a","message":"m","metadata":{{"a":[{zeros}]}}}}"#)
        };
        // The object, the array and its elements: exactly the cap, then one more.
        let at_cap = values(MAX_EVENT_METADATA_VALUES);
        match parse_events(at_cap.as_bytes(), "k") {
            // Built, then refused by the engine's bound on encoded bytes.
            Err(e) => assert!(format!("{e:?}").contains("bytes encoded"), "{e:?}"),
            Ok(_) => panic!("4096 values cannot fit 4096 bytes"),
        }
        let over = values(MAX_EVENT_METADATA_VALUES + 1);
        let e = parse_events(over.as_bytes(), "k").expect_err("over the cap");
        assert!(format!("{e:?}").contains("holds over 4096 values"), "{e:?}");
        // Whitespace costs nothing: long text of few values is fine.
        let spaced = format!(
            r#"{{"category":"e","action":"a","message":"m","metadata":{{"a":{}1}}}}"#,
            " ".repeat(100_000)
        );
        let recs = parse_events(spaced.as_bytes(), "k").expect("few values");
        assert_eq!(
            Value::Object(recs[0].metadata.clone()),
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn events_are_checked_field_by_field() {
        let ok =
            br#"{"category":"entity","action":"entity.created","message":"m","entity_id":null}"#;
        let recs = parse_events(ok, "kitchen").expect("valid");
        assert_eq!(recs[0].actor.as_deref(), Some("kitchen"));
        assert_eq!(
            recs[0].recorded_by, None,
            "set by the recorder, not the parser"
        );
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
            // Set by the server only: refused whatever its value.
            (
                br#"{"category":"e","action":"a","message":"m","recorded_by":"server"}"#,
                "recorded_by",
            ),
            (
                br#"{"category":"e","action":"a","message":"m","recorded_by":null}"#,
                "recorded_by",
            ),
            (
                br#"{"category":"e","action":"a","message":"m","recorded\u005fby":"key_1"}"#,
                "recorded_by",
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

    #[test]
    fn strings_metadata_and_defaults_come_through() {
        let body =
            br#"[{"category":"entity","action":"entity.updated","message":"Lamp \"A\" \u00e9\n",
            "me\u0074adata":{"brightness":80,"nested":{"a":[1,null]},"token":"t"},
            "severity":"warning","occurred_at":"2026-11-25T20:01:02Z","actor":null,
            "entity_id":"dev_1","entity_id":"dev_2"}]"#;
        let recs = parse_events(body, "kitchen").expect("valid");
        let r = &recs[0];
        assert_eq!(r.message, "Lamp \"A\" é\n");
        assert_eq!(
            r.actor.as_deref(),
            Some("kitchen"),
            "null actor takes the key's label"
        );
        assert_eq!(
            r.entity_id.as_deref(),
            Some("dev_2"),
            "a repeated key: the last wins"
        );
        assert_eq!(r.severity, Severity::Warning);
        assert_eq!(r.occurred_at, parse_ts("2026-11-25T20:01:02Z").ok());
        assert_eq!(
            Value::Object(r.metadata.clone()),
            serde_json::json!({"brightness":80,"nested":{"a":[1,null]},"token":"t"})
        );
    }

    #[test]
    fn the_body_as_a_whole_is_judged_before_its_fields() {
        let ok = r#"{"category":"e","action":"a","message":"m"}"#;
        let bad = r#"{"category":"e","action":"a","message":7}"#;
        // A field error early in a body that is not JSON further on.
        let e = parse_events(format!("[{bad},{ok},").as_bytes(), "k").expect_err("not json");
        assert_eq!(e.code, "invalid_json");
        // 1001 elements, the first invalid: the size is the error.
        let big = format!("[{bad}{}]", format!(",{ok}").repeat(MAX_BATCH));
        let e = parse_events(big.as_bytes(), "k").expect_err("too many");
        assert_eq!((e.field.as_deref(), e.index), (Some("body"), None), "{e:?}");
        // 1001 valid ones.
        let big = format!("[{ok}{}]", format!(",{ok}").repeat(MAX_BATCH));
        let e = parse_events(big.as_bytes(), "k").expect_err("too many");
        assert!(e.message.contains("1001"), "{}", e.message);
        // Exactly 1000 is fine.
        let full = format!("[{ok}{}]", format!(",{ok}").repeat(MAX_BATCH - 1));
        assert_eq!(
            parse_events(full.as_bytes(), "k")
                .expect("full batch")
                .len(),
            MAX_BATCH
        );
        // Trailing bytes after the value.
        assert_eq!(
            parse_events(format!("{ok} x").as_bytes(), "k")
                .expect_err("trailing")
                .code,
            "invalid_json"
        );
    }

    #[test]
    fn wrong_shapes_name_the_body_or_the_element() {
        for body in [&b"7"[..], b"\"event\"", b"null", b"true"] {
            let e = parse_events(body, "k").expect_err("not an event");
            assert_eq!((e.field.as_deref(), e.index), (Some("body"), None), "{e:?}");
        }
        let e = parse_events(br#"[{"category":"e","action":"a","message":"m"},[1]]"#, "k")
            .expect_err("element 1 is an array");
        assert_eq!(
            (e.field.as_deref(), e.index),
            (Some("body"), Some(1)),
            "{e:?}"
        );
        for (value, field) in [
            (r#"{"x":1}"#, "message"),
            ("[]", "message"),
            ("true", "message"),
        ] {
            let body = format!(r#"{{"category":"e","action":"a","message":{value}}}"#);
            let e = parse_events(body.as_bytes(), "k").expect_err("wrong type");
            assert_eq!(e.field.as_deref(), Some(field), "{value}: {e:?}");
        }
        for value in ["[]", "\"x\"", "3"] {
            let body =
                format!(r#"{{"category":"e","action":"a","message":"m","metadata":{value}}}"#);
            let e = parse_events(body.as_bytes(), "k").expect_err("wrong type");
            assert_eq!(e.field.as_deref(), Some("metadata"), "{value}: {e:?}");
        }
    }
}
