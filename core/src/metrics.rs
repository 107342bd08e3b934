//! Prometheus metrics of one gateway, fed when a request is accepted and when it settles (see
//! [`crate::accounting`]'s ticket), rendered in the OpenMetrics text format by
//! [`crate::Gateway::metrics`] and served by the server at `GET /metrics`.
//!
//! Every metric is named `opengateway_*`. Labels stay bounded: `endpoint` is one of the
//! gateway's APIs, `provider` a configured provider id, `model` the model as requested (an
//! alias or `provider/model`) on request metrics and the billed `provider/model` on token and
//! cost metrics, `status` a record status or an HTTP status, `type` an OpenAI error type. Past
//! [`MAX_MODEL_LABELS`] distinct model names, further ones are counted as `other`, so a client
//! cycling through made-up model names cannot grow the exposition without end.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `opengateway_requests_total` | counter | endpoint, model, provider, status |
//! | `opengateway_errors_total` | counter | endpoint, model, provider, type |
//! | `opengateway_request_duration_seconds` | histogram | endpoint, model, provider |
//! | `opengateway_time_to_first_token_seconds` | histogram (streams) | endpoint, model, provider |
//! | `opengateway_tokens_total` | counter | provider, model, kind (prompt, completion, cached, cache_write, reasoning) |
//! | `opengateway_cost_usd_total` | counter | provider, model |
//! | `opengateway_fallbacks_total` | counter (served by other than the first target) | endpoint, model |
//! | `opengateway_attempts_per_request` | histogram | endpoint, model |
//! | `opengateway_upstream_attempts_total` | counter | provider, model, status (HTTP status, else error type) |
//! | `opengateway_circuit_openings_total` | counter | provider, model |
//! | `opengateway_targets_cooled_down` | gauge (circuits open now) | – |
//! | `opengateway_requests_in_flight` | gauge | endpoint |

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::accounting::{RecordStatus, UsageRecord};

/// The `Content-Type` of [`Metrics::render`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Distinct `model` label values kept before further ones are counted as `other`.
pub const MAX_MODEL_LABELS: usize = 1000;

/// The label value that stands for every model past [`MAX_MODEL_LABELS`].
const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    model: String,
    provider: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    endpoint: String,
    model: String,
    provider: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    endpoint: String,
    model: String,
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    provider: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    endpoint: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    provider: String,
    model: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 5 ms to about 5.5 minutes, doubling.
    Histogram::new(exponential_buckets(0.005, 2.0, 17))
}

fn attempts_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0])
}

/// Kinds of [`RouteSeries`] kept before further ones are looked up each time (a kind is an
/// endpoint, model, provider, billed model and status; the model labels are bounded anyway).
const MAX_ROUTE_SERIES: usize = 4096;

/// The `kind` label of `opengateway_tokens_total`, in [`RouteSeries::tokens`] order.
const TOKEN_KINDS: [&str; 5] = ["prompt", "completion", "cached", "cache_write", "reasoning"];

thread_local! {
    /// The key of [`Metrics::route_series`], built anew for every request without allocating.
    static ROUTE_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Handles to the series that requests of one kind feed, so that settling a request costs
/// one map lookup instead of a label set built, hashed and looked up per metric. The series a
/// kind may never feed (time to first token of a non-stream, tokens of a failure) are created
/// on first use, so that `/metrics` shows no series that nothing counted.
struct RouteSeries {
    in_flight: Gauge,
    requests: Counter,
    duration: Histogram,
    ttft: OnceLock<Histogram>,
    attempts: OnceLock<Histogram>,
    /// `opengateway_upstream_attempts_total` with status 200 for the target that served.
    served_ok: OnceLock<Counter>,
    tokens: OnceLock<[Counter; 5]>,
    cost: OnceLock<Counter<f64, AtomicU64>>,
    endpoint: String,
    /// The request's model as a label value.
    model: String,
    provider: String,
    /// The billed `provider/model` as a label value.
    billed: String,
}

impl RouteSeries {
    fn route_labels(&self) -> RouteLabels {
        RouteLabels {
            endpoint: self.endpoint.clone(),
            model: self.model.clone(),
            provider: self.provider.clone(),
        }
    }

    fn model_labels(&self) -> ModelLabels {
        ModelLabels {
            endpoint: self.endpoint.clone(),
            model: self.model.clone(),
        }
    }
}

/// The last failure seen on a provider in real traffic, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// When it happened, in Unix milliseconds.
    pub at_ms: i64,
    /// The error's message.
    pub message: String,
}

/// One gateway's metrics: atomics behind label maps, updated without going through the
/// ledger's writer; rendered on demand.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    ttft: HistogramFamily<RouteLabels>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<TargetLabels, Counter<f64, AtomicU64>>,
    fallbacks: Family<ModelLabels, Counter>,
    attempts: HistogramFamily<ModelLabels>,
    upstream: Family<UpstreamLabels, Counter>,
    circuit_openings: Family<TargetLabels, Counter>,
    cooled_down: Gauge,
    in_flight: Family<EndpointLabels, Gauge>,
    models: RwLock<HashSet<String>>,
    last_errors: Mutex<HashMap<String, LastError>>,
    /// See [`Metrics::route_series`].
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty set of metrics with its own registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("opengateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        let ttft: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost = Family::<TargetLabels, Counter<f64, AtomicU64>>::default();
        let fallbacks = Family::<ModelLabels, Counter>::default();
        let attempts: HistogramFamily<ModelLabels> =
            Family::new_with_constructor(attempts_histogram);
        let upstream = Family::<UpstreamLabels, Counter>::default();
        let circuit_openings = Family::<TargetLabels, Counter>::default();
        let cooled_down = Gauge::default();
        let in_flight = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "requests",
            "Requests that ended, by how they ended",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Requests that failed, by OpenAI error type",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from acceptance to the end of the answer",
            duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from acceptance to a stream's first chunk",
            ttft.clone(),
        );
        registry.register(
            "tokens",
            "Tokens used, by kind (prompt includes cached and cache_write, completion includes reasoning)",
            tokens.clone(),
        );
        registry.register(
            "cost_usd",
            "Cost in USD, platform fee included",
            cost.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests served by a target other than the first one planned",
            fallbacks.clone(),
        );
        registry.register(
            "attempts_per_request",
            "Upstream attempts made for one request",
            attempts.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Attempts sent to a provider, by HTTP status (or error type when there was no answer)",
            upstream.clone(),
        );
        registry.register(
            "circuit_openings",
            "Times a target's circuit opened (the target was cooled down)",
            circuit_openings.clone(),
        );
        registry.register(
            "targets_cooled_down",
            "Targets whose circuit is open now",
            cooled_down.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests accepted and not yet ended",
            in_flight.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            duration,
            ttft,
            tokens,
            cost,
            fallbacks,
            attempts,
            upstream,
            circuit_openings,
            cooled_down,
            in_flight,
            models: RwLock::new(HashSet::new()),
            last_errors: Mutex::new(HashMap::new()),
            routes: RwLock::new(HashMap::new()),
        }
    }

    /// The model as a label value: itself while fewer than [`MAX_MODEL_LABELS`] are known.
    fn model_label(&self, model: &str) -> String {
        let known = self.models.read().unwrap_or_else(PoisonError::into_inner);
        if known.contains(model) {
            return model.to_owned();
        }
        drop(known);
        let mut known = self.models.write().unwrap_or_else(PoisonError::into_inner);
        if known.contains(model) || known.len() < MAX_MODEL_LABELS {
            known.insert(model.to_owned());
            model.to_owned()
        } else {
            OTHER.to_owned()
        }
    }

    /// A request was accepted.
    pub(crate) fn request_started(&self, endpoint: &str) {
        self.in_flight
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .inc();
    }

    /// A request ended: everything its settled record says. `first_target` is the
    /// `provider/model` the router planned first.
    pub(crate) fn request_ended(&self, record: &UsageRecord, first_target: Option<&str>) {
        let series = self.route_series(record);
        series.in_flight.dec();
        series.requests.inc();
        if record.status == RecordStatus::Error {
            self.errors
                .get_or_create(&ErrorLabels {
                    endpoint: record.endpoint.clone(),
                    model: series.model.clone(),
                    provider: series.provider.clone(),
                    r#type: record
                        .error_type
                        .clone()
                        .unwrap_or_else(|| "unknown".to_owned()),
                })
                .inc();
        }
        if let Some(ms) = record.latency_ms {
            series.duration.observe(ms_to_s(ms));
        }
        if record.stream
            && let Some(ms) = record.ttft_ms
        {
            series
                .ttft
                .get_or_init(|| self.ttft.get_or_create(&series.route_labels()).clone())
                .observe(ms_to_s(ms));
        }
        if !record.attempts.is_empty() {
            series
                .attempts
                .get_or_init(|| self.attempts.get_or_create(&series.model_labels()).clone())
                .observe(record.attempts.len() as f64);
            let served = (record.status != RecordStatus::Error)
                .then(|| record.provider.as_ref().zip(record.provider_model.as_ref()))
                .flatten()
                .map(|(p, m)| format!("{p}/{m}"));
            if let (Some(served), Some(first)) = (served, first_target)
                && served != first
            {
                self.fallbacks.get_or_create(&series.model_labels()).inc();
            }
        }
        for attempt in &record.attempts {
            // The usual attempt, the one that served the request, has a handle of its own.
            if attempt.status == Some(200)
                && record.provider.as_deref() == Some(attempt.provider.as_str())
                && record.provider_model.as_deref() == Some(attempt.model.as_str())
            {
                series
                    .served_ok
                    .get_or_init(|| {
                        self.upstream
                            .get_or_create(&UpstreamLabels {
                                provider: series.provider.clone(),
                                model: series.billed.clone(),
                                status: "200".to_owned(),
                            })
                            .clone()
                    })
                    .inc();
                continue;
            }
            let status = match (attempt.status, &attempt.error_type) {
                (Some(s), _) => s.to_string(),
                (None, Some(kind)) => kind.clone(),
                (None, None) => "unknown".to_owned(),
            };
            self.upstream
                .get_or_create(&UpstreamLabels {
                    provider: attempt.provider.clone(),
                    model: self.model_label(&format!("{}/{}", attempt.provider, attempt.model)),
                    status,
                })
                .inc();
            if attempt.status != Some(200)
                && let Some(message) = &attempt.error_message
            {
                self.last_errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        attempt.provider.clone(),
                        LastError {
                            at_ms: record.ended_at_ms.unwrap_or(record.started_at_ms),
                            message: crate::accounting::request_log::redact_keys(message),
                        },
                    );
            }
        }
        let tokens = record.tokens;
        if tokens.total() > 0 {
            let counters = series.tokens.get_or_init(|| {
                TOKEN_KINDS.map(|kind| {
                    self.tokens
                        .get_or_create(&TokenLabels {
                            provider: series.provider.clone(),
                            model: series.billed.clone(),
                            kind,
                        })
                        .clone()
                })
            });
            let counts = [
                tokens.prompt,
                tokens.completion,
                tokens.cached,
                tokens.cache_write,
                tokens.reasoning,
            ];
            for (counter, n) in counters.iter().zip(counts) {
                counter.inc_by(n);
            }
        }
        let cost = record.cost.total_usd;
        if cost.is_finite() && cost > 0.0 {
            series
                .cost
                .get_or_init(|| {
                    self.cost
                        .get_or_create(&TargetLabels {
                            provider: series.provider.clone(),
                            model: series.billed.clone(),
                        })
                        .clone()
                })
                .inc_by(cost);
        }
    }

    /// The series of requests like `record` (endpoint, model, provider, billed model, status):
    /// kept after the first one while fewer than [`MAX_ROUTE_SERIES`] kinds are known, else
    /// looked up afresh.
    fn route_series(&self, record: &UsageRecord) -> Arc<RouteSeries> {
        ROUTE_KEY.with_borrow_mut(|key| {
            key.clear();
            for part in [
                record.endpoint.as_str(),
                record.model.as_str(),
                record.provider.as_deref().unwrap_or("\u{1e}"),
                record.provider_model.as_deref().unwrap_or("\u{1e}"),
                record.status.as_str(),
            ] {
                key.push_str(part);
                key.push('\u{1f}');
            }
            let known = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = known.get(key.as_str()) {
                return Arc::clone(series);
            }
            drop(known);
            let series = Arc::new(self.new_route_series(record));
            let mut known = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            if known.len() < MAX_ROUTE_SERIES {
                known.insert(key.clone(), Arc::clone(&series));
            }
            series
        })
    }

    fn new_route_series(&self, record: &UsageRecord) -> RouteSeries {
        let endpoint = record.endpoint.clone();
        let model = self.model_label(&record.model);
        let provider = record.provider.clone().unwrap_or_default();
        let route = RouteLabels {
            endpoint: endpoint.clone(),
            model: model.clone(),
            provider: provider.clone(),
        };
        RouteSeries {
            in_flight: self
                .in_flight
                .get_or_create(&EndpointLabels {
                    endpoint: endpoint.clone(),
                })
                .clone(),
            requests: self
                .requests
                .get_or_create(&RequestLabels {
                    endpoint: endpoint.clone(),
                    model: model.clone(),
                    provider: provider.clone(),
                    status: record.status.as_str().to_owned(),
                })
                .clone(),
            duration: self.duration.get_or_create(&route).clone(),
            ttft: OnceLock::new(),
            attempts: OnceLock::new(),
            served_ok: OnceLock::new(),
            tokens: OnceLock::new(),
            cost: OnceLock::new(),
            billed: self.model_label(&record.billed_model()),
            endpoint,
            model,
            provider,
        }
    }

    /// A target's circuit opened.
    pub(crate) fn circuit_opened(&self, provider: &str, model: &str) {
        self.circuit_openings
            .get_or_create(&TargetLabels {
                provider: provider.to_owned(),
                model: self.model_label(&format!("{provider}/{model}")),
            })
            .inc();
    }

    /// Sets the number of targets cooled down now (read from the router when rendering).
    pub(crate) fn set_cooled_down(&self, n: usize) {
        self.cooled_down.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The last failure seen on `provider` in real traffic.
    pub fn last_error(&self, provider: &str) -> Option<LastError> {
        self.last_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .cloned()
    }

    /// Every metric in the OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn ms_to_s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
