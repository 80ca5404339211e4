//! `backup` and `restore`.
//!
//! A backup directory holds copies of the data files and `MANIFEST.json`
//! (file list, sizes, SHA-256 of each, id range), written last and
//! atomically. A second backup into the same directory copies only what is
//! new or changed: sealed segments and their indexes never change, so a copy
//! with the same name and size is kept. A file that retention deletes while
//! it is being backed up makes the backup list the files again (keeping what
//! it already copied), so the copy never holds a hole in its ids. Restore
//! checks the manifest and every checksum before writing anything.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use actlog_engine::backup::{open_item, plan, BackupItem, RESTORING_FILE};
use actlog_engine::export::format_ts;
use actlog_engine::ids;
use actlog_engine::segment::parse_segment_file_name;
use actlog_engine::{Config, Log, LOCK_FILE, QUARANTINE_DIR, WATERMARK_FILE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{need_dir, progress, Outcome, Usage};

/// The manifest file in a backup directory.
pub const MANIFEST: &str = "MANIFEST.json";
/// Server state files copied beside the log.
pub const STATE_FILES: &[&str] = &["settings.json", "keys.json"];

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name.
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format.
    pub format: u32,
    /// When the backup finished.
    pub created_at: String,
    /// What was backed up.
    pub source: String,
    /// The files.
    pub files: Vec<ManifestFile>,
    /// Smallest id in the backup.
    pub first_id: Option<u64>,
    /// Largest id in the backup.
    pub last_id: Option<u64>,
    /// Things worth knowing (files that vanished during the copy).
    pub notes: Vec<String>,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `reader` to `to` (temp, fsync, rename), hashing as it goes.
fn copy_hashed(
    mut reader: impl Read,
    to: &Path,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<(u64, String)> {
    let tmp = to.with_extension("part");
    let mut out = private_file(&tmp)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = reader.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        out.write_all(&buf[..k])?;
        n += k as u64;
        pb.inc(k as u64);
    }
    out.sync_all()?;
    fs::rename(&tmp, to)?;
    Ok((n, hex(&h.finalize())))
}

fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex(&h.finalize())))
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    serde_json::from_slice(&fs::read(dir.join(MANIFEST)).ok()?).ok()
}

fn write_manifest(dir: &Path, m: &Manifest) -> anyhow::Result<()> {
    actlog_engine::write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(m)?)?;
    Ok(())
}

/// A source of backup files: a local directory or a server.
trait Source {
    fn plan(&self) -> anyhow::Result<Vec<BackupItem>>;
    /// `Ok(None)` when the file vanished since the plan.
    fn open(&self, item: &BackupItem) -> anyhow::Result<Option<Box<dyn Read>>>;
    fn describe(&self) -> String;
}

struct DirSource(PathBuf);

impl Source for DirSource {
    fn plan(&self) -> anyhow::Result<Vec<BackupItem>> {
        Ok(plan(&self.0, STATE_FILES)?)
    }

    fn open(&self, item: &BackupItem) -> anyhow::Result<Option<Box<dyn Read>>> {
        match open_item(&self.0, item) {
            Ok(r) => Ok(Some(Box::new(r))),
            Err(actlog_engine::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

/// How often a backup lists the files again after one vanished.
const MAX_ATTEMPTS: usize = 10;

/// The files of a finished copy and the id range they hold.
type Copied = (Vec<ManifestFile>, Option<(u64, u64)>);

/// Lists the source's files and copies each into `to` (keeping what `known`
/// already holds). `Ok(Err(name))` when a planned file vanished meanwhile:
/// the copy is then incomplete and must start over with a new plan.
fn copy_plan(
    source: &dyn Source,
    to: &Path,
    known: &mut Vec<ManifestFile>,
    fresh: &mut Vec<String>,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Result<Copied, String>> {
    let items = source.plan()?;
    // The names come from the source (a server, for --url): only a file a
    // data directory holds may be written, and only inside `to`.
    for item in &items {
        anyhow::ensure!(
            is_plain_name(&item.name) && is_backup_file(&item.name),
            "{} listed a file that is not part of a data directory: {:?}; refusing to write it",
            source.describe(),
            item.name
        );
    }
    pb.set_length(items.iter().map(|i| i.len).sum());
    pb.set_position(0);
    let mut files = Vec::new();
    let mut ids: Option<(u64, u64)> = None;
    for item in &items {
        let dest = to.join(&item.name);
        let reuse = known
            .iter()
            .filter(|_| item.immutable)
            .find(|f| f.name == item.name)
            .filter(|f| {
                f.bytes == item.len && fs::metadata(&dest).map(|m| m.len()).ok() == Some(item.len)
            })
            .cloned();
        let entry = match reuse {
            Some(f) => {
                pb.inc(item.len);
                f
            }
            None => match source.open(item)? {
                None => return Ok(Err(item.name.clone())),
                Some(reader) => {
                    let (bytes, sha256) = copy_hashed(reader, &dest, pb)?;
                    anyhow::ensure!(
                        bytes == item.len,
                        "{} was {bytes} bytes, expected {}; the source changed unexpectedly",
                        item.name,
                        item.len
                    );
                    let f = ManifestFile {
                        name: item.name.clone(),
                        bytes,
                        sha256,
                    };
                    known.retain(|k| k.name != f.name);
                    if item.immutable {
                        known.push(f.clone());
                    }
                    if !fresh.contains(&f.name) {
                        fresh.push(f.name.clone());
                    }
                    f
                }
            },
        };
        if let Some((a, b)) = item.ids {
            ids = Some(ids.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        files.push(entry);
    }
    Ok(Ok((files, ids)))
}

/// `actlog-inspect backup --from DIR|--url URL --to OUT`
pub fn backup(
    from: Option<&Path>,
    url: Option<&str>,
    to: &Path,
    token: Option<String>,
    insecure_http: bool,
) -> anyhow::Result<Outcome> {
    let source: Box<dyn Source> = match (from, url) {
        (Some(dir), _) => {
            need_dir(dir)?;
            Box::new(DirSource(dir.to_path_buf()))
        }
        (None, Some(url)) => {
            let token = token.ok_or_else(|| {
                Usage("--url needs an admin token: --token or ACTLOG_TOKEN".into())
            })?;
            Box::new(crate::backup::http::HttpSource::new(
                url,
                &token,
                insecure_http,
            )?)
        }
        (None, None) => return Err(Usage("give --from DIR or --url URL".into()).into()),
    };
    private_dir(to)?;
    // Immutable files already in `to` (from the previous backup, or copied
    // earlier in this run): kept when an item of the same name and size
    // comes up again.
    let mut known: Vec<ManifestFile> = read_manifest(to).map(|m| m.files).unwrap_or_default();
    let mut fresh: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    let mut attempt = 0;
    let pb = progress::bytes(0, "backup");
    let (files, ids) = loop {
        attempt += 1;
        match copy_plan(source.as_ref(), to, &mut known, &mut fresh, &pb)? {
            Ok(done) => break done,
            // Retention deleted a planned file (it deletes the oldest
            // first). Going on would leave a hole, or nothing at all, where
            // it was; list the files again instead.
            Err(vanished) => {
                notes.push(format!(
                    "{vanished} vanished during the backup (retention deleted it); listed the files again"
                ));
                anyhow::ensure!(
                    attempt < MAX_ATTEMPTS,
                    "files kept vanishing during the backup ({attempt} attempts): retention deletes \
                     segments faster than they can be copied; try again"
                );
            }
        }
    };
    let copied = files.iter().filter(|f| fresh.contains(&f.name)).count();
    let kept = files.len() - copied;
    pb.finish_and_clear();
    sync_dir(to)?;
    let manifest = Manifest {
        format: 1,
        created_at: format_ts(actlog_engine::now_us()),
        source: source.describe(),
        files,
        first_id: ids.map(|i| i.0),
        last_id: ids.map(|i| i.1),
        notes,
    };
    write_manifest(to, &manifest)?;
    // Files of an earlier backup that are no longer part of this one.
    for entry in fs::read_dir(to)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && !manifest.files.iter().any(|f| f.name == name) {
            fs::remove_file(entry.path())?;
        }
    }
    sync_dir(to)?;
    for n in &manifest.notes {
        println!("note: {n}");
    }
    println!(
        "backup of {} into {}: {} files ({copied} copied, {kept} unchanged), ids {}",
        manifest.source,
        to.display(),
        manifest.files.len(),
        match (manifest.first_id, manifest.last_id) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            _ => "none".into(),
        }
    );
    Ok(Outcome::Ok)
}

/// `actlog-inspect restore --from BACKUP --to DIR [--force]`
///
/// Every file is checked against the manifest before anything is written.
/// Then, holding the target's lock the whole time (a server cannot start on
/// it meanwhile, and restore refuses while one runs):
///
/// 1. `RESTORING` is written into the target: from here on, until step 5,
///    the engine refuses to open the directory, so a restore killed halfway
///    can never be served as a log (it holds part of the old files and part
///    of the backup);
/// 2. the old data files go (with `--force`; an old `quarantine/` is renamed
///    aside, so its markers cannot excuse gaps in the restored log);
/// 3. each backup file is copied (temp, fsync, rename), its checksum checked
///    again as it is copied;
/// 4. the id reservation is marked restored, carrying over the old
///    directory's, so that the restored log hands out no id that the old one
///    (or the server the backup was taken from, up to its reservation) may
///    already have given a client;
/// 5. `RESTORING` is removed; the log is opened, which starts a new active
///    segment past those ids.
///
/// The old contents are never opened as a log (a damaged directory, the
/// usual reason to restore, can be replaced).
pub fn restore(from: &Path, to: &Path, force: bool) -> anyhow::Result<Outcome> {
    need_dir(from)?;
    let manifest = read_manifest(from).ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no readable {MANIFEST}; not a backup",
            from.display()
        )
    })?;
    anyhow::ensure!(
        manifest.format == 1,
        "unknown manifest format {}",
        manifest.format
    );
    // Check everything before writing anything.
    let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let pb = progress::bytes(total, "verify backup");
    for f in &manifest.files {
        anyhow::ensure!(
            is_plain_name(&f.name) && is_backup_file(&f.name),
            "manifest names a file that is not part of a data directory: `{}`",
            f.name
        );
        let (bytes, sha) =
            sha256_file(&from.join(&f.name)).map_err(|e| anyhow::anyhow!("{}: {e}", f.name))?;
        anyhow::ensure!(
            bytes == f.bytes && sha == f.sha256,
            "{} does not match the manifest ({} bytes, sha256 {sha}; expected {} bytes, {}); the backup is damaged, nothing was restored",
            f.name,
            bytes,
            f.bytes,
            f.sha256
        );
        pb.inc(bytes);
    }
    pb.finish_and_clear();
    let non_empty = to.exists()
        && fs::read_dir(to)?
            .flatten()
            .any(|e| e.file_name() != LOCK_FILE);
    if non_empty && !force {
        return Err(Usage(format!(
            "{} is not empty; restore into an empty directory, or pass --force to replace its contents",
            to.display()
        ))
        .into());
    }
    if !to.exists() {
        private_dir(to)?;
        if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let lock = crate::repair::take_lock(to)?;
    // Ids the old directory may have handed out (its reservation, or what its
    // segment files could hold when it has none); a restore killed earlier
    // recorded them in its marker before it removed the old files.
    let old_floor = old_id_floor(to).max(marker_floor(to).unwrap_or(0));
    write_marker(to, old_floor)?;
    if non_empty {
        remove_old_contents(to)?;
    }
    let pb = progress::bytes(total, "restore");
    for f in &manifest.files {
        let (bytes, sha) = copy_hashed(File::open(from.join(&f.name))?, &to.join(&f.name), &pb)?;
        anyhow::ensure!(
            bytes == f.bytes && sha == f.sha256,
            "{} changed while it was restored ({bytes} bytes, sha256 {sha}); the restore is \
             incomplete and {} stays marked as such: run it again",
            f.name,
            to.display()
        );
    }
    pb.finish_and_clear();
    sync_dir(to)?;
    ids::mark_restored(to, old_floor)?;
    fs::remove_file(to.join(RESTORING_FILE))?;
    sync_dir(to)?;
    drop(lock);
    let log = Log::open(to, Config::default())?;
    let stats = log.stats()?;
    let skipped = log.recovery_report().lost_ids;
    log.close()?;
    println!(
        "restored {} files into {}: {} records{}",
        manifest.files.len(),
        to.display(),
        stats.entries,
        match (stats.oldest, stats.newest) {
            (Some(a), Some(b)) => format!(", ids {}..={}", a.0, b.0),
            _ => String::new(),
        }
    );
    if let Some((a, b)) = skipped {
        println!(
            "new records get ids from {b} on: ids {a}..={} may have been handed out after the \
             backup was taken and are never handed out again",
            b - 1
        );
    }
    Ok(Outcome::Ok)
}

/// A file name with no directory part.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && name != ".."
        && name != "."
}

/// Whether `name` is a file a backup may hold: a segment or its index, the
/// watermark, the id reservation, or a server state file.
fn is_backup_file(name: &str) -> bool {
    let seg = name
        .strip_suffix(".idx")
        .map(|stem| format!("{stem}.log"))
        .unwrap_or_else(|| name.to_string());
    parse_segment_file_name(&seg).is_some()
        || name == WATERMARK_FILE
        || name == ids::IDS_FILE
        || STATE_FILES.contains(&name)
}

/// The first id that the data directory `dir` cannot have handed out, as far
/// as its files tell: its id reservation's limit, and past every id its
/// segment files could hold (a frame is at least a header long). 0 for an
/// empty or unreadable directory.
fn old_id_floor(dir: &Path) -> u64 {
    let reserved = ids::limit_of(dir).ok().flatten().unwrap_or(0);
    let from_files = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let base = parse_segment_file_name(&e.file_name().to_string_lossy())?;
            let len = e.metadata().ok()?.len();
            Some(base.saturating_add(len / actlog_engine::frame::HEADER_LEN as u64))
        })
        .max()
        .unwrap_or(0);
    reserved.max(from_files)
}

/// The line of the `RESTORING` marker that carries the old directory's id
/// floor, so that a restore run again after being killed still knows it.
const FLOOR_LINE: &str = "id floor: ";

/// Writes `RESTORING` into `dir`, durably, before anything there changes,
/// recording `floor`.
fn write_marker(dir: &Path, floor: u64) -> anyhow::Result<()> {
    let text = format!(
        "actlog-inspect restore is writing this directory; it is not a usable log until the \
         restore finishes (run the restore again with --force to finish it)\n{FLOOR_LINE}{floor}\n"
    );
    actlog_engine::write_atomic(&dir.join(RESTORING_FILE), text.as_bytes())?;
    Ok(())
}

/// The id floor a `RESTORING` marker left by an earlier run records.
fn marker_floor(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join(RESTORING_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(FLOOR_LINE))
        .and_then(|n| n.trim().parse().ok())
}

/// Removes the data files of the directory being replaced: segments and
/// their indexes, the watermark, the id reservation, the server's state
/// files and leftovers of earlier copies. An old `quarantine/` is renamed
/// to `quarantine.before-restore-<µs>/` (it may hold the only copy of
/// damaged segments).
fn remove_old_contents(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == QUARANTINE_DIR {
            let aside = dir.join(format!(
                "{QUARANTINE_DIR}.before-restore-{}",
                actlog_engine::now_us()
            ));
            fs::rename(entry.path(), &aside)?;
            println!("moved the old {QUARANTINE_DIR}/ to {}", aside.display());
            continue;
        }
        let ours = name.starts_with("seg-")
            || name == WATERMARK_FILE
            || name == ids::IDS_FILE
            || STATE_FILES.contains(&name.as_str())
            || name.ends_with(".part")
            || name.ends_with(".tmp");
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::remove_file(entry.path())?;
        }
    }
    sync_dir(dir)
}

mod http;

/// Creates `dir` (and its parents) readable by the owner only, as the
/// server's data directory is: a backup holds the whole audit log and the
/// key hashes.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(actlog_engine::env::DIR_MODE)
        .create(dir)
}

/// Creates (or truncates) `path` readable by the owner only.
fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(actlog_engine::env::FILE_MODE)
        .open(path)
}
