//! The append path of [`Log`]: validating, encoding and staging a batch,
//! waiting for its group commit (blocking, or as a future for async
//! callers), and the flusher thread that leads commits for those futures.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{Error, Result};
use crate::group_commit::Entered;
use crate::index::terms::{TermSource, Terms};
use crate::record::{NewRecord, Record};
use crate::writer::{beside, DEFER_INDEX_MIN_RECORDS};

use super::{lock, Inner, Log, MAX_BATCH_RECORDS};

/// A durable batch as [`Log::append_stored`] returns it: its ids, and its
/// records decoded on demand.
#[derive(Debug)]
pub struct Appended {
    first: u64,
    /// ts of each record, in id order.
    stamps: Vec<i64>,
    /// MessagePack payload of each record, in id order.
    payloads: Vec<Vec<u8>>,
    dir: Arc<Path>,
}

impl Appended {
    /// The ids assigned, in order (empty for an empty batch).
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.first..self.first + self.payloads.len() as u64
    }

    /// The records as stored (ids, ts, default actor, redacted metadata).
    pub fn records(&self) -> Result<Vec<Record>> {
        self.stamps
            .iter()
            .zip(&self.payloads)
            .zip(self.ids())
            .map(|((ts, payload), id)| {
                Record::decode(id, *ts, payload).map_err(|why| {
                    Error::corruption(&*self.dir, 0, format!("record {id} just written: {why}"))
                })
            })
            .collect()
    }
}

/// Who stages a batch: the write path treats the two differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Appender {
    /// A blocking [`Log::append`] caller: counted in for a leader's gather
    /// of threads (see `group_commit.rs`) and indexes its own batch.
    Thread,
    /// An [`Log::append_async`] caller: gathered by the number of waiting
    /// tasks instead (counting each in would make each wake a gathering
    /// leader), and its batch is indexed by the flush that syncs it.
    Task,
}

/// The index terms of a batch of new records.
fn terms_of(batch: &[NewRecord]) -> Terms {
    let sources: Vec<TermSource<'_>> = batch.iter().map(TermSource::of_new).collect();
    let mut terms =
        Terms::with_capacity(batch.len(), sources.iter().map(TermSource::text_len).sum());
    for src in sources {
        terms.add(src);
    }
    terms
}

/// A batch staged for the next flush.
struct Staged<'a> {
    last: u64,
    epoch: u64,
    stamps: Vec<i64>,
    payloads: Vec<Vec<u8>>,
    /// Dropped once the appender waits (see `group_commit.rs`).
    entered: Option<Entered<'a>>,
}

/// The durable completion of [`Log::append_async`]: the batch as stored, or
/// why not (the errors of [`Log::append`]).
#[derive(Debug)]
#[must_use = "the ids arrive only when the future is awaited"]
pub struct AppendFuture(Pending);

#[derive(Debug)]
enum Pending {
    /// Known at the call: an empty batch or an error.
    Ready(Option<Result<Appended>>),
    /// Staged; waiting for its fsync.
    Waiting {
        inner: Arc<Inner>,
        first: u64,
        last: u64,
        epoch: u64,
        token: u64,
        /// A poll returned `Pending`: the waker is registered under `token`.
        registered: bool,
        stamps: Vec<i64>,
        payloads: Vec<Vec<u8>>,
    },
}

impl Future for AppendFuture {
    type Output = Result<Appended>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ready = match &mut self.0 {
            Pending::Ready(r) => {
                return Poll::Ready(r.take().unwrap_or(Err(Error::PreviousIo)));
            }
            Pending::Waiting {
                inner,
                first,
                last,
                epoch,
                token,
                registered,
                stamps,
                payloads,
            } => match inner
                .commit
                .poll_durable(*last, *epoch, *token, *registered, cx)
            {
                Poll::Pending => {
                    *registered = true;
                    return Poll::Pending;
                }
                Poll::Ready(r) => r.map(|()| {
                    inner
                        .io_counters
                        .records_appended
                        .fetch_add(payloads.len() as u64, Ordering::Relaxed);
                    Appended {
                        first: *first,
                        stamps: std::mem::take(stamps),
                        payloads: std::mem::take(payloads),
                        dir: inner.dir.clone(),
                    }
                }),
            },
        };
        // Finished: nothing left to forget on drop.
        self.0 = Pending::Ready(None);
        Poll::Ready(ready)
    }
}

impl Drop for AppendFuture {
    fn drop(&mut self) {
        if let Pending::Waiting {
            inner,
            last,
            epoch,
            token,
            ..
        } = &self.0
        {
            inner.commit.abandon_task(*last, *epoch, *token);
        }
    }
}

/// The flusher's loop: leads flushes for task waiters while there are any
/// (see [`GroupCommit::lead_for_tasks`]), parks when there are none. Exits
/// when the last handle is dropped.
fn flusher(inner: &Inner) {
    let stop = || inner.flusher_stop.load(Ordering::Acquire);
    while !stop() {
        // Checked again before parking: the gather's own park may have
        // taken the unpark that came with the stop.
        if !inner.commit.lead_for_tasks(|epoch| inner.flush(epoch)) && !stop() {
            std::thread::park();
        }
    }
}

impl Log {
    /// Appends a batch atomically and durably; returns the assigned ids in order.
    ///
    /// Every record is validated first: one invalid record rejects the whole
    /// batch with [`Error::Invalid`] and nothing is written. The call returns
    /// only after the batch's bytes are fdatasynced; across a crash a batch
    /// whose append did not return is either entirely present or entirely
    /// absent. An empty batch returns no ids and does no I/O.
    pub fn append(&self, batch: &[NewRecord]) -> Result<Vec<u64>> {
        Ok(self.append_inner(batch, None)?.ids().collect())
    }

    /// Like [`Log::append`], but returns the records as stored (ids, ts,
    /// default actor, redacted metadata), e.g. to publish them.
    pub fn append_records(&self, batch: &[NewRecord]) -> Result<Vec<Record>> {
        self.append_stored(batch)?.records()
    }

    /// Like [`Log::append`], but keeps the stored payloads, so the caller
    /// can decide after the append whether it needs the records at all
    /// ([`Appended::records`]) — e.g. only when someone is listening.
    pub fn append_stored(&self, batch: &[NewRecord]) -> Result<Appended> {
        self.append_inner(batch, None)
    }

    /// Appends records with given timestamps (µs), for importing history:
    /// demo data, a migration, a benchmark's fixed workload. Each ts is raised
    /// to the previous record's if lower, so ts still never decreases with id.
    /// Otherwise exactly [`Log::append`].
    pub fn append_at(&self, batch: &[(i64, NewRecord)]) -> Result<Vec<u64>> {
        let ts: Vec<i64> = batch.iter().map(|(t, _)| *t).collect();
        let records: Vec<NewRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        Ok(self.append_inner(&records, Some(&ts))?.ids().collect())
    }

    /// Appends and waits for the batch's fsync (the blocking path).
    fn append_inner(&self, batch: &[NewRecord], ts: Option<&[i64]>) -> Result<Appended> {
        let Some(staged) = self.stage_batch(batch, ts, Appender::Thread)? else {
            return Ok(self.appended_nothing());
        };
        let inner = &self.inner;
        let epoch = staged.epoch;
        inner
            .commit
            .wait_durable(staged.last, epoch, || inner.flush(epoch))?;
        drop(staged.entered);
        inner
            .io_counters
            .records_appended
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(Appended {
            first: staged.last + 1 - batch.len() as u64,
            stamps: staged.stamps,
            payloads: staged.payloads,
            dir: inner.dir.clone(),
        })
    }

    /// The result of appending an empty batch.
    fn appended_nothing(&self) -> Appended {
        Appended {
            first: 1,
            stamps: Vec::new(),
            payloads: Vec::new(),
            dir: self.inner.dir.clone(),
        }
    }

    /// Validates, encodes and stages `batch` (`None` for an empty one).
    fn stage_batch(
        &self,
        batch: &[NewRecord],
        ts: Option<&[i64]>,
        appender: Appender,
    ) -> Result<Option<Staged<'_>>> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        if batch.is_empty() {
            return Ok(None);
        }
        if batch.len() > MAX_BATCH_RECORDS {
            return Err(Error::Config(format!(
                "a batch holds at most {MAX_BATCH_RECORDS} records, this one {}",
                batch.len()
            )));
        }
        // Counted in until the appender waits: a commit leader waits
        // (briefly) for appenders between here and their wait.
        let entered = (appender == Appender::Thread).then(|| self.inner.commit.enter());
        let encode = || {
            batch
                .iter()
                .enumerate()
                .map(|(index, r)| {
                    r.encode_payload()
                        .map_err(|source| Error::Invalid { index, source })
                })
                .collect::<Result<Vec<_>>>()
        };
        // A large batch is indexed during its fdatasync (see `writer.rs`);
        // its terms are extracted on a second thread while this one encodes.
        // The terms are three buffers, so freeing them elsewhere is cheap (the
        // payloads, one allocation a record, stay on this thread).
        let (terms, payloads) = if batch.len() >= DEFER_INDEX_MIN_RECORDS {
            beside(|| terms_of(batch), encode)
        } else {
            (terms_of(batch), encode())
        };
        let payloads = payloads?;
        // Tasks leave their index insert to the flusher, which does it during
        // the fdatasync: a task's re-stage is then only encode + copy, and the
        // `state` lock is held for less.
        let defer_index = appender == Appender::Task;
        let (last, stamps, epoch) = self.inner.stage(&payloads, terms, ts, defer_index)?;
        Ok(Some(Staged {
            last,
            epoch,
            stamps,
            payloads,
            entered,
        }))
    }

    /// Appends a batch like [`Log::append_stored`], for callers that must
    /// not block: the records are validated, encoded and staged before this
    /// returns (errors then come out of the first poll), and the future
    /// completes with them once they are fdatasynced.
    ///
    /// Concurrent async appenders share fsyncs with each other and with
    /// blocking ones. A thread of the log's own does the writing and syncing
    /// for them (started with the first call; the last handle's drop syncs what is
    /// staged, then stops it), so
    /// a task costs no thread switch of its own; `benches/README.md` has the
    /// figures. The future needs no particular executor.
    ///
    /// Dropping the future does not withdraw the records: they were staged,
    /// and the flusher still makes them durable and visible.
    pub fn append_async(&self, batch: &[NewRecord]) -> AppendFuture {
        let staged = match self.stage_batch(batch, None, Appender::Task) {
            Ok(Some(staged)) => staged,
            Ok(None) => return AppendFuture(Pending::Ready(Some(Ok(self.appended_nothing())))),
            Err(e) => return AppendFuture(Pending::Ready(Some(Err(e)))),
        };
        let token = self.inner.commit.task_token();
        if !self.inner.flusher_started.load(Ordering::Acquire) {
            self.start_flusher();
        }
        let first = staged.last + 1 - batch.len() as u64;
        AppendFuture(Pending::Waiting {
            inner: self.inner.clone(),
            first,
            last: staged.last,
            epoch: staged.epoch,
            token,
            registered: false,
            stamps: staged.stamps,
            payloads: staged.payloads,
        })
    }

    /// Starts the thread that leads flushes for async appenders; the last
    /// handle's drop stops and joins it.
    fn start_flusher(&self) {
        // Under the handle's mutex: concurrent first calls start one thread.
        let mut slot = lock(&self.inner.flusher);
        if self.inner.flusher_started.load(Ordering::Acquire) {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("actlog-flusher".into())
            .spawn(move || flusher(&inner));
        match spawned {
            Ok(h) => {
                self.inner.commit.set_flusher(h.thread().clone());
                *slot = Some(h);
                self.inner.flusher_started.store(true, Ordering::Release);
            }
            // Without it, async appends could wait forever: fail-stop
            // instead, so they (and every later append) return an error.
            Err(_) => self.inner.commit.fail(),
        }
    }

    /// Appends one record; see [`Log::append`].
    pub fn append_one(&self, record: &NewRecord) -> Result<u64> {
        let ids = self.append(std::slice::from_ref(record))?;
        Ok(ids[0])
    }
}
