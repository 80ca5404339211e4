//! Online backup for `actlog-inspect backup --url` (admin only): the file
//! list of a consistent backup, and each file (a prefix, for the active
//! segment) streamed. See `actlog_engine::backup` for why it is consistent.

use std::io::Read;

use actlog_engine::backup::BackupItem;
use actlog_engine::segment::parse_segment_file_name;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::blocking;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::keys::{Role, KEYS_FILE};
use crate::settings::SETTINGS_FILE;
use crate::AppState;

/// `GET /api/v1/backup`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let log = app.log().clone();
    let items = blocking(move || log.backup_plan(&[SETTINGS_FILE, KEYS_FILE])).await?;
    let files: Vec<Value> = items
        .iter()
        .map(|i: &BackupItem| {
            let mut item =
                json!({"name": i.name, "len": i.len, "immutable": i.immutable, "ids": i.ids});
            if let Some(bytes) = &i.contents {
                // The state files as the plan read them (see `actlog_engine::backup`).
                item["data"] = Value::from(BASE64.encode(bytes));
            }
            item
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}

/// Only the files a backup consists of may be fetched.
fn allowed(name: &str) -> bool {
    let seg = name
        .strip_suffix(".idx")
        .map(|stem| format!("{stem}.log"))
        .unwrap_or_else(|| name.to_string());
    parse_segment_file_name(&seg).is_some()
        || [
            actlog_engine::WATERMARK_FILE,
            actlog_engine::ids::IDS_FILE,
            SETTINGS_FILE,
            KEYS_FILE,
        ]
        .contains(&name)
}

/// `?len=`
#[derive(Debug, Deserialize)]
pub struct LenParam {
    len: Option<u64>,
}

/// `GET /api/v1/backup/files/{name}?len=N`
pub async fn file(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<LenParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let name = super::path_param(name, "name")?;
    let Query(q) = q.map_err(|_| {
        ApiError::invalid("len", "`len` must be a whole number of bytes (0 or more)")
    })?;
    if !allowed(&name) {
        return Err(ApiError::not_found(format!(
            "`{name}` is not part of a backup"
        )));
    }
    let path = app.log().dir().join(&name);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("`{name}` no longer exists")))
        }
        Err(e) => return Err(ApiError::unavailable(format!("cannot read `{name}`: {e}"))),
    };
    let len = q.len.unwrap_or(u64::MAX);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = file.take(len);
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}
