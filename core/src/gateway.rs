//! The facade every surface calls: resolve a model to ordered targets, send to each in turn
//! through its provider adapter, and return the OpenAI-shaped answer with the route it took.

mod embeddings;
mod passthrough;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use serde::Serialize;

use crate::accounting::{
    Budgets, CallContext, Ending, Ledger, MemorySink, Opening, RateLimits, RecordStatus,
    RequestEndHook, Ticket, UsageFilter, UsageQuery, UsageRecord, UsageTotals, tokens,
};
use crate::catalog::Catalog;
use crate::config::{Config, LedgerStore, Strategy};
use crate::error::{Attempt, Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::pricing::{PriceCache, PriceTag};
use crate::providers::anthropic::AnthropicProvider;
use crate::providers::gemini::GeminiProvider;
use crate::providers::openai::OpenAiProvider;
use crate::providers::{Provider, ProviderType, StreamContext, StreamDecoder};
use crate::router::{
    self, AliasPlan, Decision, InFlight, PlannedTarget, Router, TargetState, classify,
};
use crate::transport::{SseStream, Transport, sse_events};
use crate::types::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ContentPart,
    JsonObject, MessageContent, Usage,
};

mod key_access;

/// Where a request was served and every attempt made on the way.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Route {
    /// The provider id that served the request.
    pub provider: String,
    /// The model name sent to that provider.
    pub model: String,
    /// Every attempt, failed ones first, the successful one last.
    pub attempts: Vec<Attempt>,
    /// Targets left out because their circuit was open (`provider/model`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// A completion together with the route that produced it.
#[derive(Debug, Clone)]
pub struct Routed<T> {
    /// The answer.
    pub response: T,
    /// How it was obtained.
    pub route: Route,
    /// The id of the request's usage record.
    pub request_id: String,
}

impl<T> std::ops::Deref for Routed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.response
    }
}

/// A chat completion as JSON text, for callers that send it on as JSON (the server, the
/// bindings): the JSON value a [`ChatCompletion`] serializes to, as the provider wrote it when it
/// speaks OpenAI's format ([`Gateway::chat_json_with`]).
#[derive(Debug, Clone)]
pub struct ChatJson {
    /// The completion's JSON text.
    pub json: String,
    /// Its usage, with the cost; `None` when the provider reported none.
    pub usage: Option<Usage>,
}

/// An answer as it came from the provider: decoded, or passed through.
// Not boxed: returned once and taken apart at once, never held across an await.
#[allow(clippy::large_enum_variant)]
enum Upstream {
    Decoded(ChatCompletion),
    Passed(passthrough::PassedAnswer),
}

/// A non-streamed answer: decoded, or as JSON text.
// Not boxed, for the reason given at `Upstream`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Answer {
    Decoded(ChatCompletion),
    Json(ChatJson),
}

/// The form a caller takes a non-streamed answer in: decoded, or as JSON text.
pub(crate) trait AnswerForm: Sized {
    /// The answer may stay the provider's JSON text.
    const AS_JSON: bool;

    /// The answer in this form.
    fn from_answer(answer: Answer) -> Result<Self>;
}

impl AnswerForm for ChatCompletion {
    const AS_JSON: bool = false;

    fn from_answer(answer: Answer) -> Result<Self> {
        match answer {
            Answer::Decoded(completion) => Ok(completion),
            Answer::Json(answer) => serde_json::from_str(&answer.json).map_err(encoding_error),
        }
    }
}

impl AnswerForm for ChatJson {
    const AS_JSON: bool = true;

    fn from_answer(answer: Answer) -> Result<Self> {
        match answer {
            Answer::Decoded(completion) => Ok(ChatJson {
                json: serde_json::to_string(&completion).map_err(encoding_error)?,
                usage: completion.usage,
            }),
            Answer::Json(answer) => Ok(answer),
        }
    }
}

fn encoding_error(e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::InternalServer,
        format!("cannot encode the answer: {e}"),
    )
}

/// One `provider/model` target of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Provider id.
    pub provider: String,
    /// Model name at that provider.
    pub model: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// A provider entry as the gateway holds it: its adapter, or why it cannot be used.
#[derive(Debug)]
pub(crate) struct ProviderEntry {
    /// The provider's id in the configuration.
    id: String,
    pub(crate) kind: ProviderType,
    adapter: Option<Arc<dyn Provider>>,
    problem: Option<String>,
    timeout: Duration,
    ttft_timeout: Option<Duration>,
    /// A client of its own when the provider sets `connect_timeout_ms` (reqwest fixes the
    /// connect timeout per client); otherwise the gateway's shared one is used.
    transport: Option<Transport>,
    /// `"provider":"<id>"`, the member that answers and chunks passed through get.
    provider_member: Arc<str>,
}

/// Health of one provider, as `GET /health` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHealth {
    /// Provider id.
    pub id: String,
    /// Provider type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ok`, `error` (reachable config, failing probe) or `unusable` (bad or missing config).
    pub status: String,
    /// Probe latency, when probed.
    pub latency_ms: Option<u64>,
    /// What is wrong, when not ok.
    pub error: Option<String>,
    /// The last failure of a request sent to this provider (real traffic), if any.
    pub last_error: Option<String>,
    /// When that failure happened, in Unix milliseconds.
    pub last_error_at_ms: Option<i64>,
}

/// The gateway's health: one entry per provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// `ok` when every provider answers, `degraded` when some do, else `unavailable`.
    pub status: String,
    /// Per-provider checks.
    pub providers: Vec<ProviderHealth>,
    /// Routing state of every target used so far (circuit, load, latency).
    pub targets: Vec<TargetState>,
}

impl HealthReport {
    /// Whether anything can serve requests.
    pub fn is_healthy(&self) -> bool {
        self.status != "unavailable"
    }
}

/// A model the gateway can serve, for `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    /// `provider/model` or an alias name.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix time the entry was listed.
    pub created: u64,
    /// The provider id, or `opengateway` for aliases.
    pub owned_by: String,
}

/// What a request of any endpoint brings to its acceptance ([`Gateway::admit`]).
pub(crate) struct Admission<'a> {
    /// The ledger's endpoint name (`chat.completions`, `embeddings`, ...).
    pub endpoint: &'a str,
    pub stream: bool,
    /// The model asked for, and the request's own fallbacks.
    pub model: &'a str,
    pub fallbacks: Option<&'a [String]>,
    /// The request's `user` and `metadata` (tags).
    pub user: Option<&'a str>,
    pub metadata: Option<&'a JsonObject>,
    pub size: tokens::PromptSize,
    /// The most output tokens per choice, when the request caps them.
    pub max_output: Option<u64>,
    pub choices: u64,
}

/// The in-process gateway: cheap to clone, safe to share between tasks and threads.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    providers: BTreeMap<String, ProviderEntry>,
    aliases: HashMap<String, AliasPlan>,
    transport: Transport,
    router: Router,
    catalog: Catalog,
    /// What [`Gateway::price`] resolved from the catalog.
    prices: PriceCache,
    ledger: Ledger,
    budgets: Arc<Budgets>,
    metrics: Arc<Metrics>,
    /// The last live probes of `/health`, reused for [`HEALTH_PROBE_TTL`].
    probes: tokio::sync::Mutex<Option<(Instant, Probes)>>,
    /// Per-key requests and tokens per minute.
    rate_limits: Arc<RateLimits>,
}

/// Each usable provider's model-list probe: latency and outcome.
type Probes = Vec<(String, (u64, Result<Vec<String>>))>;

/// How long `/health` reuses its live provider probes, so that frequent health checks (a load
/// balancer's, every second) do not turn into as many requests to every provider.
pub const HEALTH_PROBE_TTL: Duration = Duration::from_secs(5);

impl Gateway {
    /// Builds a gateway from a configuration. Providers named in `providers:` come first; every
    /// built-in type whose standard key variable is set (`OPENAI_API_KEY`, ...) and which the
    /// config does not already use as an id is added too.
    ///
    /// The usage ledger is the one `ledger.database` names (in memory by default); records
    /// that a killed process left pending in it are marked interrupted.
    pub fn from_config(config: Config) -> Result<Self> {
        let ledger = match config
            .ledger
            .store()
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?
        {
            LedgerStore::Memory => Ledger::new(
                Arc::new(MemorySink::with_max_records(
                    config
                        .ledger
                        .max_records
                        .unwrap_or(crate::accounting::DEFAULT_MEMORY_RECORDS),
                )),
                crate::accounting::new_instance_id(),
            ),
            LedgerStore::Sqlite(path) => open_sqlite_ledger(&path)?,
        };
        Self::from_config_with_ledger(config, ledger)
    }

    /// Builds a gateway that records usage in `ledger` (any [`crate::accounting::LedgerSink`]).
    pub fn from_config_with_ledger(config: Config, ledger: Ledger) -> Result<Self> {
        let router = &config.router;
        let transport = Transport::new(
            Duration::from_millis(router.connect_timeout_ms),
            Duration::from_millis(router.timeout_ms),
        )?;
        let default_timeout = Duration::from_millis(router.timeout_ms);
        let mut providers = BTreeMap::new();
        for (id, p) in &config.providers {
            // `validate` guarantees a type is either given or the id itself.
            let Some(kind) = p.kind.or_else(|| ProviderType::parse(id)) else {
                continue;
            };
            let headers: Vec<(String, String)> = p
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let timeout = p
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(default_timeout);
            let mut entry = build_entry(
                id,
                kind,
                p.api_base.as_deref(),
                p.api_key.as_deref(),
                &headers,
                timeout,
            )?;
            entry.ttft_timeout = p.ttft_timeout_ms.map(Duration::from_millis);
            if let Some(connect) = p.connect_timeout_ms {
                entry.transport = Some(Transport::new(
                    Duration::from_millis(connect),
                    Duration::from_millis(router.timeout_ms),
                )?);
            }
            providers.insert(id.clone(), entry);
        }
        for kind in ProviderType::all() {
            let Some(var) = kind.key_env() else { continue };
            let Ok(key) = std::env::var(var) else {
                continue;
            };
            if key.is_empty() || providers.contains_key(kind.name()) {
                continue;
            }
            let base_var = format!("{}_API_BASE", kind.name().to_uppercase());
            let base = std::env::var(&base_var)
                .ok()
                .or_else(|| {
                    (kind == ProviderType::Openai)
                        .then(|| std::env::var("OPENAI_BASE_URL").ok())
                        .flatten()
                })
                .filter(|b| !b.is_empty());
            let entry = build_entry(
                kind.name(),
                kind,
                base.as_deref(),
                Some(&key),
                &[],
                default_timeout,
            )?;
            providers.insert(kind.name().to_owned(), entry);
        }
        let mut aliases = HashMap::new();
        for (i, alias) in config.models.iter().enumerate() {
            let mut targets = Vec::new();
            for (j, entry) in alias.targets.iter().enumerate() {
                let t = entry.target();
                let (provider, model) = t.split_once('/').unwrap_or((t, ""));
                if !providers.contains_key(provider) {
                    return Err(Error::new(
                        ErrorKind::BadRequest,
                        format!(
                            "config error at `models[{i}].targets[{j}]`: provider `{provider}` is not configured (add it under `providers:` or set its key variable)"
                        ),
                    ));
                }
                // Under `fallback` the list order is the priority; balanced strategies put
                // every target in one group unless a priority is given.
                let default_priority = match alias.strategy {
                    Strategy::Fallback => i64::try_from(j).unwrap_or(i64::MAX),
                    _ => 0,
                };
                targets.push(PlannedTarget {
                    target: Target {
                        provider: provider.to_owned(),
                        model: model.to_owned(),
                    },
                    weight: entry.weight(),
                    priority: entry.priority().unwrap_or(default_priority),
                });
            }
            aliases.insert(
                alias.name.clone(),
                AliasPlan {
                    targets,
                    strategy: alias.strategy,
                    sticky: alias.sticky,
                },
            );
        }
        let router = Router::new(config.router.clone());
        let catalog = Catalog::for_config(&config).map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("config error at `pricing.catalog_file`: {e}"),
            )
        })?;
        let budgets = Arc::new(Budgets::new(config.budgets.clone()));
        if let Some(days) = config.ledger.retention_days {
            ledger.set_retention(days);
        }
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                providers,
                aliases,
                transport,
                router,
                catalog,
                prices: PriceCache::default(),
                ledger,
                budgets,
                metrics: Arc::new(Metrics::new()),
                probes: tokio::sync::Mutex::new(None),
                rate_limits: Arc::default(),
            }),
        })
    }

    /// Builds a gateway from a YAML file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let config = Config::from_file(path)
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?;
        Self::from_config(config)
    }

    /// The HTTP client of a provider entry: its own, else the gateway's shared one.
    pub(crate) fn transport_of<'a>(&'a self, entry: &'a ProviderEntry) -> &'a Transport {
        entry.transport.as_ref().unwrap_or(&self.inner.transport)
    }

    /// The configuration the gateway was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The usage ledger every request is recorded in.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The spending caps in force (add or change them at run time with [`Budgets::set`]).
    pub fn budgets(&self) -> &Budgets {
        &self.inner.budgets
    }

    /// Ledger totals grouped and filtered as asked (e.g. by model and day).
    pub fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>> {
        self.inner.ledger.totals(query).map_err(ledger_error)
    }

    /// Ledger records a filter covers, newest first, at most `limit`.
    pub fn usage_records(&self, filter: &UsageFilter, limit: usize) -> Result<Vec<UsageRecord>> {
        self.inner
            .ledger
            .records(filter, limit)
            .map_err(ledger_error)
    }

    /// Calls `hook` with the full record of every request once it has ended (on a thread of
    /// the ledger's own, so it never delays a response).
    pub fn on_request_end(&self, hook: impl Fn(&UsageRecord) + Send + Sync + 'static) {
        let hook: RequestEndHook = Arc::new(hook);
        self.inner.ledger.on_request_end(hook);
    }

    /// The gateway's metrics in the OpenMetrics text format (Prometheus scrapes it; the
    /// `Content-Type` to serve it with is [`crate::metrics::CONTENT_TYPE`]).
    pub fn metrics(&self) -> String {
        let cooled = self
            .target_states()
            .iter()
            .filter(|t| t.reopens_in_ms.is_some_and(|ms| ms > 0))
            .count();
        self.inner.metrics.set_cooled_down(cooled);
        self.inner.metrics.render()
    }

    /// One ledger record by request id.
    pub fn usage_record(&self, id: &str) -> Result<Option<UsageRecord>> {
        self.inner.ledger.record(id).map_err(ledger_error)
    }

    /// The request and response bodies kept for a request (only with `server.log_bodies`).
    pub fn request_bodies(&self, id: &str) -> Result<Option<crate::accounting::RequestBodies>> {
        self.inner.ledger.bodies(id).map_err(ledger_error)
    }

    /// Waits until every record so far is written to the ledger's store.
    pub async fn flush(&self) {
        self.inner.ledger.flush_async().await;
    }

    /// Whether at least one provider is configured without known problems.
    pub fn has_usable_provider(&self) -> bool {
        self.inner.providers.values().any(|p| p.problem.is_none())
    }

    /// The targets for `model` plus the request's fallback `models`, in the order they will be
    /// tried for this request (priority groups, strategy, stickiness).
    pub fn resolve(&self, request: &ChatCompletionRequest) -> Result<Vec<Target>> {
        self.plan(request, router::sticky_key(request))
    }

    pub(crate) fn plan(
        &self,
        request: &ChatCompletionRequest,
        sticky: Option<u64>,
    ) -> Result<Vec<Target>> {
        if request.model.trim().is_empty() {
            return Err(Error::invalid_param(
                "model",
                "`model` is required and must not be empty",
            ));
        }
        let mut targets = self.resolve_one(&request.model, "model", sticky)?;
        for (i, m) in request.models.iter().flatten().enumerate() {
            for t in self.resolve_one(m, &format!("models[{i}]"), sticky)? {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        Ok(targets)
    }

    fn resolve_one(&self, model: &str, param: &str, sticky: Option<u64>) -> Result<Vec<Target>> {
        if let Some(alias) = self.inner.aliases.get(model) {
            return Ok(self.inner.router.order(alias, sticky));
        }
        let not_found = |hint: String| Error::model_not_found(model, &hint).with_param(param);
        match model.split_once('/') {
            Some((provider, name)) if !provider.is_empty() && !name.is_empty() => {
                if self.inner.providers.contains_key(provider) {
                    Ok(vec![Target {
                        provider: provider.to_owned(),
                        model: name.to_owned(),
                    }])
                } else {
                    Err(not_found(format!(
                        "No provider `{provider}` is configured; configured providers: {}.",
                        self.provider_list()
                    )))
                }
            }
            _ => Err(not_found(format!(
                "Use `provider/model` (configured providers: {}) or an alias{}.",
                self.provider_list(),
                self.alias_hint()
            ))),
        }
    }

    fn provider_list(&self) -> String {
        if self.inner.providers.is_empty() {
            "none".to_owned()
        } else {
            self.inner
                .providers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn alias_hint(&self) -> String {
        let mut names: Vec<&str> = self.inner.aliases.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    }

    pub(crate) fn adapter(&self, target: &Target) -> Result<(&ProviderEntry, Arc<dyn Provider>)> {
        let entry = self.inner.providers.get(&target.provider).ok_or_else(|| {
            Error::model_not_found(&target.provider, "No such provider is configured.")
        })?;
        match (&entry.adapter, &entry.problem) {
            (Some(adapter), None) => Ok((entry, adapter.clone())),
            (_, problem) => Err(Error::new(
                ErrorKind::ServiceUnavailable,
                format!(
                    "provider `{}` cannot be used: {}",
                    target.provider,
                    problem.as_deref().unwrap_or("it has no adapter")
                ),
            )
            .with_provider(target.provider.as_str())),
        }
    }

    /// Answers a chat completion without streaming, trying each target in order.
    pub async fn chat(&self, request: ChatCompletionRequest) -> Result<Routed<ChatCompletion>> {
        self.chat_with(request, &CallContext::default()).await
    }

    /// [`Gateway::chat`] for a caller: the key, user and tags the ledger records and budgets
    /// charge.
    pub fn chat_with(
        &self,
        request: ChatCompletionRequest,
        context: &CallContext,
    ) -> impl Future<Output = Result<Routed<ChatCompletion>>> {
        // Not an `async fn`: a future of its own would keep a second copy of the request's
        // slot (~1 KB) beside `chat_as`'s for as long as the request is in flight.
        self.chat_as(request, context, "chat.completions")
    }

    /// [`Gateway::chat_with`] for a caller that sends the answer on as JSON: an answer in
    /// OpenAI's own format goes on as the provider wrote it, with the gateway's changes
    /// (`provider`, `usage.cost`), rather than decoded and serialized again.
    pub fn chat_json_with(
        &self,
        request: ChatCompletionRequest,
        context: &CallContext,
    ) -> impl Future<Output = Result<Routed<ChatJson>>> {
        // The answer's future itself, not one that awaits it: a future that holds another and
        // then awaits it keeps two copies of it (~4 KB each).
        self.chat_as(request, context, "chat.completions")
    }

    /// An answer to `request` in the form `A`, recorded as a call of `endpoint`.
    // Not an `async fn` but an `async move` block: an `async fn` moves its arguments into
    // locals of its own, so the request (~1 KB) would be held twice while in flight.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn chat_as<A: AnswerForm>(
        &self,
        mut request: ChatCompletionRequest,
        context: &CallContext,
        endpoint: &str,
    ) -> impl Future<Output = Result<Routed<A>>> {
        async move {
            validate_request(&request)?;
            request.stream = None;
            request.stream_options = None;
            let sticky = router::sticky_key(&request);
            let targets = self.plan(&request, sticky)?;
            // Boxed: admission's future (~2.8 KB) is done before the upstream call, and inline it
            // would size this future, held for the request's whole life.
            let mut ticket =
                Box::pin(self.accept(&request, &targets, context, endpoint, false)).await?;
            let (answer, route) = self
                .run_targets(&mut ticket, &targets, sticky, |target, in_flight| {
                    let request = &request;
                    async move {
                        self.answer_once(request, target, in_flight, A::AS_JSON)
                            .await
                    }
                })
                .await?;
            let price = self.price(&route.provider, &route.model);
            let (answer, usage, completion_estimate) = match answer {
                Upstream::Decoded(mut response) => {
                    stamp_answer(&mut response, &route.provider, &route.model);
                    if let Some(usage) = response.usage.as_mut() {
                        usage.cost = Some(price.cost(usage).total_usd);
                    }
                    let completion_estimate = if response.usage.is_none() {
                        response
                            .choices
                            .iter()
                            .map(|c| message_estimate(&c.message))
                            .sum()
                    } else {
                        0
                    };
                    let usage = response.usage.clone();
                    (Answer::Decoded(response), usage, completion_estimate)
                }
                // The pass-through made the same changes ([`passthrough`]) but the cost.
                Upstream::Passed(mut passed) => {
                    if let Some(usage) = passed.usage.as_mut() {
                        usage.cost = Some(price.cost(usage).total_usd);
                    }
                    let usage = passed.usage.clone();
                    let completion_estimate = if usage.is_none() {
                        passed.output_estimate
                    } else {
                        0
                    };
                    let json = match passed.into_json() {
                        Ok(json) => json,
                        Err(e) => {
                            let e = encoding_error(e);
                            ticket.settle(Ending::failed(&e));
                            return Err(e);
                        }
                    };
                    let answer = ChatJson {
                        json,
                        usage: usage.clone(),
                    };
                    (Answer::Json(answer), usage, completion_estimate)
                }
            };
            let response_body = match &answer {
                Answer::Json(answer) if self.inner.config.server.log_bodies => {
                    Some(answer.json.clone())
                }
                Answer::Json(_) => None,
                Answer::Decoded(response) => self.kept_body(response),
            };
            ticket.settle(Ending {
                usage,
                completion_estimate,
                response_body,
                ..served(&route, price)
            });
            Ok(Routed {
                response: A::from_answer(answer)?,
                route,
                request_id: ticket.id().to_owned(),
            })
        }
    }

    /// `value` as JSON, to keep with its record when `server.log_bodies` is on.
    pub(crate) fn kept_body(&self, value: &impl Serialize) -> Option<String> {
        self.inner
            .config
            .server
            .log_bodies
            .then(|| serde_json::to_string(value).ok())
            .flatten()
    }

    /// Answers a chat completion as a stream of chunks. Fallback to the next target happens
    /// only before the first chunk; a failure after that ends the stream with an error item.
    pub async fn chat_stream(&self, request: ChatCompletionRequest) -> Result<ChatStream> {
        self.chat_stream_with(request, &CallContext::default())
            .await
    }

    /// [`Gateway::chat_stream`] for a caller (see [`Gateway::chat_with`]).
    pub fn chat_stream_with(
        &self,
        request: ChatCompletionRequest,
        context: &CallContext,
    ) -> impl Future<Output = Result<ChatStream>> {
        // Not an `async fn`, for the reason given at `chat_with`.
        self.chat_stream_as(request, context, "chat.completions")
    }

    // Not an `async fn`, for the reason given at `chat_as`.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn chat_stream_as(
        &self,
        mut request: ChatCompletionRequest,
        context: &CallContext,
        endpoint: &str,
    ) -> impl Future<Output = Result<ChatStream>> {
        async move {
            validate_request(&request)?;
            request.stream = Some(true);
            let sticky = router::sticky_key(&request);
            let targets = self.plan(&request, sticky)?;
            let client_wants_usage = request
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false);
            // Usage is always asked of the provider, so the stream can be costed; the client sees
            // the usage chunk only if it asked for it.
            let decoding = StreamContext {
                include_usage: true,
            };
            // Boxed, for the reason given at `chat_as`.
            let mut ticket =
                Box::pin(self.accept(&request, &targets, context, endpoint, true)).await?;
            let (started, route) = self
                .run_targets(&mut ticket, &targets, sticky, |target, in_flight| {
                    let request = &request;
                    async move {
                        self.stream_once(request, target, decoding, client_wants_usage, in_flight)
                            .await
                    }
                })
                .await?;
            Ok(ChatStream {
                ttft: ticket.elapsed(),
                request_id: ticket.id().to_owned(),
                route,
                inner: Box::into_pin(started),
                ticket: Some(ticket),
                sent: self.inner.config.server.log_bodies.then(Vec::new),
            })
        }
    }

    /// Checks the caller's key (models, rate limits), opens the request's ledger record and
    /// reserves its worst-case cost on its budgets.
    pub(crate) async fn accept(
        &self,
        request: &ChatCompletionRequest,
        targets: &[Target],
        context: &CallContext,
        endpoint: &str,
        stream: bool,
    ) -> Result<Ticket> {
        self.admit(
            Admission {
                endpoint,
                stream,
                model: &request.model,
                fallbacks: request.models.as_deref(),
                user: request.user.as_deref(),
                metadata: request.metadata.as_ref(),
                size: tokens::prompt_size(request),
                max_output: request
                    .max_completion_tokens
                    .or(request.max_tokens)
                    .map(u64::from),
                choices: u64::from(request.n.unwrap_or(1)),
            },
            request,
            targets,
            context,
        )
        .await
    }

    /// Accepts a request of any endpoint: checks the caller's key, then opens its ticket with
    /// the worst case reserved (the prompt's bound and `max_output` at the dearest rates of
    /// every target it may reach). `body` is kept when `server.log_bodies` is on.
    pub(crate) async fn admit(
        &self,
        admission: Admission<'_>,
        body: &impl Serialize,
        targets: &[Target],
        context: &CallContext,
    ) -> Result<Ticket> {
        let Admission {
            endpoint,
            stream,
            model,
            fallbacks,
            user,
            metadata,
            size,
            max_output,
            choices,
        } = admission;
        let limit_hold = self.admit_key(context, model, fallbacks, size.estimate)?;
        let prices: Vec<PriceTag> = targets
            .iter()
            .map(|t| self.price(&t.provider, &t.model))
            .collect();
        let budgeted = !self.inner.budgets.is_empty();
        let worst_usd = if budgeted {
            prices
                .iter()
                .map(|p| p.worst_case(size.bound, max_output, choices))
                .fold(0.0, f64::max)
        } else {
            0.0
        };
        let target_ids: Vec<String> = if budgeted {
            targets.iter().map(Target::to_string).collect()
        } else {
            Vec::new()
        };
        let request_body = self.kept_body(body);
        Ticket::open(
            &self.inner.ledger,
            &self.inner.budgets,
            Opening {
                endpoint,
                stream,
                model,
                context,
                request_user: user,
                request_tags: metadata_tags(metadata),
                prompt_estimate: size.estimate,
                first_price: prices.into_iter().next().unwrap_or_default(),
                targets: &target_ids,
                worst_usd,
                metrics: &self.inner.metrics,
                first_target: targets.first().map(Target::to_string),
                request_body,
                limit_hold,
            },
        )
        .await
    }

    /// [`Gateway::try_targets`] for the request of `ticket`, which a failure settles.
    pub(crate) async fn run_targets<'a, T, F, Fut>(
        &'a self,
        ticket: &mut Ticket,
        targets: &'a [Target],
        sticky: Option<u64>,
        attempt: F,
    ) -> Result<(T, Route)>
    where
        F: FnMut(&'a Target, InFlight) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Duration)>>,
    {
        let outcome = self.try_targets(targets, sticky, attempt).await;
        if let Err(e) = &outcome {
            ticket.settle(Ending::failed(e));
        }
        outcome
    }

    /// Tries the targets in order (see [`router`] for the classification table and the
    /// circuits): retry-class failures are retried on the same target up to `router.retries`
    /// times, next-target failures move on, fail-now errors end the request. Targets whose
    /// circuit is open are skipped; if that leaves none, the one that reopens first is tried.
    async fn try_targets<'a, T, F, Fut>(
        &'a self,
        targets: &'a [Target],
        sticky: Option<u64>,
        mut attempt: F,
    ) -> Result<(T, Route)>
    where
        F: FnMut(&'a Target, InFlight) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Duration)>>,
    {
        let router = &self.inner.router;
        let retries = self.inner.config.router.retries;
        let mut attempts = Vec::new();
        let mut skipped: Vec<&Target> = Vec::new();
        let mut errors: Vec<Error> = Vec::new();
        let mut queue: Vec<(&Target, bool)> = targets.iter().map(|t| (t, false)).collect();
        let mut next = 0;
        while next < queue.len() {
            let (target, force) = queue[next];
            next += 1;
            let mut tries = 0;
            loop {
                let Some(admitted) = router.admit(target, force) else {
                    if tries == 0 {
                        skipped.push(target);
                    }
                    break;
                };
                let started = Instant::now();
                let outcome = attempt(target, admitted.in_flight).await;
                let latency_ms = elapsed_ms(started);
                match outcome {
                    Ok((value, ttfb)) => {
                        router.record_success(target, ttfb);
                        drop(admitted.probe);
                        if let Some(key) = sticky {
                            router.remember(key, target);
                        }
                        attempts.push(Attempt {
                            provider: target.provider.clone(),
                            model: target.model.clone(),
                            status: Some(200),
                            error_type: None,
                            error_message: None,
                            latency_ms,
                        });
                        let route = Route {
                            provider: target.provider.clone(),
                            model: target.model.clone(),
                            attempts,
                            skipped: skipped
                                .iter()
                                .filter(|t| **t != target)
                                .map(|t| t.to_string())
                                .collect(),
                        };
                        return Ok((value, route));
                    }
                    Err(err) => {
                        if router.record_failure(target, &err) {
                            self.inner
                                .metrics
                                .circuit_opened(&target.provider, &target.model);
                        }
                        drop(admitted.probe);
                        // A status the provider sent, or a 4xx of the gateway's own; not the
                        // 502/504 that stand for "no answer".
                        let answered = err.is_provider_answer() || err.status() < 500;
                        attempts.push(Attempt {
                            provider: target.provider.clone(),
                            model: target.model.clone(),
                            status: answered.then_some(err.status()),
                            error_type: err.to_body().error.kind,
                            error_message: Some(err.message().to_owned()),
                            latency_ms,
                        });
                        let decision = classify(&err);
                        if decision == Decision::FailNow {
                            return Err(err.with_attempts(attempts));
                        }
                        let retry = decision == Decision::RetryThenNext && tries < retries;
                        let wait = router.backoff(tries, err.retry_after());
                        errors.push(err);
                        if !retry {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                        tries += 1;
                    }
                }
            }
            if next == queue.len() && errors.is_empty() && !skipped.is_empty() {
                // Every target is cooling down: try the one that reopens first rather than
                // refuse the request.
                let soonest = skipped.iter().min_by_key(|t| router.reopens_at(t)).copied();
                if let Some(t) =
                    soonest.filter(|t| !queue[..next].iter().any(|(q, f)| q == t && *f))
                {
                    queue.push((t, true));
                }
            }
        }
        Err(most_relevant(errors).with_attempts(attempts))
    }

    /// The prices of `provider/model` (by provider type, then model), and the platform fee.
    pub(crate) fn price(&self, provider: &str, model: &str) -> PriceTag {
        self.inner.prices.get_or_resolve(provider, model, || {
            let catalog = &self.inner.catalog;
            // The provider id first (a config's own prices for `local/llama`), then its type
            // (`openai/gpt-4o` whatever the id).
            let kind = self.inner.providers.get(provider).map(|e| e.kind.name());
            let info = catalog
                .lookup(provider, model)
                .or_else(|| kind.and_then(|k| catalog.lookup(k, model)))
                .cloned();
            PriceTag {
                info: info.map(Arc::new),
                fee_percent: self.inner.config.pricing.platform_fee_percent,
            }
        })
    }

    /// The first-byte and total time limits of one attempt: the request's own, else the
    /// provider's, else the router's.
    pub(crate) fn time_limits(
        &self,
        entry: &ProviderEntry,
        request: &ChatCompletionRequest,
    ) -> (Duration, Duration) {
        let total = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(entry.timeout);
        let first_byte = request
            .ttft_timeout_ms
            .map(Duration::from_millis)
            .or(entry.ttft_timeout)
            .or(self
                .inner
                .config
                .router
                .ttft_timeout_ms
                .map(Duration::from_millis))
            .unwrap_or(total)
            .min(total);
        (first_byte, total)
    }

    /// One decoded answer from `target`.
    pub(crate) async fn chat_once(
        &self,
        request: &ChatCompletionRequest,
        target: &Target,
        in_flight: InFlight,
    ) -> Result<(ChatCompletion, Duration)> {
        let (answer, ttfb) = self.answer_once(request, target, in_flight, false).await?;
        let completion = match answer {
            Upstream::Decoded(completion) => completion,
            Upstream::Passed(passed) => {
                serde_json::from_str(&passed.into_json().map_err(encoding_error)?)
                    .map_err(encoding_error)?
            }
        };
        Ok((completion, ttfb))
    }

    /// One answer from `target`: as the provider wrote it when `as_json` and it can go on so
    /// ([`passthrough::pass_answer`]), else decoded.
    async fn answer_once(
        &self,
        request: &ChatCompletionRequest,
        target: &Target,
        _in_flight: InFlight,
        as_json: bool,
    ) -> Result<(Upstream, Duration)> {
        let (entry, adapter) = self.adapter(target)?;
        let (first_byte, total) = self.time_limits(entry, request);
        let started = Instant::now();
        let inlined;
        let request = if adapter.needs_image_bytes() {
            inlined = Box::pin(self.inline_images(request)).await?;
            &inlined
        } else {
            request
        };
        let upstream = adapter.encode_chat(request, &target.model, false)?;
        let transport = entry.transport.as_ref().unwrap_or(&self.inner.transport);
        let response = transport.send(adapter.id(), upstream, first_byte).await?;
        let ttfb = started.elapsed();
        let status = response.status().as_u16();
        // Only an error's decoding reads the headers (its retry-after).
        let error_headers = (!(200..300).contains(&status)).then(|| response.headers().clone());
        let remaining = (started + total).saturating_duration_since(Instant::now());
        let body = transport
            .read_body(adapter.id(), response, remaining)
            .await?;
        if let Some(headers) = error_headers {
            return Err(adapter.decode_error(status, &headers, &body));
        }
        if as_json
            && adapter.answers_in_openai_format()
            && let Some(passed) = passthrough::pass_answer(&body, &entry.provider_member)
        {
            return Ok((Upstream::Passed(passed), ttfb));
        }
        Ok((Upstream::Decoded(adapter.decode_chat(&body)?), ttfb))
    }

    pub(crate) async fn stream_once(
        &self,
        request: &ChatCompletionRequest,
        target: &Target,
        context: StreamContext,
        client_wants_usage: bool,
        in_flight: InFlight,
    ) -> Result<(Box<ChunkStream>, Duration)> {
        let (entry, adapter) = self.adapter(target)?;
        let (first_byte, total) = self.time_limits(entry, request);
        let started = Instant::now();
        let inlined;
        let request = if adapter.needs_image_bytes() {
            inlined = Box::pin(self.inline_images(request)).await?;
            &inlined
        } else {
            request
        };
        let upstream = adapter.encode_chat(request, &target.model, true)?;
        let transport = entry.transport.as_ref().unwrap_or(&self.inner.transport);
        let response = transport.send(adapter.id(), upstream, first_byte).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let remaining = (started + total).saturating_duration_since(Instant::now());
            let body = transport
                .read_body(adapter.id(), response, remaining)
                .await?;
            return Err(adapter.decode_error(status, &headers, &body));
        }
        // Boxed here rather than by the caller: inline, the stream would take room in every
        // future that waits on this one.
        let mut stream = Box::new(ChunkStream::new(
            sse_events(adapter.id(), response),
            adapter.stream_decoder(context),
            entry,
            target.model.clone(),
            in_flight,
            self.price(&target.provider, &target.model),
            client_wants_usage,
        ));
        // Wait for the first chunk here, so that a failure before any byte reaches the client
        // can still fall back to the next target.
        let remaining = (started + first_byte).saturating_duration_since(Instant::now());
        let first = std::future::poll_fn(|cx| stream.poll_ready(cx));
        match tokio::time::timeout(remaining, first).await {
            Ok(Some(Ok(first))) => {
                stream.pending.push_front(first);
                Ok((stream, started.elapsed()))
            }
            Ok(Some(Err(e))) => Err(e),
            Ok(None) => Err(Error::new(
                ErrorKind::Connection,
                format!("provider `{}` sent an empty stream", adapter.id()),
            )
            .with_provider(adapter.id())),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "provider `{}` sent no stream event within {} ms",
                    adapter.id(),
                    first_byte.as_millis()
                ),
            )
            .with_provider(adapter.id())),
        }
    }

    /// Replaces every `http(s)` image URL of the request by a `data:` URL with the image's
    /// bytes, for providers that cannot fetch images themselves. Boxed, like the future that
    /// builds it: a request held inline would grow every request's future (its state while
    /// waiting upstream) by its size, images or not.
    async fn inline_images(
        &self,
        request: &ChatCompletionRequest,
    ) -> Result<Box<ChatCompletionRequest>> {
        let mut request = Box::new(request.clone());
        for (i, message) in request.messages.iter_mut().enumerate() {
            let ChatMessage::User(user) = message else {
                continue;
            };
            let MessageContent::Parts(parts) = &mut user.content else {
                continue;
            };
            for (j, part) in parts.iter_mut().enumerate() {
                let ContentPart::ImageUrl(image) = part else {
                    continue;
                };
                let url = &image.image_url.url;
                if url.starts_with("http://") || url.starts_with("https://") {
                    let param = format!("messages[{i}].content[{j}].image_url.url");
                    image.image_url.url = self.inner.transport.fetch_image(url, &param).await?;
                }
            }
        }
        Ok(request)
    }

    /// Models the gateway can serve: every alias, then each usable provider's own list
    /// (asked live, in parallel; a provider that does not answer in 5 s is left out).
    pub async fn list_models(&self) -> Vec<ModelEntry> {
        let created = unix_now();
        let mut entries: Vec<ModelEntry> = self
            .inner
            .config
            .models
            .iter()
            .map(|a| ModelEntry {
                id: a.name.clone(),
                object: "model",
                created,
                owned_by: "opengateway".to_owned(),
            })
            .collect();
        let probes = self.probe_all(Duration::from_secs(5)).await;
        for (id, outcome) in probes {
            if let (_, Ok(models)) = outcome {
                entries.extend(models.into_iter().map(|m| ModelEntry {
                    id: format!("{id}/{m}"),
                    object: "model",
                    created,
                    owned_by: id.clone(),
                }));
            }
        }
        entries
    }

    /// The routing state of every target used so far: circuit, requests in flight, moving
    /// average time to first byte, counts.
    pub fn target_states(&self) -> Vec<TargetState> {
        self.inner.router.snapshot()
    }

    /// Checks every provider: its configuration, then a live model-list request (reused for
    /// [`HEALTH_PROBE_TTL`]), plus the last failure real traffic met there.
    pub async fn health(&self) -> HealthReport {
        let probes = {
            // Held while probing: concurrent health checks wait for one round of probes.
            let mut cached = self.inner.probes.lock().await;
            match cached.as_ref() {
                Some((at, probes)) if at.elapsed() < HEALTH_PROBE_TTL => probes.clone(),
                _ => {
                    let probes = self.probe_all(Duration::from_secs(5)).await;
                    *cached = Some((Instant::now(), probes.clone()));
                    probes
                }
            }
        };
        let mut probes: HashMap<String, (u64, Result<Vec<String>>)> = probes.into_iter().collect();
        let mut providers = Vec::new();
        for (id, entry) in &self.inner.providers {
            let (status, latency_ms, error) = match (&entry.problem, probes.remove(id)) {
                (Some(problem), _) => ("unusable", None, Some(problem.clone())),
                (None, Some((latency, Ok(_)))) => ("ok", Some(latency), None),
                (None, Some((latency, Err(e)))) => {
                    ("error", Some(latency), Some(e.message().to_owned()))
                }
                (None, None) => ("ok", None, None),
            };
            let last = self.inner.metrics.last_error(id);
            providers.push(ProviderHealth {
                id: id.clone(),
                kind: entry.kind.name().to_owned(),
                status: status.to_owned(),
                latency_ms,
                error,
                last_error: last.as_ref().map(|l| l.message.clone()),
                last_error_at_ms: last.map(|l| l.at_ms),
            });
        }
        let ok = providers.iter().filter(|p| p.status == "ok").count();
        let status = match ok {
            0 => "unavailable",
            n if n == providers.len() => "ok",
            _ => "degraded",
        };
        HealthReport {
            status: status.to_owned(),
            providers,
            targets: self.target_states(),
        }
    }

    async fn probe_all(&self, timeout: Duration) -> Probes {
        let probes = self.inner.providers.iter().filter_map(|(id, entry)| {
            let adapter = entry.adapter.clone().filter(|_| entry.problem.is_none())?;
            let request = adapter.list_models_request()?;
            let transport = entry
                .transport
                .clone()
                .unwrap_or_else(|| self.inner.transport.clone());
            let id = id.clone();
            Some(async move {
                let started = Instant::now();
                let result = async {
                    let response = transport.send(&id, request, timeout).await?;
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = transport.read_body(&id, response, timeout).await?;
                    if !(200..300).contains(&status) {
                        return Err(adapter.decode_error(status, &headers, &body));
                    }
                    adapter.decode_model_list(&body)
                }
                .await;
                (id, (elapsed_ms(started), result))
            })
        });
        futures_util::future::join_all(probes).await
    }
}

fn build_entry(
    id: &str,
    kind: ProviderType,
    api_base: Option<&str>,
    api_key: Option<&str>,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<ProviderEntry> {
    let mut problem = None;
    let base = api_base.or(kind.default_api_base());
    let key = api_key.filter(|k| !k.is_empty());
    if kind.needs_key() && key.is_none() {
        problem = Some(match kind.key_env() {
            Some(var) => format!("api_key is empty (is {var} set?)"),
            None => "api_key is empty".to_owned(),
        });
    }
    let has_adapter = kind.is_openai_compatible()
        || matches!(kind, ProviderType::Anthropic | ProviderType::Gemini);
    let adapter: Option<Arc<dyn Provider>> = match base {
        _ if !has_adapter => {
            problem.get_or_insert_with(|| {
                format!("provider type `{kind}` has no adapter in this version of opengateway yet")
            });
            None
        }
        None => {
            problem.get_or_insert_with(|| format!("api_base is required for type `{kind}`"));
            None
        }
        Some(base) => Some(match kind {
            ProviderType::Anthropic => Arc::new(AnthropicProvider::new(id, base, key, headers)?),
            ProviderType::Gemini => Arc::new(GeminiProvider::new(id, base, key, headers)?),
            _ => Arc::new(OpenAiProvider::new(id, kind, base, key, headers)?),
        }),
    };
    Ok(ProviderEntry {
        id: id.to_owned(),
        kind,
        adapter,
        problem,
        timeout,
        ttft_timeout: None,
        transport: None,
        provider_member: passthrough::provider_member(id).into(),
    })
}

/// How a request that a target answered ends: `ok`, 200, that target and the attempts to reach
/// it, its prices; without the provider's usage the ticket counts the tokens itself.
pub(crate) fn served(route: &Route, price: PriceTag) -> Ending {
    Ending {
        status: Some(RecordStatus::Ok),
        http_status: Some(200),
        provider: Some(route.provider.clone()),
        provider_model: Some(route.model.clone()),
        attempts: route.attempts.clone(),
        estimate: true,
        price: Some(price),
        ..Default::default()
    }
}

/// Checks what every provider needs before any target is tried.
pub(crate) fn validate_request(request: &ChatCompletionRequest) -> Result<()> {
    if request.messages.is_empty() {
        return Err(Error::invalid_param(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    if request.n == Some(0) {
        return Err(Error::invalid_param("n", "`n` must be at least 1"));
    }
    for (name, value, range) in [
        ("temperature", request.temperature, 0.0..=2.0),
        ("top_p", request.top_p, 0.0..=1.0),
        ("presence_penalty", request.presence_penalty, -2.0..=2.0),
        ("frequency_penalty", request.frequency_penalty, -2.0..=2.0),
    ] {
        if let Some(v) = value
            && !range.contains(&v)
        {
            return Err(Error::invalid_param(
                name,
                format!(
                    "`{name}` is {v}, outside the allowed range {} to {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    Ok(())
}

/// Of the errors of a failed request, the one to report: the last that says a target cannot
/// serve it (next-target class: 401, 403, 404, context length), which a later overload must not
/// hide; else the last error.
fn most_relevant(mut errors: Vec<Error>) -> Error {
    let hard = errors
        .iter()
        .rposition(|e| classify(e) == Decision::NextTarget);
    match hard {
        Some(i) => errors.swap_remove(i),
        None => errors.pop().unwrap_or_else(|| {
            Error::new(
                ErrorKind::ServiceUnavailable,
                "no target could serve the request",
            )
        }),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A chunk ready to go out.
// Not boxed: a decoded chunk is moved out at once, and boxing would allocate for each.
#[allow(clippy::large_enum_variant)]
enum Ready {
    Decoded(ChatCompletionChunk),
    /// The chunk's JSON text: the provider's own with the gateway's changes ([`passthrough`]).
    Passed(String),
}

impl Ready {
    fn into_chunk(self) -> Result<ChatCompletionChunk> {
        match self {
            Ready::Decoded(chunk) => Ok(chunk),
            Ready::Passed(text) => serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::InternalServer,
                    format!("a chunk passed through does not decode: {e}"),
                )
            }),
        }
    }
}

/// A stream of chunks from one provider: SSE events decoded, translated, and stamped with the
/// provider id and the usage cost; it keeps the usage and a count of the output for the ledger.
/// Read as JSON ([`ChatStream::poll_next_json`]), chunks in OpenAI's own format go on as the
/// provider wrote them, with the same changes ([`passthrough`]).
pub(crate) struct ChunkStream {
    events: SseStream,
    decoder: Box<dyn StreamDecoder>,
    provider: String,
    /// The model asked of the provider, for chunks that do not name one.
    model: String,
    pending: VecDeque<Ready>,
    ended: bool,
    /// The reader takes chunks as JSON text, so a chunk may go on as the provider wrote it.
    as_json: bool,
    /// `"provider":"<id>"`, added to chunks that go on as the provider wrote them.
    provider_member: Arc<str>,
    /// Counts the stream as in flight on its target until it is dropped.
    _in_flight: InFlight,
    /// Prices the usage chunk.
    price: PriceTag,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    client_wants_usage: bool,
    /// The usage the provider reported, costed.
    usage: Option<Usage>,
    /// Output tokens counted locally from the deltas, for a stream that ends without usage.
    output_estimate: u64,
}

impl ChunkStream {
    fn new(
        events: SseStream,
        decoder: Box<dyn StreamDecoder>,
        entry: &ProviderEntry,
        model: String,
        in_flight: InFlight,
        price: PriceTag,
        client_wants_usage: bool,
    ) -> Self {
        ChunkStream {
            events,
            decoder,
            provider: entry.id.clone(),
            provider_member: entry.provider_member.clone(),
            as_json: false,
            model,
            _in_flight: in_flight,
            price,
            client_wants_usage,
            // Decoders yield about one chunk per event, each taken before the next event is
            // read; the default first growth would hold four (~1.8 KB) for the stream's life.
            pending: VecDeque::with_capacity(1),
            ended: false,
            usage: None,
            output_estimate: 0,
        }
    }

    fn stamp(&mut self, chunks: Vec<ChatCompletionChunk>) {
        for mut chunk in chunks {
            chunk.provider = Some(self.provider.clone());
            if chunk.model.is_empty() {
                chunk.model.clone_from(&self.model);
            }
            // OpenAI's schema has `system_fingerprint` as a string: absent rather than null.
            if chunk.system_fingerprint == Some(None) {
                chunk.system_fingerprint = None;
            }
            for choice in &chunk.choices {
                self.output_estimate += delta_estimate(&choice.delta);
            }
            if let Some(Some(usage)) = chunk.usage.as_mut() {
                usage.cost = Some(self.price.cost(usage).total_usd);
                self.usage = Some(usage.clone());
            }
            if !self.client_wants_usage {
                if chunk.choices.is_empty() && chunk.usage.is_some() {
                    continue;
                }
                chunk.usage = None;
            }
            self.pending.push_back(Ready::Decoded(chunk));
        }
    }

    /// The next chunk ready to go out.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Ready>>> {
        loop {
            if let Some(ready) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(ready)));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            if self.decoder.is_done() {
                self.ended = true;
                continue;
            }
            match self.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => {
                    if self.as_json
                        && let Some(text) = self.decoder.chunk_text(&event)
                        && let Some(passed) =
                            passthrough::pass(text, self.client_wants_usage, &self.provider_member)
                    {
                        self.decoder.on_passed(passed.finished);
                        self.output_estimate += passed.output_estimate;
                        return Poll::Ready(Some(Ok(Ready::Passed(passed.text))));
                    }
                    match self.decoder.on_event(&event) {
                        Ok(chunks) => self.stamp(chunks),
                        Err(e) => {
                            self.ended = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    match self.decoder.finish() {
                        Ok(chunks) => self.stamp(chunks),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}

impl Stream for ChunkStream {
    type Item = Result<ChatCompletionChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_ready(cx)
            .map(|ready| ready.map(|ready| ready.and_then(Ready::into_chunk)))
    }
}

/// A streamed chat completion: OpenAI chunks, plus the route that was taken. Dropping it
/// closes the upstream connection. Its usage record is settled when the stream ends, fails,
/// or is dropped before its end (as `cancelled`, with the tokens counted so far).
pub struct ChatStream {
    route: Route,
    request_id: String,
    /// Time from acceptance to the first chunk.
    ttft: Duration,
    inner: Pin<Box<ChunkStream>>,
    ticket: Option<Ticket>,
    /// Every item sent, as JSON, when bodies are kept (`server.log_bodies`).
    sent: Option<Vec<serde_json::Value>>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("route", &self.route)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// Where the stream is served from and the attempts made before it started.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The id of the request's usage record.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// A stream started by [`Gateway::stream_once`] under `ticket` (for the inbound formats
    /// that route targets themselves); `keep_sent` keeps what it sends (`server.log_bodies`).
    pub(crate) fn from_parts(
        route: Route,
        inner: Box<ChunkStream>,
        ticket: Ticket,
        keep_sent: bool,
    ) -> Self {
        ChatStream {
            ttft: ticket.elapsed(),
            request_id: ticket.id().to_owned(),
            route,
            inner: Box::into_pin(inner),
            ticket: Some(ticket),
            sent: keep_sent.then(Vec::new),
        }
    }

    fn settle(&mut self, status: RecordStatus, error: Option<&Error>) {
        let Some(mut ticket) = self.ticket.take() else {
            return;
        };
        let inner = &self.inner;
        let mut ending = match error {
            Some(e) => Ending::failed(e),
            None => Ending {
                status: Some(status),
                http_status: (status == RecordStatus::Ok).then_some(200),
                ..Default::default()
            },
        };
        let mut attempts = self.route.attempts.clone();
        if let (Some(e), Some(last)) = (error, attempts.last_mut()) {
            // The attempt that started the stream failed after all.
            last.status = e.is_provider_answer().then_some(e.status());
            last.error_type = e.to_body().error.kind;
            last.error_message = Some(e.message().to_owned());
        }
        ending.attempts = attempts;
        ending.provider = Some(self.route.provider.clone());
        ending.provider_model = Some(self.route.model.clone());
        ending.usage = inner.usage.clone();
        ending.estimate = true;
        ending.completion_estimate = inner.output_estimate;
        ending.price = Some(inner.price.clone());
        ending.ttft = Some(self.ttft);
        if let Some(mut sent) = self.sent.take() {
            if let Some(e) = error
                && let Ok(body) = serde_json::to_value(e.to_body())
            {
                sent.push(body);
            }
            ending.response_body = serde_json::to_string(&sent).ok();
        }
        ticket.settle(ending);
    }
}

impl ChatStream {
    /// The next chunk ready to go out; keeps what is sent (`server.log_bodies`) and settles
    /// the record at the end.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Ready>>> {
        let polled = self.inner.poll_ready(cx);
        if let (Poll::Ready(Some(Ok(ready))), Some(sent)) = (&polled, self.sent.as_mut()) {
            let value = match ready {
                Ready::Decoded(chunk) => serde_json::to_value(chunk).ok(),
                Ready::Passed(text) => serde_json::from_str(text).ok(),
            };
            sent.extend(value);
        }
        match &polled {
            Poll::Ready(None) => self.settle(RecordStatus::Ok, None),
            Poll::Ready(Some(Err(e))) => self.settle(RecordStatus::Error, Some(e)),
            _ => {}
        }
        polled
    }

    /// Polls for the next chunk and appends it to `out` as JSON text: the same JSON value as
    /// serializing the chunk [`Stream::poll_next`] would yield. A chunk the provider sent in
    /// OpenAI's own format goes on as the provider wrote it, with the gateway's changes to its
    /// top-level members (`provider` added, `usage` the client did not ask for left out),
    /// instead of being decoded and serialized again. A stream is read one way or the other.
    pub fn poll_next_json(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Option<Result<()>>> {
        self.inner.as_json = true;
        let ready = match self.poll_ready(cx) {
            Poll::Ready(Some(Ok(ready))) => ready,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let chunk = match ready {
            Ready::Passed(text) => {
                out.extend_from_slice(text.as_bytes());
                return Poll::Ready(Some(Ok(())));
            }
            Ready::Decoded(chunk) => chunk,
        };
        let start = out.len();
        Poll::Ready(Some(serde_json::to_writer(&mut *out, &chunk).map_err(
            |e| {
                out.truncate(start);
                Error::new(
                    ErrorKind::InternalServer,
                    format!("cannot encode a stream chunk: {e}"),
                )
            },
        )))
    }

    /// The next chunk as JSON text (see [`ChatStream::poll_next_json`]); `None` at the end.
    pub async fn next_json(&mut self) -> Option<Result<String>> {
        let mut out = Vec::new();
        let polled = std::future::poll_fn(|cx| self.poll_next_json(cx, &mut out)).await;
        Some(polled?.and_then(|()| {
            String::from_utf8(out).map_err(|e| {
                Error::new(
                    ErrorKind::InternalServer,
                    format!("a stream chunk is not UTF-8: {e}"),
                )
            })
        }))
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatCompletionChunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_ready(cx)
            .map(|ready| ready.map(|ready| ready.and_then(Ready::into_chunk)))
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        // The provider's usage arrives last: with it, the answer was complete even if the
        // caller stopped reading before the end of the stream.
        let status = if self.inner.usage.is_some() {
            RecordStatus::Ok
        } else {
            RecordStatus::Cancelled
        };
        self.settle(status, None);
    }
}

/// Output tokens of one delta, counted locally.
fn delta_estimate(delta: &crate::types::Delta) -> u64 {
    let mut n = 0;
    if let Some(Some(text)) = &delta.content {
        n += tokens::estimate_text(text);
    }
    if let Some(text) = &delta.reasoning_content {
        n += tokens::estimate_text(text);
    }
    if let Some(Some(text)) = &delta.refusal {
        n += tokens::estimate_text(text);
    }
    for call in delta.tool_calls.iter().flatten().flatten() {
        if let Some(f) = &call.function {
            n += f.name.as_deref().map_or(0, tokens::estimate_text);
            n += f.arguments.as_deref().map_or(0, tokens::estimate_text);
        }
    }
    n
}

/// Output tokens of a whole message, counted locally.
pub(crate) fn message_estimate(message: &crate::types::ResponseMessage) -> u64 {
    let texts = [
        message.content.as_deref(),
        message.reasoning_content.as_deref(),
        message.refusal.as_ref().and_then(|r| r.as_deref()),
    ];
    let mut n: u64 = texts.into_iter().flatten().map(tokens::estimate_text).sum();
    for call in message.tool_calls.iter().flatten().flatten() {
        n += tokens::estimate_text(&call.function.name);
        n += tokens::estimate_text(&call.function.arguments);
    }
    n
}

/// The gateway's changes to a decoded answer served by `provider`'s `model`, but the cost: the
/// provider that served it, the model asked for where the provider named none, and what
/// OpenAI's schema has even where a provider (or an older OpenAI recording) does not: `refusal`
/// is required, `system_fingerprint` a string.
pub(crate) fn stamp_answer(response: &mut ChatCompletion, provider: &str, model: &str) {
    response.provider = Some(provider.to_owned());
    if response.model.is_empty() {
        response.model = model.to_owned();
    }
    for choice in &mut response.choices {
        choice.message.refusal.get_or_insert(None);
    }
    if response.system_fingerprint == Some(None) {
        response.system_fingerprint = None;
    }
}

/// Tags a request carries in `metadata.tags`: a list of strings, or one comma-separated string
/// (OpenAI's `metadata` values must be strings).
fn metadata_tags(metadata: Option<&JsonObject>) -> Vec<String> {
    let Some(tags) = metadata.and_then(|m| m.get("tags")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = match tags {
        serde_json::Value::String(s) => s.split(',').map(|t| t.trim().to_owned()).collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(|t| t.trim().to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    out.retain(|t| !t.is_empty());
    out.dedup();
    out
}

fn ledger_error(e: crate::accounting::LedgerError) -> Error {
    Error::new(ErrorKind::ServiceUnavailable, e.to_string())
}

fn open_sqlite_ledger(path: &std::path::Path) -> Result<Ledger> {
    let instance = crate::accounting::new_instance_id();
    let sink = crate::accounting::SqliteSink::open(path, &instance).map_err(|e| {
        Error::new(
            ErrorKind::ServiceUnavailable,
            format!("cannot open the usage ledger at {}: {e}", path.display()),
        )
    })?;
    let ledger = Ledger::new(Arc::new(sink), instance);
    match ledger.recover() {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            records = n,
            path = %path.display(),
            "requests left in flight by a process that ended are marked interrupted"
        ),
        Err(e) => tracing::error!(error = %e, "cannot mark interrupted requests in the ledger"),
    }
    Ok(ledger)
}
