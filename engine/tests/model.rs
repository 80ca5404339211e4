//! Model-based test: random sequences of appends, queries (filters, words,
//! prefixes, time ranges, both orders, every limit, full cursor walks),
//! facets, histograms, gets, rolls, retention, clear, stats and reopen, run
//! against the engine and against a plain `Vec<Record>` — identical answers
//! at every step.
//!
//! The model's filter semantics are written here from API.md, independently
//! of the engine's (`Selection::matches` is not used).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actlog_engine::{
    Clock, Config, Direction, Field, Log, NewRecord, Order, Query, Record, Retention, Selection,
    Severity, Word, DAY_US,
};
use proptest::prelude::*;
use serde_json::{json, Map};

const HOUR: i64 = 3_600_000_000;
const START: i64 = 1_767_225_600_000_000;

#[derive(Debug, Clone)]
struct Spec {
    category: usize,
    action: usize,
    actor: Option<usize>,
    entity: Option<usize>,
    name: Option<usize>,
    words: Vec<usize>,
    severity: usize,
    recorded_by: Option<usize>,
}

const CATEGORIES: &[&str] = &["entity", "auth", "device", "system"];
const ACTIONS: &[&str] = &[
    "entity.updated",
    "auth.login_failed",
    "device.disconnected",
    "x.y",
];
const ACTORS: &[&str] = &["alice", "bob", "Kitchen Tablet", "ci-bot"];
const ENTITIES: &[(&str, &str)] = &[
    ("device", "dev_1"),
    ("device", "dev_2"),
    ("scene", "sc_1"),
    ("capture_target", "ct_9"),
];
/// Who sent a record; `None` stands for records stored before the field
/// existed, which carry none.
const RECORDERS: &[&str] = &["key_0a1b2c3d4e5f", "key_ffeeddccbbaa", "server"];
const NAMES: &[&str] = &["Projector Bias Light", "Living Room strip", "Überlicht"];
const WORDS: &[&str] = &[
    "projector",
    "dropped",
    "kitchen-display",
    "capture.fps",
    "Scene",
    "movie",
    "proj",
];

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..CATEGORIES.len(),
        0..ACTIONS.len(),
        prop::option::of(0..ACTORS.len()),
        prop::option::of(0..ENTITIES.len()),
        prop::option::of(0..NAMES.len()),
        prop::collection::vec(0..WORDS.len(), 1..4),
        0..3usize,
        prop::option::of(0..RECORDERS.len()),
    )
        .prop_map(
            |(category, action, actor, entity, name, words, severity, recorded_by)| Spec {
                category,
                action,
                actor,
                entity,
                name,
                words,
                severity,
                recorded_by,
            },
        )
}

impl Spec {
    fn record(&self) -> NewRecord {
        let (etype, eid) = match self.entity {
            Some(i) => (
                Some(ENTITIES[i].0.to_string()),
                Some(ENTITIES[i].1.to_string()),
            ),
            None => (None, None),
        };
        let message: Vec<&str> = self.words.iter().map(|&w| WORDS[w]).collect();
        let mut metadata = Map::new();
        metadata.insert("n".into(), json!(self.words.len()));
        NewRecord {
            category: CATEGORIES[self.category].into(),
            action: ACTIONS[self.action].into(),
            actor: self.actor.map(|a| ACTORS[a].to_string()),
            entity_type: etype,
            entity_id: eid,
            entity_name: self.name.map(|n| NAMES[n].to_string()),
            message: message.join(" "),
            severity: Severity::ALL[self.severity],
            metadata,
            occurred_at: None,
            recorded_by: self.recorded_by.map(|k| RECORDERS[k].to_string()),
        }
    }
}

#[derive(Debug, Clone)]
struct Sel {
    filters: Vec<(Field, Vec<String>)>,
    words: Vec<Word>,
    since: Option<i64>,
    until: Option<i64>,
}

fn field_values(f: Field) -> Vec<String> {
    match f {
        Field::Category => CATEGORIES.iter().map(|s| s.to_string()).collect(),
        Field::Action => ACTIONS.iter().map(|s| s.to_string()).collect(),
        Field::Actor => ACTORS
            .iter()
            .chain(&["system"])
            .map(|s| s.to_string())
            .collect(),
        Field::EntityType => vec![
            "device".into(),
            "scene".into(),
            "capture_target".into(),
            "none".into(),
        ],
        Field::EntityId => ENTITIES
            .iter()
            .map(|e| e.1.to_string())
            .chain(["dev_404".into()])
            .collect(),
        Field::Severity => vec!["info".into(), "warning".into(), "error".into()],
        Field::RecordedBy => RECORDERS
            .iter()
            .chain(&["key_000000000000"])
            .map(|s| s.to_string())
            .collect(),
    }
}

fn sel() -> impl Strategy<Value = Sel> {
    let filter =
        (0..Field::ALL.len(), prop::collection::vec(0..6usize, 1..3)).prop_map(|(f, vs)| {
            let field = Field::ALL[f];
            let values = field_values(field);
            (
                field,
                vs.into_iter()
                    .map(|v| values[v % values.len()].clone())
                    .collect(),
            )
        });
    let word = (
        prop::sample::select(vec![
            "projector",
            "proj",
            "dropped",
            "kitchen",
            "display",
            "fps",
            "scene",
            "bias",
            "tablet",
            "überlicht",
            "system",
            "nothing",
        ]),
        any::<bool>(),
    )
        .prop_map(|(t, prefix)| Word {
            text: t.to_string(),
            prefix,
        });
    (
        prop::collection::vec(filter, 0..3),
        prop::collection::vec(word, 0..3),
        prop::option::of(0i64..80),
        prop::option::of(0i64..80),
    )
        .prop_map(|(filters, words, since, until)| Sel {
            filters,
            words,
            since: since.map(|h| START + h * HOUR),
            until: until.map(|h| START + h * HOUR),
        })
}

impl Sel {
    fn selection(&self) -> Selection {
        Selection {
            filters: self.filters.clone(),
            words: self.words.clone(),
            since: self.since,
            until: self.until,
        }
    }

    /// API.md semantics, written independently of the engine.
    fn matches(&self, r: &Record) -> bool {
        let value = |f: Field| -> Option<&str> {
            match f {
                Field::Category => Some(&r.category),
                Field::Action => Some(&r.action),
                Field::Actor => Some(&r.actor),
                Field::EntityType => r.entity_type.as_deref(),
                Field::EntityId => r.entity_id.as_deref(),
                Field::Severity => Some(r.severity.as_str()),
                Field::RecordedBy => r.recorded_by.as_deref(),
            }
        };
        let words: Vec<String> = [
            Some(r.message.as_str()),
            r.entity_name.as_deref(),
            Some(&r.actor),
        ]
        .into_iter()
        .flatten()
        .flat_map(|t| t.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
        self.filters
            .iter()
            .all(|(f, vs)| value(*f).is_some_and(|v| vs.iter().any(|x| x == v)))
            && self.words.iter().all(|w| {
                words.iter().any(|x| {
                    if w.prefix {
                        x.starts_with(&w.text)
                    } else {
                        *x == w.text
                    }
                })
            })
            && self.since.is_none_or(|s| r.ts >= s)
            && self.until.is_none_or(|u| r.ts < u)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        advance_min: i64,
        batch: Vec<Spec>,
        /// Through `append_async`: the flush indexes the batch, not the call.
        asynchronous: bool,
    },
    Walk {
        sel: Sel,
        asc: bool,
        limit: usize,
    },
    Facet {
        field: usize,
        sel: Sel,
        prefix: usize,
        limit: usize,
    },
    Histogram {
        sel: Sel,
        bucket_hours: i64,
        since_h: i64,
        span_h: i64,
    },
    Get {
        back: u64,
    },
    Roll,
    Retain {
        max_days: Option<u32>,
        max_entries: Option<u64>,
        enforce: bool,
    },
    Clear,
    Reopen,
    Stats,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Whole hours often, so records land exactly on bucket and range edges.
        6 => (prop_oneof![0i64..240, Just(0i64), Just(60i64), Just(180i64)], prop::collection::vec(spec(), 1..6), any::<bool>())
            .prop_map(|(advance_min, batch, asynchronous)| Op::Append { advance_min, batch, asynchronous }),
        4 => (sel(), any::<bool>(), prop_oneof![1usize..4, 4usize..60])
            .prop_map(|(sel, asc, limit)| Op::Walk { sel, asc, limit }),
        2 => (0..Field::ALL.len(), sel(), 0..3usize, 1usize..5)
            .prop_map(|(field, sel, prefix, limit)| Op::Facet { field, sel, prefix, limit }),
        2 => (sel(), 1i64..7, 0i64..60, 1i64..40)
            .prop_map(|(sel, bucket_hours, since_h, span_h)| Op::Histogram { sel, bucket_hours, since_h, span_h }),
        2 => (0u64..30).prop_map(|back| Op::Get { back }),
        1 => Just(Op::Roll),
        1 => (prop::option::of(1u32..4), prop::option::of(1u64..40), any::<bool>())
            .prop_map(|(max_days, max_entries, enforce)| Op::Retain { max_days, max_entries, enforce }),
        1 => Just(Op::Clear),
        1 => Just(Op::Reopen),
        1 => Just(Op::Stats),
    ]
}

struct Model {
    all: Vec<Record>,
    low: u64,
    retention: Retention,
    now: Arc<AtomicI64>,
}

impl Model {
    fn last(&self) -> u64 {
        self.all.len() as u64
    }

    fn first(&self) -> u64 {
        let mut first = self.low;
        if let Some(n) = self.retention.max_entries {
            first = first.max((self.last() + 1).saturating_sub(n));
        }
        if let Some(d) = self.retention.max_days {
            let cutoff = self.now.load(Ordering::SeqCst) - i64::from(d) * DAY_US;
            let id = self
                .all
                .iter()
                .find(|r| r.ts >= cutoff)
                .map_or(self.last() + 1, |r| r.id);
            first = first.max(id);
        }
        first
    }

    fn visible(&self) -> impl DoubleEndedIterator<Item = &Record> {
        let first = self.first();
        self.all.iter().filter(move |r| r.id >= first)
    }
}

fn config(now: &Arc<AtomicI64>) -> Config {
    let now = now.clone();
    Config {
        segment_max_bytes: 2048,
        segment_max_age: Duration::from_secs(6 * 3600),
        clock: Clock::from_fn(move || now.load(Ordering::SeqCst)),
        ..Config::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Arc::new(AtomicI64::new(START));
    let mut log = Log::open(dir.path(), config(&now)).expect("open");
    let mut m = Model {
        all: Vec::new(),
        low: 1,
        retention: Retention::default(),
        now: now.clone(),
    };
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                advance_min,
                batch,
                asynchronous,
            } => {
                now.fetch_add(advance_min * 60_000_000, Ordering::SeqCst);
                let recs: Vec<NewRecord> = batch.iter().map(Spec::record).collect();
                let ids: Vec<u64> = if asynchronous {
                    common::block_on(log.append_async(&recs))
                        .expect("async append")
                        .ids()
                        .collect()
                } else {
                    log.append(&recs).expect("append")
                };
                let ts = now
                    .load(Ordering::SeqCst)
                    .max(m.all.last().map_or(i64::MIN, |r| r.ts));
                for (id, r) in ids.iter().zip(recs) {
                    prop_assert_eq!(*id, m.last() + 1);
                    m.all.push(Record {
                        id: *id,
                        ts,
                        category: r.category,
                        action: r.action,
                        actor: r.actor.unwrap_or_else(|| "system".into()),
                        entity_type: r.entity_type,
                        entity_id: r.entity_id,
                        entity_name: r.entity_name,
                        message: r.message,
                        severity: r.severity,
                        metadata: r.metadata,
                        occurred_at: None,
                        recorded_by: r.recorded_by,
                    });
                }
            }
            Op::Walk { sel, asc, limit } => {
                let order = if asc { Order::Asc } else { Order::Desc };
                let mut want: Vec<&Record> = m.visible().filter(|r| sel.matches(r)).collect();
                if !asc {
                    want.reverse();
                }
                let mut q = Query {
                    selection: sel.selection(),
                    order,
                    limit,
                    cursor: None,
                };
                let mut got: Vec<Record> = Vec::new();
                let mut pages = 0;
                loop {
                    let page = log.query(&q).expect("query");
                    pages += 1;
                    prop_assert!(page.items.len() <= limit);
                    let more = page.next_cursor.is_some();
                    if more {
                        prop_assert_eq!(page.items.len(), limit, "only a full page has a cursor");
                    }
                    got.extend(page.items);
                    match page.next_cursor {
                        Some(c) => q.cursor = Some(c),
                        None => break,
                    }
                    prop_assert!(pages <= want.len() + 1, "walk does not end");
                }
                let want: Vec<Record> = want.into_iter().cloned().collect();
                prop_assert_eq!(
                    got,
                    want,
                    "step {}: walk {:?} asc={} limit={}",
                    step,
                    sel,
                    asc,
                    limit
                );
            }
            Op::Facet {
                field,
                sel,
                prefix,
                limit,
            } => {
                let field = Field::ALL[field];
                let prefix = match prefix {
                    0 => String::new(),
                    1 => field_values(field)[0].chars().take(1).collect(),
                    _ => field_values(field)[1].chars().take(3).collect(),
                };
                let mut counts: HashMap<String, u64> = HashMap::new();
                for r in m.visible().filter(|r| sel.matches(r)) {
                    let v = match field {
                        Field::Category => Some(r.category.clone()),
                        Field::Action => Some(r.action.clone()),
                        Field::Actor => Some(r.actor.clone()),
                        Field::EntityType => r.entity_type.clone(),
                        Field::EntityId => r.entity_id.clone(),
                        Field::Severity => Some(r.severity.as_str().to_string()),
                        Field::RecordedBy => r.recorded_by.clone(),
                    };
                    if let Some(v) = v.filter(|v| v.starts_with(&prefix)) {
                        *counts.entry(v).or_default() += 1;
                    }
                }
                let mut want: Vec<(String, u64)> = counts.into_iter().collect();
                want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                want.truncate(limit);
                let got: Vec<(String, u64)> = log
                    .facets(field, &sel.selection(), &prefix, limit)
                    .expect("facets")
                    .into_iter()
                    .map(|f| (f.value, f.count))
                    .collect();
                prop_assert_eq!(
                    got,
                    want,
                    "step {}: facet {:?} {:?} prefix {:?}",
                    step,
                    field,
                    sel,
                    prefix
                );
            }
            Op::Histogram {
                sel,
                bucket_hours,
                since_h,
                span_h,
            } => {
                let bucket = bucket_hours * HOUR;
                let since = START + since_h * HOUR + 17;
                let until = since + span_h * HOUR;
                let got = log
                    .histogram(&sel.selection(), bucket, since, until)
                    .expect("histogram");
                let first = since.div_euclid(bucket) * bucket;
                let s = Sel {
                    since: Some(since),
                    until: Some(until),
                    ..sel.clone()
                };
                let mut want = Vec::new();
                let mut start = first;
                while start < until {
                    let n = m
                        .visible()
                        .filter(|r| s.matches(r) && r.ts >= start && r.ts < start + bucket)
                        .count() as u64;
                    want.push((start, n));
                    start += bucket;
                }
                let got: Vec<(i64, u64)> = got.into_iter().map(|b| (b.start, b.count)).collect();
                prop_assert_eq!(got, want, "step {}: histogram {:?}", step, sel);
            }
            Op::Get { back } => {
                let id = (m.last() + 2).saturating_sub(back);
                let want = (id >= m.first())
                    .then(|| m.all.get((id as usize).wrapping_sub(1)).cloned())
                    .flatten();
                prop_assert_eq!(log.get(id).expect("get"), want, "step {}: get {}", step, id);
            }
            Op::Roll => log.roll().expect("roll"),
            Op::Retain {
                max_days,
                max_entries,
                enforce,
            } => {
                let r = Retention {
                    max_days,
                    max_entries,
                };
                log.set_retention(r).expect("retention");
                m.retention = r;
                if enforce {
                    let before = m.low;
                    let out = log.enforce_retention().expect("enforce");
                    m.low = m.first();
                    prop_assert_eq!(out.low_watermark, m.low.max(before));
                }
            }
            Op::Clear => {
                let want = m.visible().count() as u64;
                prop_assert_eq!(log.clear().expect("clear"), want);
                m.low = m.last() + 1;
            }
            Op::Reopen => {
                log.close().expect("close");
                log = Log::open(dir.path(), config(&now)).expect("reopen");
                prop_assert!(
                    log.recovery_report().torn_tail.is_none(),
                    "{:?}",
                    log.recovery_report().torn_tail
                );
                prop_assert!(log.recovery_report().rebuilt_indexes.is_empty());
                log.set_retention(m.retention).expect("retention");
            }
            Op::Stats => {
                let s = log.stats().expect("stats");
                let vis: Vec<&Record> = m.visible().collect();
                prop_assert_eq!(s.entries, vis.len() as u64);
                prop_assert_eq!(s.oldest, vis.first().map(|r| (r.id, r.ts)));
                prop_assert_eq!(s.newest, vis.last().map(|r| (r.id, r.ts)));
            }
        }
        // Invariants after every step.
        let fwd: Vec<u64> = log
            .iter(0, Direction::Forward)
            .map(|r| r.expect("read").id)
            .collect();
        let want: Vec<u64> = m.visible().map(|r| r.id).collect();
        prop_assert_eq!(fwd, want, "step {}: iteration", step);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 2000, .. ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_a_vec_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
