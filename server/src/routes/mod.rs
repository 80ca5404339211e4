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
use crate::AppState;

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
}

/// Reads a request body of at most `limit` bytes (413 beyond).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::invalid_json(format!(
            "could not read the body: {e}"
        ))),
    }
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
