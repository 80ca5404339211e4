//! `dump`: records as ndjson or csv through the engine's own query types.

use std::io::Write;
use std::path::Path;

use actlog_engine::export::{csv_cells, RecordJson, CSV_COLUMNS};
use actlog_engine::{Config, Field, Log, Order, Selection};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::{DumpFormat, Filters};
use crate::{need_dir, Outcome, Usage};

fn parse_time(flag: &str, s: &str) -> anyhow::Result<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Usage(format!(
            "--{flag} `{s}` is not an RFC 3339 time such as 2026-11-25T20:01:02Z"
        ))
    })?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

/// The engine selection the flags describe.
pub fn selection(f: &Filters) -> anyhow::Result<(Selection, Order)> {
    let mut sel = Selection::default();
    for (field, values) in [
        (Field::Category, &f.category),
        (Field::Action, &f.action),
        (Field::Actor, &f.actor),
        (Field::EntityType, &f.entity_type),
        (Field::EntityId, &f.entity_id),
        (Field::Severity, &f.severity),
        (Field::RecordedBy, &f.recorded_by),
    ] {
        for v in values {
            sel = sel.with(field, v.clone());
        }
    }
    if let Some(q) = &f.q {
        sel = sel.with_words(q);
    }
    sel.since = f
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    sel.until = f
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    let order = match f.order.as_str() {
        "asc" => Order::Asc,
        "desc" => Order::Desc,
        other => return Err(Usage(format!("--order `{other}`: use asc or desc")).into()),
    };
    Ok((sel, order))
}

/// `actlog-inspect dump DIR [filters] [--format ndjson|csv]`
pub fn dump(dir: &Path, f: &Filters, format: DumpFormat) -> anyhow::Result<Outcome> {
    need_dir(dir)?;
    let (sel, order) = selection(f)?;
    let log = Log::open_read_only(dir, Config::default())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let limit = f.limit.unwrap_or(u64::MAX);
    let records = log.scan(sel, order).take(limit as usize);
    match format {
        DumpFormat::Ndjson => {
            for r in records {
                serde_json::to_writer(&mut out, &RecordJson::from(&r?))?;
                out.write_all(b"\n")?;
            }
        }
        DumpFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(CSV_COLUMNS)?;
            for r in records {
                w.write_record(csv_cells(&r?).iter().map(|c| c.as_bytes()))?;
            }
            w.flush()?;
        }
    }
    out.flush()?;
    Ok(Outcome::Ok)
}
