//! Read-only inspection of a data directory, for `actlog-inspect`: list the
//! segments, and verify every byte. Takes no lock and writes nothing, so it
//! works on a directory a server is using; it reads the active segment with
//! plain reads (never a map), since a restarting server may truncate it.
//!
//! `verify` reports *every* problem it finds, each with the file and byte
//! offset, and says which are damage (acknowledged data or a derived file is
//! wrong) and which are only warnings (a torn tail, which the next open cuts).

use std::fs;
use std::path::{Path, PathBuf};

use crate::backup::read_active;
use crate::error::{Error, Result};
use crate::index::file::{index_path, IndexProblem, SealedIndex};
use crate::log::QUARANTINE_DIR;
use crate::retention;
use crate::segment::sealed::SealedSegment;
use crate::segment::{parse_segment_file_name, segment_path, TEMP_SUFFIX};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub file: PathBuf,
    /// Byte offset in it (0 for a whole-file problem).
    pub offset: u64,
    /// What is wrong.
    pub what: String,
    /// Damage (verify fails) or a warning (a torn tail the next open cuts).
    pub damage: bool,
}

/// The state of a segment's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// Present and its checksum holds (and, after `verify` of a segment
    /// without damage, it matches that segment).
    Valid,
    /// No index file.
    Missing,
    /// Present but damaged or not matching its segment.
    Damaged(String),
    /// The active segment's index lives in memory.
    InMemory,
}

/// One segment as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentStatus {
    /// Segment file.
    pub path: PathBuf,
    /// First id (from the file name).
    pub base_id: u64,
    /// Records (committed frames, for the active segment).
    pub records: u64,
    /// File size.
    pub bytes: u64,
    /// Index file size, if present.
    pub index_bytes: Option<u64>,
    /// First and last ts.
    pub ts_range: Option<(i64, i64)>,
    /// Sealed or active.
    pub sealed: bool,
    /// Index state.
    pub index: IndexState,
}

impl SegmentStatus {
    /// One past the last id.
    pub fn end_id(&self) -> u64 {
        self.base_id + self.records
    }
}

/// A whole directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirStatus {
    /// Segments, oldest first.
    pub segments: Vec<SegmentStatus>,
    /// The low watermark (1 when none was ever written).
    pub watermark: u64,
    /// Leftover temporary files.
    pub temp_files: Vec<PathBuf>,
    /// Files in `quarantine/`.
    pub quarantined: Vec<PathBuf>,
    /// Problems found.
    pub findings: Vec<Finding>,
    /// Bytes read while verifying.
    pub bytes_checked: u64,
}

impl DirStatus {
    /// Whether any finding is damage.
    pub fn damaged(&self) -> bool {
        self.findings.iter().any(|f| f.damage)
    }
}

fn finding_from(e: Error, fallback: &Path) -> Finding {
    match e {
        Error::Corruption {
            file,
            offset,
            reason,
        } => Finding {
            file,
            offset,
            what: reason,
            damage: true,
        },
        other => Finding {
            file: fallback.to_path_buf(),
            offset: 0,
            what: other.to_string(),
            damage: true,
        },
    }
}

/// Lists the directory: headers, footers and index checksums only, unless
/// `full`, which reads every byte (see [`verify`]). `progress` is called with
/// bytes read so far.
fn examine(dir: &Path, full: bool, progress: &mut dyn FnMut(u64)) -> Result<DirStatus> {
    let mut st = DirStatus {
        watermark: 1,
        ..DirStatus::default()
    };
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = parse_segment_file_name(&name) {
            bases.push(base);
        } else if name.ends_with(TEMP_SUFFIX) {
            st.temp_files.push(entry.path());
        }
    }
    bases.sort_unstable();
    if let Ok(q) = fs::read_dir(dir.join(QUARANTINE_DIR)) {
        st.quarantined = q.filter_map(|e| e.ok().map(|e| e.path())).collect();
        st.quarantined.sort();
    }
    match retention::read_watermark(&crate::env::StdFs, dir) {
        Ok(w) => st.watermark = w,
        Err(e) => st
            .findings
            .push(finding_from(e, &dir.join(retention::WATERMARK_FILE))),
    }
    // Segments are independent: check them on every core, in id order of
    // results. Verifying an index means rebuilding it, which is CPU work.
    let workers = if full {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(bases.len().max(1))
    } else {
        1
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let n = bases.len();
    let mut results: Vec<Option<Result<Examined>>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, bases) = (&next, &bases);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let r = examine_segment(dir, bases[i], i + 1 == n, full);
                if tx.send((i, r)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            if let Ok((_, _, c)) = &r {
                st.bytes_checked += c;
                progress(st.bytes_checked);
            }
            results[i] = Some(r);
        }
    });
    for r in results.into_iter().flatten() {
        let (status, findings, _) = r?;
        st.findings.extend(findings);
        let Some(status) = status else { continue };
        if let Some(prev) = st.segments.last() {
            if prev.end_id() != status.base_id {
                let known = crate::log::gap_recorded(
                    &crate::env::StdFs,
                    dir,
                    prev.end_id(),
                    status.base_id,
                    false,
                );
                st.findings.push(Finding {
                    file: status.path.clone(),
                    offset: 0,
                    what: format!(
                        "id gap: the previous segment ends before id {}, this one starts at {}{}",
                        prev.end_id(),
                        status.base_id,
                        if known {
                            " (recorded in quarantine/ by repair)"
                        } else {
                            ""
                        }
                    ),
                    damage: !known,
                });
            }
        } else if status.base_id > st.watermark.max(1) {
            // The oldest segment must hold the oldest visible id.
            let from = st.watermark.max(1);
            let known =
                crate::log::gap_recorded(&crate::env::StdFs, dir, from, status.base_id, true);
            st.findings.push(Finding {
                file: status.path.clone(),
                offset: 0,
                what: format!(
                    "id gap: the oldest segment starts at id {}, but records from id {from} on \
                     should be here (an older segment is missing){}",
                    status.base_id,
                    if known {
                        " (recorded in quarantine/)"
                    } else {
                        ""
                    }
                ),
                damage: !known,
            });
        }
        st.segments.push(status);
    }
    Ok(st)
}

/// One segment examined: its status (none if unreadable), what is wrong, bytes read.
type Examined = (Option<SegmentStatus>, Vec<Finding>, u64);

/// Examines one segment.
fn examine_segment(dir: &Path, base: u64, is_last: bool, full: bool) -> Result<Examined> {
    let path = segment_path(dir, base);
    let mut findings = Vec::new();
    let mut checked = 0u64;
    let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let idx_path = index_path(&path);
    let index_bytes = fs::metadata(&idx_path).ok().map(|m| m.len());
    // Every segment but the newest is sealed; the newest is the active one,
    // whatever its last bytes are (see `log/open.rs`).
    let opened = if is_last {
        Ok(None)
    } else {
        SealedSegment::open(&path)
    };
    let status = match opened {
        Err(e) => {
            findings.push(finding_from(e, &path));
            return Ok((None, findings, checked));
        }
        Ok(Some(seg)) => {
            if seg.base_id() != base {
                findings.push(Finding {
                    file: path.clone(),
                    offset: 16,
                    what: format!(
                        "header says base id {}, the name says {base}",
                        seg.base_id()
                    ),
                    damage: true,
                });
            }
            let mut seg_ok = true;
            if full {
                if let Err(e) = seg.verify() {
                    findings.push(finding_from(e, &path));
                    seg_ok = false;
                }
                checked += bytes;
            }
            let index = match SealedIndex::load(&crate::env::StdFs, &seg) {
                Ok(idx) => {
                    // An index is checked against its segment by rebuilding
                    // it, which a damaged segment cannot answer.
                    let check = if full && seg_ok {
                        idx.verify_against(&seg)
                    } else {
                        Ok(())
                    };
                    if full {
                        checked += idx.len_bytes();
                    }
                    match check {
                        Ok(()) => IndexState::Valid,
                        Err(e) => {
                            let f = finding_from(e, &idx_path);
                            let why = f.what.clone();
                            findings.push(f);
                            IndexState::Damaged(why)
                        }
                    }
                }
                Err(IndexProblem::Missing) => {
                    findings.push(Finding {
                        file: idx_path.clone(),
                        offset: 0,
                        what: "index file missing (repair or the next open rebuilds it)".into(),
                        damage: true,
                    });
                    IndexState::Missing
                }
                Err(IndexProblem::Damaged(why)) => {
                    findings.push(Finding {
                        file: idx_path.clone(),
                        offset: 0,
                        what: format!(
                            "index file damaged: {why} (repair or the next open rebuilds it)"
                        ),
                        damage: true,
                    });
                    IndexState::Damaged(why)
                }
            };
            SegmentStatus {
                path: path.clone(),
                base_id: base,
                records: seg.count(),
                bytes,
                index_bytes,
                ts_range: (seg.count() > 0).then(|| (seg.footer().first_ts, seg.footer().last_ts)),
                sealed: true,
                index,
            }
        }
        Ok(None) => {
            if !is_last {
                findings.push(Finding {
                    file: path.clone(),
                    offset: bytes.saturating_sub(48),
                    what: "no valid seal footer, but newer segments exist".into(),
                    damage: true,
                });
            }
            let (records, ts_range) = match read_active(&path, base) {
                Ok((data, scan)) => {
                    checked += data.len() as u64;
                    if let Some(t) = &scan.torn {
                        findings.push(Finding {
                            file: path.clone(),
                            offset: t.offset,
                            what: format!(
                                "torn tail: {} bytes ({} uncommitted records) after the last complete batch ({}): an append in progress if a server is running, else a torn write that the next open cuts",
                                t.bytes_dropped, t.records_dropped, t.reason
                            ),
                            damage: false,
                        });
                    }
                    if full {
                        if let Some(e) = unreadable_record(&path, &data, &scan) {
                            findings.push(finding_from(e, &path));
                        }
                    }
                    let n = scan.table.ts.len();
                    (
                        n as u64,
                        (n > 0).then(|| (scan.table.ts[0], scan.table.ts[n - 1])),
                    )
                }
                Err(e) => {
                    findings.push(finding_from(e, &path));
                    (0, None)
                }
            };
            SegmentStatus {
                path: path.clone(),
                base_id: base,
                records,
                bytes,
                index_bytes,
                ts_range,
                sealed: false,
                index: IndexState::InMemory,
            }
        }
    };
    Ok((Some(status), findings, checked))
}

/// The first committed frame of an active segment (its bytes `data`,
/// scanned as `scan`) whose payload is no record, as corruption at its
/// offset. The scan checked CRCs; this checks what they protect.
fn unreadable_record(path: &Path, data: &[u8], scan: &crate::recovery::Scan) -> Option<Error> {
    scan.table.offsets.iter().find_map(|&off| {
        let at = off as usize;
        match crate::frame::decode(&data[at..]) {
            Ok(f) => crate::segment::check_payload(path, at, &f).err(),
            Err(e) => Some(Error::corruption(path, at as u64, e.to_string())),
        }
    })
}

/// Lists the segments cheaply (headers, footers, index checksums).
pub fn list(dir: &Path) -> Result<DirStatus> {
    examine(dir, false, &mut |_| {})
}

/// Reads every frame of every segment and checks CRCs, lengths, id
/// continuity, index checksums, and that each index matches its segment.
pub fn verify(dir: &Path, progress: &mut dyn FnMut(u64)) -> Result<DirStatus> {
    examine(dir, true, progress)
}
