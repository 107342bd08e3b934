//! Fixture replay: a model id `fixture--<provider>--<case>` answers with the response recorded in
//! `<fixtures_dir>/<provider>/<case>/` (the layout of the shared provider wire fixtures).
//!
//! Status and Content-Type come from the case's `meta.json` (`status`, `content_type`; defaults
//! 200 and a type by file extension), the body is the case's single `response.*` file, byte for
//! byte. Streamed bodies (anything but `.json`) go out in small pieces split at arbitrary byte
//! offsets, so clients' decoders meet events, lines and UTF-8 sequences cut in two.

use std::{
    ffi::OsStr,
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::Response,
};
use bytes::Bytes;
use serde_json::Value;

use crate::{
    MockState,
    engine::Pacing,
    wire::{Format, Piece, paced_body, sleep_ms},
};

/// Model ids starting with this replay a fixture.
const PREFIX: &str = "fixture--";
/// Separates provider and case in a fixture model id.
const SEPARATOR: &str = "--";
/// Size of each write of a streamed fixture body; odd, so splits land mid-line and mid-event.
const CHUNK_BYTES: usize = 37;
/// Pause between writes of a streamed fixture body when no `chunk_delay_ms` is set.
const DEFAULT_DELAY: Duration = Duration::from_millis(1);
/// Upper bound on the default pauses per body, so large recordings still replay in well under a
/// second: beyond it, several writes share one pause.
const MAX_DEFAULT_PAUSES: usize = 50;
/// Recorded headers that describe the recorded transfer rather than the response, never replayed.
const SKIPPED_HEADERS: [&str; 8] = [
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "date",
    "set-cookie",
];

/// A recorded response, loaded from disk.
struct Fixture {
    status: StatusCode,
    content_type: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    streamed: bool,
}

/// Why a fixture cannot be served: it does not exist (404) or it is broken (500).
enum Problem {
    Missing(String),
    Broken(String),
}

/// The recorded answer when `model` names a fixture, or `None` for ordinary models.
pub(crate) async fn serve(
    state: &MockState,
    format: Format,
    model: &str,
    pacing: &Pacing,
) -> Option<Response> {
    let id = model.strip_prefix(PREFIX)?.to_owned();
    let dir = state.config().fixtures_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || load(dir.as_deref(), &id))
        .await
        .unwrap_or_else(|err| Err(Problem::Broken(format!("fixture loader failed: {err}"))));
    let response = match loaded {
        Ok(fixture) => {
            sleep_ms(pacing.first_byte_delay_ms).await;
            fixture.into_response(pacing.chunk_delay_ms)
        }
        Err(Problem::Missing(message)) => format.error(StatusCode::NOT_FOUND, &message),
        Err(Problem::Broken(message)) => format.error(StatusCode::INTERNAL_SERVER_ERROR, &message),
    };
    Some(response)
}

fn load(dir: Option<&Path>, id: &str) -> Result<Fixture, Problem> {
    let Some((provider, case)) = id.split_once(SEPARATOR) else {
        return Err(Problem::Missing(format!(
            "fixture model `{PREFIX}{id}` must look like `{PREFIX}<provider>--<case>`"
        )));
    };
    for part in [provider, case] {
        if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\']) {
            return Err(Problem::Missing(format!(
                "`{part}` is not a fixture provider or case name"
            )));
        }
    }
    let Some(dir) = dir else {
        return Err(Problem::Missing(format!(
            "no fixture for `{PREFIX}{id}`: fixture replay is off; start the mock with \
             `--fixtures DIR` (MockConfig::fixtures_dir)"
        )));
    };
    let case_dir = dir.join(provider).join(case);
    if !case_dir.is_dir() {
        return Err(Problem::Missing(format!(
            "no fixture case at {}",
            case_dir.display()
        )));
    }
    let meta = read_meta(&case_dir)?;
    let file = response_file(&case_dir, &meta)?;
    let body = fs::read(&file).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => {
            Problem::Missing(format!("no fixture body at {}", file.display()))
        }
        _ => Problem::Broken(format!("cannot read {}: {err}", file.display())),
    })?;
    let status = match meta.get("status") {
        None | Some(Value::Null) => StatusCode::OK,
        Some(status) => status
            .as_u64()
            .and_then(|status| u16::try_from(status).ok())
            .and_then(|status| StatusCode::from_u16(status).ok())
            .ok_or_else(|| {
                Problem::Broken(format!(
                    "meta.json of {} has a bad status",
                    case_dir.display()
                ))
            })?,
    };
    let extension = file
        .extension()
        .and_then(OsStr::to_str)
        .unwrap_or_default()
        .to_owned();
    let content_type = meta
        .get("content_type")
        .and_then(Value::as_str)
        .map_or_else(
            || default_content_type(&extension).to_owned(),
            str::to_owned,
        );
    Ok(Fixture {
        status,
        content_type,
        headers: recorded_headers(&meta),
        body: Bytes::from(body),
        streamed: extension != "json",
    })
}

fn read_meta(case_dir: &Path) -> Result<Value, Problem> {
    let path = case_dir.join("meta.json");
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| Problem::Broken(format!("{} is not JSON: {err}", path.display()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Value::Null),
        Err(err) => Err(Problem::Broken(format!(
            "cannot read {}: {err}",
            path.display()
        ))),
    }
}

/// The case's body file: meta.json's `response_file`, or else its only `response.*` file
/// (`response.events.json`, derived from a binary body, does not count).
fn response_file(case_dir: &Path, meta: &Value) -> Result<PathBuf, Problem> {
    if let Some(name) = meta.get("response_file").and_then(Value::as_str) {
        if name.contains(['/', '\\']) || name == ".." {
            return Err(Problem::Broken(format!(
                "meta.json of {} names a bad response_file",
                case_dir.display()
            )));
        }
        return Ok(case_dir.join(name));
    }
    let entries = fs::read_dir(case_dir)
        .map_err(|err| Problem::Broken(format!("cannot list {}: {err}", case_dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|name| name.starts_with("response.") && name != "response.events.json")
        })
        .collect();
    match files.len() {
        0 => Err(Problem::Missing(format!(
            "no response.* file in {}",
            case_dir.display()
        ))),
        1 => Ok(files.remove(0)),
        _ => Err(Problem::Broken(format!(
            "several response.* files in {}; name one as response_file in meta.json",
            case_dir.display()
        ))),
    }
}

fn default_content_type(extension: &str) -> &'static str {
    match extension {
        "json" => "application/json",
        "sse" => "text/event-stream",
        "ndjson" => "application/x-ndjson",
        "bin" => "application/vnd.amazon.eventstream",
        _ => "application/octet-stream",
    }
}

/// meta.json's `response_headers` worth replaying (rate limits, retry hints, request ids, ...).
fn recorded_headers(meta: &Value) -> Vec<(HeaderName, HeaderValue)> {
    let Some(headers) = meta.get("response_headers").and_then(Value::as_object) else {
        return Vec::new();
    };
    headers
        .iter()
        .filter(|(name, _)| !SKIPPED_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
        .filter_map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = HeaderValue::from_str(value.as_str()?).ok()?;
            Some((name, value))
        })
        .collect()
}

impl Fixture {
    fn into_response(self, chunk_delay_ms: u64) -> Response {
        let body = if self.streamed {
            let pieces: Vec<Piece> = split(&self.body, CHUNK_BYTES)
                .into_iter()
                .map(Piece::Bytes)
                .collect();
            let (delay, stride) = if chunk_delay_ms > 0 {
                (Duration::from_millis(chunk_delay_ms), 1)
            } else {
                (DEFAULT_DELAY, pieces.len().div_ceil(MAX_DEFAULT_PAUSES))
            };
            paced_body(pieces, delay, stride)
        } else {
            Body::from(self.body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        // The body is stored decoded, so no Content-Encoding: it goes out exactly as stored.
        if let Ok(content_type) = HeaderValue::from_str(&self.content_type) {
            headers.insert(header::CONTENT_TYPE, content_type);
        }
        response
    }
}

/// `body` cut into pieces of `size` bytes (the last one shorter), regardless of content.
fn split(body: &Bytes, size: usize) -> Vec<Bytes> {
    (0..body.len())
        .step_by(size.max(1))
        .map(|start| body.slice(start..(start + size).min(body.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_at_fixed_offsets() {
        let body = Bytes::from_static(b"abcdefgh");
        let pieces = split(&body, 3);
        assert_eq!(pieces, ["abc", "def", "gh"]);
        assert!(split(&Bytes::new(), 3).is_empty());
    }

    #[test]
    fn bad_ids_are_rejected_before_touching_the_disk() {
        let dir = Path::new("/nonexistent");
        for id in ["openai", "openai--", "--case", "..--x", "openai--a/b"] {
            assert!(
                matches!(load(Some(dir), id), Err(Problem::Missing(_))),
                "{id}"
            );
        }
        let Err(Problem::Missing(message)) = load(None, "openai--chat") else {
            panic!("replay without a directory must be a 404");
        };
        assert!(message.contains("--fixtures"), "{message}");
    }
}
