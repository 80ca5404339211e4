//! What a flood of authentication attempts may write into the log
//! (docs/API.md, "failed authentication" and "sign-ins"): failed attempts
//! are coalesced per source (an IPv4 address or an IPv6 /64) and minute,
//! and at most 20 such records a minute are written whatever the number of
//! sources, the rest folded into one summary; sign-ins are coalesced per
//! key and minute, and a key keeps at most 20 live sessions.
//!
//! The sources are real: clients bind 127.0.0.2, 127.0.0.3, … (all of
//! 127/8 is loopback on Linux), or speak IPv6 from `::1`. The window is
//! the production minute unless a test shortens it with the hidden
//! `ACTLOG_AUTH_WINDOW_SECS`; nothing asserts on timing: a test polls for
//! the end-of-minute records, and checks "at most two per minute" exactly
//! only when the requests provably fell into one window (they took less
//! time than the window, measured around them by the client).

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{stream, StreamExt as _};
use reqwest::Method;
use serde_json::{json, Value};

/// The production window, when a test does not shorten it.
const MINUTE: Duration = Duration::from_secs(60);
/// Records written at once per minute before the rest is summarized.
const BUDGET: usize = 20;

/// Waits for what a server records when it starts (`n` starts so far).
async fn started(s: &Server, n: usize) {
    s.wait_records("action=auth.key_created", 1).await;
    s.wait_records("action=system.server_started", n).await;
}

/// Internal events are written in the order they are queued: once a key
/// created now is visible, every record queued before it is too.
async fn sentinel(s: &Server, label: &str) {
    let (id, _) = s.create_key(label, "reader").await;
    s.wait_records(&format!("entity_id={id}"), 1).await;
}

/// A client whose connections come from `ip`.
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// `GET /healthz` with an unknown bearer token, `n` times from `client`.
async fn reject(client: &reqwest::Client, url: &str, n: usize) {
    for _ in 0..n {
        let r = client
            .get(url)
            .bearer_auth("nope")
            .send()
            .await
            .expect("request");
        // The health check needs no key; the bad one is recorded anyway.
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// The `n`-th loopback source after 127.0.0.1.
fn loopback(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + n))
}

fn count(r: &Value) -> u64 {
    r["metadata"]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("metadata.count in {r}"))
}

fn source(r: &Value) -> String {
    r["metadata"]["source"]
        .as_str()
        .unwrap_or_else(|| panic!("metadata.source in {r}"))
        .to_string()
}

/// Polls until the records of `action` count `total` events (the
/// end-of-minute records included), at most 60 s; returns them oldest first.
async fn wait_total(s: &Server, action: &str, total: u64) -> Vec<Value> {
    let d = Deadline::secs(60);
    loop {
        let recs = s
            .walk(ADMIN, &format!("action={action}&order=asc"), 1000)
            .await;
        let have: u64 = recs.iter().map(count).sum();
        assert!(have <= total, "{action}: more counted than sent: {recs:?}");
        if have == total {
            return recs;
        }
        d.tick(&format!("{action} records counting {total}, have {have}"))
            .await;
    }
}

async fn set_max_entries(s: &Server, n: u64) {
    let r = s
        .put(
            "/api/v1/activity/settings",
            Some(ADMIN),
            &json!({"enabled": true, "retention": {"max_days": null, "max_entries": n}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Every record of `ids` is still there.
async fn assert_all_readable(s: &Server, ids: &BTreeSet<u64>, when: &str) {
    let have: BTreeSet<u64> = s.all_records().await.iter().map(id_of).collect();
    let lost: Vec<&u64> = ids.difference(&have).collect();
    assert!(
        lost.is_empty(),
        "{when}: {} real records were pushed out of the log: {lost:?}",
        lost.len()
    );
}

/// Finding 2 of the review: 300 unauthenticated requests, each from a new
/// address, wrote 300 records and pushed real ones out of a log limited by
/// `max_entries`. Now they write at most 20 records at once and one summary
/// when the minute ends (here: at shutdown), and the real records stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_sources_cannot_push_real_records_out() {
    const SOURCES: u32 = 300;
    let tmp = tempdir();
    let envs = [("ACTLOG_RETENTION_INTERVAL", "1")];
    let mut s = Server::start_with(tmp.path(), &envs);
    started(&s, 1).await;
    // Room for the real records, the server's own and the contract's 21
    // authentication records, not for one record per source.
    set_max_entries(&s, 200).await;
    let batch: Vec<Value> = (0..120)
        .map(
            |i| json!({"category": "real", "action": "real.thing", "message": format!("real {i}")}),
        )
        .collect();
    s.ingest(ADMIN, &json!(batch)).await;
    for k in 0..3 {
        s.create_key(&format!("real-key-{k}"), "writer").await;
    }
    sentinel(&s, "before-flood").await;
    let real: BTreeSet<u64> = s.all_records().await.iter().map(id_of).collect();

    let url = format!("http://127.0.0.1:{}/healthz", s.addr.port());
    let t0 = Instant::now();
    stream::iter(1..=SOURCES)
        .map(|n| {
            let url = url.clone();
            async move { reject(&client_from(loopback(n)), &url, 1).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let flood = t0.elapsed();
    sentinel(&s, "after-flood").await;
    // A retention run now (a settings change runs one before it answers),
    // and the interval's runs meanwhile.
    set_max_entries(&s, 199).await;
    assert_all_readable(&s, &real, "after the flood").await;

    let named = s
        .walk(ADMIN, "action=auth.key_rejected&order=asc", 1000)
        .await;
    assert!(
        !named.is_empty() && named.len() <= BUDGET,
        "{} auth.key_rejected records for one minute",
        named.len()
    );
    let flooders: BTreeSet<String> = (1..=SOURCES).map(|n| loopback(n).to_string()).collect();
    let named_sources: BTreeSet<String> = named.iter().map(source).collect();
    assert_eq!(named_sources.len(), named.len(), "one record per source");
    assert!(named_sources.is_subset(&flooders), "{named_sources:?}");
    for r in &named {
        assert_eq!(count(r), 1, "{r}");
        assert_eq!(r["actor"], json!("system"));
        assert_eq!(r["severity"], json!("warning"));
    }
    let text = s.get("/metrics", None).await.text();
    assert_eq!(metric(&text, "actlog_auth_failures_total"), 300.0);

    // The minute ends at shutdown at the latest: the summary is written then.
    assert!(s.terminate().success());
    let s = Server::start_with(tmp.path(), &envs);
    started(&s, 2).await;
    let summaries = s
        .walk(ADMIN, "action=auth.failures_summarized&order=asc", 100)
        .await;
    let named = s
        .walk(ADMIN, "action=auth.key_rejected&order=asc", 1000)
        .await;
    let total: u64 = named.iter().chain(&summaries).map(count).sum();
    assert_eq!(total, u64::from(SOURCES), "every failure counted once");
    if flood < MINUTE {
        // One minute: 20 sources named, the other 280 in one summary.
        assert_eq!(named.len(), BUDGET, "{named:?}");
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        let sum = &summaries[0];
        let folded = u64::from(SOURCES) - BUDGET as u64;
        assert_eq!(count(sum), folded, "{sum}");
        assert_eq!(sum["metadata"]["sources"], json!(folded), "{sum}");
        assert_eq!(sum["metadata"]["key_rejected"], json!(folded), "{sum}");
        assert_eq!(sum["metadata"]["login_failed"], json!(0), "{sum}");
        assert_eq!(sum["category"], json!("auth"));
        assert_eq!(sum["actor"], json!("system"));
        assert_eq!(sum["severity"], json!("warning"));
    } else {
        eprintln!("the flood took {flood:?}, longer than a minute: only totals checked");
    }
    set_max_entries(&s, 200).await;
    assert_all_readable(&s, &real, "after a restart").await;
}

/// All of `::1` is one source (`::/64`): many rejected keys from it make
/// one record at once and one more when the (shortened) minute ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_source_is_its_64() {
    const N: u64 = 40;
    const WINDOW: Duration = Duration::from_secs(5);
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: skipped");
        return;
    }
    let tmp = tempdir();
    let s = Server::start_with(
        tmp.path(),
        &[
            ("ACTLOG_LISTEN", "[::1]:0"),
            ("ACTLOG_AUTH_WINDOW_SECS", "5"),
        ],
    );
    started(&s, 1).await;
    let url = s.url("/healthz");
    let t0 = Instant::now();
    reject(&s.http, &url, N as usize).await;
    let took = t0.elapsed();
    sentinel(&s, "after").await;
    let at_once = s.walk(ADMIN, "action=auth.key_rejected", 100).await;
    let sources: Vec<String> = at_once.iter().map(source).collect();
    assert_eq!(sources[0], "::/64", "{at_once:?}");
    // No shutdown: the end-of-minute record comes from the server's tick.
    let recs = wait_total(&s, "auth.key_rejected", N).await;
    for r in &recs {
        assert_eq!(source(r), "::/64", "{r}");
    }
    assert_eq!(count(&recs[0]), 1, "the first is recorded at once");
    if took < WINDOW {
        let counts: Vec<u64> = recs.iter().map(count).collect();
        assert_eq!(counts, [1, N - 1], "{recs:?}");
    } else {
        eprintln!("the requests took {took:?}, more than a window: only totals checked");
    }
    assert!(s
        .walk(ADMIN, "action=auth.failures_summarized", 10)
        .await
        .is_empty());
}

/// On a dual-stack socket IPv4 clients arrive as `::ffff:a.b.c.d`; each is
/// still its own IPv4 source, named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_mapped_address_is_its_ipv4_source() {
    const PER_SOURCE: usize = 3;
    const WINDOW: Duration = Duration::from_secs(5);
    if std::net::TcpListener::bind("[::ffff:127.0.0.1]:0").is_err() {
        eprintln!("no IPv4-mapped IPv6 sockets on this machine: skipped");
        return;
    }
    let tmp = tempdir();
    let s = Server::start_with(
        tmp.path(),
        &[
            ("ACTLOG_LISTEN", "[::ffff:127.0.0.1]:0"),
            ("ACTLOG_AUTH_WINDOW_SECS", "5"),
        ],
    );
    started(&s, 1).await;
    let url = format!("http://127.0.0.1:{}/healthz", s.addr.port());
    let t0 = Instant::now();
    for n in 1..=3 {
        reject(&client_from(loopback(n)), &url, PER_SOURCE).await;
    }
    let took = t0.elapsed();
    sentinel(&s, "after").await;
    let at_once = s.walk(ADMIN, "action=auth.key_rejected", 100).await;
    for r in &at_once {
        assert!(source(r).starts_with("127.0.0."), "{r}");
    }
    let recs = wait_total(&s, "auth.key_rejected", 3 * PER_SOURCE as u64).await;
    let mut by_source: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &recs {
        by_source.entry(source(r)).or_default().push(count(r));
    }
    let names: Vec<&str> = by_source.keys().map(String::as_str).collect();
    assert_eq!(names, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], "{recs:?}");
    for (src, counts) in &by_source {
        assert_eq!(counts.iter().sum::<u64>(), PER_SOURCE as u64, "{src}");
        if took < WINDOW {
            assert_eq!(counts, &[1, PER_SOURCE as u64 - 1], "{src}");
        }
    }
    if took >= WINDOW {
        eprintln!("the requests took {took:?}, more than a window: only totals checked");
    }
}

/// Finding 11 of the review: every sign-in wrote a record and kept a 12-hour
/// session. Now a key's sign-ins make one record at once and one when the
/// minute ends, and a key keeps its 20 newest sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_coalesced_per_key_and_sessions_capped() {
    const N: usize = 200;
    const PER_KEY: usize = 20;
    const WINDOW: Duration = Duration::from_secs(10);
    let tmp = tempdir();
    let s = Server::start_with(tmp.path(), &[("ACTLOG_AUTH_WINDOW_SECS", "10")]);
    started(&s, 1).await;
    let (_, reader) = s.create_key("kiosk", "reader").await;
    let t0 = Instant::now();
    let mut cookies = Vec::new();
    for _ in 0..N {
        let r = s
            .post("/api/v1/session", None, &json!({"token": reader}))
            .await;
        assert_eq!(r.status, 204, "{}", r.text());
        let c = r.header("set-cookie").expect("set-cookie");
        cookies.push(c.split(';').next().expect("pair").to_string());
    }
    let took = t0.elapsed();
    sentinel(&s, "after-sign-ins").await;
    let at_once = s
        .walk(ADMIN, "action=auth.login_succeeded&order=asc", 1000)
        .await;
    if took < WINDOW {
        assert_eq!(
            at_once.len(),
            1,
            "{N} sign-ins in one minute wrote {} records before it ended",
            at_once.len()
        );
    }

    let s = &s;
    let status = |cookie: &str| {
        let rb = s
            .request(Method::GET, "/api/v1/activity?limit=1", None)
            .header("cookie", cookie.to_string());
        async move { s.send(rb).await.status }
    };
    assert_eq!(status(&cookies[0]).await, 401, "the oldest session ended");
    assert_eq!(status(&cookies[N - PER_KEY - 1]).await, 401);
    assert_eq!(status(&cookies[N - PER_KEY]).await, 200, "20th newest");
    assert_eq!(status(&cookies[N - 1]).await, 200, "the newest");

    let recs = wait_total(s, "auth.login_succeeded", N as u64).await;
    for r in &recs {
        assert_eq!(r["actor"], json!("kiosk"), "{r}");
    }
    if took < WINDOW {
        let counts: Vec<u64> = recs.iter().map(count).collect();
        assert_eq!(counts, [1, N as u64 - 1], "{recs:?}");
    } else {
        eprintln!("the sign-ins took {took:?}, more than a window: only totals checked");
    }
}
