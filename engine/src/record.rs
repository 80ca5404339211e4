//! The record: what callers hand in ([`NewRecord`]), what the engine stores
//! and returns ([`Record`]), validation, secret redaction and the MessagePack
//! payload codec.
//!
//! Bounds (DESIGN.md §2): tokens (`category`, `action`, `entity_type`) are
//! `[a-z0-9_.-]{1,64}`; `actor`, `entity_id`, `entity_name` and `recorded_by`
//! are 1–256 bytes of UTF-8; `message` is 1–1024 bytes; `metadata` is a JSON object of nesting
//! depth ≤ 4 whose MessagePack encoding is ≤ 4096 bytes. Strings may contain
//! any Unicode, control characters included: they are stored verbatim and it
//! is each output format's job to escape them.

#[cfg(test)]
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest token (`category`, `action`, `entity_type`), in bytes.
pub const MAX_TOKEN_LEN: usize = 64;
/// Longest name (`actor`, `entity_id`, `entity_name`, `recorded_by`), in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest `message`, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Largest `metadata`, measured as its MessagePack encoding, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Deepest `metadata` nesting; the top-level object is depth 1.
pub const MAX_METADATA_DEPTH: usize = 4;
/// The value a secret-looking metadata key's value is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// `occurred_at` bounds: years 0001 to 9999, in µs since the Unix epoch.
const MIN_TIME_US: i64 = -62_135_596_800_000_000;
const MAX_TIME_US: i64 = 253_402_300_799_999_999;

/// Substrings that make a metadata key secret (after lowercasing and reading
/// `-` as `_`), as listed in API.md "Redaction".
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
];

/// The first bytes of [`SECRET_KEY_PARTS`].
const SECRET_PART_FIRST_BYTES: &[u8] = b"pstac";

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Severity {
    /// Normal activity (the default).
    #[default]
    Info,
    /// Something a person may want to look at.
    Warning,
    /// Something failed.
    Error,
}

impl Severity {
    /// All severities, in increasing order.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Error];

    /// The wire name: `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Option<Severity> {
        Severity::ALL.get(usize::from(code)).copied()
    }
}

impl std::str::FromStr for Severity {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new("severity", "must be one of `info`, `warning`, `error`")
            })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {reason}")]
pub struct ValidationError {
    /// The field's wire name (`category`, `metadata`, ...).
    pub field: &'static str,
    /// What is wrong, as the end of a sentence ("must not be empty").
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ValidationError {
            field,
            reason: reason.into(),
        }
    }
}

/// An event as a caller submits it. The engine assigns `id` and `ts`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewRecord {
    /// Short token: `entity`, `auth`, `device`, `system`, or another.
    pub category: String,
    /// Dotted token such as `entity.updated`.
    pub action: String,
    /// Who did it. `None` stores `system`.
    pub actor: Option<String>,
    /// Kind of thing acted on (a token).
    pub entity_type: Option<String>,
    /// Identifier of the thing acted on.
    pub entity_id: Option<String>,
    /// Its human name at the time of the event.
    pub entity_name: Option<String>,
    /// Human-readable sentence.
    pub message: String,
    /// Default: `info`.
    pub severity: Severity,
    /// Small structured details. Secret-looking keys are redacted on append.
    pub metadata: Map<String, Value>,
    /// Client-supplied time of the event, µs since the Unix epoch; kept apart from `ts`.
    pub occurred_at: Option<i64>,
    /// Who handed the record to the log: the server sets the id of the API
    /// key that sent it, or `server` for what it records about itself (a
    /// client never chooses it). `None` is stored as nil, which is also what
    /// every record stored before the field existed reads as.
    pub recorded_by: Option<String>,
}

impl NewRecord {
    /// A record with the three required fields and everything else defaulted.
    pub fn new(
        category: impl Into<String>,
        action: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        NewRecord {
            category: category.into(),
            action: action.into(),
            message: message.into(),
            ..NewRecord::default()
        }
    }

    /// Checks every bound, as [`crate::Log::append`] will. Encodes nothing
    /// unless the metadata could be near its size bound (or holds a secret,
    /// which redaction resizes); then it measures the real encoding.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.check_fields()?;
        if has_secret(&self.metadata) || metadata_bound(&self.metadata) > MAX_METADATA_BYTES {
            self.encode_payload().map(drop)
        } else {
            Ok(())
        }
    }

    /// Validates, redacts secret metadata and encodes the MessagePack payload.
    pub(crate) fn encode_payload(&self) -> Result<Vec<u8>, ValidationError> {
        self.check_fields()?;
        let actor = self.actor.as_deref().unwrap_or(SYSTEM_ACTOR);
        // Clone only when something must be redacted (the common case has no secrets).
        let owned;
        let metadata = if has_secret(&self.metadata) {
            owned = redacted(&self.metadata);
            &owned
        } else {
            &self.metadata
        };
        let body = BodyRef {
            category: &self.category,
            action: &self.action,
            actor,
            entity_type: self.entity_type.as_deref(),
            entity_id: self.entity_id.as_deref(),
            entity_name: self.entity_name.as_deref(),
            message: &self.message,
            severity: self.severity.code(),
            metadata,
            occurred_at: self.occurred_at,
            recorded_by: self.recorded_by.as_deref(),
        };
        body.encode()
    }

    /// Every bound but the metadata's encoded size.
    fn check_fields(&self) -> Result<(), ValidationError> {
        check_token("category", &self.category)?;
        check_token("action", &self.action)?;
        let actor = self.actor.as_deref().unwrap_or(SYSTEM_ACTOR);
        check_name("actor", actor, MAX_NAME_LEN)?;
        if let Some(t) = &self.entity_type {
            check_token("entity_type", t)?;
        }
        if let Some(s) = &self.entity_id {
            check_name("entity_id", s, MAX_NAME_LEN)?;
        }
        if let Some(s) = &self.entity_name {
            check_name("entity_name", s, MAX_NAME_LEN)?;
        }
        check_name("message", &self.message, MAX_MESSAGE_LEN)?;
        if let Some(s) = &self.recorded_by {
            check_name("recorded_by", s, MAX_NAME_LEN)?;
        }
        if let Some(t) = self.occurred_at {
            if !(MIN_TIME_US..=MAX_TIME_US).contains(&t) {
                return Err(ValidationError::new(
                    "occurred_at",
                    "must lie between the years 0001 and 9999",
                ));
            }
        }
        let depth = map_depth(&self.metadata);
        if depth > MAX_METADATA_DEPTH {
            return Err(ValidationError::new(
                "metadata",
                format!("is nested {depth} levels deep; at most {MAX_METADATA_DEPTH} are allowed"),
            ));
        }
        Ok(())
    }
}

/// The actor stored when none is given.
pub const SYSTEM_ACTOR: &str = "system";

/// A stored record, as returned by reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Engine-assigned, strictly increasing, never reused.
    pub id: u64,
    /// Engine-assigned time of append, µs since the Unix epoch (UTC); never decreases with `id`.
    pub ts: i64,
    /// See [`NewRecord::category`].
    pub category: String,
    /// See [`NewRecord::action`].
    pub action: String,
    /// See [`NewRecord::actor`]; `system` when none was given.
    pub actor: String,
    /// See [`NewRecord::entity_type`].
    pub entity_type: Option<String>,
    /// See [`NewRecord::entity_id`].
    pub entity_id: Option<String>,
    /// See [`NewRecord::entity_name`].
    pub entity_name: Option<String>,
    /// See [`NewRecord::message`].
    pub message: String,
    /// See [`NewRecord::severity`].
    pub severity: Severity,
    /// Metadata after redaction.
    pub metadata: Map<String, Value>,
    /// See [`NewRecord::occurred_at`].
    pub occurred_at: Option<i64>,
    /// See [`NewRecord::recorded_by`]; `None` for records stored before the
    /// field existed (ten-element payloads).
    pub recorded_by: Option<String>,
}

impl Record {
    /// Decodes a frame payload. Errors describe what is wrong with the bytes.
    pub(crate) fn decode(id: u64, ts: i64, payload: &[u8]) -> Result<Record, String> {
        crate::record_view::RecordView::parse(id, ts, payload)?.to_record()
    }

    /// The serde decode of a payload: the reference [`Record::decode`]'s
    /// hand-written parser is tested against.
    #[cfg(test)]
    pub(crate) fn decode_with_serde(id: u64, ts: i64, payload: &[u8]) -> Result<Record, String> {
        let body: Body = rmp_serde::from_slice(payload).map_err(|e| format!("bad payload: {e}"))?;
        let severity = Severity::from_code(body.severity)
            .ok_or_else(|| format!("bad payload: unknown severity code {}", body.severity))?;
        Ok(Record {
            id,
            ts,
            category: body.category,
            action: body.action,
            actor: body.actor,
            entity_type: body.entity_type,
            entity_id: body.entity_id,
            entity_name: body.entity_name,
            message: body.message,
            severity,
            metadata: body.metadata,
            occurred_at: body.occurred_at,
            recorded_by: body.recorded_by,
        })
    }
}

/// The payload as written: a MessagePack array in field order, eleven
/// elements (see docs/FORMAT.md; format 2 and older wrote the first ten).
/// [`BodyRef::encode`] writes it; the derived `Serialize` (rmp-serde) is the
/// reference it is tested against.
#[cfg_attr(test, derive(Serialize))]
struct BodyRef<'a> {
    category: &'a str,
    action: &'a str,
    actor: &'a str,
    entity_type: Option<&'a str>,
    entity_id: Option<&'a str>,
    entity_name: Option<&'a str>,
    message: &'a str,
    severity: u8,
    metadata: &'a Map<String, Value>,
    occurred_at: Option<i64>,
    recorded_by: Option<&'a str>,
}

/// Elements of the payload array this build writes.
pub(crate) const PAYLOAD_FIELDS: u32 = 11;

impl BodyRef<'_> {
    /// The MessagePack array, written field by field with `rmp` (what
    /// rmp-serde writes for the struct, without its per-field dispatch) into a
    /// buffer sized up front: growing it field by field was a fifth of the
    /// CPU of a batch append. Only the metadata goes through serde; it is
    /// encoded once, in place, and its size checked afterwards.
    fn encode(&self) -> Result<Vec<u8>, ValidationError> {
        // Each string costs at most 5 marker bytes, an integer 9, the array 1.
        let opt = |s: Option<&str>| s.map_or(1, |s| s.len() + 5);
        let capacity = 1
            + self.category.len()
            + self.action.len()
            + self.actor.len()
            + self.message.len()
            + 4 * 5
            + opt(self.entity_type)
            + opt(self.entity_id)
            + opt(self.entity_name)
            + 9
            + metadata_bound(self.metadata)
            + 9
            + opt(self.recorded_by);
        let mut out = Vec::with_capacity(capacity);
        let encoding =
            |e: String| ValidationError::new("metadata", format!("cannot be encoded: {e}"));
        use rmp::encode::ValueWriteError;
        let enc = |out: &mut Vec<u8>| -> Result<(), ValueWriteError> {
            rmp::encode::write_array_len(out, PAYLOAD_FIELDS)?;
            rmp::encode::write_str(out, self.category)?;
            rmp::encode::write_str(out, self.action)?;
            rmp::encode::write_str(out, self.actor)?;
            for s in [self.entity_type, self.entity_id, self.entity_name] {
                match s {
                    Some(s) => rmp::encode::write_str(out, s)?,
                    None => {
                        rmp::encode::write_nil(out).map_err(ValueWriteError::InvalidMarkerWrite)?
                    }
                }
            }
            rmp::encode::write_str(out, self.message)?;
            rmp::encode::write_uint(out, u64::from(self.severity))?;
            Ok(())
        };
        enc(&mut out).map_err(|e| encoding(e.to_string()))?;
        let meta_start = out.len();
        rmp_serde::encode::write(&mut out, self.metadata).map_err(|e| encoding(e.to_string()))?;
        let meta_len = out.len() - meta_start;
        if meta_len > MAX_METADATA_BYTES {
            return Err(ValidationError::new(
                "metadata",
                format!("is {meta_len} bytes encoded; at most {MAX_METADATA_BYTES} are allowed"),
            ));
        }
        match self.occurred_at {
            Some(t) => rmp::encode::write_sint(&mut out, t).map(drop),
            None => rmp::encode::write_nil(&mut out).map_err(ValueWriteError::InvalidMarkerWrite),
        }
        .map_err(|e| encoding(e.to_string()))?;
        match self.recorded_by {
            Some(s) => rmp::encode::write_str(&mut out, s),
            None => rmp::encode::write_nil(&mut out).map_err(ValueWriteError::InvalidMarkerWrite),
        }
        .map_err(|e| encoding(e.to_string()))?;
        debug_assert!(out.len() <= capacity, "{} > {capacity}", out.len());
        Ok(out)
    }
}

/// An upper bound of the MessagePack size of `map` (as rmp-serde writes a
/// `serde_json` map): every string, array and map counted with a 5-byte
/// header, every number with 9 bytes. Walking the map is far cheaper than
/// encoding it twice or growing the buffer.
fn metadata_bound(map: &Map<String, Value>) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            Value::Null | Value::Bool(_) => 1,
            Value::Number(_) => 9,
            Value::String(s) => s.len() + 5,
            Value::Array(items) => 5 + items.iter().map(value).sum::<usize>(),
            Value::Object(m) => metadata_bound(m),
        }
    }
    5 + map
        .iter()
        .map(|(k, v)| k.len() + 5 + value(v))
        .sum::<usize>()
}

/// The payload as serde reads it back; mirrors [`BodyRef`] (test oracle).
/// A ten-element array (format 2 and older) leaves `recorded_by` at its
/// default, `None`.
#[cfg(test)]
#[derive(Deserialize)]
struct Body {
    category: String,
    action: String,
    actor: String,
    entity_type: Option<String>,
    entity_id: Option<String>,
    entity_name: Option<String>,
    message: String,
    severity: u8,
    metadata: Map<String, Value>,
    occurred_at: Option<i64>,
    #[serde(default)]
    recorded_by: Option<String>,
}

/// True for the characters a token may contain.
fn is_token_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-')
}

fn check_token(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > MAX_TOKEN_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_TOKEN_LEN} bytes long"),
        ));
    }
    if !value.bytes().all(is_token_byte) {
        return Err(ValidationError::new(
            field,
            "may contain only lowercase letters a-z, digits, `_`, `.` and `-`",
        ));
    }
    Ok(())
}

fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(
            field,
            "must not be empty (leave it out instead)",
        ));
    }
    if value.len() > max {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes long; at most {max} are allowed", value.len()),
        ));
    }
    Ok(())
}

fn map_depth(map: &Map<String, Value>) -> usize {
    1 + map.values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => map_depth(map),
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether any key of `map`, at any depth, names a secret.
fn has_secret(map: &Map<String, Value>) -> bool {
    fn value_has(v: &Value) -> bool {
        match v {
            Value::Object(m) => has_secret(m),
            Value::Array(items) => items.iter().any(value_has),
            _ => false,
        }
    }
    map.iter().any(|(k, v)| is_secret_key(k) || value_has(v))
}

/// Whether a metadata key names a secret (API.md "Redaction").
pub fn is_secret_key(key: &str) -> bool {
    if key.is_ascii() {
        // Same rule without allocating: compare ASCII-lowercased bytes, `-` as `_`.
        let norm = |b: u8| {
            if b == b'-' {
                b'_'
            } else {
                b.to_ascii_lowercase()
            }
        };
        let k = key.as_bytes();
        // Only positions whose byte can start a part are compared further
        // (metadata keys are checked on every append).
        return (0..k.len()).any(|i| {
            let first = norm(k[i]);
            SECRET_PART_FIRST_BYTES.contains(&first)
                && SECRET_KEY_PARTS.iter().any(|part| {
                    let p = part.as_bytes();
                    p[0] == first
                        && k.len() - i >= p.len()
                        && k[i..i + p.len()].iter().zip(p).all(|(&a, &b)| norm(a) == b)
                })
        });
    }
    let normal = key.to_lowercase().replace('-', "_");
    SECRET_KEY_PARTS.iter().any(|part| normal.contains(part))
}

/// A copy of `map` in which every secret key, at any depth (inside objects
/// and arrays alike), keeps its name and has its value replaced by [`REDACTED`].
pub fn redacted(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                Value::String(REDACTED.to_string())
            } else {
                redacted_value(v)
            };
            (k.clone(), v)
        })
        .collect()
}

fn redacted_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(redacted(map)),
        Value::Array(items) => Value::Array(items.iter().map(redacted_value).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn roundtrip_keeps_every_field() {
        let new = NewRecord {
            category: "entity".into(),
            action: "entity.updated".into(),
            actor: Some("kitchen-tablet".into()),
            entity_type: Some("device".into()),
            entity_id: Some("dev_17".into()),
            entity_name: Some("Living room strip \u{1F4A1}\n".into()),
            message: "Updated device 'Living room strip'".into(),
            severity: Severity::Warning,
            metadata: obj(json!({"brightness": 80, "nested": {"a": [1, 2.5, null, "x"]}})),
            occurred_at: Some(-5),
            recorded_by: Some("key_ab12cd34ef56".into()),
        };
        let payload = new.encode_payload().expect("valid");
        assert_eq!(payload[0], 0x9b, "an array of eleven elements");
        let rec = Record::decode(7, 99, &payload).expect("decodes");
        assert_eq!(rec.id, 7);
        assert_eq!(rec.ts, 99);
        assert_eq!(rec.actor, "kitchen-tablet");
        assert_eq!(rec.entity_name, new.entity_name);
        assert_eq!(rec.severity, Severity::Warning);
        assert_eq!(rec.metadata, new.metadata);
        assert_eq!(rec.occurred_at, Some(-5));
        assert_eq!(rec.recorded_by.as_deref(), Some("key_ab12cd34ef56"));
        assert_eq!(Record::decode_with_serde(7, 99, &payload), Ok(rec));
    }

    /// The payload of format 2 and older: the first ten elements, as
    /// rmp-serde wrote them for the struct before `recorded_by`.
    #[derive(Serialize)]
    struct BodyV2<'a> {
        category: &'a str,
        action: &'a str,
        actor: &'a str,
        entity_type: Option<&'a str>,
        entity_id: Option<&'a str>,
        entity_name: Option<&'a str>,
        message: &'a str,
        severity: u8,
        metadata: &'a Map<String, Value>,
        occurred_at: Option<i64>,
    }

    #[test]
    fn ten_element_payloads_read_with_recorded_by_none() {
        let metadata = obj(json!({"n": 9, "s": "x"}));
        let old = rmp_serde::to_vec(&BodyV2 {
            category: "entity",
            action: "entity.updated",
            actor: "user0",
            entity_type: Some("scene"),
            entity_id: Some("scn_4"),
            entity_name: None,
            message: "record number 9",
            severity: 1,
            metadata: &metadata,
            occurred_at: Some(1_767_225_600_000_000),
        })
        .expect("encodes");
        assert_eq!(old[0], 0x9a, "an array of ten elements");
        let rec = Record::decode(9, 10, &old).expect("a ten-element payload decodes");
        assert_eq!(rec.recorded_by, None);
        assert_eq!(
            (rec.actor.as_str(), rec.severity),
            ("user0", Severity::Warning)
        );
        assert_eq!(rec.occurred_at, Some(1_767_225_600_000_000));
        assert_eq!(Record::decode_with_serde(9, 10, &old), Ok(rec.clone()));
        // The same record written today: the ten elements unchanged, then
        // a nil, under an eleven-element array header.
        let new = NewRecord {
            category: "entity".into(),
            action: "entity.updated".into(),
            actor: Some("user0".into()),
            entity_type: Some("scene".into()),
            entity_id: Some("scn_4".into()),
            entity_name: None,
            message: "record number 9".into(),
            severity: Severity::Warning,
            metadata: metadata.clone(),
            occurred_at: Some(1_767_225_600_000_000),
            recorded_by: None,
        }
        .encode_payload()
        .expect("valid");
        assert_eq!(new[0], 0x9b);
        assert_eq!(new[1..new.len() - 1], old[1..]);
        assert_eq!(new.last(), Some(&0xc0));
        assert_eq!(Record::decode(9, 10, &new), Ok(rec));
        // Any other element count is an error, not a guess.
        for (n, header) in [(9, 0x99u8), (12, 0x9c)] {
            let mut b = old.clone();
            b[0] = header;
            if n == 12 {
                b.extend_from_slice(&[0xc0, 0xc0]);
            }
            assert!(Record::decode(1, 1, &b).is_err(), "{n} elements");
        }
    }

    proptest::proptest! {
        /// The hand-written encoder writes exactly what rmp-serde writes for
        /// the struct (the format's definition in docs/FORMAT.md), for every
        /// string length class, missing optional, severity and `occurred_at`.
        #[test]
        fn direct_encoding_matches_rmp_serde(
            lens in proptest::collection::vec(0usize..200_000, 8),
            present in proptest::collection::vec(proptest::bool::ANY, 5),
            severity in 0u8..4,
            occurred_at in proptest::prop_oneof![
                proptest::num::i64::ANY,
                -200i64..200,
                proptest::strategy::Just(MIN_TIME_US),
            ],
            meta_keys in 0usize..6,
            meta_seed in proptest::num::u64::ANY,
        ) {
            let text = |i: usize| "é∆x".repeat(lens[i] / 6 + 1)[..].chars().take(lens[i] / 3).collect::<String>();
            let strings: Vec<String> = (0..8).map(text).collect();
            let mut metadata = Map::new();
            for k in 0..meta_keys {
                let v = match (meta_seed >> (k * 3)) % 6 {
                    0 => json!(null),
                    1 => json!(meta_seed as i64 >> k),
                    2 => json!(0.5 + k as f64),
                    3 => json!(strings[k % 7]),
                    4 => json!([1, "two", {"three": [true, u64::MAX]}]),
                    _ => json!({"n": {"m": -1}}),
                };
                metadata.insert(format!("key{k}{}", strings[(k + 3) % 7].len()), v);
            }
            let body = BodyRef {
                category: &strings[0],
                action: &strings[1],
                actor: &strings[2],
                entity_type: present[0].then_some(&strings[3][..]),
                entity_id: present[1].then_some(&strings[4][..]),
                entity_name: present[2].then_some(&strings[5][..]),
                message: &strings[6],
                severity,
                metadata: &metadata,
                occurred_at: present[3].then_some(occurred_at),
                recorded_by: present[4].then_some(&strings[7][..]),
            };
            let reference = rmp_serde::to_vec(&body).expect("rmp-serde encodes");
            let meta_len = rmp_serde::to_vec(&metadata).expect("encodes").len();
            match body.encode() {
                Ok(direct) => {
                    proptest::prop_assert!(direct == reference);
                    // And both decoders read back the provenance encoded
                    // (severity 3 is no severity: both refuse it).
                    if severity < 3 {
                        let want = Ok(body.recorded_by.map(str::to_owned));
                        proptest::prop_assert_eq!(
                            Record::decode_with_serde(1, 1, &direct).map(|r| r.recorded_by),
                            want.clone()
                        );
                        proptest::prop_assert_eq!(
                            Record::decode(1, 1, &direct).map(|r| r.recorded_by),
                            want
                        );
                    }
                }
                Err(e) => {
                    proptest::prop_assert!(meta_len > MAX_METADATA_BYTES, "{e}");
                    proptest::prop_assert_eq!(e.field, "metadata");
                }
            }
        }
    }

    /// `validate` skips the encoding when the metadata's size bound is
    /// below the limit: it must still agree with the engine's encode on
    /// metadata around the limit, with and without a secret to redact.
    #[test]
    fn validate_agrees_with_encoding_around_the_metadata_bound() {
        for len in (3900..4200).step_by(7) {
            for key in ["note", "token", "Api-Key"] {
                for value in [
                    json!("x".repeat(len)),
                    json!(null),
                    json!([len, "y".repeat(len / 2)]),
                ] {
                    let mut metadata = Map::new();
                    metadata.insert(key.to_string(), value.clone());
                    metadata.insert("pad".into(), json!("z".repeat(len / 3)));
                    let rec = NewRecord {
                        metadata,
                        ..NewRecord::new("auth", "auth.login", "Signed in")
                    };
                    assert_eq!(
                        rec.validate().is_ok(),
                        rec.encode_payload().is_ok(),
                        "{key} {len} {value:.20}"
                    );
                }
            }
        }
        // A secret's value is replaced before measuring: a long secret passes.
        let mut metadata = Map::new();
        metadata.insert("password".into(), json!("p".repeat(5000)));
        let rec = NewRecord {
            metadata,
            ..NewRecord::new("auth", "auth.login", "Signed in")
        };
        assert!(rec.validate().is_ok() && rec.encode_payload().is_ok());
    }

    #[test]
    fn missing_actor_is_system() {
        let payload = NewRecord::new("system", "system.server_started", "Started")
            .encode_payload()
            .expect("valid");
        let rec = Record::decode(1, 1, &payload).expect("decodes");
        assert_eq!(rec.actor, SYSTEM_ACTOR);
        assert!(rec.metadata.is_empty());
    }

    #[test]
    fn each_bound_names_its_field() {
        let ok = NewRecord::new("auth", "auth.login", "Signed in");
        let cases: Vec<(&str, NewRecord)> = vec![
            (
                "category",
                NewRecord {
                    category: "".into(),
                    ..ok.clone()
                },
            ),
            (
                "category",
                NewRecord {
                    category: "Auth".into(),
                    ..ok.clone()
                },
            ),
            (
                "action",
                NewRecord {
                    action: "a".repeat(65),
                    ..ok.clone()
                },
            ),
            (
                "actor",
                NewRecord {
                    actor: Some("".into()),
                    ..ok.clone()
                },
            ),
            (
                "actor",
                NewRecord {
                    actor: Some("x".repeat(257)),
                    ..ok.clone()
                },
            ),
            (
                "entity_type",
                NewRecord {
                    entity_type: Some("a b".into()),
                    ..ok.clone()
                },
            ),
            (
                "entity_id",
                NewRecord {
                    entity_id: Some("x".repeat(257)),
                    ..ok.clone()
                },
            ),
            (
                "entity_name",
                NewRecord {
                    entity_name: Some("".into()),
                    ..ok.clone()
                },
            ),
            (
                "message",
                NewRecord {
                    message: "".into(),
                    ..ok.clone()
                },
            ),
            (
                "message",
                NewRecord {
                    message: "é".repeat(513),
                    ..ok.clone()
                },
            ),
            (
                "occurred_at",
                NewRecord {
                    occurred_at: Some(i64::MAX),
                    ..ok.clone()
                },
            ),
            (
                "recorded_by",
                NewRecord {
                    recorded_by: Some("".into()),
                    ..ok.clone()
                },
            ),
            (
                "recorded_by",
                NewRecord {
                    recorded_by: Some("k".repeat(257)),
                    ..ok.clone()
                },
            ),
            (
                "metadata",
                NewRecord {
                    metadata: obj(json!({"a": {"b": {"c": {"d": {"e": 1}}}}})),
                    ..ok.clone()
                },
            ),
            (
                "metadata",
                NewRecord {
                    metadata: obj(json!({"blob": "x".repeat(4100)})),
                    ..ok.clone()
                },
            ),
        ];
        for (field, rec) in cases {
            let err = rec.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
        // Exactly at the bounds is fine.
        let edge = NewRecord {
            action: "a".repeat(64),
            actor: Some("x".repeat(256)),
            recorded_by: Some("k".repeat(256)),
            message: "m".repeat(1024),
            metadata: obj(json!({"a": {"b": [{"c": 1}]}})),
            ..ok
        };
        edge.validate().expect("bounds are inclusive");
    }

    #[test]
    fn secret_keys_are_redacted_at_any_depth() {
        let rec = NewRecord {
            metadata: obj(json!({
                "Api-Key": "k",
                "ip": "10.0.0.1",
                "nested": {"session_cookie": {"x": 1}, "list": [{"PASSWD": "p", "ok": 1}]},
                "db_credentials": ["a"],
            })),
            ..NewRecord::new("auth", "auth.login", "Signed in")
        };
        let out = Record::decode(1, 1, &rec.encode_payload().expect("valid")).expect("decodes");
        assert_eq!(
            Value::Object(out.metadata),
            json!({
                "Api-Key": REDACTED,
                "ip": "10.0.0.1",
                "nested": {"session_cookie": REDACTED, "list": [{"PASSWD": REDACTED, "ok": 1}]},
                "db_credentials": REDACTED,
            })
        );
    }

    #[test]
    fn secret_part_first_bytes_cover_every_part() {
        for part in SECRET_KEY_PARTS {
            assert!(
                SECRET_PART_FIRST_BYTES.contains(&part.as_bytes()[0]),
                "{part}"
            );
        }
    }

    #[test]
    fn secret_key_rule_matches_the_api_with_and_without_allocation() {
        for k in [
            "X-Auth-Token",
            "Private-Key",
            "APIKEY",
            "my_passwd",
            "Set-Cookie",
            "Ключ_token",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["brightness", "api-kex", "ip", "Ключ", "privatekey"] {
            assert!(!is_secret_key(k), "{k}");
        }
        // The allocation-free ASCII path agrees with the plain rule on every
        // part at every position, in any case, and on near misses.
        let plain = |k: &str| {
            let normal = k.to_lowercase().replace('-', "_");
            SECRET_KEY_PARTS.iter().any(|part| normal.contains(part))
        };
        for part in SECRET_KEY_PARTS {
            let upper = part.to_uppercase().replace('_', "-");
            let short = &part[..part.len() - 1];
            for k in [
                part.to_string(),
                format!("x{part}"),
                format!("{part}y"),
                format!("ab-{upper}-cd"),
                short.to_string(),
                format!("{short}-{short}"),
                format!("pp{short}"),
            ] {
                assert_eq!(is_secret_key(&k), plain(&k), "{k}");
            }
        }
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\xff\xff",
            b"\x9a\x01\x02",
            b"\x9b\x01\x02",
            b"\x9b",
            b"\xdd\xff\xff\xff\xff",
        ] {
            assert!(Record::decode(1, 1, bytes).is_err());
        }
    }
}
