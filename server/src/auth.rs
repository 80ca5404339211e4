//! Who is calling: bearer tokens and web UI sessions, roles, and the
//! coalesced recording of failed authentications.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actlog_engine::NewRecord;
use axum::http::{header, HeaderMap};
use serde_json::json;

use crate::error::ApiError;
use crate::keys::{hash_token, KeyInfo, KeyStore, Role};
use crate::recorder::Recorder;

/// Name of the web UI's session cookie.
pub const SESSION_COOKIE: &str = "actlog_session";
/// How long a web UI session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key (shared with the key store, not copied per request).
    pub key: Arc<KeyInfo>,
}

impl Principal {
    /// 403 unless the key has `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.key.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(role.as_str()))
        }
    }
}

/// What the credentials of a request amount to.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No credentials were sent.
    Anonymous,
    /// A bearer token was sent but is unknown or revoked (recorded as
    /// `auth.key_rejected`).
    Rejected,
    /// A session cookie was sent but its session is gone (expired, signed
    /// out, the server restarted, or its key revoked). Answered 401 like
    /// [`Caller::Rejected`] but not recorded: a browser coming back with an
    /// old cookie is not someone trying a key.
    StaleSession,
    /// A valid key.
    Key(Principal),
}

impl Caller {
    /// The principal with `role`, or 401 / 403.
    pub fn require(&self, role: Role) -> Result<&Principal, ApiError> {
        match self {
            Caller::Key(p) => p.require(role).map(|_| p),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// Web UI sessions, in memory (a restart signs everyone out). Keyed by the
/// hash of the session id, so the ids themselves are not kept either.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    /// Starts a session for `key_id`; returns the cookie value.
    pub fn create(&self, key_id: &str) -> String {
        let id = crate::keys::new_token();
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, exp)| *exp > now);
        m.insert(hash_token(&id), (key_id.to_string(), now + SESSION_TTL));
        id
    }

    /// The key id of a live session.
    pub fn lookup(&self, id: &str) -> Option<String> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&hash_token(id))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(k, _)| k.clone())
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&hash_token(id));
    }
}

/// The session cookie's value, if sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Identifies the caller from `Authorization: Bearer` or the session cookie.
pub fn identify(headers: &HeaderMap, keys: &KeyStore, sessions: &Sessions) -> Caller {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        return match token.and_then(|t| keys.verify(t)) {
            Some(key) => Caller::Key(Principal { key }),
            None => Caller::Rejected,
        };
    }
    if let Some(sid) = session_cookie(headers) {
        return match sessions.lookup(&sid).and_then(|kid| keys.get(&kid)) {
            Some(key) => Caller::Key(Principal { key }),
            None => Caller::StaleSession,
        };
    }
    Caller::Anonymous
}

/// Coalesces failed-authentication events per source and minute: the first
/// is recorded at once with `count: 1`; the rest of that minute become one
/// more record when the minute ends. At most two records per source, action
/// and minute, whatever the flood.
#[derive(Debug)]
pub struct FailureCoalescer {
    window: Duration,
    windows: Mutex<HashMap<WindowKey, (Instant, u64)>>,
}

impl Default for FailureCoalescer {
    fn default() -> Self {
        FailureCoalescer::new(COALESCE_WINDOW)
    }
}

/// (source, action) of a coalescing window.
type WindowKey = (IpAddr, &'static str);

/// Length of a coalescing window.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(60);

fn failure_record(action: &'static str, source: IpAddr, count: u64) -> NewRecord {
    let what = match action {
        "auth.login_failed" => "Failed web sign-in",
        _ => "Rejected an unknown or revoked API key",
    };
    let message = if count == 1 {
        format!("{what} from {source}")
    } else {
        format!("{what} from {source} ({count} more times this minute)")
    };
    let mut r = NewRecord::new("auth", action, message);
    r.actor = Some(actlog_engine::SYSTEM_ACTOR.into());
    r.severity = actlog_engine::Severity::Warning;
    r.metadata.insert("count".into(), json!(count));
    r.metadata
        .insert("source".into(), json!(source.to_string()));
    r
}

impl FailureCoalescer {
    /// Coalesces over windows of `window`.
    pub fn new(window: Duration) -> Self {
        FailureCoalescer {
            window,
            windows: Mutex::default(),
        }
    }

    /// Notes one failure from `source`.
    pub fn failure(&self, recorder: &Recorder, action: &'static str, source: IpAddr) {
        for r in self.note(Instant::now(), action, source) {
            recorder.record(r);
        }
    }

    /// Notes one failure from `source` at `now`; returns what to record now.
    pub fn note(&self, now: Instant, action: &'static str, source: IpAddr) -> Vec<NewRecord> {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match w.get_mut(&(source, action)) {
            Some((_, extra)) => {
                *extra += 1;
                Vec::new()
            }
            None => {
                w.insert((source, action), (now, 0));
                vec![failure_record(action, source, 1)]
            }
        }
    }

    /// Records the counts of windows that have ended (call periodically, and
    /// with `all` at shutdown).
    pub fn flush(&self, recorder: &Recorder, all: bool) {
        for r in self.due(Instant::now(), all) {
            recorder.record(r);
        }
    }

    /// The records of windows that have ended by `now` (all with `all`).
    pub fn due(&self, now: Instant, all: bool) -> Vec<NewRecord> {
        let mut done = Vec::new();
        {
            let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            w.retain(|key, (start, extra)| {
                if all || now.duration_since(*start) >= self.window {
                    if *extra > 0 {
                        done.push((*key, *extra));
                    }
                    false
                } else {
                    true
                }
            });
        }
        done.into_iter()
            .map(|((source, action), extra)| failure_record(action, source, extra))
            .collect()
    }
}
