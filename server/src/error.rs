//! The API's error body, `{"error": {"code", "message", "field"?, "index"?}}`,
//! and the mapping from engine errors to HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
    /// The offending field or parameter.
    pub field: Option<String>,
    /// The offending element of a batch.
    pub index: Option<usize>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            index: None,
        }
    }

    /// 400 `invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 400 `bad_request`: a request this endpoint cannot take at all.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: send `Authorization: Bearer <token>` or sign in",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(needed: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the `{needed}` role"),
        )
    }

    /// 403 `forbidden` with its own reason.
    pub fn forbidden_because(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        )
    }

    /// 408 `request_timeout`: the body did not arrive in time.
    pub fn request_timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body did not arrive within {secs} s"),
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("this request's body is limited to {limit} bytes (send a batch of events in smaller parts)"),
        )
    }

    /// 422 `invalid_field` naming a field (or query parameter).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
        e.field = Some(field.into());
        e
    }

    /// The same error, about batch element `index`.
    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// 409 `recording_disabled`.
    pub fn recording_disabled() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "recording_disabled",
            "recording is turned off; an admin can turn it on in the settings",
        )
    }

    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<actlog_engine::Error> for ApiError {
    fn from(e: actlog_engine::Error) -> Self {
        use actlog_engine::Error as E;
        match e {
            E::Invalid { index, source } => {
                ApiError::invalid(source.field, source.to_string()).at(index)
            }
            E::InvalidQuery { param, reason } => {
                ApiError::invalid(param, format!("`{param}` {reason}"))
            }
            E::Io { .. } | E::PreviousIo => {
                tracing::error!(error = %e, "storage failure");
                ApiError::unavailable(
                    "storage is failing (disk full or I/O error), so nothing was acknowledged. \
                     Free space or fix the disk, then retry: the server recovers by itself",
                )
            }
            other => {
                tracing::error!(error = %other, "engine error");
                ApiError::internal(format!("{other}"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            err["field"] = json!(f);
        }
        if let Some(i) = self.index {
            err["index"] = json!(i);
        }
        (self.status, axum::Json(json!({ "error": err }))).into_response()
    }
}

/// A JSON parse error as the API answers it: malformed JSON (a syntax
/// error, a truncated body, invalid UTF-8, nesting past the parser's limit)
/// is 400 `invalid_json`; well-formed JSON of the wrong shape is 422, naming
/// `field` (or the unknown field serde names).
pub fn json_error_as(e: serde_json::Error, field: &str, hint: &str) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid_json(format!("the body is not valid JSON: {e}"))
        }
        Category::Data => {
            let msg = e.to_string();
            let named = msg
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
                .filter(|n| !n.is_empty() && n.len() <= 64);
            match named {
                Some(name) => ApiError::invalid(name, format!("unknown field `{name}`; {hint}")),
                None => ApiError::invalid(field, format!("{msg}; {hint}")),
            }
        }
    }
}

/// Parses a small JSON body into `T`: malformed JSON anywhere in it is 400
/// `invalid_json` (checked over the whole body first, so a truncated body is
/// never reported as a missing field), then a body of the wrong shape is
/// 422 as [`json_error_as`] says.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    field: &str,
    hint: &str,
) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::invalid_json(format!(
            "the body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    serde_json::from_str(text).map_err(|e| json_error_as(e, field, hint))
}
