//! The OpenAPI 3 document of the API, written by hand next to the routes it
//! describes. It is exact: every bound the server enforces on one parameter
//! or field is in the schema, and every status a route can answer is
//! listed. Rules that span several fields (or a byte size, which JSON Schema
//! cannot state) are named in docs/API.md, "Rules the schema cannot state".
//! `tests` check that every route of `routes::ROUTES` is in it; the API
//! fuzzing run (`scripts/api-fuzz`, schemathesis) checks the rest against the
//! running server.

use actlog_engine::Field;
use serde_json::{json, Map, Value};

use crate::json::MAX_BATCH;
use crate::params::{MAX_PARAM_LEN, MAX_VALUES};

/// The fields that take exact-match filters and facets: every field the
/// engine indexes (`params.rs` takes each of them by its wire name).
fn filter_fields() -> Vec<&'static str> {
    Field::ALL.iter().map(|f| f.as_str()).collect()
}

/// A query parameter's value: at most [`MAX_PARAM_LEN`] bytes.
fn param_string() -> Value {
    json!({"type": "string", "maxLength": MAX_PARAM_LEN})
}

fn filters() -> Vec<Value> {
    let mut v: Vec<Value> = filter_fields()
        .into_iter()
        .map(|f| {
            let what = if f == Field::RecordedBy.as_str() {
                "an API key id (`key_…`) or `server`; records stored before the field existed match no value"
            } else {
                "the stored value"
            };
            json!({"name": f, "in": "query", "required": false, "style": "form", "explode": true,
                   "description": format!("Exact match on `{f}` ({what}); repeat for OR (at most {MAX_VALUES} values)."),
                   "schema": {"type": "array", "maxItems": MAX_VALUES, "items": param_string()}})
        })
        .collect();
    v.push(json!({"name": "q", "in": "query", "description": "Words (AND); a trailing * matches a prefix.", "schema": param_string()}));
    v.push(json!({"name": "since", "in": "query", "description": "Inclusive, RFC 3339.", "schema": {"type": "string", "format": "date-time"}}));
    v.push(json!({"name": "until", "in": "query", "description": "Exclusive, RFC 3339; not before `since`.", "schema": {"type": "string", "format": "date-time"}}));
    v
}

fn with(mut base: Vec<Value>, extra: &[Value]) -> Vec<Value> {
    base.extend_from_slice(extra);
    base
}

fn json_body(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The error answers of a route: `codes` with their descriptions, all in
/// the API's error shape.
fn errors(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(c, d)| {
            (
                c.to_string(),
                json_body(d, json!({"$ref": "#/components/schemas/Error"})),
            )
        })
        .collect()
}

fn responses(success: impl AsRef<[(&'static str, Value)]>, codes: &[&[(&str, &str)]]) -> Value {
    let success = success.as_ref();
    let mut m = errors(&codes.concat());
    for (code, v) in success {
        m.insert(code.to_string(), v.clone());
    }
    Value::Object(m)
}

/// Any route: the connection cap answers 503 before a route is chosen.
const ANY: &[(&str, &str)] = &[(
    "503",
    "The server has as many connections (or live streams) open as it allows, or storage is failing",
)];
/// Routes that need a key.
const AUTH: &[(&str, &str)] = &[
    ("401", "Missing or unknown credentials"),
    (
        "403",
        "The key lacks the role, or a cookie-authenticated request is not from the server's own origin",
    ),
];
/// Routes whose query parameters are checked.
const PARAMS: &[(&str, &str)] = &[("422", "A parameter has a bad value (`field` names it)")];
/// Routes that read a JSON body.
const BODY: &[(&str, &str)] = &[
    ("400", "Malformed JSON: a syntax error, a truncated body, bytes that are not UTF-8"),
    ("408", "The body did not arrive in time"),
    ("413", "The body is larger than this route takes"),
    ("415", "A cookie-authenticated body that is not application/json"),
    ("422", "Well-formed JSON of the wrong shape, or a field out of bounds (`field`, and `index` in a batch)"),
];

/// A token field (`category`, `action`, `entity_type`).
fn token() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$", "minLength": 1, "maxLength": 64})
}

/// A name field (`actor`, `entity_id`, `entity_name`): 1–256 bytes.
fn name() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 256})
}

/// A metadata value that may hold `depth` more levels of arrays or
/// objects (the metadata object itself is level 1 of at most 4).
fn meta_value(depth: usize) -> Value {
    let leaf = json!({"not": {"anyOf": [{"type": "object"}, {"type": "array"}]}});
    if depth == 0 {
        return leaf;
    }
    json!({"anyOf": [
        leaf,
        {"type": "array", "items": meta_value(depth - 1)},
        {"type": "object", "additionalProperties": meta_value(depth - 1)},
    ]})
}

/// `schema` or `null` (OpenAPI 3.0: an `enum` must list `null` too).
fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema
}

fn schemas() -> Value {
    let severity = json!({"type": "string", "enum": ["info", "warning", "error"]});
    let ts = json!({"type": "string", "format": "date-time"});
    json!({
      "Error": {"type": "object", "required": ["error"], "additionalProperties": false, "properties": {
          "error": {"type": "object", "required": ["code", "message"], "additionalProperties": false, "properties": {
              "code": {"type": "string", "pattern": "^[a-z_]+$"}, "message": {"type": "string"},
              "field": {"type": "string"}, "index": {"type": "integer", "minimum": 0}}}}},
      "Record": {"type": "object", "additionalProperties": false,
          "required": ["id", "ts", "category", "action", "actor", "entity_type", "entity_id", "entity_name",
                       "message", "severity", "metadata", "occurred_at", "recorded_by"],
          "properties": {
              "id": {"type": "integer", "minimum": 1}, "ts": ts,
              "category": token(), "action": token(), "actor": name(),
              "entity_type": nullable(token()), "entity_id": nullable(name()), "entity_name": nullable(name()),
              "message": {"type": "string", "minLength": 1, "maxLength": 1024}, "severity": severity,
              "metadata": {"type": "object"}, "occurred_at": nullable(ts.clone()),
              "recorded_by": nullable(json!({"type": "string", "pattern": "^(key_[0-9a-f]+|server)$",
                  "description": "Set by the server, never by the client: the id of the API key that sent the record, or `server` for what the server records about itself. Null only for records stored before the field existed."}))}},
      "Event": {"type": "object", "required": ["category", "action", "message"], "additionalProperties": false,
          "description": "Lengths are in bytes of UTF-8 (equal to characters for ASCII). Metadata: at most 4 levels deep (arrays count), at most 4096 bytes as MessagePack; secret-looking keys are redacted.",
          "properties": {
              "category": token(), "action": token(),
              "message": {"type": "string", "minLength": 1, "maxLength": 1024},
              "actor": nullable(name()), "entity_type": nullable(token()),
              "entity_id": nullable(name()), "entity_name": nullable(name()),
              "severity": nullable(severity),
              "metadata": nullable(json!({"type": "object", "additionalProperties": meta_value(3)})),
              "occurred_at": nullable(json!({"type": "string", "format": "date-time"}))}},
      "Settings": {"type": "object", "required": ["enabled"], "additionalProperties": false, "properties": {
          "enabled": {"type": "boolean"},
          "retention": nullable(json!({"type": "object", "additionalProperties": false, "properties": {
              "max_days": nullable(json!({"type": "integer", "minimum": 1, "maximum": 36500})),
              "max_entries": nullable(json!({"type": "integer", "minimum": 1, "maximum": u64::MAX}))}}))}},
      "SettingsOut": {"type": "object", "required": ["enabled", "retention"], "additionalProperties": false, "properties": {
          "enabled": {"type": "boolean"},
          "retention": {"type": "object", "required": ["max_days", "max_entries"], "additionalProperties": false, "properties": {
              "max_days": nullable(json!({"type": "integer", "minimum": 1, "maximum": 36500})),
              "max_entries": nullable(json!({"type": "integer", "minimum": 1}))}}}},
      "Key": {"type": "object", "required": ["id", "label", "role", "created_at"], "additionalProperties": false, "properties": {
          "id": {"type": "string", "pattern": "^key_[0-9a-f]+$"}, "label": {"type": "string"},
          "role": {"type": "string", "enum": ["admin", "writer", "reader"]}, "created_at": ts}}
    })
}

/// 414 and 431: a request target past hyper's fixed 64 KiB bound, or a
/// request head past the connection's read buffer (`listener::HTTP1_MAX_BUF`),
/// answered by the HTTP layer before a request exists, so without the JSON
/// error body. Seven filters of 100 values of 4 KiB each can reach either.
fn too_long() -> [(&'static str, Value); 2] {
    [
        (
            "414",
            json!({"description": "URI too long: answered by the HTTP layer, without a body"}),
        ),
        (
            "431",
            json!({"description": "Request head too large: answered by the HTTP layer, without a body"}),
        ),
    ]
}

/// The document.
pub fn document() -> Value {
    let limit = json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}});
    let cursor = json!({"name": "cursor", "in": "query", "description": "`next_cursor` of the previous page, with the same filters and order",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "maxLength": MAX_PARAM_LEN}});
    let order = json!({"name": "order", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"], "default": "desc"}});
    let rec = json!({"$ref": "#/components/schemas/Record"});
    let settings = json!({"$ref": "#/components/schemas/SettingsOut"});
    let event = json!({"$ref": "#/components/schemas/Event"});
    let reads: &[&[(&str, &str)]] = &[ANY, AUTH, PARAMS];
    json!({
      "openapi": "3.0.3",
      "info": {"title": "actlog", "version": env!("CARGO_PKG_VERSION"),
               "description": "Self-hosted activity / audit log. See docs/API.md."},
      "components": {
        "securitySchemes": {
          "bearer": {"type": "http", "scheme": "bearer"},
          "session": {"type": "apiKey", "in": "cookie", "name": "actlog_session",
                      "description": "The web UI's session (`__Host-actlog_session` behind TLS); unsafe methods also need the server's own Origin"}
        },
        "schemas": schemas()
      },
      "security": [{"bearer": []}, {"session": []}],
      "paths": {
        "/api/v1/activity": {
          "post": {"summary": "Record one event or a batch of 1–1000 (all or nothing, 201 once durable)",
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
                       event.clone(),
                       {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": event}]}}}},
                   "description": "Each record's `recorded_by` is the id of the key that sent it; an event naming `recorded_by` (or any other unknown field) is a 422 naming that field.",
                   "responses": responses(&[("201", json_body("Ids, once fsynced", json!({"type": "object", "required": ["ids"], "additionalProperties": false,
                       "properties": {"ids": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {"type": "integer", "minimum": 1}}}})))],
                       &[ANY, AUTH, BODY, &[("409", "Recording is off")]])},
          "get": {"summary": "List records, newest first, by keyset pages",
                  "parameters": with(filters(), &[limit.clone(), cursor, order.clone()]),
                  "responses": responses([("200", json_body("A page", json!({"type": "object", "required": ["items", "next_cursor"], "additionalProperties": false, "properties": {
                      "items": {"type": "array", "maxItems": 1000, "items": rec}, "next_cursor": {"type": "string", "nullable": true}}})))].into_iter().chain(too_long()).collect::<Vec<_>>(), reads)},
          "delete": {"summary": "Clear the log (admin)",
                     "parameters": [{"name": "confirm", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}],
                     "responses": responses(&[("200", json_body("How many records were cleared", json!({"type": "object", "required": ["cleared"], "additionalProperties": false,
                         "properties": {"cleared": {"type": "integer", "minimum": 0}}})))], reads)}
        },
        "/api/v1/activity/{id}": {
          "get": {"summary": "One record",
                  "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}],
                  "responses": responses(&[("200", json_body("The record", rec.clone()))],
                      &[ANY, AUTH, &[("404", "No such record (or removed by retention or clear); also a non-numeric id"), ("422", "The id's bytes are not UTF-8")]])}
        },
        "/api/v1/activity/export": {
          "get": {"summary": "Export every matching record, streamed",
                  "parameters": with(filters(), &[order.clone(), json!({"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "json", "ndjson"], "default": "ndjson"}})]),
                  "responses": responses([("200", json!({"description": "An attachment", "content": {
                      "text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "array", "items": rec}},
                      "application/x-ndjson": {"schema": {"type": "string"}}}}))].into_iter().chain(too_long()).collect::<Vec<_>>(), reads)}
        },
        "/api/v1/activity/stream": {
          "get": {"summary": "Server-Sent Events of matching records; resumes after Last-Event-ID",
                  "parameters": with(filters(), &[
                      json!({"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}}),
                      json!({"name": "after_id", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}})]),
                  "responses": responses([("200", json!({"description": "text/event-stream; `id:` is the record id, `event: activity`, `data:` the Record as JSON; a comment every 15 s",
                      "content": {"text/event-stream": {"schema": {"type": "object", "required": ["id", "event", "data"], "properties": {
                          "id": {"type": "string", "pattern": "^[0-9]+$"}, "event": {"type": "string", "enum": ["activity"]}, "data": {"type": "string"}}}}}})),
                      ].into_iter().chain(too_long()).collect::<Vec<_>>(), reads)}
        },
        "/api/v1/events/ws": {
          "get": {"summary": "WebSocket bus: {type, data} with type in activity_logged, activity_cleared, settings_changed (admins only)",
                  "parameters": [
                      {"name": "Upgrade", "in": "header", "required": true, "schema": {"type": "string", "enum": ["websocket"]}},
                      {"name": "Connection", "in": "header", "required": true, "schema": {"type": "string", "enum": ["Upgrade"]}},
                      {"name": "Sec-WebSocket-Version", "in": "header", "required": true, "schema": {"type": "string", "enum": ["13"]}},
                      {"name": "Sec-WebSocket-Key", "in": "header", "required": true, "schema": {"type": "string"}}],
                  "responses": responses(&[("101", json!({"description": "Switching protocols"}))],
                      &[ANY, AUTH, &[("400", "Not a WebSocket upgrade request")]])}
        },
        "/api/v1/activity/facets/{field}": {
          "get": {"summary": "Top values of a field with counts under the filters",
                  "parameters": with(filters(), &[
                      json!({"name": "field", "in": "path", "required": true, "schema": {"type": "string", "enum": filter_fields()}}),
                      json!({"name": "prefix", "in": "query", "schema": param_string()}),
                      json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}})]),
                  "responses": responses([("200", json_body("Values by count", json!({"type": "object", "required": ["field", "values"], "additionalProperties": false, "properties": {
                      "field": {"type": "string", "enum": filter_fields()}, "values": {"type": "array", "maxItems": 1000, "items": {
                      "type": "object", "required": ["value", "count"], "additionalProperties": false,
                      "properties": {"value": {"type": "string"}, "count": {"type": "integer", "minimum": 1}}}}}})))].into_iter().chain(too_long()).collect::<Vec<_>>(), reads)}
        },
        "/api/v1/activity/histogram": {
          "get": {"summary": "Counts per time bucket (default window: the last 24 h)",
                  "parameters": with(filters(), &[json!({"name": "bucket", "in": "query", "schema": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "6h", "1d"], "default": "1h"}})]),
                  "responses": responses([("200", json_body("Buckets", json!({"type": "object", "required": ["bucket", "buckets"], "additionalProperties": false, "properties": {
                      "bucket": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "6h", "1d"]}, "buckets": {"type": "array", "maxItems": 10000, "items": {
                      "type": "object", "required": ["start", "count"], "additionalProperties": false,
                      "properties": {"start": {"type": "string", "format": "date-time"}, "count": {"type": "integer", "minimum": 0}}}}}})))].into_iter().chain(too_long()).collect::<Vec<_>>(), reads)}
        },
        "/api/v1/activity/settings": {
          "get": {"summary": "Settings (admin)", "responses": responses(&[("200", json_body("Settings", settings.clone()))], &[ANY, AUTH])},
          "put": {"summary": "Change settings (admin)",
                  "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Settings"}}}},
                  "responses": responses(&[("200", json_body("Settings", settings))], &[ANY, AUTH, BODY])}
        },
        "/api/v1/activity/stats": {
          "get": {"summary": "Storage statistics",
                  "responses": responses(&[("200", json_body("Stats", json!({"type": "object", "additionalProperties": false,
                      "required": ["entries", "segments", "bytes", "oldest_id", "newest_id", "oldest_ts", "newest_ts"], "properties": {
                      "entries": {"type": "integer", "minimum": 0}, "segments": {"type": "integer", "minimum": 0}, "bytes": {"type": "integer", "minimum": 0},
                      "oldest_id": {"type": "integer", "nullable": true}, "newest_id": {"type": "integer", "nullable": true},
                      "oldest_ts": {"type": "string", "format": "date-time", "nullable": true}, "newest_ts": {"type": "string", "format": "date-time", "nullable": true}}})))], &[ANY, AUTH])}
        },
        "/api/v1/keys": {
          "post": {"summary": "Create an API key (admin); the token is shown only in this response",
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["label", "role"], "additionalProperties": false, "properties": {
                       "label": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
                       "role": {"type": "string", "enum": ["admin", "writer", "reader"]}}}}}},
                   "responses": responses(&[("201", json_body("The key and its token", json!({"type": "object", "required": ["id", "label", "role", "created_at", "token"], "additionalProperties": false, "properties": {
                       "id": {"type": "string"}, "label": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "writer", "reader"]},
                       "created_at": {"type": "string", "format": "date-time"}, "token": {"type": "string", "pattern": "^actlog_"}}})))], &[ANY, AUTH, BODY])},
          "get": {"summary": "List API keys (admin); never tokens",
                  "responses": responses(&[("200", json_body("Keys", json!({"type": "object", "required": ["keys"], "additionalProperties": false,
                      "properties": {"keys": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}}}})))], &[ANY, AUTH])}
        },
        "/api/v1/keys/{id}": {
          "delete": {"summary": "Revoke an API key (admin)",
                     "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                     "responses": responses(&[("204", json!({"description": "Revoked"}))],
                         &[ANY, AUTH, &[("404", "No such key"), ("422", "The id's bytes are not UTF-8")]])}
        },
        "/api/v1/session": {
          "post": {"summary": "Web UI sign-in: sets an HttpOnly, SameSite=Strict cookie; needs the server's own Origin", "security": [],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["token"], "additionalProperties": false,
                       "properties": {"token": {"type": "string", "maxLength": 4000}}}}}},
                   "responses": responses(&[("204", json!({"description": "Signed in"}))],
                       &[ANY, BODY, &[("401", "Bad token"), ("403", "Not from the server's own origin")]])},
          "delete": {"summary": "Sign out", "security": [], "responses": responses(&[("204", json!({"description": "Signed out, cookie cleared"}))],
              &[ANY, &[("403", "A cookie-authenticated request not from the server's own origin")]])}
        },
        "/api/v1/backup": {
          "get": {"summary": "Extension: the files of a consistent online backup (admin); used by `actlog-inspect backup --url`",
                  "responses": responses(&[("200", json_body("Files", json!({"type": "object", "required": ["files"], "additionalProperties": false, "properties": {"files": {"type": "array", "items": {
                      "type": "object", "required": ["name", "len", "immutable", "ids"], "properties": {
                      "name": {"type": "string"}, "len": {"type": "integer", "minimum": 0}, "immutable": {"type": "boolean"},
                      "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2, "nullable": true},
                      "data": {"type": "string", "format": "byte"}}}}}})))], &[ANY, AUTH])}
        },
        "/api/v1/backup/files/{name}": {
          "get": {"summary": "Extension: one backup file, its first `len` bytes (admin)",
                  "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                                 {"name": "len", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}}],
                  "responses": responses(&[("200", json!({"description": "The bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}))],
                      &[ANY, AUTH, &[("404", "Not a backup file, or deleted by retention since the listing"), ("422", "`len` is not a whole number, or the name's bytes are not UTF-8")]])}
        },
        "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
            "responses": responses(&[("200", json_body("OpenAPI 3", json!({"type": "object"})))], &[ANY])}},
        "/healthz": {"get": {"summary": "Liveness: `ok`, or 503 `failing` while storage is fail-stopped", "security": [], "responses": {
            "200": json_body("OK", json!({"type": "object", "required": ["status"], "additionalProperties": false, "properties": {"status": {"type": "string", "enum": ["ok"]}}})),
            "503": json_body("Storage is failing (disk full or I/O error) until the server recovers it; or the connection cap", json!({"oneOf": [
                {"type": "object", "required": ["status", "message"], "additionalProperties": false, "properties": {"status": {"type": "string", "enum": ["failing"]}, "message": {"type": "string"}}},
                {"$ref": "#/components/schemas/Error"}]}))}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {
            "200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "503": json_body("The connection cap", json!({"$ref": "#/components/schemas/Error"}))}}},
        "/": {"get": {"summary": "The web UI", "security": [], "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            "503": json_body("The connection cap", json!({"$ref": "#/components/schemas/Error"}))}}}
      }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not documented"))[method.to_lowercase()];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "the document describes routes that do not exist"
        );
    }

    #[test]
    fn records_filters_and_facets_match_the_implementation() {
        let doc = document();
        let rec = actlog_engine::Record {
            id: 1,
            ts: 0,
            category: "auth".into(),
            action: "auth.login".into(),
            actor: "alice".into(),
            entity_type: None,
            entity_id: None,
            entity_name: None,
            message: "m".into(),
            severity: actlog_engine::Severity::Info,
            metadata: serde_json::Map::new(),
            occurred_at: None,
            recorded_by: Some("key_0a1b2c3d4e5f".into()),
        };
        let written = crate::json::record_value(&rec);
        let mut members: Vec<&String> = written.as_object().expect("object").keys().collect();
        let schema = doc["components"]["schemas"]["Record"]["properties"]
            .as_object()
            .expect("Record properties");
        let mut documented: Vec<&String> = schema.keys().collect();
        members.sort();
        documented.sort();
        assert_eq!(members, documented);
        assert_eq!(written["recorded_by"], "key_0a1b2c3d4e5f");
        for path in [
            "/api/v1/activity",
            "/api/v1/activity/export",
            "/api/v1/activity/stream",
            "/api/v1/activity/facets/{field}",
            "/api/v1/activity/histogram",
        ] {
            let params = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .expect("parameters");
            for f in Field::ALL {
                assert!(
                    params.iter().any(|p| p["name"] == f.as_str()),
                    "{path} lacks the filter {f}"
                );
            }
        }
        let facet = doc["paths"]["/api/v1/activity/facets/{field}"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "field")
            .expect("the field parameter")["schema"]["enum"]
            .clone();
        assert_eq!(
            facet,
            json!(Field::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>())
        );
        assert!(facet
            .as_array()
            .is_some_and(|a| a.contains(&json!("recorded_by"))));
        let event = &doc["components"]["schemas"]["Event"];
        assert_eq!(event["additionalProperties"], false);
        assert!(event["properties"].get("recorded_by").is_none());
    }
}
