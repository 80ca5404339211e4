//! The log's indexing thread: indexes the batches a flush took from
//! `WriterState::unindexed` while that flush writes and fdatasyncs them.
//!
//! A flush hands its batches over with [`Indexer::start`] and, before it
//! publishes anything, waits for them with [`Indexing::wait`]: a visible
//! record is always indexed. Flushes run one at a time (under the `io`
//! lock), so one job is in flight at most.
//!
//! One long-lived thread rather than a scoped thread per flush (up to one
//! every ~600 µs with 64 async appenders): no stack is mapped and unmapped
//! per flush, and a system that refuses a thread costs speed, not a panic
//! on the write path (the flush then indexes in place). Measured on this
//! project's VM, 64 tasks: 91.9k against 76.8k records/s in six
//! interleaved pairs (benches/README.md, "Session 9"; an earlier set was
//! even, and session 8's three pairs favoured the spawn).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use crate::index::terms::Terms;
use crate::segment::active::ActiveSegment;

/// Batches to index: `(first local, terms)`, in staging order.
pub(crate) type Batches = Vec<(u32, Terms)>;

/// The indexing thread, started by the first flush that has batches.
#[derive(Debug, Default)]
pub(crate) struct Indexer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
    /// Signalled when a job arrives, when one is done, and at stop.
    changed: Condvar,
}

#[derive(Default)]
struct Slot {
    job: Option<(Arc<ActiveSegment>, Batches)>,
    /// The index's estimated heap after the last job, or its panic.
    done: Option<thread::Result<usize>>,
    stop: bool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("job", &self.job.is_some())
            .field("done", &self.done.is_some())
            .field("stop", &self.stop)
            .finish()
    }
}

/// A job handed to the indexing thread (or done in place when that thread
/// could not be started); its result waits in the slot. Dropping it waits
/// for the job.
#[must_use = "the batches must be indexed before the flush publishes"]
pub(crate) struct Indexing<'a> {
    indexer: &'a Indexer,
    waited: bool,
}

impl Indexer {
    /// Starts indexing `batches` into `active` (in order) on the indexing
    /// thread; the caller goes on with its write and sync.
    pub(crate) fn start(&self, active: Arc<ActiveSegment>, batches: Batches) -> Indexing<'_> {
        let threaded = self.ensure_thread();
        let mut slot = self.shared.lock();
        debug_assert!(slot.job.is_none() && slot.done.is_none());
        if threaded {
            slot.job = Some((active, batches));
            drop(slot);
            self.shared.changed.notify_all();
        } else {
            // No thread (the system refused one): index here, before the
            // sync, which only makes this flush slower.
            slot.done = Some(Ok(index_batches(&active, &batches)));
        }
        Indexing {
            indexer: self,
            waited: false,
        }
    }

    /// Starts the thread if it is not running; false if it cannot be.
    fn ensure_thread(&self) -> bool {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_some() {
            return true;
        }
        let shared = self.shared.clone();
        match thread::Builder::new()
            .name("actlog-indexer".into())
            .spawn(move || shared.run())
        {
            Ok(handle) => {
                *thread = Some(handle);
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = thread.take() {
            let _ = handle.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The indexing thread's loop.
    fn run(&self) {
        let mut slot = self.lock();
        loop {
            if let Some((active, batches)) = slot.job.take() {
                drop(slot);
                let result = catch_unwind(AssertUnwindSafe(|| index_batches(&active, &batches)));
                // The terms are freed here, not on the flush's thread.
                drop((active, batches));
                slot = self.lock();
                slot.done = Some(result);
                self.changed.notify_all();
                continue;
            }
            if slot.stop {
                return;
            }
            slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Indexing<'_> {
    /// Waits until the batches are indexed; returns the index's estimated
    /// heap. A panic while indexing resumes here.
    pub(crate) fn wait(mut self) -> usize {
        self.waited = true;
        self.finish().unwrap_or_else(|panic| resume_unwind(panic))
    }

    fn finish(&mut self) -> thread::Result<usize> {
        let shared = &self.indexer.shared;
        let mut slot = shared.lock();
        loop {
            if let Some(result) = slot.done.take() {
                return result;
            }
            slot = shared.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Indexing<'_> {
    /// Waits even while unwinding: the next job must not find this one's
    /// result (a panic of its own is dropped, one is already under way).
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.finish();
        }
    }
}

/// Indexes batches taken from `WriterState::unindexed`, in order; returns the
/// index's estimated heap afterwards.
pub(crate) fn index_batches(active: &ActiveSegment, batches: &[(u32, Terms)]) -> usize {
    let mut bytes = 0;
    for (first_local, terms) in batches {
        bytes = active.index_batch(*first_local, terms);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sim::SimFs;
    use crate::env::{FileSystem, OpenMode};
    use crate::index::active::ActiveIndex;
    use crate::index::terms::TermSource;
    use crate::index::WORD_CODE;
    use crate::segment::active::ActiveTable;
    use std::path::Path;

    fn record_with(message: &str) -> Terms {
        Terms::of(TermSource {
            category: "c",
            action: "a",
            actor: "x",
            entity_type: None,
            entity_id: None,
            entity_name: None,
            message,
            severity: "info",
            recorded_by: None,
        })
    }

    /// Each job is in the index when `wait` returns; jobs run one after
    /// another on the one thread; dropping the indexer stops and joins it.
    #[test]
    fn a_job_is_indexed_when_wait_returns() {
        let fs = SimFs::new();
        let path = Path::new("/log/seg");
        fs.create_dir_all(Path::new("/log")).expect("dir");
        let file = fs.open(path, OpenMode::CreateTruncate).expect("file");
        let active = Arc::new(ActiveSegment::new(
            path.to_path_buf(),
            1,
            file,
            ActiveTable::default(),
            ActiveIndex::default(),
        ));
        let indexer = Indexer::default();
        for local in 0u32..50 {
            let word = format!("w{local}");
            let bytes = indexer
                .start(active.clone(), vec![(local, record_with(&word))])
                .wait();
            assert!(bytes > 0);
            let mut key = vec![WORD_CODE];
            key.extend_from_slice(word.as_bytes());
            let index = active.index();
            let found = index.get(&key).expect("the word is indexed");
            assert_eq!(found.iter().collect::<Vec<_>>(), vec![local]);
        }
        // Not waited for: dropping the job waits.
        let job = indexer.start(active.clone(), vec![(50, record_with("last"))]);
        drop(job);
        assert!(active
            .index()
            .get(&[&[WORD_CODE][..], b"last"].concat())
            .is_some());
        drop(indexer);
        assert_eq!(
            Arc::strong_count(&active),
            1,
            "the thread let go of the segment"
        );
    }
}
