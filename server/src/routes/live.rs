//! Live delivery: Server-Sent Events with filters and resume, and the
//! WebSocket bus.
//!
//! An SSE stream never forwards bus messages as such: it subscribes to the
//! bus first, then reads matching records with ids above the last one it sent
//! from the engine, and treats every bus message only as a wake-up. Records
//! are durable before they are published, and the engine's visible ids are a
//! gap-free prefix, so the stream has no gap and no duplicate — across a
//! reconnect (`Last-Event-ID` / `after_id`), across concurrent ingests that
//! publish out of id order, and for a subscriber that lags behind the bus.

use std::convert::Infallible;
use std::time::Duration;

use actlog_engine::{Cursor, Order, Query, MAX_LIMIT};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::read_task;
use crate::auth::Caller;
use crate::bus::BusMessage;
use crate::error::ApiError;
use crate::json::RecordOut;
use crate::keys::Role;
use crate::params;
use crate::AppState;

/// Heartbeat comment interval (API.md: at least every 30 s).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// `GET /api/v1/activity/stream`
pub async fn stream(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let key_id = caller.require(Role::Reader)?.key.id.clone();
    let p = params::parse(raw.as_deref().unwrap_or(""))?;
    let slot = app.subscribers.join()?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "`Last-Event-ID` must be a record id")
                })?,
        ),
        None => p.after_id,
    };
    // Subscribe before reading anything, so nothing durable after this point is missed.
    let mut bus = app.recorder.bus().subscribe();
    let log = app.log().clone();
    // `last_id` reads one atomic: no blocking call.
    let start = resume.unwrap_or_else(|| log.last_id().unwrap_or(0));
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(256);
    let selection = p.selection;
    let mut shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let mut last = start;
        loop {
            // Catch up from the log.
            loop {
                // A revoked key stops working at once, also for a stream it
                // opened before: deliver nothing more and end the stream.
                if app.keys.get(&key_id).is_none() {
                    return;
                }
                // Nothing past `last` is visible yet (the bus woke every
                // subscriber, and this one has already caught up): no query.
                if log.last_id().unwrap_or(0) <= last {
                    break;
                }
                let q = Query {
                    selection: selection.clone(),
                    order: Order::Asc,
                    limit: MAX_LIMIT,
                    cursor: Some(Cursor::after(&selection, Order::Asc, last)),
                };
                let log = log.clone();
                let page = match read_task(move || log.query_buf(&q)).await {
                    Ok(Ok(page)) => page,
                    _ => return,
                };
                let more = page.next_cursor.is_some();
                for i in 0..page.len() {
                    let Ok(v) = page.view(i) else { return };
                    let mut data = Vec::with_capacity(512);
                    let data = match RecordOut::from(v).write_json(&mut data) {
                        Ok(()) => String::from_utf8(data).unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    let ev = Event::default()
                        .id(v.id.to_string())
                        .event("activity")
                        .data(data);
                    last = v.id;
                    if tx.send(Ok(ev)).await.is_err() {
                        return; // client gone
                    }
                }
                if !more {
                    break;
                }
            }
            // Wait for news.
            tokio::select! {
                m = bus.recv() => match m {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = bus.try_recv() {}
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

/// Largest message or frame a WebSocket client may send. The bus is
/// one-way and client messages are ignored, so only control frames (close,
/// pong) are expected.
pub const WS_MAX_CLIENT_MESSAGE: usize = 4096;

/// Longest wait for a client to take one message; a client that reads
/// nothing for this long is disconnected rather than holding a task.
pub const WS_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /api/v1/events/ws`
pub async fn ws(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let key_id = caller.require(Role::Reader)?.key.id.clone();
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "this endpoint speaks WebSocket; send an upgrade request ({e})"
        ))
    })?;
    let slot = app.subscribers.join()?;
    // Subscribed before the 101 goes out: a client that connects and then
    // ingests gets its own records, however soon the upgrade completes.
    let bus = app.recorder.bus().subscribe();
    Ok(upgrade
        .max_message_size(WS_MAX_CLIENT_MESSAGE)
        .max_frame_size(WS_MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            ws_session(app, socket, key_id, bus).await
        }))
}

async fn ws_session(
    app: AppState,
    mut socket: WebSocket,
    key_id: String,
    mut bus: tokio::sync::broadcast::Receiver<BusMessage>,
) {
    let mut shutdown = app.shutdown.clone();
    let mut ping = tokio::time::interval(HEARTBEAT);
    ping.tick().await;
    loop {
        let out = tokio::select! {
            m = bus.recv() => match m {
                Ok(msg) => {
                    // A revoked key stops working at once; settings are
                    // for admins only (as `GET /activity/settings` is).
                    let Some(key) = app.keys.get(&key_id) else {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    };
                    if matches!(msg, BusMessage::SettingsChanged(_)) && !key.role.allows(Role::Admin) {
                        continue;
                    }
                    Message::Text(msg.to_json().into())
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "websocket subscriber lagged");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            // Keeps the connection from looking idle (and proxies from
            // closing it) while the log is quiet.
            _ = ping.tick() => Message::Ping(Default::default()),
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue, // the bus is one-way; client messages are ignored
            },
            _ = shutdown.changed() => {
                let _ = tokio::time::timeout(WS_SEND_TIMEOUT, socket.send(Message::Close(None))).await;
                return;
            }
        };
        match tokio::time::timeout(WS_SEND_TIMEOUT, socket.send(out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
