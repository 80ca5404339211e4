//! The OpenAPI 3 document of the API, written by hand next to the routes it
//! describes; `tests` check that every route of `routes::ROUTES` is in it.

use actlog_engine::Field;
use serde_json::{json, Value};

/// The exact-match filters: every field the engine indexes (`params.rs`
/// takes each of them by its wire name).
fn filters() -> Vec<Value> {
    let mut v: Vec<Value> = Field::ALL
        .iter()
        .map(|f| {
            let description = match f {
                Field::RecordedBy => "Exact match on `recorded_by`: an API key id (`key_…`) or \
                                      `server`; repeat for OR. Records stored before the field \
                                      existed have none and match no value."
                    .to_string(),
                _ => format!("Exact match on `{f}`; repeat for OR."),
            };
            json!({"name": f.as_str(), "in": "query", "required": false, "explode": true,
                   "description": description,
                   "schema": {"type": "array", "items": {"type": "string"}}})
        })
        .collect();
    v.push(json!({"name": "q", "in": "query", "description": "Words (AND); a trailing * matches a prefix.", "schema": {"type": "string"}}));
    v.push(json!({"name": "since", "in": "query", "description": "Inclusive, RFC 3339.", "schema": {"type": "string", "format": "date-time"}}));
    v.push(json!({"name": "until", "in": "query", "description": "Exclusive, RFC 3339.", "schema": {"type": "string", "format": "date-time"}}));
    v
}

fn with(mut base: Vec<Value>, extra: &[Value]) -> Vec<Value> {
    base.extend_from_slice(extra);
    base
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn err(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn errors(codes: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    codes.iter().map(|(c, d)| (c.to_string(), err(d))).collect()
}

fn responses(success: (&str, Value), codes: &[(&str, &str)]) -> Value {
    let mut m = errors(codes);
    m.insert(success.0.to_string(), success.1);
    Value::Object(m)
}

const AUTH: &[(&str, &str)] = &[
    ("401", "Missing or unknown credentials"),
    ("403", "The key lacks the role"),
];

/// The document.
pub fn document() -> Value {
    let limit = json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}});
    let cursor = json!({"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"});
    let order = json!({"name": "order", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"], "default": "desc"}});
    let rec = json!({"$ref": "#/components/schemas/Record"});
    let auth_422 = [AUTH, &[("422", "A parameter has a bad value")]].concat();
    let facet_fields: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    json!({
      "openapi": "3.0.3",
      "info": {"title": "actlog", "version": env!("CARGO_PKG_VERSION"),
               "description": "Self-hosted activity / audit log. See docs/API.md."},
      "components": {
        "securitySchemes": {
          "bearer": {"type": "http", "scheme": "bearer"},
          "session": {"type": "apiKey", "in": "cookie", "name": "actlog_session"}
        },
        "schemas": {
          "Error": {"type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
              "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}, "index": {"type": "integer"}}}}},
          "Record": {"type": "object", "properties": {
              "id": {"type": "integer"}, "ts": {"type": "string", "format": "date-time"},
              "category": {"type": "string"}, "action": {"type": "string"}, "actor": {"type": "string"},
              "entity_type": {"type": "string", "nullable": true}, "entity_id": {"type": "string", "nullable": true},
              "entity_name": {"type": "string", "nullable": true}, "message": {"type": "string"},
              "severity": {"type": "string", "enum": ["info", "warning", "error"]},
              "metadata": {"type": "object"}, "occurred_at": {"type": "string", "format": "date-time", "nullable": true},
              "recorded_by": {"type": "string", "nullable": true,
                  "description": "Set by the server, never by the client: the id of the API key that sent the record (`key_…`), or `server` for what the server records about itself. Null only for records stored before the field existed."}}},
          "Event": {"type": "object", "required": ["category", "action", "message"], "additionalProperties": false, "properties": {
              "category": {"type": "string"}, "action": {"type": "string"}, "message": {"type": "string", "maxLength": 1024},
              "actor": {"type": "string", "nullable": true}, "entity_type": {"type": "string", "nullable": true},
              "entity_id": {"type": "string", "nullable": true}, "entity_name": {"type": "string", "nullable": true},
              "severity": {"type": "string", "enum": ["info", "warning", "error"], "nullable": true},
              "metadata": {"type": "object", "nullable": true}, "occurred_at": {"type": "string", "format": "date-time", "nullable": true}}},
          "Settings": {"type": "object", "required": ["enabled"], "properties": {
              "enabled": {"type": "boolean"},
              "retention": {"type": "object", "properties": {
                  "max_days": {"type": "integer", "minimum": 1, "maximum": 36500, "nullable": true},
                  "max_entries": {"type": "integer", "minimum": 1, "nullable": true}}}}}
        }
      },
      "security": [{"bearer": []}, {"session": []}],
      "paths": {
        "/api/v1/activity": {
          "post": {"summary": "Record one event or a batch of 1–1000 (all or nothing, 201 once durable)",
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
                       {"$ref": "#/components/schemas/Event"},
                       {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/Event"}}]}}}},
                   "description": "Each record's `recorded_by` is the id of the key that sent it; an event naming `recorded_by` (or any other unknown field) is a 422 naming that field.",
                   "responses": responses(("201", ok("Ids, once fsynced", json!({"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}}}}))),
                       &[AUTH, &[("400", "Malformed JSON"), ("409", "Recording is off"), ("413", "Body too large"), ("422", "A field is invalid"), ("503", "Storage failure")]].concat())},
          "get": {"summary": "List records, newest first, by keyset pages",
                  "parameters": with(filters(), &[limit.clone(), cursor.clone(), order.clone()]),
                  "responses": responses(("200", ok("A page", json!({"type": "object", "properties": {
                      "items": {"type": "array", "items": rec}, "next_cursor": {"type": "string", "nullable": true}}}))), &auth_422)},
          "delete": {"summary": "Clear the log (admin)",
                     "parameters": [{"name": "confirm", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}],
                     "responses": responses(("200", ok("How many records were cleared", json!({"type": "object", "properties": {"cleared": {"type": "integer"}}}))), &auth_422)}
        },
        "/api/v1/activity/{id}": {
          "get": {"summary": "One record",
                  "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                  "responses": responses(("200", ok("The record", rec.clone())), &[AUTH, &[("404", "No such record (or removed by retention or clear)")]].concat())}
        },
        "/api/v1/activity/export": {
          "get": {"summary": "Export every matching record, streamed",
                  "parameters": with(filters(), &[order.clone(), json!({"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "json", "ndjson"], "default": "ndjson"}})]),
                  "responses": responses(("200", json!({"description": "An attachment", "content": {
                      "text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "array", "items": rec}},
                      "application/x-ndjson": {"schema": {"type": "string"}}}})), &auth_422)}
        },
        "/api/v1/activity/stream": {
          "get": {"summary": "Server-Sent Events of matching records; resumes after Last-Event-ID",
                  "parameters": with(filters(), &[
                      json!({"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}}),
                      json!({"name": "after_id", "in": "query", "schema": {"type": "integer"}})]),
                  "responses": responses(("200", json!({"description": "text/event-stream; `id:` is the record id, `event: activity`", "content": {"text/event-stream": {"schema": {"type": "string"}}}})), &auth_422)}
        },
        "/api/v1/events/ws": {
          "get": {"summary": "WebSocket bus: {type, data} with type in activity_logged, activity_cleared, settings_changed",
                  "responses": responses(("101", json!({"description": "Switching protocols"})), AUTH)}
        },
        "/api/v1/activity/facets/{field}": {
          "get": {"summary": "Top values of a field with counts under the filters",
                  "parameters": with(filters(), &[
                      json!({"name": "field", "in": "path", "required": true, "schema": {"type": "string", "enum": facet_fields}}),
                      json!({"name": "prefix", "in": "query", "schema": {"type": "string"}}),
                      json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}})]),
                  "responses": responses(("200", ok("Values by count", json!({"type": "object", "properties": {"field": {"type": "string"}, "values": {"type": "array", "items": {
                      "type": "object", "properties": {"value": {"type": "string"}, "count": {"type": "integer"}}}}}}))), &auth_422)}
        },
        "/api/v1/activity/histogram": {
          "get": {"summary": "Counts per time bucket (default window: the last 24 h)",
                  "parameters": with(filters(), &[json!({"name": "bucket", "in": "query", "schema": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "6h", "1d"], "default": "1h"}})]),
                  "responses": responses(("200", ok("Buckets", json!({"type": "object", "properties": {"bucket": {"type": "string"}, "buckets": {"type": "array", "items": {
                      "type": "object", "properties": {"start": {"type": "string", "format": "date-time"}, "count": {"type": "integer"}}}}}}))), &auth_422)}
        },
        "/api/v1/activity/settings": {
          "get": {"summary": "Settings (admin)", "responses": responses(("200", ok("Settings", json!({"$ref": "#/components/schemas/Settings"}))), AUTH)},
          "put": {"summary": "Change settings (admin)",
                  "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Settings"}}}},
                  "responses": responses(("200", ok("Settings", json!({"$ref": "#/components/schemas/Settings"}))), &auth_422)}
        },
        "/api/v1/activity/stats": {
          "get": {"summary": "Storage statistics",
                  "responses": responses(("200", ok("Stats", json!({"type": "object", "properties": {
                      "entries": {"type": "integer"}, "segments": {"type": "integer"}, "bytes": {"type": "integer"},
                      "oldest_id": {"type": "integer", "nullable": true}, "newest_id": {"type": "integer", "nullable": true},
                      "oldest_ts": {"type": "string", "nullable": true}, "newest_ts": {"type": "string", "nullable": true}}}))), AUTH)}
        },
        "/api/v1/keys": {
          "post": {"summary": "Create an API key (admin); the token is shown only in this response",
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["label", "role"], "properties": {
                       "label": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "writer", "reader"]}}}}}},
                   "responses": responses(("201", ok("The key and its token", json!({"type": "object", "properties": {
                       "id": {"type": "string"}, "label": {"type": "string"}, "role": {"type": "string"}, "created_at": {"type": "string"}, "token": {"type": "string"}}}))), &auth_422)},
          "get": {"summary": "List API keys (admin); never tokens",
                  "responses": responses(("200", ok("Keys", json!({"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "object"}}}}))), AUTH)}
        },
        "/api/v1/keys/{id}": {
          "delete": {"summary": "Revoke an API key (admin)",
                     "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                     "responses": responses(("204", json!({"description": "Revoked"})), &[AUTH, &[("404", "No such key")]].concat())}
        },
        "/api/v1/session": {
          "post": {"summary": "Web UI sign-in: sets an HttpOnly, SameSite=Strict cookie", "security": [],
                   "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
                   "responses": responses(("204", json!({"description": "Signed in"})), &[("401", "Bad token")])},
          "delete": {"summary": "Sign out", "security": [], "responses": {"204": {"description": "Signed out, cookie cleared"}}}
        },
        "/api/v1/backup": {
          "get": {"summary": "Extension: the files of a consistent online backup (admin); used by `actlog-inspect backup --url`",
                  "responses": responses(("200", ok("Files", json!({"type": "object", "properties": {"files": {"type": "array", "items": {"type": "object", "properties": {
                      "name": {"type": "string"}, "len": {"type": "integer"}, "immutable": {"type": "boolean"},
                      "ids": {"type": "array", "items": {"type": "integer"}, "nullable": true}}}}}}))), AUTH)}
        },
        "/api/v1/backup/files/{name}": {
          "get": {"summary": "Extension: one backup file, its first `len` bytes (admin)",
                  "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                                 {"name": "len", "in": "query", "schema": {"type": "integer"}}],
                  "responses": responses(("200", json!({"description": "The bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})),
                      &[AUTH, &[("404", "Not a backup file, or deleted by retention since the listing")]].concat())}
        },
        "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3"}}}},
        "/healthz": {"get": {"summary": "Liveness: `ok`, or 503 `failing` while storage is fail-stopped", "security": [], "responses": {
            "200": ok("OK", json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}})),
            "503": ok("Storage is failing (disk full or I/O error) until the server recovers it", json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["failing"]}, "message": {"type": "string"}}}))}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/": {"get": {"summary": "The web UI", "security": [], "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}
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

    /// The Record schema names exactly the members a record is written
    /// with; every field the API filters on is a filter parameter of every
    /// filtering route and a facet field; events cannot carry `recorded_by`.
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
