//! Black-box tests of what the server must hold against a hostile network,
//! a hostile client and a same-site page (docs/OPERATIONS.md, "Security"):
//! each test is named for the rule it checks and speaks to the real `actlog`
//! binary on loopback, with raw sockets where a well-behaved HTTP client
//! would not send what an attacker does.

#[allow(dead_code)] // each test binary uses part of the shared helpers
mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

const EVIL: &str = "https://evil.example";

/// Reads from `tcp` until the server closes it; the bytes read, or `None`
/// if it is still open after `within` (generous: the point is that it
/// closes at all, not how fast).
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.addr).await.expect("connect")
}

/// The JSON body of a raw HTTP/1.1 answer.
fn raw_json(answer: &[u8]) -> Value {
    let text = String::from_utf8_lossy(answer);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Signs in as the web UI does (from the server's own page) and returns the
/// `name=value` cookie pair.
async fn sign_in(s: &Server, token: &str) -> String {
    let r = s
        .post("/api/v1/session", None, &json!({ "token": token }))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let c = r.header("set-cookie").expect("set-cookie");
    c.split(';').next().expect("pair").trim().to_string()
}

/// A request with the session cookie, the given Origin (or none) and a
/// JSON or other body.
fn cookie_request(
    s: &Server,
    method: Method,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut rb = s.http.request(method, s.url(path)).header("cookie", cookie);
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    rb
}

fn event() -> Value {
    json!({"category": "sec", "action": "sec.test", "message": "a test event"})
}

// --- Finding 5: slow and idle connections, the connection cap -------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_cut() {
    let tmp = tempdir();
    let s = Server::start_with(
        tmp.path(),
        &[
            ("ACTLOG_HEADER_TIMEOUT", "1"),
            ("ACTLOG_BODY_TIMEOUT", "1"),
            // Longer than the body timeout, so the slow body gets its 408.
            ("ACTLOG_IDLE_TIMEOUT", "3"),
        ],
    );
    let limit = Duration::from_secs(30);
    // Connected, never a byte.
    let mut idle = connect(&s).await;
    // Half a header block, then nothing (slowloris).
    let mut partial = connect(&s).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // One request answered, then the kept-alive connection stays silent.
    let mut kept = connect(&s).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // A body announced at 1 MB of which one byte arrives.
    let mut slow_body = connect(&s).await;
    slow_body
        .write_all(
            format!(
                "POST /api/v1/activity HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .expect("write");

    assert!(
        read_until_closed(&mut idle, limit).await.is_some(),
        "an idle connection stayed open"
    );
    assert!(
        read_until_closed(&mut partial, limit).await.is_some(),
        "a connection trickling its headers stayed open"
    );
    let answered = read_until_closed(&mut kept, limit)
        .await
        .expect("a silent kept-alive connection stayed open");
    assert!(answered.starts_with(b"HTTP/1.1 200"), "{answered:?}");
    let answer = read_until_closed(&mut slow_body, limit)
        .await
        .expect("a connection trickling its body stayed open");
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(raw_json(&answer)["error"]["code"], json!("request_timeout"));
    // The server is fine and counted what it closed.
    let m = s.get("/metrics", None).await.text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("actlog_connections_idle_closed_total ") && !l.ends_with(" 0")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_get_a_503_and_the_cap_frees_up() {
    let tmp = tempdir();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_MAX_CONNECTIONS", "4")]);
    // Wait until the start-up requests of the harness (none) and the
    // server's own work are done, then hold every place with silent sockets.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&s).await);
    }
    // Give the server a moment to accept them all: poll until a fifth is refused.
    let deadline = Deadline::secs(30);
    let refusal = loop {
        let mut extra = connect(&s).await;
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let got = read_until_closed(&mut extra, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if got.starts_with(b"HTTP/1.1 503") {
            break got;
        }
        deadline.tick("the fifth connection to be refused").await;
    };
    let v = raw_json(&refusal);
    assert_eq!(v["error"]["code"], json!("unavailable"), "{v}");
    // One place frees up: requests are served again.
    drop(held.pop());
    let deadline = Deadline::secs(30);
    loop {
        let mut c = connect(&s).await;
        let _ = c
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let got = read_until_closed(&mut c, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if got.starts_with(b"HTTP/1.1 200") {
            break;
        }
        deadline.tick("a freed place to serve again").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_beyond_the_cap_get_a_503() {
    let tmp = tempdir();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_MAX_SUBSCRIBERS", "2")]);
    let sse = Sse::open(&s, "", None).await;
    let (ws, _) = ws_connect(&s, Some(ADMIN)).await.expect("ws");
    // A third stream of either kind is refused, clearly.
    s.get("/api/v1/activity/stream", Some(ADMIN))
        .await
        .assert_error(503, "unavailable", None, None);
    match ws_connect(&s, Some(ADMIN)).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 503),
        other => panic!("a third stream was accepted: {:?}", other.map(|_| ())),
    }
    // Closing one frees its place.
    drop(sse);
    drop(ws);
    let deadline = Deadline::secs(30);
    loop {
        let r = s
            .request(Method::GET, "/api/v1/activity/stream", Some(ADMIN))
            .send()
            .await
            .expect("request");
        if r.status().as_u16() == 200 {
            break;
        }
        deadline.tick("a closed stream's place to free up").await;
    }
}

// --- Finding 3: the unauthenticated sign-in body --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_takes_a_small_typed_body() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let post = |body: Vec<u8>| {
        s.request(Method::POST, "/api/v1/session", None)
            .header("content-type", "application/json")
            .body(body)
    };
    // The review's 8 MiB array: refused by size, never parsed.
    let mut big = b"[".to_vec();
    big.extend(std::iter::repeat_n(b"0,".as_slice(), 4 << 20).flatten());
    big.extend_from_slice(b"0]");
    s.send(post(big))
        .await
        .assert_error(413, "payload_too_large", None, None);
    // Just over 4 KiB is too much for one token.
    let token = "t".repeat(4100);
    s.send(post(
        serde_json::to_vec(&json!({ "token": token })).expect("json"),
    ))
    .await
    .assert_error(413, "payload_too_large", None, None);
    // The shape is exactly {"token": string}.
    s.send(post(b"[0,0,0]".to_vec()))
        .await
        .assert_error(422, "invalid_field", Some("token"), None);
    s.send(post(br#"{"token":"x","admin":true}"#.to_vec()))
        .await
        .assert_error(422, "invalid_field", Some("admin"), None);
    s.send(post(br#"{"token":5}"#.to_vec())).await.assert_error(
        422,
        "invalid_field",
        Some("token"),
        None,
    );
    s.send(post(br#"{"token":"#.to_vec()))
        .await
        .assert_error(400, "invalid_json", None, None);
    // And a real token still signs in.
    sign_in(&s, ADMIN).await;
}

// --- Finding 4: a same-site page and the session cookie -------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_need_the_own_origin_and_a_json_body() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let cookie = sign_in(&s, ADMIN).await;
    let own = s.origin();

    // Writes with the cookie from another origin, or with no Origin: 403.
    for origin in [Some(EVIL), Some("null"), None, Some("http://127.0.0.1:1")] {
        let r = s
            .send(
                cookie_request(&s, Method::POST, "/api/v1/activity", &cookie, origin)
                    .header("content-type", "application/json")
                    .body(event().to_string()),
            )
            .await;
        r.assert_error(403, "forbidden", None, None);
        let r = s
            .send(
                cookie_request(&s, Method::POST, "/api/v1/keys", &cookie, origin)
                    .header("content-type", "text/plain")
                    .body(r#"{"label":"csrf=x","role":"admin"}"#),
            )
            .await;
        r.assert_error(403, "forbidden", None, None);
        let r = s
            .send(
                cookie_request(&s, Method::PUT, "/api/v1/activity/settings", &cookie, origin)
                    .json(&json!({"enabled": false, "retention": {"max_days": null, "max_entries": null}})),
            )
            .await;
        r.assert_error(403, "forbidden", None, None);
        let r = s
            .send(cookie_request(
                &s,
                Method::DELETE,
                "/api/v1/activity?confirm=true",
                &cookie,
                origin,
            ))
            .await;
        r.assert_error(403, "forbidden", None, None);
    }
    // From the own origin, but a form's content type: 415.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = s
            .send(
                cookie_request(&s, Method::POST, "/api/v1/activity", &cookie, Some(&own))
                    .header("content-type", ct)
                    .body(event().to_string()),
            )
            .await;
        r.assert_error(415, "unsupported_media_type", None, None);
    }
    // Nothing of the above was stored, no key made, nothing cleared.
    let keys = s.get_ok("/api/v1/keys").await;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(
        s.get_ok("/api/v1/activity/settings").await["enabled"],
        json!(true)
    );
    assert!(s.walk(ADMIN, "category=sec", 10).await.is_empty());

    // The web UI's own request passes.
    let r = s
        .send(
            cookie_request(&s, Method::POST, "/api/v1/activity", &cookie, Some(&own))
                .json(&event()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Bearer requests are not subject to either rule.
    let r = s
        .send(
            s.request(Method::POST, "/api/v1/activity", Some(ADMIN))
                .header("origin", EVIL)
                .header("content-type", "text/plain")
                .body(event().to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_websocket_upgrades_and_sign_ins_are_refused() {
    use tungstenite::client::IntoClientRequest as _;
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let cookie = sign_in(&s, ADMIN).await;
    let ws_with = |origin: Option<&str>| {
        let mut req = format!("ws://{}/api/v1/events/ws", s.addr)
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("cookie", cookie.parse().expect("header"));
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(req)
    };
    for origin in [Some(EVIL), None] {
        match ws_with(origin).await {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
            other => panic!(
                "a cookie WebSocket from {origin:?} was accepted: {:?}",
                other.map(|_| ())
            ),
        }
    }
    let (mut ws, _) = ws_with(Some(&s.origin())).await.expect("own origin");
    s.ingest(ADMIN, &event()).await;
    let m = ws_next(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(m["type"], json!("activity_logged"));

    // Login CSRF: another origin cannot sign the browser in (with any key).
    for origin in [Some(EVIL), None] {
        let mut rb = s
            .http
            .post(s.url("/api/v1/session"))
            .header("content-type", "text/plain")
            .body(format!(r#"{{"token":"{ADMIN}","x":"="}}"#));
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        let r = s.send(rb).await;
        r.assert_error(403, "forbidden", None, None);
        assert!(r.header("set-cookie").is_none());
    }
}

// --- v1.1 request rules ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_wins_over_a_stale_cookie() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let r = s
        .send(
            s.request(Method::GET, "/api/v1/activity/stats", Some(ADMIN))
                .header("cookie", "actlog_session=stale-session-from-yesterday"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // And a bad bearer token is not rescued by a good cookie.
    let cookie = sign_in(&s, ADMIN).await;
    s.send(
        s.request(
            Method::GET,
            "/api/v1/activity/stats",
            Some("actlog_wrong-token-0000000000000000"),
        )
        .header("cookie", cookie),
    )
    .await
    .assert_error(401, "unauthorized", None, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_answer_says_no_store() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let r = s
        .post(
            "/api/v1/keys",
            Some(ADMIN),
            &json!({"label": "one-time", "role": "reader"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let mut answers = vec![("POST /keys (the one-time token)", r)];
    for (what, path, token) in [
        ("stats", "/api/v1/activity/stats", Some(ADMIN)),
        ("export", "/api/v1/activity/export?format=csv", Some(ADMIN)),
        ("401", "/api/v1/activity", None),
        ("404", "/api/v1/activity/999999", Some(ADMIN)),
        ("unknown path", "/api/v1/nope", Some(ADMIN)),
        ("openapi", "/api/v1/openapi.json", None),
        ("backup listing", "/api/v1/backup", Some(ADMIN)),
    ] {
        answers.push((what, s.get(path, token).await));
    }
    answers.push((
        "405",
        s.call(Method::PATCH, "/api/v1/activity", Some(ADMIN), None)
            .await,
    ));
    for (what, r) in answers {
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_raised_by_the_framework_have_the_json_shape() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    s.get("/api/v1/activity/%FF", Some(ADMIN))
        .await
        .assert_error(422, "invalid_field", Some("id"), None);
    s.get("/api/v1/backup/files/keys.json?len=abc", Some(ADMIN))
        .await
        .assert_error(422, "invalid_field", Some("len"), None);
    s.get("/api/v1/events/ws", Some(ADMIN))
        .await
        .assert_error(400, "bad_request", None, None);
    s.call(Method::PATCH, "/api/v1/activity", Some(ADMIN), None)
        .await
        .assert_error(405, "method_not_allowed", None, None);
    s.get("/assets/%FF", None)
        .await
        .assert_error(404, "not_found", None, None);
    // Malformed JSON is 400 whatever else is wrong with it.
    let raw = |body: Vec<u8>| {
        s.request(Method::POST, "/api/v1/activity", Some(ADMIN))
            .header("content-type", "application/json")
            .body(body)
    };
    let mut bad_utf8 = br#"{"category":"a","action":"a.b","message":"bad "#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(br#" utf8"}"#);
    let deep = format!(
        r#"{{"category":"a","action":"a.b","message":"m","metadata":{{"x":{}{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    for (what, body) in [
        ("invalid UTF-8", bad_utf8),
        (
            "a truncated body",
            br#"[{"category":"a","action":"a.b","message":"m"},{"cat"#.to_vec(),
        ),
        (
            "a lone surrogate",
            br#"{"category":"a","action":"a.b","message":"\ud800"}"#.to_vec(),
        ),
        ("nesting past the parser's limit", deep.into_bytes()),
        (
            "a field error, then a syntax error",
            br#"{"category":5, "#.to_vec(),
        ),
    ] {
        let r = s.send(raw(body)).await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].clone()),
            (400, json!("invalid_json")),
            "{what}: {}",
            r.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_equal_to_until_is_an_empty_window() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let id = s.ingest(ADMIN, &event()).await[0];
    let ts = s.get_ok(&format!("/api/v1/activity/{id}")).await["ts"]
        .as_str()
        .expect("ts")
        .to_string();
    let t = enc(&ts);
    let v = s
        .get_ok(&format!("/api/v1/activity?since={t}&until={t}"))
        .await;
    assert_eq!(v, json!({"items": [], "next_cursor": null}));
    let v = s
        .get_ok(&format!(
            "/api/v1/activity/histogram?bucket=1m&since={t}&until={t}"
        ))
        .await;
    assert_eq!(v["buckets"], json!([]));
    let v = s
        .get_ok(&format!(
            "/api/v1/activity/facets/category?since={t}&until={t}"
        ))
        .await;
    assert_eq!(v["values"], json!([]));
    // `since` later than `until` is still an error, naming `until`.
    let later = enc(&fmt_ts(parse_ts(&ts) + 1));
    for path in ["/api/v1/activity", "/api/v1/activity/histogram"] {
        s.get(&format!("{path}?since={later}&until={t}"), Some(ADMIN))
            .await
            .assert_error(422, "invalid_field", Some("until"), None);
    }
    // And the record itself is in the window [ts, ts + 1µs).
    let v = s
        .get_ok(&format!("/api/v1/activity?since={t}&until={later}"))
        .await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
}

// --- Finding 8: settings go to admins only --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_do_not_receive_settings_changed() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (_, reader) = s.create_key("reader-ws", "reader").await;
    let (as_reader, _) = ws_connect(&s, Some(&reader)).await.expect("reader ws");
    let (as_admin, _) = ws_connect(&s, Some(ADMIN)).await.expect("admin ws");
    let r = s
        .put(
            "/api/v1/activity/settings",
            Some(ADMIN),
            &json!({"enabled": true, "retention": {"max_days": 3650, "max_entries": null}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A sentinel after the change: once a subscriber has it, it would have
    // had the settings message before it.
    let sentinel = s.ingest(ADMIN, &event()).await[0];
    let until_sentinel = |mut ws: Ws| async move {
        let mut kinds = Vec::new();
        loop {
            let m = ws_next(&mut ws, Duration::from_secs(30)).await;
            kinds.push(m["type"].as_str().unwrap_or("").to_string());
            if m["type"] == json!("activity_logged") && m["data"]["id"] == json!(sentinel) {
                return kinds;
            }
        }
    };
    let admin_saw = until_sentinel(as_admin).await;
    assert!(
        admin_saw.iter().any(|k| k == "settings_changed"),
        "{admin_saw:?}"
    );
    let reader_saw = until_sentinel(as_reader).await;
    assert!(
        !reader_saw.iter().any(|k| k == "settings_changed"),
        "{reader_saw:?}"
    );
}

// --- Finding 13: WebSocket client messages ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_messages_are_small() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (mut ws, _) = ws_connect(&s, Some(ADMIN)).await.expect("ws");
    // A small message is ignored; the connection stays.
    ws.send(tungstenite::Message::Text("hello".into()))
        .await
        .expect("send");
    s.ingest(ADMIN, &event()).await;
    assert_eq!(
        ws_next(&mut ws, Duration::from_secs(30)).await["type"],
        json!("activity_logged")
    );
    // A 64 KiB one ends it.
    let _ = ws
        .send(tungstenite::Message::Binary(vec![0u8; 64 << 10].into()))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a 64 KiB client message did not end the WebSocket"
    );
}

// --- Finding 9: the bootstrap token ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_or_padded_admin_tokens_refuse_to_start_and_the_token_leaves_the_environment() {
    let tmp = tempdir();
    for (what, token) in [
        ("8 characters in 32 bytes", "😀".repeat(8)),
        ("a leading space", format!(" {}", "abcdefgh".repeat(5))),
        ("a trailing newline", format!("{}\n", "abcdefgh".repeat(5))),
        ("40 identical characters", "a".repeat(40)),
        ("7 distinct characters", "abcdefg".repeat(6)),
    ] {
        let mut child = actlog_serve(&tmp.path().join("data"))
            .env("ACTLOG_ADMIN_TOKEN", &token)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let Some(status) = wait_exit(&mut child, Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("actlog started with an admin token with {what}");
        };
        let out = child.wait_with_output().expect("output");
        assert_eq!(status.code(), Some(2), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("ACTLOG_ADMIN_TOKEN"), "{what}: {stderr}");
        assert!(
            !stderr.contains(token.trim()),
            "{what}: the token was echoed: {stderr}"
        );
    }
    let s = Server::start(tmp.path());
    assert_eq!(
        s.get("/api/v1/activity/stats", Some(ADMIN)).await.status,
        200
    );
    let environ = std::fs::read(format!("/proc/{}/environ", s.pid())).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    // (The name may stay, emptied; the value must be gone.)
    assert!(
        !environ.contains(ADMIN),
        "the token is still in the environment"
    );
}

// --- Finding 10: file permissions ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    s.ingest(ADMIN, &event()).await;
    s.create_key("perm-check", "reader").await;
    let r = s
        .put(
            "/api/v1/activity/settings",
            Some(ADMIN),
            &json!({"enabled": true, "retention": {"max_days": 30, "max_entries": null}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&s.data), 0o700, "the data directory");
    let mut seen = Vec::new();
    let mut dirs = vec![s.data.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                dirs.push(p);
            } else {
                assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
                seen.push(p.file_name().map(|n| n.to_string_lossy().into_owned()));
            }
        }
    }
    for must in ["keys.json", "settings.json"] {
        assert!(
            seen.iter().any(|n| n.as_deref() == Some(must)),
            "{must} in {seen:?}"
        );
    }
    assert!(
        seen.iter().flatten().any(|n| n.ends_with(".log")),
        "a segment in {seen:?}"
    );
}

// --- Finding 7: the cookie behind TLS --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_tls_the_cookie_is_secure_and_host_prefixed() {
    let tmp = tempdir();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_SECURE_COOKIE", "true")]);
    let r = s
        .post("/api/v1/session", None, &json!({ "token": ADMIN }))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let set = r.header("set-cookie").expect("set-cookie");
    let attrs: Vec<String> = set.split(';').map(|a| a.trim().to_lowercase()).collect();
    assert!(attrs[0].starts_with("__host-actlog_session="), "{set}");
    for a in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|x| x == a), "{a} in {set}");
    }
    assert!(!attrs.iter().any(|x| x.starts_with("domain=")), "{set}");
    let pair = set.split(';').next().expect("pair").trim().to_string();
    let r = s
        .send(
            s.http
                .get(s.url("/api/v1/activity/stats"))
                .header("cookie", &pair),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The unprefixed name (which a sibling subdomain could plant) is not read.
    let value = pair.split_once('=').expect("pair").1;
    s.send(
        s.http
            .get(s.url("/api/v1/activity/stats"))
            .header("cookie", format!("actlog_session={value}")),
    )
    .await
    .assert_error(401, "unauthorized", None, None);

    // With --public-url, the own origin is the public one.
    let tmp2 = tempdir();
    let p = Server::start_with(
        tmp2.path(),
        &[("ACTLOG_PUBLIC_URL", "https://log.example.org")],
    );
    let login = |origin: String| {
        p.http
            .post(p.url("/api/v1/session"))
            .header("origin", origin)
            .json(&json!({ "token": ADMIN }))
    };
    p.send(login(p.origin()))
        .await
        .assert_error(403, "forbidden", None, None);
    let r = p.send(login("https://log.example.org".into())).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r
        .header("set-cookie")
        .is_some_and(|c| c.starts_with("__Host-") && c.contains("Secure")));
}

// --- v1.1: the first record of every run ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_started_is_the_first_record_of_every_run() {
    let tmp = tempdir();
    for run in 0..3 {
        let mut s = Server::start(tmp.path());
        s.wait_records("action=system.server_started", run + 1)
            .await;
        if run == 0 {
            s.wait_records("action=auth.key_created", 1).await;
        }
        let all = s.all_records().await; // oldest first
        let actions: Vec<&str> = all
            .iter()
            .map(|r| r["action"].as_str().unwrap_or(""))
            .collect();
        // This run begins after the previous run's shutdown record.
        let begins = actions
            .iter()
            .rposition(|a| *a == "system.server_shutting_down")
            .map_or(0, |i| i + 1);
        assert_eq!(
            actions.get(begins),
            Some(&"system.server_started"),
            "run {run}: {actions:?}"
        );
        if run == 0 {
            assert_eq!(actions.get(1), Some(&"auth.key_created"), "{actions:?}");
        }
        assert!(s.terminate().success());
    }
}

// --- From the adversarial review of this hardening --------------------------

/// A connection that never sends a byte gets the header timeout, not the
/// (longer) idle timeout: hyper's header timer starts with the first byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_gets_only_the_header_timeout() {
    let tmp = tempdir();
    let s = Server::start_with(
        tmp.path(),
        &[
            ("ACTLOG_HEADER_TIMEOUT", "1"),
            ("ACTLOG_IDLE_TIMEOUT", "600"),
        ],
    );
    let mut silent = connect(&s).await;
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(30))
            .await
            .is_some(),
        "a connection that sent nothing was kept past the header timeout"
    );
}

/// Sign-in bodies that never arrive must not take the places that ingest
/// bodies are read in: an unauthenticated client could stop all ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sign_ins_do_not_hold_up_ingest() {
    let tmp = tempdir();
    let s = Server::start_with(
        tmp.path(),
        &[
            ("ACTLOG_BODY_TIMEOUT", "300"),
            ("ACTLOG_IDLE_TIMEOUT", "600"),
        ],
    );
    let mut stalled = Vec::new();
    for _ in 0..16 {
        let mut c = connect(&s).await;
        c.write_all(
            format!(
                "POST /api/v1/session HTTP/1.1\r\nHost: {0}\r\nOrigin: http://{0}\r\n\
                 Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{",
                s.addr
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        stalled.push(c);
    }
    // The harness client gives up after 30 s; before the fix this waited
    // for the 300 s body timeout.
    let ids = s.ingest(ADMIN, &event()).await;
    assert_eq!(ids.len(), 1);
    drop(stalled);
}

/// Fails if the server's peak resident memory grew by `mib` MiB or more
/// since it was `before_kb`.
fn assert_peak_grew_less_than(s: &Server, before_kb: u64, mib: u64) {
    let grown = peak_rss_kb(s.pid()).saturating_sub(before_kb) / 1024;
    assert!(grown < mib, "the server's peak memory grew by {grown} MiB");
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// An 8 MiB ingest body whose metadata (or a string field) is a huge array
/// is refused without building a tree from it: a tree costs ~40 times its
/// text, so one such body grew the server by over 300 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_fields_are_refused_without_being_built() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    s.ingest(ADMIN, &event()).await;
    let before = peak_rss_kb(s.pid());
    let zeros = |n: usize| {
        let mut v = String::with_capacity(2 * n + 2);
        v.push('[');
        for i in 0..n {
            if i > 0 {
                v.push(',');
            }
            v.push('0');
        }
        v.push(']');
        v
    };
    let n = (8 << 20) / 2 - 100;
    for (field, body) in [
        (
            "metadata",
            format!(
                r#"{{"category":"a","action":"a.b","message":"m","metadata":{{"a":{}}}}}"#,
                zeros(n)
            ),
        ),
        (
            "actor",
            format!(
                r#"{{"category":"a","action":"a.b","message":"m","actor":{}}}"#,
                zeros(n)
            ),
        ),
    ] {
        assert!(body.len() <= 8 << 20, "{}", body.len());
        let r = s
            .send(
                s.request(Method::POST, "/api/v1/activity", Some(ADMIN))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        r.assert_error(422, "invalid_field", Some(field), None);
    }
    // The body itself is 8 MiB (and its buffer up to twice that).
    assert_peak_grew_less_than(&s, before, 100);
}

/// A body within every per-event bound, whose events each carry metadata of
/// thousands of small values, is refused by the body's budget for metadata
/// values before its trees pile up (375 MiB for one such 8 MiB body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cannot_pile_up_metadata_trees() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    s.ingest(ADMIN, &event()).await;
    let before = peak_rss_kb(s.pid());
    let zeros = vec![0u8; 4085];
    let one = json!({"category": "a", "action": "a.b", "message": "m", "metadata": {"a": zeros}});
    let mut batch = vec![one; 999];
    // The last event is invalid, so nothing would be stored anyway.
    batch.push(json!({"category": "BAD", "action": "a.b", "message": "m"}));
    let body = serde_json::to_vec(&batch).expect("json");
    assert!(body.len() <= 8 << 20, "{}", body.len());
    let r = s
        .send(
            s.request(Method::POST, "/api/v1/activity", Some(ADMIN))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
    // Refused at the event that passes the budget of 250,000 values (the
    // 62nd, at 4,087 values each).
    r.assert_error(422, "invalid_field", Some("metadata"), Some(61));
    assert_peak_grew_less_than(&s, before, 100);
    // A full batch of maximal events (few values each) is still taken.
    let maximal = json!({"category": "m", "action": "a.b", "message": "x".repeat(1024),
        "metadata": {"d": "y".repeat(4090)}});
    let ids = s.ingest(ADMIN, &json!(vec![maximal; 1000])).await;
    assert_eq!(ids.len(), 1000);
}

/// An HTTP/2 connection that never makes a request, however many PING
/// frames it sends, is closed after the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_without_requests_is_closed() {
    let tmp = tempdir();
    let s = Server::start_with(
        tmp.path(),
        &[
            ("ACTLOG_HEADER_TIMEOUT", "1"),
            ("ACTLOG_IDLE_TIMEOUT", "600"),
        ],
    );
    let mut c = connect(&s).await;
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    let closed = loop {
        if tokio::time::Instant::now() > deadline {
            break false;
        }
        if c.write_all(ping).await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ => {}
        }
    };
    assert!(closed, "a PING-only HTTP/2 connection was kept open");
}
