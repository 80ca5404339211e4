//! Prometheus text metrics: counters and small fixed-bucket histograms, kept
//! in atomics so recording costs a few nanoseconds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS_US: [u64; 10] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros() as u64;
        for (b, limit) in self.buckets.iter().zip(BUCKETS_US) {
            if us <= limit {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, limit) in self.buckets.iter().zip(BUCKETS_US) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {}",
                limit as f64 / 1e6,
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records accepted by `POST /activity`.
    pub ingest_records: AtomicU64,
    /// Successful ingest requests.
    pub ingest_requests: AtomicU64,
    /// Rejected ingest requests (4xx/5xx).
    pub ingest_rejected: AtomicU64,
    /// Internal events that could not be recorded.
    pub record_failures: AtomicU64,
    /// Records hidden by retention runs.
    pub retention_dropped: AtomicU64,
    /// Failed authentications.
    pub auth_failures: AtomicU64,
    /// Times a fail-stopped log was recovered without a restart.
    pub storage_recoveries: AtomicU64,
    /// Connections answered 503 because as many as allowed were open.
    pub connections_refused: AtomicU64,
    /// Connections closed after the idle timeout.
    pub connections_idle_closed: AtomicU64,
    /// Live streams (SSE, WebSocket) refused because as many as allowed were open.
    pub subscribers_refused: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Live streams (SSE, WebSocket) open now.
    pub subscribers_open: AtomicU64,
    /// Latency of list/facet/histogram queries.
    pub query_latency: Histogram,
    /// Latency of durable appends (includes the fsync).
    pub append_latency: Histogram,
}

/// Engine figures sampled when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct EngineGauges {
    /// Visible records.
    pub entries: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// fsyncs so far.
    pub fsyncs: u64,
    /// Total fsync time, µs.
    pub fsync_micros_total: u64,
    /// Longest fsync, µs.
    pub fsync_micros_max: u64,
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self, g: &EngineGauges) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 10] = [
            (
                "actlog_ingest_records_total",
                "Records accepted by POST /activity.",
                &self.ingest_records,
            ),
            (
                "actlog_ingest_requests_total",
                "Successful ingest requests.",
                &self.ingest_requests,
            ),
            (
                "actlog_ingest_rejected_total",
                "Rejected ingest requests.",
                &self.ingest_rejected,
            ),
            (
                "actlog_record_failures_total",
                "Internal events that could not be recorded.",
                &self.record_failures,
            ),
            (
                "actlog_retention_dropped_records_total",
                "Records removed by retention.",
                &self.retention_dropped,
            ),
            (
                "actlog_auth_failures_total",
                "Failed authentications.",
                &self.auth_failures,
            ),
            (
                "actlog_storage_recoveries_total",
                "Times the log recovered by itself after a write failure (disk full).",
                &self.storage_recoveries,
            ),
            (
                "actlog_connections_refused_total",
                "Connections refused because as many as allowed were open.",
                &self.connections_refused,
            ),
            (
                "actlog_connections_idle_closed_total",
                "Connections closed after the idle timeout.",
                &self.connections_idle_closed,
            ),
            (
                "actlog_subscribers_refused_total",
                "Live streams refused because as many as allowed were open.",
                &self.subscribers_refused,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            ("actlog_entries", "Visible records.", g.entries),
            (
                "actlog_connections_open",
                "Connections open now.",
                self.connections_open.load(Ordering::Relaxed),
            ),
            (
                "actlog_subscribers_open",
                "Live streams (SSE, WebSocket) open now.",
                self.subscribers_open.load(Ordering::Relaxed),
            ),
            ("actlog_segments", "Segment files.", g.segments),
            (
                "actlog_storage_bytes",
                "Bytes on disk (segments and indexes).",
                g.bytes,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(out, "# HELP actlog_fsync_total fdatasync calls by commit leaders.\n# TYPE actlog_fsync_total counter\nactlog_fsync_total {}", g.fsyncs);
        let _ = writeln!(out, "# HELP actlog_fsync_seconds_total Time spent in fdatasync.\n# TYPE actlog_fsync_seconds_total counter\nactlog_fsync_seconds_total {}", g.fsync_micros_total as f64 / 1e6);
        let _ = writeln!(out, "# HELP actlog_fsync_seconds_max Longest fdatasync.\n# TYPE actlog_fsync_seconds_max gauge\nactlog_fsync_seconds_max {}", g.fsync_micros_max as f64 / 1e6);
        let _ = writeln!(out, "# HELP actlog_query_duration_seconds Latency of queries.\n# TYPE actlog_query_duration_seconds histogram");
        self.query_latency
            .render(&mut out, "actlog_query_duration_seconds", "");
        let _ = writeln!(out, "# HELP actlog_append_duration_seconds Latency of durable appends.\n# TYPE actlog_append_duration_seconds histogram");
        self.append_latency
            .render(&mut out, "actlog_append_duration_seconds", "");
        out
    }
}
