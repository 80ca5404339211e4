//! `ls`, `stat` and `verify`.

use std::path::Path;

use actlog_engine::export::format_ts;
use actlog_engine::inspect::{self, DirStatus, IndexState};
use actlog_engine::segment::FORMAT_VERSION;
use actlog_engine::{Config, Log};

use crate::{need_dir, progress, Outcome};

fn index_word(s: &IndexState) -> String {
    match s {
        IndexState::Valid => "index ok".into(),
        IndexState::Missing => "index MISSING".into(),
        IndexState::Damaged(_) => "index DAMAGED".into(),
        IndexState::InMemory => "index in memory".into(),
    }
}

fn time_range(r: Option<(i64, i64)>) -> String {
    match r {
        Some((a, b)) => format!("{} .. {}", format_ts(a), format_ts(b)),
        None => "(empty)".into(),
    }
}

fn print_findings(st: &DirStatus) {
    for f in &st.findings {
        let kind = if f.damage { "DAMAGE" } else { "warning" };
        println!("{kind}: {} @ {}: {}", f.file.display(), f.offset, f.what);
    }
}

/// `actlog-inspect ls DIR`
pub fn ls(dir: &Path) -> anyhow::Result<Outcome> {
    need_dir(dir)?;
    let st = inspect::list(dir)?;
    for s in &st.segments {
        let ids = if s.records > 0 {
            format!("{}..={}", s.base_id, s.end_id() - 1)
        } else {
            format!("{}.. (empty)", s.base_id)
        };
        println!(
            "{}  ids {ids}  {}  {} records  {} bytes  {}  {}",
            s.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            time_range(s.ts_range),
            s.records,
            s.bytes + s.index_bytes.unwrap_or(0),
            if s.sealed { "sealed" } else { "active" },
            index_word(&s.index),
        );
    }
    print_findings(&st);
    Ok(if st.damaged() {
        Outcome::Damage
    } else {
        Outcome::Ok
    })
}

/// `actlog-inspect stat DIR`
pub fn stat(dir: &Path) -> anyhow::Result<Outcome> {
    need_dir(dir)?;
    let st = inspect::list(dir)?;
    println!("data directory   {}", dir.display());
    println!("format version   {FORMAT_VERSION}");
    println!(
        "segments         {} ({} sealed)",
        st.segments.len(),
        st.segments.iter().filter(|s| s.sealed).count()
    );
    let bytes: u64 = st
        .segments
        .iter()
        .map(|s| s.bytes + s.index_bytes.unwrap_or(0))
        .sum();
    println!("bytes on disk    {bytes}");
    println!("low watermark    {}", st.watermark);
    match Log::open_read_only(dir, Config::default()).and_then(|log| log.stats()) {
        Ok(s) => {
            println!("entries          {}", s.entries);
            if let (Some(o), Some(n)) = (s.oldest, s.newest) {
                println!("oldest           #{} {}", o.0, format_ts(o.1));
                println!("newest           #{} {}", n.0, format_ts(n.1));
            }
        }
        Err(e) => println!("entries          unknown: {e}"),
    }
    match std::fs::read(dir.join("settings.json")) {
        Ok(b) => println!(
            "settings         {}",
            String::from_utf8_lossy(&b)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Err(_) => println!("settings         (defaults: recording on, no retention bound)"),
    }
    let keys = std::fs::read(dir.join("keys.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["keys"].as_array().map(Vec::len))
        .unwrap_or(0);
    println!("api keys         {keys}");
    if !st.temp_files.is_empty() {
        println!(
            "temp files       {} (removed on the next open)",
            st.temp_files.len()
        );
    }
    if !st.quarantined.is_empty() {
        println!("quarantined      {}", st.quarantined.len());
    }
    print_findings(&st);
    Ok(if st.damaged() {
        Outcome::Damage
    } else {
        Outcome::Ok
    })
}

/// `actlog-inspect verify DIR`
pub fn verify(dir: &Path) -> anyhow::Result<Outcome> {
    need_dir(dir)?;
    let total: u64 = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let pb = progress::bytes(total, "verify");
    let st = inspect::verify(dir, &mut |n| pb.set_position(n))?;
    pb.finish_and_clear();
    let records: u64 = st.segments.iter().map(|s| s.records).sum();
    print_findings(&st);
    let damage = st.findings.iter().filter(|f| f.damage).count();
    let warnings = st.findings.len() - damage;
    println!(
        "verified {} segments, {records} records, {} bytes: {damage} damaged, {warnings} warnings",
        st.segments.len(),
        st.bytes_checked
    );
    Ok(if damage > 0 {
        Outcome::Damage
    } else {
        Outcome::Ok
    })
}
