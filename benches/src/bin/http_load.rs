//! A load generator for a running `actlog` server, run as a second process on
//! loopback (see benches/README.md, "HTTP"). Scenarios:
//!
//! ```text
//! http_load --url URL --token T ingest --clients 64 --batch 100 --seconds 10
//! http_load --url URL --token T query --rate 1000 --seconds 10 --path '/api/v1/activity?category=device'
//! http_load --url URL --token T sse --subscribers 1000 --events 50
//! ```
//!
//! Every scenario is bounded in time and count, talks only to the given URL
//! (meant to be 127.0.0.1), and prints one JSON line of results.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

struct Args {
    url: String,
    token: String,
    scenario: String,
    clients: usize,
    batch: usize,
    seconds: u64,
    rate: u64,
    path: String,
    subscribers: usize,
    events: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8470".into(),
        token: std::env::var("ACTLOG_TOKEN").unwrap_or_default(),
        scenario: String::new(),
        clients: 64,
        batch: 1,
        seconds: 10,
        rate: 1000,
        path: "/api/v1/activity?category=device&limit=50".into(),
        subscribers: 1000,
        events: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_default();
        match k.as_str() {
            "--url" => a.url = v(),
            "--token" => a.token = v(),
            "--clients" => a.clients = v().parse().unwrap_or(64),
            "--batch" => a.batch = v().parse().unwrap_or(1),
            "--seconds" => a.seconds = v().parse().unwrap_or(10),
            "--rate" => a.rate = v().parse().unwrap_or(1000),
            "--path" => a.path = v(),
            "--subscribers" => a.subscribers = v().parse().unwrap_or(1000),
            "--events" => a.events = v().parse().unwrap_or(50),
            s => a.scenario = s.to_string(),
        }
    }
    a
}

fn event(i: u64) -> serde_json::Value {
    json!({
        "category": "device", "action": "device.connected", "actor": "load-test",
        "entity_type": "device", "entity_id": format!("dev_{}", i % 500),
        "entity_name": "Living Room LED Strip",
        "message": format!("Living Room LED Strip connected (load test event {i}) after a short network drop"),
        "metadata": {"ip": "192.168.1.20", "rssi": -61}
    })
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

async fn ingest(a: &Args, client: reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..a.clients {
        let client = client.clone();
        let url = format!("{}/api/v1/activity", a.url);
        let token = a.token.clone();
        let batch = a.batch;
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = (c as u64) << 32;
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let body: Vec<_> = (0..batch).map(|k| event(i + k as u64)).collect();
                i += batch as u64;
                let body = if batch == 1 {
                    body[0].clone()
                } else {
                    json!(body)
                };
                let t = Instant::now();
                match client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 201 => {
                        lat.push(t.elapsed());
                        sent.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (p50, p99, max) = percentiles(lat.clone());
    println!(
        "{}",
        json!({"scenario": "ingest", "clients": a.clients, "batch": a.batch, "seconds": secs,
               "events": sent.load(Ordering::Relaxed), "events_per_s": sent.load(Ordering::Relaxed) as f64 / secs,
               "requests_per_s": lat.len() as f64 / secs, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "errors": errors})
    );
}

async fn query(a: &Args, client: reqwest::Client) {
    let total = a.rate * a.seconds;
    let interval = Duration::from_secs_f64(1.0 / a.rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        let url = format!("{}{}", a.url, a.path);
        let token = a.token.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = match client.get(&url).bearer_auth(&token).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (t.elapsed(), ok)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((d, ok)) = t.await {
            if ok {
                lat.push(d);
            } else {
                errors += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (p50, p99, max) = percentiles(lat.clone());
    println!(
        "{}",
        json!({"scenario": "query", "path": a.path, "target_rate": a.rate, "achieved_rate": lat.len() as f64 / secs,
               "p50_ms": p50, "p99_ms": p99, "max_ms": max, "errors": errors})
    );
}

async fn sse(a: &Args, client: reqwest::Client) {
    let received = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        u64,
        Instant,
    >::new()));
    let mut subs = Vec::new();
    for _ in 0..a.subscribers {
        let client = client.clone();
        let url = format!("{}/api/v1/activity/stream?actor=load-test", a.url);
        let token = a.token.clone();
        let (received, ready, latencies, sent_at) = (
            received.clone(),
            ready.clone(),
            latencies.clone(),
            sent_at.clone(),
        );
        let want = a.events as u64;
        subs.push(tokio::spawn(async move {
            let Ok(resp) = client.get(&url).bearer_auth(&token).send().await else {
                return;
            };
            ready.fetch_add(1, Ordering::Relaxed);
            let mut stream = resp.bytes_stream();
            let mut got = 0u64;
            let mut buf = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let ev: String = buf.drain(..end + 2).collect();
                    if let Some(id) = ev.lines().find_map(|l| l.strip_prefix("id: ")) {
                        let id: u64 = id.trim().parse().unwrap_or(0);
                        let t0 = sent_at.lock().ok().and_then(|m| m.get(&id).copied());
                        if let (Some(t0), Ok(mut l)) = (t0, latencies.lock()) {
                            l.push(t0.elapsed());
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                        got += 1;
                        if got == want {
                            return;
                        }
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (ready.load(Ordering::Relaxed) as usize) < a.subscribers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    for i in 0..a.events as u64 {
        let t = Instant::now();
        let resp = client
            .post(format!("{}/api/v1/activity", a.url))
            .bearer_auth(&a.token)
            .json(&event(i))
            .send()
            .await;
        if let Ok(r) = resp {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(id) = v["ids"][0].as_u64() {
                    if let Ok(mut m) = sent_at.lock() {
                        m.insert(id, t);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let want = (a.events * a.subscribers) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    for s in subs {
        s.abort();
    }
    let lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let (p50, p99, max) = percentiles(lat);
    println!(
        "{}",
        json!({"scenario": "sse", "subscribers": a.subscribers, "connected": ready.load(Ordering::Relaxed),
               "events": a.events, "deliveries": received.load(Ordering::Relaxed), "expected": want,
               "deliveries_per_s": received.load(Ordering::Relaxed) as f64 / secs,
               "post_to_delivery_p50_ms": p50, "p99_ms": p99, "max_ms": max})
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()
        .expect("http client");
    match a.scenario.as_str() {
        "ingest" => ingest(&a, client).await,
        "query" => query(&a, client).await,
        "sse" => sse(&a, client).await,
        other => {
            eprintln!("unknown scenario `{other}`: use ingest, query or sse");
            std::process::exit(2);
        }
    }
}
