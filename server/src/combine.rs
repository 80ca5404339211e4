//! Combining concurrent ingest requests into one engine append.
//!
//! Sixty-four clients each POSTing one event would otherwise be sixty-four
//! blocking threads in the engine's group commit, on a machine with two
//! cores: most of the time goes to waking threads, not to the disk. Instead,
//! requests queue here and at most [`WORKERS`] blocking workers drain the
//! queue, each appending everything waiting (up to [`MAX_RECORDS`]) as one
//! batch, one write and one fsync, then answering every request in it. Two
//! workers let one gather and stage the next batch while the other waits for
//! its fsync (the engine's group commit merges them when they meet).
//!
//! Atomicity only gets stronger: a combined batch is all-or-nothing across a
//! crash, so each request inside it is too. A request is acknowledged only
//! after its batch's fsync. If the combined append is refused as invalid
//! (which validation before queueing should make impossible), each request is
//! retried alone so that one bad request cannot fail the others.

use std::collections::VecDeque;
use std::sync::Mutex;

use actlog_engine::{Error, NewRecord};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// Most blocking workers appending at once.
pub const WORKERS: usize = 2;
/// A worker stops adding requests to a batch once it holds this many records
/// (one request is always taken whole, however large).
pub const MAX_RECORDS: usize = 1000;

/// What a request gets back: the ids of its records, or why not.
pub type Reply = Result<Vec<u64>, ApiError>;

struct Pending {
    records: Vec<NewRecord>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    workers: usize,
}

/// The queue of ingest requests waiting for a worker.
#[derive(Default)]
pub struct Combiner {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.lock();
        f.debug_struct("Combiner")
            .field("pending", &q.pending.len())
            .field("workers", &q.workers)
            .finish()
    }
}

impl Combiner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `records`. Returns the receiver of the reply and whether the
    /// caller must start a worker (see [`Combiner::work`]).
    pub fn submit(&self, records: Vec<NewRecord>) -> (oneshot::Receiver<Reply>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut q = self.lock();
        q.pending.push_back(Pending { records, reply: tx });
        let start = q.workers < WORKERS;
        if start {
            q.workers += 1;
        }
        (rx, start)
    }

    /// A worker's loop: takes batches until the queue is empty. `append`
    /// appends one batch durably (called on this thread, which may block).
    pub fn work(&self, append: impl Fn(&[NewRecord]) -> Result<Vec<u64>, Error>) {
        // Gives the worker's slot back however the loop ends (a panic in
        // `append` included); the requests of a batch in flight then see
        // their reply channel closed.
        struct Slot<'a>(&'a Combiner, bool);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.lock().workers -= 1;
                }
            }
        }
        let mut slot = Slot(self, false);
        loop {
            let group = {
                let mut q = self.lock();
                let mut group = Vec::new();
                let mut n = 0;
                while let Some(p) = q.pending.front() {
                    if !group.is_empty() && n + p.records.len() > MAX_RECORDS {
                        break;
                    }
                    n += p.records.len();
                    group.extend(q.pending.pop_front());
                }
                if group.is_empty() {
                    // Leave in the same critical section that saw the queue
                    // empty, so a request queued right after finds a free
                    // slot and starts a worker.
                    q.workers -= 1;
                    slot.1 = true;
                    return;
                }
                group
            };
            Self::append_group(group, &append);
        }
    }

    fn append_group(
        group: Vec<Pending>,
        append: &impl Fn(&[NewRecord]) -> Result<Vec<u64>, Error>,
    ) {
        if group.len() == 1 {
            for p in group {
                let _ = p.reply.send(append(&p.records).map_err(ApiError::from));
            }
            return;
        }
        // The records move into one batch (cloning and dropping them twice
        // was a fifth of the server's CPU under batched ingest).
        let counts: Vec<usize> = group.iter().map(|p| p.records.len()).collect();
        let mut all: Vec<NewRecord> = Vec::with_capacity(counts.iter().sum());
        let replies: Vec<oneshot::Sender<Reply>> = group
            .into_iter()
            .map(|p| {
                all.extend(p.records);
                p.reply
            })
            .collect();
        match append(&all) {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                for (reply, n) in replies.into_iter().zip(counts) {
                    let mine: Vec<u64> = ids.by_ref().take(n).collect();
                    // A receiver gone (client disconnected) changes nothing:
                    // the records are durable either way.
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(Error::Invalid { .. }) => {
                let mut rest = all.as_slice();
                for (reply, n) in replies.into_iter().zip(counts) {
                    let (mine, after) = rest.split_at(n);
                    rest = after;
                    let _ = reply.send(append(mine).map_err(ApiError::from));
                }
            }
            Err(e) => {
                // A failure of the whole batch (storage): described (and
                // logged) once, answered to every request in it.
                let err = ApiError::from(e);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn recs(n: usize, tag: &str) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord::new("test", "test.event", format!("{tag} {i}")))
            .collect()
    }

    /// What a real append returns: consecutive ids from `first`.
    fn ids_from(batch: &[NewRecord], first: u64) -> Vec<u64> {
        (first..first + batch.len() as u64).collect()
    }

    #[test]
    fn queued_requests_share_one_append_and_get_their_own_records() {
        let c = Combiner::default();
        let (rx_a, start_a) = c.submit(recs(2, "a"));
        let (rx_b, start_b) = c.submit(recs(3, "b"));
        let (rx_c, start_c) = c.submit(recs(1, "c"));
        assert!(start_a && start_b && !start_c, "at most {WORKERS} workers");
        let calls = AtomicUsize::new(0);
        let appended = Mutex::new(Vec::new());
        c.work(|batch| {
            calls.fetch_add(1, Ordering::Relaxed);
            let mut seen = appended.lock().expect("lock");
            seen.extend(batch.iter().map(|r| r.message.clone()));
            Ok(ids_from(batch, 10))
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1, "one append for all three");
        // The batch holds the requests' records in queue order…
        assert_eq!(
            *appended.lock().expect("lock"),
            ["a 0", "a 1", "b 0", "b 1", "b 2", "c 0"]
        );
        // …so each request's ids are its own records'.
        let ids =
            |rx: oneshot::Receiver<Reply>| rx.blocking_recv().expect("answered").expect("stored");
        assert_eq!(ids(rx_a), [10, 11]);
        assert_eq!(ids(rx_b), [12, 13, 14]);
        assert_eq!(ids(rx_c), [15]);
    }

    #[test]
    fn batches_stop_at_the_record_bound_but_take_one_request_whole() {
        let c = Combiner::default();
        let (_a, _) = c.submit(recs(MAX_RECORDS - 1, "a"));
        let (_b, _) = c.submit(recs(2, "b"));
        let (_c, _) = c.submit(recs(MAX_RECORDS + 5, "c"));
        let sizes = Mutex::new(Vec::new());
        c.work(|batch| {
            sizes.lock().expect("lock").push(batch.len());
            Ok(ids_from(batch, 1))
        });
        assert_eq!(
            *sizes.lock().expect("lock"),
            [MAX_RECORDS - 1, 2, MAX_RECORDS + 5]
        );
        // Two submits reserved worker slots; the one worker that ran gave its back.
        assert_eq!(c.lock().workers, 1, "the worker left");
    }

    #[test]
    fn an_invalid_combined_batch_is_retried_request_by_request() {
        let c = Combiner::default();
        let (rx_ok, _) = c.submit(recs(1, "ok"));
        let mut bad = recs(1, "bad");
        bad[0].category = "NOT A TOKEN".into();
        let (rx_bad, _) = c.submit(bad);
        c.work(|batch| {
            for (index, r) in batch.iter().enumerate() {
                if let Err(source) = r.validate() {
                    return Err(Error::Invalid { index, source });
                }
            }
            Ok(ids_from(batch, 1))
        });
        assert!(rx_ok.blocking_recv().expect("answered").is_ok());
        let err = rx_bad
            .blocking_recv()
            .expect("answered")
            .expect_err("refused");
        assert_eq!((err.code, err.index), ("invalid_field", Some(0)), "{err:?}");
    }

    #[test]
    fn a_storage_failure_reaches_every_request_of_the_batch() {
        let c = Combiner::default();
        let rxs: Vec<_> = (0..3)
            .map(|i| c.submit(recs(1, &i.to_string())).0)
            .collect();
        c.work(|_| Err(Error::PreviousIo));
        for rx in rxs {
            let err = rx.blocking_recv().expect("answered").expect_err("failed");
            assert_eq!(err.code, "unavailable");
        }
    }
}
