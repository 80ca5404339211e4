//! Health, metrics, the OpenAPI document and the embedded web UI.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::metrics::EngineGauges;
use crate::AppState;

/// `GET /healthz`: `{"status": "ok"}`, or 503 `{"status": "failing"}` while
/// the log is fail-stopped after a write or fsync error (it answers ok again
/// once the server has recovered it; see `Recorder::heal`). A health check
/// that stayed green while nothing could be stored would hide the one
/// failure that matters.
pub async fn healthz(State(app): State<AppState>) -> Response {
    if app.log().is_failed() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "failing",
                "message": "storage is failing (disk full or I/O error): nothing can be \
                            stored until the server recovers it",
            })),
        )
            .into_response();
    }
    Json(json!({"status": "ok"})).into_response()
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

/// `(name, content type, bytes)` of one embedded JavaScript module.
macro_rules! js {
    ($name:literal) => {
        (
            $name,
            "text/javascript; charset=utf-8",
            include_str!(concat!("../../assets/", $name)),
        )
    };
}

/// The embedded web UI files: (name, content type, bytes). Every file in
/// `server/assets/` except `index.html` must be listed (tested).
pub const ASSETS: &[(&str, &str, &str)] = &[
    js!("app.js"),
    js!("api.js"),
    js!("bus.js"),
    js!("dom.js"),
    js!("format.js"),
    js!("filters.js"),
    js!("completion.js"),
    js!("drawer.js"),
    js!("provenance.js"),
    js!("confirm.js"),
    js!("signin.js"),
    js!("activity.js"),
    js!("chart.js"),
    js!("dashboard.js"),
    js!("settings.js"),
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
pub async fn asset(
    file: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    // A name that is not UTF-8 names no asset.
    let file = file.map(|Path(f)| f).unwrap_or_default();
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ctype, body)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::not_found(format!("no asset `{file}`")).into_response(),
    }
}

/// Anything else.
pub async fn not_found() -> Response {
    let mut r = ApiError::not_found("no such endpoint; see /api/v1/openapi.json").into_response();
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");

    /// A module added to `assets/` but not to `ASSETS` would 404 in the
    /// browser; one listed but deleted would not compile.
    #[test]
    fn every_asset_file_is_embedded() {
        let mut on_disk: Vec<String> = std::fs::read_dir(DIR)
            .expect("assets dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .filter(|n| n != "index.html")
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "ASSETS must list every file in {DIR}");
    }

    /// The UI's own half of "user data is rendered as text": no script parses
    /// HTML, and the page carries nothing inline that the CSP would have to allow.
    #[test]
    fn ui_never_parses_html_and_has_nothing_inline() {
        for (name, _, body) in ASSETS {
            if !name.ends_with(".js") {
                continue;
            }
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!body.contains(banned), "{name} uses {banned}");
            }
        }
        let index = include_str!("../../assets/index.html");
        assert!(!index.contains("<style"), "inline <style> in index.html");
        assert!(
            !index.contains(" style="),
            "inline style attribute in index.html"
        );
        for (i, _) in index.match_indices("<script") {
            let tag = &index[i..i + index[i..].find('>').expect("tag end")];
            assert!(tag.contains(" src="), "inline script in index.html: {tag}");
        }
        let handler = index.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler in index.html");
    }
}
