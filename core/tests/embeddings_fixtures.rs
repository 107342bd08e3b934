//! The embeddings adapters against every recorded embeddings case in `../shared/fixtures/`
//! (beside the repository): cases whose `meta.json` endpoint is `/embeddings`,
//! `:batchEmbedContents` or `:embedContent`, for Gemini and the OpenAI-compatible providers.
//! A success must decode to one vector per input of the recorded request, with the recorded
//! usage; an error must keep its status and message. Skipped with a message when the folder,
//! or any such case in it, is absent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use http::HeaderMap;
use opengateway::providers::gemini::GeminiProvider;
use opengateway::providers::openai::OpenAiProvider;
use opengateway::providers::{Provider, ProviderType};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// The adapter for a fixture provider folder, if the gateway has one that embeds.
fn adapter(folder: &str) -> Option<Box<dyn Provider>> {
    if matches!(folder, "gemini" | "vertex-ai") {
        return Some(Box::new(
            GeminiProvider::new("gemini", "", Some("k"), &[]).unwrap(),
        ));
    }
    let kind = ProviderType::parse(folder).filter(|k| k.is_openai_compatible())?;
    Some(Box::new(
        OpenAiProvider::new(folder, kind, "https://example.invalid/v1", Some("k"), &[]).unwrap(),
    ))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Inputs of a recorded request, OpenAI or Gemini shaped.
fn input_count(request: &Value) -> Option<usize> {
    if let Some(requests) = request.get("requests").and_then(Value::as_array) {
        return Some(requests.len());
    }
    if request.get("content").is_some() {
        return Some(1);
    }
    match request.get("input")? {
        Value::Array(items) if items.iter().all(Value::is_number) => Some(1),
        Value::Array(items) => Some(items.len()),
        _ => Some(1),
    }
}

#[test]
fn recorded_embeddings_decode() {
    let root = fixtures_dir();
    let Ok(providers) = std::fs::read_dir(&root) else {
        eprintln!("skipped: no fixtures folder at {}", root.display());
        return;
    };
    let mut checked = 0;
    for provider in providers.flatten() {
        let folder = provider.file_name().to_string_lossy().into_owned();
        let Some(adapter) = adapter(&folder) else {
            continue;
        };
        let Ok(cases) = std::fs::read_dir(provider.path()) else {
            continue;
        };
        for case in cases.flatten() {
            let dir = case.path();
            let Some(meta) = read_json(&dir.join("meta.json")) else {
                continue;
            };
            let endpoint = meta["endpoint"].as_str().unwrap_or_default();
            if !(endpoint.contains("/embeddings")
                || endpoint.contains(":batchEmbedContents")
                || endpoint.contains(":embedContent"))
            {
                continue;
            }
            let Ok(body) = std::fs::read(dir.join("response.json")) else {
                continue;
            };
            let name = format!("{folder}/{}", dir.file_name().unwrap().to_string_lossy());
            let status = meta["status"].as_u64().unwrap_or(200) as u16;
            checked += 1;
            if !(200..300).contains(&status) {
                let err = adapter.decode_error(status, &HeaderMap::new(), &body);
                assert!(!err.message().is_empty(), "{name}");
                continue;
            }
            let answer = adapter
                .decode_embeddings(&body)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(n) = read_json(&dir.join("request.json")).and_then(|r| input_count(&r)) {
                assert_eq!(answer.data.len(), n, "{name}");
            }
            for item in &answer.data {
                assert!(!item.embedding.to_floats().unwrap().is_empty(), "{name}");
            }
            let recorded: Value = serde_json::from_slice(&body).unwrap();
            if let Some(tokens) = recorded["usage"]["prompt_tokens"].as_u64() {
                assert_eq!(answer.usage.unwrap().prompt_tokens, tokens, "{name}");
            }
        }
    }
    if checked == 0 {
        eprintln!(
            "skipped: no recorded embeddings case under {}",
            root.display()
        );
    }
}
