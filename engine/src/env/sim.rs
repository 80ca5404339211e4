//! An in-memory filesystem that simulates crashes and I/O faults, for tests
//! and fuzzing (the technique of LevelDB's `fault_injection_test` and redb's
//! crash-consistency tests).
//!
//! It keeps two states apart:
//!
//! * **live** — what the running process sees: every write, truncation,
//!   create, rename and unlink (the page cache);
//! * **durable** — what survives a power cut: a file's bytes as of its last
//!   `sync_data`/`sync_all`, and a directory's entries as of its last
//!   `sync_dir`.
//!
//! Each file also keeps its *pending* mutations: the writes and truncations
//! made since its last sync, in order. A successful sync applies them to the
//! durable bytes (`durable = durable + pending`), which is the live bytes
//! unless a failed sync dropped dirty data (see [`Fault::EioDropsDirty`]).
//!
//! [`SimFs::power_off`] stops the machine (every later call fails, so
//! nothing the dying process does afterwards counts) and
//! [`SimFs::restart`] replaces the live state with a crash image:
//!
//! * [`Image::DurableOnly`]: everything not synced is gone;
//! * [`Image::All`]: a process crash, the page cache survived;
//! * [`Image::Partial`]: a *prefix* of each file's pending mutations (the
//!   last kept write possibly torn at any byte) and a prefix of the unsynced
//!   directory operations: a temp file left behind, the last rename dropped,
//!   the last file cut short;
//! * [`Image::Subset`]: *non-prefix* images torn at page granularity (the
//!   model of ALICE and CrashMonkey): each pending mutation of each file is
//!   kept or dropped on its own, and a kept write is kept page by page, each
//!   [`PAGE_SIZE`]-byte page of the file it touches on its own. A later
//!   write can land while an earlier one is lost; a write can land with its
//!   first page missing and a later one present; a truncation can be lost
//!   while the writes after it land. Directory operations: a prefix, as in
//!   `Partial`;
//! * [`Image::Mask`]: one exact non-prefix image, for exhaustive sweeps.
//!
//! # Enumerating crash images
//!
//! The independent keep/drop choices of a crash image are its *units*:
//! every page of every pending write (the [`PAGE_SIZE`]-aligned slices of the
//! file the write touches, by file offset) and every pending truncation.
//! They are numbered from 0 across the files of the image in path order,
//! and within a file in the order of its pending mutations, a write's pages
//! in offset order. [`SimFs::pending_units`] counts them;
//! [`Image::Mask`]`(m)` keeps every unsynced directory operation and exactly
//! the units whose bit is set in `m` (bit `i`, i.e. `m >> i & 1`, keeps unit
//! `i`; units from the 128th on are dropped). So when `n =
//! pending_units()` is small, the `2^n` masks `0..1 << n` give every
//! distinct page-granular crash image of the file contents, and
//! [`Image::Subset`] seeds sample them (and the directory prefixes) when `n`
//! is large. [`SimFs::fork`] copies the whole machine, so one crashed state
//! can be restarted with every mask in turn.
//!
//! Faults: [`SimFs::fail_nth`] fails the N-th operation (of one kind, or of
//! any) with EIO, ENOSPC, a short write, a power cut at that moment, or — on
//! a sync — an EIO that throws the file's dirty data away
//! ([`Fault::EioDropsDirty`], Linux's behaviour, "fsyncgate");
//! [`SimFs::crash_at`] powers off at a named crash point
//! ([`super::CRASH_POINTS`]); [`SimFs::set_disk_full`] makes every write and
//! create fail with ENOSPC until cleared.
//!
//! Simplifications: directories themselves are always durable; reads are
//! never faulted; a lock is a set of held paths; a file's size is not a
//! unit of its own (a torn write grows the file as far as its kept pages
//! reach, with zeros in any gap).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::{FxHashMap, FxHashSet};

use super::{FileBytes, FileHandle, FileSystem, LockGuard, OpenMode};

/// The kinds of write-path operation the simulator counts and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Opening with [`OpenMode::CreateTruncate`].
    Create,
    /// A positioned write.
    Write,
    /// A truncation.
    SetLen,
    /// `sync_data` or `sync_all` of a file.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// A rename.
    Rename,
    /// An unlink.
    Remove,
}

/// All operation kinds.
pub const OPS: [Op; 7] = [
    Op::Create,
    Op::Write,
    Op::SetLen,
    Op::Sync,
    Op::SyncDir,
    Op::Rename,
    Op::Remove,
];

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with EIO and does nothing (a failed sync leaves
    /// the file's pending mutations pending: the next sync persists them).
    Eio,
    /// On a sync (`fail_nth(Some(Op::Sync), n, Fault::EioDropsDirty)`):
    /// Linux's behaviour on a failed fsync ("fsyncgate"). The sync fails
    /// with EIO and the file's pending mutations are thrown away as far as
    /// durability goes: they never reach the durable bytes, while the live
    /// bytes (what reads through the page cache see, and [`Image::All`]
    /// keeps) still hold them. A later successful sync persists only the
    /// mutations made after the failed one. Any other operation: like `Eio`.
    EioDropsDirty,
    /// The operation fails with ENOSPC and does nothing.
    Enospc,
    /// A write puts the first half of its bytes in place, then fails with
    /// ENOSPC (other operations: like `Enospc`).
    ShortWrite,
    /// The power goes at this operation: it does not happen, and every later
    /// call fails until [`SimFs::restart`].
    PowerCut,
}

/// The page size of [`Image::Subset`] and [`Image::Mask`] images: a write
/// is torn along the file offsets `k * PAGE_SIZE`.
pub const PAGE_SIZE: u64 = 4096;

/// Which crash image [`SimFs::restart`] builds. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// Only what was synced (file data) and dir-synced (entries) survives.
    DurableOnly,
    /// Everything the process did survives (a process crash, not a power
    /// cut): the live state, dirty data a failed sync dropped included.
    All,
    /// Durable state plus, chosen from `seed`, a prefix of each file's
    /// pending mutations (the last kept write possibly torn at any byte) and
    /// a prefix of the unsynced directory operations.
    Partial(u64),
    /// Durable state plus, chosen from `seed`, a subset of each file's
    /// pending mutations, torn at page granularity: starting from the
    /// file's durable bytes, each pending mutation in order is kept or
    /// dropped (even odds); a kept truncation is applied, a kept write is
    /// applied page by page, each [`PAGE_SIZE`]-byte page of the file that
    /// it touches (by file offset) kept or dropped (even odds). Directory
    /// operations: a prefix of the unsynced ones, drawn first, as in
    /// `Partial`. Files draw in path order.
    Subset(u64),
    /// Every unsynced directory operation, and of the files' pending
    /// mutations exactly the units whose bit is set (bit `i` keeps unit
    /// `i`, numbered as [`SimFs::pending_units`] counts them; units from the
    /// 128th on are dropped). A kept unit is a truncation applied or one
    /// page of a write applied, as in `Subset`; mask `0` gives the durable
    /// bytes under the live names.
    Mask(u128),
}

#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Mutations since the last sync, in order: a sync applies them to
    /// `durable`.
    pending: Vec<Pending>,
    /// A failed sync dropped dirty data ([`Fault::EioDropsDirty`]), so
    /// `durable + pending` may differ from `live`.
    dropped_dirty: bool,
}

/// A keep/drop choice when a crash image replays a file's pending
/// mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// Whether a write is kept at all (then each of its pages is a `Page`).
    Write,
    /// One page of a kept write.
    Page,
    /// A truncation.
    SetLen,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

#[derive(Debug, Clone, Copy)]
struct Trigger {
    kind: Option<Op>,
    nth: u64,
    seen: u64,
    fault: Fault,
}

#[derive(Debug, Default, Clone)]
struct State {
    /// Bumped by every restart: handles from before are stale.
    generation: u64,
    inodes: Vec<Inode>,
    // Hash maps: ordered maps of `PathBuf` compare component by component,
    // which was an eighth of the `append_crash` fuzz target's time. Where
    // order matters (listings, crash images), paths are sorted.
    live: FxHashMap<PathBuf, usize>,
    durable: FxHashMap<PathBuf, usize>,
    /// Directory operations not yet covered by a `sync_dir`: (parent, op).
    dir_log: Vec<(PathBuf, DirOp)>,
    dirs: FxHashSet<PathBuf>,
    counts: BTreeMap<Op, u64>,
    /// Armed faults; each counts on its own and fires once.
    triggers: Vec<Trigger>,
    crash_point: Option<&'static str>,
    points_seen: BTreeSet<&'static str>,
    disk_full: bool,
    /// See [`SimFs::set_capacity`].
    capacity: Option<u64>,
    dead: bool,
    injected: u64,
    locks: FxHashSet<PathBuf>,
}

/// The simulated filesystem; clones share one state. See the module docs.
#[derive(Clone, Default)]
pub struct SimFs {
    st: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SimFs")
            .field("files", &st.live.len())
            .field("dead", &st.dead)
            .finish()
    }
}

fn dead() -> io::Error {
    io::Error::other("simulated machine is powered off")
}

fn stale() -> io::Error {
    io::Error::other("stale file handle from before a simulated restart")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn fault_error(f: Fault) -> io::Error {
    match f {
        Fault::Eio => io::Error::other("simulated EIO"),
        Fault::EioDropsDirty => io::Error::other("simulated EIO (dirty data dropped)"),
        Fault::Enospc | Fault::ShortWrite => {
            io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC")
        }
        Fault::PowerCut => dead(),
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn apply(data: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Write(at, bytes) => write_into(data, *at, bytes),
        Pending::SetLen(n) => data.resize(usize::try_from(*n).unwrap_or(usize::MAX), 0),
    }
}

fn write_into(data: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let at = usize::try_from(at).unwrap_or(usize::MAX);
    let end = at.saturating_add(bytes.len());
    if data.len() < end {
        data.resize(end, 0);
    }
    data[at..end].copy_from_slice(bytes);
}

/// The pieces of a write of `bytes` at `at`, one per [`PAGE_SIZE`]-aligned
/// page of the file it touches, in offset order: (file offset, bytes).
fn pages(at: u64, bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let rest = bytes.len() - off;
        if rest == 0 {
            return None;
        }
        let pos = at.saturating_add(off as u64);
        let room = PAGE_SIZE - pos % PAGE_SIZE;
        let n = usize::try_from(room).map_or(rest, |room| room.min(rest));
        let piece = (pos, &bytes[off..off + n]);
        off += n;
        Some(piece)
    })
}

/// How many units (see the module docs) a file's pending mutations have.
fn units(node: &Inode) -> u64 {
    node.pending
        .iter()
        .map(|p| match p {
            Pending::Write(at, bytes) => pages(*at, bytes).count() as u64,
            Pending::SetLen(_) => 1,
        })
        .sum()
}

/// A file's durable bytes plus the pending mutations `keep` chooses, in
/// order: for a write, first whether it is kept at all, then each of its
/// pages. (An empty write has no pages: kept, it is applied whole.)
fn replay(node: &Inode, mut keep: impl FnMut(Choice) -> bool) -> Vec<u8> {
    let mut data = node.durable.clone();
    for p in &node.pending {
        match p {
            Pending::SetLen(_) => {
                if keep(Choice::SetLen) {
                    apply(&mut data, p);
                }
            }
            Pending::Write(at, bytes) => {
                if !keep(Choice::Write) {
                    continue;
                }
                if bytes.is_empty() {
                    apply(&mut data, p);
                }
                for (pos, piece) in pages(*at, bytes) {
                    if keep(Choice::Page) {
                        write_into(&mut data, pos, piece);
                    }
                }
            }
        }
    }
    data
}

/// splitmix64: a small deterministic stream for [`Image::Partial`] and
/// [`Image::Subset`].
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn apply_dir(map: &mut FxHashMap<PathBuf, usize>, op: &DirOp) {
    match op {
        DirOp::Link(p, ino) => {
            map.insert(p.clone(), *ino);
        }
        DirOp::Unlink(p) => {
            map.remove(p);
        }
        DirOp::Rename(from, to) => {
            if let Some(ino) = map.remove(from) {
                map.insert(to.clone(), ino);
            }
        }
    }
}

impl State {
    /// Counts a write-path operation and decides whether it is faulted.
    fn tick(&mut self, op: Op) -> io::Result<Option<Fault>> {
        if self.dead {
            return Err(dead());
        }
        *self.counts.entry(op).or_default() += 1;
        let mut fired = None;
        for t in &mut self.triggers {
            if t.kind.is_none_or(|k| k == op) {
                t.seen += 1;
                if t.seen >= t.nth && fired.is_none() {
                    fired = Some(t.fault);
                }
            }
        }
        self.triggers.retain(|t| t.seen < t.nth);
        if let Some(fault) = fired {
            self.injected += 1;
            if fault == Fault::PowerCut {
                self.dead = true;
                return Err(dead());
            }
            return Ok(Some(fault));
        }
        if self.disk_full && matches!(op, Op::Write | Op::Create) {
            return Err(fault_error(Fault::Enospc));
        }
        Ok(None)
    }

    fn check(&self, generation: u64) -> io::Result<()> {
        if self.dead {
            Err(dead())
        } else if generation != self.generation {
            Err(stale())
        } else {
            Ok(())
        }
    }

    /// How many of `len` bytes written at `at` into `ino` fit under the
    /// capacity (all of them when there is none).
    fn room(&self, ino: usize, at: u64, len: usize) -> usize {
        let Some(capacity) = self.capacity else {
            return len;
        };
        let cur = self.inodes[ino].live.len() as u64;
        let growth = (at + len as u64).saturating_sub(cur);
        let free = capacity.saturating_sub(self.used());
        if growth <= free {
            return len;
        }
        usize::try_from((cur + free).saturating_sub(at)).map_or(len, |fit| fit.min(len))
    }

    /// Bytes the live files hold (their current lengths).
    fn used(&self) -> u64 {
        self.live
            .values()
            .map(|&i| self.inodes[i].live.len() as u64)
            .sum()
    }

    fn inode(&self, path: &Path) -> io::Result<usize> {
        self.live.get(path).copied().ok_or_else(|| not_found(path))
    }

    /// The durable entries plus the first `dir_ops` unsynced directory
    /// operations: the files of a crash image, in path order.
    fn image_entries(&self, dir_ops: usize) -> Vec<(PathBuf, usize)> {
        let mut entries = self.durable.clone();
        for (_, op) in &self.dir_log[..dir_ops] {
            apply_dir(&mut entries, op);
        }
        // In path order: images draw from their seed (or mask) file by file.
        let mut entries: Vec<(PathBuf, usize)> = entries.into_iter().collect();
        entries.sort_unstable();
        entries
    }

    fn mutate(&mut self, ino: usize, p: Pending) {
        let node = &mut self.inodes[ino];
        apply(&mut node.live, &p);
        node.pending.push(p);
    }
}

impl SimFs {
    /// An empty filesystem.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the `nth` (1-based, counted from now) operation of kind `kind`
    /// (any kind when `None`) with `fault`. One shot; several may be armed
    /// (when two fall on one operation, the first armed wins and the other
    /// is spent).
    pub fn fail_nth(&self, kind: Option<Op>, nth: u64, fault: Fault) {
        self.lock().triggers.push(Trigger {
            kind,
            nth: nth.max(1),
            seen: 0,
            fault,
        });
    }

    /// Powers off when the engine reaches the named crash point.
    pub fn crash_at(&self, point: &'static str) {
        self.lock().crash_point = Some(point);
    }

    /// While set, every write and create fails with ENOSPC.
    pub fn set_disk_full(&self, full: bool) {
        self.lock().disk_full = full;
    }

    /// Lets the files hold at most `bytes` in all (their current lengths;
    /// `None`: no limit). A write that would grow them past it writes what
    /// fits and fails with ENOSPC, as on a nearly full disk; overwrites
    /// inside a file always fit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Bytes the files hold now (their current lengths).
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    /// Stops the machine: every later call fails until [`SimFs::restart`].
    pub fn power_off(&self) {
        self.lock().dead = true;
    }

    /// Whether the machine is powered off.
    pub fn is_off(&self) -> bool {
        self.lock().dead
    }

    /// Replaces the state with the crash `image` and powers on again.
    /// Pending faults are cleared; handles from before fail from now on.
    pub fn restart(&self, image: Image) {
        let mut st = self.lock();
        let mut seed = match image {
            Image::Partial(s) | Image::Subset(s) => s,
            _ => 0,
        };
        let dir_ops = match image {
            Image::DurableOnly => 0,
            Image::All | Image::Mask(_) => st.dir_log.len(),
            Image::Partial(_) | Image::Subset(_) => {
                (next(&mut seed) % (st.dir_log.len() as u64 + 1)) as usize
            }
        };
        let entries = st.image_entries(dir_ops);
        // The next unit's number, for `Image::Mask`.
        let mut unit = 0u64;
        let mut inodes = Vec::with_capacity(entries.len());
        let mut live = FxHashMap::default();
        for (path, ino) in entries {
            let node = &st.inodes[ino];
            let data = match image {
                Image::DurableOnly => node.durable.clone(),
                Image::All => node.live.clone(),
                Image::Partial(_) => {
                    let mut data = node.durable.clone();
                    let keep = (next(&mut seed) % (node.pending.len() as u64 + 1)) as usize;
                    for (i, p) in node.pending[..keep].iter().enumerate() {
                        match p {
                            // The last kept write may be torn.
                            Pending::Write(at, bytes) if i + 1 == keep => {
                                let n = (next(&mut seed) % (bytes.len() as u64 + 1)) as usize;
                                write_into(&mut data, *at, &bytes[..n]);
                            }
                            other => apply(&mut data, other),
                        }
                    }
                    data
                }
                Image::Subset(_) => replay(node, |_| next(&mut seed) >> 63 == 1),
                Image::Mask(mask) => replay(node, |choice| {
                    if choice == Choice::Write {
                        // Not a unit: a write is kept or dropped page by page.
                        return true;
                    }
                    let keep = unit < 128 && (mask >> unit) & 1 == 1;
                    unit += 1;
                    keep
                }),
            };
            live.insert(path, inodes.len());
            inodes.push(Inode {
                live: data.clone(),
                durable: data,
                pending: Vec::new(),
                dropped_dirty: false,
            });
        }
        st.generation += 1;
        st.inodes = inodes;
        st.durable = live.clone();
        st.live = live;
        st.dir_log.clear();
        st.triggers.clear();
        st.crash_point = None;
        st.dead = false;
        st.locks.clear();
    }

    /// How many independent keep/drop choices (units) a crash image of the
    /// current state has: every page of every pending write and every
    /// pending truncation, over the files an [`Image::Mask`] image holds
    /// (the live names: every unsynced directory operation applied). The
    /// `1 << n` masks `0..1 << n` give every distinct `Mask` image when
    /// `n` is at most 128. See the module docs for the numbering.
    pub fn pending_units(&self) -> u64 {
        let st = self.lock();
        st.image_entries(st.dir_log.len())
            .into_iter()
            .map(|(_, ino)| units(&st.inodes[ino]))
            .sum()
    }

    /// An independent copy of the whole machine: files, live and durable
    /// state, pending mutations and directory operations, armed faults,
    /// counters, powered on or off. Locks held on `self` are not held in the
    /// copy, and handles opened on `self` do not reach it. For sweeps that
    /// restart one crashed state with many images.
    pub fn fork(&self) -> SimFs {
        let mut st = self.lock().clone();
        st.locks.clear();
        SimFs {
            st: Arc::new(Mutex::new(st)),
        }
    }

    /// Write-path operations performed so far, by kind.
    pub fn op_counts(&self) -> BTreeMap<Op, u64> {
        self.lock().counts.clone()
    }

    /// Write-path operations performed so far, all kinds.
    pub fn total_ops(&self) -> u64 {
        self.lock().counts.values().sum()
    }

    /// Faults injected so far (power cuts at crash points included).
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// The named crash points the engine has passed.
    pub fn points_seen(&self) -> BTreeSet<&'static str> {
        self.lock().points_seen.clone()
    }

    /// Whether a power cut now would change nothing: every directory entry
    /// and every file's bytes are durable as they are live.
    pub fn is_durable(&self) -> bool {
        let st = self.lock();
        st.dir_log.is_empty()
            && st.live.len() == st.durable.len()
            && st.live.iter().all(|(path, &ino)| {
                st.durable.get(path) == Some(&ino) && {
                    let node = &st.inodes[ino];
                    node.live == node.durable
                }
            })
    }

    /// Writes a file directly (durably), e.g. to seed a directory.
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        let mut st = self.lock();
        let dir = parent(path);
        add_dirs(&mut st.dirs, &dir);
        let ino = st.inodes.len();
        st.inodes.push(Inode {
            live: bytes.to_vec(),
            durable: bytes.to_vec(),
            pending: Vec::new(),
            dropped_dirty: false,
        });
        st.live.insert(path.to_path_buf(), ino);
        st.durable.insert(path.to_path_buf(), ino);
    }

    /// A file's live bytes.
    pub fn file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        st.live.get(path).map(|&i| st.inodes[i].live.clone())
    }

    /// Live file paths, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.lock().live.keys().cloned().collect();
        files.sort_unstable();
        files
    }
}

fn add_dirs(dirs: &mut FxHashSet<PathBuf>, dir: &Path) {
    for a in dir.ancestors() {
        if !a.as_os_str().is_empty() {
            dirs.insert(a.to_path_buf());
        }
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: usize,
    generation: u64,
    writable: bool,
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = self.fs.lock();
        st.check(self.generation)?;
        Ok(st)
    }

    fn writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ))
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.state()?;
        let fault = st.tick(Op::Sync)?;
        let node = &mut st.inodes[self.ino];
        match fault {
            None => {}
            Some(Fault::EioDropsDirty) => {
                // The kernel marks the pages clean: their contents stay in
                // the page cache (live) but are never written back.
                node.pending.clear();
                node.dropped_dirty = true;
                return Err(fault_error(Fault::EioDropsDirty));
            }
            Some(f) => return Err(fault_error(f)),
        }
        for p in std::mem::take(&mut node.pending) {
            apply(&mut node.durable, &p);
        }
        if node.dropped_dirty {
            // Until the dropped bytes are overwritten (or cut off), the
            // durable bytes differ from the live ones.
            node.dropped_dirty = node.durable != node.live;
        } else {
            debug_assert!(
                node.durable == node.live,
                "sync: durable + pending ({} bytes) differs from live ({} bytes)",
                node.durable.len(),
                node.live.len()
            );
        }
        Ok(())
    }
}

impl FileHandle for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let st = self.state()?;
        let data = &st.inodes[self.ino].live;
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        match data.get(at..at.saturating_add(buf.len())) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            )),
        }
    }

    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.writable()?;
        let mut st = self.state()?;
        match st.tick(Op::Write)? {
            None => {
                let fit = st.room(self.ino, at, buf.len());
                if fit > 0 {
                    st.mutate(self.ino, Pending::Write(at, buf[..fit].to_vec()));
                }
                if fit < buf.len() {
                    return Err(fault_error(Fault::Enospc));
                }
                Ok(())
            }
            Some(Fault::ShortWrite) => {
                let half = buf.len() / 2;
                st.mutate(self.ino, Pending::Write(at, buf[..half].to_vec()));
                Err(fault_error(Fault::ShortWrite))
            }
            Some(f) => Err(fault_error(f)),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        let mut st = self.state()?;
        if let Some(f) = st.tick(Op::SetLen)? {
            return Err(fault_error(f));
        }
        st.mutate(self.ino, Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state()?.inodes[self.ino].live.len() as u64)
    }

    fn map(&self) -> io::Result<FileBytes> {
        Ok(FileBytes::Owned(
            self.state()?.inodes[self.ino].live.clone(),
        ))
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.fs.lock();
        if st.generation == self.generation {
            st.locks.remove(&self.path);
        }
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut st = self.lock();
        if st.dead {
            return Err(dead());
        }
        let ino = match (mode, st.live.get(path).copied()) {
            (OpenMode::CreateTruncate, existing) => {
                if !st.dirs.contains(&parent(path)) {
                    return Err(not_found(&parent(path)));
                }
                if let Some(f) = st.tick(Op::Create)? {
                    return Err(fault_error(f));
                }
                match existing {
                    Some(ino) => {
                        st.mutate(ino, Pending::SetLen(0));
                        ino
                    }
                    None => {
                        let ino = st.inodes.len();
                        st.inodes.push(Inode::default());
                        st.live.insert(path.to_path_buf(), ino);
                        st.dir_log
                            .push((parent(path), DirOp::Link(path.to_path_buf(), ino)));
                        ino
                    }
                }
            }
            (_, Some(ino)) => ino,
            (_, None) => return Err(not_found(path)),
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation: st.generation,
            writable: mode != OpenMode::Read,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        if st.dead {
            return Err(dead());
        }
        let ino = st.inode(path)?;
        Ok(st.inodes[ino].live.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = st.tick(Op::Rename)? {
            return Err(fault_error(f));
        }
        let ino = st.inode(from)?;
        st.live.remove(from);
        st.live.insert(to.to_path_buf(), ino);
        st.dir_log.push((
            parent(to),
            DirOp::Rename(from.to_path_buf(), to.to_path_buf()),
        ));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = st.tick(Op::Remove)? {
            return Err(fault_error(f));
        }
        st.inode(path)?;
        st.live.remove(path);
        st.dir_log
            .push((parent(path), DirOp::Unlink(path.to_path_buf())));
        Ok(())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let st = self.lock();
        if st.dead {
            return Err(dead());
        }
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut names: Vec<OsString> = st
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect();
        // Sorted, so that a run (and a fuzz input) replays exactly.
        names.sort_unstable();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if st.dead {
            return Err(dead());
        }
        add_dirs(&mut st.dirs, dir);
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().dirs.contains(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        self.lock().live.contains_key(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = st.tick(Op::SyncDir)? {
            return Err(fault_error(f));
        }
        let log = std::mem::take(&mut st.dir_log);
        let mut rest = Vec::with_capacity(log.len());
        for (p, op) in log {
            if p == dir {
                apply_dir(&mut st.durable, &op);
            } else {
                rest.push((p, op));
            }
        }
        st.dir_log = rest;
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut st = self.lock();
        if st.dead {
            return Err(dead());
        }
        if !st.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        })))
    }

    fn crash_point(&self, name: &'static str) -> io::Result<()> {
        let mut st = self.lock();
        if st.dead {
            return Err(dead());
        }
        st.points_seen.insert(name);
        if st.crash_point == Some(name) {
            st.crash_point = None;
            st.dead = true;
            st.injected += 1;
            return Err(io::Error::other(format!("simulated power cut at {name}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_bytes_and_entries_vanish_in_a_crash() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).expect("mkdir");
        let f = fs
            .open(&p("/d/a"), OpenMode::CreateTruncate)
            .expect("create");
        f.write_all_at(b"hello", 0).expect("write");
        f.sync_data().expect("sync");
        fs.sync_dir(&p("/d")).expect("dir sync");
        f.write_all_at(b" world", 5).expect("write");
        let g = fs
            .open(&p("/d/b"), OpenMode::CreateTruncate)
            .expect("create");
        g.write_all_at(b"x", 0).expect("write");
        g.sync_data().expect("sync");
        fs.power_off();
        fs.restart(Image::DurableOnly);
        assert_eq!(fs.file(&p("/d/a")).as_deref(), Some(&b"hello"[..]));
        assert_eq!(fs.file(&p("/d/b")), None, "entry never dir-synced");
        assert!(f.write_all_at(b"!", 0).is_err(), "stale handle");
    }

    #[test]
    fn all_image_keeps_everything_and_faults_fire_once() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).expect("mkdir");
        let f = fs
            .open(&p("/d/a"), OpenMode::CreateTruncate)
            .expect("create");
        fs.fail_nth(Some(Op::Write), 2, Fault::ShortWrite);
        f.write_all_at(b"abcd", 0).expect("first write");
        let e = f
            .write_all_at(b"efgh", 4)
            .expect_err("second write faulted");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.write_all_at(b"ij", 6).expect("one shot");
        assert_eq!(fs.file(&p("/d/a")).as_deref(), Some(&b"abcdefij"[..]));
        assert_eq!(fs.injected(), 1);
        fs.power_off();
        fs.restart(Image::All);
        assert_eq!(fs.file(&p("/d/a")).as_deref(), Some(&b"abcdefij"[..]));
    }

    #[test]
    fn durable_until_something_is_left_unsynced() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).expect("mkdir");
        assert!(fs.is_durable());
        let f = fs
            .open(&p("/d/a"), OpenMode::CreateTruncate)
            .expect("create");
        assert!(!fs.is_durable(), "the entry is not dir-synced");
        fs.sync_dir(&p("/d")).expect("dir sync");
        assert!(fs.is_durable(), "an empty file, its entry synced");
        f.write_all_at(b"x", 0).expect("write");
        assert!(!fs.is_durable(), "unsynced bytes");
        f.sync_data().expect("sync");
        assert!(fs.is_durable());
        fs.rename(&p("/d/a"), &p("/d/b")).expect("rename");
        assert!(!fs.is_durable(), "an unsynced rename");
    }

    #[test]
    fn partial_images_keep_prefixes() {
        for seed in 0..64 {
            let fs = SimFs::new();
            fs.create_dir_all(&p("/d")).expect("mkdir");
            let f = fs
                .open(&p("/d/t"), OpenMode::CreateTruncate)
                .expect("create");
            f.write_all_at(b"data", 0).expect("write");
            f.sync_all().expect("sync");
            fs.rename(&p("/d/t"), &p("/d/final")).expect("rename");
            f.write_all_at(b"more", 4).expect("write");
            fs.power_off();
            fs.restart(Image::Partial(seed));
            let files = fs.files();
            // Link then rename: either nothing, the temp name, or the final name.
            assert!(files.len() <= 1, "{files:?}");
            if let Some(path) = files.first() {
                let data = fs.file(path).expect("listed");
                assert!(data.starts_with(b"data"), "{data:?}");
                assert!(b"datamore".starts_with(&data), "{data:?}");
            }
        }
    }

    /// A fresh machine with `/d` and, for each (name, bytes), a file there
    /// created, written, synced and dir-synced; the handles, in order.
    fn synced(files: &[(&str, &[u8])]) -> (SimFs, Vec<Box<dyn FileHandle>>) {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).expect("mkdir");
        let mut handles = Vec::new();
        for (name, bytes) in files {
            let f = fs
                .open(&p("/d").join(name), OpenMode::CreateTruncate)
                .expect("create");
            f.write_all_at(bytes, 0).expect("write");
            f.sync_all().expect("sync");
            handles.push(f);
        }
        fs.sync_dir(&p("/d")).expect("dir sync");
        assert!(fs.is_durable());
        (fs, handles)
    }

    /// `fs` restarted (in a copy) with `image`: each file's bytes, in path
    /// order.
    fn image_of(fs: &SimFs, image: Image) -> Vec<(PathBuf, Vec<u8>)> {
        let crashed = fs.fork();
        crashed.restart(image);
        crashed
            .files()
            .into_iter()
            .map(|path| {
                let bytes = crashed.file(&path).expect("listed");
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn sync_persists_pending_mutations_in_order() {
        let (fs, h) = synced(&[("a", b"0123456789")]);
        let f = &h[0];
        f.write_all_at(b"abc", 8).expect("write");
        f.set_len(4).expect("truncate");
        f.write_all_at(b"xy", 6).expect("write past the end");
        f.write_all_at(b"Z", 1).expect("overwrite");
        let live = fs.file(&p("/d/a")).expect("live");
        assert_eq!(live, b"0Z23\0\0xy");
        // sync's debug assertion checks durable + pending == live.
        f.sync_data().expect("sync");
        assert!(fs.is_durable());
        fs.power_off();
        fs.restart(Image::DurableOnly);
        assert_eq!(fs.file(&p("/d/a")), Some(live));
    }

    #[test]
    fn subset_images_tear_a_write_by_page_dropping_its_first_page() {
        let old = vec![b'o'; 8192];
        let (fs, h) = synced(&[("a", &old)]);
        // Pages 0 (2048..4096), 1 (4096..8192) and 2 (8192..10240).
        let new = vec![b'n'; 8192];
        h[0].write_all_at(&new, 2048).expect("write");
        fs.power_off();
        assert_eq!(fs.pending_units(), 3, "one write over three pages");
        let first_page_lost = {
            let mut v = old.clone();
            v[4096..].fill(b'n');
            v.resize(10240, b'n');
            v
        };
        // Exactly: mask 0b110 drops unit 0 (the first page), keeps 1 and 2.
        let got = image_of(&fs, Image::Mask(0b110));
        assert_eq!(got, vec![(p("/d/a"), first_page_lost.clone())]);
        // Only the middle page: the file does not grow.
        let mut middle = old.clone();
        middle[4096..].fill(b'n');
        assert_eq!(image_of(&fs, Image::Mask(0b010))[0].1, middle);
        // The last page alone: the first page's piece is still old bytes.
        let mut last = old.clone();
        last.resize(10240, b'n');
        assert_eq!(image_of(&fs, Image::Mask(0b100))[0].1, last);
        // Random subsets reach that image too (a prefix never could), and
        // every image is page-granular: each page all old or all new.
        let mut seen = false;
        for seed in 0..256 {
            let data = image_of(&fs, Image::Subset(seed))
                .pop()
                .expect("the file")
                .1;
            seen |= data == first_page_lost;
            assert!(data.len() == 8192 || data.len() == 10240, "{seed}");
            assert!(data[..2048].iter().all(|&b| b == b'o'), "{seed}");
            for page in [&data[2048..4096], &data[4096..8192], &data[8192..]] {
                assert!(
                    page.iter().all(|&b| b == b'o') || page.iter().all(|&b| b == b'n'),
                    "seed {seed}: a page is torn inside"
                );
            }
            let partial = image_of(&fs, Image::Partial(seed)).pop().expect("file").1;
            assert!(
                partial[2048..4096].iter().all(|&b| b == b'n')
                    || partial[4096..].iter().all(|&b| b == b'o'),
                "seed {seed}: Partial keeps a prefix"
            );
        }
        assert!(seen, "some seed drops the first page and keeps a later one");
    }

    #[test]
    fn subset_images_can_drop_a_truncation() {
        let (fs, h) = synced(&[("a", b"hello world")]);
        // Truncate and rewrite, as CreateTruncate on an existing file does.
        h[0].set_len(0).expect("truncate");
        h[0].write_all_at(b"HEY", 0).expect("write");
        fs.power_off();
        assert_eq!(fs.pending_units(), 2, "the truncation and one page");
        let image = |mask| image_of(&fs, Image::Mask(mask)).pop().expect("file").1;
        assert_eq!(image(0b00), b"hello world");
        assert_eq!(image(0b01), b"");
        assert_eq!(image(0b11), b"HEY");
        // The truncation lost, the write after it landed: no prefix of the
        // pending mutations gives this.
        assert_eq!(image(0b10), b"HEYlo world");
        let mut seen = BTreeSet::new();
        for seed in 0..128 {
            let data = image_of(&fs, Image::Subset(seed)).pop().expect("file").1;
            seen.insert(data);
        }
        let all: BTreeSet<Vec<u8>> = [0, 1, 2, 3].into_iter().map(image).collect();
        assert_eq!(seen, all, "subset seeds reach every image, and only those");
    }

    #[test]
    fn masks_enumerate_every_crash_image() {
        let (fs, h) = synced(&[("a", b""), ("b", b"0123456789")]);
        // a: one write over pages 0 and 1, one inside page 1.
        h[0].write_all_at(&[b'A'; 5000], 0).expect("write");
        h[0].write_all_at(b"BB", 6000).expect("write");
        // b: a truncation and a write past the new end.
        h[1].set_len(4).expect("truncate");
        h[1].write_all_at(b"zz", 8).expect("write");
        // c: created, unsynced, its entry not dir-synced: a live name.
        let c = fs
            .open(&p("/d/c"), OpenMode::CreateTruncate)
            .expect("create");
        c.write_all_at(b"c", 0).expect("write");
        // d: unsynced bytes of an unlinked file are no unit.
        let d = fs
            .open(&p("/d/d"), OpenMode::CreateTruncate)
            .expect("create");
        fs.remove_file(&p("/d/d")).expect("unlink");
        d.write_all_at(b"gone", 0).expect("write");
        fs.power_off();
        let n = fs.pending_units();
        assert_eq!(n, 3 + 2 + 1);
        let all = image_of(&fs, Image::All);
        let mut images = BTreeSet::new();
        for mask in 0..1u128 << n {
            let image = image_of(&fs, Image::Mask(mask));
            let names: Vec<&PathBuf> = image.iter().map(|(path, _)| path).collect();
            assert_eq!(names, [&p("/d/a"), &p("/d/b"), &p("/d/c")], "live names");
            images.insert(image);
        }
        assert_eq!(images.len(), 1 << n, "every mask a distinct image");
        assert_eq!(image_of(&fs, Image::Mask(u128::MAX)), all);
        let none = image_of(&fs, Image::Mask(0));
        assert_eq!(none[1].1, b"0123456789");
        assert_eq!(none[2].1, b"", "c's bytes were never synced");
        // Subset images draw from the same set when their directory prefix
        // (of c's link, d's link, d's unlink) leaves the live names.
        for seed in 0..64 {
            let image = image_of(&fs, Image::Subset(seed));
            if image.len() == 3 {
                assert!(images.contains(&image), "seed {seed}: {image:?}");
            }
        }
    }

    #[test]
    fn a_failed_fsync_can_drop_dirty_data() {
        let (fs, h) = synced(&[("a", b"hello")]);
        let f = &h[0];
        f.write_all_at(b" world", 5).expect("write");
        fs.fail_nth(Some(Op::Sync), 1, Fault::EioDropsDirty);
        let e = f.sync_data().expect_err("the fsync fails");
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert_eq!(fs.injected(), 1);
        // The page cache still has the bytes: reads and a process crash see
        // them. A power cut does not.
        let mut buf = [0; 11];
        f.read_exact_at(&mut buf, 0).expect("read");
        assert_eq!(&buf, b"hello world");
        assert!(!fs.is_durable());
        assert_eq!(image_of(&fs, Image::All)[0].1, b"hello world");
        assert_eq!(image_of(&fs, Image::DurableOnly)[0].1, b"hello");
        // Nothing is pending any more: no crash image brings them back.
        assert_eq!(fs.pending_units(), 0);
        for seed in 0..16 {
            assert_eq!(image_of(&fs, Image::Subset(seed))[0].1, b"hello");
            assert_eq!(image_of(&fs, Image::Partial(seed))[0].1, b"hello");
        }
        // A later write and a successful sync persist that write only: the
        // dropped bytes are not resurrected.
        f.write_all_at(b"!", 11).expect("write");
        assert_eq!(fs.pending_units(), 1);
        f.sync_data().expect("the next fsync succeeds");
        assert_eq!(fs.file(&p("/d/a")).as_deref(), Some(&b"hello world!"[..]));
        assert!(!fs.is_durable(), "the dropped bytes are still not durable");
        fs.power_off();
        fs.restart(Image::DurableOnly);
        assert_eq!(
            fs.file(&p("/d/a")).as_deref(),
            Some(&b"hello\0\0\0\0\0\0!"[..])
        );
    }

    #[test]
    fn a_plain_failed_fsync_keeps_the_data_pending() {
        let (fs, h) = synced(&[("a", b"hello")]);
        let f = &h[0];
        f.write_all_at(b" world", 5).expect("write");
        fs.fail_nth(Some(Op::Sync), 1, Fault::Eio);
        f.sync_data().expect_err("the fsync fails");
        assert_eq!(image_of(&fs, Image::DurableOnly)[0].1, b"hello");
        f.sync_data().expect("retried");
        assert!(fs.is_durable());
        fs.power_off();
        fs.restart(Image::DurableOnly);
        assert_eq!(fs.file(&p("/d/a")).as_deref(), Some(&b"hello world"[..]));
    }

    #[test]
    fn rewriting_the_dropped_bytes_makes_the_file_durable_again() {
        let (fs, h) = synced(&[("a", b"hello")]);
        let f = &h[0];
        f.write_all_at(b" world", 5).expect("write");
        fs.fail_nth(Some(Op::Sync), 1, Fault::EioDropsDirty);
        f.sync_data().expect_err("the fsync fails");
        // What a careful writer does: rewrite what the failed fsync covered.
        f.write_all_at(b" world", 5).expect("rewrite");
        f.sync_data().expect("sync");
        assert!(fs.is_durable());
        // Later syncs are checked against the live bytes again.
        f.write_all_at(b"!", 11).expect("write");
        f.sync_data().expect("sync");
        fs.power_off();
        fs.restart(Image::DurableOnly);
        assert_eq!(fs.file(&p("/d/a")).as_deref(), Some(&b"hello world!"[..]));
    }
}
