//! The comparison compares equal work: at a small size, actlog and the
//! SQLite design hold the same records and answer every query of the set,
//! cursor walks, facets, exports and retention with the same ids, counts
//! and bytes.

use std::path::Path;

use actlog_benches::query_set::{CaseKind, QuerySet};
use actlog_benches::sqlite_design::{self, ExportFormat, OrderBy, SqlQuery, TextSearch};
use actlog_benches::versus::{
    export_actlog, ingest_actlog, ingest_sqlite, retention_actlog, retention_sqlite, Cut,
    SideQuery, BUSY_TIMEOUT_MS,
};
use actlog_benches::workload::generate_events;
use actlog_engine::{Config, Field, Log, Order, Query, Selection, DAY_US};
use rusqlite::Connection;

/// Events in the cross-check (30 days of them, like the full workload).
const EVENTS: u64 = 20_000;

struct Stores {
    _tmp: tempfile::TempDir,
    log_dir: std::path::PathBuf,
    db: std::path::PathBuf,
}

fn stores() -> Stores {
    let tmp = tempfile::tempdir().expect("temp dir");
    let events = tmp.path().join("events.jsonl");
    generate_events(EVENTS, 42, &events);
    let log_dir = tmp.path().join("actlog");
    let db = tmp.path().join("sqlite.db");
    let a = ingest_actlog(&log_dir, &events, EVENTS, Config::default());
    let s = ingest_sqlite(&db, &events, EVENTS);
    assert_eq!((a.records, s.records), (EVENTS, EVENTS));
    Stores {
        _tmp: tmp,
        log_dir,
        db,
    }
}

fn actlog_ids(log: &Log, q: &Query) -> (Vec<u64>, Option<u64>) {
    let page = log.query(q).expect("actlog query");
    (
        page.items.iter().map(|r| r.id).collect(),
        page.next_cursor.map(|c| c.last_id()),
    )
}

/// The page's ids from SQLite, the same whichever way the SQL orders it.
fn sqlite_ids(conn: &Connection, q: &Query, after: Option<u64>, text: TextSearch) -> Vec<u64> {
    let [by_id, by_ts, fts] = [OrderBy::Id, OrderBy::TsId, OrderBy::FtsRowid].map(|by| {
        SqlQuery::page(&q.selection, q.order, after, q.limit, text, by)
            .rows(conn)
            .expect("sqlite query")
            .iter()
            .map(|r| r.id)
            .collect::<Vec<u64>>()
    });
    assert_eq!(by_id, by_ts, "ORDER BY id and ORDER BY ts, id agree");
    assert_eq!(by_id, fts, "the FTS5 join agrees");
    by_id
}

/// Walks `selection` to the end in both stores, page by page, and compares
/// every page.
fn walk(log: &Log, conn: &Connection, selection: Selection, order: Order, limit: usize) -> usize {
    let mut q = Query {
        selection,
        order,
        limit,
        cursor: None,
    };
    let mut after = None;
    let mut total = 0;
    loop {
        let (ids, _) = actlog_ids(log, &q);
        let sql = sqlite_ids(conn, &q, after, TextSearch::Fts5);
        assert_eq!(ids, sql, "page after {after:?} of {:?}", q.selection);
        total += ids.len();
        let page = log.query(&q).expect("query");
        match page.next_cursor {
            Some(c) => {
                after = Some(c.last_id());
                q.cursor = Some(c);
            }
            None => {
                // SQLite agrees there is nothing further.
                let rest = sqlite_ids(conn, &q, ids.last().copied(), TextSearch::Fts5);
                assert!(rest.is_empty(), "SQLite has more after the last page");
                return total;
            }
        }
    }
}

#[test]
fn actlog_and_sqlite_answer_the_query_set_alike() {
    let s = stores();
    let log = Log::open(&s.log_dir, Config::default()).expect("open");
    let conn = sqlite_design::open(&s.db, BUSY_TIMEOUT_MS).expect("open db");
    assert!(sqlite_design::has_fts5(&conn).expect("compile options"));
    assert_eq!(sqlite_design::count(&conn).expect("count"), EVENTS);

    let set = QuerySet::prepare(&log);
    let mut checked = 0;
    for side in SideQuery::all(&set) {
        match &side.actlog.kind {
            CaseKind::Page(q) => {
                let (ids, _) = actlog_ids(&log, q);
                assert!(!ids.is_empty(), "{}: the case selects something", side.id);
                for (shape, sql) in &side.sql {
                    let sql: Vec<u64> = sql
                        .rows(&conn)
                        .expect("rows")
                        .iter()
                        .map(|r| r.id)
                        .collect();
                    assert_eq!(ids, sql, "{} ({shape})", side.id);
                }
            }
            CaseKind::Facets {
                field,
                selection,
                limit,
            } => {
                let a: Vec<(String, u64)> = log
                    .facets(*field, selection, "", *limit)
                    .expect("facets")
                    .into_iter()
                    .map(|f| (f.value, f.count))
                    .collect();
                assert!(!a.is_empty());
                for (shape, sql) in &side.sql {
                    assert_eq!(
                        a,
                        sql.counts(&conn).expect("counts"),
                        "{} ({shape})",
                        side.id
                    );
                }
            }
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        set.cases.len() + 1,
        "every case plus the LIKE variant"
    );
}

#[test]
fn cursor_walks_facets_exports_and_retention_agree() {
    let s = stores();
    let log = Log::open(&s.log_dir, Config::default()).expect("open");
    let conn = sqlite_design::open(&s.db, BUSY_TIMEOUT_MS).expect("open db");
    let newest = log.stats().expect("stats").newest.expect("not empty").1;
    let selections = [
        Selection::default().with(Field::Category, "device"),
        Selection::default().with_words("projector"),
        Selection::default().with_words("mov* scene"),
        Selection {
            since: Some(newest - 3 * DAY_US),
            until: Some(newest - DAY_US),
            ..Selection::default().with(Field::Actor, "admin")
        },
        Selection::default()
            .with(Field::EntityType, "scene")
            .with(Field::EntityType, "pattern")
            .with(Field::Severity, "info"),
        Selection::default()
            .with(Field::Severity, "error")
            .with_words("device"),
    ];
    for sel in &selections {
        for order in [Order::Desc, Order::Asc] {
            let n = walk(&log, &conn, sel.clone(), order, 333);
            assert!(n > 0, "{sel:?} selects something");
        }
        for field in Field::ALL {
            let a: Vec<(String, u64)> = log
                .facets(field, sel, "", 1000)
                .expect("facets")
                .into_iter()
                .map(|f| (f.value, f.count))
                .collect();
            let q = SqlQuery::facets(field, sel, 1000, TextSearch::Fts5);
            assert_eq!(a, q.counts(&conn).expect("counts"), "{field} under {sel:?}");
        }
    }

    for format in [ExportFormat::Csv, ExportFormat::Ndjson] {
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert_eq!(export_actlog(&log, format, &mut a).expect("export"), EVENTS);
        assert_eq!(
            sqlite_design::export(&conn, format, &mut b).expect("export"),
            EVENTS
        );
        assert!(a == b, "{format:?} exports differ");
    }

    let oldest = sqlite_design::oldest(&conn)
        .expect("oldest")
        .expect("rows")
        .1;
    drop(log);
    drop(conn);
    let scratch = s._tmp.path();
    for cut in [Cut::KeepNewest(EVENTS / 2), Cut::Before(oldest + DAY_US)] {
        let (_, a) = retention_actlog(&s.log_dir, &scratch.join("ret-actlog"), cut);
        let (_, b) = retention_sqlite(&s.db, &scratch.join("ret.db"), cut);
        assert!(a > 0);
        assert_eq!(a, b, "{cut:?}");
    }
    assert!(Path::new(&s.db).exists());
}
