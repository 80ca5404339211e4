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
    pub fn new(url: &str, token: &str) -> anyhow::Result<HttpSource> {
        let base = url.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            crate::Usage(format!("--url `{url}` must start with http:// or https://"))
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
