//! The audit's scenario end to end through the real server: records
//! acknowledged over HTTP, then one event whose metadata string and
//! `occurred_at` would make the last 48 bytes of its frame a valid seal
//! footer for the file ending there — where an online backup cuts the
//! active segment. Backed up through `GET /api/v1/backup` while the server
//! runs, restored, and served by a second server on the restored directory:
//! every acknowledged record is listed, and a new event gets an id above
//! every id acknowledged, including those acknowledged after the backup.
//!
//! Until format 3 that event's bytes ended its frame and the copied file
//! did end in a valid footer. Now the server writes `recorded_by` (the id of
//! the sending key) after them in every payload, so a client no longer
//! chooses a frame's last bytes: the same attempt is made, the test shows
//! that the copied segment ends in the key id instead of a footer, and the
//! backup and restore are checked all the same. The engine still decides
//! "sealed" by position alone; tools/tests/forged_footer_restore.rs and
//! engine/tests/hostile_payload.rs plant real forged footers through the
//! engine (which stores any `recorded_by` it is given).
//!
//! The server's tests cannot run the `actlog-inspect` binary (Cargo gives a
//! test only its own package's binaries), so this test does what
//! `actlog-inspect backup --url` does (the listing, each file's first `len`
//! bytes, inline `data` for the watermark and id reservation) and what
//! `restore` does into an empty directory (copy, `ids::mark_restored(dir,
//! 0)`). tools/tests/forged_footer_restore.rs runs the real tool binaries
//! against an engine-held live log.

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::Path;

use actlog_engine::segment::Footer;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// No retention run (and so no record of it) while the test measures
/// where the active segment ends.
const QUIET: &[(&str, &str)] = &[("ACTLOG_RETENTION_INTERVAL", "3600")];

/// The same as engine/tests/hostile_payload.rs `forged_footer`: the metadata
/// string and `occurred_at` (µs) that make the last 48 bytes of a frame
/// ending at `end` a valid footer for a file of `end` bytes.
fn forged_footer(end: u64, knob: u32) -> Option<(String, i64)> {
    let data_end = end.checked_sub(52)?;
    if data_end.to_le_bytes().iter().any(|&b| b >= 0x80) {
        return None;
    }
    for k in 0..100_000u32 {
        let ascii = |x: u32| {
            let b = x.to_le_bytes();
            u32::from_le_bytes(b.map(|c| 0x20 + c % 0x5f))
        };
        let footer = Footer {
            count: 1,
            data_crc: ascii(knob.wrapping_add(k)),
            first_ts: 0x2020_2020_2020_2020,
            last_ts: 0x2020_2020_2020_2020,
            data_end,
            table_crc: 0xce00_0000 | (ascii(k) & 0x00ff_ffff),
        };
        let bytes = footer.encode();
        let occurred_at = u32::from_be_bytes([bytes[44], bytes[45], bytes[46], bytes[47]]);
        if occurred_at < 65_536 {
            continue;
        }
        let mut s = b"    ".to_vec();
        s.extend_from_slice(&bytes[..43]);
        return Some((String::from_utf8(s).ok()?, i64::from(occurred_at)));
    }
    None
}

fn event(message: &str, note: Option<&str>, occurred_at: Option<i64>) -> Value {
    let mut ev = json!({"category": "entity", "action": "entity.updated", "message": message});
    if let Some(n) = note {
        ev["metadata"] = json!({ "note": n });
    }
    if let Some(us) = occurred_at {
        ev["occurred_at"] = json!(fmt_ts(us));
    }
    ev
}

/// The backup listing.
async fn listing(s: &Server) -> Vec<Value> {
    s.get_ok("/api/v1/backup").await["files"]
        .as_array()
        .expect("files")
        .clone()
}

/// Where the active segment's committed frames end, from the listing.
async fn active_end(s: &Server) -> u64 {
    let files = listing(s).await;
    let segs: Vec<&Value> = files
        .iter()
        .filter(|f| f["name"].as_str().is_some_and(|n| n.ends_with(".log")))
        .collect();
    assert_eq!(segs.len(), 1, "one segment: {files:?}");
    assert_eq!(segs[0]["immutable"], json!(false), "{files:?}");
    segs[0]["len"].as_u64().expect("len")
}

/// What `actlog-inspect backup --url` copies, into `to`.
async fn online_backup(s: &Server, to: &Path) -> Vec<Value> {
    fs::create_dir(to).expect("mkdir");
    let files = listing(s).await;
    for f in &files {
        let name = f["name"].as_str().expect("name");
        let len = f["len"].as_u64().expect("len");
        let bytes = match f.get("data").and_then(Value::as_str) {
            Some(b64) => BASE64.decode(b64).expect("base64"),
            None => {
                let r = s
                    .get(
                        &format!("/api/v1/backup/files/{name}?len={len}"),
                        Some(ADMIN),
                    )
                    .await;
                assert_eq!(r.status, 200, "{name}: {}", r.text());
                r.body
            }
        };
        assert_eq!(bytes.len() as u64, len, "{name}");
        fs::write(to.join(name), &bytes).expect("write");
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_footer_at_the_online_backup_cut_loses_nothing_and_reuses_no_id() {
    let tmp = tempdir();
    let s1 = Server::start_with(tmp.path(), QUIET);
    s1.wait_records("action=system.server_started", 1).await;
    s1.wait_records("action=auth.key_created", 1).await;

    // Acknowledged records.
    let mut acked: Vec<u64> = Vec::new();
    for b in 0..8 {
        let batch: Vec<Value> = (0..5)
            .map(|k| event(&format!("acknowledged {b}.{k}"), None, None))
            .collect();
        acked.extend(s1.ingest(ADMIN, &json!(batch)).await);
    }

    // The crafted event, at the end of the active segment.
    let mut forged = None;
    let mut pads = 0;
    'place: for attempt in 0..20 {
        // The length of the crafted event's frame, from a probe of its shape.
        let before = active_end(&s1).await;
        let probe = event("forged footer ahead", Some(&"A".repeat(47)), Some(65_536));
        acked.extend(s1.ingest(ADMIN, &probe).await);
        let frame_len = active_end(&s1).await - before;
        for _ in 0..300 {
            let end = active_end(&s1).await + frame_len;
            if let Some((note, occurred_at)) = forged_footer(end, 0x5eed + attempt) {
                let ev = event("forged footer ahead", Some(&note), Some(occurred_at));
                let ids = s1.ingest(ADMIN, &ev).await;
                acked.extend(&ids);
                if active_end(&s1).await == end {
                    forged = Some((ids[0], ev));
                    break 'place;
                }
                continue 'place; // something else landed: start over
            }
            acked.extend(s1.ingest(ADMIN, &event("pad", None, None)).await);
            pads += 1;
        }
    }
    let (forged_id, forged_ev) = forged.expect("placed the crafted event at the end");
    let r = s1
        .get(&format!("/api/v1/activity/{forged_id}"), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_record(&r.json(), forged_id, &forged_ev, ADMIN_LABEL);
    let key_id = r.json()["recorded_by"]
        .as_str()
        .expect("recorded_by")
        .to_string();

    // Everything the server lists now: the records the backup must hold.
    let want = s1.all_records().await;
    let listed: Vec<u64> = want.iter().map(id_of).collect();
    for id in &acked {
        assert!(listed.contains(id), "acknowledged id {id} is listed");
    }
    assert_eq!(listed.last(), Some(&forged_id));

    // The online backup: the copied active segment ends in the forgery.
    let bk = tmp.path().join("backup");
    let files = online_backup(&s1, &bk).await;
    let seg_name = files
        .iter()
        .filter_map(|f| f["name"].as_str())
        .find(|n| n.ends_with(".log"))
        .expect("a segment");
    let copied = fs::read(bk.join(seg_name)).expect("read");
    // The crafted bytes are followed by the sending key's id (a fixstr):
    // they are no longer the frame's last 48 bytes, and no footer fits.
    let mut tail = vec![0xa0 | key_id.len() as u8];
    tail.extend_from_slice(key_id.as_bytes());
    assert!(
        copied.ends_with(&tail),
        "the copied active segment ends in the forged record's recorded_by"
    );
    assert!(
        Footer::find(&copied).is_none(),
        "a client chose the last 48 bytes of a frame again"
    );

    // The first server goes on acknowledging after the backup.
    let mut after = Vec::new();
    for i in 0..5 {
        after.extend(
            s1.ingest(ADMIN, &event(&format!("after the backup {i}"), None, None))
                .await,
        );
    }
    let max_acked = *after.last().expect("ids");

    // Restore into an empty directory, as `actlog-inspect restore` does.
    let restored = tmp.path().join("restored");
    fs::create_dir(&restored).expect("mkdir");
    for e in fs::read_dir(&bk).expect("list") {
        let e = e.expect("entry");
        fs::copy(e.path(), restored.join(e.file_name())).expect("copy");
    }
    actlog_engine::ids::mark_restored(&restored, 0).expect("mark restored");

    // A server on the restored directory.
    let s2 = Server::start_at(tmp.path(), &restored, QUIET);
    s2.wait_records("action=system.server_started", 2).await;
    let got = s2.all_records().await;
    let got_before: Vec<Value> = got
        .iter()
        .filter(|r| id_of(r) <= forged_id)
        .cloned()
        .collect();
    assert_eq!(
        got_before.iter().map(id_of).collect::<Vec<_>>(),
        listed,
        "the restored server lists exactly what was listed when the backup was taken"
    );
    assert_eq!(got_before, want);
    for r in got.iter().filter(|r| id_of(r) > forged_id) {
        assert_eq!(r["category"], json!("system"), "only the server's own: {r}");
        assert!(
            id_of(r) > max_acked,
            "the restored server recorded {r} with an id acknowledged before: {max_acked}"
        );
    }
    let next = s2
        .ingest(ADMIN, &event("after the restore", None, None))
        .await[0];
    assert!(
        next > max_acked,
        "the restored server handed out id {next}; ids up to {max_acked} were acknowledged \
         (forged record {forged_id})"
    );
    eprintln!(
        "forged_footer_e2e: {} acknowledged before the backup ({pads} pads, forged id \
         {forged_id}), {} after, restored next id {next}",
        acked.len(),
        after.len()
    );
}
