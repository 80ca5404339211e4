//! Leader/follower fsync sharing.
//!
//! Appenders stage their frames in a shared buffer (see `writer.rs`) and then
//! call [`GroupCommit::wait_durable`] with their last id. The first waiter to
//! find no sync in flight becomes the leader: it writes everything staged so
//! far and fdatasyncs once, then publishes the new durable id and wakes the
//! others. While one fsync runs, the next group gathers, so throughput rises
//! with writers while each still returns only after its own records are on
//! disk.
//!
//! Waiters park, each on its own thread, and a publish unparks exactly those
//! it covers (after releasing the lock, which each takes again at once),
//! plus one that is not covered to lead the next flush. (An
//! earlier version woke every waiter on a condvar: at 64 writers on 2 vCPUs
//! the ~30 not covered woke only to sleep again, and futex traffic and
//! scheduling took 38-48 % of the CPU; see benches/README.md.)
//!
//! A new leader first waits, for at most [`GATHER_MAX`], until every other
//! appender inside `append` has staged and parked (PostgreSQL's
//! `commit_delay`, gated the same way by the number of active siblings:
//! [`GATHER_MIN_ACTIVE`]), and until as many tasks wait as waited at the last
//! publish (a task is not "inside" anything between its wake-up and its next
//! append, so it is counted this way instead).
//! With many closed-loop writers, those just acknowledged re-stage within
//! microseconds; without the wait they would miss the next fsync and the
//! writers would split into two cohorts taking turns, about N/2 records per
//! fsync. A lone appender never waits.
//!
//! A failed write or fsync is fail-stop: the leader returns the I/O error,
//! every other waiter and every later call gets [`Error::PreviousIo`], and
//! nothing is retried (after a failed fsync the kernel may already have
//! dropped the dirty pages, so a retry could "succeed" without the data).
//!
//! Appenders that cannot block (async tasks: [`crate::Log::append_async`])
//! register a [`Waker`] instead of parking, and never lead. A flusher
//! thread (`log/append.rs`), started with the first of them and joined by the last
//! handle's drop, leads on their behalf ([`GroupCommit::lead_for_tasks`]):
//! it is unparked whenever task waiters are left uncovered and no flush
//! runs, and after each publish that woke tasks it goes straight into the
//! next gather for them. Under load it leads flush after flush, and tasks
//! cost no thread switch per append. While the tasks it woke keep
//! re-staging, that gather yields the CPU in a loop instead of parking
//! ([`GATHER_SPIN_IDLE`]; a thread leading a gather of threads does the
//! same), so the flush starts as soon as the last is in.
//!
//! [`crate::Log::recover`] may later replace the failed state with one
//! rebuilt from disk ([`GroupCommit::reset`]). Each state has an epoch; a
//! waiter whose records were staged under an older epoch gets
//! `PreviousIo`, never an ack, even if its id is later reached by records of
//! the new epoch.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Counters of the durable-write path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// fdatasync calls made by commit leaders.
    pub fsyncs: u64,
    /// Total time spent in them, µs.
    pub fsync_micros_total: u64,
    /// Longest one, µs.
    pub fsync_micros_max: u64,
    /// Appends acknowledged (records).
    pub records_appended: u64,
}

/// Lock-free [`IoStats`] counters.
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub fsyncs: AtomicU64,
    pub fsync_micros_total: AtomicU64,
    pub fsync_micros_max: AtomicU64,
    pub records_appended: AtomicU64,
}

impl IoCounters {
    pub(crate) fn record_fsync(&self, micros: u64) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_micros_total.fetch_add(micros, Ordering::Relaxed);
        self.fsync_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> IoStats {
        IoStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            fsync_micros_total: self.fsync_micros_total.load(Ordering::Relaxed),
            fsync_micros_max: self.fsync_micros_max.load(Ordering::Relaxed),
            records_appended: self.records_appended.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct CommitState {
    /// Highest id known durable.
    durable: u64,
    /// A leader is writing/syncing right now.
    leader: bool,
    /// A write or fsync failed; the handle is fail-stopped.
    failed: bool,
    /// See the module docs.
    epoch: u64,
    /// Waiting appenders and the id each waits for, every id above
    /// `durable`. Only a waker removes an entry (or its owner: on becoming
    /// leader, or a task dropping its future).
    waiters: Vec<(u64, Waiter)>,
    /// How many of `waiters` are tasks: a task's poll needs the count, and
    /// counting took O(waiters) under the lock, O(n²) a flush.
    tasks: usize,
    /// The thread that leads for task waiters, once started.
    flusher: Option<Thread>,
    /// Task waiters when the last flush was published: about how many
    /// tasks append concurrently, and so how many a leader gathers.
    tasks_seen: usize,
}

/// How a waiting appender is woken.
#[derive(Debug)]
enum Waiter {
    /// A parked thread; it may lead.
    Thread(Thread),
    /// An async task (never leads); `token` names its future.
    Task { token: u64, waker: Waker },
}

impl Waiter {
    fn wake(&self) {
        match self {
            Waiter::Thread(t) => t.unpark(),
            Waiter::Task { waker, .. } => waker.wake_by_ref(),
        }
    }
}

/// Parked threads a publish covers, unparked by [`Covered::wake`] after the
/// commit lock is released: a woken appender takes that lock again at once,
/// and with 64 of them unparked under it they queued behind it.
struct Covered(Vec<(u64, Waiter)>);

impl Covered {
    fn wake(self) {
        for (_, w) in self.0 {
            w.wake();
        }
    }
}

impl CommitState {
    /// Forgets the waiters `durable` covers and returns them, for the caller
    /// to wake once it has released the lock; if no flush is running, wakes
    /// one more waiter to lead the next: a parked thread, or the flusher if
    /// only tasks are left.
    #[must_use = "the covered waiters must be woken"]
    fn take_covered(&mut self) -> Covered {
        let durable = self.durable;
        self.tasks_seen = self.tasks;
        let (mut covered, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(id, _)| *id <= durable);
        self.waiters = waiting;
        // Tasks are woken here, under the lock, all at once: their executor's
        // workers then wait for it rather than take the CPU from the rest of
        // this loop (measured: 64 tasks re-staged a third slower otherwise).
        let mut woken = 0;
        covered.retain(|(_, w)| match w {
            Waiter::Task { waker, .. } => {
                waker.wake_by_ref();
                woken += 1;
                false
            }
            Waiter::Thread(_) => true,
        });
        self.tasks -= woken;
        self.check_tasks();
        if !self.leader {
            self.hand_off();
        }
        Covered(covered)
    }

    /// With no flush running, wakes one waiter to lead the next: a parked
    /// thread, or the flusher if only tasks wait.
    fn hand_off(&self) {
        match self.waiters.iter().find_map(|(_, w)| match w {
            Waiter::Thread(t) => Some(t),
            Waiter::Task { .. } => None,
        }) {
            Some(t) => t.unpark(),
            None if !self.waiters.is_empty() => self.unpark_flusher(),
            None => {}
        }
    }

    /// Registers a waiter for `id` (above `durable`).
    fn push_waiter(&mut self, id: u64, w: Waiter) {
        debug_assert!(id > self.durable);
        if matches!(w, Waiter::Task { .. }) {
            self.tasks += 1;
        }
        self.waiters.push((id, w));
    }

    /// Forgets task waiter `token`, if registered.
    fn remove_task(&mut self, token: u64) {
        let at = self
            .waiters
            .iter()
            .position(|(_, w)| matches!(w, Waiter::Task { token: t, .. } if *t == token));
        if let Some(at) = at {
            self.waiters.remove(at);
            self.tasks -= 1;
        }
        self.check_tasks();
    }

    /// Debug builds: `tasks` counts the task waiters.
    fn check_tasks(&self) {
        debug_assert_eq!(
            self.tasks,
            self.waiters
                .iter()
                .filter(|(_, w)| matches!(w, Waiter::Task { .. }))
                .count()
        );
    }

    fn wake_all(&mut self) {
        self.tasks = 0;
        for (_, w) in self.waiters.drain(..) {
            w.wake();
        }
    }

    fn unpark_flusher(&self) {
        if let Some(t) = &self.flusher {
            t.unpark();
        }
    }
}

/// The shared commit point. `visible` mirrors `durable` for lock-free readers.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<CommitState>,
    visible: AtomicU64,
    /// Appenders inside `append` ([`GroupCommit::enter`] guards alive).
    active: AtomicUsize,
    /// The leader while it gathers, to unpark when `active` or the waiters
    /// change. Lock order: `state`, then this.
    gatherer: Mutex<Option<Thread>>,
    /// `gatherer` is set: lets every append's end skip that mutex when no
    /// leader gathers. SeqCst with `active` and the waiters (see `gather`),
    /// so a nudge the leader needs is never skipped.
    gathering: AtomicBool,
    /// Bumped when a waiter registers or an appender leaves `append`: a
    /// gathering leader watches it without the lock (see
    /// [`GATHER_SPIN_IDLE`]).
    arrivals_seen: AtomicU64,
    /// Set when as many tasks wait as the flusher's gather expects.
    tasks_in: AtomicBool,
    /// Source of [`Waiter::Task`] tokens.
    next_token: AtomicU64,
}

/// The longest a new leader waits for its siblings to stage.
pub(crate) const GATHER_MAX: Duration = Duration::from_micros(200);
/// The same when tasks wait: an executor re-polls the tasks a publish woke
/// one after another, so they take longer to come back than threads.
pub(crate) const GATHER_MAX_TASKS: Duration = Duration::from_micros(500);
/// A leader gathers only with at least this many appenders active, itself
/// included (PostgreSQL's `commit_siblings` is 5): one sibling rarely
/// comes back within the wait, e.g. a thread encoding a batch of up to 1000
/// records.
pub(crate) const GATHER_MIN_ACTIVE: usize = 3;

/// A gathering leader waits for its siblings by yielding the CPU in a loop
/// rather than parking, for as long as one more arrives within this much
/// time of the last (or of the gather's start); then it parks as before.
/// Parked, it was unparked by every thread that parked or left `append`
/// (two futex wake-ups and reschedules a thread a cycle), or, for tasks,
/// once at the end, each wake-up tens of µs on a busy 2-vCPU VM. Measured
/// in interleaved runs (benches/README.md, "Session 10"): 64 tasks
/// 212-252k records/s against 156-195k, 64 threads 98-127k against
/// 60-89k. A sibling that does not come back costs at most this much CPU
/// a flush.
pub(crate) const GATHER_SPIN_IDLE: Duration = Duration::from_micros(100);

/// An appender inside `append`, counted until dropped; see the module docs.
#[derive(Debug)]
pub(crate) struct Entered<'a>(&'a GroupCommit);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.arrivals_seen.fetch_add(1, Ordering::SeqCst);
        self.0.nudge_gatherer();
    }
}

impl GroupCommit {
    pub(crate) fn new(durable: u64) -> Self {
        GroupCommit {
            state: Mutex::new(CommitState {
                durable,
                leader: false,
                failed: false,
                epoch: 0,
                waiters: Vec::new(),
                tasks: 0,
                flusher: None,
                tasks_seen: 0,
            }),
            visible: AtomicU64::new(durable),
            active: AtomicUsize::new(0),
            gatherer: Mutex::new(None),
            gathering: AtomicBool::new(false),
            arrivals_seen: AtomicU64::new(0),
            tasks_in: AtomicBool::new(false),
            next_token: AtomicU64::new(0),
        }
    }

    /// Unparks a gathering leader so it checks again.
    fn nudge_gatherer(&self) {
        if !self.gathering.load(Ordering::SeqCst) {
            return;
        }
        let g = self.gatherer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = g.as_ref() {
            t.unpark();
        }
    }

    /// Sets (then raises the flag) or clears (flag first) the gatherer. The
    /// leader sets it before it checks `all_parked`: an appender that
    /// decrements `active` or registers after that check sees the flag.
    fn set_gatherer(&self, t: Option<Thread>) {
        let on = t.is_some();
        if !on {
            self.gathering.store(false, Ordering::SeqCst);
        }
        *self.gatherer.lock().unwrap_or_else(|e| e.into_inner()) = t;
        if on {
            self.gathering.store(true, Ordering::SeqCst);
        }
    }

    /// Counts an appender in until the guard drops: call before staging.
    pub(crate) fn enter(&self) -> Entered<'_> {
        self.active.fetch_add(1, Ordering::SeqCst);
        Entered(self)
    }

    /// Whether every active appender but the leader has parked.
    fn all_parked(&self, st: &CommitState) -> bool {
        st.waiters.len() + 1 >= self.active.load(Ordering::SeqCst)
    }

    /// The leader's wait for its siblings (see the module docs).
    fn gather<'s>(&'s self, mut st: MutexGuard<'s, CommitState>) -> MutexGuard<'s, CommitState> {
        // Threads: every appender inside `append` has staged. Tasks: as many
        // wait again as waited at the last publish (those it acknowledged
        // re-stage once their executor polls them).
        let expected_tasks = st.tasks_seen;
        let gathered = |st: &CommitState| {
            (self.active.load(Ordering::SeqCst) < GATHER_MIN_ACTIVE || self.all_parked(st))
                && st.tasks >= expected_tasks
        };
        if gathered(&st) {
            return st;
        }
        let bound = if expected_tasks > 0 {
            GATHER_MAX_TASKS
        } else {
            GATHER_MAX
        };
        let deadline = Instant::now() + bound;
        self.set_gatherer(Some(thread::current()));
        self.tasks_in.store(false, Ordering::SeqCst);
        let mut arrivals = self.arrivals_seen.load(Ordering::SeqCst);
        let mut progress_at = Instant::now();
        while !gathered(&st) && !st.failed {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                break;
            }
            if now.duration_since(progress_at) < GATHER_SPIN_IDLE {
                drop(st);
                // Threads end their wait in two ways (parking, or leaving
                // `append`), and only the lock can tell whether the last one
                // did: while any are inside, check under it after each
                // arrival. Tasks alone raise `tasks_in`.
                let recheck = expected_tasks == 0 || self.active.load(Ordering::SeqCst) > 0;
                self.spin_while_arriving(&mut arrivals, &mut progress_at, deadline, recheck);
                st = self.lock();
                continue;
            }
            drop(st);
            thread::park_timeout(left);
            let seen = self.arrivals_seen.load(Ordering::SeqCst);
            if seen != arrivals {
                // Woken by an arrival: spin again while more follow.
                arrivals = seen;
                progress_at = Instant::now();
            }
            st = self.lock();
        }
        self.set_gatherer(None);
        st
    }

    /// A gathering leader's wait while its siblings keep coming (see
    /// [`GATHER_SPIN_IDLE`]): yields the CPU in a loop, without the lock,
    /// until the tasks are all in, one more arrives (with `recheck`), none
    /// came for that long, or `deadline`.
    fn spin_while_arriving(
        &self,
        arrivals: &mut u64,
        progress_at: &mut Instant,
        deadline: Instant,
        recheck: bool,
    ) {
        loop {
            thread::yield_now();
            if self.tasks_in.load(Ordering::SeqCst) {
                return;
            }
            let now = Instant::now();
            let seen = self.arrivals_seen.load(Ordering::SeqCst);
            if seen != *arrivals {
                *arrivals = seen;
                *progress_at = now;
                if recheck {
                    return;
                }
            }
            if now.duration_since(*progress_at) >= GATHER_SPIN_IDLE || now >= deadline {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, CommitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Highest durable id: readers never see past it.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Blocks until `id`, staged under `epoch`, is durable. `flush` writes
    /// and syncs everything staged and returns the highest id it made
    /// durable; it runs on at most one thread at a time.
    pub(crate) fn wait_durable(
        &self,
        id: u64,
        epoch: u64,
        flush: impl Fn() -> Result<u64>,
    ) -> Result<()> {
        let me = thread::current();
        let mut st = self.lock();
        let mut registered = false;
        loop {
            if st.epoch != epoch {
                return Err(Error::PreviousIo);
            }
            if st.durable >= id {
                return Ok(());
            }
            if st.failed {
                return Err(Error::PreviousIo);
            }
            if st.leader {
                if !registered {
                    st.push_waiter(id, Waiter::Thread(me.clone()));
                    registered = true;
                    self.arrivals_seen.fetch_add(1, Ordering::SeqCst);
                    self.nudge_gatherer();
                }
                drop(st);
                // Unparked when covered, failed, reset or chosen to lead; a
                // spurious return just checks again.
                thread::park();
                st = self.lock();
                continue;
            }
            st.leader = true;
            if registered {
                st.waiters
                    .retain(|(_, w)| !matches!(w, Waiter::Thread(t) if t.id() == me.id()));
                registered = false;
            }
            st = self.gather(st);
            drop(st);
            let result = flush();
            self.end_flush(epoch, result)?;
            st = self.lock();
        }
    }

    /// Ends a flush this thread led for appenders of `epoch`: publishes what
    /// it made durable and wakes whom that covers, or, if it failed,
    /// fail-stops the handle and wakes everyone. Returns the leader's error
    /// (`PreviousIo` if the log was recovered meanwhile: what this flush did
    /// belongs to the past).
    fn end_flush(&self, epoch: u64, result: Result<u64>) -> Result<()> {
        let mut st = self.lock();
        st.leader = false;
        if st.epoch != epoch {
            st.wake_all();
            return Err(Error::PreviousIo);
        }
        match result {
            Ok(durable) => {
                let covered = self.publish_locked(&mut st, durable);
                drop(st);
                covered.wake();
                Ok(())
            }
            Err(e) => {
                st.failed = true;
                st.wake_all();
                Err(e)
            }
        }
    }

    /// A token for [`GroupCommit::poll_durable`] (no lock: one per async
    /// append).
    pub(crate) fn task_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers the thread that leads for tasks (`log/append.rs` starts one).
    pub(crate) fn set_flusher(&self, t: Thread) {
        self.lock().flusher = Some(t);
    }

    /// The non-blocking [`GroupCommit::wait_durable`] of a task: ready when
    /// `id` is durable (or can no longer be); otherwise registers `cx`'s
    /// waker under `token` and, if no flush runs, wakes the flusher.
    /// `registered`: an earlier poll of this future returned `Pending`
    /// (only then can `token` be among the waiters, so a first poll, the
    /// usual case, does not search them).
    pub(crate) fn poll_durable(
        &self,
        id: u64,
        epoch: u64,
        token: u64,
        registered: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<()>> {
        let mut st = self.lock();
        if st.epoch != epoch || st.failed {
            return Poll::Ready(Err(Error::PreviousIo));
        }
        if st.durable >= id {
            return Poll::Ready(Ok(()));
        }
        let mine = if registered {
            st.waiters.iter_mut().find_map(|(_, w)| match w {
                Waiter::Task { token: t, waker } if *t == token => Some(waker),
                _ => None,
            })
        } else {
            None
        };
        match mine {
            Some(w) => {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
            }
            None => {
                st.push_waiter(
                    id,
                    Waiter::Task {
                        token,
                        waker: cx.waker().clone(),
                    },
                );
                self.arrivals_seen.fetch_add(1, Ordering::SeqCst);
                // Wake a gathering leader only when its wait for tasks is
                // over, not once a task (a futex call each).
                if st.tasks >= st.tasks_seen {
                    self.tasks_in.store(true, Ordering::SeqCst);
                    self.nudge_gatherer();
                }
            }
        }
        if !st.leader {
            st.unpark_flusher();
        }
        Poll::Pending
    }

    /// The future of task waiter `token` was dropped before `id` was
    /// durable: nobody is left to wake, but the records are staged, so the
    /// flusher still syncs them.
    pub(crate) fn abandon_task(&self, id: u64, epoch: u64, token: u64) {
        let mut st = self.lock();
        st.remove_task(token);
        if st.epoch != epoch || st.failed || st.durable >= id {
            return;
        }
        st.push_waiter(
            id,
            Waiter::Task {
                token,
                waker: Waker::noop().clone(),
            },
        );
        if !st.leader {
            st.unpark_flusher();
        }
    }

    /// One round of the flusher thread: leads a flush for task waiters
    /// when no flush runs and the handle is healthy. Returns whether there
    /// was anything to do (if not, the flusher parks until a task waits).
    ///
    /// It leads not only for tasks already waiting but also when tasks
    /// waited at the last publish: those it acknowledged are about to
    /// re-stage, and the gather waits for them (see the module docs).
    /// Leading at once, instead of parking until the first of them wakes
    /// the flusher, saves a thread wake-up per fsync. If none comes back
    /// within the gather's bound, it syncs nothing and stops leading.
    pub(crate) fn lead_for_tasks(&self, flush: impl FnOnce(u64) -> Result<u64>) -> bool {
        let mut st = self.lock();
        if st.leader || st.failed {
            return false;
        }
        if st.tasks == 0 && st.tasks_seen == 0 {
            return false;
        }
        st.leader = true;
        st = self.gather(st);
        if st.failed || st.tasks == 0 {
            // Nobody came back: the tasks are done (or stopped appending).
            st.leader = false;
            st.tasks_seen = 0;
            st.hand_off();
            return false;
        }
        let epoch = st.epoch;
        drop(st);
        let result = flush(epoch);
        // A failure reaches the tasks through the failed state.
        let _ = self.end_flush(epoch, result);
        true
    }

    /// Records that everything up to `durable` is on disk (used by the roll,
    /// which syncs outside the leader protocol).
    pub(crate) fn publish(&self, durable: u64) {
        let mut st = self.lock();
        let covered = self.publish_locked(&mut st, durable);
        drop(st);
        covered.wake();
    }

    fn publish_locked(&self, st: &mut CommitState, durable: u64) -> Covered {
        if durable > st.durable {
            st.durable = durable;
            self.visible.store(durable, Ordering::Release);
        }
        st.take_covered()
    }

    /// Marks the handle fail-stopped and wakes every waiter.
    pub(crate) fn fail(&self) {
        let mut st = self.lock();
        st.failed = true;
        st.wake_all();
    }

    /// Starts a new epoch after recovery: `durable` is what recovery found on
    /// disk, and the handle takes appends again. Returns the new epoch.
    /// Callers hold the write path's `io` and `state` locks.
    pub(crate) fn reset(&self, durable: u64) -> u64 {
        let mut st = self.lock();
        st.epoch += 1;
        st.failed = false;
        st.durable = durable;
        self.visible.store(durable, Ordering::Release);
        st.wake_all();
        st.epoch
    }

    /// Whether the handle is fail-stopped.
    pub(crate) fn failed(&self) -> bool {
        self.lock().failed
    }
}
