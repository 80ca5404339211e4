//! The SQLite design actlog replaces (issue 8), tuned as well as it fairly can be.
//!
//! * One table `events` whose `id` is the rowid, and the five indexes the
//!   design names: `ts`, `(category, ts)`, `(action, ts)`, `(actor, ts)`,
//!   `(entity_type, entity_id, ts)`.
//! * Text search two ways: `LIKE '%word%'` over `message`, `entity_name` and
//!   `actor`, and an FTS5 index of the same three columns (external content,
//!   so the text is not stored twice), kept up to date by triggers during
//!   ingest and retention, because actlog indexes words as it appends.
//! * WAL, `synchronous=FULL` (every commit is fsynced), 64 MiB page cache,
//!   256 MiB of memory-mapped reads, temp tables in memory, prepared (cached)
//!   statements, one transaction per batch, `ANALYZE` after a bulk load so the
//!   planner has statistics (it turns the rare-`entity_id` lookup into a skip
//!   scan of the `(entity_type, entity_id, ts)` index).
//! * Keyset pagination by id: `… AND id < :last ORDER BY id DESC LIMIT n`.
//!
//! [`SqlQuery`] translates actlog's [`Selection`] into SQL with the same
//! meaning (values of one field OR-ed, fields AND-ed, every word present,
//! `since` inclusive, `until` exclusive), so both stores answer the same
//! questions; `tests/cross_check.rs` checks that they return the same ids.

use std::io::{self, Write};
use std::path::Path;

use actlog_engine::export::{csv_safe, format_ts, CSV_COLUMNS};
use actlog_engine::{Field, NewRecord, Order, Selection, SYSTEM_ACTOR};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

/// Tables, indexes and FTS5 triggers of the design.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,
    category    TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    entity_type TEXT,
    entity_id   TEXT,
    entity_name TEXT,
    message     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    occurred_at INTEGER,
    recorded_by TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_category_ts ON events(category, ts);
CREATE INDEX IF NOT EXISTS events_action_ts ON events(action, ts);
CREATE INDEX IF NOT EXISTS events_actor_ts ON events(actor, ts);
CREATE INDEX IF NOT EXISTS events_entity_ts ON events(entity_type, entity_id, ts);
CREATE INDEX IF NOT EXISTS events_recorded_by_ts ON events(recorded_by, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    message, entity_name, actor,
    content = 'events', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);
CREATE TRIGGER IF NOT EXISTS events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts(rowid, message, entity_name, actor)
    VALUES (new.id, new.message, new.entity_name, new.actor);
END;
CREATE TRIGGER IF NOT EXISTS events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts(events_fts, rowid, message, entity_name, actor)
    VALUES ('delete', old.id, old.message, old.entity_name, old.actor);
END;
";

/// Per-connection settings (WAL itself is persistent in the file).
const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA cache_size = -65536;
PRAGMA mmap_size = 268435456;
PRAGMA temp_store = MEMORY;
PRAGMA foreign_keys = OFF;
";

/// The columns every read returns: [`CSV_COLUMNS`] up to `metadata`, then
/// `occurred_at` and `recorded_by`.
const COLUMNS: &str = "id, ts, category, action, actor, entity_type, entity_id, entity_name, \
                       message, severity, metadata, occurred_at, recorded_by";

const INSERT: &str = "INSERT INTO events (id, ts, category, action, actor, entity_type, \
                      entity_id, entity_name, message, severity, metadata, occurred_at, \
                      recorded_by) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Opens (creating if needed) the database at `path` with the design's
/// settings and schema; `busy_ms` is the busy timeout for concurrent writers.
pub fn open(path: &Path, busy_ms: u64) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(busy_ms))?;
    conn.execute_batch(PRAGMAS)?;
    conn.execute_batch(SCHEMA)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Whether this SQLite was compiled with FTS5 (the bundled one is).
pub fn has_fts5(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("PRAGMA compile_options")?;
    let opts = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(opts.iter().any(|o| o == "ENABLE_FTS5"))
}

/// The SQLite library version string.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// Inserts `batch` in one transaction (one WAL fsync at commit).
///
/// With `first_id`, record `i` gets id `first_id + i` (a bulk load that must
/// match actlog's ids); without, SQLite assigns the next rowid. `ts` is
/// taken from the batch, as actlog's `append_at` does.
pub fn insert_batch(
    conn: &mut Connection,
    batch: &[(i64, NewRecord)],
    first_id: Option<u64>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for (i, (ts, r)) in batch.iter().enumerate() {
            let id = first_id.map(|f| (f + i as u64) as i64);
            insert_one(&mut stmt, id, *ts, r)?;
        }
    }
    tx.commit()
}

/// Inserts one record in its own (autocommit, fsynced) transaction; SQLite
/// assigns the id. Returns it.
pub fn insert_single(conn: &Connection, ts: i64, r: &NewRecord) -> rusqlite::Result<i64> {
    let mut stmt = conn.prepare_cached(INSERT)?;
    insert_one(&mut stmt, None, ts, r)?;
    Ok(conn.last_insert_rowid())
}

fn insert_one(
    stmt: &mut rusqlite::CachedStatement<'_>,
    id: Option<i64>,
    ts: i64,
    r: &NewRecord,
) -> rusqlite::Result<()> {
    let metadata = serde_json::to_string(&r.metadata)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    stmt.execute(params![
        id,
        ts,
        r.category,
        r.action,
        r.actor.as_deref().unwrap_or(SYSTEM_ACTOR),
        r.entity_type,
        r.entity_id,
        r.entity_name,
        r.message,
        r.severity.as_str(),
        metadata,
        r.occurred_at,
        r.recorded_by,
    ])?;
    Ok(())
}

/// Runs `ANALYZE` (what `PRAGMA optimize` does after a bulk load).
pub fn analyze(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("ANALYZE")
}

/// Moves everything in the WAL into the database file and truncates the WAL,
/// so the file sizes say what the data takes.
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

/// Bytes of the database file plus its `-wal` and `-shm` files.
pub fn bytes_on_disk(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(&p).map_or(0, |m| m.len())
        })
        .sum()
}

/// Bytes the FTS5 index takes inside the database (its shadow tables),
/// from the `dbstat` virtual table.
pub fn fts_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE 'events_fts%'",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Records in the table.
pub fn count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// `(min id, min ts)` of the table, if it holds anything.
pub fn oldest(conn: &Connection) -> rusqlite::Result<Option<(u64, i64)>> {
    conn.query_row("SELECT id, ts FROM events ORDER BY id LIMIT 1", [], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?))
    })
    .optional()
}

/// How a text query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSearch {
    /// The FTS5 index (word semantics, like actlog's).
    Fts5,
    /// `LIKE '%word%'` on the three text columns (substring semantics).
    Like,
}

/// How a page is ordered in SQL. Both give the same rows, because `ts`
/// never decreases with `id`; which one is faster depends on the plan SQLite
/// picks (`ts` lets a `(field, ts)` index deliver the order without a sort,
/// `id` lets it walk the table backwards), so the runner tries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    /// `ORDER BY id`: keyset pagination by id, as the design says.
    Id,
    /// `ORDER BY ts, id` with the same `id` cursor condition.
    TsId,
    /// For word queries answered by FTS5: `events_fts JOIN events`, ordered
    /// (and the cursor applied) on `events_fts.rowid`, so FTS5 walks its
    /// matches in id order and stops after the page; without words, as `Id`.
    FtsRowid,
}

impl OrderBy {
    /// Short label for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderBy::Id => "ORDER BY id",
            OrderBy::TsId => "ORDER BY ts, id",
            OrderBy::FtsRowid => "FTS5 join, ORDER BY rowid",
        }
    }
}

/// One row as SQLite returns it: every column owned, metadata as its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlRow {
    /// `id`
    pub id: u64,
    /// `ts` (µs)
    pub ts: i64,
    /// `category`
    pub category: String,
    /// `action`
    pub action: String,
    /// `actor`
    pub actor: String,
    /// `entity_type`
    pub entity_type: Option<String>,
    /// `entity_id`
    pub entity_id: Option<String>,
    /// `entity_name`
    pub entity_name: Option<String>,
    /// `message`
    pub message: String,
    /// `severity`
    pub severity: String,
    /// `metadata`, JSON text
    pub metadata: String,
    /// `occurred_at` (µs)
    pub occurred_at: Option<i64>,
    /// `recorded_by`
    pub recorded_by: Option<String>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlRow> {
    Ok(SqlRow {
        id: r.get::<_, i64>(0)? as u64,
        ts: r.get(1)?,
        category: r.get(2)?,
        action: r.get(3)?,
        actor: r.get(4)?,
        entity_type: r.get(5)?,
        entity_id: r.get(6)?,
        entity_name: r.get(7)?,
        message: r.get(8)?,
        severity: r.get(9)?,
        metadata: r.get(10)?,
        occurred_at: r.get(11)?,
        recorded_by: r.get(12)?,
    })
}

fn column_of(field: Field) -> &'static str {
    match field {
        Field::Category => "category",
        Field::Action => "action",
        Field::Actor => "actor",
        Field::EntityType => "entity_type",
        Field::EntityId => "entity_id",
        Field::Severity => "severity",
        Field::RecordedBy => "recorded_by",
    }
}

/// The FTS5 query string of actlog words: every word (AND), quoted; a
/// prefix word gets a trailing `*`.
fn fts_match(sel: &Selection) -> String {
    sel.words
        .iter()
        .map(|w| {
            let quoted = format!("\"{}\"", w.text.replace('"', "\"\""));
            if w.prefix {
                quoted + "*"
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `LIKE` pattern text with `%`, `_` and the escape character escaped.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `WHERE` clause and its parameters.
/// `extra` conditions are appended, each with its parameter if it takes one.
/// With `fts_join`, the statement reads `events_fts JOIN events e`: columns
/// are qualified and words become a plain `events_fts MATCH ?`.
fn where_clause(
    sel: &Selection,
    text: TextSearch,
    extra: &[(String, Option<Value>)],
    fts_join: bool,
) -> (String, Vec<Value>) {
    let q = if fts_join { "e." } else { "" };
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    for (field, values) in &sel.filters {
        if values.is_empty() {
            continue;
        }
        let marks = vec!["?"; values.len()].join(", ");
        conds.push(format!("{q}{} IN ({marks})", column_of(*field)));
        params.extend(values.iter().map(|v| Value::Text(v.clone())));
    }
    if let Some(s) = sel.since {
        conds.push(format!("{q}ts >= ?"));
        params.push(Value::Integer(s));
    }
    if let Some(u) = sel.until {
        conds.push(format!("{q}ts < ?"));
        params.push(Value::Integer(u));
    }
    if !sel.words.is_empty() {
        match text {
            TextSearch::Fts5 if fts_join => {
                conds.push("events_fts MATCH ?".into());
                params.push(Value::Text(fts_match(sel)));
            }
            TextSearch::Fts5 => {
                conds.push("id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)".into());
                params.push(Value::Text(fts_match(sel)));
            }
            TextSearch::Like => {
                for w in &sel.words {
                    conds.push(
                        "(message LIKE ? ESCAPE '\\' OR entity_name LIKE ? ESCAPE '\\' \
                         OR actor LIKE ? ESCAPE '\\')"
                            .into(),
                    );
                    let pattern = Value::Text(format!("%{}%", like_escape(&w.text)));
                    params.extend([pattern.clone(), pattern.clone(), pattern]);
                }
            }
        }
    }
    for (cond, value) in extra {
        conds.push(cond.clone());
        params.extend(value.clone());
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (clause, params)
}

/// A query translated to SQL once, run many times through the statement cache.
#[derive(Debug, Clone)]
pub struct SqlQuery {
    /// The statement text.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Value>,
}

impl SqlQuery {
    /// One keyset page: `selection`, `order`, after id `after` (the cursor's
    /// last id), at most `limit` rows.
    pub fn page(
        sel: &Selection,
        order: Order,
        after: Option<u64>,
        limit: usize,
        text: TextSearch,
        order_by: OrderBy,
    ) -> SqlQuery {
        let fts_join = order_by == OrderBy::FtsRowid && !sel.words.is_empty();
        let key = if fts_join { "events_fts.rowid" } else { "id" };
        let (cmp, dir) = match order {
            Order::Desc => ("<", "DESC"),
            Order::Asc => (">", "ASC"),
        };
        let extra: Vec<(String, Option<Value>)> = after
            .map(|id| (format!("{key} {cmp} ?"), Some(Value::Integer(id as i64))))
            .into_iter()
            .collect();
        let (clause, mut params) = where_clause(sel, text, &extra, fts_join);
        params.push(Value::Integer(limit as i64));
        let e_columns = COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        SqlQuery {
            sql: match order_by {
                OrderBy::TsId => format!(
                    "SELECT {COLUMNS} FROM events{clause} ORDER BY ts {dir}, id {dir} LIMIT ?"
                ),
                _ if fts_join => format!(
                    "SELECT {e_columns} FROM events_fts JOIN events e ON e.id = events_fts.rowid\
                     {clause} ORDER BY events_fts.rowid {dir} LIMIT ?"
                ),
                _ => format!("SELECT {COLUMNS} FROM events{clause} ORDER BY id {dir} LIMIT ?"),
            },
            params,
        }
    }

    /// Counts per value of `field` under `selection` (nulls not counted), by
    /// count descending then value, at most `limit`: actlog's facets.
    pub fn facets(field: Field, sel: &Selection, limit: usize, text: TextSearch) -> SqlQuery {
        let col = column_of(field);
        let extra = [(format!("{col} IS NOT NULL"), None)];
        let (clause, mut params) = where_clause(sel, text, &extra, false);
        params.push(Value::Integer(limit as i64));
        SqlQuery {
            sql: format!(
                "SELECT {col}, COUNT(*) AS n FROM events{clause} GROUP BY {col} \
                 ORDER BY n DESC, {col} LIMIT ?"
            ),
            params,
        }
    }

    /// Runs a page query; returns its rows.
    pub fn rows(&self, conn: &Connection) -> rusqlite::Result<Vec<SqlRow>> {
        let mut stmt = conn.prepare_cached(&self.sql)?;
        let rows = stmt.query_map(params_from_iter(self.params.iter()), read_row)?;
        rows.collect()
    }

    /// Runs a facet query; returns `(value, count)` pairs.
    pub fn counts(&self, conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
        let mut stmt = conn.prepare_cached(&self.sql)?;
        let rows = stmt.query_map(params_from_iter(self.params.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect()
    }

    /// The query plan SQLite picks (one line per step), for the report.
    pub fn plan(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", self.sql))?;
        let rows = stmt.query_map(params_from_iter(self.params.iter()), |r| {
            r.get::<_, String>(3)
        })?;
        rows.collect()
    }
}

/// Deletes every record with `id < first_kept` (retention by count) in one
/// transaction; returns the rows deleted.
pub fn delete_below_id(conn: &Connection, first_kept: u64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM events WHERE id < ?1", [first_kept as i64])
}

/// Deletes every record with `ts < cutoff` (retention by age) in one
/// transaction; returns the rows deleted.
pub fn delete_before_ts(conn: &Connection, cutoff: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM events WHERE ts < ?1", [cutoff])
}

/// Writes one row as the NDJSON line actlog's export writes
/// (`actlog_engine::export::RecordJson`), embedding the stored metadata JSON
/// text as it is rather than parsing it.
pub fn write_ndjson(w: &mut impl Write, r: &SqlRow) -> io::Result<()> {
    fn s(w: &mut impl Write, v: &str) -> io::Result<()> {
        serde_json::to_writer(&mut *w, v).map_err(io::Error::other)
    }
    fn opt(w: &mut impl Write, v: Option<&str>) -> io::Result<()> {
        match v {
            Some(v) => s(w, v),
            None => w.write_all(b"null"),
        }
    }
    write!(
        w,
        "{{\"id\":{},\"ts\":\"{}\",\"category\":",
        r.id,
        format_ts(r.ts)
    )?;
    s(w, &r.category)?;
    w.write_all(b",\"action\":")?;
    s(w, &r.action)?;
    w.write_all(b",\"actor\":")?;
    s(w, &r.actor)?;
    w.write_all(b",\"entity_type\":")?;
    opt(w, r.entity_type.as_deref())?;
    w.write_all(b",\"entity_id\":")?;
    opt(w, r.entity_id.as_deref())?;
    w.write_all(b",\"entity_name\":")?;
    opt(w, r.entity_name.as_deref())?;
    w.write_all(b",\"message\":")?;
    s(w, &r.message)?;
    w.write_all(b",\"severity\":")?;
    s(w, &r.severity)?;
    w.write_all(b",\"metadata\":")?;
    w.write_all(r.metadata.as_bytes())?;
    match r.occurred_at {
        Some(t) => write!(w, ",\"occurred_at\":\"{}\"", format_ts(t))?,
        None => w.write_all(b",\"occurred_at\":null")?,
    }
    w.write_all(b",\"recorded_by\":")?;
    opt(w, r.recorded_by.as_deref())?;
    w.write_all(b"}\n")
}

/// The CSV cells of a row, as actlog's `csv_cells` makes them (formula-safe,
/// null as empty, metadata as its JSON text).
pub fn csv_row(r: &SqlRow) -> [String; 12] {
    let opt = |v: &Option<String>| v.as_deref().map(csv_safe).unwrap_or_default().into_owned();
    [
        r.id.to_string(),
        format_ts(r.ts),
        csv_safe(&r.category).into_owned(),
        csv_safe(&r.action).into_owned(),
        csv_safe(&r.actor).into_owned(),
        opt(&r.entity_type),
        opt(&r.entity_id),
        opt(&r.entity_name),
        csv_safe(&r.message).into_owned(),
        r.severity.clone(),
        csv_safe(&r.metadata).into_owned(),
        opt(&r.recorded_by),
    ]
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// CSV with a header row (the server's `format=csv`).
    Csv,
    /// One JSON object per line (the server's `format=ndjson`).
    Ndjson,
}

/// Streams every row, oldest first, to `out` in `format`; returns the rows
/// written. Reads with one statement, so memory stays constant.
pub fn export(conn: &Connection, format: ExportFormat, out: &mut impl Write) -> io::Result<u64> {
    let to_io = |e: rusqlite::Error| io::Error::other(e.to_string());
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM events ORDER BY id"))
        .map_err(to_io)?;
    let mut rows = stmt.query([]).map_err(to_io)?;
    let mut n = 0u64;
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_COLUMNS)?;
            while let Some(row) = rows.next().map_err(to_io)? {
                w.write_record(csv_row(&read_row(row).map_err(to_io)?))?;
                n += 1;
            }
            w.flush()?;
        }
        ExportFormat::Ndjson => {
            while let Some(row) = rows.next().map_err(to_io)? {
                write_ndjson(out, &read_row(row).map_err(to_io)?)?;
                n += 1;
            }
        }
    }
    out.flush()?;
    Ok(n)
}
