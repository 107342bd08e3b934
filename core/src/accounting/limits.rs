//! Per-key rate limits: requests per minute and tokens per minute, each a token bucket that
//! refills continuously (the whole limit over a minute), kept in this process.
//!
//! A request takes one request and its prompt estimate in tokens when it is accepted; when it
//! ends, the tokens are corrected to what it really used (prompt and completion), so a long
//! answer costs the next requests and a refused one gives its tokens back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::keys::KeyLimits;

/// The window a per-minute limit refills over.
const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    /// May go below zero when a request used more tokens than it was charged up front.
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn new(capacity: u64, now: Instant) -> Self {
        Bucket {
            capacity: capacity as f64,
            level: capacity as f64,
            updated: now,
        }
    }

    fn rate_per_sec(&self) -> f64 {
        self.capacity / MINUTE.as_secs_f64()
    }

    /// Refills up to `now`, and follows a changed limit (keeping what was used).
    fn refill(&mut self, capacity: u64, now: Instant) {
        let capacity = capacity as f64;
        if capacity != self.capacity {
            self.level = (self.level + capacity - self.capacity).min(capacity);
            self.capacity = capacity;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * self.rate_per_sec()).min(self.capacity);
        self.updated = now;
    }

    /// Time until the bucket holds `amount`.
    fn wait_for(&self, amount: f64) -> Duration {
        let missing = (amount - self.level).max(0.0);
        Duration::from_secs_f64(missing / self.rate_per_sec())
    }

    fn status(&self) -> LimitStatus {
        LimitStatus {
            limit: self.capacity as u64,
            remaining: self.level.max(0.0).floor() as u64,
            reset: self.wait_for(self.capacity),
        }
    }
}

#[derive(Debug, Default)]
struct KeyBuckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// One limit's state, as the `x-ratelimit-*` headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitStatus {
    /// The limit per minute.
    pub limit: u64,
    /// What is left now.
    pub remaining: u64,
    /// Time until the limit is whole again.
    pub reset: Duration,
}

/// A key's rate limits now: each is `None` when the key has no such limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RateLimitStatus {
    /// Requests per minute.
    pub requests: Option<LimitStatus>,
    /// Tokens per minute.
    pub tokens: Option<LimitStatus>,
}

/// The per-key buckets of this process.
#[derive(Debug, Default)]
pub struct RateLimits {
    keys: Mutex<HashMap<String, KeyBuckets>>,
}

/// What an accepted request took from its key's token bucket, corrected when it ends.
#[derive(Debug)]
pub(crate) struct LimitHold {
    limits: Arc<RateLimits>,
    key: String,
    charged: f64,
}

impl LimitHold {
    /// Corrects the tokens charged up front to the tokens the request used.
    pub(crate) fn settle(self, used_tokens: u64) {
        let mut keys = self
            .limits
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = keys.get_mut(&self.key).and_then(|k| k.tokens.as_mut()) {
            bucket.level = (bucket.level + self.charged - used_tokens as f64).min(bucket.capacity);
        }
    }
}

impl RateLimits {
    /// Takes one request and `prompt_estimate` tokens from the key's buckets, or refuses with a
    /// 429 naming the limit and when to retry (`retry-after`). A request larger than the whole
    /// token limit passes when the bucket is full, so no request is refused forever.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        key: &str,
        limits: &KeyLimits,
        prompt_estimate: u64,
    ) -> Result<Option<LimitHold>, Error> {
        if limits.rpm.is_none() && limits.tpm.is_none() {
            return Ok(None);
        }
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let buckets = keys.entry(key.to_owned()).or_default();
        let requests = sync(&mut buckets.requests, limits.rpm, now);
        let tokens = sync(&mut buckets.tokens, limits.tpm, now);
        let estimate = prompt_estimate as f64;
        if let Some(bucket) = requests
            && bucket.level < 1.0
        {
            return Err(refusal(key, "requests", "RPM", bucket, 1.0));
        }
        if let Some(bucket) = tokens {
            let needed = estimate.min(bucket.capacity);
            if bucket.level < needed {
                return Err(refusal(key, "tokens", "TPM", bucket, needed));
            }
        }
        if let Some(bucket) = buckets.requests.as_mut() {
            bucket.level -= 1.0;
        }
        let charged = match buckets.tokens.as_mut() {
            Some(bucket) => {
                bucket.level -= estimate;
                estimate
            }
            None => 0.0,
        };
        Ok(Some(LimitHold {
            limits: self.clone(),
            key: key.to_owned(),
            charged,
        }))
    }

    /// The key's limits now; both `None` when it has none.
    pub fn status(&self, key: &str, limits: &KeyLimits) -> RateLimitStatus {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let buckets = keys.entry(key.to_owned()).or_default();
        RateLimitStatus {
            requests: sync(&mut buckets.requests, limits.rpm, now).map(|b| b.status()),
            tokens: sync(&mut buckets.tokens, limits.tpm, now).map(|b| b.status()),
        }
    }
}

/// Brings a bucket in line with the key's current limit and refills it; `None` without one.
fn sync(bucket: &mut Option<Bucket>, limit: Option<u64>, now: Instant) -> Option<Bucket> {
    match limit {
        None => {
            *bucket = None;
            None
        }
        Some(limit) => {
            let b = bucket.get_or_insert_with(|| Bucket::new(limit, now));
            b.refill(limit, now);
            Some(*b)
        }
    }
}

fn refusal(key: &str, kind: &str, short: &str, bucket: Bucket, requested: f64) -> Error {
    let wait = bucket.wait_for(requested);
    let used = (bucket.capacity - bucket.level.max(0.0)).ceil().max(0.0);
    let unit = if kind == "requests" {
        "requests per min"
    } else {
        "tokens per min"
    };
    Error::new(
        ErrorKind::RateLimit,
        format!(
            "Rate limit reached for API key `{key}` on {unit} ({short}): Limit {}, Used {used}, Requested {}. Please try again in {}.",
            bucket.capacity,
            requested.ceil(),
            format_duration(wait),
        ),
    )
    .with_type(kind)
    .with_code("rate_limit_exceeded")
    .with_retry_after(Some(wait))
}

/// A duration as OpenAI's `x-ratelimit-reset-*` headers write it (Go's style): `20ms`, `1s`,
/// `8.64s`, `6m0s`, `1h2m3s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = (ms / 60_000) % 60;
    let sec_ms = ms % 60_000;
    let seconds = if sec_ms.is_multiple_of(1000) {
        format!("{}s", sec_ms / 1000)
    } else {
        let text = format!("{}.{:03}", sec_ms / 1000, sec_ms % 1000);
        format!("{}s", text.trim_end_matches('0'))
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_like_openai() {
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_millis(8640)), "8.64s");
        assert_eq!(format_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn requests_bucket_refuses_then_names_the_limit() {
        let limits = Arc::new(RateLimits::default());
        let key = KeyLimits {
            rpm: Some(2),
            ..Default::default()
        };
        assert!(limits.acquire("k", &key, 1).unwrap().is_some());
        assert!(limits.acquire("k", &key, 1).unwrap().is_some());
        let err = limits.acquire("k", &key, 1).unwrap_err();
        assert_eq!(err.status(), 429);
        assert!(err.message().contains("(RPM)"), "{err}");
        let wait = err.retry_after().unwrap();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        let status = limits.status("k", &key);
        assert_eq!(status.requests.unwrap().remaining, 0);
        assert!(status.tokens.is_none());
    }

    #[test]
    fn tokens_are_corrected_when_the_request_ends() {
        let limits = Arc::new(RateLimits::default());
        let key = KeyLimits {
            tpm: Some(100),
            ..Default::default()
        };
        let hold = limits.acquire("k", &key, 10).unwrap().unwrap();
        hold.settle(150);
        let err = limits.acquire("k", &key, 10).unwrap_err();
        assert!(err.message().contains("(TPM)"), "{err}");
        assert_eq!(limits.status("k", &key).tokens.unwrap().remaining, 0);
        // A request larger than the limit is not refused forever: only while not full.
        let other = KeyLimits {
            tpm: Some(5),
            ..Default::default()
        };
        assert!(limits.acquire("big", &other, 50).unwrap().is_some());
        assert!(limits.acquire("big", &other, 50).is_err());
    }
}
