//! The configuration file: providers, model aliases, router, pricing and server settings.
//!
//! YAML (or the same structure as JSON, from the bindings) is read into a JSON value first,
//! `${VAR}` / `${VAR:-default}` are replaced in string values, and the value is then decoded
//! with the path of every error tracked, so a mistake is reported as
//! `providers.openai.api_bse: unknown field ...`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::ProviderType;

/// A configuration error, naming where in the file it stands.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid YAML.
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    /// A key or value is wrong; `location` is a dotted path such as `providers.openai.type`.
    #[error("config error at `{location}`: {message}")]
    Invalid {
        /// Where the error stands.
        location: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    fn invalid(location: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Provider id → settings. The id is what `provider/model` names.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model aliases with ordered targets.
    #[serde(default)]
    pub models: Vec<ModelAlias>,
    /// Routing settings.
    #[serde(default)]
    pub router: RouterConfig,
    /// Pricing settings.
    #[serde(default)]
    pub pricing: PricingConfig,
    /// Server-mode settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where the usage ledger is kept.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Spending caps per key, user or model.
    #[serde(default)]
    pub budgets: Vec<crate::accounting::BudgetConfig>,
}

/// Where the usage ledger is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `memory` (the default in process), or `sqlite://PATH`. The server uses its
    /// `server.database` when this is not set.
    pub database: Option<String>,
    /// How many records the in-memory ledger keeps (the most recent); 100,000 by default.
    pub max_records: Option<usize>,
    /// Days records (and kept bodies) are kept; older ones are deleted at start and hourly.
    /// Unset: kept forever.
    pub retention_days: Option<u32>,
}

/// A ledger store named by a `database` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStore {
    /// Kept in memory.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl LedgerConfig {
    /// The store the setting names.
    pub fn store(&self) -> Result<LedgerStore, ConfigError> {
        match self.database.as_deref() {
            None | Some("memory") => Ok(LedgerStore::Memory),
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(LedgerStore::Sqlite(PathBuf::from(path))),
                _ => Err(ConfigError::invalid(
                    "ledger.database",
                    format!("`{url}` is not supported; use `memory` or sqlite://PATH"),
                )),
            },
        }
    }
}

/// Settings of one provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// API family; defaults to the provider id when that is a built-in type name.
    #[serde(default, rename = "type")]
    pub kind: Option<ProviderType>,
    /// Secret key; `${VAR}` is the usual way to fill it.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Base URL, e.g. `http://127.0.0.1:8000/v1`; defaults to the type's public endpoint.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Extra headers sent with every request to this provider.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Total timeout of one request to this provider, overriding `router.timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Time to the first byte of this provider's answers, overriding `router.ttft_timeout_ms`.
    #[serde(default)]
    pub ttft_timeout_ms: Option<u64>,
    /// Time to open a connection to this provider, overriding `router.connect_timeout_ms`.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
}

/// A model alias: one name, several `provider/model` targets, grouped by priority and ordered
/// within a group by the alias's strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelAlias {
    /// The name clients send as `model`.
    pub name: String,
    /// The targets: `provider/model` strings or `{target, weight, priority}` objects.
    pub targets: Vec<AliasTarget>,
    /// How targets of equal priority are ordered for each request.
    #[serde(default)]
    pub strategy: Strategy,
    /// Keep requests that share a session or a long prompt prefix on the same target, so the
    /// provider's prompt cache stays warm.
    #[serde(default = "default_true")]
    pub sticky: bool,
}

fn default_true() -> bool {
    true
}

/// One target of an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a `provider/model` string or a `{target, weight, priority}` object"
)]
pub enum AliasTarget {
    /// `provider/model`, weight 1, priority by position (`fallback`) or 0 (other strategies).
    Name(String),
    /// A target with its weight and priority.
    Weighted(WeightedTarget),
}

/// A target with an explicit weight and priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    /// `provider/model`.
    pub target: String,
    /// Share of the traffic of its priority group under `weighted` (default 1).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Lower is tried first; targets of equal priority form one balanced group.
    #[serde(default)]
    pub priority: Option<i64>,
}

fn default_weight() -> f64 {
    1.0
}

impl AliasTarget {
    /// The `provider/model` string.
    pub fn target(&self) -> &str {
        match self {
            AliasTarget::Name(t) => t,
            AliasTarget::Weighted(w) => &w.target,
        }
    }

    /// The weight (1 unless given).
    pub fn weight(&self) -> f64 {
        match self {
            AliasTarget::Name(_) => 1.0,
            AliasTarget::Weighted(w) => w.weight,
        }
    }

    /// The explicit priority, if given.
    pub fn priority(&self) -> Option<i64> {
        match self {
            AliasTarget::Name(_) => None,
            AliasTarget::Weighted(w) => w.priority,
        }
    }
}

/// How an alias orders targets of equal priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In the order listed: each target is the next one's fallback.
    #[default]
    Fallback,
    /// Random order weighted by `weight`.
    Weighted,
    /// Lowest moving-average time to first byte first.
    LeastLatency,
    /// Fewest requests in flight first.
    LeastBusy,
}

/// Routing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Extra tries of a target after a retryable failure, before moving to the next target.
    pub retries: u32,
    /// Total time allowed for one attempt, in milliseconds (for a stream: also the longest
    /// wait between two events).
    pub timeout_ms: u64,
    /// Time allowed to open a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed until the first byte of the answer (a stream's first chunk), in
    /// milliseconds; defaults to `timeout_ms`.
    pub ttft_timeout_ms: Option<u64>,
    /// The longest `Retry-After` honoured, in milliseconds.
    pub retry_after_cap_ms: u64,
    /// Base of the exponential backoff between retries, in milliseconds.
    pub backoff_base_ms: u64,
    /// How long a target whose circuit opened is left out, in seconds.
    pub cooldown_s: f64,
    /// Consecutive failures of a target that open its circuit.
    pub cooldown_failures: u32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            retries: 2,
            timeout_ms: 60_000,
            connect_timeout_ms: 10_000,
            ttft_timeout_ms: None,
            retry_after_cap_ms: 30_000,
            backoff_base_ms: 500,
            cooldown_s: 30.0,
            cooldown_failures: 3,
        }
    }
}

/// Pricing settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// A fee added on top of the provider cost, in percent.
    pub platform_fee_percent: f64,
    /// Prices of your own per `provider-type/model` (LiteLLM field names, e.g.
    /// `input_cost_per_token`), overriding or adding to the embedded catalog field by field.
    pub models: BTreeMap<String, crate::catalog::ModelInfo>,
    /// A catalog file layered over the embedded one (ours or LiteLLM's
    /// `model_prices_and_context_window.json`): an explicit, opt-in refresh; never fetched.
    pub catalog_file: Option<PathBuf>,
}

/// How the server authenticates callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `ogw_` API keys from the store (the default).
    #[default]
    Keys,
    /// No authentication: anyone who can reach the port may use it.
    None,
}

/// Server-mode settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// The store: `sqlite://PATH` (created on start).
    pub database: String,
    /// `keys` (default) or `none`.
    pub auth: AuthMode,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The key of the admin API (`/admin/...`); else `OPENGATEWAY_MASTER_KEY`. Without one the
    /// admin API refuses every request.
    pub master_key: Option<String>,
    /// Keep each request's request and response bodies with its ledger record (off by
    /// default: prompts are often confidential). Bodies are never written to the log.
    pub log_bodies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".to_owned(),
            database: "sqlite://opengateway.db".to_owned(),
            auth: AuthMode::Keys,
            max_body_bytes: 16 * 1024 * 1024,
            master_key: None,
            log_bodies: false,
        }
    }
}

impl ServerConfig {
    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            ConfigError::invalid(
                "server.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8080: {e}",
                    self.listen
                ),
            )
        })
    }

    /// The SQLite file path of `database`.
    pub fn sqlite_path(&self) -> Result<PathBuf, ConfigError> {
        match self.database.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(ConfigError::invalid(
                "server.database",
                format!(
                    "`{}` is not supported; use sqlite://PATH (e.g. sqlite://opengateway.db)",
                    self.database
                ),
            )),
        }
    }
}

impl Config {
    /// Reads a YAML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parses YAML text (JSON is accepted too).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Self::from_value(Value::Object(Default::default()));
        }
        let value: Value =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        Self::from_value(value)
    }

    /// Decodes a JSON value (a dict or object from the bindings), after `${VAR}` substitution.
    pub fn from_value(mut value: Value) -> Result<Self, ConfigError> {
        if value.is_null() {
            value = Value::Object(Default::default());
        }
        substitute_env(&mut value, &mut String::new())?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let location = if path == "." {
                "(top level)".to_owned()
            } else {
                path
            };
            ConfigError::invalid(location, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        for (id, p) in &self.providers {
            if id.is_empty() || id.contains('/') {
                return Err(ConfigError::invalid(
                    format!("providers.{id}"),
                    "a provider id must be non-empty and contain no `/`",
                ));
            }
            if p.kind.is_none() && ProviderType::parse(id).is_none() {
                return Err(ConfigError::invalid(
                    format!("providers.{id}.type"),
                    format!(
                        "missing: `{id}` is not a built-in provider type, so `type` is required (one of {})",
                        ProviderType::names().join(", ")
                    ),
                ));
            }
            if let Some(base) = &p.api_base
                && !(base.starts_with("http://") || base.starts_with("https://"))
            {
                return Err(ConfigError::invalid(
                    format!("providers.{id}.api_base"),
                    format!("`{base}` is not an http:// or https:// URL"),
                ));
            }
            if p.timeout_ms == Some(0) {
                return Err(ConfigError::invalid(
                    format!("providers.{id}.timeout_ms"),
                    "must be greater than 0",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, alias) in self.models.iter().enumerate() {
            if alias.name.is_empty() {
                return Err(ConfigError::invalid(
                    format!("models[{i}].name"),
                    "is empty",
                ));
            }
            if !seen.insert(alias.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("models[{i}].name"),
                    format!("`{}` is defined twice", alias.name),
                ));
            }
            if alias.targets.is_empty() {
                return Err(ConfigError::invalid(
                    format!("models[{i}].targets"),
                    "needs at least one `provider/model` target",
                ));
            }
            for (j, target) in alias.targets.iter().enumerate() {
                let weight = target.weight();
                if !(weight.is_finite() && weight > 0.0) {
                    return Err(ConfigError::invalid(
                        format!("models[{i}].targets[{j}].weight"),
                        format!("{weight} is not a positive number"),
                    ));
                }
                let target = target.target();
                match target.split_once('/') {
                    Some((p, m)) if !p.is_empty() && !m.is_empty() => {}
                    _ => {
                        return Err(ConfigError::invalid(
                            format!("models[{i}].targets[{j}]"),
                            format!("`{target}` is not of the form provider/model"),
                        ));
                    }
                }
            }
        }
        if !(self.router.cooldown_s.is_finite() && self.router.cooldown_s >= 0.0) {
            return Err(ConfigError::invalid(
                "router.cooldown_s",
                format!("{} is not a number of seconds", self.router.cooldown_s),
            ));
        }
        if self.router.cooldown_failures == 0 {
            return Err(ConfigError::invalid(
                "router.cooldown_failures",
                "must be at least 1",
            ));
        }
        if self.router.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "router.timeout_ms",
                "must be greater than 0",
            ));
        }
        if self.router.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "router.connect_timeout_ms",
                "must be greater than 0",
            ));
        }
        let fee = self.pricing.platform_fee_percent;
        if !(0.0..=100.0).contains(&fee) {
            return Err(ConfigError::invalid(
                "pricing.platform_fee_percent",
                format!("{fee} is not between 0 and 100"),
            ));
        }
        self.server.listen_addr()?;
        self.server.sqlite_path()?;
        self.ledger.store()?;
        if self.ledger.retention_days == Some(0) {
            return Err(ConfigError::invalid(
                "ledger.retention_days",
                "must be at least 1 (leave it out to keep records forever)",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, budget) in self.budgets.iter().enumerate() {
            budget
                .validate()
                .map_err(|m| ConfigError::invalid(format!("budgets[{i}]"), m))?;
            if !names.insert(budget.display_name()) {
                return Err(ConfigError::invalid(
                    format!("budgets[{i}]"),
                    format!(
                        "a budget named `{}` is defined twice (give one a `name`)",
                        budget.display_name()
                    ),
                ));
            }
        }
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string of `value`; `$$` is a literal `$`.
/// An unset variable without a default becomes the empty string, so a provider whose key is
/// missing loads and is reported as unusable rather than failing the whole file.
fn substitute_env(value: &mut Value, path: &mut String) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand(s).map_err(|m| ConfigError::invalid(display_path(path), m))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute_env(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                substitute_env(v, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(top level)".to_owned()
    } else {
        path.to_owned()
    }
}

fn expand(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => out.push_str(&v),
                _ => out.push_str(default.unwrap_or("")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_parses() {
        let cfg = Config::from_yaml(
            r#"
providers:
  openai:    { type: openai,    api_key: "${OGW_TEST_UNSET_KEY}" }
  anthropic: { type: anthropic, api_key: "${OGW_TEST_UNSET_KEY:-fallback}" }
  local:     { type: openai, api_base: "http://127.0.0.1:8000/v1", api_key: "none" }
models:
  - name: smart
    targets: [anthropic/claude-sonnet-4-5, openai/gpt-4o]
router:   { retries: 2, timeout_ms: 60000, cooldown_s: 30 }
pricing:  { platform_fee_percent: 0 }
server:   { listen: "127.0.0.1:8080", database: "sqlite://opengateway.db", auth: none }
"#,
        )
        .unwrap();
        assert_eq!(cfg.providers["openai"].api_key.as_deref(), Some(""));
        assert_eq!(
            cfg.providers["anthropic"].api_key.as_deref(),
            Some("fallback")
        );
        assert_eq!(cfg.models[0].targets.len(), 2);
        assert_eq!(cfg.server.auth, AuthMode::None);
        assert_eq!(cfg.router.connect_timeout_ms, 10_000);
    }

    #[test]
    fn unknown_key_names_its_location() {
        let err = Config::from_yaml("providers:\n  openai:\n    api_bse: http://x\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("providers.openai"), "{msg}");
        assert!(msg.contains("api_bse"), "{msg}");
        let err = Config::from_yaml("routr: {}\n").unwrap_err().to_string();
        assert!(err.contains("routr"), "{err}");
    }

    #[test]
    fn bad_values_name_their_location() {
        let err = Config::from_yaml("router: { retries: many }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("router.retries"), "{err}");
        let err = Config::from_yaml("server: { listen: nowhere }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
        let err = Config::from_yaml("server: { auth: maybe }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.auth"), "{err}");
        let err = Config::from_yaml("providers: { mine: { api_key: x } }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.mine.type"), "{err}");
        let err = Config::from_yaml("models: [{ name: a, targets: [gpt-4o] }]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("models[0].targets[0]"), "{err}");
        let err = Config::from_yaml("providers: { openai: { type: nosuch } }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.openai.type"), "{err}");
    }

    #[test]
    fn env_expansion() {
        assert_eq!(expand("a$$b").unwrap(), "a$b");
        assert_eq!(expand("${OGW_TEST_UNSET_KEY:-d}").unwrap(), "d");
        assert_eq!(expand("x${OGW_TEST_UNSET_KEY}y").unwrap(), "xy");
        assert!(expand("${OPEN").is_err());
        assert!(expand("${A B}").is_err());
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand("${PATH}").unwrap(), path);
    }

    #[test]
    fn empty_config_is_default() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
    }
}
