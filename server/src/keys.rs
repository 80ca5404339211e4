//! API keys: 256-bit random tokens with a recognisable prefix. Only the
//! SHA-256 of a token is kept (in `keys.json`, written atomically); the token
//! itself is shown once, when the key is created, and never stored or logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The keys file in a data directory.
pub const KEYS_FILE: &str = "keys.json";
/// Every token starts with this, so leaked tokens are easy to recognise.
pub const TOKEN_PREFIX: &str = "actlog_";
/// Shortest token accepted from `ACTLOG_ADMIN_TOKEN`.
pub const MIN_TOKEN_LEN: usize = 32;
/// Fewest distinct characters in `ACTLOG_ADMIN_TOKEN`.
pub const MIN_TOKEN_DISTINCT: usize = 8;

/// Checks a token chosen by a person (`ACTLOG_ADMIN_TOKEN`): at least
/// [`MIN_TOKEN_LEN`] characters (not bytes), no whitespace at either end
/// (a padded token could never be sent back: clients trim it), and none of
/// the obvious non-secrets: fewer than [`MIN_TOKEN_DISTINCT`] distinct
/// characters, one character making up over a quarter of it, a shorter
/// pattern repeated (90 % alike), or mostly runs of consecutive characters.
/// (A filter for mistakes, not an entropy measure: the generated keys are
/// 256 random bits.)
pub fn check_admin_token(t: &str) -> Result<(), String> {
    let chars = t.chars().count();
    if chars < MIN_TOKEN_LEN {
        return Err(format!(
            "ACTLOG_ADMIN_TOKEN must be at least {MIN_TOKEN_LEN} characters long (it has {chars})"
        ));
    }
    if t.trim() != t {
        return Err(
            "ACTLOG_ADMIN_TOKEN starts or ends with whitespace; remove it (clients trim tokens, so it could never be sent back)"
                .into(),
        );
    }
    let weak = |why: String| {
        Err(format!(
            "ACTLOG_ADMIN_TOKEN {why}; use a random token (for example `openssl rand -hex 32`)"
        ))
    };
    let chars: Vec<char> = t.chars().collect();
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    if counts.len() < MIN_TOKEN_DISTINCT {
        return weak(format!(
            "has only {} distinct characters (at least {MIN_TOKEN_DISTINCT})",
            counts.len()
        ));
    }
    let most = counts.values().copied().max().unwrap_or(0);
    if most * 4 > chars.len() {
        return weak("is mostly one character".into());
    }
    // A short pattern repeated ("Password1Password1…", "12345678" × 4),
    // also with a few characters off at the end.
    let repeats = |p: usize| {
        let same = (p..chars.len())
            .filter(|&i| chars[i] == chars[i - p])
            .count();
        same * 10 >= (chars.len() - p) * 9
    };
    if let Some(p) = (1..=chars.len() / 2).find(|&p| repeats(p)) {
        return weak(format!("repeats a pattern of {p} characters"));
    }
    // A run of consecutive characters ("abcdefgh…", "0123456789…").
    let steps = chars
        .windows(2)
        .filter(|w| (w[1] as i64 - w[0] as i64).abs() == 1)
        .count();
    if steps * 2 > chars.len() {
        return weak("is mostly runs of consecutive characters".into());
    }
    Ok(())
}

/// Longest key label.
pub const MAX_LABEL_LEN: usize = 64;

/// What a key may do. `admin` includes `writer` and `reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Ingest only.
    Writer,
    /// Read only.
    Reader,
}

impl Role {
    /// Whether a key with this role may act as `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "writer" => Ok(Role::Writer),
            "reader" => Ok(Role::Reader),
            _ => Err(format!("`{s}` is not a role; use admin, writer or reader")),
        }
    }
}

/// A stored key (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Stable id, `key_<hex>`.
    pub id: String,
    /// Human label; also the actor of what the key records.
    pub label: String,
    /// Role.
    pub role: Role,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Hex SHA-256 of the token.
    hash: String,
}

#[derive(Serialize, Deserialize)]
struct KeysFile {
    version: u32,
    keys: Vec<KeyInfo>,
}

/// The key store: the file plus the keys in memory. Keys are shared, not
/// copied, with the requests they authenticate.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    keys: RwLock<Vec<Arc<KeyInfo>>>,
}

/// What happened to a key, as recorded in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEvent {
    /// `auth.key_created`
    Created,
    /// `auth.key_revoked`
    Revoked,
}

/// The record of a key being created or revoked (`how` is appended to the
/// message, e.g. " (offline)"). The key's label and id, never its token.
/// Recorded by the server (also offline, by `actlog keys`).
pub fn key_record(event: KeyEvent, key: &KeyInfo, how: &str) -> actlog_engine::NewRecord {
    let (action, message) = match event {
        KeyEvent::Created => (
            "auth.key_created",
            format!(
                "Created API key '{}' with role {}{how}",
                key.label,
                key.role.as_str()
            ),
        ),
        KeyEvent::Revoked => (
            "auth.key_revoked",
            format!("Revoked API key '{}'{how}", key.label),
        ),
    };
    let mut r = actlog_engine::NewRecord::new("auth", action, message);
    r.entity_type = Some("api_key".into());
    r.entity_id = Some(key.id.clone());
    r.entity_name = Some(key.label.clone());
    r.recorded_by = Some(crate::recorder::RECORDED_BY_SERVER.into());
    r
}

/// Hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lowercase hex of `bytes`, in one allocation (every authenticated request
/// hashes its token: formatting byte by byte was 5 % of the server's CPU under
/// single-event ingest).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A new random token: the prefix and 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn new_id() -> String {
    let mut bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("key_{}", hex(&bytes))
}

/// Checks a label: 1–64 bytes, no control characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(format!("`label` must be 1 to {MAX_LABEL_LEN} bytes long"));
    }
    if label.chars().any(char::is_control) {
        return Err("`label` must not contain control characters".into());
    }
    Ok(())
}

impl KeyStore {
    /// Loads `keys.json` from `dir` (an absent file is an empty store).
    pub fn open(dir: &Path) -> anyhow::Result<KeyStore> {
        let path = dir.join(KEYS_FILE);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: KeysFile = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!("{} is not a valid keys file: {e}", path.display())
                })?;
                file.keys.into_iter().map(Arc::new).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(KeyStore {
            path,
            keys: RwLock::new(keys),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<KeyInfo>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether no key exists.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.read().iter().map(|k| KeyInfo::clone(k)).collect()
    }

    /// The key a token belongs to.
    pub fn verify(&self, token: &str) -> Option<Arc<KeyInfo>> {
        let hash = hash_token(token);
        self.read().iter().find(|k| k.hash == hash).cloned()
    }

    /// The key with `id`.
    pub fn get(&self, id: &str) -> Option<Arc<KeyInfo>> {
        self.read().iter().find(|k| k.id == id).cloned()
    }

    /// Creates a key with a fresh token; returns it and the token (to show once).
    pub fn create(&self, label: &str, role: Role, now: &str) -> anyhow::Result<(KeyInfo, String)> {
        let token = new_token();
        let key = self.create_with_token(label, role, &token, now)?;
        Ok((key, token))
    }

    /// Creates a key for a given token (the bootstrap admin token).
    pub fn create_with_token(
        &self,
        label: &str,
        role: Role,
        token: &str,
        now: &str,
    ) -> anyhow::Result<KeyInfo> {
        check_label(label).map_err(anyhow::Error::msg)?;
        let key = KeyInfo {
            id: new_id(),
            label: label.to_string(),
            role,
            created_at: now.to_string(),
            hash: hash_token(token),
        };
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut next = keys.clone();
        next.push(Arc::new(key.clone()));
        self.persist(&next)?;
        *keys = next;
        Ok(key)
    }

    /// Revokes a key; its token stops working at once.
    pub fn revoke(&self, id: &str) -> anyhow::Result<Option<KeyInfo>> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let Some(pos) = keys.iter().position(|k| k.id == id) else {
            return Ok(None);
        };
        let mut next = keys.clone();
        let gone = next.remove(pos);
        self.persist(&next)?;
        *keys = next;
        Ok(Some(KeyInfo::clone(&gone)))
    }

    fn persist(&self, keys: &[Arc<KeyInfo>]) -> anyhow::Result<()> {
        let file = KeysFile {
            version: 1,
            keys: keys.iter().map(|k| KeyInfo::clone(k)).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file)?;
        actlog_engine::write_atomic(&self.path, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_that_are_not_secrets_are_refused() {
        for weak in [
            "short",
            "😀😀😀😀😀😀😀😀",
            " 0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef\n",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abcdefgabcdefgabcdefgabcdefgabcdefg",
            "12345678123456781234567812345678",
            "Password1Password1Password1Passw",
            "aaaaaaaaaaaaaaaaaaaaaaaaabcdefgh",
            "Password1Password1Password1Password12",
            "abcdefghijklmnopqrstuvwxyz123456",
            "0123456789abcdefghijklmnopqrstuv",
        ] {
            assert!(check_admin_token(weak).is_err(), "{weak:?} was accepted");
        }
        for good in [
            "3f9c1e7a0b4d8265c1e9a7f30d2b6c48",
            "test-admin-token-Vq7Lx2Rk9Tz4Wm8Pc3Hn6Yd1",
            "correct horse battery staple, mostly random",
        ] {
            assert_eq!(check_admin_token(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn token_hashes_are_lowercase_hex_sha256() {
        // FIPS 180-2's "abc" vector: keys.json files written by any version
        // must keep verifying.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn tokens_verify_only_by_hash_and_revoke_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path()).expect("open");
        let (key, token) = store
            .create("ci", Role::Writer, "2026-01-01T00:00:00Z")
            .expect("create");
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(
            store.verify(&token).map(|k| k.id.clone()),
            Some(key.id.clone())
        );
        let on_disk = std::fs::read_to_string(dir.path().join(KEYS_FILE)).expect("read");
        assert!(!on_disk.contains(&token), "the token is never stored");
        let reopened = KeyStore::open(dir.path()).expect("reopen");
        assert!(reopened.verify(&token).is_some());
        reopened.revoke(&key.id).expect("revoke");
        assert!(reopened.verify(&token).is_none());
        assert!(KeyStore::open(dir.path())
            .expect("reopen")
            .verify(&token)
            .is_none());
    }
}
