//! `repair`: cut a torn tail, rebuild missing or damaged indexes, move
//! unreadable sealed segments (with their indexes) into `quarantine/`, and
//! cut an active segment at damage after keeping a copy of it there — never
//! deleting anything, never making an id reusable. Refuses while a server
//! holds the lock.
//!
//! The cutting and rebuilding are what `Log::open` does on its own; repair
//! first moves aside what would stop the open, then opens the log and prints
//! the recovery report, so the person reading it sees exactly what changed.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use actlog_engine::inspect::{self, Finding};
use actlog_engine::segment::parse_segment_file_name;
use actlog_engine::{index_path, missing_marker_path, Config, Log, LOCK_FILE, QUARANTINE_DIR};

use crate::{need_dir, Outcome};

/// Takes the data directory's lock (the one a running server holds), or
/// fails saying a server holds it.
pub(crate) fn take_lock(dir: &Path) -> anyhow::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "a running actlog server holds the lock on {}; stop it first",
            dir.display()
        ),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

fn is_segment(p: &Path) -> Option<u64> {
    parse_segment_file_name(&p.file_name()?.to_string_lossy())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// `actlog-inspect repair DIR [--dry-run]`
pub fn repair(dir: &Path, dry_run: bool) -> anyhow::Result<Outcome> {
    need_dir(dir)?;
    let lock = take_lock(dir)?;
    let st = inspect::verify(dir, &mut |_| {})?;
    let last_base = st.segments.last().map(|s| s.base_id);
    let sealed: BTreeSet<u64> = st
        .segments
        .iter()
        .filter(|s| s.sealed)
        .map(|s| s.base_id)
        .collect();

    let mut quarantine: BTreeSet<PathBuf> = BTreeSet::new();
    let mut cut_active: Option<&Finding> = None;
    let mut unfixable: Vec<&Finding> = Vec::new();
    let mut plan: Vec<String> = Vec::new();
    for f in &st.findings {
        if !f.damage {
            if f.what.starts_with("torn tail") {
                plan.push(format!(
                    "cut the torn tail of {} at offset {} ({})",
                    f.file.display(),
                    f.offset,
                    f.what
                ));
            }
            continue; // other warnings (a gap already in quarantine) need nothing
        }
        match is_segment(&f.file) {
            Some(_) if f.what.starts_with("id gap") => {} // planned below, from the segment list
            Some(base) if sealed.contains(&base) || Some(base) != last_base => {
                if quarantine.insert(f.file.clone()) {
                    plan.push(format!(
                        "move {} (and its index) to {QUARANTINE_DIR}/: {} at offset {}",
                        f.file.display(),
                        f.what,
                        f.offset
                    ));
                }
            }
            // Damage in the active segment: the records before it stay, the
            // file as it was goes to quarantine/, and the ids from the
            // damage on are never handed out again.
            Some(_) if cut_active.is_none() => {
                cut_active = Some(f);
                plan.push(format!(
                    "copy {} to {QUARANTINE_DIR}/ and cut it before the damage at offset {} \
                     ({}); the records from there on are no longer served, and their ids \
                     are never handed out again",
                    f.file.display(),
                    f.offset,
                    f.what
                ));
            }
            Some(_) => {}
            None if f.file.extension().is_some_and(|e| e == "idx") => {
                plan.push(format!(
                    "rebuild {} from its segment ({})",
                    f.file.display(),
                    f.what
                ));
            }
            None => unfixable.push(f),
        }
    }
    // A segment that is missing altogether: its records are gone. Record the
    // loss so the rest of the log can be served again (the server refuses an
    // unexplained gap), and say so plainly.
    let mut lost: Vec<(u64, u64)> = Vec::new();
    // Before the oldest segment: ids from the watermark on must be there.
    if let Some(first) = st.segments.first() {
        let from = st.watermark.max(1);
        let recorded = st.quarantined.iter().any(|q| {
            let name = q.file_name().unwrap_or_default().to_string_lossy();
            let seg = name
                .strip_suffix(actlog_engine::MISSING_MARKER_SUFFIX)
                .map(|stem| format!("{stem}.log"))
                .unwrap_or_else(|| name.to_string());
            parse_segment_file_name(&seg).is_some_and(|b| b <= from)
        });
        if first.base_id > from && !recorded {
            lost.push((from, first.base_id));
            plan.push(format!(
                "record ids {from}..{} as lost: the segment that held them is missing ({})",
                first.base_id - 1,
                missing_marker_path(dir, from).display()
            ));
        }
    }
    for w in st.segments.windows(2) {
        let (end, next) = (w[0].end_id(), w[1].base_id);
        let moving = quarantine.iter().any(|q| is_segment(q) == Some(end));
        if end != next && !moving && !missing_marker_path(dir, end).exists() {
            let qfile = dir
                .join(QUARANTINE_DIR)
                .join(actlog_engine::segment::segment_file_name(end));
            if !qfile.exists() {
                lost.push((end, next));
                plan.push(format!(
                    "record ids {end}..{} as lost: their segment file is missing ({})",
                    next - 1,
                    missing_marker_path(dir, end).display()
                ));
            }
        }
    }
    for t in &st.temp_files {
        plan.push(format!("remove leftover temporary file {}", t.display()));
    }
    if plan.is_empty() && unfixable.is_empty() {
        println!("nothing to repair: {} verifies clean", dir.display());
        return Ok(Outcome::Ok);
    }
    for p in &plan {
        println!("{}{p}", if dry_run { "would " } else { "" });
    }
    for f in &unfixable {
        println!(
            "cannot repair automatically: {} @ {}: {}",
            f.file.display(),
            f.offset,
            f.what
        );
    }
    if !unfixable.is_empty() {
        println!(
            "nothing was changed. Keep a copy of the files; `actlog-inspect dump` shows the \
             records that can still be read"
        );
        return Ok(Outcome::Damage);
    }
    if dry_run {
        return Ok(Outcome::Ok);
    }

    if !lost.is_empty() {
        let qdir = dir.join(QUARANTINE_DIR);
        crate::backup::private_dir(&qdir)?;
        sync_dir(dir)?;
        for (from, to) in &lost {
            let marker = missing_marker_path(dir, *from);
            let text = format!(
                "Records {from}..{} were lost: their segment file was missing when \
                 actlog-inspect repair ran. Delete this file only if you put the segment back.\n\
                 {}{to}\n",
                to - 1,
                actlog_engine::MISSING_UNTIL
            );
            actlog_engine::write_atomic(&marker, text.as_bytes())?;
            println!(
                "recorded ids {from}..{} as lost in {}",
                to - 1,
                marker.display()
            );
        }
        sync_dir(&qdir)?;
    }
    if !quarantine.is_empty() {
        let qdir = dir.join(QUARANTINE_DIR);
        crate::backup::private_dir(&qdir)?;
        sync_dir(dir)?;
        for seg in &quarantine {
            for file in [seg.clone(), index_path(seg)] {
                if file.exists() {
                    let to = qdir.join(file.file_name().unwrap_or_default());
                    fs::rename(&file, &to)?;
                    println!("moved {} to {}", file.display(), to.display());
                }
            }
        }
        sync_dir(&qdir)?;
        sync_dir(dir)?;
    }
    if let Some(f) = cut_active {
        cut_active_segment(dir, &f.file, f.offset)?;
    }
    drop(lock);
    let log = Log::open(dir, Config::default())?;
    let r = log.recovery_report();
    if let Some(t) = &r.torn_tail {
        println!(
            "cut {} bytes ({} uncommitted records) from {} at offset {}",
            t.bytes_dropped,
            t.records_dropped,
            t.file.display(),
            t.offset
        );
    }
    for (f, why) in &r.rebuilt_indexes {
        println!("rebuilt {} ({why})", f.display());
    }
    for f in &r.removed_temp_files {
        println!("removed {}", f.display());
    }
    if let Some((from, to)) = r.lost_ids {
        println!(
            "ids {from}..{} are recorded as lost; new records get ids from {to} on",
            to - 1
        );
    }
    for (from, to) in &r.quarantined_gaps {
        println!("ids {from}..{to} are in {QUARANTINE_DIR}/ and no longer served");
    }
    log.close()?;
    let after = inspect::verify(dir, &mut |_| {})?;
    if after.damaged() {
        println!("repair finished, but verify still finds damage:");
        for f in after.findings.iter().filter(|f| f.damage) {
            println!("DAMAGE: {} @ {}: {}", f.file.display(), f.offset, f.what);
        }
        return Ok(Outcome::Damage);
    }
    println!("repair finished; {} verifies clean", dir.display());
    Ok(Outcome::Ok)
}

/// Keeps a copy of the damaged active segment at `path` in `quarantine/`,
/// cuts the file after its last committed frame before the damage (found
/// at offset `damage`), and marks the directory so that its next open
/// continues past every id the segment may have held (see
/// `actlog_engine::ids`).
fn cut_active_segment(dir: &Path, path: &Path, damage: u64) -> anyhow::Result<()> {
    let base =
        is_segment(path).ok_or_else(|| anyhow::anyhow!("{} is no segment", path.display()))?;
    let bytes = fs::read(path)?;
    let (end, records) = actlog_engine::recovery::committed_prefix(&bytes, path, base, damage)?;
    let qdir = dir.join(QUARANTINE_DIR);
    crate::backup::private_dir(&qdir)?;
    sync_dir(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let copy = qdir.join(format!("{name}.before-repair-{}", actlog_engine::now_us()));
    actlog_engine::write_atomic(&copy, &bytes)?;
    println!("copied {} to {}", path.display(), copy.display());
    // Past every id the file could hold (a frame is at least a header long).
    let floor = base.saturating_add(bytes.len() as u64 / actlog_engine::frame::HEADER_LEN as u64);
    actlog_engine::ids::mark_restored(dir, floor)?;
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(end)?;
    f.sync_all()?;
    println!(
        "cut {} at offset {end}: it keeps its first {records} records",
        path.display()
    );
    Ok(())
}
