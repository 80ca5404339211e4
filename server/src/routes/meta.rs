//! Health, metrics, the OpenAPI document and the embedded web UI.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::metrics::EngineGauges;
use crate::AppState;

/// `GET /healthz`
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /metrics` (Prometheus text).
pub async fn metrics(State(app): State<AppState>) -> Response {
    let log = app.log().clone();
    let gauges = tokio::task::spawn_blocking(move || {
        let io = log.io_stats();
        let s = log.stats().unwrap_or_default();
        EngineGauges {
            entries: s.entries,
            segments: s.segments as u64,
            bytes: s.bytes,
            fsyncs: io.fsyncs,
            fsync_micros_total: io.fsync_micros_total,
            fsync_micros_max: io.fsync_micros_max,
        }
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&gauges),
    )
        .into_response()
}

/// `GET /api/v1/openapi.json`
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// The embedded web UI files: (name, content type, bytes).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "bus.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/bus.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
];

/// `GET /`
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../assets/index.html"),
    )
        .into_response()
}

/// `GET /assets/{file}`
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ctype, body)) => ([(header::CONTENT_TYPE, *ctype)], *body).into_response(),
        None => ApiError::not_found(format!("no asset `{file}`")).into_response(),
    }
}

/// Anything else.
pub async fn not_found() -> Response {
    let mut r = ApiError::not_found("no such endpoint; see /api/v1/openapi.json").into_response();
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}
