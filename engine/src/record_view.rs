//! A record read in place: [`RecordView`] borrows every string from the
//! (CRC-checked) frame payload instead of allocating, and keeps the metadata
//! as its MessagePack bytes ([`RawMetadata`]) until someone asks for it.
//!
//! This is what a page of results is made of (see [`crate::PageBuf`]): a
//! reader that only writes records out (JSON, CSV) never builds the owned
//! [`Record`] at all. The payload layout it parses is the one
//! `docs/FORMAT.md` describes: a MessagePack array of eleven values in
//! field order, written by `NewRecord::encode_payload` — or of the first ten,
//! as every record stored before `recorded_by` existed was written.

use rmp::Marker;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::record::{Record, Severity, PAYLOAD_FIELDS};

/// Elements of a payload written before `recorded_by` (format 2 and older).
const LEGACY_PAYLOAD_FIELDS: u32 = 10;

/// A stored record whose strings borrow from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordView<'a> {
    /// See [`Record::id`].
    pub id: u64,
    /// See [`Record::ts`].
    pub ts: i64,
    /// See [`Record::category`].
    pub category: &'a str,
    /// See [`Record::action`].
    pub action: &'a str,
    /// See [`Record::actor`].
    pub actor: &'a str,
    /// See [`Record::entity_type`].
    pub entity_type: Option<&'a str>,
    /// See [`Record::entity_id`].
    pub entity_id: Option<&'a str>,
    /// See [`Record::entity_name`].
    pub entity_name: Option<&'a str>,
    /// See [`Record::message`].
    pub message: &'a str,
    /// See [`Record::severity`].
    pub severity: Severity,
    /// See [`Record::metadata`]; still encoded.
    pub metadata: RawMetadata<'a>,
    /// See [`Record::occurred_at`].
    pub occurred_at: Option<i64>,
    /// See [`Record::recorded_by`].
    pub recorded_by: Option<&'a str>,
}

/// Metadata as stored: one MessagePack map. It serializes (with serde) as
/// that map, transcoded value by value without building a `serde_json::Map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMetadata<'a>(&'a [u8]);

impl<'a> RawMetadata<'a> {
    /// `{}`.
    pub const EMPTY: RawMetadata<'static> = RawMetadata(&[0x80]);

    /// The MessagePack bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// True for `{}`.
    pub fn is_empty(&self) -> bool {
        self.0 == [0x80]
    }

    /// Decodes into an owned map, by the same transcoding that list and
    /// export write: `Value`'s own `Deserialize` is not used, since with
    /// serde_json's `raw_value` feature it reads a map whose first key is
    /// `$serde_json::private::RawValue` (a valid metadata key) as the JSON
    /// text of its value, so `get` would disagree with list, or fail.
    pub fn to_map(&self) -> Result<Map<String, Value>, String> {
        if self.is_empty() {
            return Ok(Map::new());
        }
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("bad metadata: not a map".into()),
            Err(e) => Err(format!("bad metadata: {e}")),
        }
    }
}

impl Serialize for RawMetadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut de = rmp_serde::Deserializer::from_read_ref(self.0);
        serde_transcode::transcode(&mut de, serializer)
    }
}

impl<'a> RecordView<'a> {
    /// Parses a frame payload in place. Errors describe what is wrong with the
    /// bytes (a CRC-valid frame never has one unless it was written by
    /// something other than this engine).
    pub fn parse(id: u64, ts: i64, payload: &'a [u8]) -> Result<RecordView<'a>, String> {
        let mut p = Parser { rest: payload };
        let n = p.array_len()?;
        if n != PAYLOAD_FIELDS && n != LEGACY_PAYLOAD_FIELDS {
            return Err(format!(
                "bad payload: an array of {n} values where {PAYLOAD_FIELDS} \
                 (or {LEGACY_PAYLOAD_FIELDS}, before `recorded_by`) belong"
            ));
        }
        let category = p.str("category")?;
        let action = p.str("action")?;
        let actor = p.str("actor")?;
        let entity_type = p.opt_str("entity_type")?;
        let entity_id = p.opt_str("entity_id")?;
        let entity_name = p.opt_str("entity_name")?;
        let message = p.str("message")?;
        let code = p.uint("severity")?;
        let severity = u8::try_from(code)
            .ok()
            .and_then(Severity::from_code)
            .ok_or_else(|| format!("bad payload: unknown severity code {code}"))?;
        let metadata = RawMetadata(p.map_value("metadata")?);
        let occurred_at = p.opt_int("occurred_at")?;
        let recorded_by = if n == PAYLOAD_FIELDS {
            p.opt_str("recorded_by")?
        } else {
            None
        };
        if !p.rest.is_empty() {
            return Err(format!(
                "bad payload: {} bytes after the last field",
                p.rest.len()
            ));
        }
        Ok(RecordView {
            id,
            ts,
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
            recorded_by,
        })
    }

    /// The owned record (allocates every string and decodes the metadata).
    pub fn to_record(&self) -> Result<Record, String> {
        Ok(Record {
            id: self.id,
            ts: self.ts,
            category: self.category.to_owned(),
            action: self.action.to_owned(),
            actor: self.actor.to_owned(),
            entity_type: self.entity_type.map(str::to_owned),
            entity_id: self.entity_id.map(str::to_owned),
            entity_name: self.entity_name.map(str::to_owned),
            message: self.message.to_owned(),
            severity: self.severity,
            metadata: self.metadata.to_map()?,
            occurred_at: self.occurred_at,
            recorded_by: self.recorded_by.map(str::to_owned),
        })
    }
}

/// A forward-only MessagePack reader over a payload, using `rmp` for the
/// values it knows and skipping metadata without recursion.
struct Parser<'a> {
    rest: &'a [u8],
}

impl<'a> Parser<'a> {
    fn peek_nil(&self) -> bool {
        self.rest.first() == Some(&0xc0)
    }

    fn array_len(&mut self) -> Result<u32, String> {
        rmp::decode::read_array_len(&mut self.rest)
            .map_err(|e| format!("bad payload: not an array ({e})"))
    }

    fn str(&mut self, field: &str) -> Result<&'a str, String> {
        // fixstr, str8, str16, str32 (rmp's marker decoding, generic over
        // readers, took a fifth of a page's parse).
        let (len, head) = match *self.rest {
            [m @ 0xa0..=0xbf, ..] => (usize::from(m & 0x1f), 1),
            [0xd9, n, ..] => (usize::from(n), 2),
            [0xda, a, b, ..] => (usize::from(u16::from_be_bytes([a, b])), 3),
            [0xdb, a, b, c, d, ..] => (u32::from_be_bytes([a, b, c, d]) as usize, 5),
            _ => return Err(format!("bad payload: {field} is not a string")),
        };
        let (bytes, rest) = self.rest[head..]
            .split_at_checked(len)
            .ok_or_else(|| format!("bad payload: {field} is cut short"))?;
        let s = text(bytes).map_err(|e| format!("bad payload: {field} is not UTF-8 ({e})"))?;
        self.rest = rest;
        Ok(s)
    }

    fn opt_str(&mut self, field: &str) -> Result<Option<&'a str>, String> {
        if self.peek_nil() {
            self.rest = &self.rest[1..];
            return Ok(None);
        }
        self.str(field).map(Some)
    }

    fn uint(&mut self, field: &str) -> Result<u64, String> {
        rmp::decode::read_int(&mut self.rest)
            .map_err(|e| format!("bad payload: {field} is not an integer ({e})"))
    }

    fn opt_int(&mut self, field: &str) -> Result<Option<i64>, String> {
        if self.peek_nil() {
            self.rest = &self.rest[1..];
            return Ok(None);
        }
        rmp::decode::read_int(&mut self.rest)
            .map(Some)
            .map_err(|e| format!("bad payload: {field} is not an integer ({e})"))
    }

    /// The bytes of the next value, which must be a map.
    fn map_value(&mut self, field: &str) -> Result<&'a [u8], String> {
        match self.rest.first().map(|&b| Marker::from_u8(b)) {
            Some(Marker::FixMap(_) | Marker::Map16 | Marker::Map32) => {}
            _ => return Err(format!("bad payload: {field} is not a map")),
        }
        let len = metadata_len(self.rest, crate::record::MAX_METADATA_DEPTH)
            .map_err(|why| format!("bad payload: {field} {why}"))?;
        let (value, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(value)
    }
}

/// `bytes` as text. Nearly every stored string is ASCII, and checking that
/// (a word at a time) costs a fraction of full UTF-8 validation, which for
/// the short strings of a record runs byte by byte: on a page of 50 records
/// validation was 30 % of all instructions. Anything else is validated.
fn text(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if is_ascii(bytes) {
        #[allow(unsafe_code)]
        // SAFETY: every byte is below 0x80, and any sequence of ASCII bytes
        // is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes)
}

/// Whether every byte is below 0x80, a word at a time even for strings
/// shorter than a word (two overlapping reads), where `<[u8]>::is_ascii`
/// loops byte by byte.
fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    let n = b.len();
    let bits = match n {
        0..=3 => b.iter().fold(0u64, |acc, &x| acc | u64::from(x)),
        4..=7 => half(0) | half(n - 4),
        _ => {
            let mut acc = word(n - 8);
            let mut at = 0;
            while at + 8 <= n {
                acc |= word(at);
                at += 8;
            }
            acc
        }
    };
    bits & HIGH == 0
}

/// Checks that the MessagePack value at the start of `bytes` is metadata as
/// this engine writes it, and returns its length: a value JSON can hold
/// (maps with unique string keys, arrays, UTF-8 strings, integers, finite
/// f64, booleans, nil) nesting containers at most `max_depth` deep (a
/// container at the top is depth 1). Anything else — bytes cut short,
/// binary or extension values, an f32, a non-string or repeated key — is
/// an error naming it: such bytes were not written by this engine, and
/// were they accepted, readers that transcode the bytes and readers that
/// build a map would disagree on the record. Iterative: hostile bytes can
/// neither recurse nor make it allocate more than two offsets per key.
///
/// Nearly all metadata is one small map of scalars ([`flat_map_len`]
/// checks that shape with no bookkeeping); the general walk takes the rest.
fn metadata_len(bytes: &[u8], max_depth: usize) -> Result<usize, &'static str> {
    if max_depth >= 1 {
        if let Some(len) = flat_map_len(bytes)? {
            return Ok(len);
        }
    }
    nested_len(bytes, max_depth)
}

const CUT: &str = "is cut short";
const KEY_NOT_STR: &str = "has a map key that is not a string";
const REPEATED_KEY: &str = "repeats a key in one map";

/// One MessagePack item at a given offset: a scalar, or the header of a
/// container whose elements follow.
enum Item {
    /// A scalar ending at `end`; a string's text is `text` (checked UTF-8).
    Scalar {
        end: usize,
        text: Option<(usize, usize)>,
    },
    /// A container of `n` entries (key-value pairs, for a map) whose first
    /// element starts at `body`.
    Container { n: u64, map: bool, body: usize },
}

/// Reads the item whose marker is at `at`, refusing what JSON cannot hold.
fn item(bytes: &[u8], at: usize) -> Result<Item, &'static str> {
    let be = |from: usize, n: usize| -> Result<usize, &'static str> {
        let b = bytes
            .get(from..from.checked_add(n).ok_or(CUT)?)
            .ok_or(CUT)?;
        Ok(b.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
    };
    let marker = Marker::from_u8(*bytes.get(at).ok_or(CUT)?);
    let body = at + 1;
    // A scalar other than a string: `n` bytes after the marker.
    let scalar = |body: usize, n: usize| {
        let end = body.checked_add(n).ok_or(CUT)?;
        if end > bytes.len() {
            return Err(CUT);
        }
        Ok(Item::Scalar { end, text: None })
    };
    // A string: its length, or the width of its length field.
    let (fixed, str_len_width) = match marker {
        Marker::FixStr(n) => (usize::from(n), 0),
        Marker::Str8 => (0, 1),
        Marker::Str16 => (0, 2),
        Marker::Str32 => (0, 4),
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
            return scalar(body, 0)
        }
        Marker::U8 | Marker::I8 => return scalar(body, 1),
        Marker::U16 | Marker::I16 => return scalar(body, 2),
        Marker::U32 | Marker::I32 => return scalar(body, 4),
        Marker::U64 | Marker::I64 => return scalar(body, 8),
        Marker::F64 => {
            let b = bytes.get(body..body + 8).ok_or(CUT)?;
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            if !f64::from_be_bytes(w).is_finite() {
                return Err("holds a number JSON cannot (NaN or infinite)");
            }
            return scalar(body, 8);
        }
        Marker::F32 => return Err("holds a 32-bit float, which this engine never writes"),
        Marker::Bin8
        | Marker::Bin16
        | Marker::Bin32
        | Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => return Err("holds binary or extension data, which JSON cannot"),
        Marker::Reserved => return Err("holds the reserved marker 0xc1"),
        Marker::FixArray(n) => {
            return Ok(Item::Container {
                n: u64::from(n),
                map: false,
                body,
            })
        }
        Marker::FixMap(n) => {
            return Ok(Item::Container {
                n: u64::from(n),
                map: true,
                body,
            })
        }
        m @ (Marker::Array16 | Marker::Map16) => {
            return Ok(Item::Container {
                n: be(body, 2)? as u64,
                map: m == Marker::Map16,
                body: body + 2,
            })
        }
        m @ (Marker::Array32 | Marker::Map32) => {
            return Ok(Item::Container {
                n: be(body, 4)? as u64,
                map: m == Marker::Map32,
                body: body + 4,
            })
        }
    };
    let (start, len) = if str_len_width > 0 {
        (body + str_len_width, be(body, str_len_width)?)
    } else {
        (body, fixed)
    };
    let end = start.checked_add(len).ok_or(CUT)?;
    let value = bytes.get(start..end).ok_or(CUT)?;
    text(value).map_err(|_| "holds a string that is not UTF-8")?;
    Ok(Item::Scalar {
        end,
        text: Some((start, end)),
    })
}

/// The length of `bytes`' leading value if it is a map of at most 15
/// entries whose values are all scalars (checked as [`metadata_len`]
/// does); `None` when it is some other shape.
fn flat_map_len(bytes: &[u8]) -> Result<Option<usize>, &'static str> {
    let n = match bytes.first() {
        Some(&m @ 0x80..=0x8f) => usize::from(m & 0x0f),
        _ => return Ok(None),
    };
    let mut keys = [(0usize, 0usize); 15];
    let mut at = 1;
    for i in 0..n {
        let Item::Scalar {
            end,
            text: Some(key),
        } = item(bytes, at)?
        else {
            return Err(KEY_NOT_STR);
        };
        let name = &bytes[key.0..key.1];
        if keys[..i].iter().any(|k| &bytes[k.0..k.1] == name) {
            return Err(REPEATED_KEY);
        }
        keys[i] = key;
        at = match item(bytes, end)? {
            Item::Scalar { end, .. } => end,
            Item::Container { .. } => return Ok(None),
        };
    }
    Ok(Some(at))
}

/// [`metadata_len`] for any shape: a walk over explicit levels.
fn nested_len(bytes: &[u8], max_depth: usize) -> Result<usize, &'static str> {
    // Metadata nests at most MAX_METADATA_DEPTH deep; the tests walk a
    // little deeper.
    const LEVELS: usize = 9;
    debug_assert!(max_depth < LEVELS);
    let max_depth = max_depth.min(LEVELS - 1);
    // Level 0 holds the one top value; level `d` a container at depth `d`.
    let mut levels = [Level::default(); LEVELS];
    levels[0].left = 1;
    let mut depth = 0usize;
    // Elements still to be read, at every level together.
    let mut total: u64 = 1;
    // The keys of every open map, innermost last.
    let mut keys = KeyStack::default();
    let mut at = 0usize;
    loop {
        while levels[depth].left == 0 {
            if levels[depth].map {
                if keys.repeats_from(bytes, levels[depth].keys_from as usize) {
                    return Err(REPEATED_KEY);
                }
                keys.truncate(levels[depth].keys_from as usize);
            }
            if depth == 0 {
                return Ok(at);
            }
            depth -= 1;
        }
        let level = &mut levels[depth];
        let is_key = level.map && level.left % 2 == 0;
        level.left -= 1;
        total -= 1;
        match item(bytes, at)? {
            Item::Scalar { end, text } => {
                if is_key {
                    let Some((start, end)) = text else {
                        return Err(KEY_NOT_STR);
                    };
                    // Within a payload, which is far below 4 GiB.
                    keys.push(start as u32, end as u32);
                }
                at = end;
            }
            Item::Container { .. } if is_key => return Err(KEY_NOT_STR),
            Item::Container { n, map, body } => {
                if depth + 1 > max_depth {
                    return Err("is nested too deep");
                }
                at = body;
                let elements = if map { 2 * n } else { n };
                total = total.checked_add(elements).ok_or(CUT)?;
                // Every element takes at least one byte: a count beyond
                // what is left cannot end within the input (and so fits
                // a u32, payloads being far below 4 GiB).
                if total > bytes.len().saturating_sub(at) as u64 {
                    return Err(CUT);
                }
                depth += 1;
                levels[depth] = Level {
                    left: u32::try_from(elements).map_err(|_| CUT)?,
                    map,
                    keys_from: u32::try_from(keys.len()).map_err(|_| CUT)?,
                };
                continue;
            }
        }
        // Every element takes at least one byte: a count beyond what is
        // left cannot end within the input.
        if total > bytes.len().saturating_sub(at) as u64 {
            return Err(CUT);
        }
    }
}

/// The keys of the open maps while [`metadata_len`] walks, innermost map's
/// last, as `(start, end)` offsets into the metadata: on the stack for the
/// few keys metadata nearly always has (a heap vector for every record read,
/// or a larger array to clear, cost more than the rest of the check).
struct KeyStack {
    inline: [(u32, u32); KeyStack::INLINE],
    len: usize,
    /// Every key, once there were more than fit inline.
    spilled: Option<Vec<(u32, u32)>>,
}

impl Default for KeyStack {
    fn default() -> Self {
        KeyStack {
            inline: [(0, 0); KeyStack::INLINE],
            len: 0,
            spilled: None,
        }
    }
}

impl KeyStack {
    const INLINE: usize = 16;

    fn len(&self) -> usize {
        self.spilled.as_ref().map_or(self.len, Vec::len)
    }

    fn push(&mut self, start: u32, end: u32) {
        match &mut self.spilled {
            Some(v) => v.push((start, end)),
            None if self.len < Self::INLINE => {
                self.inline[self.len] = (start, end);
                self.len += 1;
            }
            None => {
                let mut v = self.inline.to_vec();
                v.push((start, end));
                self.spilled = Some(v);
            }
        }
    }

    fn truncate(&mut self, to: usize) {
        match &mut self.spilled {
            Some(v) => v.truncate(to),
            None => self.len = self.len.min(to),
        }
    }

    /// Whether a key occurs twice among those from index `from` on (one
    /// map's) in `bytes`: pairwise for a few, sorted for many.
    fn repeats_from(&mut self, bytes: &[u8], from: usize) -> bool {
        let mine = match &mut self.spilled {
            Some(v) => &mut v[from..],
            None => &mut self.inline[from..self.len],
        };
        let key = |k: (u32, u32)| &bytes[k.0 as usize..k.1 as usize];
        if mine.len() <= 8 {
            (1..mine.len()).any(|i| mine[..i].iter().any(|&k| key(k) == key(mine[i])))
        } else {
            mine.sort_unstable_by(|&a, &b| key(a).cmp(key(b)));
            mine.windows(2).any(|w| key(w[0]) == key(w[1]))
        }
    }
}

/// One open container while [`metadata_len`] walks: elements still to be
/// read (keys and values both, for a map), and for a map where its keys
/// start in the walk's key list.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    left: u32,
    keys_from: u32,
    map: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewRecord;
    use serde_json::json;

    fn payload(r: &NewRecord) -> Vec<u8> {
        r.encode_payload().expect("valid record")
    }

    fn full() -> NewRecord {
        let mut r = NewRecord::new("entity", "entity.updated", "Renamed the scene");
        r.actor = Some("alice".into());
        r.entity_type = Some("scene".into());
        r.entity_id = Some("scene-7".into());
        r.entity_name = Some("Evening ☾".into());
        r.severity = Severity::Warning;
        r.occurred_at = Some(-5);
        r.recorded_by = Some("key_0a1b2c3d4e5f".into());
        let Value::Object(m) = json!({
            "n": 1, "neg": -300, "big": u64::MAX, "f": 1.5, "s": "x".repeat(300),
            "nested": {"a": [1, "two", null, true, {"b": false}]}, "empty": {}
        }) else {
            unreachable!()
        };
        r.metadata = m;
        r
    }

    /// The ten-element payload format 2 wrote for `r` (whose `recorded_by`
    /// must be `None`): today's bytes without the trailing nil, under a
    /// ten-element array header.
    fn legacy(r: &NewRecord) -> Vec<u8> {
        assert_eq!(r.recorded_by, None);
        let mut b = payload(r);
        assert_eq!((b[0], b.last()), (0x9b, Some(&0xc0)));
        b[0] = 0x9a;
        b.pop();
        b
    }

    fn without_provenance() -> NewRecord {
        NewRecord {
            recorded_by: None,
            ..full()
        }
    }

    #[test]
    fn view_matches_the_owned_decode() {
        let payloads = [
            payload(&full()),
            payload(&without_provenance()),
            legacy(&without_provenance()),
            payload(&NewRecord::new("auth", "auth.login", "hi")),
            legacy(&NewRecord::new("auth", "auth.login", "hi")),
        ];
        for bytes in payloads {
            let view = RecordView::parse(7, 9, &bytes).expect("parse");
            let owned = Record::decode_with_serde(7, 9, &bytes).expect("decode");
            assert_eq!(view.to_record().expect("to_record"), owned);
            assert_eq!(
                serde_json::to_value(view.metadata).expect("transcode"),
                Value::Object(owned.metadata.clone())
            );
            assert_eq!(view.metadata.is_empty(), owned.metadata.is_empty());
        }
        let view = |b: &[u8]| {
            RecordView::parse(1, 2, b)
                .expect("parse")
                .recorded_by
                .map(str::to_owned)
        };
        assert_eq!(view(&payload(&full())).as_deref(), Some("key_0a1b2c3d4e5f"));
        assert_eq!(view(&payload(&without_provenance())), None);
        assert_eq!(view(&legacy(&without_provenance())), None);
        // Apart from it, a legacy payload reads as today's.
        let (old, new) = (
            legacy(&without_provenance()),
            payload(&without_provenance()),
        );
        assert_eq!(
            RecordView::parse(1, 2, &old).expect("old").to_record(),
            RecordView::parse(1, 2, &new).expect("new").to_record()
        );
    }

    proptest::proptest! {
        /// Any bytes behind a ten- or eleven-element array header (and any
        /// bytes at all) parse or fail, never panic; when the hand-written
        /// parser and the serde decode both accept, they agree.
        #[test]
        fn arbitrary_payloads_are_errors_or_agree_with_serde(
            header in proptest::sample::select(vec![0x9au8, 0x9b, 0xdc]),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut b = vec![header];
            if header == 0xdc {
                b.extend_from_slice(&[0, 11]);
            }
            b.extend_from_slice(&body);
            for bytes in [&b[..], &body[..]] {
                readers_agree(bytes);
                if let (Ok(v), Ok(r)) = (
                    RecordView::parse(1, 1, bytes),
                    Record::decode_with_serde(1, 1, bytes),
                ) {
                    proptest::prop_assert_eq!(v.to_record().ok(), Some(r));
                }
            }
        }

        /// A valid payload of either shape with its tail replaced by
        /// arbitrary bytes: errors or faithful parses, never a panic.
        #[test]
        fn damaged_tails_of_both_shapes_never_panic(
            eleven in proptest::bool::ANY,
            cut in 0usize..400,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let mut b = if eleven { payload(&full()) } else { legacy(&without_provenance()) };
            b.truncate(cut.min(b.len()));
            b.extend_from_slice(&tail);
            readers_agree(&b);
            if let (Ok(v), Ok(r)) = (
                RecordView::parse(1, 1, &b),
                Record::decode_with_serde(1, 1, &b),
            ) {
                proptest::prop_assert_eq!(v.to_record().ok(), Some(r));
            }
        }
    }

    /// Whatever the view accepts, every reader renders alike (see
    /// `fuzzing::assert_readers_agree`).
    fn readers_agree(bytes: &[u8]) {
        let Ok(view) = RecordView::parse(1, 1, bytes) else {
            return;
        };
        crate::fuzzing::assert_readers_agree(&view);
    }

    /// An eleven-element payload around `metadata`, given as raw bytes.
    fn with_metadata(metadata: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        rmp::encode::write_array_len(&mut b, 11).expect("vec");
        for s in ["entity", "entity.updated", "alice"] {
            rmp::encode::write_str(&mut b, s).expect("vec");
        }
        b.extend_from_slice(&[0xc0, 0xc0, 0xc0]);
        rmp::encode::write_str(&mut b, "Renamed").expect("vec");
        rmp::encode::write_uint(&mut b, 1).expect("vec");
        b.extend_from_slice(metadata);
        b.extend_from_slice(&[0xc0, 0xc0]);
        b
    }

    #[test]
    fn metadata_json_cannot_hold_is_refused_by_every_reader() {
        // A control: the same shape with ordinary metadata parses.
        let good = rmp_serde::to_vec(&json!({"a": 1, "b": [0.5, "x"]})).expect("encode");
        RecordView::parse(1, 1, &with_metadata(&good)).expect("ordinary metadata");
        let cases: [(&str, Vec<u8>); 9] = [
            ("a map key that is not a string", vec![0x81, 0x01, 0x02]),
            (
                "repeats a key",
                vec![0x82, 0xa1, b'k', 0x01, 0xa1, b'k', 0x02],
            ),
            (
                "repeats a key",
                vec![
                    0x81, 0xa1, b'o', 0x83, 0xa1, b'x', 1, 0xa1, b'y', 2, 0xa1, b'x', 3,
                ],
            ),
            (
                "binary or extension",
                vec![0x81, 0xa1, b'k', 0xc4, 0x01, 0xff],
            ),
            (
                "binary or extension",
                vec![0x81, 0xa1, b'k', 0xd4, 0x01, 0x00],
            ),
            (
                "32-bit float",
                vec![0x81, 0xa1, b'k', 0xca, 0x3f, 0x80, 0, 0],
            ),
            (
                "NaN or infinite",
                vec![0x81, 0xa1, b'k', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
            ),
            ("not UTF-8", vec![0x81, 0xa1, b'k', 0xa2, 0xc3, 0x28]),
            ("not UTF-8", vec![0x81, 0xa2, 0xff, 0xfe, 0x01]),
        ];
        for (why, metadata) in cases {
            let bytes = with_metadata(&metadata);
            let err = RecordView::parse(1, 1, &bytes).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
            assert!(Record::decode(1, 1, &bytes).is_err(), "{why}");
        }
        // Maps of more keys than the check keeps inline, nested in one
        // another: distinct keys pass, a key repeated within one map (in
        // either map) does not.
        let many = |repeat_outer: bool, repeat_inner: bool| {
            let mut inner = serde_json::Map::new();
            for i in 0..40 {
                inner.insert(format!("inner-{i}"), json!(i));
            }
            let mut outer = serde_json::Map::new();
            for i in 0..40 {
                outer.insert(format!("k{i}"), json!(i));
            }
            outer.insert("nested".into(), Value::Object(inner));
            let mut b = rmp_serde::to_vec(&Value::Object(outer)).expect("encode");
            // Rename a key in place to another key of the same length.
            let rename = |b: &mut Vec<u8>, from: &str, to: &str| {
                let at = b
                    .windows(from.len())
                    .position(|w| w == from.as_bytes())
                    .expect("key present");
                b[at..at + to.len()].copy_from_slice(to.as_bytes());
            };
            if repeat_outer {
                rename(&mut b, "k39", "k38");
            }
            if repeat_inner {
                rename(&mut b, "inner-39", "inner-38");
            }
            with_metadata(&b)
        };
        let ok = many(false, false);
        RecordView::parse(1, 1, &ok).expect("many distinct keys");
        readers_agree(&ok);
        for (outer, inner) in [(true, false), (false, true)] {
            let err = RecordView::parse(1, 1, &many(outer, inner)).expect_err("a repeated key");
            assert!(err.contains("repeats a key"), "{err}");
        }
        // The same keys in different maps are fine.
        let nested =
            rmp_serde::to_vec(&json!({"k": {"k": 1}, "j": [{"k": 2}, {"k": 3}]})).expect("encode");
        let bytes = with_metadata(&nested);
        RecordView::parse(1, 1, &bytes).expect("repeated keys in separate maps");
        readers_agree(&bytes);
    }

    /// serde_json (built with `raw_value`, as the workspace builds it)
    /// reads a map whose first key is `$serde_json::private::RawValue` as
    /// the JSON text its value holds. The engine writes such a key like any
    /// other (it is a valid metadata key), and the view accepts it, so `get`
    /// (which builds the map through `Value`'s `Deserialize`) and list and
    /// export (which transcode) must still agree, and `get` must not fail.
    #[test]
    fn the_raw_value_token_as_a_metadata_key_reads_alike_everywhere() {
        let token = "$serde_json::private::RawValue";
        for inner in [
            json!({ token: "[1, 2]" }),
            json!({ token: "not json" }),
            json!({ token: 5 }),
            json!({ token: "1", "after": 2 }),
            json!([{ token: "{}" }]),
        ] {
            let mut r = NewRecord::new("entity", "entity.updated", "raw");
            r.metadata.insert("x".into(), inner.clone());
            r.metadata.insert("z".into(), json!(3));
            r.validate().expect("a valid record");
            let bytes = payload(&r);
            let view = RecordView::parse(1, 1, &bytes).expect("the view accepts it");
            let owned = view.to_record().unwrap_or_else(|e| {
                panic!("{inner}: an engine-written record cannot be read: {e}")
            });
            assert_eq!(owned.metadata, r.metadata, "{inner}: get");
            readers_agree(&bytes);
        }
    }

    /// Whatever metadata a valid `NewRecord` holds, the engine's bytes
    /// parse and read back alike everywhere: the stricter view refuses
    /// nothing this engine writes.
    #[test]
    fn every_kind_of_valid_metadata_the_engine_writes_parses() {
        let values = [
            json!(0.1),
            json!(1e300),
            json!(-0.0),
            json!(f64::MIN_POSITIVE),
            json!(5e-324),
            json!(f64::MAX),
            json!(1.0),
            json!(u64::MAX),
            json!(i64::MAX as u64 + 1),
            json!(i64::MIN),
            json!(-1),
            json!(""),
            json!({}),
            json!([]),
            json!(null),
            json!("☾\u{0}\u{10ffff}"),
            json!({"a": [{"b": []}]}),
            json!([[[1]]]),
            json!({"": {"": {"": 1}}}),
        ];
        for v in values {
            for key in ["k", "", "ключ☾", "\u{0}", "$serde_json::private::Number"] {
                let mut r = NewRecord::new("entity", "entity.updated", "m");
                r.metadata.insert(key.into(), v.clone());
                r.metadata.insert("other".into(), json!({ key: v.clone() }));
                if r.validate().is_err() {
                    assert!(matches!(v, Value::Object(_) | Value::Array(_)), "{v}");
                    continue;
                }
                let bytes = payload(&r);
                let view = RecordView::parse(1, 1, &bytes)
                    .unwrap_or_else(|e| panic!("{key:?}: {v}: refused: {e}"));
                let owned = view.to_record().expect("to_record");
                assert_eq!(owned.metadata, r.metadata, "{key:?}: {v}");
                readers_agree(&bytes);
            }
        }
    }

    #[test]
    fn text_agrees_with_from_utf8_on_any_bytes() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            b"plain ascii, longer than a couple of machine words".to_vec(),
            "Evening ☾ with ümlauts".as_bytes().to_vec(),
            vec![0x80],
            vec![b'a', 0xc3],
            vec![0xed, 0xa0, 0x80], // a surrogate
            vec![0x7f; 17],
        ];
        // Every single byte, alone and at each position of a 17-byte run.
        for b in 0..=255u8 {
            cases.push(vec![b]);
            for at in 0..17 {
                let mut v = vec![b'x'; 17];
                v[at] = b;
                cases.push(v);
            }
        }
        // Every length around the word sizes, with the high byte anywhere.
        for len in 0..40 {
            cases.push(vec![b'y'; len]);
            for at in 0..len {
                let mut v = vec![b'y'; len];
                v[at] = 0xc3;
                cases.push(v);
            }
        }
        for c in &cases {
            assert_eq!(text(c).ok(), std::str::from_utf8(c).ok(), "{c:?}");
            assert_eq!(is_ascii(c), c.is_ascii(), "{c:?}");
        }
    }

    #[test]
    fn metadata_len_refuses_nesting_past_its_limit() {
        // Four levels, the metadata bound, arrays counted like maps.
        let ok = rmp_serde::to_vec(&json!({"a": [{"b": [1]}]})).expect("encode");
        assert_eq!(metadata_len(&ok, 4).ok(), Some(ok.len()));
        let deep = rmp_serde::to_vec(&json!({"a": [{"b": [[]]}]})).expect("encode");
        assert_eq!(metadata_len(&deep, 4).ok(), None);
        assert_eq!(metadata_len(&deep, 5).ok(), Some(deep.len()));
        // Stored bytes nested 500 deep (no writer makes them) are refused
        // by the view without recursing, so no reader transcodes them.
        let mut hostile = vec![0x81, 0xa1, b'k'];
        hostile.extend(std::iter::repeat_n(0x91, 500));
        hostile.push(0xc0);
        assert_eq!(metadata_len(&hostile, 4).ok(), None);
    }

    #[test]
    fn metadata_len_measures_every_kind() {
        let v = json!([null, true, 1, -1, 200, -200, 70000, -70000, 5_000_000_000u64,
            -5_000_000_000i64, 0.5, "s", "x".repeat(40), "y".repeat(300), "z".repeat(70000),
            {"k": [1, 2, {"deep": []}]}]);
        let bytes = rmp_serde::to_vec(&v).expect("encode");
        assert_eq!(metadata_len(&bytes, 8).ok(), Some(bytes.len()));
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(metadata_len(&longer, 8).ok(), Some(bytes.len()));
        for cut in 0..bytes.len() {
            assert_eq!(metadata_len(&bytes[..cut], 8).ok(), None, "cut at {cut}");
        }
    }

    #[test]
    fn the_flat_path_agrees_with_the_general_walk() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![0x80],
            vec![0x81, 0x01, 0x02],
            vec![0x82, 0xa1, b'k', 0x01, 0xa1, b'k', 0x02],
            vec![0x82, 0xa1, b'k', 0x01, 0xd9, 0x01, b'k', 0x02],
            vec![0x81, 0xa1, b'k', 0xc4, 0x01, 0xff],
            vec![0x81, 0xa1, b'k', 0xca, 0x3f, 0x80, 0, 0],
            vec![0x81, 0xa1, b'k', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
            vec![0x81, 0xa1, b'k', 0xa2, 0xc3, 0x28],
            vec![0x81, 0x91, 0x01, 0x02],
            vec![0x81, 0xc1, 0x01],
        ];
        for v in [
            json!({"fields": "brightness", "previous": 160, "brightness": 230}),
            json!({"fps": 79.2, "state": "recovering", "n": -5, "big": u64::MAX, "t": true}),
            json!({"a": {"b": 1}, "c": [1, 2]}),
            json!({"ünïcode": "✓", "": null}),
        ] {
            cases.push(rmp_serde::to_vec(&v).expect("encode"));
        }
        for c in cases {
            for cut in 0..=c.len() {
                let b = &c[..cut];
                let general = nested_len(b, 4);
                match flat_map_len(b) {
                    Ok(Some(n)) => assert_eq!(general, Ok(n), "{b:x?}"),
                    Ok(None) => {}
                    Err(e) => assert_eq!(general.map_err(|_| ()), Err(()), "{e}: {b:x?}"),
                }
            }
        }
    }

    #[test]
    fn metadata_len_refuses_huge_counts_fast() {
        // An array32 claiming 4 billion elements in 5 bytes.
        assert_eq!(metadata_len(&[0xdd, 0xff, 0xff, 0xff, 0xff], 8).ok(), None);
        assert_eq!(
            metadata_len(&[0xdf, 0xff, 0xff, 0xff, 0xff, 1], 8).ok(),
            None
        );
        assert_eq!(metadata_len(&[0xc1], 8).ok(), None);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_a_faithful_parse() {
        for bytes in [payload(&full()), legacy(&without_provenance())] {
            truncations_and_flips(&bytes);
        }
    }

    fn truncations_and_flips(bytes: &[u8]) {
        for cut in 0..bytes.len() {
            assert!(
                RecordView::parse(1, 1, &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x40;
            // Must not panic; when both decoders accept, they agree.
            if let (Ok(v), Ok(r)) = (
                RecordView::parse(1, 1, &b),
                Record::decode_with_serde(1, 1, &b),
            ) {
                assert_eq!(v.to_record().ok(), Some(r));
            }
        }
    }
}
