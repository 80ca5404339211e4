//! Settings, clear, keys, sessions, and the retention run.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use actlog_engine::NewRecord;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::parse_body;
use crate::auth::Caller;
use crate::bus::BusMessage;
use crate::error::ApiError;
use crate::json::format_ts;
use crate::keys::{check_label, key_record, KeyEvent, Role};
use crate::params;
use crate::settings::Settings;
use crate::{App, AppState, SESSION_BODY_LIMIT, SMALL_BODY_LIMIT};

fn event(category: &str, action: &str, message: String) -> NewRecord {
    NewRecord::new(category, action, message)
}

/// `GET /api/v1/activity/settings`
pub async fn get_settings(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Settings>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(app.settings.get()))
}

/// `PUT /api/v1/activity/settings`
pub async fn put_settings(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Json<Settings>, ApiError> {
    caller.require(Role::Admin)?;
    let new = parse_body(&app, body, SMALL_BODY_LIMIT, Settings::from_json).await?;
    let old = app.settings.get();
    if old.enabled && !new.enabled {
        // Recorded before it takes effect.
        app.recorder
            .record_durable(
                event(
                    "system",
                    "system.recording_disabled",
                    "Recording turned off".into(),
                ),
                true,
            )
            .await;
    }
    {
        let app2 = app.clone();
        tokio::task::spawn_blocking(move || app2.settings.set(new))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::unavailable(format!("could not save the settings: {e:#}")))?;
    }
    app.log()
        .set_retention(new.engine_retention())
        .map_err(ApiError::from)?;
    app.recorder.set_enabled(new.enabled);
    if !old.enabled && new.enabled {
        app.recorder
            .record_durable(
                event(
                    "system",
                    "system.recording_enabled",
                    "Recording turned on".into(),
                ),
                false,
            )
            .await;
    }
    if old.retention != new.retention {
        let mut r = event(
            "system",
            "system.settings_changed",
            format!(
                "Retention changed to max_days={}, max_entries={}",
                fmt_opt(new.retention.max_days.map(u64::from)),
                fmt_opt(new.retention.max_entries)
            ),
        );
        r.metadata.insert("before".into(), json!(old.retention));
        r.metadata.insert("after".into(), json!(new.retention));
        app.recorder.record_durable(r, false).await;
        run_retention(&app).await;
    }
    app.recorder.bus().publish(BusMessage::SettingsChanged(new));
    Ok(Json(new))
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), |n| n.to_string())
}

/// Enforces retention now and records what it dropped.
pub async fn run_retention(app: &App) {
    let log = app.log().clone();
    // Leave room for the notice recorded below, so that recording it does not
    // push the log over `max_entries` and evict a real record next run.
    match tokio::task::spawn_blocking(move || log.enforce_retention_leaving_room(1)).await {
        Ok(Ok(out)) if out.dropped_records > 0 => {
            app.metrics
                .retention_dropped
                .fetch_add(out.dropped_records, Ordering::Relaxed);
            let mut r = event(
                "system",
                "system.retention_applied",
                format!(
                    "Retention removed {} records ({} segment files)",
                    out.dropped_records, out.dropped_segments
                ),
            );
            r.actor = Some(actlog_engine::SYSTEM_ACTOR.into());
            r.metadata
                .insert("dropped_records".into(), json!(out.dropped_records));
            r.metadata
                .insert("dropped_segments".into(), json!(out.dropped_segments));
            // Durable before this returns: a settings change publishes
            // `settings_changed` after it, and a page that reloads the
            // stats on that message must see the notice counted.
            app.recorder.record_durable(r, false).await;
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
        Err(e) => tracing::error!(error = %e, "retention task failed"),
    }
}

/// `DELETE /api/v1/activity?confirm=true`
pub async fn clear(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let p = params::parse(raw.as_deref().unwrap_or(""))?;
    if !p.confirm {
        return Err(ApiError::invalid(
            "confirm",
            "clearing deletes every record; repeat the request with `confirm=true`",
        ));
    }
    // The clear and the record announcing it happen with no append in
    // between, so `system.activity_cleared` is the first record after it.
    let cleared = app
        .recorder
        .clear(|cleared| {
            let mut r = event(
                "system",
                "system.activity_cleared",
                format!("Activity log cleared ({cleared} records)"),
            );
            r.metadata.insert("cleared".into(), json!(cleared));
            r
        })
        .await?;
    Ok(Json(json!({ "cleared": cleared })))
}

/// `POST /api/v1/keys`
pub async fn create_key(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let v: Value = parse_body(&app, body, SMALL_BODY_LIMIT, |b| {
        crate::error::parse_json(b, "body", "send {\"label\": ..., \"role\": ...}")
    })
    .await?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("body", "send {\"label\": ..., \"role\": ...}"))?;
    if let Some(k) = obj.keys().find(|k| *k != "label" && *k != "role") {
        return Err(ApiError::invalid(
            k.clone(),
            format!("unknown field `{k}`; keys take label, role"),
        ));
    }
    let label = obj
        .get("label")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("label", "`label` is required"))?
        .to_string();
    check_label(&label).map_err(|m| ApiError::invalid("label", m))?;
    let role: Role = obj
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("role", "`role` is required: admin, writer or reader"))?
        .parse()
        .map_err(|m: String| ApiError::invalid("role", m))?;
    let now = format_ts(actlog_engine::now_us());
    let (key, token) = {
        let app = app.clone();
        let label = label.clone();
        tokio::task::spawn_blocking(move || app.keys.create(&label, role, &now))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::unavailable(format!("could not save the key: {e:#}")))?
    };
    app.recorder.record(key_record(KeyEvent::Created, &key, ""));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": key.id, "label": key.label, "role": key.role,
            "created_at": key.created_at, "token": token,
        })),
    )
        .into_response())
}

/// `GET /api/v1/keys`
pub async fn list_keys(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let keys: Vec<Value> = app
        .keys
        .list()
        .into_iter()
        .map(|k| json!({"id": k.id, "label": k.label, "role": k.role, "created_at": k.created_at}))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /api/v1/keys/{id}`
pub async fn revoke_key(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let id = super::path_param(id, "id")?;
    let gone = {
        let app = app.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || app.keys.revoke(&id))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::unavailable(format!("could not save the keys: {e:#}")))?
    };
    let Some(key) = gone else {
        return Err(ApiError::not_found(format!("no API key with id `{id}`")));
    };
    app.sessions.end_key(&key.id);
    app.recorder.record(key_record(KeyEvent::Revoked, &key, ""));
    Ok(StatusCode::NO_CONTENT)
}

fn source(conn: Option<Extension<ConnectInfo<SocketAddr>>>) -> std::net::IpAddr {
    conn.map(|c| c.0 .0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// The body of `POST /api/v1/session`: one token, nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// `POST /api/v1/session`. Unauthenticated, so the body is small
/// ([`SESSION_BODY_LIMIT`]) and read straight into [`SignIn`], never into
/// a JSON tree.
pub async fn create_session(
    State(app): State<AppState>,
    conn: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Body,
) -> Result<Response, ApiError> {
    let sign_in: SignIn = super::parse_small_body(&app, body, SESSION_BODY_LIMIT, |b| {
        crate::error::parse_json(b, "token", "send {\"token\": \"<API key>\"}")
    })
    .await?;
    let token = sign_in.token.as_str();
    let Some(key) = app.keys.verify(token) else {
        app.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        app.failures
            .failure(&app.recorder, "auth.login_failed", source(conn));
        return Err(ApiError::unauthorized());
    };
    let sid = app.sessions.create(&key.id);
    app.logins.success(&app.recorder, &key).await;
    let cookie = app.cookie.set(&sid);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `DELETE /api/v1/session`
pub async fn end_session(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(sid) = app.cookie.value(&headers) {
        app.sessions.remove(&sid);
    }
    let cookie = app.cookie.clear();
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}
