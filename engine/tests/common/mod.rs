//! Helpers the engine's test binaries share: listing a data directory's
//! files, copying it as a crash image, and a word query.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use actlog_engine::{Log, Order, Query, Selection};

/// The files in `dir` with extension `ext` (`log`, `idx`, `aidx`), sorted:
/// segments sort by base id.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the data directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Copies every file of `from` but the lock into `to`: what a crash at this
/// moment would leave on disk (the files as they are, no clean close).
pub fn copy_crash_image(from: &Path, to: &Path) {
    for e in fs::read_dir(from).expect("list the data directory") {
        let p = e.expect("directory entry").path();
        if let Some(name) = p.file_name().filter(|n| *n != "LOCK") {
            fs::copy(&p, to.join(name)).expect("copy a file of the image");
        }
    }
}

/// The ids of the newest (at most 5) records holding `word`.
pub fn word_ids(log: &Log, word: &str) -> Vec<u64> {
    log.query(&Query {
        selection: Selection::default().with_words(word),
        order: Order::Desc,
        limit: 5,
        cursor: None,
    })
    .expect("word query")
    .items
    .iter()
    .map(|r| r.id)
    .collect()
}
