//! A mock LLM provider speaking the OpenAI Chat Completions, Anthropic Messages and Google
//! Gemini wire formats over real HTTP.
//!
//! Used in-process by Rust tests and the gateway's demo mode ([`MockServer`]), and out of process
//! through the `opengateway-mock` binary. Answers are deterministic (only ids vary). A request
//! steers its answer with `~` directives after the model id (`mock-claude~status=429`), on every
//! endpoint, and on the OpenAI endpoint also with a top-level `"mock": {...}` body object, which
//! the gateway forwards untouched. A model id `fixture--<provider>--<case>` replays a recorded
//! provider response from [`MockConfig::fixtures_dir`]. See the crate README for the knobs.
//!
//! Endpoints: `POST /v1/chat/completions` (and `/chat/completions`), `POST /v1/messages` (and
//! `/messages`), `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`,
//! `POST /v1/embeddings` (and `/embeddings`), `POST /v1beta/models/{model}:batchEmbedContents`
//! and `:embedContent`,
//! `GET /v1/models`, `GET /mock/requests` (the request log as JSON) and `DELETE /mock/requests`
//! (clears it).

mod anthropic;
mod chat;
mod directives;
pub use directives::DIRECTIVES_HEADER;
mod embeddings;
pub use embeddings::vector as embedding_vector;
mod engine;
mod gemini;
mod replay;
mod responses;
mod wire;

use std::{
    collections::HashMap,
    io,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, Request, State},
    http::{Method, StatusCode, Uri},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::wire::Format;

/// Largest request body the mock accepts; far above anything a test sends.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How many requests the log keeps; older ones are dropped first.
const MAX_RECORDED: usize = 1000;
/// How long [`MockServer::shutdown`] lets in-flight responses finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Model ids listed by `GET /v1/models`.
const MODEL_IDS: [&str; 2] = ["mock-gpt", "mock-gpt-mini"];
/// Fixed `created` stamp of the listed models, so the listing is byte-for-byte stable.
const MODELS_CREATED: u64 = 1_700_000_000;

/// Settings every request starts from; a request's directives and `mock` object override them.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// Delay between stream chunks, in milliseconds.
    pub chunk_delay_ms: u64,
    /// Delay before the response headers are sent, in milliseconds.
    pub first_byte_delay_ms: u64,
    /// Number of content pieces in a stream; `None` streams one word per chunk.
    pub chunks: Option<usize>,
    /// Assistant text; `None` echoes the last user message.
    pub content: Option<String>,
    /// Root of the recorded fixtures (`<provider>/<case>/`) that `fixture--<provider>--<case>`
    /// model ids replay; `None` turns replay off (such models get a 404).
    pub fixtures_dir: Option<PathBuf>,
    /// Keep no request log: a load test's mock then spends nothing on the log (parsing and
    /// copying every request) that the tests' mock needs.
    pub no_record: bool,
}

/// One request as the mock received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Null` when it is empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// Value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Handle on a mock router's shared state: its defaults, counters and request log.
#[derive(Clone, Debug)]
pub struct MockState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MockConfig,
    requests: Mutex<Vec<RecordedRequest>>,
    completions: AtomicU64,
    tool_calls: AtomicU64,
    failures: Mutex<HashMap<String, u64>>,
}

impl MockState {
    fn new(config: MockConfig) -> Self {
        let inner = Inner {
            config,
            requests: Mutex::default(),
            completions: AtomicU64::new(0),
            tool_calls: AtomicU64::new(0),
            failures: Mutex::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The defaults requests start from.
    pub fn config(&self) -> &MockConfig {
        &self.inner.config
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    fn record(&self, request: RecordedRequest) {
        let mut requests = lock(&self.inner.requests);
        if requests.len() >= MAX_RECORDED {
            // A long-running mock (demo mode, load tests) keeps only the recent past.
            let excess = requests.len() + 1 - MAX_RECORDED;
            requests.drain(..excess);
        }
        requests.push(request);
    }

    fn next_completion(&self) -> u64 {
        self.inner.completions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn next_tool_call(&self) -> u64 {
        self.inner.tool_calls.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts one more request carrying `key` and returns how many have been seen.
    fn count_attempt(&self, key: &str) -> u64 {
        let mut failures = lock(&self.inner.failures);
        let seen = failures.entry(key.to_owned()).or_insert(0);
        *seen += 1;
        *seen
    }
}

/// A poisoned lock only means a handler panicked mid-push; the log itself is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running mock provider; stops when shut down or dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: MockState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl MockServer {
    /// Starts a mock on a free port of 127.0.0.1.
    pub async fn start(config: MockConfig) -> io::Result<MockServer> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a mock on `addr` (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (app, state) = router(config);
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Streams are written chunk by chunk: without TCP_NODELAY each small write waits
            // on the client's delayed ACK.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender means the MockServer is gone: stop as well.
                    let _ = signal.await;
                })
                .await
        });
        Ok(MockServer {
            addr,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL to configure as the provider's API base, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// The shared state (config, request log) behind this server.
    pub fn state(&self) -> &MockState {
        &self.state
    }

    /// Stops accepting connections and waits (bounded) for in-flight responses to finish.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Drop cannot wait for a graceful end, so free the listener right away.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The mock's routes, for mounting in an existing server, and the handle on their state.
pub fn router(config: MockConfig) -> (Router, MockState) {
    let record_requests = !config.no_record;
    let state = MockState::new(config);
    let app = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/messages", post(anthropic::messages))
        .route("/v1/responses", post(responses::responses))
        .route("/responses", post(responses::responses))
        .route("/v1/embeddings", post(embeddings::openai))
        .route("/embeddings", post(embeddings::openai))
        .route("/v1beta/models/{target}", post(gemini::generate))
        .route("/v1beta/models", get(gemini_models))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/mock/requests", get(list_requests).delete(clear_requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let app = if record_requests {
        app.layer(middleware::from_fn_with_state(state.clone(), record))
    } else {
        app
    };
    let app = app
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    (app, state)
}

/// Logs the request before any handler runs, so even rejected requests show up in the log.
async fn record(State(state): State<MockState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let message = format!("Could not read the request body: {err}");
            return format_of(parts.uri.path()).bad_request(&message);
        }
    };
    // The control endpoints stay out of the log: tests read it to see what the gateway sent.
    if !parts.uri.path().starts_with("/mock/") {
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        state.record(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn models() -> Json<Value> {
    let data: Vec<Value> = MODEL_IDS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": MODELS_CREATED, "owned_by": "opengateway-mock"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Gemini's model list (`{"models": [{"name": "models/<id>", ...}]}`), for the gateway's probes.
async fn gemini_models() -> Json<Value> {
    let models: Vec<Value> = MODEL_IDS
        .iter()
        .map(|id| json!({"name": format!("models/{id}"), "displayName": id, "supportedGenerationMethods": ["generateContent"]}))
        .collect();
    Json(json!({"models": models}))
}

async fn list_requests(State(state): State<MockState>) -> Json<Vec<RecordedRequest>> {
    Json(state.requests())
}

async fn clear_requests(State(state): State<MockState>) -> StatusCode {
    state.clear_requests();
    StatusCode::NO_CONTENT
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let message = format!("Invalid URL ({method} {})", uri.path());
    format_of(uri.path()).route_error(StatusCode::NOT_FOUND, &message)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let message = format!("Method not allowed ({method} {})", uri.path());
    format_of(uri.path()).route_error(StatusCode::METHOD_NOT_ALLOWED, &message)
}

/// The wire format whose error shape suits a path nothing else answered.
fn format_of(path: &str) -> Format {
    if path.starts_with("/v1beta/") {
        Format::Gemini
    } else if path.starts_with("/v1/messages") || path.starts_with("/messages") {
        Format::Anthropic
    } else {
        Format::OpenAi
    }
}
