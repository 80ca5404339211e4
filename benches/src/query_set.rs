//! The engine's query set, as the issue lists it, prepared against one log:
//! which actor is "frequent", which entity id is "rare", where a deep keyset
//! page starts. The criterion bench (`benches/queries.rs`) and the figures
//! runner (`src/bin/engine_figures.rs`) both run exactly these cases.

use std::path::Path;
use std::time::{Duration, Instant};

use actlog_engine::{
    Config, Cursor, Field, Log, Query, Retention, RetentionOutcome, Selection, DAY_US, MAX_LIMIT,
};

use crate::workload::copy_log;

/// Page size of every page query.
pub const PAGE: usize = 50;

/// What a case runs.
#[derive(Debug, Clone)]
pub enum CaseKind {
    /// One keyset page.
    Page(Query),
    /// Value counts of one field.
    Facets {
        /// The counted field.
        field: Field,
        /// Which records are counted.
        selection: Selection,
        /// Most values returned.
        limit: usize,
    },
}

/// One read-only query of the set.
#[derive(Debug, Clone)]
pub struct QueryCase {
    /// Benchmark id, e.g. `newest50_category_auth`.
    pub id: &'static str,
    /// Human description with the concrete values picked from the data.
    pub what: String,
    /// The query itself.
    pub kind: CaseKind,
}

impl QueryCase {
    /// Runs the query once; returns how many items (records or values) it
    /// returned. A page is read as the server reads it: `Log::query_buf`,
    /// then every returned record parsed in place (`RecordView`).
    pub fn run(&self, log: &Log) -> usize {
        match &self.kind {
            CaseKind::Page(q) => {
                let page = log.query_buf(q).expect("page query");
                for v in page.views() {
                    std::hint::black_box(v.expect("stored record").message.len());
                }
                page.len()
            }
            CaseKind::Facets {
                field,
                selection,
                limit,
            } => log
                .facets(*field, selection, "", *limit)
                .expect("facets query")
                .len(),
        }
    }

    /// [`QueryCase::run`], but pages are decoded into owned `Record`s
    /// (`Log::query`), the API for callers that keep records.
    pub fn run_owned(&self, log: &Log) -> usize {
        match &self.kind {
            CaseKind::Page(q) => log.query(q).expect("page query").items.len(),
            CaseKind::Facets { .. } => self.run(log),
        }
    }
}

fn page(selection: Selection, cursor: Option<Cursor>, limit: usize) -> Query {
    Query {
        selection,
        limit,
        cursor,
        ..Query::default()
    }
}

/// Count of `field = value` among `selection` (prefix facets, then the exact
/// value picked out).
fn count_of(log: &Log, field: Field, selection: &Selection, value: &str) -> u64 {
    log.facets(field, selection, value, MAX_LIMIT)
        .expect("facets")
        .into_iter()
        .find(|f| f.value == value)
        .map_or(0, |f| f.count)
}

/// The rarest entity id (fewest records, then smallest value).
fn rarest_entity(log: &Log) -> (String, u64) {
    let ids = log
        .distinct_values(Field::EntityId, "", usize::MAX)
        .expect("distinct entity ids");
    ids.into_iter()
        .map(|id| {
            let n = count_of(log, Field::EntityId, &Selection::default(), &id);
            (id, n)
        })
        .filter(|(_, n)| *n > 0)
        .min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
        .expect("the workload has entity ids")
}

/// Walks `selection` newest first, page by page, until `skip` records are
/// behind; returns the cursor there.
fn cursor_after(log: &Log, selection: &Selection, skip: u64) -> Cursor {
    let mut cursor = None;
    let mut done = 0u64;
    while done < skip {
        let limit = (skip - done).min(MAX_LIMIT as u64) as usize;
        let p = log
            .query(&page(selection.clone(), cursor, limit))
            .expect("walk page");
        done += p.items.len() as u64;
        cursor = Some(p.next_cursor.expect("the walk has not reached the end"));
    }
    cursor.expect("skip is positive")
}

/// The values the query set picks from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picks {
    /// Visible records.
    pub records: u64,
    /// ts of the newest record (µs).
    pub newest_ts: i64,
    /// The most frequent actor among `category=entity` and its record count there.
    pub actor: (String, u64),
    /// The rarest entity id (fewest records, then smallest value) and its count.
    pub rare_entity: (String, u64),
    /// `category=device` records, and how many the deep page's cursor skips.
    pub deep: (u64, u64),
    /// The cursor 90 % of the way back through `category=device`.
    pub deep_cursor: Cursor,
}

impl Picks {
    /// Finds the values in `log`. Takes about a second at 1 M records: the
    /// deep cursor is found by really walking 90 % of `category=device`
    /// (which touches most of the log's pages), the rare id by counting
    /// every entity id.
    pub fn find(log: &Log) -> Picks {
        let stats = log.stats().expect("stats");
        let newest_ts = stats.newest.expect("the log is not empty").1;
        let entity = Selection::default().with(Field::Category, "entity");
        let top = log
            .facets(Field::Actor, &entity, "", 1)
            .expect("actor facets");
        let actor = top
            .first()
            .map(|f| (f.value.clone(), f.count))
            .expect("entity events have actors");
        let rare_entity = rarest_entity(log);
        let device = Selection::default().with(Field::Category, "device");
        let devices = count_of(log, Field::Category, &Selection::default(), "device");
        let skip = devices * 9 / 10;
        let deep_cursor = cursor_after(log, &device, skip);
        Picks {
            records: stats.entries,
            newest_ts,
            actor,
            rare_entity,
            deep: (devices, skip),
            deep_cursor,
        }
    }

    /// One line of tab-separated fields, for handing the picks to another
    /// process (see [`Picks::decode`]).
    pub fn encode(&self) -> String {
        let cursor: String = self
            .deep_cursor
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        [
            self.records.to_string(),
            self.newest_ts.to_string(),
            self.actor.0.clone(),
            self.actor.1.to_string(),
            self.rare_entity.0.clone(),
            self.rare_entity.1.to_string(),
            self.deep.0.to_string(),
            self.deep.1.to_string(),
            cursor,
        ]
        .join("\t")
    }

    /// Parses [`Picks::encode`]'s output.
    pub fn decode(s: &str) -> Result<Picks, String> {
        let f: Vec<&str> = s.split('\t').collect();
        if f.len() != 9 {
            return Err(format!("expected 9 tab-separated fields, got {}", f.len()));
        }
        let num = |i: usize| -> Result<u64, String> {
            f[i].parse().map_err(|e| format!("field {i}: {e}"))
        };
        let bytes = (0..f[8].len() / 2)
            .map(|i| u8::from_str_radix(f[8].get(2 * i..2 * i + 2).unwrap_or(""), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| format!("cursor: {e}"))?;
        Ok(Picks {
            records: num(0)?,
            newest_ts: f[1].parse().map_err(|e| format!("newest ts: {e}"))?,
            actor: (f[2].to_string(), num(3)?),
            rare_entity: (f[4].to_string(), num(5)?),
            deep: (num(6)?, num(7)?),
            deep_cursor: Cursor::from_bytes(&bytes).map_err(|e| format!("cursor: {e}"))?,
        })
    }
}

/// The prepared query set and the values it picked.
#[derive(Debug, Clone)]
pub struct QuerySet {
    /// The read-only cases, in the order.
    pub cases: Vec<QueryCase>,
    /// The values picked from the data.
    pub picks: Picks,
}

impl QuerySet {
    /// Finds the [`Picks`] in `log` and builds the cases.
    pub fn prepare(log: &Log) -> QuerySet {
        QuerySet::with_picks(Picks::find(log))
    }

    /// Builds the cases from picks found earlier (maybe by another process).
    pub fn with_picks(picks: Picks) -> QuerySet {
        let Picks {
            newest_ts,
            ref actor,
            ref rare_entity,
            deep: (devices, skip),
            deep_cursor,
            ..
        } = picks;
        let entity = Selection::default().with(Field::Category, "entity");
        let device = Selection::default().with(Field::Category, "device");
        let cases = vec![
            QueryCase {
                id: "newest50_unfiltered",
                what: "newest 50, no filter".into(),
                kind: CaseKind::Page(Query::default()),
            },
            QueryCase {
                id: "newest50_category_auth",
                what: "category=auth, newest 50".into(),
                kind: CaseKind::Page(page(
                    Selection::default().with(Field::Category, "auth"),
                    None,
                    PAGE,
                )),
            },
            QueryCase {
                id: "newest50_actor_and_category_entity",
                what: format!(
                    "actor={} AND category=entity ({} records), newest 50",
                    actor.0, actor.1
                ),
                kind: CaseKind::Page(page(
                    entity.clone().with(Field::Actor, actor.0.clone()),
                    None,
                    PAGE,
                )),
            },
            QueryCase {
                id: "newest50_rare_entity_id",
                what: format!(
                    "entity_id={} ({} records, no entity_type), newest 50",
                    rare_entity.0, rare_entity.1
                ),
                kind: CaseKind::Page(page(
                    Selection::default().with(Field::EntityId, rare_entity.0.clone()),
                    None,
                    PAGE,
                )),
            },
            QueryCase {
                id: "last_day_device_disconnected",
                what: "action=device.disconnected AND ts >= newest - 24 h, newest 50".into(),
                kind: CaseKind::Page(page(
                    Selection {
                        since: Some(newest_ts - DAY_US),
                        ..Selection::default().with(Field::Action, "device.disconnected")
                    },
                    None,
                    PAGE,
                )),
            },
            QueryCase {
                id: "newest50_word_projector",
                what: "word `projector`, newest 50".into(),
                kind: CaseKind::Page(page(
                    Selection::default().with_words("projector"),
                    None,
                    PAGE,
                )),
            },
            QueryCase {
                id: "deep_page_category_device",
                what: format!(
                    "category=device, the page of 50 after {skip} of {devices} (keyset cursor)"
                ),
                kind: CaseKind::Page(page(device, Some(deep_cursor), PAGE)),
            },
            QueryCase {
                id: "facets_category_last_7d",
                what: "counts by category, ts >= newest - 7 d".into(),
                kind: CaseKind::Facets {
                    field: Field::Category,
                    selection: Selection {
                        since: Some(newest_ts - 7 * DAY_US),
                        ..Selection::default()
                    },
                    limit: PAGE,
                },
            },
            QueryCase {
                id: "facets_actor_all_time",
                what: "counts by actor, all time".into(),
                kind: CaseKind::Facets {
                    field: Field::Actor,
                    selection: Selection::default(),
                    limit: PAGE,
                },
            },
        ];
        QuerySet { cases, picks }
    }
}

/// Id of the retention case.
pub const RETENTION_ID: &str = "retention_drop_oldest_half";

/// One retention run: copies the log at `src` to `scratch` (untimed), opens
/// the copy (untimed), times `set_retention(max_entries = records / 2)` plus
/// `enforce_retention()` (which includes unlinking the dropped segments),
/// then closes and deletes the copy (untimed).
pub fn retention_run(src: &Path, scratch: &Path, records: u64) -> (Duration, RetentionOutcome) {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch).expect("remove an old retention copy");
    }
    copy_log(src, scratch);
    let log = Log::open(scratch, Config::default()).expect("open the copy");
    let start = Instant::now();
    log.set_retention(Retention {
        max_days: None,
        max_entries: Some(records / 2),
    })
    .expect("set retention");
    let outcome = log.enforce_retention().expect("enforce retention");
    let elapsed = start.elapsed();
    drop(log);
    std::fs::remove_dir_all(scratch).expect("remove the retention copy");
    (elapsed, outcome)
}
