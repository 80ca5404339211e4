//! Who is calling: bearer tokens and web UI sessions, roles, and the
//! coalesced recording of authentication (failed attempts per source,
//! sign-ins per key), bounded in records and in memory whatever the flood.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actlog_engine::NewRecord;
use axum::http::{header, HeaderMap};
use serde_json::json;

use crate::csrf::Credentials;
use crate::error::ApiError;
use crate::keys::{hash_token, KeyInfo, KeyStore, Role};
use crate::recorder::Recorder;

/// Name of the web UI's session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "actlog_session";
/// Name of the session cookie behind TLS (`--secure-cookie`): the
/// `__Host-` prefix makes the browser refuse it unless it is `Secure`, has
/// no `Domain` and the path `/`, so no sibling subdomain can plant one.
pub const SECURE_SESSION_COOKIE: &str = "__Host-actlog_session";
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

/// Live sessions a key may have: a sign-in past it ends that key's oldest.
pub const SESSIONS_PER_KEY: usize = 20;
/// Live sessions in all: a sign-in past it ends the oldest of all (only
/// reachable with more than `MAX_SESSIONS / SESSIONS_PER_KEY` keys).
pub const MAX_SESSIONS: usize = 10_000;

/// Web UI sessions, in memory (a restart signs everyone out). Keyed by the
/// hash of the session id, so the ids themselves are not kept either.
/// Bounded: [`SESSIONS_PER_KEY`] per key, [`MAX_SESSIONS`] in all; expired
/// ones are dropped on the server's tick ([`Sessions::prune`]).
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<SessionTable>,
}

#[derive(Debug, Default)]
struct SessionTable {
    /// Hash of the session id → (key id, expiry).
    by_hash: HashMap<String, (String, Instant)>,
    /// Key id → its sessions' hashes, oldest first (all last
    /// [`SESSION_TTL`], so also the order they expire in).
    by_key: HashMap<String, VecDeque<String>>,
}

impl SessionTable {
    /// Drops the expired sessions of `key_id`.
    fn prune_key(&mut self, key_id: &str, now: Instant) {
        let SessionTable { by_hash, by_key } = self;
        if let Some(q) = by_key.get_mut(key_id) {
            while let Some(h) = q.front() {
                if by_hash.get(h).is_some_and(|(_, exp)| *exp > now) {
                    break;
                }
                by_hash.remove(h);
                q.pop_front();
            }
            if q.is_empty() {
                by_key.remove(key_id);
            }
        }
    }

    /// Ends the session with this hash.
    fn end(&mut self, hash: &str) {
        if let Some((key_id, _)) = self.by_hash.remove(hash) {
            if let Some(q) = self.by_key.get_mut(&key_id) {
                q.retain(|h| h != hash);
                if q.is_empty() {
                    self.by_key.remove(&key_id);
                }
            }
        }
    }
}

impl Sessions {
    /// Starts a session for `key_id`; returns the cookie value.
    pub fn create(&self, key_id: &str) -> String {
        self.create_at(key_id, Instant::now())
    }

    fn create_at(&self, key_id: &str, now: Instant) -> String {
        let id = crate::keys::new_token();
        let hash = hash_token(&id);
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.prune_key(key_id, now);
        {
            let SessionTable { by_hash, by_key } = &mut *t;
            if let Some(q) = by_key.get_mut(key_id) {
                while q.len() >= SESSIONS_PER_KEY {
                    if let Some(oldest) = q.pop_front() {
                        by_hash.remove(&oldest);
                    }
                }
            }
        }
        if t.by_hash.len() >= MAX_SESSIONS {
            prune_all(&mut t, now);
        }
        while t.by_hash.len() >= MAX_SESSIONS {
            // Every session lasts as long, so the one expiring first is the oldest.
            let oldest = t
                .by_hash
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(h, _)| h.clone());
            match oldest {
                Some(h) => t.end(&h),
                None => break,
            }
        }
        t.by_hash
            .insert(hash.clone(), (key_id.to_string(), now + SESSION_TTL));
        t.by_key
            .entry(key_id.to_string())
            .or_default()
            .push_back(hash);
        id
    }

    /// The key id of a live session.
    pub fn lookup(&self, id: &str) -> Option<String> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.by_hash
            .get(&hash_token(id))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(k, _)| k.clone())
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.end(&hash_token(id));
    }

    /// Ends every session of `key_id` (its key was revoked).
    pub fn end_key(&self, key_id: &str) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = t.by_key.remove(key_id) {
            for h in q {
                t.by_hash.remove(&h);
            }
        }
    }

    /// Drops expired sessions (the server calls this on its tick).
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        prune_all(&mut t, now);
    }

    /// How many sessions are held, expired ones not yet pruned included.
    pub fn len(&self) -> usize {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.by_hash.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn prune_all(t: &mut SessionTable, now: Instant) {
    let keys: Vec<String> = t.by_key.keys().cloned().collect();
    for k in keys {
        t.prune_key(&k, now);
    }
}

/// How the session cookie is named and set.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookiePolicy {
    /// Behind TLS: `Secure` and the `__Host-` name.
    pub secure: bool,
}

impl CookiePolicy {
    /// The cookie's name.
    pub fn name(self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// `Set-Cookie` for a new session.
    pub fn set(self, sid: &str) -> String {
        self.cookie(sid, SESSION_TTL.as_secs())
    }

    /// `Set-Cookie` that deletes the session cookie.
    pub fn clear(self) -> String {
        self.cookie("", 0)
    }

    fn cookie(self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
            self.name()
        )
    }

    /// The session cookie's value, if sent.
    pub fn value(self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == self.name())
            .map(|(_, v)| v.to_string())
    }
}

/// Identifies the caller from `Authorization: Bearer` or the session cookie.
/// When an `Authorization` header is sent it alone decides: a stale cookie
/// beside a valid bearer token is never looked at.
pub fn identify(
    headers: &HeaderMap,
    keys: &KeyStore,
    sessions: &Sessions,
    cookie: CookiePolicy,
) -> (Caller, Credentials) {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let caller = match token.and_then(|t| keys.verify(t)) {
            Some(key) => Caller::Key(Principal { key }),
            None => Caller::Rejected,
        };
        return (caller, Credentials::Bearer);
    }
    if let Some(sid) = cookie.value(headers) {
        let caller = match sessions.lookup(&sid).and_then(|kid| keys.get(&kid)) {
            Some(key) => Caller::Key(Principal { key }),
            None => Caller::StaleSession,
        };
        return (caller, Credentials::Cookie);
    }
    (Caller::Anonymous, Credentials::None)
}

/// Length of a coalescing window (the "minute" of API.md) in production.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(60);

/// Failed-authentication records written per minute, all sources together,
/// before the rest is folded into the minute's summary.
pub const FAILURE_BUDGET: usize = 20;

/// Distinct sources a minute's summary tells apart; past it, its `sources`
/// is a lower bound (`sources_capped: true`). Bounds the memory a flood from
/// many sources (any IPv6 client has 2^64 addresses) can make the server hold.
pub const MAX_SUMMARY_SOURCES: usize = 4096;

/// The action of a rejected bearer token.
pub const KEY_REJECTED: &str = "auth.key_rejected";
/// The action of a failed `POST /session`.
pub const LOGIN_FAILED: &str = "auth.login_failed";
/// The action of the summary of a minute's failures past the budget.
pub const FAILURES_SUMMARIZED: &str = "auth.failures_summarized";
/// The action of a sign-in to the web UI.
pub const LOGIN_SUCCEEDED: &str = "auth.login_succeeded";

/// Where a failed authentication comes from, as coalescing counts it: an
/// IPv4 address, or the /64 network of an IPv6 address (the unit a host or
/// a customer is given, and within which a client picks any address it
/// likes). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack
/// socket sees an IPv4 client) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Net(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            // Not `to_ipv4`: that also takes `::1` and `::a.b.c.d` for IPv4.
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6Net((u128::from(a) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for Source {
    /// `192.0.2.7`, or `2001:db8:1:2::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(a) => fmt::Display::fmt(a, f),
            Source::V6Net(n) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*n) << 64)),
        }
    }
}

/// One coalescing minute: opened by the first event when none is open,
/// closed `window` later, by the server's tick or by the next event,
/// whichever comes first. It is every subject's window at once, which is
/// what lets one budget cover all of them.
#[derive(Debug)]
struct Minute<K> {
    start: Instant,
    /// Subjects recorded by name this minute → their events after the first
    /// (0 until a second one takes a place for its end-of-minute record).
    named: HashMap<K, u64>,
    /// Records written or promised this minute (each takes a place).
    places: usize,
}

/// What noting an event decided.
enum Noted {
    /// The subject's first this minute: record it now.
    First,
    /// Counted into the subject's end-of-minute record.
    Counted,
    /// No place left: for the summary.
    OverBudget,
}

impl<K: Eq + Hash> Minute<K> {
    fn new(start: Instant) -> Self {
        Minute {
            start,
            named: HashMap::new(),
            places: 0,
        }
    }

    fn ended(&self, now: Instant, window: Duration) -> bool {
        now.saturating_duration_since(self.start) >= window
    }

    /// Notes an event of `subject`, taking a place when it needs a record
    /// that is not yet promised and `budget` allows one.
    fn note(&mut self, subject: K, budget: usize) -> Noted {
        match self.named.entry(subject) {
            Entry::Occupied(mut e) => {
                if *e.get() > 0 {
                    *e.get_mut() += 1;
                    Noted::Counted
                } else if self.places < budget {
                    self.places += 1;
                    *e.get_mut() = 1;
                    Noted::Counted
                } else {
                    Noted::OverBudget
                }
            }
            Entry::Vacant(e) => {
                if self.places < budget {
                    self.places += 1;
                    e.insert(0);
                    Noted::First
                } else {
                    Noted::OverBudget
                }
            }
        }
    }

    /// The subjects with events after their first, and how many, in order.
    fn follow_ups(self) -> Vec<(K, u64)>
    where
        K: Ord,
    {
        let mut v: Vec<(K, u64)> = self.named.into_iter().filter(|(_, n)| *n > 0).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Coalesces failed authentication (`auth.key_rejected`,
/// `auth.login_failed`) per [`Source`] and minute: a source's first failure
/// of an action is recorded at once with `count: 1`; its further ones that
/// minute become one more record when the minute ends, with their `count`.
/// All sources together get [`FAILURE_BUDGET`] records a minute, each taking
/// its place when it becomes certain: a first record when written, an
/// end-of-minute record at its source's second failure. A failure that would
/// need a place when none is left (a new source's, or a named source's
/// second) and all after it from that source go into one
/// `auth.failures_summarized` record when the minute ends, with `count` and
/// `sources`. So a minute writes at most 20 + 1 records, every failure is in
/// exactly one record's `count`, and the memory held is bounded
/// ([`FAILURE_BUDGET`] named sources, [`MAX_SUMMARY_SOURCES`] summarized ones).
#[derive(Debug)]
pub struct FailureCoalescer {
    window: Duration,
    open: Mutex<Option<FailureMinute>>,
}

#[derive(Debug)]
struct FailureMinute {
    minute: Minute<(&'static str, Source)>,
    summary: Summary,
}

/// The failures of a minute past its budget.
#[derive(Debug, Default)]
struct Summary {
    key_rejected: u64,
    login_failed: u64,
    sources: HashSet<Source>,
    /// Sources were seen past [`MAX_SUMMARY_SOURCES`].
    capped: bool,
}

impl Summary {
    fn add(&mut self, action: &str, source: Source) {
        if action == LOGIN_FAILED {
            self.login_failed += 1;
        } else {
            self.key_rejected += 1;
        }
        if self.sources.len() < MAX_SUMMARY_SOURCES {
            self.sources.insert(source);
        } else if !self.sources.contains(&source) {
            self.capped = true;
        }
    }

    fn record(&self) -> Option<NewRecord> {
        let count = self.key_rejected + self.login_failed;
        if count == 0 {
            return None;
        }
        let sources = self.sources.len();
        let at_least = if self.capped { "at least " } else { "" };
        let mut r = NewRecord::new(
            "auth",
            FAILURES_SUMMARIZED,
            format!(
                "{count} more failed authentications this minute from {at_least}{sources} \
                 sources, past the {FAILURE_BUDGET} recorded one by one \
                 ({} rejected API keys, {} failed web sign-ins)",
                self.key_rejected, self.login_failed
            ),
        );
        r.actor = Some(actlog_engine::SYSTEM_ACTOR.into());
        r.severity = actlog_engine::Severity::Warning;
        r.metadata.insert("count".into(), json!(count));
        r.metadata.insert("sources".into(), json!(sources));
        r.metadata
            .insert("sources_capped".into(), json!(self.capped));
        r.metadata
            .insert("key_rejected".into(), json!(self.key_rejected));
        r.metadata
            .insert("login_failed".into(), json!(self.login_failed));
        Some(r)
    }
}

impl FailureMinute {
    /// The minute's end-of-minute records: follow-ups, then the summary.
    fn close(self) -> Vec<NewRecord> {
        let mut out: Vec<NewRecord> = self
            .minute
            .follow_ups()
            .into_iter()
            .map(|((action, source), n)| failure_record(action, source, n, true))
            .collect();
        out.extend(self.summary.record());
        out
    }
}

impl Default for FailureCoalescer {
    fn default() -> Self {
        FailureCoalescer::new(COALESCE_WINDOW)
    }
}

fn failure_record(action: &'static str, source: Source, count: u64, follow_up: bool) -> NewRecord {
    let what = match action {
        LOGIN_FAILED => "Failed web sign-in",
        _ => "Rejected an unknown or revoked API key",
    };
    let message = if follow_up {
        format!("{what} from {source} ({count} more times this minute)")
    } else {
        format!("{what} from {source}")
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
    /// Coalesces over minutes of `window`.
    pub fn new(window: Duration) -> Self {
        FailureCoalescer {
            window,
            open: Mutex::new(None),
        }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Notes one failure (`action` is [`KEY_REJECTED`] or [`LOGIN_FAILED`])
    /// from `ip` and records what is due.
    pub fn failure(&self, recorder: &Recorder, action: &'static str, ip: IpAddr) {
        for r in self.note(Instant::now(), action, ip) {
            recorder.record(r);
        }
    }

    /// Notes one failure from `ip` at `now`; returns what to record now: the
    /// records of a minute that has ended, if any, then this failure's if it
    /// is its source's first of the minute.
    pub fn note(&self, now: Instant, action: &'static str, ip: IpAddr) -> Vec<NewRecord> {
        let source = Source::from(ip);
        let mut out = Vec::new();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open
            .as_ref()
            .is_some_and(|m| m.minute.ended(now, self.window))
        {
            out.extend(open.take().map(FailureMinute::close).unwrap_or_default());
        }
        let m = open.get_or_insert_with(|| FailureMinute {
            minute: Minute::new(now),
            summary: Summary::default(),
        });
        match m.minute.note((action, source), FAILURE_BUDGET) {
            Noted::First => out.push(failure_record(action, source, 1, false)),
            Noted::Counted => {}
            Noted::OverBudget => m.summary.add(action, source),
        }
        out
    }

    /// Records what is due now (call on a tick, and with `all` at shutdown).
    pub fn flush(&self, recorder: &Recorder, all: bool) {
        for r in self.due(Instant::now(), all) {
            recorder.record(r);
        }
    }

    /// The end-of-minute records if the minute has ended by `now` (or, with
    /// `all`, whether or not it has).
    pub fn due(&self, now: Instant, all: bool) -> Vec<NewRecord> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if all
            || open
                .as_ref()
                .is_some_and(|m| m.minute.ended(now, self.window))
        {
            open.take().map(FailureMinute::close).unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// How many sources are held (named and summarized).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.as_ref()
            .map_or(0, |m| m.minute.named.len() + m.summary.sources.len())
    }
}

/// Coalesces `auth.login_succeeded` per key and minute like failures per
/// source: a key's first sign-in of the minute is recorded at once
/// (`count: 1`), the rest as one record with their `count` when the minute
/// ends; the actor is the key's label. No budget across keys: there are as
/// many subjects as keys, and only an admin makes keys.
#[derive(Debug)]
pub struct LoginCoalescer {
    window: Duration,
    /// Subjects are (key id, label).
    open: Mutex<Option<Minute<(String, String)>>>,
}

impl Default for LoginCoalescer {
    fn default() -> Self {
        LoginCoalescer::new(COALESCE_WINDOW)
    }
}

fn login_record(label: &str, count: u64, follow_up: bool) -> NewRecord {
    let message = if follow_up {
        format!("'{label}' signed in to the web UI ({count} more times this minute)")
    } else {
        format!("'{label}' signed in to the web UI")
    };
    let mut r = NewRecord::new("auth", LOGIN_SUCCEEDED, message);
    r.actor = Some(label.to_string());
    r.metadata.insert("count".into(), json!(count));
    r
}

impl LoginCoalescer {
    /// Coalesces over minutes of `window`.
    pub fn new(window: Duration) -> Self {
        LoginCoalescer {
            window,
            open: Mutex::new(None),
        }
    }

    /// Notes a sign-in with `key` and records what is due, durably before
    /// it returns: the page a browser opens after signing in then lists the
    /// sign-in among the records it loads, not as a live arrival. (Only a
    /// key's first sign-in of the minute writes anything here.)
    pub async fn success(&self, recorder: &Recorder, key: &KeyInfo) {
        let due = self.note(Instant::now(), &key.id, &key.label);
        for r in due {
            recorder.record_durable(r, false).await;
        }
    }

    /// Notes a sign-in at `now`; returns what to record now.
    pub fn note(&self, now: Instant, key_id: &str, label: &str) -> Vec<NewRecord> {
        let mut out = Vec::new();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.as_ref().is_some_and(|m| m.ended(now, self.window)) {
            out.extend(open.take().map(close_logins).unwrap_or_default());
        }
        let m = open.get_or_insert_with(|| Minute::new(now));
        if let Noted::First = m.note((key_id.to_string(), label.to_string()), usize::MAX) {
            out.push(login_record(label, 1, false));
        }
        out
    }

    /// Records what is due now (call on a tick, and with `all` at shutdown).
    pub fn flush(&self, recorder: &Recorder, all: bool) {
        for r in self.due(Instant::now(), all) {
            recorder.record(r);
        }
    }

    /// The end-of-minute records if the minute has ended by `now` (or, with
    /// `all`, whether or not it has).
    pub fn due(&self, now: Instant, all: bool) -> Vec<NewRecord> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if all || open.as_ref().is_some_and(|m| m.ended(now, self.window)) {
            open.take().map(close_logins).unwrap_or_default()
        } else {
            Vec::new()
        }
    }
}

fn close_logins(m: Minute<(String, String)>) -> Vec<NewRecord> {
    m.follow_ups()
        .into_iter()
        .map(|((_, label), n)| login_record(&label, n, true))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const KEY: &str = "auth.key_rejected";
    const LOGIN: &str = "auth.login_failed";
    const SUMMARY: &str = "auth.failures_summarized";
    const MINUTE: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn meta_u64(r: &NewRecord, k: &str) -> u64 {
        r.metadata
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("metadata.{k} of {r:?}"))
    }

    fn source_of(r: &NewRecord) -> &str {
        r.metadata
            .get("source")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("metadata.source of {r:?}"))
    }

    /// (action, source, count) of records that name a source.
    fn named(recs: &[NewRecord]) -> Vec<(String, String, u64)> {
        recs.iter()
            .filter(|r| r.action != SUMMARY)
            .map(|r| {
                (
                    r.action.clone(),
                    source_of(r).to_string(),
                    meta_u64(r, "count"),
                )
            })
            .collect()
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let c = FailureCoalescer::new(MINUTE);
        let t = Instant::now();
        let mut now = Vec::new();
        for a in [
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff:ffff:ffff:fffe",
            "2001:db8:1:2:abcd::9",
            "2001:db8:1:3::1",
        ] {
            now.extend(c.note(t, KEY, ip(a)));
        }
        assert_eq!(
            named(&now),
            [
                (KEY.into(), "2001:db8:1:2::/64".into(), 1),
                (KEY.into(), "2001:db8:1:3::/64".into(), 1)
            ]
        );
        assert!(now[0].message.contains("2001:db8:1:2::/64"), "{now:?}");
        let later = c.due(t + MINUTE, false);
        assert_eq!(named(&later), [(KEY.into(), "2001:db8:1:2::/64".into(), 2)]);
        // The loopback address is an IPv6 address like any other.
        assert_eq!(named(&c.note(t, KEY, ip("::1")))[0].1, "::/64");
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let c = FailureCoalescer::new(MINUTE);
        let t = Instant::now();
        let mut recs = c.note(t, LOGIN, ip("::ffff:192.0.2.7"));
        recs.extend(c.note(t, LOGIN, ip("192.0.2.7")));
        recs.extend(c.note(t, LOGIN, ip("::ffff:192.0.2.7")));
        recs.extend(c.due(t + MINUTE, false));
        assert_eq!(
            named(&recs),
            [
                (LOGIN.into(), "192.0.2.7".into(), 1),
                (LOGIN.into(), "192.0.2.7".into(), 2)
            ]
        );
    }

    #[test]
    fn at_most_20_records_a_minute_then_one_summary() {
        let c = FailureCoalescer::new(MINUTE);
        let t = Instant::now();
        let mut written = Vec::new();
        // A source that keeps trying: its first record, and a place for the
        // record that counts the rest when the minute ends.
        for _ in 0..5 {
            written.extend(c.note(t, KEY, ip("198.51.100.1")));
        }
        // 300 more sources, each once, half of them at the sign-in form.
        for n in 0..300u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            let action = if n % 2 == 0 { KEY } else { LOGIN };
            written.extend(c.note(t + Duration::from_secs(1), action, a));
        }
        assert_eq!(written.len(), 19, "19 at once, one place kept: {written:?}");
        // Nothing is due before the minute ends.
        assert!(c.due(t + Duration::from_secs(59), false).is_empty());
        let end = c.due(t + MINUTE, false);
        written.extend(end.iter().cloned());
        assert_eq!(written.len(), 21, "{written:?}");
        let summaries: Vec<&NewRecord> = written.iter().filter(|r| r.action == SUMMARY).collect();
        assert_eq!(summaries.len(), 1);
        let s = summaries[0];
        assert_eq!(meta_u64(s, "count"), 300 - 18);
        assert_eq!(meta_u64(s, "sources"), 300 - 18);
        assert_eq!(
            meta_u64(s, "key_rejected") + meta_u64(s, "login_failed"),
            282
        );
        assert_eq!(s.category, "auth");
        assert_eq!(s.severity, actlog_engine::Severity::Warning);
        assert_eq!(s.actor.as_deref(), Some(actlog_engine::SYSTEM_ACTOR));
        // The loud source's follow-up was written, with the rest of its count.
        assert!(named(&end).contains(&(KEY.into(), "198.51.100.1".into(), 4)));
        // Every failure is counted exactly once.
        let total: u64 = written.iter().map(|r| meta_u64(r, "count")).sum();
        assert_eq!(total, 305);
        // The next minute starts afresh.
        let next = c.note(t + MINUTE + Duration::from_secs(1), KEY, ip("10.0.0.0"));
        assert_eq!(named(&next), [(KEY.into(), "10.0.0.0".into(), 1)]);
    }

    #[test]
    fn a_minute_that_ended_is_closed_by_the_next_failure() {
        let c = FailureCoalescer::new(MINUTE);
        let t = Instant::now();
        assert_eq!(c.note(t, KEY, ip("192.0.2.1")).len(), 1);
        assert!(c.note(t, KEY, ip("192.0.2.1")).is_empty());
        // Past the end but before any flush: the old minute's record first,
        // then the new minute's first.
        let recs = c.note(t + MINUTE, KEY, ip("192.0.2.1"));
        assert_eq!(
            named(&recs),
            [
                (KEY.into(), "192.0.2.1".into(), 1),
                (KEY.into(), "192.0.2.1".into(), 1)
            ]
        );
        assert!(recs[0].message.contains("more"), "{recs:?}");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_sources() {
        let c = FailureCoalescer::new(MINUTE);
        let t = Instant::now();
        let mut written = 0;
        for n in 0..100_000u64 {
            let a = Ipv6Addr::from(u128::from(n) << 64 | 1);
            written += c.note(t, KEY, IpAddr::V6(a)).len();
            assert!(c.tracked() <= 5_000, "{} sources held", c.tracked());
        }
        assert_eq!(written, 20);
        let end = c.due(t + MINUTE, false);
        assert_eq!(end.len(), 1, "{end:?}");
        assert_eq!(meta_u64(&end[0], "count"), 100_000 - 20);
        // Past what is held, the number of sources is a lower bound.
        assert!(meta_u64(&end[0], "sources") < 100_000 - 20);
        assert_eq!(end[0].metadata.get("sources_capped"), Some(&json!(true)));
        assert_eq!(c.tracked(), 0);
    }

    #[test]
    fn sign_ins_are_coalesced_per_key() {
        let c = LoginCoalescer::new(MINUTE);
        let t = Instant::now();
        let mut at_once = Vec::new();
        for _ in 0..200 {
            at_once.extend(c.note(t, "key_a", "kiosk"));
        }
        at_once.extend(c.note(t, "key_b", "alice"));
        let who: Vec<(Option<&str>, u64)> = at_once
            .iter()
            .map(|r| (r.actor.as_deref(), meta_u64(r, "count")))
            .collect();
        assert_eq!(who, [(Some("kiosk"), 1), (Some("alice"), 1)]);
        assert!(at_once.iter().all(|r| r.action == LOGIN_SUCCEEDED));
        assert!(c.due(t + Duration::from_secs(30), false).is_empty());
        let end = c.due(t + MINUTE, false);
        assert_eq!(end.len(), 1, "{end:?}");
        assert_eq!(end[0].actor.as_deref(), Some("kiosk"));
        assert_eq!(meta_u64(&end[0], "count"), 199);
        assert!(c.due(t + MINUTE * 2, true).is_empty());
    }

    #[test]
    fn a_key_keeps_its_20_newest_sessions() {
        let s = Sessions::default();
        let t = Instant::now();
        let a: Vec<String> = (0..25).map(|_| s.create_at("key_a", t)).collect();
        let b = s.create_at("key_b", t);
        for (i, id) in a.iter().enumerate() {
            let live = s.lookup(id).is_some();
            assert_eq!(live, i >= 25 - SESSIONS_PER_KEY, "session {i}");
        }
        assert_eq!(s.lookup(&b).as_deref(), Some("key_b"));
        assert_eq!(s.len(), SESSIONS_PER_KEY + 1);
        s.remove(&a[24]);
        assert!(s.lookup(&a[24]).is_none());
        assert_eq!(s.len(), SESSIONS_PER_KEY);
        s.end_key("key_a");
        assert!(a.iter().all(|id| s.lookup(id).is_none()));
        assert_eq!(s.len(), 1);
        // Expired sessions go on the tick.
        s.prune_at(t + SESSION_TTL - Duration::from_secs(1));
        assert_eq!(s.len(), 1);
        s.prune_at(t + SESSION_TTL);
        assert!(s.is_empty());
        // A key's expired sessions go when it signs in again, too.
        let old = s.create_at("key_c", t);
        s.create_at("key_c", t + SESSION_TTL);
        assert!(s.lookup(&old).is_none());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn sessions_in_all_are_capped_oldest_first() {
        let s = Sessions::default();
        let t = Instant::now();
        let keys = MAX_SESSIONS / SESSIONS_PER_KEY + 1;
        let mut first = None;
        for k in 0..keys {
            for i in 0..SESSIONS_PER_KEY {
                let at = t + Duration::from_millis((k * SESSIONS_PER_KEY + i) as u64);
                let id = s.create_at(&format!("key_{k}"), at);
                first.get_or_insert(id);
            }
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        let first = first.expect("created");
        assert!(s.lookup(&first).is_none(), "the oldest of all ended");
    }
}
