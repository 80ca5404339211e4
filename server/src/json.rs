//! JSON on the wire: records out, events in, RFC 3339 times.

use actlog_engine::Record;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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

pub use crate::ingest_json::parse_events;

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
}
