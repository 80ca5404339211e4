//! Helpers for the black-box HTTP tests: a real `actlog` process per server
//! (killed when its guard drops), a thin HTTP client, SSE and WebSocket
//! readers, and the reference model of the API's filters.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rand::rngs::StdRng;
use rand::Rng as _;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_tungstenite::tungstenite;

/// The bootstrap admin token (`ACTLOG_ADMIN_TOKEN`, at least 32 characters).
pub const ADMIN: &str = "test-admin-token-Vq7Lx2Rk9Tz4Wm8Pc3Hn6Yd1";
/// The label the server gives the bootstrap admin key (the actor of what it records).
pub const ADMIN_LABEL: &str = "admin";

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// A running `actlog serve` on a loopback port; SIGKILLed when dropped.
pub struct Server {
    child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// The data directory.
    pub data: PathBuf,
    stderr_path: PathBuf,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `actlog` command with a clean environment for `serve`.
pub fn actlog_serve(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_actlog"));
    cmd.arg("serve")
        .arg("--data")
        .arg(data)
        .env_remove("ACTLOG_DATA")
        // Through the environment, so a test can listen elsewhere (IPv6).
        .env("ACTLOG_LISTEN", "127.0.0.1:0")
        .env_remove("ACTLOG_RETENTION_INTERVAL")
        .env_remove("ACTLOG_BODY_LIMIT")
        .env_remove("ACTLOG_AUTH_WINDOW_SECS")
        .env("ACTLOG_ADMIN_TOKEN", ADMIN)
        .env("ACTLOG_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

/// Sends `sig` to `pid`.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Waits for `child` to exit, at most `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Server {
    /// Starts a server on `root/data` (the same directory on every start in
    /// `root`, so a restart keeps the data).
    pub fn start(root: &Path) -> Server {
        Server::start_with(root, &[])
    }

    /// Starts a server with extra environment variables.
    pub fn start_with(root: &Path, envs: &[(&str, &str)]) -> Server {
        Server::start_at(root, &root.join("data"), envs)
    }

    /// Starts a server on the data directory `data`, keeping its stderr
    /// under `root` (e.g. when `data` is on a filesystem a test fills up).
    pub fn start_at(root: &Path, data: &Path, envs: &[(&str, &str)]) -> Server {
        let data = data.to_path_buf();
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let stderr_path = root.join(format!("server-{n}.stderr"));
        let stderr = File::create(&stderr_path).expect("stderr file");
        let mut cmd = actlog_serve(&data);
        cmd.stdout(Stdio::piped()).stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn actlog");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keep draining after the address is known, so the child never
            // blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("actlog is listening on http://") {
                        break rest.trim_end_matches('/').parse::<SocketAddr>().ok();
                    }
                }
                Err(_) => break None,
            }
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "actlog did not report its address; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Server {
            child,
            addr,
            data,
            stderr_path,
            http,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (at most 10 s).
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.pid(), libc::SIGTERM);
        let st = wait_exit(&mut self.child, Duration::from_secs(10));
        st.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM; stderr:\n{}", self.stderr()))
    }

    /// Waits for the process to exit (after a signal sent elsewhere).
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let st = wait_exit(&mut self.child, within);
        st.unwrap_or_else(|| panic!("no exit within {within:?}; stderr:\n{}", self.stderr()))
    }

    /// SIGKILL, and reaps the process.
    pub fn sigkill(&mut self) {
        signal(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's own origin, as its web UI's browser sends it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A request with an optional bearer token.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match token {
            Some(t) => rb.bearer_auth(t),
            // Without a token the client plays the web UI, whose browser
            // sends the page's origin (docs/API.md, "Requests").
            None => rb.header("origin", self.origin()),
        }
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let resp = rb.send().await.expect("request");
        Resp::read(resp).await
    }

    /// A request with an optional token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut rb = self.request(method, path, token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::DELETE, path, token, None).await
    }

    /// GET as admin, expecting 200 and JSON.
    pub async fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path, Some(ADMIN)).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// Ingests `body` (an event or a batch) with `token`, expecting 201.
    pub async fn ingest(&self, token: &str, body: &Value) -> Vec<u64> {
        let r = self.post("/api/v1/activity", Some(token), body).await;
        assert_eq!(r.status, 201, "ingest: {}", r.text());
        ids_of(&r.json())
    }

    /// Walks every page of `GET /activity?{query}&limit={limit}`; returns the
    /// items and checks the page invariants (full pages until the last, a
    /// cursor exactly when more follows).
    pub async fn walk(&self, token: &str, query: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for page_no in 0.. {
            assert!(page_no < 100_000, "endless walk");
            let mut path = format!("/api/v1/activity?{query}&limit={limit}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", enc(c)));
            }
            let r = self.get(&path, Some(token)).await;
            assert_eq!(r.status, 200, "GET {path}: {}", r.text());
            let v = r.json();
            let page = v["items"].as_array().expect("items").clone();
            assert!(page.len() <= limit, "page larger than limit: {path}");
            let n = page.len();
            items.extend(page);
            match &v["next_cursor"] {
                Value::String(c) => {
                    assert_eq!(n, limit, "a page before the last is full: {path}");
                    cursor = Some(c.clone());
                }
                Value::Null => break,
                other => panic!("next_cursor is {other}"),
            }
        }
        items
    }

    /// Every visible record, oldest first.
    pub async fn all_records(&self) -> Vec<Value> {
        self.walk(ADMIN, "order=asc", 1000).await
    }

    /// Polls `GET /activity?{query}` until at least `n` records match (5 s).
    pub async fn wait_records(&self, query: &str, n: usize) -> Vec<Value> {
        let d = Deadline::secs(5);
        loop {
            let items = self.walk(ADMIN, query, 1000).await;
            if items.len() >= n {
                return items;
            }
            d.tick(&format!(
                "{n} records matching {query}, have {}",
                items.len()
            ))
            .await;
        }
    }

    /// `GET /api/v1/activity/stats`.
    pub async fn stats(&self) -> Value {
        self.get_ok("/api/v1/activity/stats").await
    }

    /// Creates a key, returns (id, token).
    pub async fn create_key(&self, label: &str, role: &str) -> (String, String) {
        let r = self
            .post(
                "/api/v1/keys",
                Some(ADMIN),
                &json!({"label": label, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "create key: {}", r.text());
        let v = r.json();
        (
            v["id"].as_str().expect("id").to_string(),
            v["token"].as_str().expect("token").to_string(),
        )
    }
}

/// The ids of a `201 {"ids": [..]}` body.
pub fn ids_of(v: &Value) -> Vec<u64> {
    v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|i| i.as_u64().expect("id"))
        .collect()
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A whole HTTP answer.
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// Reads a response fully.
    pub async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts an error answer: status, `error.code`, and the `field` and
    /// `index` members (None = absent).
    pub fn assert_error(&self, status: u16, code: &str, field: Option<&str>, index: Option<u64>) {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], json!(code), "{v}");
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {v}"
        );
        assert_eq!(
            e.get("field").and_then(Value::as_str),
            field,
            "field of {v}"
        );
        assert_eq!(
            e.get("index").and_then(Value::as_u64),
            index,
            "index of {v}"
        );
        assert_security_headers(&self.headers, "error response");
    }
}

/// Checks the security headers every response must carry.
pub fn assert_security_headers(h: &HeaderMap, what: &str) {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(
        get("content-security-policy").contains("default-src"),
        "Content-Security-Policy on {what}: {h:?}"
    );
    assert_eq!(
        get("x-content-type-options"),
        "nosniff",
        "X-Content-Type-Options on {what}"
    );
    assert!(
        !get("referrer-policy").is_empty(),
        "Referrer-Policy on {what}"
    );
}

/// A poll deadline.
pub struct Deadline(Instant);

impl Deadline {
    /// `s` seconds from now.
    pub fn secs(s: u64) -> Deadline {
        Deadline(Instant::now() + Duration::from_secs(s))
    }

    /// Panics when past the deadline, else sleeps a little.
    pub async fn tick(&self, waiting_for: &str) {
        assert!(
            Instant::now() < self.0,
            "timed out waiting for {waiting_for}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Time left.
    pub fn left(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

// ---------------------------------------------------------------------------
// Times and the reference model of the filters.

/// RFC 3339 → µs since the epoch.
pub fn parse_ts(s: &str) -> i64 {
    let t = OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("bad time {s}: {e}"));
    i64::try_from(t.unix_timestamp_nanos() / 1000).expect("range")
}

/// µs since the epoch → `2026-11-25T20:01:02.123456Z`.
pub fn fmt_ts(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000)).expect("range");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        us.rem_euclid(1_000_000)
    )
}

/// The `ts` of a record, µs.
pub fn ts_of(r: &Value) -> i64 {
    parse_ts(r["ts"].as_str().expect("ts"))
}

/// The id of a record.
pub fn id_of(r: &Value) -> u64 {
    r["id"].as_u64().expect("id")
}

/// Words as API.md defines them: maximal runs of letters and digits, lowercased.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            run.extend(c.to_lowercase());
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The words of a `q`: (word, is_prefix).
pub fn q_words(q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut run = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            run.extend(c.to_lowercase());
            if chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()) {
                continue;
            }
            let prefix = chars.get(i + 1) == Some(&'*');
            out.push((std::mem::take(&mut run), prefix));
        }
    }
    out
}

/// A selection as the test understands it.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exact-match filters: (field, values OR-ed).
    pub fields: Vec<(&'static str, Vec<&'static str>)>,
    /// `q`.
    pub q: Option<&'static str>,
    /// `since`, µs (inclusive).
    pub since: Option<i64>,
    /// `until`, µs (exclusive).
    pub until: Option<i64>,
}

impl Filter {
    /// The query string (without order/limit).
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (f, vs) in &self.fields {
            for v in vs {
                parts.push(format!("{f}={}", enc(v)));
            }
        }
        if let Some(q) = self.q {
            parts.push(format!("q={}", enc(q)));
        }
        if let Some(s) = self.since {
            parts.push(format!("since={}", enc(&fmt_ts(s))));
        }
        if let Some(u) = self.until {
            parts.push(format!("until={}", enc(&fmt_ts(u))));
        }
        parts.join("&")
    }

    /// Whether the reference semantics select `r`.
    pub fn matches(&self, r: &Value) -> bool {
        let fields_ok = self
            .fields
            .iter()
            .all(|(f, vs)| r[*f].as_str().is_some_and(|v| vs.contains(&v)));
        let time_ok = (self.since.is_none() && self.until.is_none()) || {
            let ts = ts_of(r);
            self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
        };
        let words_ok = self.q.is_none_or(|q| {
            let mut have = Vec::new();
            for f in ["message", "entity_name", "actor"] {
                if let Some(t) = r[f].as_str() {
                    have.extend(words(t));
                }
            }
            q_words(q).iter().all(|(w, prefix)| {
                have.iter().any(|h| {
                    if *prefix {
                        h.starts_with(w.as_str())
                    } else {
                        h == w
                    }
                })
            })
        });
        fields_ok && time_ok && words_ok
    }
}

// ---------------------------------------------------------------------------
// Events.

const CATEGORIES: [&str; 4] = ["entity", "device", "scene", "automation"];
const VERBS: [&str; 3] = ["created", "updated", "deleted"];
const MESSAGES: [&str; 8] = [
    "Updated device 'Living room strip'",
    "Projector dropped frames on HDMI 2",
    "projection started in the den",
    "capture.fps fell below 24",
    "Kitchen-display rebooted",
    "Scene Movie Night activated",
    "Übersicht für Zürich aktualisiert",
    "Proj meeting moved to dev_17",
];
const ACTORS: [Option<&str>; 5] = [
    None,
    Some("kitchen-tablet"),
    Some("Alice Smith"),
    Some("ci_bot"),
    Some("projector-hub"),
];
const ENTITY_TYPES: [Option<&str>; 3] = [None, Some("device"), Some("scene")];
const ENTITY_IDS: [Option<&str>; 5] = [
    None,
    Some("dev_17"),
    Some("dev_18"),
    Some("scn_1"),
    Some("device-9"),
];
const ENTITY_NAMES: [Option<&str>; 5] = [
    None,
    Some("Living room strip"),
    Some("Projector Den"),
    Some("Kitchen display"),
    Some("Zürich office"),
];
const SEVERITIES: [Option<&str>; 4] = [None, Some("info"), Some("warning"), Some("error")];

fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.gen_range(0..xs.len())]
}

/// A random valid event with varied fields; absent optional fields are
/// sometimes left out and sometimes sent as `null`.
pub fn random_event(rng: &mut StdRng, n: usize) -> Value {
    let cat = pick(rng, &CATEGORIES);
    let mut e = Map::new();
    e.insert("category".into(), json!(cat));
    e.insert(
        "action".into(),
        json!(format!("{cat}.{}", pick(rng, &VERBS))),
    );
    e.insert(
        "message".into(),
        json!(format!("{} (#{n})", pick(rng, &MESSAGES))),
    );
    let mut opt = |rng: &mut StdRng, name: &str, v: Option<&str>| match v {
        Some(s) => {
            e.insert(name.into(), json!(s));
        }
        None => {
            if rng.gen_bool(0.5) {
                e.insert(name.into(), Value::Null);
            }
        }
    };
    let a = pick(rng, &ACTORS);
    opt(rng, "actor", a);
    let t = pick(rng, &ENTITY_TYPES);
    opt(rng, "entity_type", t);
    let i = pick(rng, &ENTITY_IDS);
    opt(rng, "entity_id", i);
    let nm = pick(rng, &ENTITY_NAMES);
    opt(rng, "entity_name", nm);
    let s = pick(rng, &SEVERITIES);
    opt(rng, "severity", s);
    match rng.gen_range(0..3) {
        0 => {}
        1 => {
            e.insert(
                "metadata".into(),
                json!({"n": n, "tags": ["x", n % 3], "ok": true}),
            );
        }
        _ => {
            e.insert("metadata".into(), Value::Null);
        }
    }
    if rng.gen_bool(0.3) {
        let us = 1_780_000_000_000_000 + rng.gen_range(0..1_000_000_000_000i64);
        e.insert("occurred_at".into(), json!(fmt_ts(us)));
    }
    Value::Object(e)
}

/// The record the API must return for `posted` (whose `occurred_at`, if
/// any, is already in canonical form), without `id` and `ts`.
pub fn expected_content(posted: &Value, default_actor: &str) -> Value {
    let s = |k: &str| match posted.get(k) {
        Some(Value::String(v)) => json!(v),
        _ => Value::Null,
    };
    json!({
        "category": s("category"),
        "action": s("action"),
        "actor": match posted.get("actor") {
            Some(Value::String(a)) => json!(a),
            _ => json!(default_actor),
        },
        "entity_type": s("entity_type"),
        "entity_id": s("entity_id"),
        "entity_name": s("entity_name"),
        "message": s("message"),
        "severity": match posted.get("severity") {
            Some(Value::String(v)) => json!(v),
            _ => json!("info"),
        },
        "metadata": match posted.get("metadata") {
            Some(Value::Object(m)) => Value::Object(m.clone()),
            _ => json!({}),
        },
        "occurred_at": s("occurred_at"),
    })
}

/// Whether `v` is an API key's id: `key_` and 12 lowercase hex digits.
pub fn is_key_id(v: &str) -> bool {
    v.strip_prefix("key_")
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Asserts a returned record has exactly the fields of a record, its `id`,
/// and the content of `posted`, `recorded_by` a key's id (a client's record
/// is never the server's, nor without provenance).
pub fn assert_record(rec: &Value, id: u64, posted: &Value, default_actor: &str) {
    let obj = rec.as_object().expect("record is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "actor",
            "category",
            "entity_id",
            "entity_name",
            "entity_type",
            "id",
            "message",
            "metadata",
            "occurred_at",
            "recorded_by",
            "severity",
            "ts"
        ],
        "record fields: {rec}"
    );
    assert!(
        rec["recorded_by"].as_str().is_some_and(is_key_id),
        "recorded_by is a key id: {rec}"
    );
    assert_eq!(rec["id"], json!(id), "{rec}");
    let ts = rec["ts"].as_str().expect("ts");
    assert_eq!(
        fmt_ts(parse_ts(ts)),
        ts,
        "ts is RFC 3339 UTC with microseconds"
    );
    let mut content = rec.clone();
    if let Some(m) = content.as_object_mut() {
        m.remove("id");
        m.remove("ts");
        m.remove("recorded_by");
    }
    assert_eq!(
        content,
        expected_content(posted, default_actor),
        "record {id}"
    );
}

// ---------------------------------------------------------------------------
// Server-Sent Events.

/// One SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `id:`
    pub id: Option<String>,
    /// `event:`
    pub event: Option<String>,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// A reader of `text/event-stream`.
pub struct Sse {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Sse {
    /// Opens `GET /api/v1/activity/stream?{query}` as admin.
    pub async fn open(server: &Server, query: &str, last_event_id: Option<u64>) -> Sse {
        Sse::open_as(server, ADMIN, query, last_event_id).await
    }

    /// Opens `GET /api/v1/activity/stream?{query}` with `token`.
    pub async fn open_as(
        server: &Server,
        token: &str,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Sse {
        let mut rb = server.request(
            Method::GET,
            &format!("/api/v1/activity/stream?{query}"),
            Some(token),
        );
        if let Some(id) = last_event_id {
            rb = rb.header("Last-Event-ID", id.to_string());
        }
        let resp = rb.send().await.expect("stream");
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
        assert_security_headers(resp.headers(), "event stream");
        Sse {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event (comments skipped); None at the end of the stream.
    /// Panics if none arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + within;
        loop {
            while let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let block = String::from_utf8(block).expect("utf-8");
                let mut ev = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if line.starts_with(':') || line.is_empty() {
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    match k {
                        "id" => ev.id = Some(v.to_string()),
                        "event" => ev.event = Some(v.to_string()),
                        "data" => {
                            if has_data {
                                ev.data.push('\n');
                            }
                            ev.data.push_str(v);
                            has_data = true;
                        }
                        _ => {}
                    }
                }
                if has_data || ev.id.is_some() || ev.event.is_some() {
                    return Some(ev);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Err(_) => panic!("no SSE event within {within:?}"),
                Ok(Err(e)) => panic!("stream error: {e}"),
                Ok(Ok(None)) => return None,
                Ok(Ok(Some(chunk))) => self.buf.extend_from_slice(&chunk),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// WebSocket.

/// A WebSocket client stream.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `/api/v1/events/ws` with an optional bearer token.
pub async fn ws_connect(
    server: &Server,
    token: Option<&str>,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    use tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{}/api/v1/events/ws", server.addr)
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    tokio_tungstenite::connect_async(req).await
}

/// The next JSON text message, checking its `type` is one of the three of v1.
pub async fn ws_next(ws: &mut Ws, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket message within {within:?}"))
            .expect("socket open")
            .expect("message");
        match msg {
            tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON message");
                let ty = v["type"].as_str().unwrap_or("");
                assert!(
                    ["activity_logged", "activity_cleared", "settings_changed"].contains(&ty),
                    "unexpected message type in {v}"
                );
                let mut keys: Vec<&String> = v.as_object().expect("object").keys().collect();
                keys.sort();
                assert_eq!(keys, ["data", "type"], "message shape {v}");
                return v;
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected WebSocket message {other:?}"),
        }
    }
}

/// A temporary directory for one test, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The value of the Prometheus metric `name` in `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("metric {name} missing:\n{text}"))
        .trim()
        .parse()
        .expect("number")
}
