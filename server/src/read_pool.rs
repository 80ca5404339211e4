//! A fixed pool of threads for short engine reads (list pages, a record by
//! id, facets, histograms, stats, the live stream's catch-up queries).
//!
//! Engine reads block (positioned reads, mapped pages that may fault), so
//! they run off the async runtime. They used to go through tokio's
//! `spawn_blocking`, gated by a 16-permit semaphore. Under 64 clients
//! reading as fast as they could, that pool still grew to ~140 threads:
//! a finished read returns its permit before its thread counts as idle
//! again, so the next read often found no idle thread and started one.
//! Thread starts (fresh stacks, each with an allocator heap of its own)
//! and the wake-ups between them took over a third of the server's CPU, and
//! the resident size reached 244 MB until the idle threads exited.
//!
//! Here [`READ_THREADS`] threads, started once, take jobs from one queue
//! in arrival order: at most that many reads run at once, later ones wait
//! their turn, and no thread is ever started or stopped under load.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// Threads that run reads. Reads are CPU work of microseconds to
/// milliseconds, so a few per core keep the cores busy; more would only
/// add memory and switching. A few more than the cores also keep a read
/// that waits on the disk from holding up the rest.
pub const READ_THREADS: usize = 8;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The queue the read threads take jobs from.
struct Pool {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Job>> {
        // A job runs outside the lock, so a poisoned lock only means a
        // panic between two queue operations: the queue is still whole.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One thread's loop: runs jobs, one at a time, for the life of the
    /// process.
    fn work(&self) {
        loop {
            let job = {
                let mut jobs = self.lock();
                loop {
                    match jobs.pop_front() {
                        Some(job) => break job,
                        None => jobs = self.ready.wait(jobs).unwrap_or_else(|e| e.into_inner()),
                    }
                }
            };
            // A panicking read drops its reply sender (its caller gets an
            // error), and the thread lives on for the next read.
            let _ = catch_unwind(AssertUnwindSafe(job));
        }
    }
}

/// The process's pool, started by the first read; `None` if the system
/// refused every thread (reads then fall back to `spawn_blocking`).
fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        }));
        let started = (0..READ_THREADS)
            .filter(|i| {
                std::thread::Builder::new()
                    .name(format!("actlog-read-{i}"))
                    .spawn(move || pool.work())
                    .is_ok()
            })
            .count();
        (started > 0).then_some(pool)
    })
}

/// Why a read produced no value.
#[derive(Debug, thiserror::Error)]
#[error("the read failed before it returned (a bug: it panicked)")]
pub struct ReadPanicked;

/// Runs `f` on a read thread and returns its value; waits (without
/// blocking the runtime) while every read thread is busy.
pub async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ReadPanicked> {
    let Some(pool) = pool() else {
        return tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| ReadPanicked);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    pool.lock().push_back(Box::new(move || {
        // The caller may have gone (a dropped request): nobody to tell.
        let _ = reply.send(f());
    }));
    pool.ready.notify_one();
    answer.await.map_err(|_| ReadPanicked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_every_job_and_survives_a_panicking_one() {
        let panicked = run(|| -> u32 { panic!("a read that panics") }).await;
        assert!(panicked.is_err(), "a panicking read reports an error");
        let done = Arc::new(AtomicUsize::new(0));
        let reads = (0..200u64).map(|i| {
            let done = done.clone();
            run(move || {
                done.fetch_add(1, Ordering::Relaxed);
                i * 2
            })
        });
        let values = futures_util::future::join_all(reads).await;
        let values: Vec<u64> = values.into_iter().map(|v| v.expect("a read")).collect();
        assert_eq!(values, (0..200u64).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(done.load(Ordering::Relaxed), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_read_threads_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads = (0..4 * READ_THREADS).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for r in futures_util::future::join_all(reads).await {
            r.expect("a read");
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=READ_THREADS).contains(&most),
            "{most} reads ran at once"
        );
    }
}
