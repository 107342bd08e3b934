//! Routing decisions: how each failure is classified, which targets are cooled down, how the
//! targets of an alias are ordered for one request (priority groups, balancing strategies,
//! prompt-cache stickiness), and the per-target statistics those decisions read.
//!
//! # Error classification
//!
//! | class | errors | what the router does |
//! |---|---|---|
//! | fail now | 400-class client errors (400, 413, 415, 422, other 4xx) except context length | returns the error unchanged; no other target is tried |
//! | next target | 401, 403, 404 at a provider; context window exceeded | moves to the next target at once |
//! | retry, then next | 408, 409, 429, 500, 502, 503, 504, 529, connection errors, timeouts | retries the same target `router.retries` times (honouring `Retry-After` up to `retry_after_cap_ms`, else exponential backoff with jitter), then moves on |
//!
//! # Circuit per target (cooldown)
//!
//! `closed` → after `cooldown_failures` consecutive counted failures (retry-class and
//! next-target-class errors other than context length) → `open` for `cooldown_s` → `half_open`:
//! exactly one request goes through as a probe; its success closes the circuit, its failure
//! opens it again. Open targets are skipped; when every target of a request is open, the one
//! whose cooldown ends first is tried anyway, so no request is refused only for cooldown.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{RouterConfig, Strategy};
use crate::error::{Error, ErrorKind};
use crate::gateway::Target;
use crate::types::ChatCompletionRequest;

/// What the router does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request itself is wrong: return the error, try nothing else.
    FailNow,
    /// This target cannot serve the request: try the next one at once.
    NextTarget,
    /// A passing failure: retry this target, then try the next one.
    RetryThenNext,
}

/// Classifies a failed attempt (see the table in the module docs).
pub fn classify(err: &Error) -> Decision {
    if is_context_length(err) {
        return Decision::NextTarget;
    }
    match err.kind() {
        ErrorKind::Authentication | ErrorKind::PermissionDenied | ErrorKind::NotFound => {
            Decision::NextTarget
        }
        kind if kind.is_retryable() => Decision::RetryThenNext,
        _ if err.status() == 408 || err.status() == 529 || err.status() >= 500 => {
            Decision::RetryThenNext
        }
        _ => Decision::FailNow,
    }
}

/// Whether the error says the prompt does not fit the model's context window, in any
/// provider's words.
pub fn is_context_length(err: &Error) -> bool {
    if !matches!(
        err.kind(),
        ErrorKind::BadRequest | ErrorKind::PayloadTooLarge | ErrorKind::UnprocessableEntity
    ) {
        return false;
    }
    if err.code().and_then(|c| c.as_str()) == Some("context_length_exceeded") {
        return true;
    }
    let message = err.message().to_ascii_lowercase();
    [
        "maximum context length",
        "context length",
        "context window",
        "prompt is too long",
        "exceeds the maximum number of tokens",
        "input is too long",
        "too many tokens",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Whether a failure says something about the target's health (and so counts for its circuit).
fn counts_against_target(err: &Error, decision: Decision) -> bool {
    decision != Decision::FailNow && !is_context_length(err)
}

/// State of a target's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Serving normally.
    Closed,
    /// Left out until its cooldown ends.
    Open,
    /// Cooldown over: one probe request decides.
    HalfOpen,
}

/// A target's routing state, as `Gateway::target_states` and `/health` report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetState {
    /// Provider id.
    pub provider: String,
    /// Model at that provider.
    pub model: String,
    /// Circuit state.
    pub circuit: CircuitState,
    /// Failures in a row that counted against the target.
    pub consecutive_failures: u32,
    /// Milliseconds until an open circuit lets a probe through.
    pub reopens_in_ms: Option<u64>,
    /// Requests in flight now (a stream counts until it ends).
    pub in_flight: u32,
    /// Moving average of the time to the first byte, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Attempts made on this target.
    pub requests: u64,
    /// Attempts that failed.
    pub failures: u64,
}

#[derive(Debug)]
struct Circuit {
    state: CircuitState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// Per-target counters and circuit.
#[derive(Debug)]
pub(crate) struct TargetStats {
    circuit: Mutex<Circuit>,
    ttft_ms: Mutex<Option<f64>>,
    in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked: every update is one step.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TargetStats {
    fn new() -> Self {
        TargetStats {
            circuit: Mutex::new(Circuit {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
            ttft_ms: Mutex::new(None),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// When an open circuit lets its probe through, if it is open.
    fn reopens_at(&self, cooldown: Duration) -> Option<Instant> {
        let c = lock(&self.circuit);
        (c.state == CircuitState::Open)
            .then(|| c.opened_at.map(|at| at + cooldown))
            .flatten()
    }

    fn is_open(&self, now: Instant, cooldown: Duration) -> bool {
        self.reopens_at(cooldown).is_some_and(|at| now < at)
    }

    /// Asks to send a request; `false` means skip this target for now.
    fn admit(&self, now: Instant, cooldown: Duration, force: bool) -> Admission {
        let mut c = lock(&self.circuit);
        let admitted = match c.state {
            CircuitState::Closed => Admission::Normal,
            CircuitState::Open => {
                let due = c.opened_at.is_none_or(|at| now >= at + cooldown);
                if due || force {
                    c.state = CircuitState::HalfOpen;
                    c.probe_in_flight = true;
                    Admission::Probe
                } else {
                    Admission::Skip
                }
            }
            CircuitState::HalfOpen if !c.probe_in_flight || force => {
                c.probe_in_flight = true;
                Admission::Probe
            }
            CircuitState::HalfOpen => Admission::Skip,
        };
        if admitted != Admission::Skip {
            self.requests.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn success(&self, ttfb: Duration) {
        {
            let mut c = lock(&self.circuit);
            c.state = CircuitState::Closed;
            c.consecutive_failures = 0;
            c.opened_at = None;
            c.probe_in_flight = false;
        }
        let sample = ttfb.as_secs_f64() * 1000.0;
        let mut ttft = lock(&self.ttft_ms);
        // An exponential moving average: recent latency matters most, one outlier little.
        *ttft = Some(match *ttft {
            Some(avg) => avg * 0.8 + sample * 0.2,
            None => sample,
        });
    }

    /// Records a failure; `true` when it opened the circuit (it was not open before).
    fn failure(&self, counted: bool, threshold: u32, now: Instant) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut c = lock(&self.circuit);
        c.probe_in_flight = false;
        if !counted {
            return false;
        }
        c.consecutive_failures = c.consecutive_failures.saturating_add(1);
        if c.state == CircuitState::HalfOpen || c.consecutive_failures >= threshold {
            let opened = c.state != CircuitState::Open;
            c.state = CircuitState::Open;
            c.opened_at = Some(now);
            return opened;
        }
        false
    }

    fn snapshot(&self, target: &Target, now: Instant, cooldown: Duration) -> TargetState {
        let c = lock(&self.circuit);
        let reopens_in_ms = match (c.state, c.opened_at) {
            (CircuitState::Open, Some(at)) => Some(
                u64::try_from((at + cooldown).saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX),
            ),
            _ => None,
        };
        TargetState {
            provider: target.provider.clone(),
            model: target.model.clone(),
            circuit: c.state,
            consecutive_failures: c.consecutive_failures,
            reopens_in_ms,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            ttft_ms: *lock(&self.ttft_ms),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// How a target was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Circuit closed.
    Normal,
    /// The one probe of a half-open circuit.
    Probe,
    /// Circuit open: not now.
    Skip,
}

/// Counts a request in flight on a target until dropped (a stream keeps it until it ends).
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: Arc<TargetStats>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The right to be a half-open circuit's one probe, held until the probe's outcome is recorded.
#[derive(Debug)]
pub(crate) struct ProbeToken {
    stats: Arc<TargetStats>,
}

impl Drop for ProbeToken {
    fn drop(&mut self) {
        // Recording the outcome already released the probe; a probe dropped before that (its
        // caller went away) must not keep the circuit half-open forever.
        lock(&self.stats.circuit).probe_in_flight = false;
    }
}

/// A request let through to a target.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// Counts the request in flight.
    pub(crate) in_flight: InFlight,
    /// Held by the caller until the outcome is recorded, when the request is a probe.
    pub(crate) probe: Option<ProbeToken>,
}

/// One target of an alias with its balancing weight and priority.
#[derive(Debug, Clone)]
pub(crate) struct PlannedTarget {
    pub(crate) target: Target,
    pub(crate) weight: f64,
    pub(crate) priority: i64,
}

/// An alias as the router uses it.
#[derive(Debug, Clone)]
pub(crate) struct AliasPlan {
    pub(crate) targets: Vec<PlannedTarget>,
    pub(crate) strategy: Strategy,
    pub(crate) sticky: bool,
}

const STICKY_TTL: Duration = Duration::from_secs(3600);
const STICKY_MAX_KEYS: usize = 100_000;
/// A prompt this long (all messages but the last, serialized) is worth keeping cache-warm.
const STICKY_MIN_PREFIX_CHARS: usize = 1024;

/// The router's shared state: per-target statistics and the stickiness map.
#[derive(Debug)]
pub(crate) struct Router {
    config: RouterConfig,
    targets: RwLock<HashMap<Target, Arc<TargetStats>>>,
    sticky: Mutex<HashMap<u64, (Target, Instant)>>,
}

impl Router {
    pub(crate) fn new(config: RouterConfig) -> Self {
        Router {
            config,
            targets: RwLock::new(HashMap::new()),
            sticky: Mutex::new(HashMap::new()),
        }
    }

    fn cooldown(&self) -> Duration {
        Duration::from_secs_f64(self.config.cooldown_s)
    }

    fn stats(&self, target: &Target) -> Arc<TargetStats> {
        if let Some(s) = self
            .targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
        {
            return s.clone();
        }
        self.targets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(target.clone())
            .or_insert_with(|| Arc::new(TargetStats::new()))
            .clone()
    }

    /// Orders an alias's targets for one request: priority groups in ascending order, each
    /// ordered by the strategy, with the sticky target (if healthy) first.
    pub(crate) fn order(&self, alias: &AliasPlan, sticky_key: Option<u64>) -> Vec<Target> {
        let mut priorities: Vec<i64> = alias.targets.iter().map(|t| t.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let mut ordered = Vec::with_capacity(alias.targets.len());
        for priority in priorities {
            let group: Vec<&PlannedTarget> = alias
                .targets
                .iter()
                .filter(|t| t.priority == priority)
                .collect();
            ordered.extend(self.order_group(&group, alias.strategy));
        }
        if let Some(key) = sticky_key.filter(|_| alias.sticky)
            && let Some(pinned) = self.sticky_target(key)
            && let Some(pos) = ordered.iter().position(|t| *t == pinned)
            && !self.stats(&pinned).is_open(Instant::now(), self.cooldown())
        {
            let pinned = ordered.remove(pos);
            ordered.insert(0, pinned);
        }
        ordered
    }

    fn order_group(&self, group: &[&PlannedTarget], strategy: Strategy) -> Vec<Target> {
        let mut keyed: Vec<(f64, f64, Target)> = group
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let stats = self.stats(&t.target);
                let primary = match strategy {
                    Strategy::Fallback => i as f64,
                    // Efraimidis–Spirakis: sorting by -u^(1/w) is a weighted random order.
                    Strategy::Weighted => -fastrand::f64().powf(1.0 / t.weight),
                    Strategy::LeastLatency => lock(&stats.ttft_ms).unwrap_or(0.0),
                    Strategy::LeastBusy => f64::from(stats.in_flight.load(Ordering::Relaxed)),
                };
                // Ties (equal latency or load) are broken at random so traffic spreads.
                let tie = if strategy == Strategy::Fallback {
                    0.0
                } else {
                    fastrand::f64()
                };
                (primary, tie, t.target.clone())
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        keyed.into_iter().map(|(_, _, t)| t).collect()
    }

    fn sticky_target(&self, key: u64) -> Option<Target> {
        let map = lock(&self.sticky);
        map.get(&key)
            .filter(|(_, at)| at.elapsed() < STICKY_TTL)
            .map(|(t, _)| t.clone())
    }

    /// Remembers which target served a sticky request.
    pub(crate) fn remember(&self, key: u64, target: &Target) {
        let mut map = lock(&self.sticky);
        if map.len() >= STICKY_MAX_KEYS {
            map.retain(|_, (_, at)| at.elapsed() < STICKY_TTL);
            if map.len() >= STICKY_MAX_KEYS {
                // Still full of live keys: forget all rather than grow without bound.
                map.clear();
            }
        }
        map.insert(key, (target.clone(), Instant::now()));
    }

    /// Lets a request through to `target` unless its circuit is open; `force` tries an open
    /// target anyway (every target of the request is open).
    pub(crate) fn admit(&self, target: &Target, force: bool) -> Option<Admitted> {
        let stats = self.stats(target);
        let admission = stats.admit(Instant::now(), self.cooldown(), force);
        if admission == Admission::Skip {
            return None;
        }
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let probe = (admission == Admission::Probe).then(|| ProbeToken {
            stats: stats.clone(),
        });
        Some(Admitted {
            in_flight: InFlight { stats },
            probe,
        })
    }

    /// When the open circuit of `target` lets a probe through (None when not open).
    pub(crate) fn reopens_at(&self, target: &Target) -> Option<Instant> {
        self.stats(target).reopens_at(self.cooldown())
    }

    /// Records a successful attempt and its time to first byte.
    pub(crate) fn record_success(&self, target: &Target, ttfb: Duration) {
        self.stats(target).success(ttfb);
    }

    /// Records a failed attempt; `true` when it opened the target's circuit.
    pub(crate) fn record_failure(&self, target: &Target, err: &Error) -> bool {
        let counted = counts_against_target(err, classify(err));
        self.stats(target)
            .failure(counted, self.config.cooldown_failures, Instant::now())
    }

    /// Every known target's state.
    pub(crate) fn snapshot(&self) -> Vec<TargetState> {
        let now = Instant::now();
        let cooldown = self.cooldown();
        let mut states: Vec<TargetState> = self
            .targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(t, s)| s.snapshot(t, now, cooldown))
            .collect();
        states.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        states
    }

    /// The wait before retry number `tries` (0-based): the provider's `Retry-After` up to the
    /// cap, else exponential backoff with jitter (capped at 8 s).
    pub(crate) fn backoff(&self, tries: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(Duration::from_millis(self.config.retry_after_cap_ms));
        }
        let base = self.config.backoff_base_ms as f64 / 1000.0;
        let exp = base * 2f64.powi(tries.min(10) as i32);
        // Jitter spreads the retries of many clients that failed together.
        let jitter = 0.75 + 0.5 * fastrand::f64();
        Duration::from_secs_f64((exp * jitter).min(8.0))
    }
}

/// The stickiness key of a request: its `session_id`, else its `user`, else a hash of a long
/// prompt prefix (every message but the last); `None` when nothing ties it to a target.
pub(crate) fn sticky_key(request: &ChatCompletionRequest) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    if let Some(session) = request.session_id.as_deref().or(request.user.as_deref()) {
        ("session", session, &request.model).hash(&mut hasher);
        return Some(hasher.finish());
    }
    let prefix = request.messages.split_last().map(|(_, rest)| rest)?;
    let text = serde_json::to_string(prefix).ok()?;
    if text.len() < STICKY_MIN_PREFIX_CHARS {
        return None;
    }
    ("prefix", &request.model, text).hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str, m: &str) -> Target {
        Target {
            provider: p.to_owned(),
            model: m.to_owned(),
        }
    }

    #[test]
    fn classification_table() {
        let status = |s: u16| Error::upstream("p", s, b"{}");
        assert_eq!(classify(&status(400)), Decision::FailNow);
        assert_eq!(classify(&status(422)), Decision::FailNow);
        assert_eq!(classify(&status(401)), Decision::NextTarget);
        assert_eq!(classify(&status(403)), Decision::NextTarget);
        assert_eq!(classify(&status(404)), Decision::NextTarget);
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert_eq!(classify(&status(s)), Decision::RetryThenNext, "{s}");
        }
        let ctx = Error::upstream(
            "p",
            400,
            br#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(classify(&ctx), Decision::NextTarget);
        let anthropic = Error::upstream(
            "p",
            400,
            br#"{"error":{"message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        );
        assert_eq!(classify(&anthropic), Decision::NextTarget);
        assert!(!counts_against_target(&ctx, classify(&ctx)));
        let timeout = Error::new(ErrorKind::Timeout, "slow");
        let refused = Error::new(ErrorKind::Connection, "refused");
        assert_eq!(classify(&timeout), Decision::RetryThenNext);
        assert_eq!(classify(&refused), Decision::RetryThenNext);
    }

    #[test]
    fn circuit_opens_probes_once_and_closes() {
        let stats = TargetStats::new();
        let cooldown = Duration::from_millis(100);
        let t0 = Instant::now();
        assert_eq!(stats.admit(t0, cooldown, false), Admission::Normal);
        assert!(!stats.failure(true, 2, t0), "below the threshold");
        assert_eq!(stats.admit(t0, cooldown, false), Admission::Normal);
        assert!(stats.failure(true, 2, t0), "this failure opens it");
        assert_eq!(stats.admit(t0, cooldown, false), Admission::Skip, "open");
        let later = t0 + cooldown;
        assert_eq!(stats.admit(later, cooldown, false), Admission::Probe);
        assert_eq!(
            stats.admit(later, cooldown, false),
            Admission::Skip,
            "one probe at a time"
        );
        assert!(
            stats.failure(true, 2, later),
            "a failed probe opens it again"
        );
        assert_eq!(
            stats.admit(later, cooldown, false),
            Admission::Skip,
            "open again"
        );
        assert_eq!(
            stats.admit(later, cooldown, true),
            Admission::Probe,
            "forced"
        );
        stats.success(Duration::from_millis(5));
        assert_eq!(
            stats.admit(later, cooldown, false),
            Admission::Normal,
            "closed"
        );
        // A failure that says nothing about the target releases the probe without counting.
        assert!(!stats.failure(false, 1, later));
        assert_eq!(lock(&stats.circuit).state, CircuitState::Closed);
    }

    #[test]
    fn strategies_order_groups() {
        let router = Router::new(RouterConfig::default());
        let plan = |strategy, priorities: &[i64]| AliasPlan {
            targets: priorities
                .iter()
                .enumerate()
                .map(|(i, p)| PlannedTarget {
                    target: t("p", &format!("m{i}")),
                    weight: if i == 0 { 9.0 } else { 1.0 },
                    priority: *p,
                })
                .collect(),
            strategy,
            sticky: true,
        };
        let fallback = router.order(&plan(Strategy::Fallback, &[0, 1, 2]), None);
        assert_eq!(fallback, vec![t("p", "m0"), t("p", "m1"), t("p", "m2")]);
        // Lower priority groups always come after.
        for _ in 0..20 {
            let order = router.order(&plan(Strategy::Weighted, &[0, 0, 5]), None);
            assert_eq!(order[2], t("p", "m2"));
        }
        let first_heavy = (0..400)
            .filter(|_| router.order(&plan(Strategy::Weighted, &[0, 0]), None)[0] == t("p", "m0"))
            .count();
        assert!(first_heavy > 300, "weight 9:1 → {first_heavy}/400");
        router.record_success(&t("p", "m0"), Duration::from_millis(500));
        router.record_success(&t("p", "m1"), Duration::from_millis(10));
        let fast = router.order(&plan(Strategy::LeastLatency, &[0, 0]), None);
        assert_eq!(fast[0], t("p", "m1"));
        let _busy = router.admit(&t("p", "m1"), false);
        let idle = router.order(&plan(Strategy::LeastBusy, &[0, 0]), None);
        assert_eq!(idle[0], t("p", "m0"));
        router.remember(42, &t("p", "m1"));
        let pinned = router.order(&plan(Strategy::Fallback, &[0, 1]), Some(42));
        assert_eq!(pinned[0], t("p", "m1"));
    }

    #[test]
    fn sticky_keys() {
        let mut req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "smart",
            "messages": [{"role": "system", "content": "x".repeat(2000)}, {"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let prefix = sticky_key(&req).unwrap();
        req.messages.push(crate::types::ChatMessage::user("more"));
        assert_ne!(sticky_key(&req), Some(prefix), "a different prefix");
        req.messages.truncate(1);
        assert_eq!(sticky_key(&req), None, "short prompt, no session");
        req.user = Some("u1".into());
        let user = sticky_key(&req);
        req.session_id = Some("s1".into());
        assert!(user.is_some() && sticky_key(&req) != user);
    }
}
