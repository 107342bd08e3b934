//! API keys for gateway mode: `ogw_` secrets of which only a SHA-256 hash is kept, each with its
//! own limits (requests and tokens per minute, a budget, the models it may use).
//!
//! The keys live in the `api_keys` table of the embedded store, which the CLI and a running
//! server share: every [`KeyStore::authenticate`] reads the table (one indexed SQLite query, no
//! cache), so a key created or revoked from the CLI counts on the server's next request.
//! Lookup goes through a short index on the first 16 bits of the hash, then compares the full
//! hash of every candidate in constant time, so timing does not tell how close a guess was.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounting::BudgetPeriod;

/// What every key starts with.
pub const KEY_PREFIX: &str = "ogw_";

/// Random bytes in a key (the OS generator).
const SECRET_BYTES: usize = 32;

/// Length of a key: the prefix and the unpadded URL-safe base64 of the random bytes.
const KEY_LEN: usize = KEY_PREFIX.len() + (SECRET_BYTES * 4).div_ceil(3);

/// Characters of the secret shown after the prefix in listings.
const DISPLAY_CHARS: usize = 8;

/// What a key may do: all `None` / empty means no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyLimits {
    /// Requests per minute (a token bucket refilled continuously).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute, prompt and completion (a token bucket refilled continuously).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Spending cap in USD, platform fee included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// When the budget's spending starts again from zero (`total`: never).
    pub budget_period: BudgetPeriod,
    /// Models the key may use: `provider/model`, `provider/*`, alias names, or `*`; empty
    /// means every model.
    pub models: Vec<String>,
}

// `budget_usd` is checked finite by `validate` before a key is stored, so equality is total.
impl Eq for KeyLimits {}

impl KeyLimits {
    /// Whether any limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.budget_usd.is_none()
            && self.models.is_empty()
    }

    /// Checks the limits; the message names the field at fault.
    pub fn validate(&self) -> Result<(), KeyError> {
        let invalid = |field: &str, message: String| KeyError::Invalid {
            field: field.to_owned(),
            message,
        };
        if self.rpm == Some(0) {
            return Err(invalid("rpm", "`rpm` must be at least 1".into()));
        }
        if self.tpm == Some(0) {
            return Err(invalid("tpm", "`tpm` must be at least 1".into()));
        }
        if let Some(b) = self.budget_usd
            && (!b.is_finite() || b < 0.0)
        {
            return Err(invalid(
                "budget_usd",
                format!("`budget_usd` must be a non-negative number, not {b}"),
            ));
        }
        for (i, m) in self.models.iter().enumerate() {
            if m.trim().is_empty() {
                return Err(invalid(
                    "models",
                    format!("`models[{i}]` must not be empty"),
                ));
            }
        }
        Ok(())
    }

    /// Whether `pattern` (an entry of `models`) covers the model id `model`.
    pub fn pattern_covers(pattern: &str, model: &str) -> bool {
        pattern == "*"
            || pattern == model
            || pattern
                .strip_suffix("/*")
                .and_then(|provider| model.strip_prefix(provider))
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
    }

    /// Whether the model id (`provider/model` or an alias name) is in `models`.
    pub fn allows_id(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| Self::pattern_covers(p, model))
    }
}

/// A key as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's id, `key_` and 16 hex digits: what the ledger records and admin URLs name.
    pub id: String,
    /// A name to recognise it by.
    pub name: String,
    /// The start of the secret, for display: `ogw_` and 8 characters.
    pub prefix: String,
    /// What the key may do.
    pub limits: KeyLimits,
    /// When it was created (Unix ms).
    pub created_at_ms: i64,
    /// When it was revoked (Unix ms); a revoked key is refused but kept, so usage stays
    /// attributable.
    pub revoked_at_ms: Option<i64>,
}

impl ApiKey {
    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }
}

/// A key with its usage from the ledger, as `keys list` and `GET /admin/keys` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyReport {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Requests made with it.
    pub requests: u64,
    /// What it spent in USD, fee included.
    pub spent_usd: f64,
    /// When it was last used (Unix ms).
    pub last_used_at_ms: Option<i64>,
}

/// A key just created, with its secret: shown once, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedKey {
    /// The key as stored.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The `ogw_…` secret.
    pub secret: String,
}

/// Changes to a key; `None` leaves a field as it is. For a limit, `Some(None)` removes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyPatch {
    /// A new name.
    pub name: Option<String>,
    /// New requests per minute, or `null` for none.
    #[serde(with = "serde_with::rust::double_option")]
    pub rpm: Option<Option<u64>>,
    /// New tokens per minute, or `null` for none.
    #[serde(with = "serde_with::rust::double_option")]
    pub tpm: Option<Option<u64>>,
    /// A new budget in USD, or `null` for none.
    #[serde(with = "serde_with::rust::double_option")]
    pub budget_usd: Option<Option<f64>>,
    /// A new budget period.
    pub budget_period: Option<BudgetPeriod>,
    /// New allowed models (empty: every model).
    pub models: Option<Vec<String>>,
}

/// Why a key was refused or a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key was sent.
    #[error("no API key was provided")]
    Missing,
    /// What was sent is not an `ogw_` key.
    #[error("the API key is not an `ogw_` key")]
    Malformed,
    /// No key has this secret.
    #[error("the API key is not known")]
    Unknown,
    /// The key was revoked.
    #[error("the API key `{0}` was revoked")]
    Revoked(String),
    /// No key has this id.
    #[error("no API key has the id `{0}`")]
    NotFound(String),
    /// A field of a new key or a change is invalid.
    #[error("{message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The store cannot be read or written: callers must refuse (503), never pass.
    #[error("the key store is unavailable: {0}")]
    Store(String),
}

impl From<rusqlite::Error> for KeyError {
    fn from(e: rusqlite::Error) -> Self {
        KeyError::Store(e.to_string())
    }
}

/// The keys in the embedded SQLite store.
#[derive(Debug)]
pub struct KeyStore {
    conn: Mutex<Connection>,
}

const COLUMNS: &str =
    "id, name, prefix, rpm, tpm, budget_usd, budget_period, models, created_at_ms, revoked_at_ms";

impl KeyStore {
    /// Opens (creating and migrating if needed) the store file.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let (conn, _) = crate::store::open(path).map_err(|e| KeyError::Store(e.to_string()))?;
        Ok(KeyStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a key and returns it with its secret, the only time the secret is available.
    pub fn create(&self, name: &str, limits: KeyLimits) -> Result<CreatedKey, KeyError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(KeyError::Invalid {
                field: "name".into(),
                message: "`name` must not be empty".into(),
            });
        }
        limits.validate()?;
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| KeyError::Store(format!("the OS random generator failed: {e}")))?;
        let secret = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let mut id_bytes = [0u8; 8];
        getrandom::fill(&mut id_bytes)
            .map_err(|e| KeyError::Store(format!("the OS random generator failed: {e}")))?;
        let id = format!("key_{}", hex(&id_bytes));
        let hash = hash_secret(&secret);
        let key = ApiKey {
            id,
            name: name.to_owned(),
            prefix: secret[..KEY_PREFIX.len() + DISPLAY_CHARS].to_owned(),
            limits,
            created_at_ms: crate::accounting::now_ms(),
            revoked_at_ms: None,
        };
        let models = serde_json::to_string(&key.limits.models)
            .map_err(|e| KeyError::Store(e.to_string()))?;
        self.conn().execute(
            "INSERT INTO api_keys (id, name, prefix, secret_hash, hash_head, rpm, tpm, budget_usd,
                budget_period, models, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                key.id,
                key.name,
                key.prefix,
                hash.as_slice(),
                hash_head(&hash),
                key.limits.rpm.map(to_i64),
                key.limits.tpm.map(to_i64),
                key.limits.budget_usd,
                key.limits.budget_period.as_str(),
                models,
                key.created_at_ms,
            ],
        )?;
        Ok(CreatedKey { key, secret })
    }

    /// The key a secret belongs to. Missing, malformed, unknown and revoked keys are refused;
    /// a store that cannot be read is [`KeyError::Store`].
    pub fn authenticate(&self, secret: &str) -> Result<ApiKey, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::Missing);
        }
        if !is_well_formed(secret) {
            return Err(KeyError::Malformed);
        }
        let hash = hash_secret(secret);
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT secret_hash, {COLUMNS} FROM api_keys WHERE hash_head = ?1"
        ))?;
        let candidates = statement
            .query_map([hash_head(&hash)], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, key_from_row(row, 1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        // Every candidate is compared, whatever matched before.
        let mut found = None;
        for (stored, key) in candidates {
            if bool::from(stored.as_slice().ct_eq(hash.as_slice())) {
                found = Some(key);
            }
        }
        match found {
            Some(key) if key.is_revoked() => Err(KeyError::Revoked(key.id)),
            Some(key) => Ok(key),
            None => Err(KeyError::Unknown),
        }
    }

    /// One key by id.
    pub fn get(&self, id: &str) -> Result<ApiKey, KeyError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
                [id],
                |row| key_from_row(row, 0),
            )
            .optional()?
            .ok_or_else(|| KeyError::NotFound(id.to_owned()))
    }

    /// One key with its usage.
    pub fn report(&self, id: &str) -> Result<KeyReport, KeyError> {
        let key = self.get(id)?;
        let conn = self.conn();
        let (requests, spent, last) = usage_of(&conn, id)?;
        Ok(KeyReport {
            revoked: key.is_revoked(),
            key,
            requests,
            spent_usd: spent,
            last_used_at_ms: last,
        })
    }

    /// Every key with its usage, oldest first.
    pub fn list(&self) -> Result<Vec<KeyReport>, KeyError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at_ms, id"
        ))?;
        let keys = statement
            .query_map([], |row| key_from_row(row, 0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (requests, spent, last) = usage_of(&conn, &key.id)?;
            out.push(KeyReport {
                revoked: key.is_revoked(),
                key,
                requests,
                spent_usd: spent,
                last_used_at_ms: last,
            });
        }
        Ok(out)
    }

    /// Changes a key's name or limits (a revoked key too, so its record stays correct).
    pub fn update(&self, id: &str, patch: &KeyPatch) -> Result<ApiKey, KeyError> {
        let mut key = self.get(id)?;
        if let Some(name) = &patch.name {
            if name.trim().is_empty() {
                return Err(KeyError::Invalid {
                    field: "name".into(),
                    message: "`name` must not be empty".into(),
                });
            }
            key.name = name.trim().to_owned();
        }
        let limits = &mut key.limits;
        if let Some(rpm) = patch.rpm {
            limits.rpm = rpm;
        }
        if let Some(tpm) = patch.tpm {
            limits.tpm = tpm;
        }
        if let Some(budget) = patch.budget_usd {
            limits.budget_usd = budget;
        }
        if let Some(period) = patch.budget_period {
            limits.budget_period = period;
        }
        if let Some(models) = &patch.models {
            limits.models.clone_from(models);
        }
        limits.validate()?;
        let models =
            serde_json::to_string(&limits.models).map_err(|e| KeyError::Store(e.to_string()))?;
        self.conn().execute(
            "UPDATE api_keys SET name = ?2, rpm = ?3, tpm = ?4, budget_usd = ?5,
                budget_period = ?6, models = ?7 WHERE id = ?1",
            params![
                key.id,
                key.name,
                limits.rpm.map(to_i64),
                limits.tpm.map(to_i64),
                limits.budget_usd,
                limits.budget_period.as_str(),
                models,
            ],
        )?;
        Ok(key)
    }

    /// Revokes a key: refused from the next request on; the row stays. Revoking twice keeps
    /// the first time.
    pub fn revoke(&self, id: &str) -> Result<ApiKey, KeyError> {
        let changed = self.conn().execute(
            "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
            params![id, crate::accounting::now_ms()],
        )?;
        if changed == 0 {
            return Err(KeyError::NotFound(id.to_owned()));
        }
        self.get(id)
    }

    /// How many keys are not revoked.
    pub fn active_count(&self) -> Result<u64, KeyError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at_ms IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Whether `secret` has the shape of a key this store issues.
pub fn is_well_formed(secret: &str) -> bool {
    secret.len() == KEY_LEN
        && secret.starts_with(KEY_PREFIX)
        && secret[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The indexed lookup head of a hash: its first 16 bits.
pub fn hash_head(hash: &[u8; 32]) -> i64 {
    i64::from(u16::from_be_bytes([hash[0], hash[1]]))
}

/// A secret shown in an error: the prefix and the last 4 characters, never the whole key.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 16 {
        return "****".to_owned();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn key_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<ApiKey> {
    let count = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
    let period: String = row.get(at + 6)?;
    let models: String = row.get(at + 7)?;
    let bad = |what: &str, e: String| {
        rusqlite::Error::FromSqlConversionFailure(
            at + 7,
            rusqlite::types::Type::Text,
            format!("api_keys.{what}: {e}").into(),
        )
    };
    Ok(ApiKey {
        id: row.get(at)?,
        name: row.get(at + 1)?,
        prefix: row.get(at + 2)?,
        limits: KeyLimits {
            rpm: count(row.get(at + 3)?),
            tpm: count(row.get(at + 4)?),
            budget_usd: row.get(at + 5)?,
            budget_period: serde_json::from_value(serde_json::Value::String(period))
                .map_err(|e| bad("budget_period", e.to_string()))?,
            models: serde_json::from_str(&models).map_err(|e| bad("models", e.to_string()))?,
        },
        created_at_ms: row.get(at + 8)?,
        revoked_at_ms: row.get(at + 9)?,
    })
}

/// Requests, spending and last use of a key, from the usage ledger in the same store.
fn usage_of(conn: &Connection, id: &str) -> Result<(u64, f64, Option<i64>), KeyError> {
    let mut statement = conn.prepare_cached(
        r#"SELECT COUNT(*), COALESCE(SUM(total_cost_usd), 0), MAX(started_at_ms)
           FROM usage_records WHERE "key" = ?1"#,
    )?;
    let row = statement.query_row([id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    Ok((u64::try_from(row.0).unwrap_or(0), row.1, row.2))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store(name: &str) -> (KeyStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ogw-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (KeyStore::open(&dir.join("gw.db")).unwrap(), dir)
    }

    #[test]
    fn create_authenticate_revoke() {
        let (keys, dir) = store("life");
        let created = keys
            .create(
                "ci",
                KeyLimits {
                    rpm: Some(5),
                    models: vec!["mock/*".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(is_well_formed(&created.secret), "{}", created.secret);
        assert!(created.secret.starts_with(&created.key.prefix));
        let key = keys.authenticate(&created.secret).unwrap();
        assert_eq!(key, created.key);
        let mut forged = created.secret.clone();
        forged.pop();
        forged.push(if created.secret.ends_with('A') {
            'B'
        } else {
            'A'
        });
        assert!(matches!(keys.authenticate(&forged), Err(KeyError::Unknown)));
        assert!(matches!(
            keys.authenticate("sk-x"),
            Err(KeyError::Malformed)
        ));
        assert!(matches!(keys.authenticate(""), Err(KeyError::Missing)));
        keys.revoke(&key.id).unwrap();
        assert!(matches!(
            keys.authenticate(&created.secret),
            Err(KeyError::Revoked(_))
        ));
        let listed = keys.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn patterns() {
        let limits = KeyLimits {
            models: vec!["openai/*".into(), "smart".into(), "mock/a".into()],
            ..Default::default()
        };
        assert!(limits.allows_id("openai/gpt-4o"));
        assert!(limits.allows_id("smart"));
        assert!(limits.allows_id("mock/a"));
        assert!(!limits.allows_id("mock/b"));
        assert!(!limits.allows_id("openai/"));
        assert!(!limits.allows_id("openaix/gpt"));
        assert!(KeyLimits::default().allows_id("anything"));
    }

    #[test]
    fn patch_and_validate() {
        let (keys, dir) = store("patch");
        let created = keys.create("a", KeyLimits::default()).unwrap();
        let patch: KeyPatch =
            serde_json::from_str(r#"{"rpm": 3, "budget_usd": 1.5, "models": ["x/*"]}"#).unwrap();
        let key = keys.update(&created.key.id, &patch).unwrap();
        assert_eq!(key.limits.rpm, Some(3));
        let patch: KeyPatch = serde_json::from_str(r#"{"rpm": null}"#).unwrap();
        let key = keys.update(&created.key.id, &patch).unwrap();
        assert_eq!(key.limits.rpm, None);
        assert_eq!(key.limits.budget_usd, Some(1.5));
        let patch: KeyPatch = serde_json::from_str(r#"{"tpm": 0}"#).unwrap();
        assert!(matches!(
            keys.update(&created.key.id, &patch),
            Err(KeyError::Invalid { field, .. }) if field == "tpm"
        ));
        assert!(matches!(
            keys.update("key_nope", &KeyPatch::default()),
            Err(KeyError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn masks_never_show_the_whole_key() {
        let secret = format!("{KEY_PREFIX}{}", "a".repeat(43));
        let masked = mask(&secret);
        assert!(masked.len() < 20 && masked.contains("****"));
        assert_eq!(mask("short"), "****");
    }
}
