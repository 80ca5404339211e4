//! The recorder: one path into the log for ingest and for the server's own
//! events, and the live bus behind it.
//!
//! * [`Recorder::ingest`] awaits durability (201 means fsynced) and fails the
//!   caller on error.
//! * [`Recorder::record`] is best-effort and never blocks or fails its caller:
//!   callable from any thread, async or not, it queues the event for a
//!   dedicated writer thread; failures are logged and counted.
//! * [`Recorder::record_durable`] records and waits (shutdown, settings).
//!
//! Records are published on the bus only after they are durable. The actor of
//! an internal event is, unless it names one, the request's (see [`ACTOR`]),
//! else `system`.
//!
//! Provenance: every record the recorder appends says who handed it over
//! (`recorded_by`). [`Recorder::ingest`] stamps a client batch with the id of
//! the key that sent it; [`Recorder::record`], [`Recorder::record_durable`]
//! and [`Recorder::clear`] stamp the server's own events with
//! [`RECORDED_BY_SERVER`]. Both overwrite whatever the record held, so no
//! path into the log leaves the choice to its caller.
//!
//! Self-healing: after a write or fsync error (a full disk) the engine's
//! handle is fail-stopped and every append answers 503. Before each append
//! the recorder checks for that state and, at most once per
//! [`RECOVER_EVERY`], calls [`Log::recover`], which re-runs crash recovery
//! on the directory under the engine's write locks (so it never races an
//! append) and swaps the recovered state in. Once space is back the next
//! request succeeds; nobody has to restart the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actlog_engine::{Log, NewRecord, Record};

use crate::combine::Combiner;

use crate::bus::{Bus, BusMessage};
use crate::error::ApiError;
use crate::metrics::Metrics;

tokio::task_local! {
    /// The actor of the request being served: set where the key is verified.
    pub static ACTOR: String;
}

/// The actor of the current request, or `system`.
pub fn current_actor() -> String {
    ACTOR
        .try_with(|a| a.clone())
        .unwrap_or_else(|_| actlog_engine::SYSTEM_ACTOR.to_string())
}

/// The `recorded_by` of every record the server writes about itself (key
/// ids are `key_<hex>`, so no key can have it).
pub const RECORDED_BY_SERVER: &str = "server";

/// Marks `rec` as the server's own, with the request's actor if it names none.
fn as_servers_own(rec: &mut NewRecord, actor: impl FnOnce() -> String) {
    if rec.actor.is_none() {
        rec.actor = Some(actor());
    }
    rec.recorded_by = Some(RECORDED_BY_SERVER.to_string());
}

/// Least time between two attempts to recover a fail-stopped log.
pub const RECOVER_EVERY: Duration = Duration::from_millis(500);

/// Events queued for the writer thread before `record` starts dropping them.
const QUEUE: usize = 10_000;

/// A cheap, cloneable handle.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Log,
    bus: Bus,
    metrics: Arc<Metrics>,
    enabled: AtomicBool,
    queue: SyncSender<NewRecord>,
    /// Every append holds it shared; a clear holds it exclusively, so the
    /// record announcing the clear is the first one after it.
    gate: RwLock<()>,
    /// Ingest requests waiting to be appended together.
    combiner: Combiner,
    /// When recovery of a fail-stopped log was last tried.
    last_recovery: Mutex<Option<Instant>>,
}

impl Recorder {
    /// Starts the writer thread.
    pub fn new(log: Log, bus: Bus, metrics: Arc<Metrics>, enabled: bool) -> Recorder {
        let (tx, rx) = sync_channel(QUEUE);
        let inner = Arc::new(Inner {
            log,
            bus,
            metrics,
            enabled: AtomicBool::new(enabled),
            queue: tx,
            gate: RwLock::new(()),
            combiner: Combiner::default(),
            last_recovery: Mutex::new(None),
        });
        let worker = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("actlog-recorder".into())
            .spawn(move || writer_thread(worker, rx))
            .ok();
        Recorder { inner }
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// Whether recording is on.
    pub fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Acquire)
    }

    /// Turns recording on or off (settings apply this).
    pub fn set_enabled(&self, on: bool) {
        self.inner.enabled.store(on, Ordering::Release);
    }

    /// Appends a client batch durably and publishes it, every record
    /// `recorded_by` the key `key_id` that sent it. 409 when recording is off.
    pub async fn ingest(
        &self,
        mut batch: Vec<NewRecord>,
        key_id: &str,
    ) -> Result<Vec<u64>, ApiError> {
        if !self.enabled() {
            return Err(ApiError::recording_disabled());
        }
        for rec in &mut batch {
            rec.recorded_by = Some(key_id.to_string());
        }
        let n = batch.len() as u64;
        let ids = self.append(batch).await?;
        self.inner
            .metrics
            .ingest_records
            .fetch_add(n, Ordering::Relaxed);
        Ok(ids)
    }

    /// Appends through the [`Combiner`]: concurrent requests share one
    /// engine batch and one fsync. The worker publishes the records once
    /// they are durable.
    async fn append(&self, batch: Vec<NewRecord>) -> Result<Vec<u64>, ApiError> {
        let started = Instant::now();
        let (reply, start_worker) = self.inner.combiner.submit(batch);
        if start_worker {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || {
                inner.combiner.work(|b| inner.append_and_publish(b));
            });
        }
        let ids = reply.await.map_err(|_| {
            ApiError::internal("the append worker stopped; the record was not saved")
        })??;
        self.inner.metrics.append_latency.observe(started.elapsed());
        Ok(ids)
    }

    /// Best-effort: queue an internal event; never blocks, never fails.
    pub fn record(&self, mut rec: NewRecord) {
        if !self.enabled() {
            return;
        }
        as_servers_own(&mut rec, current_actor);
        match self.inner.queue.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) | Err(TrySendError::Disconnected(r)) => {
                self.inner
                    .metrics
                    .record_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(action = %r.action, "recorder queue unavailable; event dropped");
            }
        }
    }

    /// Records an internal event and waits until it is durable (or failed).
    /// `force` records even while recording is off (used for the event that
    /// announces turning it off).
    pub async fn record_durable(&self, mut rec: NewRecord, force: bool) -> bool {
        if !force && !self.enabled() {
            return false;
        }
        as_servers_own(&mut rec, current_actor);
        match self.append(vec![rec]).await {
            Ok(_) => true,
            Err(e) => {
                self.inner
                    .metrics
                    .record_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e.message, "could not record an internal event");
                false
            }
        }
    }

    /// Clears the log and then records `announce(cleared)` (unless recording
    /// is off) with no other append in between: API.md makes
    /// `system.activity_cleared` the first record after a clear, also while
    /// clients keep ingesting. Publishes `ActivityCleared`, then the record.
    pub async fn clear(
        &self,
        announce: impl FnOnce(u64) -> NewRecord + Send + 'static,
    ) -> Result<u64, ApiError> {
        let inner = self.inner.clone();
        let actor = current_actor();
        let (cleared, recorded) = tokio::task::spawn_blocking(move || {
            let _exclusive = inner.gate.write().unwrap_or_else(|e| e.into_inner());
            inner.heal();
            let cleared = inner.log.clear()?;
            if !inner.enabled.load(Ordering::Acquire) {
                return Ok((cleared, None));
            }
            let mut rec = announce(cleared);
            as_servers_own(&mut rec, || actor);
            Ok::<_, actlog_engine::Error>((cleared, Some(inner.log.append_records(&[rec]))))
        })
        .await
        .map_err(|e| ApiError::internal(format!("clear task failed: {e}")))??;
        self.inner.bus.publish(BusMessage::ActivityCleared);
        match recorded {
            Some(Ok(records)) => self.inner.publish(&records),
            Some(Err(e)) => {
                self.inner
                    .metrics
                    .record_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "could not record the clear");
            }
            None => {}
        }
        Ok(cleared)
    }
}

impl Inner {
    /// Appends durably, then publishes the records on the bus. They are
    /// decoded only if someone is subscribed when the append has returned:
    /// a subscriber that comes later reads them from the log (see
    /// `routes/live.rs`), since they are already visible.
    fn append_and_publish(&self, batch: &[NewRecord]) -> Result<Vec<u64>, actlog_engine::Error> {
        let appended = {
            let _shared = self.gate.read().unwrap_or_else(|e| e.into_inner());
            self.heal();
            self.log.append_stored(batch)?
        };
        if self.bus.has_subscribers() {
            match appended.records() {
                Ok(records) => self.publish(&records),
                Err(e) => tracing::error!(error = %e, "could not publish records just appended"),
            }
        }
        Ok(appended.ids().collect())
    }

    /// If the log is fail-stopped, tries (rate-limited) to recover it.
    fn heal(&self) {
        if !self.log.is_failed() {
            return;
        }
        {
            let mut last = self.last_recovery.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < RECOVER_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.log.recover() {
            Ok(Some(report)) => {
                self.metrics
                    .storage_recoveries
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    records = report.records,
                    torn_tail = ?report.torn_tail,
                    removed_temp_files = report.removed_temp_files.len(),
                    "storage recovered: the log was re-opened after a write failure"
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "storage still failing; will retry recovery");
            }
        }
    }

    fn publish(&self, records: &[Record]) {
        if self.bus.has_subscribers() {
            for r in records {
                self.bus
                    .publish(BusMessage::ActivityLogged(Arc::new(r.clone())));
            }
        }
    }
}

fn writer_thread(inner: std::sync::Weak<Inner>, rx: Receiver<NewRecord>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 1000 {
                break;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        match inner.append_and_publish(&batch) {
            Ok(_) => {}
            Err(e) => {
                inner
                    .metrics
                    .record_failures
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, count = batch.len(), "could not record internal events");
            }
        }
    }
}
