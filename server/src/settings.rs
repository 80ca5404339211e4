//! Settings: recording on/off and retention, persisted atomically in
//! `settings.json` and re-applied on start.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use actlog_engine::Retention;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// The settings file in a data directory.
pub const SETTINGS_FILE: &str = "settings.json";

/// Retention bounds as the API shows them (null = no bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSettings {
    /// 1..=36500 or null.
    pub max_days: Option<u32>,
    /// ≥ 1 or null.
    pub max_entries: Option<u64>,
}

/// The server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Whether events are recorded.
    pub enabled: bool,
    /// Retention bounds.
    pub retention: RetentionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            retention: RetentionSettings::default(),
        }
    }
}

impl Settings {
    /// The engine's view of the retention bounds.
    pub fn engine_retention(&self) -> Retention {
        Retention {
            max_days: self.retention.max_days,
            max_entries: self.retention.max_entries,
        }
    }

    /// Parses and validates a PUT body: `{"enabled": bool, "retention": {"max_days", "max_entries"}}`.
    pub fn from_json(body: &[u8]) -> Result<Settings, ApiError> {
        let v: Value = crate::error::parse_json(body, "body", "settings are a JSON object")?;
        let Value::Object(obj) = v else {
            return Err(ApiError::invalid("body", "settings must be a JSON object"));
        };
        if let Some(k) = obj.keys().find(|k| *k != "enabled" && *k != "retention") {
            return Err(ApiError::invalid(
                k.clone(),
                format!("unknown field `{k}`; settings take enabled, retention"),
            ));
        }
        let enabled = match obj.get("enabled") {
            Some(Value::Bool(b)) => *b,
            _ => {
                return Err(ApiError::invalid(
                    "enabled",
                    "`enabled` must be true or false",
                ))
            }
        };
        let retention = match obj.get("retention") {
            None | Some(Value::Null) => RetentionSettings::default(),
            Some(Value::Object(r)) => {
                if let Some(k) = r.keys().find(|k| *k != "max_days" && *k != "max_entries") {
                    return Err(ApiError::invalid(
                        k.clone(),
                        format!("unknown field `{k}`; retention takes max_days, max_entries"),
                    ));
                }
                let max_days = match r.get("max_days") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().filter(|d| (1..=36_500).contains(d)).ok_or_else(
                        || {
                            ApiError::invalid(
                                "max_days",
                                "`max_days` must be an integer from 1 to 36500, or null",
                            )
                        },
                    )? as u32),
                };
                let max_entries = match r.get("max_entries") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                        ApiError::invalid(
                            "max_entries",
                            "`max_entries` must be an integer of at least 1, or null",
                        )
                    })?),
                };
                RetentionSettings {
                    max_days,
                    max_entries,
                }
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "retention",
                    "`retention` must be an object",
                ))
            }
        };
        Ok(Settings { enabled, retention })
    }
}

/// Settings plus their file.
#[derive(Debug)]
pub struct SettingsStore {
    path: PathBuf,
    current: RwLock<Settings>,
}

impl SettingsStore {
    /// Loads `settings.json` (defaults when absent).
    pub fn open(dir: &Path) -> anyhow::Result<SettingsStore> {
        let path = dir.join(SETTINGS_FILE);
        let current = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a valid settings file ({e}); fix or delete it to use defaults",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(SettingsStore {
            path,
            current: RwLock::new(current),
        })
    }

    /// The settings in force.
    pub fn get(&self) -> Settings {
        *self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Persists (temp, fsync, rename, dir fsync) and then applies.
    pub fn set(&self, s: Settings) -> anyhow::Result<()> {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        actlog_engine::write_atomic(&self.path, &serde_json::to_vec_pretty(&s)?)?;
        *cur = s;
        Ok(())
    }
}
