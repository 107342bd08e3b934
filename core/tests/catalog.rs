//! The model catalog: the embedded data file's completeness and sanity, the lookup rules,
//! LiteLLM compatibility, merging and errors.

use std::collections::BTreeSet;

use opengateway::catalog::{Catalog, CatalogError, Mode, ModelInfo, strip_snapshot_suffix};
use serde_json::Value;

const EMBEDDED: &str = include_str!("../data/models.json");
const PROVIDERS: [&str; 3] = ["openai", "anthropic", "gemini"];

fn embedded() -> &'static Catalog {
    Catalog::embedded()
}

fn is_iso_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && parts[1].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && parts[2].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
}

#[test]
fn embedded_file_parses_and_is_what_embedded_returns() {
    let parsed = Catalog::from_json(EMBEDDED).expect("embedded catalog parses");
    assert_eq!(&parsed, embedded());
    assert!(embedded().len() >= 40);
    // The same &'static instance every time: parsed once.
    assert!(std::ptr::eq(Catalog::embedded(), Catalog::embedded()));
}

#[test]
fn embedded_file_has_schema_version_and_no_unknown_fields() {
    let raw: Value = serde_json::from_str(EMBEDDED).unwrap();
    assert_eq!(raw["schema_version"], 1);
    for (id, entry) in raw["models"].as_object().unwrap() {
        let info: ModelInfo = serde_json::from_value(entry.clone()).unwrap();
        let raw_keys: BTreeSet<&String> = entry.as_object().unwrap().keys().collect();
        let typed = serde_json::to_value(&info).unwrap();
        let typed_keys: BTreeSet<&String> = typed.as_object().unwrap().keys().collect();
        assert_eq!(
            raw_keys, typed_keys,
            "{id}: a key is not a ModelInfo field (typo?)"
        );
    }
}

#[test]
fn covers_at_least_forty_chat_models_across_the_three_providers() {
    let chat: Vec<&str> = embedded()
        .models()
        .filter(|(_, m)| m.mode == Some(Mode::Chat))
        .map(|(id, _)| id)
        .collect();
    assert!(chat.len() >= 40, "only {} chat models", chat.len());
    for provider in PROVIDERS {
        let n = chat
            .iter()
            .filter(|id| id.starts_with(&format!("{provider}/")))
            .count();
        assert!(n >= 8, "{provider} has only {n} chat models");
    }
    let required = [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "openai/gpt-4.1",
        "openai/gpt-4.1-mini",
        "openai/gpt-4.1-nano",
        "openai/o1",
        "openai/o3",
        "openai/o3-mini",
        "openai/o4-mini",
        "openai/gpt-5",
        "openai/gpt-5-mini",
        "openai/gpt-5-nano",
        "openai/gpt-5.1",
        "openai/gpt-5.2",
        "openai/text-embedding-3-small",
        "openai/text-embedding-3-large",
        "anthropic/claude-opus-4-1",
        "anthropic/claude-opus-4-5",
        "anthropic/claude-sonnet-4",
        "anthropic/claude-sonnet-4-5",
        "anthropic/claude-haiku-4-5",
        "anthropic/claude-3-7-sonnet",
        "anthropic/claude-3-5-haiku",
        "gemini/gemini-2.5-pro",
        "gemini/gemini-2.5-flash",
        "gemini/gemini-2.5-flash-lite",
        "gemini/gemini-2.0-flash",
        "gemini/gemini-2.0-flash-lite",
        "gemini/gemini-3-pro-preview",
        "gemini/gemini-embedding-001",
    ];
    for id in required {
        assert!(embedded().get(id).is_some(), "{id} is missing");
    }
}

#[test]
fn every_entry_is_complete_and_carries_provenance() {
    for (id, m) in embedded().models() {
        let (provider, _) = id.split_once('/').expect("ids are provider/model");
        assert!(PROVIDERS.contains(&provider), "{id}: unexpected provider");
        assert_eq!(m.litellm_provider.as_deref(), Some(provider), "{id}");
        let mode = m.mode.unwrap_or_else(|| panic!("{id}: no mode"));
        assert!(
            matches!(mode, Mode::Chat | Mode::Embedding),
            "{id}: {mode:?}"
        );
        assert!(m.max_input_tokens.is_some(), "{id}: no context window");
        assert!(m.input_cost_per_token.is_some(), "{id}: no input price");
        assert!(m.output_cost_per_token.is_some(), "{id}: no output price");
        if mode == Mode::Chat {
            assert!(m.max_output_tokens.is_some(), "{id}: no max output");
        }
        for (name, cap) in [
            ("supports_function_calling", m.supports_function_calling),
            ("supports_vision", m.supports_vision),
            ("supports_response_schema", m.supports_response_schema),
            ("supports_reasoning", m.supports_reasoning),
            ("supports_prompt_caching", m.supports_prompt_caching),
        ] {
            assert!(cap.is_some(), "{id}: no {name}");
        }
        let source = m
            .source
            .as_deref()
            .unwrap_or_else(|| panic!("{id}: no source"));
        assert!(source.starts_with("https://"), "{id}: source {source}");
        let checked = m
            .checked
            .as_deref()
            .unwrap_or_else(|| panic!("{id}: no checked"));
        assert!(is_iso_date(checked), "{id}: checked {checked}");
        if let Some(date) = &m.deprecation_date {
            assert!(is_iso_date(date), "{id}: deprecation_date {date}");
        }
    }
}

#[test]
fn prices_are_positive_and_tiers_are_consistent() {
    for (id, m) in embedded().models() {
        let input = m.input_cost_per_token.unwrap();
        assert!(input > 0.0, "{id}: input price {input}");
        for (name, value) in m.prices() {
            let embedding_output =
                m.mode == Some(Mode::Embedding) && name == "output_cost_per_token";
            if embedding_output {
                assert_eq!(value, 0.0, "{id}: embeddings have no output price");
            } else {
                assert!(value > 0.0 && value < 1e-3, "{id}: {name} = {value}");
            }
        }
        if let Some(read) = m.cache_read_input_token_cost {
            assert!(read < input, "{id}: cache read {read} >= input {input}");
        }
        if let Some(write) = m.cache_creation_input_token_cost {
            assert!(write >= input, "{id}: cache write {write} < input {input}");
        }
        if let (Some(w5), Some(w1h)) = (
            m.cache_creation_input_token_cost,
            m.cache_creation_input_token_cost_above_1hr,
        ) {
            assert!(w1h > w5, "{id}: 1h write {w1h} <= 5m write {w5}");
        }
        for (base, tiered) in [
            (
                m.input_cost_per_token,
                m.input_cost_per_token_above_200k_tokens,
            ),
            (
                m.output_cost_per_token,
                m.output_cost_per_token_above_200k_tokens,
            ),
            (
                m.cache_read_input_token_cost,
                m.cache_read_input_token_cost_above_200k_tokens,
            ),
            (
                m.input_cost_per_token,
                m.input_cost_per_token_above_272k_tokens,
            ),
            (
                m.output_cost_per_token,
                m.output_cost_per_token_above_272k_tokens,
            ),
            (
                m.cache_read_input_token_cost,
                m.cache_read_input_token_cost_above_272k_tokens,
            ),
        ] {
            if let Some(tiered) = tiered {
                let base = base.unwrap_or_else(|| panic!("{id}: a tier without a base price"));
                assert!(tiered > base, "{id}: long-context {tiered} <= base {base}");
            }
        }
        if let (Some(ctx), Some(out)) = (m.max_input_tokens, m.max_output_tokens) {
            assert!(
                ctx >= 8_000 && (4_096..=300_000).contains(&out),
                "{id}: {ctx}/{out}"
            );
        }
    }
}

#[test]
fn aliases_point_at_models_of_the_same_provider() {
    let mut n = 0;
    for (alias, target) in embedded().aliases() {
        n += 1;
        assert!(embedded().get(target).is_some(), "{alias} -> {target}");
        assert_eq!(
            alias.split_once('/').unwrap().0,
            target.split_once('/').unwrap().0
        );
    }
    assert!(n > 0);
}

#[test]
fn models_iterate_sorted_by_id() {
    let ids: Vec<&str> = embedded().models().map(|(id, _)| id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
}

#[test]
fn well_known_prices_match_the_verified_values() {
    let c = embedded();
    let gpt4o = c.lookup("openai", "gpt-4o").unwrap();
    assert_eq!(gpt4o.input_cost_per_token, Some(2.5e-06));
    assert_eq!(gpt4o.output_cost_per_token, Some(1e-05));
    assert_eq!(gpt4o.cache_read_input_token_cost, Some(1.25e-06));
    assert_eq!(gpt4o.max_input_tokens, Some(128_000));
    assert_eq!(gpt4o.max_output_tokens, Some(16_384));

    let mini = c.lookup("openai", "gpt-4o-mini").unwrap();
    assert_eq!(mini.input_cost_per_token, Some(1.5e-07));
    assert_eq!(mini.output_cost_per_token, Some(6e-07));

    let gpt5 = c.lookup("openai", "gpt-5").unwrap();
    assert_eq!(gpt5.input_cost_per_token, Some(1.25e-06));
    assert_eq!(gpt5.output_cost_per_token, Some(1e-05));
    assert_eq!(gpt5.cache_read_input_token_cost, Some(1.25e-07));

    let o3 = c.lookup("openai", "o3").unwrap();
    assert_eq!(o3.input_cost_per_token, Some(2e-06));
    assert_eq!(o3.output_cost_per_token, Some(8e-06));

    let sonnet = c.lookup("anthropic", "claude-sonnet-4-5").unwrap();
    assert_eq!(sonnet.input_cost_per_token, Some(3e-06));
    assert_eq!(sonnet.output_cost_per_token, Some(1.5e-05));
    assert_eq!(sonnet.cache_read_input_token_cost, Some(3e-07));
    assert_eq!(sonnet.cache_creation_input_token_cost, Some(3.75e-06));
    assert_eq!(
        sonnet.cache_creation_input_token_cost_above_1hr,
        Some(6e-06)
    );
    assert_eq!(sonnet.input_cost_per_token_above_200k_tokens, Some(6e-06));
    assert_eq!(
        sonnet.output_cost_per_token_above_200k_tokens,
        Some(2.25e-05)
    );

    let opus = c.lookup("anthropic", "claude-opus-4-5").unwrap();
    assert_eq!(opus.input_cost_per_token, Some(5e-06));
    assert_eq!(opus.output_cost_per_token, Some(2.5e-05));
    let opus41 = c.lookup("anthropic", "claude-opus-4-1").unwrap();
    assert_eq!(opus41.input_cost_per_token, Some(1.5e-05));
    assert_eq!(opus41.output_cost_per_token, Some(7.5e-05));
    let haiku = c.lookup("anthropic", "claude-haiku-4-5").unwrap();
    assert_eq!(haiku.input_cost_per_token, Some(1e-06));
    assert_eq!(haiku.output_cost_per_token, Some(5e-06));

    let pro = c.lookup("gemini", "gemini-2.5-pro").unwrap();
    assert_eq!(pro.input_cost_per_token, Some(1.25e-06));
    assert_eq!(pro.output_cost_per_token, Some(1e-05));
    assert_eq!(pro.input_cost_per_token_above_200k_tokens, Some(2.5e-06));
    assert_eq!(pro.output_cost_per_token_above_200k_tokens, Some(1.5e-05));
    let flash = c.lookup("gemini", "gemini-2.5-flash").unwrap();
    assert_eq!(flash.input_cost_per_token, Some(3e-07));
    assert_eq!(flash.output_cost_per_token, Some(2.5e-06));

    let small = c.lookup("openai", "text-embedding-3-small").unwrap();
    assert_eq!(small.mode, Some(Mode::Embedding));
    assert_eq!(small.input_cost_per_token, Some(2e-08));
}

#[test]
fn dated_snapshots_and_aliases_resolve() {
    let c = embedded();
    let cases = [
        ("openai", "gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openai", "gpt-4o-2024-11-20", "openai/gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai", "gpt-5-2025-08-07", "openai/gpt-5"),
        ("openai", "gpt-5-nano-2025-08-07", "openai/gpt-5-nano"),
        ("openai", "gpt-5.4-2026-03-05", "openai/gpt-5.4"),
        ("openai", "o3-mini-2025-01-31", "openai/o3-mini"),
        ("openai", "gpt-5.6", "openai/gpt-5.6-sol"),
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            "anthropic/claude-sonnet-4-5",
        ),
        (
            "anthropic",
            "claude-sonnet-4-5@20250929",
            "anthropic/claude-sonnet-4-5",
        ),
        (
            "anthropic",
            "claude-haiku-4-5-20251001",
            "anthropic/claude-haiku-4-5",
        ),
        (
            "anthropic",
            "claude-opus-4-5-20251101",
            "anthropic/claude-opus-4-5",
        ),
        (
            "anthropic",
            "claude-opus-4-1-20250805",
            "anthropic/claude-opus-4-1",
        ),
        (
            "anthropic",
            "claude-3-7-sonnet-20250219",
            "anthropic/claude-3-7-sonnet",
        ),
        (
            "anthropic",
            "claude-3-5-haiku-latest",
            "anthropic/claude-3-5-haiku",
        ),
        (
            "anthropic",
            "claude-sonnet-4-0",
            "anthropic/claude-sonnet-4",
        ),
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            "anthropic/claude-sonnet-4",
        ),
        (
            "anthropic",
            "claude-4-opus-20250514",
            "anthropic/claude-opus-4",
        ),
        (
            "gemini",
            "gemini-2.5-flash-preview-09-2025",
            "gemini/gemini-2.5-flash",
        ),
        ("gemini", "gemini-2.0-flash-001", "gemini/gemini-2.0-flash"),
        (
            "gemini",
            "models/gemini-2.5-flash",
            "gemini/gemini-2.5-flash",
        ),
        (
            "gemini",
            "gemini-3.1-flash-lite-preview",
            "gemini/gemini-3.1-flash-lite",
        ),
    ];
    for (provider, model, expected) in cases {
        let (id, _) = c
            .resolve(provider, model)
            .unwrap_or_else(|| panic!("{provider}/{model} did not resolve"));
        assert_eq!(id, expected, "{provider}/{model}");
    }
    // An exact entry wins over the stripped family: the first GPT-4o snapshot is priced apart.
    let (id, first) = c.resolve("openai", "gpt-4o-2024-05-13").unwrap();
    assert_eq!(id, "openai/gpt-4o-2024-05-13");
    assert_eq!(first.input_cost_per_token, Some(5e-06));
    // Unknown models, and known models under the wrong provider with no bare fallback, miss.
    assert!(c.lookup("openai", "gpt-7-ultra").is_none());
    assert!(c.lookup("anthropic", "gpt-4o").is_none());
    assert!(c.lookup("openai", "").is_none());
}

#[test]
fn snapshot_suffix_rules() {
    let stripped = [
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-6.1-sol-2026-09-29", "gpt-6.1-sol"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-6-20260205", "claude-opus-4-6"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini-flash-latest", "gemini-flash"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
    ];
    for (model, base) in stripped {
        assert_eq!(strip_snapshot_suffix(model), Some(base), "{model}");
    }
    let untouched = [
        "gpt-4o",
        "gpt-4.1",
        "o3",
        "claude-opus-4-1",
        "claude-3-5-haiku",
        "gemini-2.5-pro",
        "gemini-3-pro-preview",
        "text-embedding-3-small",
        "gpt-3.5-turbo-1106", // four-digit OpenAI snapshots are priced apart
        "claude-x-2024102",   // seven digits is no date
        "claude-x-20241322",  // month 13
        "gpt-x-1999-01-01",   // not 20xx
        "gemini-x-preview-13-2025",
        "-latest",
        "@20250101",
    ];
    for model in untouched {
        assert_eq!(strip_snapshot_suffix(model), None, "{model}");
    }
}

const LITELLM_SNIPPET: &str = r#"{
    "sample_spec": {
        "input_cost_per_token": 0.0,
        "max_input_tokens": "max input tokens, if the provider specifies it",
        "mode": "one of: chat, embedding, completion"
    },
    "gpt-4o": {
        "cache_read_input_token_cost": 1.25e-06,
        "input_cost_per_token": 2.5e-06,
        "input_cost_per_token_batches": 1.25e-06,
        "litellm_provider": "openai",
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "max_tokens": 16384,
        "mode": "chat",
        "output_cost_per_token": 1e-05,
        "supports_function_calling": true,
        "supports_vision": true,
        "search_context_cost_per_query": {"search_context_size_low": 0.03}
    },
    "gemini/gemini-2.5-pro": {
        "cache_read_input_token_cost": 1.25e-07,
        "input_cost_per_token": 1.25e-06,
        "input_cost_per_token_above_200k_tokens": 2.5e-06,
        "litellm_provider": "gemini",
        "max_input_tokens": 1048576,
        "max_output_tokens": 65535,
        "mode": "chat",
        "output_cost_per_token": 1e-05,
        "output_cost_per_token_above_200k_tokens": 1.5e-05,
        "supported_modalities": ["text", "image"],
        "rpm": 2000
    },
    "dall-e-3": {
        "litellm_provider": "openai",
        "mode": "image_generation",
        "output_cost_per_image": 0.04
    },
    "broken-entry": {
        "input_cost_per_token": "free"
    },
    "legacy-only": {
        "max_tokens": 4096,
        "mode": "completion",
        "input_cost_per_token": 1
    }
}"#;

#[test]
fn a_litellm_snippet_loads() {
    let c = Catalog::from_json(LITELLM_SNIPPET).expect("LiteLLM format loads");
    // sample_spec and the unreadable entry are skipped; the rest are kept.
    let ids: Vec<&str> = c.models().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        ["dall-e-3", "gemini/gemini-2.5-pro", "gpt-4o", "legacy-only"]
    );

    // OpenAI entries are keyed bare in LiteLLM: found by the bare-model step.
    let (id, gpt4o) = c.resolve("openai", "gpt-4o-2024-08-06").unwrap();
    assert_eq!(id, "gpt-4o");
    assert_eq!(gpt4o.input_cost_per_token, Some(2.5e-06));
    assert_eq!(gpt4o.max_tokens, Some(16_384));
    assert_eq!(gpt4o.source, None);
    assert_eq!(gpt4o.checked, None);

    let pro = c.lookup("gemini", "gemini-2.5-pro").unwrap();
    assert_eq!(pro.input_cost_per_token_above_200k_tokens, Some(2.5e-06));
    assert_eq!(pro.context_window(), Some(1_048_576));

    assert_eq!(c.get("dall-e-3").unwrap().mode, Some(Mode::Other));
    let legacy = c.get("legacy-only").unwrap();
    assert_eq!(legacy.mode, Some(Mode::Completion));
    assert_eq!(legacy.context_window(), Some(4096));
}

#[test]
fn merge_overrides_fields_and_adds_models() {
    let mut base = Catalog::embedded().clone();
    let before = base.len();
    let overlay = Catalog::from_json(
        r#"{
            "schema_version": 1,
            "models": {
                "openai/gpt-4o": { "input_cost_per_token": 2e-06, "notes": "negotiated" },
                "local/llama3": { "mode": "chat", "input_cost_per_token": 1e-08, "output_cost_per_token": 2e-08 }
            },
            "aliases": { "local/llama": "local/llama3" }
        }"#,
    )
    .unwrap();
    base.merge(overlay);
    assert_eq!(base.len(), before + 1);
    let gpt4o = base.get("openai/gpt-4o").unwrap();
    assert_eq!(gpt4o.input_cost_per_token, Some(2e-06));
    assert_eq!(gpt4o.notes.as_deref(), Some("negotiated"));
    // Fields the overlay does not set are kept.
    assert_eq!(gpt4o.output_cost_per_token, Some(1e-05));
    assert_eq!(gpt4o.max_input_tokens, Some(128_000));
    assert!(gpt4o.source.is_some());
    assert_eq!(
        base.lookup("local", "llama").unwrap().input_cost_per_token,
        Some(1e-08)
    );
    // The embedded catalog itself is untouched.
    assert_eq!(
        Catalog::embedded()
            .get("openai/gpt-4o")
            .unwrap()
            .input_cost_per_token,
        Some(2.5e-06)
    );
}

#[test]
fn insert_adds_or_replaces_a_model() {
    let mut c = Catalog::default();
    assert!(c.is_empty());
    c.insert(
        "openai/custom",
        ModelInfo {
            input_cost_per_token: Some(1e-06),
            ..Default::default()
        },
    );
    assert_eq!(c.len(), 1);
    assert!(c.lookup("openai", "custom").is_some());
}

#[test]
fn errors_name_what_is_wrong() {
    assert!(matches!(
        Catalog::from_json("not json"),
        Err(CatalogError::Json(_))
    ));
    assert!(matches!(
        Catalog::from_json("[1, 2]"),
        Err(CatalogError::Json(_))
    ));
    let err = Catalog::from_json(r#"{"models": {"openai/x": {}}}"#).unwrap_err();
    assert!(
        matches!(err, CatalogError::UnsupportedSchema { .. }),
        "{err}"
    );
    let err = Catalog::from_json(r#"{"schema_version": 2, "models": {}}"#).unwrap_err();
    assert!(
        matches!(err, CatalogError::UnsupportedSchema { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("schema_version 2"), "{err}");

    let err = Catalog::from_json(
        r#"{"schema_version": 1, "models": {"openai/x": {"max_input_tokens": "lots"}}}"#,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("openai/x") && msg.contains("max_input_tokens"),
        "{msg}"
    );

    let err = Catalog::from_json(
        r#"{"schema_version": 1, "models": {"openai/x": {"input_cost_per_token": -1}}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("non-negative"), "{err}");

    let err = Catalog::from_json(
        r#"{"schema_version": 1, "models": {}, "aliases": {"openai/a": "openai/missing"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("openai/missing"), "{err}");

    let err = Catalog::from_file("/nonexistent/models.json").unwrap_err();
    assert!(matches!(err, CatalogError::Read { .. }), "{err}");
}

#[test]
fn from_file_reads_a_refreshed_catalog() {
    let dir = std::env::temp_dir().join(format!("ogw-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model_prices_and_context_window.json");
    std::fs::write(&path, LITELLM_SNIPPET).unwrap();
    let c = Catalog::from_file(&path).unwrap();
    assert!(c.lookup("openai", "gpt-4o").is_some());
    std::fs::write(&path, EMBEDDED).unwrap();
    assert_eq!(&Catalog::from_file(&path).unwrap(), Catalog::embedded());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_catalog_file_in_the_config_is_layered_between_the_embedded_one_and_config_prices() {
    let dir = std::env::temp_dir().join(format!("ogw-catalog-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prices.json");
    std::fs::write(&file, LITELLM_SNIPPET).unwrap();
    let yaml = format!(
        "pricing:\n  catalog_file: \"{}\"\n  models:\n    gemini/gemini-2.5-pro: {{ output_cost_per_token: 0.00002 }}\n",
        file.display()
    );
    let config = opengateway::config::Config::from_yaml(&yaml).unwrap();
    let c = Catalog::for_config(&config).unwrap();
    // From the file (a LiteLLM-only entry), from the embedded catalog, and the config on top.
    assert_eq!(c.get("legacy-only").unwrap().mode, Some(Mode::Completion));
    assert!(c.lookup("anthropic", "claude-sonnet-4-5").is_some());
    let pro = c.lookup("gemini", "gemini-2.5-pro").unwrap();
    assert_eq!(pro.output_cost_per_token, Some(2e-5));
    assert_eq!(pro.input_cost_per_token_above_200k_tokens, Some(2.5e-06));

    let missing = opengateway::config::Config::from_yaml(
        "pricing: { catalog_file: /nonexistent/prices.json }",
    )
    .unwrap();
    let err = opengateway::Gateway::from_config(missing).unwrap_err();
    assert!(
        err.message().contains("pricing.catalog_file"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("/nonexistent/prices.json"),
        "{}",
        err.message()
    );
    let _ = std::fs::remove_dir_all(dir);
}
