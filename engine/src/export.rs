//! Records as text: the JSON object and CSV row that the server's API and
//! export, and `actlog-inspect dump`, all produce — one definition, so the
//! formats cannot drift apart.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::record::Record;
use crate::record_view::{RawMetadata, RecordView};

/// `2026-11-25T20:01:02.123456Z`: RFC 3339, UTC, always six fractional digits.
pub fn format_ts(us: i64) -> String {
    with_ts_text(us, |b| b.iter().map(|&c| char::from(c)).collect())
}

/// Calls `f` with [`format_ts`]'s text as ASCII bytes, allocating only for
/// years outside 0000–9999. The text holds only digits and `-:.TZ`, so it
/// goes into JSON strings and CSV cells as it is.
fn with_ts_text<R>(us: i64, f: impl FnOnce(&[u8]) -> R) -> R {
    match ts_text(us) {
        Some(b) => f(&b),
        None => f(format_ts_any_year(us).as_bytes()),
    }
}

/// Length of [`format_ts`]'s text for years 0000–9999.
const TS_LEN: usize = 27;

/// [`format_ts`] without allocating or going through `fmt`, for years
/// 0000–9999 (every `ts` a clock can give); `None` outside them.
fn ts_text(us: i64) -> Option<[u8; TS_LEN]> {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    // Two digits a step from a table: a page of records formats one or two
    // times per record, and digit by digit this was 4 % of a list page.
    let mut pair = |at: usize, v: u32| {
        let i = 2 * (v % 100) as usize;
        b[at..at + 2].copy_from_slice(&DIGIT_PAIRS[i..i + 2]);
    };
    pair(0, y / 100);
    pair(2, y);
    pair(5, m);
    pair(8, d);
    pair(11, rem / 3600);
    pair(14, rem % 3600 / 60);
    pair(17, rem % 60);
    pair(20, micros / 10_000);
    pair(22, micros / 100);
    pair(24, micros);
    Some(b)
}

/// "00" to "99", back to back.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

fn format_ts_any_year(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A time that serializes as [`format_ts`]'s text.
#[derive(Debug, Clone, Copy)]
struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        with_ts_text(self.0, |b| {
            serializer.serialize_str(std::str::from_utf8(b).map_err(serde::ser::Error::custom)?)
        })
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A record as the API returns it (field order as in API.md), from an
/// owned [`Record`] or a [`RecordView`] read in place.
#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    id: u64,
    ts: Ts,
    category: &'a str,
    action: &'a str,
    actor: &'a str,
    entity_type: Option<&'a str>,
    entity_id: Option<&'a str>,
    entity_name: Option<&'a str>,
    message: &'a str,
    severity: &'static str,
    metadata: MetadataOut<'a>,
    occurred_at: Option<Ts>,
    recorded_by: Option<&'a str>,
}

/// Metadata decoded or still encoded; both serialize as the same object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum MetadataOut<'a> {
    Map(&'a Map<String, Value>),
    Raw(RawMetadata<'a>),
}

impl<'a> From<&'a Record> for RecordJson<'a> {
    fn from(r: &'a Record) -> Self {
        RecordJson {
            metadata: MetadataOut::Map(&r.metadata),
            ..RecordJson::from(fields_of(r))
        }
    }
}

/// `r`'s fields borrowed in a [`RecordView`]; its metadata is not carried
/// (left `{}`): callers write `r.metadata` themselves.
fn fields_of(r: &Record) -> RecordView<'_> {
    RecordView {
        id: r.id,
        ts: r.ts,
        category: &r.category,
        action: &r.action,
        actor: &r.actor,
        entity_type: r.entity_type.as_deref(),
        entity_id: r.entity_id.as_deref(),
        entity_name: r.entity_name.as_deref(),
        message: &r.message,
        severity: r.severity,
        metadata: RawMetadata::EMPTY,
        occurred_at: r.occurred_at,
        recorded_by: r.recorded_by.as_deref(),
    }
}

impl<'a> From<RecordView<'a>> for RecordJson<'a> {
    fn from(v: RecordView<'a>) -> Self {
        RecordJson {
            id: v.id,
            ts: Ts(v.ts),
            category: v.category,
            action: v.action,
            actor: v.actor,
            entity_type: v.entity_type,
            entity_id: v.entity_id,
            entity_name: v.entity_name,
            message: v.message,
            severity: v.severity.as_str(),
            metadata: MetadataOut::Raw(v.metadata),
            occurred_at: v.occurred_at.map(Ts),
            recorded_by: v.recorded_by,
        }
    }
}

impl RecordJson<'_> {
    /// Appends the record as JSON to `out`: byte for byte what
    /// `serde_json::to_writer(out, self)` writes (tested), faster. A page
    /// of records is mostly plain text, and serde_json escapes strings a
    /// byte at a time (17.6 % of the server's CPU serving newest-50 pages);
    /// here a string with nothing to escape is copied whole, and any other
    /// goes through serde_json.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut id = itoa::Buffer::new();
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(id.format(self.id).as_bytes());
        out.extend_from_slice(b",\"ts\":");
        write_ts(out, self.ts);
        for (key, value) in [
            (&b",\"category\":"[..], Some(self.category)),
            (b",\"action\":", Some(self.action)),
            (b",\"actor\":", Some(self.actor)),
            (b",\"entity_type\":", self.entity_type),
            (b",\"entity_id\":", self.entity_id),
            (b",\"entity_name\":", self.entity_name),
            (b",\"message\":", Some(self.message)),
            (b",\"severity\":", Some(self.severity)),
        ] {
            out.extend_from_slice(key);
            match value {
                Some(v) => write_json_str(out, v)?,
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut *out, &self.metadata)?;
        out.extend_from_slice(b",\"occurred_at\":");
        match self.occurred_at {
            Some(ts) => write_ts(out, ts),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"recorded_by\":");
        match self.recorded_by {
            Some(v) => write_json_str(out, v)?,
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Ok(())
    }
}

/// [`Ts`] as a JSON string (nothing in it needs escaping).
fn write_ts(out: &mut Vec<u8>, ts: Ts) {
    with_ts_text(ts.0, |b| {
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    })
}

/// `s` as a JSON string, escaped exactly as serde_json escapes it: copied
/// whole when it holds no `"`, `\` or control character (serde_json
/// escapes nothing else), otherwise written by serde_json.
fn write_json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    // No early exit, so the compiler can check many bytes a step.
    let plain = !s.as_bytes().iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

/// The CSV header row. `recorded_by` comes last (after `metadata`), so that
/// readers of the columns before it by position are unaffected.
pub const CSV_COLUMNS: [&str; 12] = [
    "id",
    "ts",
    "category",
    "action",
    "actor",
    "entity_type",
    "entity_id",
    "entity_name",
    "message",
    "severity",
    "metadata",
    "recorded_by",
];

/// A CSV cell that a spreadsheet would run as a formula gets a leading `'`:
/// its first character other than a space is `=`, `+`, `-` or `@`, or it
/// starts with a tab, CR, LF or NUL.
pub fn csv_safe(cell: &str) -> Cow<'_, str> {
    if needs_formula_prefix(cell.as_bytes()) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// [`csv_safe`]'s rule: the cell starts with a tab, CR, LF or NUL, or its
/// first byte other than a space is `=`, `+`, `-` or `@`.
fn needs_formula_prefix(cell: &[u8]) -> bool {
    matches!(cell.first(), Some(b'\t' | b'\r' | b'\n' | b'\0'))
        || matches!(
            cell.iter().find(|&&b| b != b' '),
            Some(b'=' | b'+' | b'-' | b'@')
        )
}

/// The CSV cells of a record, in [`CSV_COLUMNS`] order, formula-safe; null
/// is an empty cell (so is the `recorded_by` of a record stored before the
/// field existed) and metadata is its JSON text.
pub fn csv_cells(r: &Record) -> [Cow<'_, str>; 12] {
    let meta = serde_json::to_string(&r.metadata).unwrap_or_default();
    csv_row(fields_of(r), meta)
}

/// [`csv_cells`] of a record read in place.
pub fn csv_cells_of_view<'a>(v: &RecordView<'a>) -> [Cow<'a, str>; 12] {
    let meta = serde_json::to_string(&v.metadata).unwrap_or_default();
    csv_row(*v, meta)
}

/// Appends the CSV row of `v` (with its `\n`) to `out`: byte for byte what
/// the csv crate's default writer makes of [`csv_cells_of_view`], without
/// its per-cell `Cow`s, its own buffer and its byte-by-byte quoting scan.
/// `scratch` holds the metadata's JSON text between calls (reused).
pub fn write_csv_row(out: &mut Vec<u8>, v: &RecordView<'_>, scratch: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut n = v.id;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.push(b',');
    with_ts_text(v.ts, |b| out.extend_from_slice(b));
    for cell in [Some(v.category), Some(v.action), Some(v.actor)] {
        out.push(b',');
        push_safe_cell(out, cell.unwrap_or_default().as_bytes());
    }
    for cell in [v.entity_type, v.entity_id, v.entity_name, Some(v.message)] {
        out.push(b',');
        if let Some(cell) = cell {
            push_safe_cell(out, cell.as_bytes());
        }
    }
    out.push(b',');
    out.extend_from_slice(v.severity.as_str().as_bytes());
    out.push(b',');
    scratch.clear();
    if serde_json::to_writer(&mut *scratch, &v.metadata).is_ok() {
        push_safe_cell(out, scratch);
    }
    out.push(b',');
    if let Some(cell) = v.recorded_by {
        push_safe_cell(out, cell.as_bytes());
    }
    out.push(b'\n');
}

/// A cell, formula-safe as [`csv_safe`] makes it, quoted as the csv crate
/// quotes (only when it holds `,`, `"`, CR or LF; quotes doubled).
fn push_safe_cell(out: &mut Vec<u8>, cell: &[u8]) {
    let prefix: &[u8] = if needs_formula_prefix(cell) {
        b"'"
    } else {
        b""
    };
    if !cell
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.extend_from_slice(prefix);
        out.extend_from_slice(cell);
        return;
    }
    out.push(b'"');
    out.extend_from_slice(prefix);
    for part in cell.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// The row, with the metadata's JSON text given (the view's own metadata is
/// not read).
fn csv_row<'a>(v: RecordView<'a>, meta_json: String) -> [Cow<'a, str>; 12] {
    fn opt(s: Option<&str>) -> Cow<'_, str> {
        s.map(csv_safe).unwrap_or_default()
    }
    let meta = match csv_safe(&meta_json) {
        Cow::Borrowed(_) => meta_json,
        Cow::Owned(o) => o,
    };
    [
        v.id.to_string().into(),
        format_ts(v.ts).into(),
        csv_safe(v.category),
        csv_safe(v.action),
        csv_safe(v.actor),
        opt(v.entity_type),
        opt(v.entity_id),
        opt(v.entity_name),
        csv_safe(v.message),
        v.severity.as_str().into(),
        meta.into(),
        opt(v.recorded_by),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_and_general_formatting_agree() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years 0000..=9999 and beyond on both sides.
            let us = (x as i64) % 400_000_000_000_000_000;
            match ts_text(us) {
                Some(b) => assert_eq!(b.as_slice(), format_ts_any_year(us).as_bytes(), "{us}"),
                None => {
                    assert!(!(0..=9999).contains(&civil_from_days(us.div_euclid(86_400_000_000)).0))
                }
            }
            assert_eq!(format_ts(us), format_ts_any_year(us));
        }
        assert!(format_ts(i64::MIN).len() > TS_LEN);
    }

    #[test]
    fn formats_utc_microseconds() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            format_ts(1_767_225_600_000_000),
            "2026-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            format_ts(951_782_400_123_456),
            "2000-02-29T00:00:00.123456Z"
        );
        assert_eq!(
            format_ts(4_107_542_399_000_001),
            "2100-02-28T23:59:59.000001Z"
        );
    }

    #[test]
    fn formula_cells_are_defused() {
        for bad in [
            "=1+1", "+1", "-2", "@SUM(A1)", "  =cmd", "\tx", "\rx", "\nx", "\0x",
        ] {
            assert!(csv_safe(bad).starts_with('\''), "{bad:?}");
        }
        for ok in ["hello", "a=b", "1-2", " x", ""] {
            assert_eq!(csv_safe(ok), ok);
        }
    }

    #[test]
    fn views_and_owned_records_write_the_same_text() {
        use crate::record::{NewRecord, Severity};
        let mut r = NewRecord::new("entity", "entity.updated", "=cmd|' /C calc'!A0");
        r.actor = Some("@alice".into());
        r.entity_name = Some("Kitchen \"lamp\"\n".into());
        r.severity = Severity::Error;
        r.occurred_at = Some(1_767_225_600_000_001);
        r.recorded_by = Some("=key_\"1\"".into());
        let serde_json::Value::Object(m) =
            serde_json::json!({"z": 1, "a": [1.5, "=x", null], "nested": {"k": "v"}})
        else {
            unreachable!()
        };
        r.metadata = m;
        let payload = r.encode_payload().expect("valid");
        let owned = Record::decode(42, 1_767_225_600_000_000, &payload).expect("decode");
        let view = RecordView::parse(42, 1_767_225_600_000_000, &payload).expect("parse");
        assert_eq!(
            serde_json::to_string(&RecordJson::from(&owned)).expect("owned json"),
            serde_json::to_string(&RecordJson::from(view)).expect("view json"),
        );
        assert_eq!(csv_cells(&owned), csv_cells_of_view(&view));
        assert!(csv_cells_of_view(&view)[8].starts_with('\''));
        // recorded_by: the last column, formula-safe like every text cell,
        // and the JSON's last member.
        assert_eq!(CSV_COLUMNS[11], "recorded_by");
        assert_eq!(csv_cells_of_view(&view)[11], "'=key_\"1\"");
        let json = serde_json::to_value(RecordJson::from(view)).expect("json");
        assert_eq!(json["recorded_by"], "=key_\"1\"");
        let mut row = Vec::new();
        write_csv_row(&mut row, &view, &mut Vec::new());
        assert!(
            row.ends_with(b",\"'=key_\"\"1\"\"\"\n"),
            "{}",
            String::from_utf8_lossy(&row)
        );
        // A record without one (as every record stored before the field
        // existed reads): null in JSON, an empty last cell in CSV.
        r.recorded_by = None;
        let payload = r.encode_payload().expect("valid");
        let view = RecordView::parse(42, 1, &payload).expect("parse");
        let json = serde_json::to_value(RecordJson::from(view)).expect("json");
        assert_eq!(json["recorded_by"], serde_json::Value::Null);
        assert_eq!(csv_cells_of_view(&view)[11], "");
        let mut row = Vec::new();
        write_csv_row(&mut row, &view, &mut Vec::new());
        assert!(
            row.ends_with(b"}\",\n"),
            "{}",
            String::from_utf8_lossy(&row)
        );
    }

    /// Random text from a pool of pieces (xorshift64: the same every run).
    struct TextGen<'p> {
        x: u64,
        pool: &'p [&'p str],
    }

    impl<'p> TextGen<'p> {
        fn new(seed: u64, pool: &'p [&'p str]) -> Self {
            TextGen { x: seed, pool }
        }

        fn next(&mut self) -> u64 {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            self.x
        }

        /// 1 to `max` pieces.
        fn text(&mut self, max: u64) -> String {
            let n = 1 + self.next() % max;
            (0..n)
                .map(|_| self.pool[(self.next() % self.pool.len() as u64) as usize])
                .collect()
        }

        /// A record of random text, some fields missing by `round`.
        fn record(&mut self, round: usize) -> crate::record::NewRecord {
            let mut r = crate::record::NewRecord::new("entity", "entity.updated", self.text(12));
            r.actor = Some(self.text(6));
            r.entity_id = (!round.is_multiple_of(3)).then(|| self.text(5));
            r.entity_name = (!round.is_multiple_of(4)).then(|| self.text(8));
            r.severity = crate::record::Severity::ALL[round % 3];
            r.recorded_by = (!round.is_multiple_of(6)).then(|| self.text(4));
            if round.is_multiple_of(5) {
                let (k, v) = (self.text(3), self.text(6));
                r.metadata.insert(k, serde_json::Value::String(v));
            }
            r
        }

        /// A record time: near the earliest i64, before 1970, or recent.
        fn ts(&mut self, round: usize) -> i64 {
            match round % 7 {
                0 => i64::MIN + (self.next() % 1000) as i64,
                1 => -((self.next() % 1_000_000_000_000) as i64),
                _ => 1_767_225_600_000_000 + (self.next() % 1_000_000_000) as i64,
            }
        }
    }

    /// `write_json` makes exactly serde_json's bytes, for owned records and
    /// views, with every character serde_json escapes, non-ASCII text,
    /// missing fields, metadata and timestamps outside years 0000–9999.
    #[test]
    fn direct_json_matches_serde_json() {
        let pool = [
            "\"", "\\", "/", "\n", "\r", "\t", "\0", "\u{1}", "\u{1f}", "\u{7f}", "\u{2028}", "é∆",
            "😀", "a", "0", " ", "x y", "'", "<", "&",
        ];
        let mut g = TextGen::new(0x9e37_79b9_7f4a_7c15, &pool);
        for round in 0..3000 {
            let mut r = g.record(round);
            if round % 2 == 0 {
                r.actor = None;
            }
            r.entity_type = (round % 3 == 1).then(|| "device".to_string());
            if round % 5 == 0 {
                r.metadata
                    .insert("n".into(), serde_json::json!([1, 2.5, null, true]));
            }
            let ts = g.ts(round);
            r.occurred_at = match round % 4 {
                0 => None,
                1 => Some(-62_135_596_800_000_000 + (g.next() % 1000) as i64),
                _ => Some(1_767_225_600_000_000 - (g.next() % 1_000_000_000) as i64),
            };
            let payload = r.encode_payload().expect("valid");
            let id = g.next() >> (g.next() % 64);
            let view = RecordView::parse(id, ts, &payload).expect("parse");
            let owned = Record::decode(id, ts, &payload).expect("decode");
            for json in [RecordJson::from(view), RecordJson::from(&owned)] {
                let want = serde_json::to_vec(&json).expect("serde_json");
                let mut got = Vec::new();
                json.write_json(&mut got).expect("direct");
                assert!(
                    got == want,
                    "round {round}:\n got {}\nwant {}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
            }
        }
    }

    /// The direct row writer makes exactly the bytes the csv crate's default
    /// writer makes of the cells, for cells with every character that needs
    /// quoting or a formula prefix, non-ASCII text, missing fields and
    /// timestamps outside years 0000–9999.
    #[test]
    fn direct_csv_rows_match_the_csv_crate() {
        let pool = [
            ",", "\"", "\n", "\r", "\t", "=", "+", "-", "@", " ", "'", "é∆", "a", "0", "\0", "x y",
        ];
        let mut g = TextGen::new(0x2545_f491_4f6c_dd1d, &pool);
        let mut scratch = Vec::new();
        for round in 0..3000 {
            let r = g.record(round);
            let payload = r.encode_payload().expect("valid");
            let ts = g.ts(round);
            let id = g.next() >> (g.next() % 64);
            let view = RecordView::parse(id, ts, &payload).expect("parse");
            let mut want = csv::Writer::from_writer(Vec::new());
            want.write_record(csv_cells_of_view(&view).iter().map(|c| c.as_bytes()))
                .expect("csv");
            let want = want.into_inner().expect("flush");
            let mut got = Vec::new();
            write_csv_row(&mut got, &view, &mut scratch);
            assert!(
                got == want,
                "round {round}:\n got {:?}\nwant {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }
}
