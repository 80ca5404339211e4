//! The routes of API.md (and the extensions in docs/API.md), one module per area.

pub mod activity;
pub mod admin;
pub mod backup;
pub mod live;
pub mod meta;

use axum::body::{Body, Bytes};
use axum::routing::{delete, get, post};
use axum::Router;
use http_body_util::BodyExt as _;

use crate::error::ApiError;
use crate::{App, AppState};

/// Every route, as (method, path) — the OpenAPI document must describe each
/// (tested), and each must be served (tested).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/activity"),
    ("GET", "/api/v1/activity"),
    ("DELETE", "/api/v1/activity"),
    ("GET", "/api/v1/activity/{id}"),
    ("GET", "/api/v1/activity/export"),
    ("GET", "/api/v1/activity/stream"),
    ("GET", "/api/v1/activity/facets/{field}"),
    ("GET", "/api/v1/activity/histogram"),
    ("GET", "/api/v1/activity/settings"),
    ("PUT", "/api/v1/activity/settings"),
    ("GET", "/api/v1/activity/stats"),
    ("GET", "/api/v1/events/ws"),
    ("POST", "/api/v1/keys"),
    ("GET", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/{id}"),
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/backup"),
    ("GET", "/api/v1/backup/files/{name}"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/"),
];

/// The router, before state and middleware.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/activity",
            post(activity::ingest)
                .get(activity::list)
                .delete(admin::clear),
        )
        .route("/api/v1/activity/export", get(activity::export))
        .route("/api/v1/activity/stream", get(live::stream))
        .route("/api/v1/activity/facets/{field}", get(activity::facets))
        .route("/api/v1/activity/histogram", get(activity::histogram))
        .route(
            "/api/v1/activity/settings",
            get(admin::get_settings).put(admin::put_settings),
        )
        .route("/api/v1/activity/stats", get(activity::stats))
        .route("/api/v1/activity/{id}", get(activity::get_one))
        .route("/api/v1/events/ws", get(live::ws))
        .route(
            "/api/v1/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route("/api/v1/keys/{id}", delete(admin::revoke_key))
        .route(
            "/api/v1/session",
            post(admin::create_session).delete(admin::end_session),
        )
        .route("/api/v1/backup", get(backup::list))
        .route("/api/v1/backup/files/{name}", get(backup::file))
        .route("/api/v1/openapi.json", get(meta::openapi))
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(meta::metrics))
        .route("/", get(meta::index))
        .route("/assets/{file}", get(meta::asset))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Reads a request body of at most `limit` bytes (413 beyond), which must
/// arrive within the server's body timeout (408 after). At most `limit`
/// bytes are kept. Past the limit the rest is read and dropped (up to
/// [`DRAIN_AFTER_LIMIT`] bytes, within the same deadline) before the 413 goes
/// out, as nginx's lingering close does: a client still sending when the
/// server answers and closes gets a reset instead of the answer.
pub async fn read_body(app: &App, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let read = async move {
        let mut body = body;
        let mut kept = Vec::new();
        let mut over = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::invalid_json(format!("could not read the body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if over == 0 && kept.len() + data.len() <= limit {
                kept.extend_from_slice(&data);
            } else {
                over = over.saturating_add(data.len());
                kept = Vec::new();
                if over > DRAIN_AFTER_LIMIT {
                    break;
                }
            }
        }
        if over > 0 {
            Err(ApiError::too_large(limit))
        } else {
            Ok(Bytes::from(kept))
        }
    };
    match tokio::time::timeout(app.body_timeout, read).await {
        Err(_) => Err(ApiError::request_timeout(app.body_timeout.as_secs())),
        Ok(r) => r,
    }
}

/// Most bytes read and dropped after a body passed its limit.
pub const DRAIN_AFTER_LIMIT: usize = 16 << 20;

/// Reads a JSON body of at most `limit` bytes and parses it with `parse`.
/// At most [`App::body_permits`] bodies are read and parsed at once (each
/// may hold `limit` bytes, and several times that while parsed); a request
/// that cannot get a place within the body timeout is answered 503, so a
/// few slow clients can delay others by at most that, never stall them. A
/// body over [`INLINE_PARSE`] bytes is parsed on a blocking thread, so a
/// large body never stalls the async runtime. (Small bodies — the
/// unauthenticated sign-in — use [`parse_small_body`], outside the pool.)
pub async fn parse_body<T: Send + 'static>(
    app: &App,
    body: Body,
    limit: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(app.body_timeout, app.body_permits.acquire()).await;
    let _permit = match permit {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Err(ApiError::unavailable("the server is shutting down")),
        Err(_) => {
            return Err(ApiError::unavailable(
                "as many request bodies are being read as the server allows; retry shortly",
            ))
        }
    };
    let bytes = read_body(app, body, limit).await?;
    if bytes.len() <= INLINE_PARSE {
        return parse(&bytes);
    }
    tokio::task::spawn_blocking(move || parse(&bytes))
        .await
        .map_err(|e| ApiError::internal(format!("the parse task failed: {e}")))?
}

/// Reads a body of at most `limit` ≤ [`INLINE_PARSE`] bytes and parses it
/// in place, outside the pool of [`parse_body`]: it costs microseconds and a
/// few KiB, and an unauthenticated client trickling such bodies must not
/// take the places that ingest needs.
pub async fn parse_small_body<T>(
    app: &App,
    body: Body,
    limit: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    debug_assert!(limit <= INLINE_PARSE);
    let bytes = read_body(app, body, limit.min(INLINE_PARSE)).await?;
    parse(&bytes)
}

/// Bodies up to this size are parsed where they are read: a batch of 100
/// typical events (~33 KiB) parses in about 0.1 ms (~350,000 instructions
/// under callgrind, 2026-12-06), while handing it
/// to a blocking thread and back cost 18 % of the batched ingest rate
/// (benches/README.md). Only writers and admins send such bodies; larger
/// ones, up to the 8 MiB limit, go to the blocking pool.
pub const INLINE_PARSE: usize = 64 << 10;

/// A path segment, or 422 naming `name` when it cannot be read (not UTF-8).
pub fn path_param(
    p: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    name: &str,
) -> Result<String, ApiError> {
    p.map(|axum::extract::Path(v)| v)
        .map_err(|e| ApiError::invalid(name, format!("`{name}` cannot be read: {e}")))
}

/// Answers a method the path does not take.
async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Runs a short engine read on the server's read threads (see
/// `read_pool.rs`: at most [`crate::read_pool::READ_THREADS`] at once, the
/// rest wait their turn), off the async runtime.
pub async fn read_task<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    crate::read_pool::run(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Runs a blocking engine read off the async runtime (see [`read_task`]).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, actlog_engine::Error> + Send + 'static,
) -> Result<T, ApiError> {
    read_task(f).await?.map_err(ApiError::from)
}
