//! `backup --url`: the same backup through a running server's admin-only
//! endpoints (`GET /api/v1/backup` lists the files, `GET
//! /api/v1/backup/files/{name}?len=N` streams one; docs/API.md).

use std::io::Read;

use actlog_engine::backup::BackupItem;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;

/// A server to back up.
pub struct HttpSource {
    base: String,
    token: String,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct PlanItem {
    name: String,
    len: u64,
    immutable: bool,
    ids: Option<(u64, u64)>,
    /// The file's bytes as the plan read them (base64), for the small state
    /// files whose content must be that of the plan's moment.
    #[serde(default)]
    data: Option<String>,
}

/// The most bytes a plan may carry inline for one file: the watermark and
/// the id reservation are a few dozen.
const MAX_INLINE: usize = 4096;

#[derive(Deserialize)]
struct Plan {
    files: Vec<PlanItem>,
}

impl HttpSource {
    /// A source for the server at `url` (e.g. `http://127.0.0.1:8470`).
    /// A plain `http://` URL must name a loopback host unless
    /// `insecure_http`: the admin token travels with every request.
    pub fn new(url: &str, token: &str, insecure_http: bool) -> anyhow::Result<HttpSource> {
        let base = url.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            crate::Usage(format!("--url `{url}` must start with http:// or https://"))
        );
        anyhow::ensure!(
            insecure_http || !needs_tls(&base),
            crate::Usage(format!(
                "--url `{url}` is plain http to a host other than this machine: the admin \
                 token would cross the network unencrypted. Use https://, or pass \
                 --insecure-http if the network is trusted"
            ))
        );
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(HttpSource {
            base,
            token: token.to_string(),
            agent,
        })
    }

    fn get(&self, path: &str) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()?;
        Ok(resp)
    }
}

/// Whether a plain `http://` URL points at a host other than loopback
/// (`localhost`, 127.0.0.0/8, `::1`). Looks at the text only: nothing is
/// resolved.
fn needs_tls(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

impl super::Source for HttpSource {
    fn plan(&self) -> anyhow::Result<Vec<BackupItem>> {
        let mut resp = self.get("/api/v1/backup")?;
        let status = resp.status().as_u16();
        anyhow::ensure!(
            status == 200,
            "the server answered {status} to the backup listing: {}",
            resp.body_mut().read_to_string().unwrap_or_default()
        );
        let plan: Plan = resp.body_mut().read_json()?;
        plan.files
            .into_iter()
            .map(|p| {
                let contents = match p.data {
                    None => None,
                    Some(b64) => {
                        let bytes = BASE64.decode(b64.as_bytes()).map_err(|e| {
                            anyhow::anyhow!("the server sent bad data for {}: {e}", p.name)
                        })?;
                        anyhow::ensure!(
                            bytes.len() <= MAX_INLINE && bytes.len() as u64 == p.len,
                            "the server sent {} inline bytes for {} (len {}): refusing",
                            bytes.len(),
                            p.name,
                            p.len
                        );
                        Some(bytes)
                    }
                };
                Ok(BackupItem {
                    name: p.name,
                    len: p.len,
                    immutable: p.immutable,
                    ids: p.ids,
                    contents,
                })
            })
            .collect()
    }

    fn open(&self, item: &BackupItem) -> anyhow::Result<Option<Box<dyn Read>>> {
        if let Some(bytes) = &item.contents {
            return Ok(Some(Box::new(std::io::Cursor::new(bytes.clone()))));
        }
        let resp = self.get(&format!(
            "/api/v1/backup/files/{}?len={}",
            item.name, item.len
        ))?;
        match resp.status().as_u16() {
            200 => Ok(Some(Box::new(resp.into_body().into_reader()))),
            404 => Ok(None),
            s => anyhow::bail!("the server answered {s} for {}", item.name),
        }
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::needs_tls;

    #[test]
    fn plain_http_beyond_loopback_needs_the_flag() {
        for url in [
            "http://127.0.0.1:8470",
            "http://127.8.9.10",
            "http://localhost:8470/",
            "http://[::1]:8470",
            "https://backup.example.org",
            "https://10.1.2.3:8470",
        ] {
            assert!(!needs_tls(url), "{url}");
        }
        for url in [
            "http://10.1.2.3:8470",
            "http://backup.example.org",
            "http://[2001:db8::1]:8470",
            "http://127.0.0.1.evil.example",
            "http://user@192.0.2.7",
            "http://localhost.evil.example:8470",
        ] {
            assert!(needs_tls(url), "{url}");
        }
    }
}
