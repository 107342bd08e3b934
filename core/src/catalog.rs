//! The model catalog: context window, prices and capabilities per `provider/model`.
//!
//! The catalog ships inside the crate as `core/data/models.json` and is parsed once, on
//! first use ([`Catalog::embedded`]). Nothing is read or parsed at start-up beyond that.
//!
//! # File format
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "models": {
//!     "openai/gpt-4o": {
//!       "litellm_provider": "openai", "mode": "chat",
//!       "max_input_tokens": 128000, "max_output_tokens": 16384,
//!       "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
//!       "cache_read_input_token_cost": 1.25e-06,
//!       "supports_function_calling": true,
//!       "source": "https://…", "checked": "2026-11-21"
//!     }
//!   },
//!   "aliases": { "anthropic/claude-sonnet-4-0": "anthropic/claude-sonnet-4" }
//! }
//! ```
//!
//! Field names are those of LiteLLM's `model_prices_and_context_window.json` (prices in USD
//! per token), so [`Catalog::from_json`] and [`Catalog::from_file`] also read LiteLLM's own
//! file, which is a flat map of model id to entry: its `sample_spec` entry is skipped, unknown
//! fields are ignored, the provenance fields (`source`, `checked`, `notes`) are optional, and
//! an entry that cannot be read is skipped with a warning rather than failing the whole file.
//! Our own format is strict: a bad entry or an alias to a missing model is an error.
//!
//! # Lookup rules
//!
//! [`Catalog::lookup`]`(provider_type, model)` tries, in order, and at each step follows
//! `aliases`:
//!
//! 1. `provider_type/model` exactly (`openai/gpt-4o-2024-05-13` has an entry of its own);
//! 2. `provider_type/base`, where `base` is `model` without its snapshot suffix
//!    (see [`strip_snapshot_suffix`]);
//! 3. `model` bare (how LiteLLM keys OpenAI and Anthropic models);
//! 4. `base` bare.
//!
//! A leading `models/` (as Gemini names its models) is ignored. An exact entry always wins
//! over a stripped one, so a snapshot priced differently from its family can be listed.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `schema_version` this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// The catalog shipped with the crate.
const EMBEDDED_JSON: &str = include_str!("../data/models.json");

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read model catalog {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a JSON object.
    #[error("model catalog is not a valid JSON object: {0}")]
    Json(String),
    /// The file declares a `schema_version` this build does not read.
    #[error(
        "model catalog schema_version {found} is not supported (this build reads {SCHEMA_VERSION})"
    )]
    UnsupportedSchema {
        /// The version found in the file.
        found: Value,
    },
    /// One entry (or alias) is wrong; `id` names it.
    #[error("model catalog entry `{id}`: {message}")]
    Invalid {
        /// The model id or alias.
        id: String,
        /// What is wrong.
        message: String,
    },
}

impl CatalogError {
    fn invalid(id: impl Into<String>, message: impl Into<String>) -> Self {
        CatalogError::Invalid {
            id: id.into(),
            message: message.into(),
        }
    }
}

/// What kind of endpoint a model serves (LiteLLM's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Chat Completions (or Messages / generateContent).
    Chat,
    /// Embeddings.
    Embedding,
    /// Legacy text completions.
    Completion,
    /// Responses API only.
    Responses,
    /// Any other LiteLLM mode (image generation, audio, rerank, …).
    #[serde(other)]
    Other,
}

/// One model's limits, prices (USD per token) and capabilities; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The provider as LiteLLM names it (`openai`, `anthropic`, `gemini`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub litellm_provider: Option<String>,
    /// The kind of endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Most input (prompt) tokens a request may carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    /// Most tokens the model may generate in one response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// LiteLLM's legacy limit (output if known, else input); read for compatibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Price of an uncached input token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token: Option<f64>,
    /// Price of an output token (reasoning included unless priced separately).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token: Option<f64>,
    /// Price of an input token read from the prompt cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_cost: Option<f64>,
    /// Price of an input token written to the cache (Anthropic: 5-minute write; OpenAI: cache write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost: Option<f64>,
    /// Price of an input token written to Anthropic's 1-hour cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost_above_1hr: Option<f64>,
    /// Price of an audio input token, where it differs from text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_cost_per_audio_token: Option<f64>,
    /// Price of a reasoning token, only where it differs from `output_cost_per_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cost_per_reasoning_token: Option<f64>,
    /// Input price when the prompt exceeds 200K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token_above_200k_tokens: Option<f64>,
    /// Output price when the prompt exceeds 200K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token_above_200k_tokens: Option<f64>,
    /// Cache-read price when the prompt exceeds 200K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_cost_above_200k_tokens: Option<f64>,
    /// Cache-write price when the prompt exceeds 200K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost_above_200k_tokens: Option<f64>,
    /// 1-hour cache-write price when the prompt exceeds 200K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost_above_1hr_above_200k_tokens: Option<f64>,
    /// Input price when the prompt exceeds 272K tokens (OpenAI long context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token_above_272k_tokens: Option<f64>,
    /// Output price when the prompt exceeds 272K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token_above_272k_tokens: Option<f64>,
    /// Cache-read price when the prompt exceeds 272K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_cost_above_272k_tokens: Option<f64>,
    /// Cache-write price when the prompt exceeds 272K tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost_above_272k_tokens: Option<f64>,
    /// Whether the model takes tool definitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_function_calling: Option<bool>,
    /// Whether the model takes images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_vision: Option<bool>,
    /// Whether the model takes a JSON schema for its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_response_schema: Option<bool>,
    /// Whether the model reasons (thinking) before answering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_reasoning: Option<bool>,
    /// Whether the provider caches prompt prefixes for this model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_prompt_caching: Option<bool>,
    /// The date (YYYY-MM-DD) the provider deprecates or retires the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecation_date: Option<String>,
    /// Where the values were verified (provider pricing page or model page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The date (YYYY-MM-DD) the values were last checked against `source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
    /// Cross-checks, disagreements between sources and values that could not be verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Passes the name of every price field of [`ModelInfo`] to the macro `$apply`.
macro_rules! price_fields {
    ($apply:ident) => {
        $apply!(
            input_cost_per_token,
            output_cost_per_token,
            cache_read_input_token_cost,
            cache_creation_input_token_cost,
            cache_creation_input_token_cost_above_1hr,
            input_cost_per_audio_token,
            output_cost_per_reasoning_token,
            input_cost_per_token_above_200k_tokens,
            output_cost_per_token_above_200k_tokens,
            cache_read_input_token_cost_above_200k_tokens,
            cache_creation_input_token_cost_above_200k_tokens,
            cache_creation_input_token_cost_above_1hr_above_200k_tokens,
            input_cost_per_token_above_272k_tokens,
            output_cost_per_token_above_272k_tokens,
            cache_read_input_token_cost_above_272k_tokens,
            cache_creation_input_token_cost_above_272k_tokens
        )
    };
}

impl ModelInfo {
    /// The context window: `max_input_tokens`, else LiteLLM's legacy `max_tokens`.
    pub fn context_window(&self) -> Option<u64> {
        self.max_input_tokens.or(self.max_tokens)
    }

    /// Every price field that is set, by its LiteLLM name.
    pub fn prices(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        macro_rules! collect {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field {
                    out.push((stringify!($field), value));
                })*
            };
        }
        price_fields!(collect);
        out
    }

    /// Copies every field that is set in `other` over this entry's value.
    pub fn merge_from(&mut self, other: &ModelInfo) {
        macro_rules! take {
            ($($field:ident),*) => {
                $(if other.$field.is_some() {
                    self.$field = other.$field.clone();
                })*
            };
        }
        take!(
            litellm_provider,
            mode,
            max_input_tokens,
            max_output_tokens,
            max_tokens,
            supports_function_calling,
            supports_vision,
            supports_response_schema,
            supports_reasoning,
            supports_prompt_caching,
            deprecation_date,
            source,
            checked,
            notes
        );
        price_fields!(take);
    }

    fn validate(&self) -> Result<(), String> {
        for (name, value) in self.prices() {
            if !value.is_finite() || value < 0.0 {
                return Err(format!(
                    "`{name}` must be a non-negative number, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// A set of models keyed by id (`provider/model`, or bare ids from a LiteLLM file), plus aliases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    models: BTreeMap<String, ModelInfo>,
    aliases: BTreeMap<String, String>,
}

impl Catalog {
    /// The catalog shipped with the crate, parsed on first use.
    pub fn embedded() -> &'static Catalog {
        static EMBEDDED: OnceLock<Catalog> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            Catalog::from_json(EMBEDDED_JSON).unwrap_or_else(|error| {
                tracing::error!(%error, "the embedded model catalog is invalid; using an empty one");
                Catalog::default()
            })
        })
    }

    /// Reads a catalog in our format (`schema_version` + `models`) or LiteLLM's flat format.
    ///
    /// A top-level `schema_version` or `models` key selects our format (which then requires
    /// `schema_version: 1`); anything else is read as LiteLLM's map of model id to entry.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let root: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| CatalogError::Json(e.to_string()))?;
        if root.contains_key("schema_version") || root.contains_key("models") {
            Self::from_ours(root)
        } else {
            Ok(Self::from_litellm(root))
        }
    }

    /// Reads [`Catalog::from_json`] from a file (an opt-in refresh, or your own LiteLLM file).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text)
    }

    fn from_ours(mut root: Map<String, Value>) -> Result<Catalog, CatalogError> {
        let version = root.remove("schema_version").unwrap_or(Value::Null);
        if version.as_u64() != Some(SCHEMA_VERSION) {
            return Err(CatalogError::UnsupportedSchema { found: version });
        }
        let mut catalog = Catalog::default();
        let models = match root.remove("models") {
            Some(Value::Object(models)) => models,
            None => Map::new(),
            Some(_) => return Err(CatalogError::Json("`models` must be an object".into())),
        };
        for (id, entry) in models {
            let info: ModelInfo = serde_path_to_error::deserialize(entry)
                .map_err(|e| CatalogError::invalid(&id, format!("at `{}`: {}", e.path(), e)))?;
            info.validate()
                .map_err(|message| CatalogError::invalid(&id, message))?;
            catalog.models.insert(id, info);
        }
        match root.remove("aliases") {
            Some(Value::Object(aliases)) => {
                for (alias, target) in aliases {
                    let Value::String(target) = target else {
                        return Err(CatalogError::invalid(
                            alias,
                            "an alias must name a model id",
                        ));
                    };
                    catalog.aliases.insert(alias, target);
                }
            }
            None => {}
            Some(_) => return Err(CatalogError::Json("`aliases` must be an object".into())),
        }
        catalog.check_aliases()?;
        Ok(catalog)
    }

    fn from_litellm(root: Map<String, Value>) -> Catalog {
        let mut catalog = Catalog::default();
        for (id, entry) in root {
            if id == "sample_spec" {
                continue;
            }
            let parsed = serde_path_to_error::deserialize::<_, ModelInfo>(entry)
                .map_err(|e| format!("at `{}`: {}", e.path(), e))
                .and_then(|info| info.validate().map(|()| info));
            match parsed {
                Ok(info) => {
                    catalog.models.insert(id, info);
                }
                Err(message) => {
                    tracing::warn!(model = %id, %message, "skipping unreadable model catalog entry");
                }
            }
        }
        catalog
    }

    fn check_aliases(&self) -> Result<(), CatalogError> {
        for (alias, target) in &self.aliases {
            if self.models.contains_key(alias) {
                return Err(CatalogError::invalid(
                    alias,
                    "an alias cannot also be a model id",
                ));
            }
            if !self.models.contains_key(target) {
                return Err(CatalogError::invalid(
                    alias,
                    format!("alias target `{target}` is not a model in the catalog"),
                ));
            }
        }
        Ok(())
    }

    /// The entry for `provider_type`'s `model`, by the rules in the module docs.
    pub fn lookup(&self, provider_type: &str, model: &str) -> Option<&ModelInfo> {
        self.resolve(provider_type, model).map(|(_, info)| info)
    }

    /// Like [`Catalog::lookup`], also returning the catalog id the model resolved to.
    pub fn resolve(&self, provider_type: &str, model: &str) -> Option<(&str, &ModelInfo)> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let base = strip_snapshot_suffix(model);
        if !provider_type.is_empty() {
            if let Some(found) = self.get_with_id(&format!("{provider_type}/{model}")) {
                return Some(found);
            }
            if let Some(found) =
                base.and_then(|b| self.get_with_id(&format!("{provider_type}/{b}")))
            {
                return Some(found);
            }
        }
        self.get_with_id(model)
            .or_else(|| base.and_then(|b| self.get_with_id(b)))
    }

    /// The entry with exactly this id (aliases followed), without any suffix stripping.
    pub fn get(&self, id: &str) -> Option<&ModelInfo> {
        self.get_with_id(id).map(|(_, info)| info)
    }

    fn get_with_id(&self, id: &str) -> Option<(&str, &ModelInfo)> {
        if let Some((key, info)) = self.models.get_key_value(id) {
            return Some((key.as_str(), info));
        }
        let target = self.aliases.get(id)?;
        self.models
            .get_key_value(target)
            .map(|(key, info)| (key.as_str(), info))
    }

    /// Every model, sorted by id.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelInfo)> {
        self.models.iter().map(|(id, info)| (id.as_str(), info))
    }

    /// Every alias and the id it points to, sorted by alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases
            .iter()
            .map(|(alias, target)| (alias.as_str(), target.as_str()))
    }

    /// The number of models (aliases not counted).
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the catalog has no models.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Adds or replaces one model.
    pub fn insert(&mut self, id: impl Into<String>, info: ModelInfo) {
        self.models.insert(id.into(), info);
    }

    /// The embedded catalog, then the file `pricing.catalog_file` names (an explicit refresh,
    /// or LiteLLM's price file), then the configuration's own prices (`pricing.models`), each
    /// layered on top of the one before.
    pub fn for_config(config: &crate::config::Config) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::embedded().clone();
        if let Some(path) = &config.pricing.catalog_file {
            catalog.merge(Catalog::from_file(path)?);
        }
        catalog.merge(Catalog::from_models(config.pricing.models.clone()));
        Ok(catalog)
    }

    /// A catalog of the given entries (`provider/model` → prices), e.g. a config's overrides.
    pub fn from_models(models: BTreeMap<String, ModelInfo>) -> Catalog {
        Catalog {
            models,
            aliases: BTreeMap::new(),
        }
    }

    /// Layers `other` on top: its fields override ours per entry, its new models and aliases are added.
    pub fn merge(&mut self, other: Catalog) {
        for (id, info) in other.models {
            match self.models.entry(id) {
                Entry::Occupied(mut existing) => existing.get_mut().merge_from(&info),
                Entry::Vacant(slot) => {
                    slot.insert(info);
                }
            }
        }
        self.aliases.extend(other.aliases);
    }
}

/// The model id without its snapshot suffix, or `None` when it has none.
///
/// One suffix is removed, the first of these that matches:
///
/// | suffix | example | base |
/// |---|---|---|
/// | `@YYYYMMDD` (Vertex AI) | `claude-sonnet-4-5@20250929` | `claude-sonnet-4-5` |
/// | `-YYYY-MM-DD` (OpenAI) | `gpt-4o-2024-08-06` | `gpt-4o` |
/// | `-YYYYMMDD` (Anthropic) | `claude-sonnet-4-5-20250929` | `claude-sonnet-4-5` |
/// | `-preview-MM-YYYY` (Gemini) | `gemini-2.5-flash-preview-09-2025` | `gemini-2.5-flash` |
/// | `-latest` | `claude-3-5-haiku-latest` | `claude-3-5-haiku` |
/// | `-NNN` (Gemini stable version) | `gemini-2.0-flash-001` | `gemini-2.0-flash` |
///
/// Dates must look like dates (year 20xx, month 01–12, day 01–31). OpenAI's older four-digit
/// `-MMDD` snapshots (`gpt-3.5-turbo-1106`) are not stripped: several are priced differently
/// from their family.
pub fn strip_snapshot_suffix(model: &str) -> Option<&str> {
    if let Some((base, date)) = model.rsplit_once('@')
        && is_compact_date(date)
        && !base.is_empty()
    {
        return Some(base);
    }
    if let Some(base) = strip_dashed_date(model) {
        return Some(base);
    }
    if let Some((base, date)) = model.rsplit_once('-')
        && is_compact_date(date)
        && !base.is_empty()
    {
        return Some(base);
    }
    if let Some(base) = strip_preview_month_year(model) {
        return Some(base);
    }
    if let Some(base) = model.strip_suffix("-latest")
        && !base.is_empty()
    {
        return Some(base);
    }
    if let Some((base, version)) = model.rsplit_once('-')
        && version.len() == 3
        && all_digits(version)
        && !base.is_empty()
    {
        return Some(base);
    }
    None
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn number(s: &str) -> Option<u32> {
    if all_digits(s) { s.parse().ok() } else { None }
}

fn is_date(year: &str, month: &str, day: &str) -> bool {
    year.len() == 4
        && year.starts_with("20")
        && all_digits(year)
        && month.len() == 2
        && matches!(number(month), Some(1..=12))
        && day.len() == 2
        && matches!(number(day), Some(1..=31))
}

/// `YYYYMMDD`.
fn is_compact_date(s: &str) -> bool {
    s.len() == 8 && s.is_ascii() && is_date(&s[..4], &s[4..6], &s[6..])
}

/// `base-YYYY-MM-DD` → `base`.
fn strip_dashed_date(model: &str) -> Option<&str> {
    let (rest, day) = model.rsplit_once('-')?;
    let (rest, month) = rest.rsplit_once('-')?;
    let (base, year) = rest.rsplit_once('-')?;
    (is_date(year, month, day) && !base.is_empty()).then_some(base)
}

/// `base-preview-MM-YYYY` → `base`.
fn strip_preview_month_year(model: &str) -> Option<&str> {
    let (rest, year) = model.rsplit_once('-')?;
    let (rest, month) = rest.rsplit_once('-')?;
    let base = rest.strip_suffix("-preview")?;
    let valid = year.len() == 4
        && year.starts_with("20")
        && all_digits(year)
        && month.len() == 2
        && matches!(number(month), Some(1..=12));
    (valid && !base.is_empty()).then_some(base)
}
