//! Black-box tests of the HTTP contract (docs/API.md): every test starts
//! the real `actlog` binary on a loopback port with its own temporary data
//! directory and speaks HTTP, Server-Sent Events and WebSocket to it. The
//! server process is killed when its guard drops, whatever the outcome.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::Method;
use serde_json::{json, Value};

const SECOND: Duration = Duration::from_secs(1);

/// Waits until the records every fresh server writes by itself (the
/// bootstrap key and the start) are visible, so nothing asynchronous lands
/// later, and returns them.
async fn startup_records(s: &Server) -> Vec<Value> {
    s.wait_records("action=auth.key_created", 1).await;
    s.wait_records("action=system.server_started", 1).await;
    let all = s.all_records().await;
    let actions: BTreeSet<&str> = all.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(
        actions,
        BTreeSet::from(["auth.key_created", "system.server_started"]),
        "{all:?}"
    );
    assert_eq!(all.len(), 2);
    all
}

/// Posts `n` random events with `token` (batches of 1–25, sometimes a bare
/// object), checks each against `GET /activity/{id}` and returns the records
/// as the server returns them.
async fn populate(s: &Server, token: &str, label: &str, n: usize, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut posted = Vec::new();
    while posted.len() < n {
        let size = rng.gen_range(1..=25).min(n - posted.len());
        let base = posted.len();
        let batch: Vec<Value> = (0..size)
            .map(|k| random_event(&mut rng, base + k))
            .collect();
        let body = if size == 1 && rng.gen_bool(0.5) {
            batch[0].clone()
        } else {
            json!(batch)
        };
        let ids = s.ingest(token, &body).await;
        assert_eq!(ids.len(), size);
        posted.extend(ids.into_iter().zip(batch));
    }
    let mut out = Vec::new();
    for (id, ev) in &posted {
        let r = s.get(&format!("/api/v1/activity/{id}"), Some(ADMIN)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = r.json();
        assert_record(&rec, *id, ev, label);
        out.push(rec);
    }
    for w in out.windows(2) {
        assert!(id_of(&w[0]) < id_of(&w[1]), "ids increase");
        assert!(ts_of(&w[0]) <= ts_of(&w[1]), "ts follows id order");
    }
    out
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_security_headers() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let ok = |r: &Resp, status: u16, what: &str| {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_security_headers(&r.headers, what);
    };

    let r = s.get("/healthz", None).await;
    ok(&r, 200, "/healthz");
    assert_eq!(r.json(), json!({"status": "ok"}));

    let r = s.get("/", None).await;
    ok(&r, 200, "/");
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(r.text().to_lowercase().contains("<html"));
    let r = s.get("/assets/app.js", None).await;
    ok(&r, 200, "/assets/app.js");

    let r = s.get("/api/v1/openapi.json", None).await;
    ok(&r, 200, "openapi");
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with('3'),
        "OpenAPI 3"
    );
    for (method, path) in [
        ("post", "/api/v1/activity"),
        ("get", "/api/v1/activity"),
        ("delete", "/api/v1/activity"),
        ("get", "/api/v1/activity/{id}"),
        ("get", "/api/v1/activity/export"),
        ("get", "/api/v1/activity/stream"),
        ("get", "/api/v1/events/ws"),
        ("get", "/api/v1/activity/facets/{field}"),
        ("get", "/api/v1/activity/histogram"),
        ("get", "/api/v1/activity/settings"),
        ("put", "/api/v1/activity/settings"),
        ("get", "/api/v1/activity/stats"),
        ("post", "/api/v1/keys"),
        ("get", "/api/v1/keys"),
        ("delete", "/api/v1/keys/{id}"),
        ("post", "/api/v1/session"),
        ("delete", "/api/v1/session"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "openapi.json lacks {method} {path}"
        );
    }

    let events = json!([
        {"category": "entity", "action": "entity.created", "message": "Created scene 'Movie Night'"},
        {"category": "device", "action": "device.offline", "message": "Projector went offline",
         "entity_type": "device", "entity_id": "dev_1", "severity": "warning"},
        {"category": "entity", "action": "entity.deleted", "message": "Deleted a thing"},
    ]);
    let r = s.post("/api/v1/activity", Some(ADMIN), &events).await;
    ok(&r, 201, "POST /activity");
    let ids = ids_of(&r.json());
    assert_eq!(ids.len(), 3);

    let r = s.get("/api/v1/activity", Some(ADMIN)).await;
    ok(&r, 200, "GET /activity");
    let v = r.json();
    assert!(v["items"].as_array().expect("items").len() >= 3);
    assert!(v["next_cursor"].is_null());

    let r = s
        .get(&format!("/api/v1/activity/{}", ids[1]), Some(ADMIN))
        .await;
    ok(&r, 200, "GET /activity/{id}");
    assert_record(&r.json(), ids[1], &events[1], ADMIN_LABEL);

    for format in ["csv", "json", "ndjson"] {
        let r = s
            .get(
                &format!("/api/v1/activity/export?format={format}"),
                Some(ADMIN),
            )
            .await;
        ok(&r, 200, "export");
        assert!(r
            .header("content-disposition")
            .unwrap_or_default()
            .starts_with("attachment"));
    }

    let mut sse = Sse::open(&s, "after_id=0&category=device", None).await;
    let ev = sse.next(5 * SECOND).await.expect("an event");
    assert_eq!(ev.id, Some(ids[1].to_string()));
    drop(sse);

    let (ws, resp) = ws_connect(&s, Some(ADMIN)).await.expect("websocket");
    assert_eq!(resp.status().as_u16(), 101);
    assert_security_headers(resp.headers(), "websocket upgrade");
    drop(ws);

    let r = s.get("/api/v1/activity/facets/category", Some(ADMIN)).await;
    ok(&r, 200, "facets");
    assert_eq!(r.json()["field"], json!("category"));
    let r = s
        .get("/api/v1/activity/histogram?bucket=1h", Some(ADMIN))
        .await;
    ok(&r, 200, "histogram");
    assert_eq!(r.json()["bucket"], json!("1h"));

    let r = s.get("/api/v1/activity/settings", Some(ADMIN)).await;
    ok(&r, 200, "GET settings");
    let settings = r.json();
    let r = s
        .put("/api/v1/activity/settings", Some(ADMIN), &settings)
        .await;
    ok(&r, 200, "PUT settings");
    assert_eq!(r.json(), settings);

    let r = s.get("/api/v1/activity/stats", Some(ADMIN)).await;
    ok(&r, 200, "stats");
    let st = r.json();
    let all = s.all_records().await;
    assert_eq!(st["entries"], json!(all.len()));
    assert_eq!(st["oldest_id"], all[0]["id"]);
    assert_eq!(st["newest_id"], all[all.len() - 1]["id"]);
    assert_eq!(st["oldest_ts"], all[0]["ts"]);
    assert_eq!(st["newest_ts"], all[all.len() - 1]["ts"]);
    assert!(st["segments"].as_u64().expect("segments") >= 1);
    assert!(st["bytes"].as_u64().expect("bytes") > 0);

    let r = s
        .post(
            "/api/v1/keys",
            Some(ADMIN),
            &json!({"label": "ci", "role": "reader"}),
        )
        .await;
    ok(&r, 201, "POST /keys");
    let key_id = r.json()["id"].as_str().expect("id").to_string();
    let r = s.get("/api/v1/keys", Some(ADMIN)).await;
    ok(&r, 200, "GET /keys");
    let r = s
        .delete(&format!("/api/v1/keys/{key_id}"), Some(ADMIN))
        .await;
    ok(&r, 204, "DELETE /keys/{id}");
    assert!(r.body.is_empty());

    let r = s
        .post("/api/v1/session", None, &json!({"token": ADMIN}))
        .await;
    ok(&r, 204, "POST /session");
    let r = s.delete("/api/v1/session", None).await;
    ok(&r, 204, "DELETE /session");

    let r = s.get("/metrics", None).await;
    ok(&r, 200, "/metrics");
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    let text = r.text();
    assert_eq!(metric(&text, "actlog_ingest_records_total"), 3.0, "{text}");
    assert!(metric(&text, "actlog_fsync_total") > 0.0, "{text}");

    let r = s.delete("/api/v1/activity?confirm=true", Some(ADMIN)).await;
    ok(&r, 200, "DELETE /activity");
    assert!(r.json()["cleared"].as_u64().expect("cleared") >= 3);

    // Errors carry the headers too (checked inside assert_error).
    s.get("/api/v1/activity", None)
        .await
        .assert_error(401, "unauthorized", None, None);
    s.get("/api/v1/nope", Some(ADMIN))
        .await
        .assert_error(404, "not_found", None, None);
    s.get("/api/v1/activity?limit=0", Some(ADMIN))
        .await
        .assert_error(422, "invalid_field", Some("limit"), None);
    let bad = s
        .request(Method::POST, "/api/v1/activity", Some(ADMIN))
        .body("{");
    s.send(bad)
        .await
        .assert_error(400, "invalid_json", None, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_and_parameter_validation() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (_, reader) = s.create_key("reader-1", "reader").await;
    let ev = |extra: Value| {
        let mut e = json!({"category": "badbatch", "action": "badbatch.x", "message": "m"});
        for (k, v) in extra.as_object().expect("object") {
            e[k] = v.clone();
        }
        e
    };

    // 400
    for (method, path) in [
        (Method::POST, "/api/v1/activity"),
        (Method::PUT, "/api/v1/activity/settings"),
        (Method::POST, "/api/v1/keys"),
        (Method::POST, "/api/v1/session"),
    ] {
        let rb = s.request(method, path, Some(ADMIN)).body("{\"category\": ");
        s.send(rb)
            .await
            .assert_error(400, "invalid_json", None, None);
    }
    // 401, 403
    s.post("/api/v1/activity", None, &ev(json!({})))
        .await
        .assert_error(401, "unauthorized", None, None);
    s.post(
        "/api/v1/activity",
        Some("actlog_not-a-real-token-at-all-0000000000"),
        &ev(json!({})),
    )
    .await
    .assert_error(401, "unauthorized", None, None);
    s.post("/api/v1/activity", Some(&reader), &ev(json!({})))
        .await
        .assert_error(403, "forbidden", None, None);
    // 404
    for path in [
        "/api/v1/activity/999999",
        "/api/v1/activity/0",
        "/api/v1/activity/abc",
        "/api/v1/activity/-1",
        "/api/v1/nothing-here",
    ] {
        s.get(path, Some(ADMIN))
            .await
            .assert_error(404, "not_found", None, None);
    }
    s.delete("/api/v1/keys/key_000000000000", Some(ADMIN))
        .await
        .assert_error(404, "not_found", None, None);

    // 413: one byte over 8 MiB is refused ...
    let limit = 8 << 20;
    let mut big = vec![b' '; limit + 1];
    big[0] = b'[';
    let rb = s
        .request(Method::POST, "/api/v1/activity", Some(ADMIN))
        .header("content-type", "application/json")
        .body(big);
    s.send(rb)
        .await
        .assert_error(413, "payload_too_large", None, None);
    // ... and exactly 8 MiB holding a full batch of maximal events is taken.
    let maximal = json!({
        "category": "m".repeat(64), "action": "a".repeat(64), "actor": "A".repeat(256),
        "entity_type": "t".repeat(64), "entity_id": "i".repeat(256), "entity_name": "N".repeat(256),
        "message": "x".repeat(1024), "severity": "warning",
        "metadata": {"d": "y".repeat(4090)}, "occurred_at": "2026-01-02T03:04:05.678901Z",
    });
    let mut body = serde_json::to_vec(&vec![maximal.clone(); 1000]).expect("json");
    assert!(
        body.len() < limit,
        "a full batch of maximal events is {} bytes",
        body.len()
    );
    body.resize(limit, b' ');
    let rb = s
        .request(Method::POST, "/api/v1/activity", Some(ADMIN))
        .header("content-type", "application/json")
        .body(body);
    let r = s.send(rb).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ids = ids_of(&r.json());
    assert_eq!(ids.len(), 1000);
    let r = s
        .get(&format!("/api/v1/activity/{}", ids[999]), Some(ADMIN))
        .await;
    assert_record(&r.json(), ids[999], &maximal, ADMIN_LABEL);

    // 422 on a single event: no index.
    for (extra, field) in [
        (json!({"colour": "red"}), "colour"),
        (json!({"message": 5}), "message"),
        (json!({"message": ""}), "message"),
        (json!({"message": "x".repeat(1025)}), "message"),
        (json!({"severity": "fatal"}), "severity"),
        (json!({"category": "Bad Cat"}), "category"),
        (json!({"metadata": [1]}), "metadata"),
        (json!({"occurred_at": "soon"}), "occurred_at"),
        (json!({"actor": ""}), "actor"),
    ] {
        s.post("/api/v1/activity", Some(ADMIN), &ev(extra))
            .await
            .assert_error(422, "invalid_field", Some(field), None);
    }
    let mut missing = ev(json!({}));
    missing.as_object_mut().expect("obj").remove("action");
    s.post("/api/v1/activity", Some(ADMIN), &missing)
        .await
        .assert_error(422, "invalid_field", Some("action"), None);
    // 422 in a batch: field and index; nothing of the batch is stored.
    let mut no_message = ev(json!({}));
    no_message.as_object_mut().expect("obj").remove("message");
    s.post(
        "/api/v1/activity",
        Some(ADMIN),
        &json!([ev(json!({})), ev(json!({})), no_message]),
    )
    .await
    .assert_error(422, "invalid_field", Some("message"), Some(2));
    s.post(
        "/api/v1/activity",
        Some(ADMIN),
        &json!([ev(json!({})), ev(json!({"sevrity": "error"}))]),
    )
    .await
    .assert_error(422, "invalid_field", Some("sevrity"), Some(1));
    let r = s
        .post(
            "/api/v1/activity",
            Some(ADMIN),
            &json!([ev(json!({})), 7, ev(json!({}))]),
        )
        .await;
    r.assert_error(
        422,
        "invalid_field",
        r.json()["error"]["field"].as_str(),
        Some(1),
    );
    for body in [
        json!([]),
        json!(vec![ev(json!({})); 1001]),
        json!(5),
        json!("event"),
    ] {
        let r = s.post("/api/v1/activity", Some(ADMIN), &body).await;
        assert_eq!(r.status, 422, "{body:.50}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], json!("invalid_field"));
    }
    assert!(
        s.walk(ADMIN, "category=badbatch", 10).await.is_empty(),
        "a rejected batch stores nothing"
    );

    // null means absent; times are normalised to UTC microseconds.
    let nulls = json!({"category": "nulls", "action": "nulls.x", "message": "m", "actor": null,
        "entity_type": null, "entity_id": null, "entity_name": null, "severity": null,
        "metadata": null, "occurred_at": null});
    let id = s.ingest(ADMIN, &nulls).await[0];
    assert_record(
        &s.get_ok(&format!("/api/v1/activity/{id}")).await,
        id,
        &json!({"category": "nulls", "action": "nulls.x", "message": "m"}),
        ADMIN_LABEL,
    );
    let id = s
        .ingest(ADMIN, &json!({"category": "tz", "action": "tz.x", "message": "m", "occurred_at": "2026-11-25T21:01:02.5+01:00"}))
        .await[0];
    let rec = s.get_ok(&format!("/api/v1/activity/{id}")).await;
    assert_eq!(rec["occurred_at"], json!("2026-11-25T20:01:02.500000Z"));

    // Unknown query parameters are ignored.
    let v = s
        .get_ok("/api/v1/activity?zzz=1&limit=1&utm_source=x")
        .await;
    assert_eq!(v["items"].as_array().expect("items").len(), 1);
    // A known parameter with a bad value is a 422 naming it.
    for (path, field) in [
        ("/api/v1/activity?limit=0", "limit"),
        ("/api/v1/activity?limit=1001", "limit"),
        ("/api/v1/activity?limit=ten", "limit"),
        ("/api/v1/activity?order=sideways", "order"),
        ("/api/v1/activity?since=yesterday", "since"),
        ("/api/v1/activity?until=2026-13-01T00:00:00Z", "until"),
        (
            "/api/v1/activity?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("/api/v1/activity?cursor=!!!", "cursor"),
        ("/api/v1/activity?cursor=AAAA", "cursor"),
        ("/api/v1/activity/export?format=xml", "format"),
        ("/api/v1/activity/export?format=csv&order=up", "order"),
        ("/api/v1/activity/facets/colour", "field"),
        ("/api/v1/activity/facets/category?limit=0", "limit"),
        ("/api/v1/activity/histogram?bucket=2m", "bucket"),
        (
            "/api/v1/activity/histogram?bucket=1m&since=2000-01-01T00:00:00Z",
            "bucket",
        ),
        ("/api/v1/activity/histogram?since=nope", "since"),
        ("/api/v1/activity/stream?after_id=-1", "after_id"),
        ("/api/v1/activity?confirm=true&limit=-5", "limit"),
    ] {
        s.get(path, Some(ADMIN))
            .await
            .assert_error(422, "invalid_field", Some(field), None);
    }
    let rb = s
        .request(Method::GET, "/api/v1/activity/stream", Some(ADMIN))
        .header("Last-Event-ID", "abc");
    s.send(rb)
        .await
        .assert_error(422, "invalid_field", Some("Last-Event-ID"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_keys_and_revocation() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (writer_id, writer) = s.create_key("writer-1", "writer").await;
    let (reader_id, reader) = s.create_key("reader-1", "reader").await;
    let (admin2_id, admin2) = s.create_key("admin-2", "admin").await;
    let tokens = [ADMIN, writer.as_str(), reader.as_str(), admin2.as_str()];
    assert_eq!(
        tokens.iter().collect::<BTreeSet<_>>().len(),
        4,
        "tokens are distinct"
    );

    // Create: the token is shown once, with exactly these fields.
    let r = s
        .post(
            "/api/v1/keys",
            Some(ADMIN),
            &json!({"label": "shown-once", "role": "reader"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let created = r.json();
    let mut fields: Vec<&String> = created.as_object().expect("obj").keys().collect();
    fields.sort();
    assert_eq!(fields, ["created_at", "id", "label", "role", "token"]);
    assert_eq!(created["role"], json!("reader"));
    parse_ts(created["created_at"].as_str().expect("created_at"));
    let once = created["token"].as_str().expect("token").to_string();
    assert!(once.len() >= 32);

    // List: never a token or a hash.
    let r = s.get("/api/v1/keys", Some(ADMIN)).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for t in tokens.iter().copied().chain([once.as_str()]) {
        assert!(!text.contains(t), "GET /keys shows a token");
    }
    assert!(!text.to_lowercase().contains("hash"), "{text}");
    let listed = r.json();
    let mut roles = BTreeMap::new();
    for k in listed["keys"].as_array().expect("keys") {
        let mut f: Vec<&String> = k.as_object().expect("obj").keys().collect();
        f.sort();
        assert_eq!(f, ["created_at", "id", "label", "role"], "{k}");
        roles.insert(
            k["label"].as_str().expect("label").to_string(),
            k["role"].as_str().expect("role").to_string(),
        );
    }
    let want: BTreeMap<String, String> = [
        ("admin", "admin"),
        ("writer-1", "writer"),
        ("reader-1", "reader"),
        ("admin-2", "admin"),
        ("shown-once", "reader"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(roles, want);

    // Key validation.
    for (body, field) in [
        (json!({"label": "x", "role": "root"}), "role"),
        (json!({"label": "x"}), "role"),
        (json!({"label": "", "role": "reader"}), "label"),
        (json!({"role": "reader"}), "label"),
        (
            json!({"label": "x", "role": "reader", "scope": "all"}),
            "scope",
        ),
    ] {
        s.post("/api/v1/keys", Some(ADMIN), &body)
            .await
            .assert_error(422, "invalid_field", Some(field), None);
    }

    // The role matrix.
    let first = s
        .ingest(
            ADMIN,
            &json!({"category": "entity", "action": "entity.created", "message": "first"}),
        )
        .await[0];
    let settings = s.get_ok("/api/v1/activity/settings").await;
    let event = json!({"category": "entity", "action": "entity.updated", "message": "by role"});
    let new_key = json!({"label": "matrix", "role": "reader"});
    let get_one = format!("/api/v1/activity/{first}");
    // (method, path, body, role needed, status when allowed)
    let endpoints: Vec<(Method, &str, Option<&Value>, &str, u16)> = vec![
        (
            Method::POST,
            "/api/v1/activity",
            Some(&event),
            "writer",
            201,
        ),
        (Method::GET, "/api/v1/activity", None, "reader", 200),
        (Method::GET, &get_one, None, "reader", 200),
        (
            Method::GET,
            "/api/v1/activity/export?format=json",
            None,
            "reader",
            200,
        ),
        (
            Method::GET,
            "/api/v1/activity/facets/actor",
            None,
            "reader",
            200,
        ),
        (
            Method::GET,
            "/api/v1/activity/histogram",
            None,
            "reader",
            200,
        ),
        (Method::GET, "/api/v1/activity/stats", None, "reader", 200),
        (Method::GET, "/api/v1/activity/settings", None, "admin", 200),
        (
            Method::PUT,
            "/api/v1/activity/settings",
            Some(&settings),
            "admin",
            200,
        ),
        (Method::DELETE, "/api/v1/activity", None, "admin", 422), // no confirm: auth passed
        (Method::POST, "/api/v1/keys", Some(&new_key), "admin", 201),
        (Method::GET, "/api/v1/keys", None, "admin", 200),
        (
            Method::DELETE,
            "/api/v1/keys/key_ffffffffffff",
            None,
            "admin",
            404,
        ),
    ];
    let callers: [(&str, Option<&str>, Option<&str>); 6] = [
        ("anonymous", None, None),
        (
            "unknown token",
            Some("actlog_unknown-token-unknown-token-unknown"),
            None,
        ),
        ("writer", Some(writer.as_str()), Some("writer")),
        ("reader", Some(reader.as_str()), Some("reader")),
        ("admin", Some(ADMIN), Some("admin")),
        ("admin-2", Some(admin2.as_str()), Some("admin")),
    ];
    for (method, path, body, needed, allowed) in &endpoints {
        for (who, token, role) in &callers {
            let r = s.call(method.clone(), path, *token, *body).await;
            let what = format!("{who} {method} {path}");
            match role {
                None => r.assert_error(401, "unauthorized", None, None),
                Some(role) if *role == "admin" || role == needed => {
                    assert_eq!(r.status, *allowed, "{what}: {}", r.text())
                }
                Some(_) => r.assert_error(403, "forbidden", None, None),
            }
        }
    }
    // The live streams too.
    for (token, status) in [
        (Some(writer.as_str()), 403),
        (None, 401),
        (Some("actlog_bogus-bogus-bogus-bogus-bogus-bogus"), 401),
    ] {
        let r = s
            .request(Method::GET, "/api/v1/activity/stream", token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), status);
        match ws_connect(&s, token).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), status)
            }
            other => panic!("websocket with {token:?}: {:?}", other.map(|_| ())),
        }
    }
    let r = s
        .request(Method::GET, "/api/v1/activity/stream", Some(&reader))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    drop(r);
    ws_connect(&s, Some(&reader))
        .await
        .expect("reader may use the websocket");

    // A new key works, and its label is the default actor.
    let id = s
        .ingest(
            &writer,
            &json!({"category": "entity", "action": "entity.created", "message": "hello"}),
        )
        .await[0];
    assert_eq!(
        s.get_ok(&format!("/api/v1/activity/{id}")).await["actor"],
        json!("writer-1")
    );
    // Revocation takes effect at once.
    let r = s
        .delete(&format!("/api/v1/keys/{writer_id}"), Some(ADMIN))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    s.post("/api/v1/activity", Some(&writer), &event)
        .await
        .assert_error(401, "unauthorized", None, None);
    s.delete(&format!("/api/v1/keys/{writer_id}"), Some(ADMIN))
        .await
        .assert_error(404, "not_found", None, None);
    let keys = s.get_ok("/api/v1/keys").await;
    assert!(!keys.to_string().contains(&writer_id));
    // An admin key can revoke another admin key, which then stops at once.
    assert_eq!(
        s.delete(&format!("/api/v1/keys/{admin2_id}"), Some(ADMIN))
            .await
            .status,
        204
    );
    s.get("/api/v1/keys", Some(&admin2))
        .await
        .assert_error(401, "unauthorized", None, None);
    assert_eq!(s.get("/api/v1/activity", Some(&reader)).await.status, 200);

    // What the server recorded about the keys.
    let created = s
        .wait_records(&format!("action=auth.key_created&entity_id={writer_id}"), 1)
        .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"], json!(ADMIN_LABEL));
    assert_eq!(created[0]["entity_name"], json!("writer-1"));
    let revoked = s.wait_records("action=auth.key_revoked", 2).await;
    let revoked_ids: BTreeSet<&str> = revoked
        .iter()
        .filter_map(|r| r["entity_id"].as_str())
        .collect();
    assert_eq!(
        revoked_ids,
        BTreeSet::from([writer_id.as_str(), admin2_id.as_str()])
    );
    assert!(revoked.iter().all(|r| r["actor"] == json!(ADMIN_LABEL)));
    assert!(keys.to_string().contains(&reader_id));
}

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}

/// (name=value, lowercased attributes) of the only Set-Cookie.
fn the_cookie(r: &Resp) -> (String, Vec<String>) {
    let all = set_cookies(r);
    assert_eq!(all.len(), 1, "{all:?}");
    let mut parts = all[0].split(';').map(str::trim);
    let pair = parts.next().expect("pair").to_string();
    (pair, parts.map(str::to_lowercase).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_login_and_logout() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let with_cookie = |method: Method, path: &str, cookie: &str| {
        s.request(method, path, None)
            .header("cookie", cookie.to_string())
    };

    let r = s
        .post("/api/v1/session", None, &json!({"token": ADMIN}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let (cookie, attrs) = the_cookie(&r);
    assert!(attrs.iter().any(|a| a == "httponly"), "{attrs:?}");
    assert!(attrs.iter().any(|a| a == "samesite=strict"), "{attrs:?}");
    let (_, value) = cookie.split_once('=').expect("name=value");
    assert!(
        value.len() >= 16 && !cookie.contains(ADMIN),
        "the cookie is a session id, not the token"
    );

    let r = s
        .send(with_cookie(Method::GET, "/api/v1/activity", &cookie))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .send(
            with_cookie(Method::POST, "/api/v1/activity", &cookie)
                .json(&json!({"category": "ui", "action": "ui.click", "message": "clicked"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = ids_of(&r.json())[0];
    assert_eq!(
        s.get_ok(&format!("/api/v1/activity/{id}")).await["actor"],
        json!(ADMIN_LABEL)
    );
    let ok = s.wait_records("action=auth.login_succeeded", 1).await;
    assert_eq!(ok[0]["actor"], json!(ADMIN_LABEL));

    // Bad sign-ins.
    s.post(
        "/api/v1/session",
        None,
        &json!({"token": "actlog_wrong-wrong-wrong-wrong-wrong-wrong"}),
    )
    .await
    .assert_error(401, "unauthorized", None, None);
    let failed = s.wait_records("action=auth.login_failed", 1).await;
    assert_eq!(failed[0]["metadata"]["source"], json!("127.0.0.1"));
    assert_eq!(failed[0]["metadata"]["count"], json!(1));
    s.post("/api/v1/session", None, &json!({}))
        .await
        .assert_error(422, "invalid_field", Some("token"), None);
    s.send(with_cookie(
        Method::GET,
        "/api/v1/activity",
        "actlog_session=forged",
    ))
    .await
    .assert_error(401, "unauthorized", None, None);

    // A session has its key's role, and ends when the key is revoked.
    let (wid, writer) = s.create_key("ui-writer", "writer").await;
    let r = s
        .post("/api/v1/session", None, &json!({"token": writer}))
        .await;
    assert_eq!(r.status, 204);
    let (wcookie, _) = the_cookie(&r);
    s.send(with_cookie(Method::GET, "/api/v1/activity", &wcookie))
        .await
        .assert_error(403, "forbidden", None, None);
    let r = s
        .send(
            with_cookie(Method::POST, "/api/v1/activity", &wcookie)
                .json(&json!({"category": "ui", "action": "ui.x", "message": "m"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        s.delete(&format!("/api/v1/keys/{wid}"), Some(ADMIN))
            .await
            .status,
        204
    );
    s.send(
        with_cookie(Method::POST, "/api/v1/activity", &wcookie)
            .json(&json!({"category": "ui", "action": "ui.x", "message": "m"})),
    )
    .await
    .assert_error(401, "unauthorized", None, None);
    s.post("/api/v1/session", None, &json!({"token": writer}))
        .await
        .assert_error(401, "unauthorized", None, None);

    // Sign out clears the cookie and ends the session.
    let r = s
        .send(with_cookie(Method::DELETE, "/api/v1/session", &cookie))
        .await;
    assert_eq!(r.status, 204);
    let (cleared, attrs) = the_cookie(&r);
    let (name, _) = cookie.split_once('=').expect("pair");
    assert_eq!(cleared, format!("{name}="), "the cookie is emptied");
    assert!(
        attrs
            .iter()
            .any(|a| a == "max-age=0" || a.starts_with("expires=thu, 01 jan 1970")),
        "the cookie expires: {attrs:?}"
    );
    s.send(with_cookie(Method::GET, "/api/v1/activity", &cookie))
        .await
        .assert_error(401, "unauthorized", None, None);
    assert_eq!(s.delete("/api/v1/session", None).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_keys_are_coalesced_per_source() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    startup_records(&s).await;
    // No credentials at all: 401, but nothing to record.
    for _ in 0..3 {
        s.get("/api/v1/activity", None)
            .await
            .assert_error(401, "unauthorized", None, None);
    }
    // A stale web session (expired, signed out, server restarted): 401, but
    // it is a browser coming back, not someone trying a key.
    for _ in 0..3 {
        s.send(
            s.request(Method::GET, "/api/v1/activity", None)
                .header("cookie", "actlog_session=no-such-session"),
        )
        .await
        .assert_error(401, "unauthorized", None, None);
    }
    let (id, _) = s.create_key("sentinel-0", "reader").await;
    s.wait_records(&format!("entity_id={id}"), 1).await;
    assert!(s
        .walk(ADMIN, "action=auth.key_rejected", 10)
        .await
        .is_empty());
    for _ in 0..5 {
        s.get(
            "/api/v1/activity",
            Some("actlog_stolen-or-mistyped-token-000000000"),
        )
        .await
        .assert_error(401, "unauthorized", None, None);
    }
    for _ in 0..3 {
        s.post(
            "/api/v1/session",
            None,
            &json!({"token": "guess-guess-guess-guess-guess-guess"}),
        )
        .await
        .assert_error(401, "unauthorized", None, None);
    }
    // Internal events are queued in order: once a later one is visible, the
    // rejections before it are too.
    let (id, _) = s.create_key("sentinel", "reader").await;
    s.wait_records(&format!("entity_id={id}"), 1).await;

    for (action, n) in [("auth.key_rejected", 5), ("auth.login_failed", 3)] {
        let recs = s
            .walk(ADMIN, &format!("action={action}&order=asc"), 100)
            .await;
        assert!(!recs.is_empty() && recs.len() <= 2, "{action}: {recs:?}");
        let first = &recs[0];
        assert_eq!(first["metadata"]["count"], json!(1), "{first}");
        assert_eq!(first["metadata"]["source"], json!("127.0.0.1"), "{first}");
        assert_eq!(first["actor"], json!("system"));
        assert_eq!(first["category"], json!("auth"));
        if let Some(second) = recs.get(1) {
            assert_eq!(second["metadata"]["count"], json!(n - 1), "{second}");
        }
    }
    let text = s.get("/metrics", None).await.text();
    assert_eq!(metric(&text, "actlog_auth_failures_total"), 8.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_match_the_model() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (_, writer) = s.create_key("ingest-bot", "writer").await;
    let (_, reader) = s.create_key("dash", "reader").await;
    s.wait_records("action=auth.key_created", 3).await;
    s.wait_records("action=system.server_started", 1).await;
    let mut model = s.all_records().await;
    assert_eq!(model.len(), 4, "{model:?}");
    let posted = populate(&s, &writer, "ingest-bot", 300, 7).await;
    model.extend(posted.iter().cloned());

    // Unknown ids.
    let newest = id_of(&model[model.len() - 1]);
    for id in [newest + 1, newest + 1000, u64::MAX] {
        s.get(&format!("/api/v1/activity/{id}"), Some(&reader))
            .await
            .assert_error(404, "not_found", None, None);
    }
    let st = s.stats().await;
    assert_eq!(st["entries"], json!(model.len()));
    assert_eq!(st["newest_id"], json!(newest));

    // Default page size is 50, newest first.
    let v = s.get_ok("/api/v1/activity").await;
    let page = v["items"].as_array().expect("items");
    assert_eq!(page.len(), 50);
    assert_eq!(page[0], model[model.len() - 1]);
    assert!(v["next_cursor"].is_string());

    let t = |i: usize| ts_of(&posted[i]);
    let f = |fields: Vec<(&'static str, Vec<&'static str>)>, q: Option<&'static str>| Filter {
        fields,
        q,
        ..Filter::default()
    };
    let combos: Vec<(Filter, usize)> = vec![
        (Filter::default(), 7),
        (f(vec![("category", vec!["device"])], None), 10),
        (
            f(
                vec![
                    ("category", vec!["device", "scene"]),
                    ("severity", vec!["warning", "error"]),
                ],
                None,
            ),
            3,
        ),
        (f(vec![], Some("projector")), 5),
        (f(vec![], Some("proj*")), 4),
        (f(vec![], Some("kitchen display")), 6),
        (f(vec![], Some("ZÜRICH")), 5),
        (
            f(
                vec![("actor", vec!["kitchen-tablet", "Alice Smith"])],
                Some("dev*"),
            ),
            2,
        ),
        (f(vec![], Some("17")), 8),
        (
            f(
                vec![
                    ("entity_id", vec!["dev_17"]),
                    ("entity_type", vec!["device"]),
                ],
                None,
            ),
            5,
        ),
        (
            f(
                vec![("action", vec!["scene.created", "device.deleted"])],
                None,
            ),
            1000,
        ),
        (f(vec![("actor", vec!["ingest-bot"])], Some("den proj*")), 3),
        (
            Filter {
                since: Some(t(50)),
                until: Some(t(200)),
                ..Filter::default()
            },
            9,
        ),
        (
            Filter {
                since: Some(t(120)),
                fields: vec![("category", vec!["entity"])],
                ..Filter::default()
            },
            11,
        ),
        (
            Filter {
                until: Some(t(80)),
                q: Some("den proj*"),
                ..Filter::default()
            },
            3,
        ),
        (
            Filter {
                since: Some(t(10)),
                until: Some(t(10) + 1),
                ..Filter::default()
            },
            1,
        ),
    ];
    for (filter, limit) in &combos {
        let expected: Vec<Value> = model
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "the data set exercises {filter:?}");
        if filter.q.is_some() || !filter.fields.is_empty() {
            assert!(expected.len() < model.len(), "{filter:?} filters something");
        }
        for order in ["desc", "asc"] {
            let mut want = expected.clone();
            if order == "desc" {
                want.reverse();
            }
            let got = s
                .walk(
                    &reader,
                    &format!("{}&order={order}", filter.query()),
                    *limit,
                )
                .await;
            let got_ids: Vec<u64> = got.iter().map(id_of).collect();
            let want_ids: Vec<u64> = want.iter().map(id_of).collect();
            assert_eq!(got_ids, want_ids, "{filter:?} order={order} limit={limit}");
            assert_eq!(got, want, "{filter:?} order={order} limit={limit}");
        }
    }
    let none = s.get_ok("/api/v1/activity?category=nope&limit=5").await;
    assert_eq!(none, json!({"items": [], "next_cursor": null}));

    // A cursor only continues the walk it came from.
    let v = s.get_ok("/api/v1/activity?category=device&limit=2").await;
    let cursor = v["next_cursor"].as_str().expect("cursor").to_string();
    for other in [
        "category=scene",
        "category=device&order=asc",
        "category=device&q=proj*",
    ] {
        s.get(
            &format!("/api/v1/activity?{other}&limit=2&cursor={cursor}"),
            Some(&reader),
        )
        .await
        .assert_error(422, "invalid_field", Some("cursor"), None);
    }
    let next = s
        .get_ok(&format!(
            "/api/v1/activity?category=device&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["items"].as_array().expect("items").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_and_histogram_match_the_model() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let mut model = startup_records(&s).await;
    let posted = populate(&s, ADMIN, ADMIN_LABEL, 250, 11).await;
    model.extend(posted.iter().cloned());
    let f = |fields: Vec<(&'static str, Vec<&'static str>)>, q: Option<&'static str>| Filter {
        fields,
        q,
        ..Filter::default()
    };

    let filters = vec![
        Filter::default(),
        f(vec![("category", vec!["device"])], None),
        f(vec![("category", vec!["device", "scene"])], None),
        f(vec![], Some("proj*")),
        f(
            vec![
                ("severity", vec!["warning"]),
                ("entity_type", vec!["device"]),
            ],
            Some("den"),
        ),
        Filter {
            since: Some(ts_of(&posted[40])),
            until: Some(ts_of(&posted[160])),
            ..Filter::default()
        },
        f(vec![("recorded_by", vec!["server"])], None),
    ];
    for field in [
        "category",
        "action",
        "actor",
        "entity_type",
        "entity_id",
        "severity",
        "recorded_by",
    ] {
        for filter in &filters {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for r in model.iter().filter(|r| filter.matches(r)) {
                if let Some(v) = r[field].as_str() {
                    *counts.entry(v.to_string()).or_default() += 1;
                }
            }
            let get =
                |extra: &str| format!("/api/v1/activity/facets/{field}?{}{extra}", filter.query());
            let v = s.get_ok(&get("&limit=1000")).await;
            assert_eq!(v["field"], json!(field));
            let values = v["values"].as_array().expect("values");
            let got: HashMap<String, u64> = values
                .iter()
                .map(|x| {
                    (
                        x["value"].as_str().expect("value").to_string(),
                        x["count"].as_u64().expect("count"),
                    )
                })
                .collect();
            assert_eq!(got, counts, "facets of {field} for {filter:?}");
            assert_eq!(got.len(), values.len(), "no value twice");
            let got_counts: Vec<u64> = values
                .iter()
                .map(|x| x["count"].as_u64().unwrap_or(0))
                .collect();
            assert!(
                got_counts.windows(2).all(|w| w[0] >= w[1]),
                "by count, descending: {got_counts:?}"
            );
            // limit (default 10) keeps the largest counts.
            let mut top: Vec<u64> = counts.values().copied().collect();
            top.sort_unstable_by(|a, b| b.cmp(a));
            for (extra, n) in [("", 10), ("&limit=2", 2)] {
                let v = s.get_ok(&get(extra)).await;
                let c: Vec<u64> = v["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|x| x["count"].as_u64().unwrap_or(0))
                    .collect();
                assert_eq!(
                    c,
                    top.iter().copied().take(n).collect::<Vec<_>>(),
                    "{field} {filter:?} {extra}"
                );
            }
        }
    }
    // Prefix completion.
    for (field, prefix) in [
        ("entity_id", "dev"),
        ("action", "device."),
        ("actor", "k"),
        ("category", "x"),
        ("recorded_by", "key_"),
        ("recorded_by", "s"),
    ] {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for r in &model {
            if let Some(v) = r[field].as_str().filter(|v| v.starts_with(prefix)) {
                *counts.entry(v.to_string()).or_default() += 1;
            }
        }
        let v = s
            .get_ok(&format!(
                "/api/v1/activity/facets/{field}?prefix={}&limit=1000",
                enc(prefix)
            ))
            .await;
        let got: HashMap<String, u64> = v["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|x| {
                (
                    x["value"].as_str().expect("value").to_string(),
                    x["count"].as_u64().expect("count"),
                )
            })
            .collect();
        assert_eq!(got, counts, "prefix {prefix} on {field}");
    }

    // Histogram over a window covering everything posted (not aligned).
    let first = ts_of(&model[0]);
    let last = ts_of(&model[model.len() - 1]);
    let since = first - 90_000_000;
    let until = last + 150_000_001;
    for (bucket, size) in [
        ("1m", 60_000_000i64),
        ("5m", 300_000_000),
        ("1h", 3_600_000_000),
    ] {
        for filter in &filters[..5] {
            let windowed = Filter {
                since: Some(since),
                until: Some(until),
                ..filter.clone()
            };
            let start0 = since.div_euclid(size) * size;
            let mut want: Vec<(i64, u64)> = Vec::new();
            let mut b = start0;
            while b < until {
                want.push((b, 0));
                b += size;
            }
            for r in model.iter().filter(|r| windowed.matches(r)) {
                let i = usize::try_from((ts_of(r) - start0) / size).expect("index");
                want[i].1 += 1;
            }
            let v = s
                .get_ok(&format!(
                    "/api/v1/activity/histogram?bucket={bucket}&{}",
                    windowed.query()
                ))
                .await;
            assert_eq!(v["bucket"], json!(bucket));
            let got: Vec<(i64, u64)> = v["buckets"]
                .as_array()
                .expect("buckets")
                .iter()
                .map(|b| {
                    (
                        parse_ts(b["start"].as_str().expect("start")),
                        b["count"].as_u64().expect("count"),
                    )
                })
                .collect();
            assert!(got.iter().all(|(start, _)| start % size == 0), "aligned");
            assert_eq!(got, want, "histogram {bucket} {filter:?}");
            let total: u64 = got.iter().map(|b| b.1).sum();
            assert_eq!(
                total,
                model.iter().filter(|r| windowed.matches(r)).count() as u64
            );
        }
    }
    // Default window: the last 24 hours, every bucket listed.
    let v = s
        .get_ok("/api/v1/activity/histogram?bucket=1h&category=device")
        .await;
    let got: Vec<(i64, u64)> = v["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                parse_ts(b["start"].as_str().expect("start")),
                b["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert!((24..=25).contains(&got.len()), "{} buckets", got.len());
    assert!(
        got.windows(2).all(|w| w[1].0 - w[0].0 == 3_600_000_000),
        "contiguous"
    );
    assert!(
        got.iter().all(|(start, _)| start % 3_600_000_000 == 0),
        "aligned"
    );
    let devices = model
        .iter()
        .filter(|r| r["category"] == json!("device"))
        .count() as u64;
    assert_eq!(got.iter().map(|b| b.1).sum::<u64>(), devices);
    assert!(got.last().expect("bucket").0 <= last, "the window ends now");
}

/// The CSV cell API.md prescribes for a text value.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => {
            let formula = s.trim_start_matches(' ').starts_with(['=', '+', '-', '@']);
            if formula || s.starts_with(['\t', '\r', '\n', '\0']) {
                format!("'{s}")
            } else {
                s.clone()
            }
        }
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_round_trip_as_csv_json_and_ndjson() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let tricky = [
        "=1+1",
        "@x",
        "+cmd",
        "-2",
        "   =HYPERLINK(\"http://evil\")",
        "\tTab first",
        "\rCR first",
        "\nLF first",
        "a=b is harmless",
        "line1\nline2 inside",
        "say \"hi\", ok",
        "comma, semicolon; tab\there",
        "ünïcødé ✓ 🚀",
    ];
    let mut events: Vec<Value> = tricky
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"category": "export", "action": "export.row", "message": m,
                   "actor": if i % 3 == 0 { json!("@bob") } else { json!(null) },
                   "entity_name": if i % 2 == 0 { json!(" =SUM(A1)") } else { json!(null) },
                   "entity_id": if i % 4 == 0 { json!("-5") } else { json!("e1") },
                   "metadata": {"i": i, "formula": "=2+2", "nested": {"list": [1, "two", null]}}})
        })
        .collect();
    // Enough volume for several 64 KiB chunks.
    for i in 0..200 {
        events.push(json!({"category": "export", "action": "export.bulk", "severity": "warning",
            "message": format!("bulk row {i} {}", "lorem ipsum ".repeat(70)), "metadata": {"i": i}}));
    }
    s.ingest(ADMIN, &json!(events)).await;
    s.ingest(
        ADMIN,
        &json!({"category": "other", "action": "other.x", "message": "=not exported"}),
    )
    .await;
    // An empty selection exports a header, an empty array, nothing.
    for (format, want) in [("csv", "id,ts,category,action,actor,entity_type,entity_id,entity_name,message,severity,metadata,recorded_by\n"), ("json", "[]"), ("ndjson", "")] {
        let r = s.get(&format!("/api/v1/activity/export?format={format}&category=nope"), Some(ADMIN)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text().trim_end_matches(['\r', '\n']), want.trim_end_matches('\n'), "{format}");
    }
    let desc = s.walk(ADMIN, "category=export", 1000).await;
    let asc = s.walk(ADMIN, "category=export&order=asc", 1000).await;
    assert_eq!(desc.len(), events.len());

    // json: one array of Records, like the list (limit and cursor ignored).
    let r = s
        .get(
            "/api/v1/activity/export?format=json&category=export&limit=1",
            Some(ADMIN),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    assert!(r
        .header("content-disposition")
        .unwrap_or_default()
        .starts_with("attachment"));
    assert_eq!(r.json(), json!(desc));

    // ndjson: one Record per line.
    let r = s
        .get(
            "/api/v1/activity/export?format=ndjson&category=export&order=asc",
            Some(ADMIN),
        )
        .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    assert_eq!(lines, asc);
    // Filters apply to exports (q here).
    let r = s
        .get("/api/v1/activity/export?format=ndjson&q=line2", Some(ADMIN))
        .await;
    let ids: Vec<u64> = r
        .text()
        .lines()
        .map(|l| id_of(&serde_json::from_str(l).expect("json")))
        .collect();
    let want: Vec<u64> = desc
        .iter()
        .filter(|r| r["message"].as_str().unwrap_or("").contains("line2"))
        .map(id_of)
        .collect();
    assert_eq!(ids, want);
    assert_eq!(ids.len(), 1);

    // csv
    let r = s
        .get(
            "/api/v1/activity/export?format=csv&category=export&limit=2",
            Some(ADMIN),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/csv"));
    assert!(r
        .header("content-disposition")
        .unwrap_or_default()
        .starts_with("attachment"));
    let raw = r.text();
    assert!(
        raw.contains("\"line1\nline2 inside\""),
        "a newline is quoted"
    );
    assert!(raw.contains("\"say \"\"hi\"\", ok\""), "quotes are doubled");
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(raw.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        [
            "id",
            "ts",
            "category",
            "action",
            "actor",
            "entity_type",
            "entity_id",
            "entity_name",
            "message",
            "severity",
            "metadata",
            "recorded_by"
        ]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), desc.len(), "export ignores limit");
    for (row, rec) in rows.iter().zip(&desc) {
        assert_eq!(row.len(), 12);
        assert_eq!(&row[0], rec["id"].to_string());
        assert_eq!(&row[1], rec["ts"].as_str().expect("ts"));
        for (i, col) in [
            "category",
            "action",
            "actor",
            "entity_type",
            "entity_id",
            "entity_name",
            "message",
            "severity",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(row[i + 2], csv_cell(&rec[*col]), "column {col} of {rec}");
        }
        let meta: Value = serde_json::from_str(&row[10]).expect("metadata is JSON text");
        assert_eq!(meta, rec["metadata"]);
        assert_eq!(
            row[11],
            csv_cell(&rec["recorded_by"]),
            "recorded_by of {rec}"
        );
        assert!(is_key_id(&row[11]), "{row:?}");
    }
    let by_msg = |m: &str| {
        rows.iter()
            .find(|r| r[8].trim_start_matches('\'') == m)
            .unwrap_or_else(|| panic!("row {m:?}"))
            .clone()
    };
    assert_eq!(&by_msg("=1+1")[8], "'=1+1");
    assert_eq!(&by_msg("@x")[8], "'@x");
    assert_eq!(&by_msg("\nLF first")[8], "'\nLF first");
    assert_eq!(&by_msg("a=b is harmless")[8], "a=b is harmless");
    assert_eq!(&by_msg("line1\nline2 inside")[8], "line1\nline2 inside");
    assert_eq!(&by_msg("=1+1")[4], "'@bob");
    assert_eq!(&by_msg("=1+1")[7], "' =SUM(A1)");
    assert_eq!(&by_msg("@x")[5], "", "null is an empty cell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_secrets_are_redacted_at_any_depth() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let metadata = json!({
        "password": "s3cr3t-01",
        "api_key": "s3cr3t-02",
        "Authorization": "Bearer s3cr3t-03",
        "X-Api-Key": "s3cr3t-04",
        "apiKey": {"nested": "s3cr3t-05"},
        "author": "Ada", "passport": "P123", "monkey": 1, "keyboard": "us",
        "db": {"user": "bob", "PASSWD": "s3cr3t-06",
               "hosts": [{"name": "a", "client_secret": "s3cr3t-07"}, {"Refresh-Token": "s3cr3t-08"}, "plain", 3]},
        "Set-Cookie": ["s3cr3t-09", "x"],
        "note": "the password is not here",
        "private-key": null,
        "Credentials": 42,
    });
    let redacted = json!({
        "password": "[REDACTED]",
        "api_key": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
        "apiKey": "[REDACTED]",
        "author": "Ada", "passport": "P123", "monkey": 1, "keyboard": "us",
        "db": {"user": "bob", "PASSWD": "[REDACTED]",
               "hosts": [{"name": "a", "client_secret": "[REDACTED]"}, {"Refresh-Token": "[REDACTED]"}, "plain", 3]},
        "Set-Cookie": "[REDACTED]",
        "note": "the password is not here",
        "private-key": "[REDACTED]",
        "Credentials": "[REDACTED]",
    });
    let event = json!({"category": "secrets", "action": "secrets.rotated", "message": "Rotated credentials", "metadata": metadata});
    let ids = s
        .ingest(ADMIN, &json!([{"category": "secrets", "action": "secrets.other", "message": "m", "metadata": {"token": "s3cr3t-10"}}, event]))
        .await;
    let rec = s.get_ok(&format!("/api/v1/activity/{}", ids[1])).await;
    assert_eq!(rec["metadata"], redacted);
    let rec0 = s.get_ok(&format!("/api/v1/activity/{}", ids[0])).await;
    assert_eq!(rec0["metadata"], json!({"token": "[REDACTED]"}));

    // Nowhere to be found: not in exports, not in the data directory.
    for format in ["csv", "json", "ndjson"] {
        let text = s
            .get(
                &format!("/api/v1/activity/export?format={format}"),
                Some(ADMIN),
            )
            .await
            .text();
        assert!(!text.contains("s3cr3t"), "{format} export leaks a secret");
        assert!(text.contains("REDACTED"));
    }
    fn scan(dir: &std::path::Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                scan(&p, hits);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(6).any(|w| w == b"s3cr3t") {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    let mut hits = Vec::new();
    scan(&s.data, &mut hits);
    assert!(hits.is_empty(), "secrets stored in {hits:?}");
}

fn sse_events(rng: &mut StdRng, n: usize, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let category = if rng.gen_bool(0.7) { "sse" } else { "other" };
            let severity = ["info", "warning", "error"][rng.gen_range(0..3)];
            json!({"category": category, "action": format!("{category}.tick"), "severity": severity,
                   "message": format!("{tag} event {i}"), "metadata": {"tag": tag, "i": i}})
        })
        .collect()
}

fn sse_match(e: &Value) -> bool {
    e["category"] == json!("sse")
        && (e["severity"] == json!("warning") || e["severity"] == json!("error"))
}

/// Checks stream events against what was posted: event name, id, record,
/// strictly increasing ids. Returns the ids.
fn check_sse(events: &[SseEvent], posted: &HashMap<u64, Value>) -> Vec<u64> {
    let mut ids = Vec::new();
    for ev in events {
        assert_eq!(ev.event.as_deref(), Some("activity"));
        let id: u64 = ev.id.as_deref().expect("id").parse().expect("numeric id");
        let rec: Value = serde_json::from_str(&ev.data).expect("record JSON");
        let sent = posted
            .get(&id)
            .unwrap_or_else(|| panic!("streamed {id}, which was not posted: {rec}"));
        assert_record(&rec, id, sent, ADMIN_LABEL);
        ids.push(id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: {ids:?}"
    );
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resume_has_no_gap_and_no_duplicate() {
    let tmp = tempdir();
    let s = Arc::new(Server::start(tmp.path()));
    let query = "category=sse&severity=warning&severity=error";
    let mut rng = StdRng::seed_from_u64(5);
    let posted: Arc<Mutex<HashMap<u64, Value>>> = Arc::default();
    async fn post(s: &Server, batch: Vec<Value>, posted: &Mutex<HashMap<u64, Value>>) {
        let ids = s.ingest(ADMIN, &json!(batch)).await;
        posted
            .lock()
            .expect("lock")
            .extend(ids.into_iter().zip(batch));
    }
    for k in 0..15 {
        let n = rng.gen_range(1..=5);
        post(&s, sse_events(&mut rng, n, &format!("pre{k}")), &posted).await;
    }
    let before_live = posted
        .lock()
        .expect("lock")
        .keys()
        .copied()
        .max()
        .expect("some");
    let matching_before = posted
        .lock()
        .expect("lock")
        .values()
        .filter(|e| sse_match(e))
        .count();
    assert!(matching_before >= 10, "{matching_before}");

    // A stream without resume point only sees what comes later.
    let mut live = Sse::open(&s, query, None).await;
    // A stream replaying from the start, then live.
    let mut first = Sse::open(&s, &format!("{query}&after_id=0"), None).await;

    let posters: Vec<_> = (0..3)
        .map(|t| {
            let s = s.clone();
            let posted = posted.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(100 + t);
                for k in 0..15 {
                    let n = rng.gen_range(1..=8);
                    post(&s, sse_events(&mut rng, n, &format!("t{t}k{k}")), &posted).await;
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..matching_before + 10 {
        got.push(first.next(10 * SECOND).await.expect("event"));
    }
    drop(first);
    // Appends continue while the client is away.
    post(&s, sse_events(&mut rng, 30, "away"), &posted).await;
    for p in posters {
        p.await.expect("poster");
    }
    let last: u64 = got
        .last()
        .and_then(|e| e.id.as_deref())
        .expect("id")
        .parse()
        .expect("id");
    let mut second = Sse::open(&s, query, Some(last)).await;
    post(&s, sse_events(&mut rng, 20, "after"), &posted).await;
    let sentinel = s
        .ingest(ADMIN, &json!({"category": "sse", "action": "sse.done", "severity": "error", "message": "sentinel"}))
        .await[0];
    posted.lock().expect("lock").insert(sentinel, json!({"category": "sse", "action": "sse.done", "severity": "error", "message": "sentinel"}));
    loop {
        let ev = second.next(10 * SECOND).await.expect("event");
        let done = ev.id.as_deref() == Some(&sentinel.to_string());
        got.push(ev);
        if done {
            break;
        }
    }
    let mut live_events = Vec::new();
    loop {
        let ev = live.next(10 * SECOND).await.expect("event");
        let done = ev.id.as_deref() == Some(&sentinel.to_string());
        live_events.push(ev);
        if done {
            break;
        }
    }

    let posted = posted.lock().expect("lock").clone();
    let expected: BTreeSet<u64> = posted
        .iter()
        .filter(|(_, e)| sse_match(e))
        .map(|(id, _)| *id)
        .collect();
    let ids = check_sse(&got, &posted);
    assert_eq!(ids.len(), expected.len(), "no duplicate");
    assert_eq!(
        ids.iter().copied().collect::<BTreeSet<_>>(),
        expected,
        "no gap, nothing extra"
    );
    let live_ids = check_sse(&live_events, &posted);
    let expected_live: BTreeSet<u64> = expected
        .iter()
        .copied()
        .filter(|id| *id > before_live)
        .collect();
    assert_eq!(
        live_ids.iter().copied().collect::<BTreeSet<_>>(),
        expected_live
    );
    assert_eq!(live_ids.len(), expected_live.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_delivers_the_three_message_types() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (_, reader) = s.create_key("wall-display", "reader").await;
    let (mut ws, _) = ws_connect(&s, Some(ADMIN)).await.expect("connect");
    let (mut ws_reader, _) = ws_connect(&s, Some(&reader)).await.expect("connect");

    // Keeps reading (type-checking everything) until `want` matches.
    async fn until(ws: &mut Ws, seen: &mut Vec<Value>, want: impl Fn(&Value) -> bool) -> Value {
        let d = Deadline::secs(10);
        loop {
            let m = ws_next(ws, d.left()).await;
            seen.push(m.clone());
            if want(&m) {
                return m;
            }
        }
    }
    let mut seen = Vec::new();
    let event = json!({"category": "device", "action": "device.online", "message": "Projector online", "entity_id": "dev_2"});
    let id = s.ingest(ADMIN, &event).await[0];
    for socket in [&mut ws, &mut ws_reader] {
        let m = until(socket, &mut seen, |m| {
            m["type"] == json!("activity_logged") && m["data"]["id"] == json!(id)
        })
        .await;
        assert_record(&m["data"], id, &event, ADMIN_LABEL);
        assert_eq!(m["data"], s.get_ok(&format!("/api/v1/activity/{id}")).await);
    }

    let settings = json!({"enabled": true, "retention": {"max_days": 400, "max_entries": null}});
    let r = s
        .put("/api/v1/activity/settings", Some(ADMIN), &settings)
        .await;
    assert_eq!(r.status, 200);
    // The message and the record of the change arrive in either order.
    let is_change = |m: &Value| m["type"] == json!("settings_changed");
    let is_change_record = |m: &Value| {
        m["type"] == json!("activity_logged")
            && m["data"]["action"] == json!("system.settings_changed")
    };
    let m = until(&mut ws, &mut seen, is_change).await;
    assert_eq!(m["data"], settings);
    if !seen.iter().any(is_change_record) {
        until(&mut ws, &mut seen, is_change_record).await;
    }

    let mark = seen.len();
    let r = s.delete("/api/v1/activity?confirm=true", Some(ADMIN)).await;
    assert_eq!(r.status, 200);
    let is_cleared = |m: &Value| m["type"] == json!("activity_cleared");
    let is_logged = |m: &Value| m["type"] == json!("activity_logged");
    until(&mut ws, &mut seen, is_cleared).await;
    if !seen[mark..].iter().any(is_logged) {
        until(&mut ws, &mut seen, is_logged).await;
    }
    let first = seen[mark..]
        .iter()
        .find(|m| is_logged(m))
        .expect("a record");
    assert_eq!(
        first["data"]["action"],
        json!("system.activity_cleared"),
        "the first record after a clear"
    );
    let mut reader_seen = Vec::new();
    until(&mut ws_reader, &mut reader_seen, is_cleared).await;
    seen.extend(reader_seen);
    let types: BTreeSet<&str> = seen.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["activity_logged", "activity_cleared", "settings_changed"])
    );
}

async fn newest(s: &Server) -> Value {
    s.get_ok("/api/v1/activity?limit=1").await["items"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_validate_persist_and_switch_recording() {
    let tmp = tempdir();
    let mut s = Server::start(tmp.path());
    let defaults = json!({"enabled": true, "retention": {"max_days": null, "max_entries": null}});
    assert_eq!(s.get_ok("/api/v1/activity/settings").await, defaults);
    for (body, field) in [
        (
            json!({"enabled": true, "retention": {"max_days": 0}}),
            "max_days",
        ),
        (
            json!({"enabled": true, "retention": {"max_days": 36501}}),
            "max_days",
        ),
        (
            json!({"enabled": true, "retention": {"max_days": -3}}),
            "max_days",
        ),
        (
            json!({"enabled": true, "retention": {"max_days": "7"}}),
            "max_days",
        ),
        (
            json!({"enabled": true, "retention": {"max_days": 1.5}}),
            "max_days",
        ),
        (
            json!({"enabled": true, "retention": {"max_entries": 0}}),
            "max_entries",
        ),
        (
            json!({"enabled": true, "retention": {"max_entries": -1}}),
            "max_entries",
        ),
        (json!({"retention": {"max_days": 3}}), "enabled"),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"enabled": true, "colour": "red"}), "colour"),
        (
            json!({"enabled": true, "retention": {"max_dayz": 3}}),
            "max_dayz",
        ),
    ] {
        s.put("/api/v1/activity/settings", Some(ADMIN), &body)
            .await
            .assert_error(422, "invalid_field", Some(field), None);
    }
    assert_eq!(
        s.get_ok("/api/v1/activity/settings").await,
        defaults,
        "nothing changed"
    );

    let bounded =
        json!({"enabled": true, "retention": {"max_days": 36500, "max_entries": 1000000}});
    let r = s
        .put("/api/v1/activity/settings", Some(ADMIN), &bounded)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), bounded);
    assert_eq!(s.get_ok("/api/v1/activity/settings").await, bounded);
    let changed = s.wait_records("action=system.settings_changed", 1).await;
    assert_eq!(changed[0]["actor"], json!(ADMIN_LABEL));

    // Recording off: announced first, then ingest is refused.
    let off = json!({"enabled": false, "retention": {"max_days": 36500, "max_entries": 1000000}});
    let r = s.put("/api/v1/activity/settings", Some(ADMIN), &off).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), off);
    let disabled = newest(&s).await;
    assert_eq!(disabled["action"], json!("system.recording_disabled"));
    assert_eq!(disabled["actor"], json!(ADMIN_LABEL));
    s.post(
        "/api/v1/activity",
        Some(ADMIN),
        &json!({"category": "x", "action": "x.y", "message": "dropped?"}),
    )
    .await
    .assert_error(409, "recording_disabled", None, None);
    // The server records nothing of its own while off either.
    s.create_key("made-while-off", "reader").await;
    s.get(
        "/api/v1/activity",
        Some("actlog_bogus-while-off-bogus-while-off-00"),
    )
    .await
    .assert_error(401, "unauthorized", None, None);
    assert_eq!(newest(&s).await, disabled, "nothing recorded while off");

    // Settings survive a restart.
    assert_eq!(s.terminate().code(), Some(0));
    drop(s);
    s = Server::start(tmp.path());
    assert_eq!(s.get_ok("/api/v1/activity/settings").await, off);
    s.post(
        "/api/v1/activity",
        Some(ADMIN),
        &json!({"category": "x", "action": "x.y", "message": "still off"}),
    )
    .await
    .assert_error(409, "recording_disabled", None, None);

    // On again: recorded after it starts.
    let on = json!({"enabled": true, "retention": {"max_days": 36500, "max_entries": 1000000}});
    assert_eq!(
        s.put("/api/v1/activity/settings", Some(ADMIN), &on)
            .await
            .status,
        200
    );
    let enabled = newest(&s).await;
    assert_eq!(enabled["action"], json!("system.recording_enabled"));
    let since_off = s
        .walk(
            ADMIN,
            &format!(
                "since={}&order=asc",
                enc(disabled["ts"].as_str().expect("ts"))
            ),
            100,
        )
        .await;
    let actions: Vec<&str> = since_off
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["system.recording_disabled", "system.recording_enabled"],
        "nothing in between"
    );
    let id = s
        .ingest(
            ADMIN,
            &json!({"category": "x", "action": "x.y", "message": "recorded"}),
        )
        .await[0];
    assert!(id > id_of(&enabled));
    assert_eq!(s.walk(ADMIN, "category=x", 10).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_max_entries_drops_the_oldest() {
    let tmp = tempdir();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_RETENTION_INTERVAL", "1")]);
    let mut ids = Vec::new();
    for b in 0..3 {
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"category": "bulk", "action": "bulk.add", "message": format!("row {b}-{i}")}))
            .collect();
        ids.extend(s.ingest(ADMIN, &json!(batch)).await);
    }
    let before = s.stats().await["entries"].as_u64().expect("entries");
    assert!(before >= 300);
    let r = s
        .put(
            "/api/v1/activity/settings",
            Some(ADMIN),
            &json!({"enabled": true, "retention": {"max_days": null, "max_entries": 50}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Allow for the retention record itself, written after a run.
    let d = Deadline::secs(5);
    loop {
        let st = s.stats().await;
        if st["entries"].as_u64().expect("entries") <= 51 {
            break;
        }
        d.tick(&format!("entries to drop: {st}")).await;
    }
    s.get(&format!("/api/v1/activity/{}", ids[0]), Some(ADMIN))
        .await
        .assert_error(404, "not_found", None, None);
    s.get(&format!("/api/v1/activity/{}", ids[240]), Some(ADMIN))
        .await
        .assert_error(404, "not_found", None, None);
    let last = ids[ids.len() - 1];
    assert_eq!(
        s.get(&format!("/api/v1/activity/{last}"), Some(ADMIN))
            .await
            .status,
        200
    );
    let all = s.all_records().await;
    assert!(all.len() <= 51 && all.len() >= 49, "{}", all.len());
    let visible: Vec<u64> = all.iter().map(id_of).collect();
    assert!(
        visible.windows(2).all(|w| w[1] == w[0] + 1),
        "the newest records stay, without holes: {visible:?}"
    );
    let st = s.stats().await;
    assert_eq!(st["oldest_id"], json!(visible[0]));
    s.wait_records("action=system.retention_applied", 1).await;
    assert!(s
        .walk(ADMIN, "category=bulk", 1000)
        .await
        .iter()
        .all(|r| id_of(r) > ids[249]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_needs_confirm_and_is_recorded_first() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    startup_records(&s).await;
    let ids = s
        .ingest(
            ADMIN,
            &json!((0..20)
                .map(|i| json!({"category": "c", "action": "c.x", "message": format!("m{i}")}))
                .collect::<Vec<_>>()),
        )
        .await;
    let entries = s.stats().await["entries"].as_u64().expect("entries");
    assert_eq!(entries, 22);
    for q in ["", "?confirm=false", "?confirm=1", "?confirm=TRUE&limit=5"] {
        s.delete(&format!("/api/v1/activity{q}"), Some(ADMIN))
            .await
            .assert_error(422, "invalid_field", Some("confirm"), None);
    }
    assert_eq!(
        s.stats().await["entries"],
        json!(entries),
        "nothing cleared"
    );

    let r = s.delete("/api/v1/activity?confirm=true", Some(ADMIN)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"cleared": entries}));
    let all = s.all_records().await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["action"], json!("system.activity_cleared"));
    assert_eq!(all[0]["actor"], json!(ADMIN_LABEL));
    assert!(id_of(&all[0]) > ids[19]);
    for id in [ids[0], ids[19]] {
        s.get(&format!("/api/v1/activity/{id}"), Some(ADMIN))
            .await
            .assert_error(404, "not_found", None, None);
    }
    let id = s
        .ingest(
            ADMIN,
            &json!({"category": "c", "action": "c.x", "message": "after"}),
        )
        .await[0];
    assert!(id > id_of(&all[0]));
    assert_eq!(s.stats().await["entries"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_under_concurrent_ingest_is_still_recorded_first() {
    let tmp = tempdir();
    let s = Arc::new(Server::start(tmp.path()));
    startup_records(&s).await;
    for round in 0..4 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    let mut k = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let batch: Vec<Value> = (0..3)
                            .map(|i| json!({"category": "w", "action": "w.x", "message": format!("r{round} t{t} k{k} i{i}")}))
                            .collect();
                        acked.extend(s.ingest(ADMIN, &json!(batch)).await);
                        k += 1;
                    }
                    acked
                })
            })
            .collect();
        s.wait_records("category=w", 30).await;
        let r = s.delete("/api/v1/activity?confirm=true", Some(ADMIN)).await;
        assert_eq!(r.status, 200);
        let cleared = r.json()["cleared"].as_u64().expect("cleared");
        assert!(cleared >= 30);
        s.wait_records("action=system.activity_cleared", 1).await;
        stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.expect("writer"));
        }
        let all = s.all_records().await;
        assert_eq!(
            all[0]["action"],
            json!("system.activity_cleared"),
            "round {round}: the first record after a clear is the clear: {:?}",
            &all[..3.min(all.len())]
        );
        assert_eq!(all[0]["metadata"]["cleared"], json!(cleared));
        let cleared_id = id_of(&all[0]);
        let visible: BTreeSet<u64> = all.iter().map(id_of).collect();
        for id in acked {
            assert_eq!(
                visible.contains(&id),
                id > cleared_id,
                "acknowledged id {id} vs clear at {cleared_id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_restart_follows_shutdown() {
    let tmp = tempdir();
    let mut s = Server::start(tmp.path());
    let id = s
        .ingest(
            ADMIN,
            &json!({"category": "c", "action": "c.x", "message": "before the restart"}),
        )
        .await[0];
    // Open live connections must not hold the shutdown up.
    let mut sse = Sse::open(&s, "after_id=0&category=c", None).await;
    assert_eq!(
        sse.next(5 * SECOND).await.and_then(|e| e.id),
        Some(id.to_string())
    );
    let (_ws, _) = ws_connect(&s, Some(ADMIN)).await.expect("websocket");
    let status = s.terminate();
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    assert!(
        sse.next(5 * SECOND).await.is_none(),
        "the stream ends cleanly"
    );
    drop(s);

    // Keys exist now: a different ACTLOG_ADMIN_TOKEN is ignored.
    let other = "another-admin-token-which-is-long-enough-0123";
    let s = Server::start_with(tmp.path(), &[("ACTLOG_ADMIN_TOKEN", other)]);
    s.get("/api/v1/activity", Some(other))
        .await
        .assert_error(401, "unauthorized", None, None);
    assert!(
        s.stderr().contains("ACTLOG_ADMIN_TOKEN"),
        "the log says the token is ignored"
    );
    let recent = s.walk(ADMIN, "order=desc", 1000).await;
    let started = recent
        .iter()
        .position(|r| r["action"] == json!("system.server_started"))
        .expect("server_started");
    let before = &recent[started + 1];
    assert_eq!(
        before["action"],
        json!("system.server_shutting_down"),
        "{recent:?}"
    );
    assert_eq!(id_of(before) + 1, id_of(&recent[started]));
    assert!(recent.iter().any(|r| id_of(r) == id));
    let starts = recent
        .iter()
        .filter(|r| r["action"] == json!("system.server_started"))
        .count();
    assert_eq!(starts, 2);
    // SIGINT shuts down cleanly too.
    let mut s = s;
    signal(s.pid(), libc::SIGINT);
    let status = s.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", s.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_admin_token_refuses_to_start() {
    let tmp = tempdir();
    let mut child = actlog_serve(&tmp.path().join("data"))
        .env("ACTLOG_ADMIN_TOKEN", "x".repeat(31))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let Some(status) = wait_exit(&mut child, Duration::from_secs(10)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("actlog started with a 31-character admin token");
    };
    let out = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ACTLOG_ADMIN_TOKEN") && stderr.contains("32"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));

    // 32 characters that are not an obvious pattern are enough.
    let token = "y2QpL7vX0mRc4TnB8sKd1FgH6jWz3aE5".to_string();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_ADMIN_TOKEN", &token)]);
    assert_eq!(
        s.get("/api/v1/activity/settings", Some(&token))
            .await
            .status,
        200
    );
}

/// One writer of the kill test: posts batches of 1–20 until the server dies.
/// Returns (acknowledged (id, event) pairs, batches that got no answer).
async fn kill_writer(
    http: reqwest::Client,
    url: String,
    round: u64,
    task: u64,
) -> (Vec<(u64, Value)>, Vec<Vec<Value>>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(round * 1000 + task);
    let mut acked = Vec::new();
    let mut unanswered = Vec::new();
    let mut odd = Vec::new();
    for seq in 0u64.. {
        let size = rng.gen_range(1..=20);
        let batch: Vec<Value> = (0..size)
            .map(|i| {
                let mut e = random_event(&mut rng, i);
                e["category"] = json!("load");
                e["action"] = json!("load.write");
                e["metadata"] = json!({"r": round, "t": task, "s": seq, "i": i});
                if rng.gen_bool(0.1) {
                    e["message"] = json!(format!("{} {}", "padding ".repeat(110), seq));
                }
                e
            })
            .collect();
        let sent = http.post(&url).bearer_auth(ADMIN).json(&batch).send().await;
        match sent {
            Ok(resp) if resp.status().as_u16() == 201 => match resp.json::<Value>().await {
                Ok(v) => {
                    let ids = ids_of(&v);
                    assert_eq!(ids.len(), batch.len());
                    acked.extend(ids.into_iter().zip(batch));
                }
                Err(_) => {
                    unanswered.push(batch);
                    break;
                }
            },
            Ok(resp) => {
                odd.push(format!("status {}", resp.status()));
                break;
            }
            Err(_) => {
                unanswered.push(batch);
                break;
            }
        }
    }
    (acked, unanswered, odd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_ingest_loses_no_acknowledged_record() {
    let tmp = tempdir();
    let seed: u64 = rand::thread_rng().gen();
    println!("kill-test seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = Server::start(tmp.path());
    let mut acked: Vec<(u64, Value)> = Vec::new();
    let mut unanswered: Vec<Vec<Value>> = Vec::new();
    for round in 0..5u64 {
        let url = s.url("/api/v1/activity");
        let writers: Vec<_> = (0..8)
            .map(|t| tokio::spawn(kill_writer(s.http.clone(), url.clone(), round, t)))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..900))).await;
        s.sigkill();
        for w in writers {
            let (a, u, odd) = w.await.expect("writer");
            assert!(odd.is_empty(), "unexpected answers: {odd:?}");
            acked.extend(a);
            unanswered.extend(u);
        }
        println!(
            "round {round}: {} acknowledged so far, {} batches unanswered",
            acked.len(),
            unanswered.len()
        );
        drop(s);
        s = Server::start(tmp.path());

        let records: HashMap<u64, Value> = s
            .walk(ADMIN, "category=load&order=asc", 1000)
            .await
            .into_iter()
            .map(|r| (id_of(&r), r))
            .collect();
        let distinct: BTreeSet<u64> = acked.iter().map(|(id, _)| *id).collect();
        assert_eq!(distinct.len(), acked.len(), "acknowledged ids are unique");
        assert!(
            acked.len() > round as usize,
            "round {round}: writers made progress"
        );
        for (id, ev) in &acked {
            let rec = records.get(id).unwrap_or_else(|| {
                panic!("round {round}: acknowledged record {id} is lost (seed {seed})")
            });
            assert_record(rec, *id, ev, ADMIN_LABEL);
        }
        // Batches without an answer: all or nothing.
        let marker = |v: &Value| (v["r"].clone(), v["t"].clone(), v["s"].clone());
        let mut found: HashMap<(Value, Value, Value), Vec<&Value>> = HashMap::new();
        for r in records.values() {
            found.entry(marker(&r["metadata"])).or_default().push(r);
        }
        let mut explained = acked.len();
        for batch in &unanswered {
            let present = found
                .get(&marker(&batch[0]["metadata"]))
                .map_or(0, Vec::len);
            assert!(
                present == 0 || present == batch.len(),
                "a torn batch: {present} of {}",
                batch.len()
            );
            explained += present;
        }
        assert_eq!(records.len(), explained, "every stored record was posted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sse_subscriber_is_caught_up_from_the_log() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let mut sse = Sse::open(&s, "category=bulk", None).await;
    // Far more than the live bus holds, while the client reads nothing.
    let mut ids = Vec::new();
    for b in 0..6 {
        let batch: Vec<Value> = (0..1000)
            .map(|i| {
                let category = if i % 10 == 0 { "noise" } else { "bulk" };
                json!({"category": category, "action": "bulk.add", "message": format!("row {b}-{i}")})
            })
            .collect();
        let got = s.ingest(ADMIN, &json!(batch)).await;
        ids.extend(
            got.into_iter()
                .zip(&batch)
                .filter(|(_, e)| e["category"] == json!("bulk"))
                .map(|(id, _)| id),
        );
    }
    for want in &ids {
        let ev = sse.next(10 * SECOND).await.expect("event");
        assert_eq!(
            ev.id,
            Some(want.to_string()),
            "no gap, no duplicate, in order"
        );
    }
    let sentinel = s
        .ingest(
            ADMIN,
            &json!({"category": "bulk", "action": "bulk.add", "message": "last"}),
        )
        .await[0];
    let ev = sse.next(10 * SECOND).await.expect("event");
    assert_eq!(ev.id, Some(sentinel.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_ends_its_live_streams() {
    let tmp = tempdir();
    let s = Server::start(tmp.path());
    let (key_id, token) = s.create_key("live-reader", "reader").await;
    let mut sse = Sse::open_as(&s, &token, "category=live", None).await;
    let (mut ws, _) = ws_connect(&s, Some(&token)).await.expect("websocket");
    let before = json!({"category": "live", "action": "live.x", "message": "before revocation"});
    let id = s.ingest(ADMIN, &before).await[0];
    assert_eq!(
        sse.next(5 * SECOND).await.and_then(|e| e.id),
        Some(id.to_string())
    );
    let d = Deadline::secs(5);
    loop {
        let m = ws_next(&mut ws, d.left()).await;
        if m["type"] == json!("activity_logged") && m["data"]["id"] == json!(id) {
            break;
        }
    }

    assert_eq!(
        s.delete(&format!("/api/v1/keys/{key_id}"), Some(ADMIN))
            .await
            .status,
        204
    );
    let after = json!({"category": "live", "action": "live.x", "message": "after revocation"});
    let id = s.ingest(ADMIN, &after).await[0];
    // The token stops working at once: nothing more is delivered, the streams end.
    if let Some(ev) = sse.next(5 * SECOND).await {
        panic!("a revoked key still receives the event stream: {ev:?}");
    }
    loop {
        let next = tokio::time::timeout(5 * SECOND, futures_util::StreamExt::next(&mut ws))
            .await
            .expect("the websocket of a revoked key is closed");
        match next {
            None | Some(Err(_)) => break,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => break,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                assert_ne!(
                    v["data"]["id"],
                    json!(id),
                    "a revoked key still receives the bus"
                );
                panic!("a revoked key still receives the bus: {v}");
            }
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_keeps_the_records_retention_kept() {
    let tmp = tempdir();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_RETENTION_INTERVAL", "1")]);
    let batch: Vec<Value> = (0..30)
        .map(|i| json!({"category": "keep", "action": "keep.add", "message": format!("row {i}")}))
        .collect();
    s.ingest(ADMIN, &json!(batch)).await;
    let r = s
        .put(
            "/api/v1/activity/settings",
            Some(ADMIN),
            &json!({"enabled": true, "retention": {"max_days": null, "max_entries": 20}}),
        )
        .await;
    assert_eq!(r.status, 200);
    // The run after the settings change drops records and says so.
    s.wait_records("action=system.retention_applied", 1).await;
    let d = Deadline::secs(5);
    let entries = loop {
        let n = s.stats().await["entries"].as_u64().expect("entries");
        if n <= 21 {
            break n;
        }
        d.tick("retention").await;
    };
    let kept: BTreeSet<u64> = s
        .walk(ADMIN, "category=keep", 100)
        .await
        .iter()
        .map(id_of)
        .collect();
    assert!(kept.len() >= 15, "{kept:?}");
    // Nobody writes anything now. The bound allows dropping at most
    // `entries - 20` more records, plus one for a retention notice that may
    // be on its way; after that the log must stay as it is, whatever the
    // retention runs of the next seconds (one per second) do.
    let allowed = usize::try_from(entries + 1 - 20).expect("small");
    let quiet = Deadline::secs(4);
    while quiet.left() > Duration::ZERO {
        let now: BTreeSet<u64> = s
            .walk(ADMIN, "category=keep", 100)
            .await
            .iter()
            .map(id_of)
            .collect();
        let lost: Vec<u64> = kept.difference(&now).copied().collect();
        if lost.len() > allowed {
            let newest: Vec<String> = s.get_ok("/api/v1/activity?limit=5").await["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| format!("{} {}", id_of(r), r["message"].as_str().unwrap_or("")))
                .collect();
            panic!(
                "an idle server keeps evicting records by itself: lost {lost:?} (at most {allowed} allowed); newest now: {newest:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The online-backup extension (`actlog-inspect backup --url` uses it): the
/// listing names exactly the files of a consistent backup, each file comes
/// back byte for byte (the active segment as the listed prefix), only admins
/// may use it, and nothing outside the backup set can be fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_lists_and_streams_exactly_the_backup_files() {
    let root = tempdir();
    let s = Server::start(root.path());
    populate(&s, ADMIN, ADMIN_LABEL, 120, 7).await;
    let (_, reader) = s.create_key("backup-reader", "reader").await;

    assert_eq!(s.get("/api/v1/backup", None).await.status, 401);
    assert_eq!(s.get("/api/v1/backup", Some(&reader)).await.status, 403);
    let listing = s.get("/api/v1/backup", Some(ADMIN)).await;
    assert_eq!(listing.status, 200);
    let files = listing.json()["files"].as_array().expect("files").clone();
    let names: Vec<String> = files
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect();
    assert!(names.iter().any(|n| n == "keys.json"), "{names:?}");
    assert!(names
        .iter()
        .any(|n| n.starts_with("seg-") && n.ends_with(".log")));
    for f in &files {
        let name = f["name"].as_str().expect("name");
        let len = f["len"].as_u64().expect("len");
        let got = s
            .get(
                &format!("/api/v1/backup/files/{name}?len={len}"),
                Some(ADMIN),
            )
            .await;
        assert_eq!(got.status, 200, "{name}");
        let on_disk = std::fs::read(s.data.join(name)).expect("read data file");
        assert_eq!(got.body.len() as u64, len, "{name}");
        assert_eq!(
            &got.body[..],
            &on_disk[..len as usize],
            "{name} matches the file"
        );
    }
    assert_eq!(
        s.get("/api/v1/backup/files/keys.json", Some(&reader))
            .await
            .status,
        403
    );
    for bad in ["LOCK", "..%2Fetc%2Fpasswd", "seg-1.log", "notes.txt"] {
        let r = s
            .get(&format!("/api/v1/backup/files/{bad}"), Some(ADMIN))
            .await;
        assert_eq!(r.status, 404, "{bad}");
    }
}

/// Unmounts a test filesystem when dropped (after the server using it).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Disk full for real: the data directory sits on an 8 MiB tmpfs that a
/// filler file has mostly used up. Ingest runs until the disk is full: the
/// requests that cannot be stored get 503 `unavailable` with a message
/// that says so, reads keep working, nothing acknowledged is lost. Once the
/// filler is deleted the server takes appends again by itself (no restart),
/// and everything acknowledged, before and after, survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_answers_503_loses_nothing_and_recovers_by_itself() {
    let root = tempfile::tempdir().expect("tempdir");
    let mnt = root.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "actlog-disk-full"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED disk_full_answers_503_loses_nothing_and_recovers_by_itself: \
                 cannot mount a tmpfs here (not root?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!(
                "SKIPPED disk_full_answers_503_loses_nothing_and_recovers_by_itself: \
                 no mount command: {e}"
            );
            return;
        }
    }
    let _unmount = Unmount(mnt.clone());
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0x55u8; 5 << 20]).expect("filler");
    let server = Server::start_at(root.path(), &mnt.join("data"), &[]);

    let event = |i: usize| {
        json!({
            "category": "device",
            "action": "device.changed",
            "message": format!("event {i} {}", "x".repeat(900)),
        })
    };
    let mut acked: Vec<u64> = Vec::new();
    let mut sent = 0;
    let full = loop {
        assert!(sent < 20_000, "the 8 MiB disk never filled up");
        let batch: Vec<Value> = (sent..sent + 100).map(event).collect();
        sent += 100;
        let r = server
            .post("/api/v1/activity", Some(ADMIN), &Value::Array(batch))
            .await;
        if r.status == 201 {
            acked.extend(ids_of(&r.json()));
        } else {
            break r;
        }
    };
    full.assert_error(503, "unavailable", None, None);
    let msg = full.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("disk full"), "{msg}");
    assert!(!acked.is_empty(), "some batches fit before the disk filled");
    // Still full: batches as large as the one that failed get 503 again
    // (the server may have recovered meanwhile, and a few may still fit in
    // the zeros the log had preallocated, but no more), and reads keep
    // working.
    let mut failures = 0;
    for _ in 0..40 {
        if failures == 3 {
            break;
        }
        let batch: Vec<Value> = (0..100).map(event).collect();
        let r = server
            .post("/api/v1/activity", Some(ADMIN), &Value::Array(batch))
            .await;
        if r.status == 201 {
            acked.extend(ids_of(&r.json()));
            continue;
        }
        failures += 1;
        r.assert_error(503, "unavailable", None, None);
        // The append just failed, so the log is fail-stopped until the next
        // recovery attempt (made by the next append): health says so.
        let h = server.get("/healthz", None).await;
        assert_eq!(h.status, 503, "health while failing: {}", h.text());
        assert_eq!(h.json()["status"], "failing");
    }
    assert_eq!(failures, 3, "the full disk kept taking batches");
    let last = *acked.last().expect("acked");
    let r = server
        .get(&format!("/api/v1/activity/{last}"), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "reads work on a full disk: {}", r.text());

    // Free the space; the server comes back without a restart.
    std::fs::remove_file(&filler).expect("free space");
    let deadline = Deadline::secs(60);
    let after = loop {
        let r = server
            .post("/api/v1/activity", Some(ADMIN), &event(1))
            .await;
        if r.status == 201 {
            break ids_of(&r.json());
        }
        r.assert_error(503, "unavailable", None, None);
        deadline
            .tick("ingest to work again after freeing space")
            .await;
    };
    acked.extend(after);
    let h = server.get("/healthz", None).await;
    assert_eq!((h.status, h.json()["status"].clone()), (200, json!("ok")));
    let more = server
        .ingest(ADMIN, &Value::Array((0..50).map(event).collect()))
        .await;
    acked.extend(more);
    let metrics = server.get("/metrics", None).await.text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("actlog_storage_recoveries_total "))
        .unwrap_or_default()
        .to_string();
    let n: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(n >= 1.0, "a recovery is counted: {line:?}");

    let check = |present: &BTreeSet<u64>, when: &str| {
        let missing: Vec<&u64> = acked.iter().filter(|id| !present.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "{when}: acknowledged ids lost: {missing:?}"
        );
    };
    let present: BTreeSet<u64> = server
        .walk(ADMIN, "order=asc", 1000)
        .await
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .collect();
    check(&present, "after recovering");
    let mut server = server;
    server.terminate();
    drop(server);
    let server = Server::start_at(root.path(), &mnt.join("data"), &[]);
    let present: BTreeSet<u64> = server
        .walk(ADMIN, "order=asc", 1000)
        .await
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .collect();
    check(&present, "after a restart");
}

/// `recorded_by=…` values (repeatable) as a query string.
fn by_keys(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("recorded_by={}", enc(k)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Every record says who sent it: a writer's records carry that writer's
/// key id whatever they claim (an `actor` of `system`, a `system.*` or
/// `auth.key_revoked` action), the server's own records say `server`, and
/// no client can choose the field. It filters (exact, repeatable, in lists,
/// exports, streams, facets and histograms) and is the last CSV column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_by_tells_each_keys_records_from_the_servers_own() {
    let tmp = tempdir();
    let mut s = Server::start(tmp.path());
    for r in startup_records(&s).await {
        assert_eq!(r["recorded_by"], json!("server"), "{r}");
    }
    let (w1, w1_token) = s.create_key("writer1", "writer").await;
    let (w2, w2_token) = s.create_key("writer2", "writer").await;
    assert!(is_key_id(&w1) && is_key_id(&w2) && w1 != w2);
    let keys = s.get_ok("/api/v1/keys").await;
    let admin = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["label"] == json!(ADMIN_LABEL))
        .and_then(|k| k["id"].as_str())
        .expect("the admin key")
        .to_string();
    // The key records the admin caused are still the server's.
    let created = s.wait_records("action=auth.key_created", 3).await;
    for r in &created {
        assert_eq!(r["recorded_by"], json!("server"), "{r}");
    }
    assert!(created.iter().any(|r| r["actor"] == json!(ADMIN_LABEL)));

    // A writer's records, forgeries of the server's included.
    let plain =
        json!({"category": "device", "action": "device.online", "message": "Projector online"});
    let forged_shutdown = json!({"category": "system", "action": "system.server_shutting_down",
        "actor": "system", "message": "actlog server shutting down"});
    let forged_revoke = json!({"category": "auth", "action": "auth.key_revoked", "actor": "system",
        "entity_type": "api_key", "entity_id": w2, "entity_name": "writer2",
        "message": "Revoked API key 'writer2'"});
    let w1_ids = s
        .ingest(&w1_token, &json!([plain, forged_shutdown, forged_revoke]))
        .await;
    let w2_ids = s
        .ingest(
            &w2_token,
            &json!([{"category": "device", "action": "device.offline", "message": "Lamp gone"},
                    {"category": "device", "action": "device.online", "message": "Lamp back"}]),
        )
        .await;
    let admin_id = s
        .ingest(
            ADMIN,
            &json!({"category": "entity", "action": "entity.updated", "message": "Renamed"}),
        )
        .await[0];
    for (ids, key) in [(&w1_ids, &w1), (&w2_ids, &w2), (&vec![admin_id], &admin)] {
        for id in ids {
            let r = s.get_ok(&format!("/api/v1/activity/{id}")).await;
            assert_eq!(r["recorded_by"], json!(key), "{r}");
        }
    }
    let r = s.get_ok(&format!("/api/v1/activity/{}", w1_ids[1])).await;
    assert_eq!(
        (&r["actor"], &r["action"]),
        (&json!("system"), &json!("system.server_shutting_down"))
    );
    assert_ne!(
        r["recorded_by"],
        json!("server"),
        "a forgery is not the server's"
    );

    // An event that names recorded_by is refused like any unknown field,
    // whatever the value, alone or in a batch; nothing of it is stored.
    let before = s.stats().await["entries"].clone();
    for value in [json!("server"), json!(w2), json!(null), json!(7)] {
        let ev = json!({"category": "c", "action": "c.x", "message": "m", "recorded_by": value});
        s.post("/api/v1/activity", Some(&w1_token), &ev)
            .await
            .assert_error(422, "invalid_field", Some("recorded_by"), None);
        s.post("/api/v1/activity", Some(&w1_token), &json!([plain, ev]))
            .await
            .assert_error(422, "invalid_field", Some("recorded_by"), Some(1));
    }
    assert_eq!(s.stats().await["entries"], before);

    // Filters: exact, repeatable (OR), with the other filters (AND).
    let all = s.all_records().await;
    let ids = |v: &[Value]| v.iter().map(id_of).collect::<Vec<_>>();
    let by = |keys: &[&str]| -> Vec<u64> {
        all.iter()
            .filter(|r| r["recorded_by"].as_str().is_some_and(|k| keys.contains(&k)))
            .map(id_of)
            .collect()
    };
    assert_eq!(
        ids(&s
            .walk(ADMIN, &format!("order=asc&{}", by_keys(&[&w1])), 2)
            .await),
        w1_ids
    );
    assert_eq!(
        ids(&s
            .walk(ADMIN, &format!("order=asc&{}", by_keys(&[&w1, &w2])), 2)
            .await),
        [w1_ids.clone(), w2_ids.clone()].concat()
    );
    let servers = s
        .walk(ADMIN, &format!("order=asc&{}", by_keys(&["server"])), 1000)
        .await;
    assert_eq!(ids(&servers), by(&["server"]));
    assert!(servers
        .iter()
        .all(|r| ["auth.key_created", "system.server_started"]
            .contains(&r["action"].as_str().unwrap_or(""))));
    assert!(s
        .walk(
            ADMIN,
            &format!(
                "{}&action=system.server_shutting_down",
                by_keys(&["server"])
            ),
            10
        )
        .await
        .is_empty());
    assert!(s
        .walk(
            ADMIN,
            &format!("{}&action=auth.key_revoked", by_keys(&["server"])),
            10
        )
        .await
        .is_empty());
    assert!(
        s.walk(ADMIN, &by_keys(&[&w1[..8]]), 10).await.is_empty(),
        "exact, not a prefix"
    );
    assert_eq!(
        ids(&s
            .walk(
                ADMIN,
                &format!("order=asc&category=system&{}", by_keys(&[&w1, &w2])),
                10
            )
            .await),
        [w1_ids[1]]
    );
    // A reader may filter by it too.
    let (_, reader) = s.create_key("reader1", "reader").await;
    let r = s
        .get(
            &format!("/api/v1/activity?{}", by_keys(&[&w2])),
            Some(&reader),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got = ids(r.json()["items"].as_array().expect("items"));
    got.reverse();
    assert_eq!(got, w2_ids);

    // Facets: every record counted under its sender (the reader's key
    // record is in the log first).
    s.wait_records("action=auth.key_created", 4).await;
    let all = s.all_records().await;
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for r in &all {
        *want
            .entry(r["recorded_by"].as_str().expect("never null").to_string())
            .or_default() += 1;
    }
    let v = s
        .get_ok("/api/v1/activity/facets/recorded_by?limit=100")
        .await;
    assert_eq!(v["field"], json!("recorded_by"));
    let got: BTreeMap<String, u64> = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|x| {
            (
                x["value"].as_str().expect("value").to_string(),
                x["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!((got[&w1], got[&w2], got[&admin]), (3, 2, 1));
    let v = s
        .get_ok(&format!(
            "/api/v1/activity/facets/recorded_by?category=device&{}",
            by_keys(&[&w1, &w2])
        ))
        .await;
    assert_eq!(
        v["values"],
        json!([{"value": w2, "count": 2}, {"value": w1, "count": 1}])
    );
    // The histogram counts under the filter.
    let v = s
        .get_ok(&format!(
            "/api/v1/activity/histogram?bucket=1h&{}",
            by_keys(&[&w2])
        ))
        .await;
    let total: u64 = v["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 2);

    // CSV: recorded_by is the last column, after metadata.
    let r = s
        .get("/api/v1/activity/export?format=csv&order=asc", Some(ADMIN))
        .await;
    assert_eq!(r.status, 200);
    let raw = r.text();
    assert!(raw.starts_with(
        "id,ts,category,action,actor,entity_type,entity_id,entity_name,message,severity,metadata,recorded_by\n"
    ));
    let mut rdr = csv::Reader::from_reader(raw.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), all.len());
    for (row, rec) in rows.iter().zip(&all) {
        assert_eq!(&row[0], rec["id"].to_string());
        assert_eq!(&row[11], rec["recorded_by"].as_str().expect("recorded_by"));
    }
    let row_of = |id: u64| {
        rows.iter()
            .find(|r| r[0] == id.to_string())
            .expect("row")
            .clone()
    };
    assert_eq!(&row_of(w1_ids[1])[11], w1.as_str());
    assert_eq!(&row_of(id_of(&servers[0]))[11], "server");
    // Exports take the filter.
    let r = s
        .get(
            &format!("/api/v1/activity/export?format=ndjson&{}", by_keys(&[&w1])),
            Some(ADMIN),
        )
        .await;
    let exported: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(exported.len(), 3);
    assert!(exported.iter().all(|r| r["recorded_by"] == json!(w1)));

    // Live: a stream filtered on one sender gets only its records, with
    // the field; the WebSocket's records carry it too.
    let mut sse = Sse::open(&s, &by_keys(&[&w2]), None).await;
    let (mut ws, _) = ws_connect(&s, Some(ADMIN)).await.expect("websocket");
    let skipped = s.ingest(&w1_token, &plain).await[0];
    let wanted = s.ingest(&w2_token, &plain).await[0];
    let ev = sse.next(5 * SECOND).await.expect("an event");
    assert_eq!(ev.id, Some(wanted.to_string()));
    let data: Value = serde_json::from_str(&ev.data).expect("json");
    assert_eq!(data["recorded_by"], json!(w2));
    let d = Deadline::secs(10);
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        let m = ws_next(&mut ws, d.left()).await;
        if m["type"] == json!("activity_logged") {
            seen.insert(id_of(&m["data"]), m["data"]["recorded_by"].clone());
        }
    }
    assert_eq!(seen[&skipped], json!(w1));
    assert_eq!(seen[&wanted], json!(w2));
    drop(sse);
    drop(ws);

    // A real revocation is the server's; the forgery stays writer1's.
    let r = s.delete(&format!("/api/v1/keys/{w2}"), Some(ADMIN)).await;
    assert_eq!(r.status, 204);
    let revoked = s
        .wait_records(
            &format!("action=auth.key_revoked&{}", by_keys(&["server"])),
            1,
        )
        .await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["entity_id"], json!(w2));
    let all_revoked = s.walk(ADMIN, "action=auth.key_revoked&order=asc", 10).await;
    assert_eq!(
        all_revoked
            .iter()
            .map(|r| r["recorded_by"].clone())
            .collect::<Vec<_>>(),
        [json!(w1), json!("server")]
    );

    // The real shutdown record is the server's; so are the offline key
    // records of `actlog keys`.
    assert_eq!(s.terminate().code(), Some(0), "{}", s.stderr());
    drop(s);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_actlog"))
        .args(["keys", "--data"])
        .arg(tmp.path().join("data"))
        .args(["create", "--label", "offline1", "--role", "reader"])
        .output()
        .expect("actlog keys create");
    assert!(out.status.success(), "{out:?}");
    let s = Server::start(tmp.path());
    let shutdowns = s
        .walk(ADMIN, "action=system.server_shutting_down&order=asc", 10)
        .await;
    assert_eq!(
        shutdowns
            .iter()
            .map(|r| r["recorded_by"].clone())
            .collect::<Vec<_>>(),
        [json!(w1), json!("server")]
    );
    let offline = s.walk(ADMIN, "action=auth.key_created", 100).await;
    let offline: Vec<&Value> = offline
        .iter()
        .filter(|r| r["entity_name"] == json!("offline1"))
        .collect();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0]["recorded_by"], json!("server"));
    assert!(offline[0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("(offline)"));
}

/// A data directory written before `recorded_by` existed (the engine's
/// format-2 fixture) served by this server: its records read as
/// `recorded_by: null` in JSON and an empty last CSV cell, match no
/// `recorded_by=` filter and have no facet value, while what the server
/// and the keys record from now on carries the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stored_before_recorded_by_read_as_null() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/format-2");
    for e in std::fs::read_dir(&fixture).expect("the format-2 fixture") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), data.join(e.file_name())).expect("copy");
    }
    let s = Server::start_at(tmp.path(), &data, &[]);
    s.wait_records("action=system.server_started", 1).await;
    s.wait_records("action=auth.key_created", 1).await;

    // Ids 11..=45 survived the fixture's retention; 46 on are the server's.
    let old = s.get_ok("/api/v1/activity/11").await;
    assert_eq!(
        old["message"],
        json!("record number 11 of the format-2 fixture")
    );
    assert!(old.as_object().expect("object").contains_key("recorded_by"));
    assert_eq!(old["recorded_by"], Value::Null);
    let all = s.all_records().await;
    let (before, after): (Vec<&Value>, Vec<&Value>) = all.iter().partition(|r| id_of(r) <= 45);
    assert_eq!(before.len(), 35);
    assert!(before.iter().all(|r| r["recorded_by"].is_null()));
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|r| r["recorded_by"] == json!("server")),
        "{after:?}"
    );

    let id = s
        .ingest(
            ADMIN,
            &json!({"category": "entity", "action": "entity.updated", "message": "new"}),
        )
        .await[0];
    let new = s.get_ok(&format!("/api/v1/activity/{id}")).await;
    assert!(new["recorded_by"].as_str().is_some_and(is_key_id), "{new}");

    // No filter value matches the old records, and they have no facet.
    let servers = s.walk(ADMIN, "recorded_by=server&order=asc", 1000).await;
    assert_eq!(ids_of_records(&servers), ids_of_records(&after));
    let v = s
        .get_ok("/api/v1/activity/facets/recorded_by?limit=100")
        .await;
    let counted: u64 = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|x| x["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted as usize, after.len() + 1);
    assert!(v["values"]
        .as_array()
        .expect("values")
        .iter()
        .all(|x| x["value"].is_string()));

    // CSV: an empty last cell for them.
    let r = s
        .get(
            "/api/v1/activity/export?format=csv&category=entity&order=asc",
            Some(ADMIN),
        )
        .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 36);
    for row in &rows {
        let id: u64 = row[0].parse().expect("id");
        assert_eq!(row.len(), 12);
        if id <= 45 {
            assert_eq!(&row[11], "", "{row:?}");
        } else {
            assert!(is_key_id(&row[11]), "{row:?}");
        }
    }
}

fn ids_of_records<R: std::borrow::Borrow<Value>>(records: &[R]) -> Vec<u64> {
    records.iter().map(|r| id_of(r.borrow())).collect()
}
