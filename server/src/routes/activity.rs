//! Ingest, list, get, export, facets, histogram, stats.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actlog_engine::export::{write_csv_row, CSV_COLUMNS};
use actlog_engine::{Field, Query, RecordView, DEFAULT_LIMIT};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;

use super::{blocking, parse_body, path_param, read_task};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::{format_ts, parse_events, record_value, RecordOut};
use crate::keys::Role;
use crate::params::{self, bucket_us, encode_cursor};
use crate::AppState;

/// `POST /api/v1/activity`
pub async fn ingest(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let result = async {
        let who = caller.require(Role::Writer)?;
        let label = who.key.label.clone();
        let events =
            parse_body(&app, body, app.body_limit, move |b| parse_events(b, &label)).await?;
        app.recorder.ingest(events, &who.key.id).await
    }
    .await;
    match result {
        Ok(ids) => {
            app.metrics.ingest_requests.fetch_add(1, Ordering::Relaxed);
            Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response())
        }
        Err(e) => {
            app.metrics.ingest_rejected.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// `GET /api/v1/activity`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Role::Reader)?;
    let p = params::parse(raw.as_deref().unwrap_or(""))?;
    let q = Query {
        selection: p.selection,
        order: p.order,
        limit: p.limit.unwrap_or(DEFAULT_LIMIT),
        cursor: p.cursor,
    };
    let log = app.log().clone();
    let started = Instant::now();
    // The page's records go from their stored bytes straight into the JSON
    // body, without an owned record in between.
    let body = read_task(move || -> Result<Vec<u8>, ApiError> {
        let page = log.query_buf(&q)?;
        let mut out = Vec::with_capacity(256 + 512 * page.len());
        out.extend_from_slice(b"{\"items\":[");
        for (i, v) in page.views().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let v = v?;
            RecordOut::from(v).write_json(&mut out).map_err(|e| {
                ApiError::internal(format!("record {} cannot be written: {e}", v.id))
            })?;
        }
        out.extend_from_slice(b"],\"next_cursor\":");
        match &page.next_cursor {
            Some(c) => {
                out.push(b'"');
                out.extend_from_slice(encode_cursor(c).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Ok(out)
    })
    .await??;
    app.metrics.query_latency.observe(started.elapsed());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/v1/activity/{id}`
pub async fn get_one(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Reader)?;
    let id = path_param(id, "id")?;
    let not_found = || ApiError::not_found(format!("no record with id `{id}`"));
    let n: u64 = id.parse().map_err(|_| not_found())?;
    let log = app.log().clone();
    match blocking(move || log.get(n)).await? {
        Some(r) => Ok(Json(record_value(&r))),
        None => Err(not_found()),
    }
}

/// `GET /api/v1/activity/stats`
pub async fn stats(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Reader)?;
    let log = app.log().clone();
    let s = blocking(move || log.stats()).await?;
    Ok(Json(json!({
        "entries": s.entries,
        "segments": s.segments,
        "bytes": s.bytes,
        "oldest_id": s.oldest.map(|o| o.0),
        "newest_id": s.newest.map(|n| n.0),
        "oldest_ts": s.oldest.map(|o| format_ts(o.1)),
        "newest_ts": s.newest.map(|n| format_ts(n.1)),
    })))
}

/// `GET /api/v1/activity/facets/{field}`
pub async fn facets(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    field: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Reader)?;
    let field = path_param(field, "field")?;
    let f: Field = field
        .parse()
        .map_err(|m: String| ApiError::invalid("field", m))?;
    let p = params::parse(raw.as_deref().unwrap_or(""))?;
    let limit = p.limit.unwrap_or(10);
    let prefix = p.prefix.unwrap_or_default();
    let log = app.log().clone();
    let started = Instant::now();
    let values = blocking(move || log.facets(f, &p.selection, &prefix, limit)).await?;
    app.metrics.query_latency.observe(started.elapsed());
    let values: Vec<Value> = values
        .into_iter()
        .map(|v| json!({"value": v.value, "count": v.count}))
        .collect();
    Ok(Json(json!({"field": f.as_str(), "values": values})))
}

/// `GET /api/v1/activity/histogram`
pub async fn histogram(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Reader)?;
    let p = params::parse(raw.as_deref().unwrap_or(""))?;
    let bucket = p.bucket.clone().unwrap_or_else(|| "1h".into());
    let size = bucket_us(&bucket).ok_or_else(|| {
        ApiError::invalid("bucket", "`bucket` must be one of 1m, 5m, 15m, 1h, 6h, 1d")
    })?;
    let now = actlog_engine::now_us();
    let until = p.selection.until.unwrap_or(now);
    let since = p.selection.since.unwrap_or(until - 24 * 3_600_000_000);
    if since > until {
        return Err(ApiError::invalid(
            "until",
            "`until` must not be earlier than `since`",
        ));
    }
    let log = app.log().clone();
    let started = Instant::now();
    let sel = p.selection;
    let buckets = blocking(move || log.histogram(&sel, size, since, until)).await?;
    app.metrics.query_latency.observe(started.elapsed());
    let buckets: Vec<Value> = buckets
        .into_iter()
        .map(|b| json!({"start": format_ts(b.start), "count": b.count}))
        .collect();
    Ok(Json(json!({"bucket": bucket, "buckets": buckets})))
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV, formula-injection safe.
    Csv,
    /// One JSON array.
    Json,
    /// One record per line.
    Ndjson,
}

const CHUNK: usize = 64 << 10;

/// An `io::Write` that hands the response body over in ~64 KiB chunks, so an
/// export of any size uses constant memory; a closed channel (client gone)
/// is a write error that stops the export.
struct ChunkSink {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl ChunkSink {
    /// Hands the buffer over once it holds a chunk.
    fn flush_if_full(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= CHUNK {
            std::io::Write::flush(self)?;
        }
        Ok(())
    }
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

fn write_export(
    log: &actlog_engine::Log,
    selection: actlog_engine::Selection,
    order: actlog_engine::Order,
    format: Format,
    sink: &mut ChunkSink,
) -> std::io::Result<()> {
    use std::io::Write as _;
    // Pages are read undecoded and each record is written from its stored
    // bytes (see `Log::scan_pages`).
    let each = |f: &mut dyn FnMut(RecordView<'_>) -> std::io::Result<()>| {
        for page in log.scan_pages(selection, order) {
            let page = page.map_err(|e| std::io::Error::other(e.to_string()))?;
            for v in page.views() {
                f(v.map_err(|e| std::io::Error::other(e.to_string()))?)?;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    match format {
        // Rows are written straight into the sink's buffer too
        // (`write_csv_row` makes what the csv crate makes of the cells).
        Format::Csv => {
            sink.buf.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
            sink.buf.push(b'\n');
            let mut scratch = Vec::new();
            each(&mut |v| {
                write_csv_row(&mut sink.buf, &v, &mut scratch);
                sink.flush_if_full()
            })?;
        }
        // JSON goes straight into the sink's buffer (a `Vec`, whose writes
        // inline), not through `io::Write` call by call.
        Format::Json => {
            sink.buf.push(b'[');
            let mut first = true;
            each(&mut |v| {
                if !first {
                    sink.buf.push(b',');
                }
                first = false;
                RecordOut::from(v).write_json(&mut sink.buf)?;
                sink.flush_if_full()
            })?;
            sink.buf.push(b']');
        }
        Format::Ndjson => each(&mut |v| {
            RecordOut::from(v).write_json(&mut sink.buf)?;
            sink.buf.push(b'\n');
            sink.flush_if_full()
        })?,
    }
    sink.flush()
}

/// `GET /api/v1/activity/export`
pub async fn export(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Role::Reader)?;
    let p = params::parse(raw.as_deref().unwrap_or(""))?;
    let format = match p.format.as_deref().unwrap_or("ndjson") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        "ndjson" => Format::Ndjson,
        _ => {
            return Err(ApiError::invalid(
                "format",
                "`format` must be csv, json or ndjson",
            ))
        }
    };
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    let log = app.log().clone();
    let selection = p.selection;
    let order = p.order;
    tokio::task::spawn_blocking(move || {
        let mut sink = ChunkSink {
            buf: Vec::with_capacity(CHUNK),
            tx,
        };
        if let Err(e) = write_export(&log, selection, order, format, &mut sink) {
            // The client went away, or a read failed: end the stream with an error
            // so the download is visibly incomplete rather than silently short.
            tracing::warn!(error = %e, "export ended early");
            let _ = sink.tx.blocking_send(Err(e));
            return;
        }
        let _ = std::io::Write::flush(&mut sink);
    });
    let body = Body::from_stream(ReceiverStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"actlog-export.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}
