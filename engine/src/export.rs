//! Records as text: the JSON object and CSV row that the server's API and
//! export, and `actlog-inspect dump`, all produce — one definition, so the
//! formats cannot drift apart.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::record::Record;

/// `2026-11-25T20:01:02.123456Z`: RFC 3339, UTC, always six fractional digits.
pub fn format_ts(us: i64) -> String {
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

/// A record as the API returns it (field order as in API.md).
#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    id: u64,
    ts: String,
    category: &'a str,
    action: &'a str,
    actor: &'a str,
    entity_type: Option<&'a str>,
    entity_id: Option<&'a str>,
    entity_name: Option<&'a str>,
    message: &'a str,
    severity: &'static str,
    metadata: &'a Map<String, Value>,
    occurred_at: Option<String>,
}

impl<'a> From<&'a Record> for RecordJson<'a> {
    fn from(r: &'a Record) -> Self {
        RecordJson {
            id: r.id,
            ts: format_ts(r.ts),
            category: &r.category,
            action: &r.action,
            actor: &r.actor,
            entity_type: r.entity_type.as_deref(),
            entity_id: r.entity_id.as_deref(),
            entity_name: r.entity_name.as_deref(),
            message: &r.message,
            severity: r.severity.as_str(),
            metadata: &r.metadata,
            occurred_at: r.occurred_at.map(format_ts),
        }
    }
}

/// The CSV header row.
pub const CSV_COLUMNS: [&str; 11] = [
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
];

/// A CSV cell that a spreadsheet would run as a formula gets a leading `'`:
/// its first character other than a space is `=`, `+`, `-` or `@`, or it
/// starts with a tab, CR, LF or NUL.
pub fn csv_safe(cell: &str) -> Cow<'_, str> {
    let starts_control = cell.starts_with(['\t', '\r', '\n', '\0']);
    let formula = cell
        .trim_start_matches(' ')
        .starts_with(['=', '+', '-', '@']);
    if starts_control || formula {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The CSV cells of a record, in [`CSV_COLUMNS`] order, formula-safe; null
/// is an empty cell and metadata is its JSON text.
pub fn csv_cells(r: &Record) -> [String; 11] {
    let opt = |v: &Option<String>| v.as_deref().map(csv_safe).unwrap_or_default().into_owned();
    let meta = serde_json::to_string(&r.metadata).unwrap_or_default();
    [
        r.id.to_string(),
        format_ts(r.ts),
        csv_safe(&r.category).into_owned(),
        csv_safe(&r.action).into_owned(),
        csv_safe(&r.actor).into_owned(),
        opt(&r.entity_type),
        opt(&r.entity_id),
        opt(&r.entity_name),
        csv_safe(&r.message).into_owned(),
        r.severity.as_str().to_string(),
        csv_safe(&meta).into_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
