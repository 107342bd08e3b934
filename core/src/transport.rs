//! The only place that sends HTTP: one pooled reqwest client per gateway, error mapping for
//! connection failures and timeouts, and SSE decoding of streamed bodies.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};

use crate::error::{Error, ErrorKind, Result};
use crate::providers::{SseEvent, UpstreamRequest, decode_sse};

/// A stream of decoded server-sent events.
pub(crate) type SseStream = Pin<Box<dyn Stream<Item = Result<SseEvent>> + Send>>;

/// The pooled HTTP client shared by every provider of a gateway.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
}

impl Transport {
    /// Builds the client. `read_timeout` bounds the wait for each read, which for a stream is
    /// the wait between two events.
    pub(crate) fn new(connect_timeout: Duration, read_timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("opengateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::InternalServer,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Transport { client })
    }

    /// Sends `request`, failing with a 504-class error when no response headers arrive within
    /// `timeout`, and with a 502-class error when the provider cannot be reached.
    pub(crate) async fn send(
        &self,
        provider: &str,
        request: UpstreamRequest,
        timeout: Duration,
    ) -> Result<reqwest::Response> {
        let builder = match parsed_url(&request.url) {
            Some(url) => self.client.request(request.method, url),
            None => self.client.request(request.method, request.url.as_str()),
        };
        let builder = builder.headers(request.headers).body(request.body);
        match tokio::time::timeout(timeout, builder.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(map_reqwest_error(provider, &request.url, &e)),
            Err(_) => Err(timeout_error(provider, timeout)),
        }
    }

    /// Reads a whole body within `timeout`.
    pub(crate) async fn read_body(
        &self,
        provider: &str,
        response: reqwest::Response,
        timeout: Duration,
    ) -> Result<bytes::Bytes> {
        let url = response.url().to_string();
        match tokio::time::timeout(timeout, response.bytes()).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(map_reqwest_error(provider, &url, &e)),
            Err(_) => Err(timeout_error(provider, timeout)),
        }
    }
}

/// Distinct URLs each thread keeps parsed (a gateway calls a handful: providers times paths).
const PARSED_URLS: usize = 256;

thread_local! {
    static URLS: RefCell<HashMap<String, reqwest::Url>> = RefCell::new(HashMap::new());
}

/// `url` parsed, from this thread's cache when it was seen before: reqwest parses a string URL
/// on every request (some 7,000 instructions, 2.5% of a chat completion's), a `Url` it takes as
/// it is. `None` when it does not parse: reqwest then reports it as it would.
fn parsed_url(url: &str) -> Option<reqwest::Url> {
    URLS.with(|cache| {
        if let Some(parsed) = cache.borrow().get(url) {
            return Some(parsed.clone());
        }
        let parsed = reqwest::Url::parse(url).ok()?;
        let mut cache = cache.borrow_mut();
        if cache.len() < PARSED_URLS {
            cache.insert(url.to_owned(), parsed.clone());
        }
        Some(parsed)
    })
}

/// Largest image the gateway fetches on a provider's behalf.
pub(crate) const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;

impl Transport {
    /// Downloads an image for a provider that only accepts bytes, and returns it as a `data:`
    /// URL. Fails with a 400 naming `param` when the URL cannot be fetched, is not an image, or
    /// is larger than [`MAX_IMAGE_BYTES`].
    pub(crate) async fn fetch_image(&self, url: &str, param: &str) -> Result<String> {
        use base64::Engine;
        let bad = |why: String| {
            Error::invalid_param(param, format!("cannot use the image at {url}: {why}"))
        };
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.get(url).send())
            .await
            .map_err(|_| bad("it did not download within 30 s".to_owned()))?
            .map_err(|e| bad(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(bad(format!("HTTP {}", response.status().as_u16())));
        }
        let mime = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !mime.starts_with("image/") {
            let shown = if mime.is_empty() {
                "none"
            } else {
                mime.as_str()
            };
            return Err(bad(format!("its content type is {shown}, not image/*")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_IMAGE_BYTES as u64)
        {
            return Err(bad(format!("it is larger than {MAX_IMAGE_BYTES} bytes")));
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| bad(error_chain(&e)))?;
            if body.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(bad(format!("it is larger than {MAX_IMAGE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let data = base64::engine::general_purpose::STANDARD.encode(&body);
        Ok(format!("data:{mime};base64,{data}"))
    }
}

/// Decodes a streamed body as server-sent events ([`decode_sse`] over the response's bytes).
pub(crate) fn sse_events(provider: &str, response: reqwest::Response) -> SseStream {
    let owner = provider.to_owned();
    let url = response.url().to_string();
    Box::pin(decode_sse(
        provider,
        response.bytes_stream(),
        move |e: reqwest::Error| map_reqwest_error(&owner, &url, &e),
    ))
}

fn timeout_error(provider: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "provider `{provider}` did not answer within {} ms",
            timeout.as_millis()
        ),
    )
    .with_provider(provider)
}

fn map_reqwest_error(provider: &str, url: &str, e: &reqwest::Error) -> Error {
    // The URL is reported without its query string, which may hold a key for some providers.
    let url = url.split('?').next().unwrap_or(url);
    let detail = error_chain(e);
    let (kind, message) = if e.is_timeout() {
        (
            ErrorKind::Timeout,
            format!("provider `{provider}` timed out ({url}): {detail}"),
        )
    } else if e.is_connect() {
        (
            ErrorKind::Connection,
            format!("cannot connect to provider `{provider}` at {url}: {detail}"),
        )
    } else {
        (
            ErrorKind::Connection,
            format!("connection to provider `{provider}` failed ({url}): {detail}"),
        )
    };
    Error::new(kind, message).with_provider(provider)
}

/// The causes of a reqwest error ("connection refused" sits a few levels down); reqwest's own
/// top-level message only repeats the URL, which the caller already names.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_parsed_once_per_thread_and_a_bad_one_is_left_to_reqwest() {
        let url = "http://127.0.0.1:9/v1/chat/completions";
        let first = parsed_url(url).expect("parses");
        assert_eq!(first.as_str(), url);
        assert!(URLS.with(|cache| cache.borrow().contains_key(url)));
        assert_eq!(parsed_url(url), Some(first));
        assert_eq!(parsed_url("not a url"), None);
        assert!(!URLS.with(|cache| cache.borrow().contains_key("not a url")));
        // The cache stays bounded: past its size, URLs are parsed without being kept.
        for i in 0..PARSED_URLS + 10 {
            let other = format!("http://127.0.0.1:9/v1/models/m{i}:generateContent");
            assert_eq!(parsed_url(&other).map(String::from), Some(other));
        }
        assert_eq!(URLS.with(|cache| cache.borrow().len()), PARSED_URLS);
    }
}
