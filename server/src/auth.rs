//! Who is calling: bearer tokens and web UI sessions, roles, and the
//! coalesced recording of failed authentication, bounded in records and in
//! memory whatever the flood.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
}
