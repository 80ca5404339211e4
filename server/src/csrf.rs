//! What a page on another origin cannot do with the user's cookie.
//!
//! `SameSite=Strict` separates sites, not origins: every port of the
//! appliance's address and every sibling subdomain is the same site. So
//! requests that a browser authenticates with the session cookie must also
//! prove they come from the web UI itself (docs/API.md, "Requests"):
//!
//! * `POST`, `PUT`, `DELETE`, `PATCH` and the WebSocket upgrade need an
//!   `Origin` equal to the server's own origin, else 403 `forbidden`. The
//!   own origin is `--public-url` when set, else the request's `Host` (with
//!   `http` or `https`: whatever answers on that host and port is this
//!   server or the proxy in front of it).
//! * their JSON bodies need `Content-Type: application/json`, else 415
//!   `unsupported_media_type` — a type a cross-origin form cannot send, and
//!   that a cross-origin `fetch` can only send after a CORS preflight, which
//!   this server never grants.
//! * `POST /api/v1/session` (sign-in, no cookie yet) needs the same
//!   `Origin`, so no page can sign a browser in with the attacker's key.
//!
//! Requests with an `Authorization` header are not subject to either rule:
//! a browser never adds that header by itself, so it cannot be forged.

use axum::http::{header, HeaderMap, Method, Uri};

use crate::error::ApiError;

/// How a request's credentials arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// None sent.
    None,
    /// `Authorization: Bearer` (not forgeable by a page).
    Bearer,
    /// The session cookie (sent by the browser on its own).
    Cookie,
}

/// The server's own origin, as `--public-url` gives it.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// `scheme://host[:port]`, lowercase, without a default port.
    public: Option<String>,
}

impl OriginPolicy {
    /// From `--public-url` (`https://log.example.org`, a path is ignored).
    pub fn new(public_url: Option<&str>) -> Result<Self, String> {
        let public = match public_url {
            None => None,
            Some(u) => Some(normalize(u).ok_or_else(|| {
                format!("`{u}` is not an http:// or https:// URL such as https://log.example.org")
            })?),
        };
        Ok(OriginPolicy { public })
    }

    /// Whether the public URL is `https://`.
    pub fn is_https(&self) -> bool {
        self.public
            .as_deref()
            .is_some_and(|p| p.starts_with("https://"))
    }

    /// Applies the rules above to one request.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        credentials: Credentials,
    ) -> Result<(), ApiError> {
        let sign_in = method == Method::POST && uri.path() == "/api/v1/session";
        let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let upgrade = is_websocket_upgrade(headers);
        let by_cookie = credentials == Credentials::Cookie;
        if sign_in && credentials != Credentials::Bearer || by_cookie && (unsafe_method || upgrade)
        {
            self.check_origin(uri, headers)?;
        }
        if by_cookie && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            check_json_type(headers)?;
        }
        Ok(())
    }

    fn check_origin(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let refuse = |why: &str| {
            Err(ApiError::forbidden_because(format!(
                "{why}: the web UI's requests must come from this server's own page"
            )))
        };
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return refuse("the request has no Origin header");
        };
        let Some(origin) = normalize(origin) else {
            return refuse("the request's Origin is not an http(s) origin");
        };
        let same = match &self.public {
            Some(public) => origin == *public,
            None => {
                // `Host` (HTTP/1) or `:authority` (HTTP/2); when a request
                // carries both, as an absolute-form HTTP/1 target does, they
                // must agree.
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
                let authority = uri.authority().map(|a| a.as_str());
                let host = match (host, authority) {
                    (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => None,
                    (Some(h), _) => Some(h.to_string()),
                    (None, a) => a.map(str::to_string),
                };
                match host {
                    Some(host) => {
                        let host = host.to_ascii_lowercase();
                        [("http://", ":80"), ("https://", ":443")]
                            .iter()
                            .any(|(scheme, port)| {
                                let bare = host.strip_suffix(port).unwrap_or(&host);
                                origin == format!("{scheme}{bare}")
                            })
                    }
                    None => false,
                }
            }
        };
        if same {
            Ok(())
        } else {
            refuse("the request's Origin is another site or port")
        }
    }
}

/// `Connection: upgrade` + `Upgrade: websocket`.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

fn check_json_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type())
    }
}

/// `scheme://host[:port]` in lowercase without a default port, from an
/// origin or URL (a path, query or userinfo makes it `None`, except a path
/// after the authority of a URL, which is dropped).
fn normalize(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = if let Some(r) = strip_prefix_ci(url, "https://") {
        ("https", r)
    } else if let Some(r) = strip_prefix_ci(url, "http://") {
        ("http", r)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn cookie_writes_need_the_own_origin_and_json() {
        let p = OriginPolicy::default();
        let own = headers(&[
            ("host", "127.0.0.1:8470"),
            ("origin", "http://127.0.0.1:8470"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        let post = Method::POST;
        let u = uri("/api/v1/activity");
        assert!(p.check(&post, &u, &own, Credentials::Cookie).is_ok());
        for origin in [
            "http://127.0.0.1:8471",
            "https://evil.example",
            "null",
            "http://127.0.0.1:8470.evil.example",
        ] {
            let mut h = own.clone();
            h.insert("origin", HeaderValue::from_str(origin).expect("v"));
            let e = p
                .check(&post, &u, &h, Credentials::Cookie)
                .expect_err("refused");
            assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"), "{origin}");
        }
        let mut no_origin = own.clone();
        no_origin.remove("origin");
        assert!(p.check(&post, &u, &no_origin, Credentials::Cookie).is_err());
        let mut text = own.clone();
        text.insert("content-type", HeaderValue::from_static("text/plain"));
        let e = p
            .check(&post, &u, &text, Credentials::Cookie)
            .expect_err("refused");
        assert_eq!((e.status.as_u16(), e.code), (415, "unsupported_media_type"));
        // Bearer requests are not subject to either rule.
        assert!(p.check(&post, &u, &text, Credentials::Bearer).is_ok());
        assert!(p.check(&post, &u, &no_origin, Credentials::Bearer).is_ok());
        // Reads by cookie need nothing.
        assert!(p
            .check(&Method::GET, &u, &no_origin, Credentials::Cookie)
            .is_ok());
    }

    #[test]
    fn websocket_upgrades_and_sign_in_need_the_own_origin() {
        let p = OriginPolicy::default();
        let ws = headers(&[
            ("host", "localhost:8470"),
            ("upgrade", "websocket"),
            ("origin", "http://evil.localhost:8470"),
        ]);
        let u = uri("/api/v1/events/ws");
        assert!(p.check(&Method::GET, &u, &ws, Credentials::Cookie).is_err());
        assert!(p.check(&Method::GET, &u, &ws, Credentials::Bearer).is_ok());
        let login = headers(&[
            ("host", "localhost:8470"),
            ("origin", "https://evil.example"),
        ]);
        let s = uri("/api/v1/session");
        assert!(p
            .check(&Method::POST, &s, &login, Credentials::None)
            .is_err());
        let login = headers(&[
            ("host", "LOCALHOST:8470"),
            ("origin", "http://localhost:8470"),
        ]);
        assert!(p
            .check(&Method::POST, &s, &login, Credentials::None)
            .is_ok());
    }

    #[test]
    fn an_absolute_target_must_agree_with_host() {
        let p = OriginPolicy::default();
        let h = headers(&[
            ("host", "127.0.0.1:8470"),
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ]);
        let u = uri("http://evil.example/api/v1/keys");
        assert!(p.check(&Method::POST, &u, &h, Credentials::Cookie).is_err());
        let mut own = h.clone();
        own.insert("origin", HeaderValue::from_static("http://127.0.0.1:8470"));
        assert!(p
            .check(&Method::POST, &u, &own, Credentials::Cookie)
            .is_err());
        let u = uri("http://127.0.0.1:8470/api/v1/keys");
        assert!(p
            .check(&Method::POST, &u, &own, Credentials::Cookie)
            .is_ok());
    }

    #[test]
    fn public_url_decides_when_set() {
        let p = OriginPolicy::new(Some("https://Log.Example.org:443/actlog/")).expect("url");
        assert!(p.is_https());
        let h = headers(&[
            ("host", "127.0.0.1:8470"),
            ("origin", "https://log.example.org"),
            ("content-type", "application/json"),
        ]);
        let u = uri("/api/v1/keys");
        assert!(p.check(&Method::POST, &u, &h, Credentials::Cookie).is_ok());
        let mut local = h.clone();
        local.insert("origin", HeaderValue::from_static("http://127.0.0.1:8470"));
        assert!(p
            .check(&Method::POST, &u, &local, Credentials::Cookie)
            .is_err());
        assert!(OriginPolicy::new(Some("ftp://x")).is_err());
        assert!(OriginPolicy::new(Some("https://user@x")).is_err());
    }
}
