//! The online backup endpoints as a reader under load: four clients ingest
//! over HTTP while another loops `GET /api/v1/backup` and fetches the active
//! segment's listed prefix. Every listing answers 200; the listed prefix is
//! exactly `len` bytes of whole committed frames (no torn tail, the listed
//! ids), never shrinks, and the id reservation covers every listed id.
//!
//! `actlog serve` has no setting for the segment size (it opens its log
//! with `Config::default()`: 64 MiB segments, rolled after 24 h), so this
//! server never rolls here; the test of lock-free readers against a log
//! rolling every few KiB is tools/tests/readers_under_load.rs (engine
//! writers in-process, `actlog-inspect verify`/`ls`/`dump` as readers).

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actlog_engine::ids::Reservation;
use actlog_engine::recovery::scan_active;
use actlog_engine::segment::parse_segment_file_name;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const WRITE_FOR: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_listing_and_prefix_fetches_under_four_writers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(Server::start_with(
        tmp.path(),
        &[("ACTLOG_RETENTION_INTERVAL", "3600")],
    ));
    s.wait_records("action=system.server_started", 1).await;
    let t0 = Instant::now();
    let deadline = t0 + WRITE_FOR;

    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let size = 1 + (n + w) % 5;
                    let batch: Vec<Value> = (0..size)
                        .map(|k| {
                            json!({
                                "category": "device",
                                "action": "device.load",
                                "message": format!("writer {w} batch {n} item {k} {}", "x".repeat((n % 50) as usize)),
                                "metadata": {"w": w, "n": n, "k": k},
                            })
                        })
                        .collect();
                    let ids = s.ingest(ADMIN, &json!(batch)).await;
                    assert_eq!(ids.len() as u64, size);
                    acked.extend(ids);
                    n += 1;
                }
                acked
            })
        })
        .collect();

    let mut listings = 0u64;
    let mut fetched_bytes = 0u64;
    let mut last_len = 0u64;
    let mut last_listed = 0u64;
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        let r = s.get("/api/v1/backup", Some(ADMIN)).await;
        listings += 1;
        if r.status != 200 {
            failures.push(format!("listing {listings}: {} {}", r.status, r.text()));
            continue;
        }
        let files = r.json()["files"].as_array().expect("files").clone();
        let segs: Vec<&Value> = files
            .iter()
            .filter(|f| f["name"].as_str().is_some_and(|n| n.ends_with(".log")))
            .collect();
        let Some(active) = segs.last() else {
            failures.push(format!("listing {listings}: no segment: {files:?}"));
            continue;
        };
        let name = active["name"].as_str().expect("name");
        let len = active["len"].as_u64().expect("len");
        let ids = active["ids"]
            .as_array()
            .map(|a| (a[0].as_u64().expect("first"), a[1].as_u64().expect("last")));
        if len < last_len {
            failures.push(format!(
                "listing {listings}: the active prefix shrank from {last_len} to {len}"
            ));
        }
        last_len = len;
        let limit = files
            .iter()
            .find(|f| f["name"] == json!("IDS"))
            .and_then(|f| f["data"].as_str())
            .map(|d| {
                Reservation::decode(&BASE64.decode(d).expect("base64"), Path::new("IDS"))
                    .expect("a valid reservation")
                    .limit
            });
        if let Some((_, last)) = ids {
            last_listed = last_listed.max(last);
            if limit.is_none_or(|l| l <= last) {
                failures.push(format!(
                    "listing {listings}: reservation {limit:?} does not cover id {last}"
                ));
            }
        }

        // The listed prefix: whole committed frames, exactly the listed ids.
        let f = s
            .get(
                &format!("/api/v1/backup/files/{name}?len={len}"),
                Some(ADMIN),
            )
            .await;
        if f.status != 200 || f.body.len() as u64 != len {
            failures.push(format!(
                "fetch {name}?len={len}: {} with {} bytes",
                f.status,
                f.body.len()
            ));
            continue;
        }
        fetched_bytes += len;
        let base = parse_segment_file_name(name).expect("segment name");
        match scan_active(&f.body, Path::new(name), base) {
            Ok(scan) => {
                let n = scan.table.offsets.len() as u64;
                let scanned = (n > 0).then(|| (base, base + n - 1));
                if scan.end != len || scan.torn.is_some() || scanned != ids {
                    failures.push(format!(
                        "{name}?len={len}: scan ends at {} (torn {:?}) with ids {scanned:?}, \
                         listed {ids:?}",
                        scan.end, scan.torn
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}?len={len}: {e}")),
        }
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    acked.sort_unstable();
    let max_acked = *acked.last().expect("acked");
    eprintln!(
        "readers_under_load (server): {} records acknowledged by 4 writers, {listings} listings, \
         {} MiB of prefixes fetched, last listed id {last_listed}, {:.1} s",
        acked.len(),
        fetched_bytes >> 20,
        t0.elapsed().as_secs_f64()
    );
    for f in &failures {
        eprintln!("--- {f}");
    }
    assert!(failures.is_empty(), "{} failures (above)", failures.len());
    assert!(listings >= 10, "only {listings} listings");
    assert!(acked.len() >= 100, "only {} records", acked.len());
    assert!(
        last_listed <= max_acked,
        "listed id {last_listed} was never acknowledged (max {max_acked})"
    );

    // At rest, the listing holds every acknowledged id.
    let files = s.get_ok("/api/v1/backup").await["files"].clone();
    let last = files
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["ids"].as_array())
        .filter_map(|a| a[1].as_u64())
        .max()
        .expect("ids");
    assert!(last >= max_acked, "listed up to {last}, acked {max_acked}");
}
