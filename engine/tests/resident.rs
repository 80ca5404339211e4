//! What reading through maps costs in resident memory, and giving it back.
//!
//! A test binary of its own: it reads this process's `RssFile` from
//! `/proc/self/status`, which other tests running beside it would move.

use actlog_engine::{Config, Log, NewRecord, Order, Query, Selection};

/// `RssFile` of this process, in KiB (file-backed pages mapped into it).
fn rss_file_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssFile:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssFile in /proc/self/status")
}

fn rec(i: u64) -> NewRecord {
    let mut r = NewRecord::new(
        ["entity", "auth", "device"][(i % 3) as usize],
        "device.disconnected",
        format!(
            "Event {i}: the projector in room {} dropped off the network",
            i % 97
        ),
    );
    r.entity_id = Some(format!("dev_{}", i % 11));
    r
}

/// Every record, newest first, a page of 1000 at a time, read the way
/// interactive pages read (sealed segments through their maps).
fn walk(log: &Log, sel: &Selection) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut q = Query {
        selection: sel.clone(),
        order: Order::Desc,
        limit: 1000,
        cursor: None,
    };
    loop {
        let page = log.query(&q).expect("page");
        out.extend(page.items.iter().map(|r| (r.id, r.message.clone())));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn released_pages_leave_the_resident_set_and_read_back_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        segment_max_bytes: 1 << 20,
        ..Config::default()
    };
    let log = Log::open(dir.path(), cfg).expect("open");
    for chunk in 0..60u64 {
        let batch: Vec<NewRecord> = (0..1000).map(|i| rec(chunk * 1000 + i)).collect();
        log.append(&batch).expect("append");
    }
    let sealed_kb = log.stats().expect("stats").bytes / 1024;
    assert!(sealed_kb > 8 * 1024, "enough data to see: {sealed_kb} KiB");

    let all = Selection::default();
    let device = Selection::default().with(actlog_engine::Field::Category, "device");
    let before = rss_file_kb();
    let first = walk(&log, &all);
    let first_device = walk(&log, &device);
    let after_reads = rss_file_kb();
    assert_eq!(first.len(), 60_000);
    assert_eq!(first_device.len(), 20_000);
    let grown = after_reads.saturating_sub(before);
    // Every record was read through a map: most of the files are resident.
    assert!(
        grown > sealed_kb / 2,
        "reads mapped {grown} KiB of {sealed_kb} KiB"
    );

    log.release_mapped_pages().expect("release");
    let released = rss_file_kb();
    assert!(
        released + grown / 10 < after_reads,
        "RssFile {after_reads} KiB before release, {released} KiB after"
    );

    // The pages come back from the page cache with the same bytes.
    assert_eq!(walk(&log, &all), first);
    assert_eq!(walk(&log, &device), first_device);
    log.close().expect("close");
}
