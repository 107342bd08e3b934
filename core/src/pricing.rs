//! The cost of a request, computed locally from the model catalog and the usage the provider
//! reported (in OpenAI's meaning: `prompt_tokens` includes cached and cache-written tokens,
//! `completion_tokens` includes reasoning tokens).
//!
//! Each kind of token is priced at its own rate: uncached input at the input price, cache reads
//! at the cache-read price, cache writes at the cache-write price (each falling back to the
//! input price when the catalog has none), reasoning tokens at the reasoning price when the
//! model has a distinct one, other output at the output price. When the prompt is longer than a
//! model's long-context threshold (200K, or 272K for OpenAI's newer models) and the catalog has
//! prices for that tier, the whole request is priced at the tier's rates, as the providers bill
//! it. A platform fee (`pricing.platform_fee_percent`) is added on top and kept apart.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::catalog::ModelInfo;
use crate::types::Usage;

/// A request's cost in USD: the provider's part, the platform fee, and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// What the provider charges.
    pub provider_usd: f64,
    /// The platform fee on top.
    pub fee_usd: f64,
    /// `provider_usd + fee_usd`.
    pub total_usd: f64,
}

/// Rates for one request, after choosing the long-context tier.
struct Rates {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    reasoning: f64,
}

fn rates(info: &ModelInfo, prompt_tokens: u64) -> Rates {
    let input = info.input_cost_per_token.unwrap_or(0.0);
    let output = info.output_cost_per_token.unwrap_or(0.0);
    let base = Rates {
        input,
        output,
        cache_read: info.cache_read_input_token_cost.unwrap_or(input),
        cache_write: info.cache_creation_input_token_cost.unwrap_or(input),
        reasoning: info.output_cost_per_reasoning_token.unwrap_or(output),
    };
    let tier = |threshold: u64,
                input: Option<f64>,
                output: Option<f64>,
                cache_read: Option<f64>,
                cache_write: Option<f64>| {
        let input = input.filter(|_| prompt_tokens > threshold)?;
        let output = output.unwrap_or(base.output);
        Some(Rates {
            input,
            output,
            cache_read: cache_read.unwrap_or(input),
            cache_write: cache_write.unwrap_or(input),
            // A distinct reasoning rate has no long-context variant: bill it like output.
            reasoning: output,
        })
    };
    tier(
        272_000,
        info.input_cost_per_token_above_272k_tokens,
        info.output_cost_per_token_above_272k_tokens,
        info.cache_read_input_token_cost_above_272k_tokens,
        info.cache_creation_input_token_cost_above_272k_tokens,
    )
    .or_else(|| {
        tier(
            200_000,
            info.input_cost_per_token_above_200k_tokens,
            info.output_cost_per_token_above_200k_tokens,
            info.cache_read_input_token_cost_above_200k_tokens,
            info.cache_creation_input_token_cost_above_200k_tokens,
        )
    })
    .unwrap_or(base)
}

/// The cost of `usage` at the prices of `info`, plus a fee of `fee_percent` percent.
pub fn cost_of(info: &ModelInfo, usage: &Usage, fee_percent: f64) -> Cost {
    let details = usage.prompt_tokens_details.as_ref();
    let cached = details.and_then(|d| d.cached_tokens).unwrap_or(0);
    let written = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
    // Providers may report more cached than prompt tokens in odd cases; never go negative.
    let uncached = usage
        .prompt_tokens
        .saturating_sub(cached)
        .saturating_sub(written);
    let reasoning = usage
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0)
        .min(usage.completion_tokens);
    let visible_output = usage.completion_tokens - reasoning;
    let r = rates(info, usage.prompt_tokens);
    let provider_usd = uncached as f64 * r.input
        + cached as f64 * r.cache_read
        + written as f64 * r.cache_write
        + visible_output as f64 * r.output
        + reasoning as f64 * r.reasoning;
    let fee_usd = provider_usd * fee_percent / 100.0;
    Cost {
        provider_usd,
        fee_usd,
        total_usd: provider_usd + fee_usd,
    }
}

/// The most `prompt_tokens` in and `completion_tokens` out can cost at the prices of `info`,
/// fee included: every input token at the dearest input rate (a one-hour cache write is dearer
/// than plain input), every output token at the dearest output rate, long-context tiers
/// applied when the prompt may cross them. What a budget reserves before a request.
pub fn worst_case_cost(
    info: &ModelInfo,
    prompt_tokens: u64,
    completion_tokens: u64,
    fee_percent: f64,
) -> f64 {
    let r = rates(info, prompt_tokens);
    let one_hour_write = if prompt_tokens > 200_000 {
        info.cache_creation_input_token_cost_above_1hr_above_200k_tokens
            .or(info.cache_creation_input_token_cost_above_1hr)
    } else {
        info.cache_creation_input_token_cost_above_1hr
    }
    .unwrap_or(0.0);
    let input = r
        .input
        .max(r.cache_write)
        .max(r.cache_read)
        .max(one_hour_write);
    let output = r.output.max(r.reasoning);
    let provider_usd = prompt_tokens as f64 * input + completion_tokens as f64 * output;
    provider_usd * (1.0 + fee_percent.max(0.0) / 100.0)
}

/// What a target's tokens cost: its catalog entry (none for a model the catalog does not know,
/// which then costs 0) and the platform fee.
#[derive(Debug, Clone, Default)]
pub(crate) struct PriceTag {
    pub(crate) info: Option<std::sync::Arc<ModelInfo>>,
    pub(crate) fee_percent: f64,
}

/// Output tokens assumed for a request that sets no limit, when the catalog has no maximum.
const UNKNOWN_MAX_OUTPUT: u64 = 65_536;

impl PriceTag {
    /// The cost of `usage`.
    pub(crate) fn cost(&self, usage: &Usage) -> Cost {
        self.info
            .as_deref()
            .map(|info| cost_of(info, usage, self.fee_percent))
            .unwrap_or_default()
    }

    /// The most a request can cost: `prompt_tokens` in, and `max_output` (else the model's
    /// maximum) out for each of `n` choices.
    pub(crate) fn worst_case(&self, prompt_tokens: u64, max_output: Option<u64>, n: u64) -> f64 {
        let Some(info) = self.info.as_deref() else {
            return 0.0;
        };
        let output = max_output
            .or(info.max_output_tokens)
            .or(info.max_tokens)
            .unwrap_or(UNKNOWN_MAX_OUTPUT)
            .saturating_mul(n.max(1));
        worst_case_cost(info, prompt_tokens, output, self.fee_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::types::{CompletionTokensDetails, PromptTokensDetails};

    fn usage(prompt: u64, cached: u64, written: u64, completion: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(cached),
                cache_write_tokens: Some(written),
                ..Default::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: Some(reasoning),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn model(provider: &str, name: &str) -> &'static ModelInfo {
        Catalog::embedded()
            .lookup(provider, name)
            .unwrap_or_else(|| panic!("{provider}/{name} is in the catalog"))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn each_token_kind_at_its_own_price() {
        // gpt-4o: $2.50 in, $1.25 cached, $10 out per million.
        let c = cost_of(model("openai", "gpt-4o"), &usage(1000, 400, 0, 200, 0), 0.0);
        assert!(close(
            c.provider_usd,
            600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 200.0 * 1e-5
        ));
        // o3: reasoning tokens are output tokens at the output price ($8), cached at $0.50.
        let c = cost_of(
            model("openai", "o3"),
            &usage(5000, 1000, 0, 3000, 2500),
            0.0,
        );
        assert!(close(
            c.provider_usd,
            4000.0 * 2e-6 + 1000.0 * 5e-7 + 3000.0 * 8e-6
        ));
        // claude-sonnet-4-5: cache write $3.75, cache read $0.30, in $3, out $15.
        let c = cost_of(
            model("anthropic", "claude-sonnet-4-5-20250929"),
            &usage(10_000, 6000, 3000, 500, 0),
            0.0,
        );
        let want = 1000.0 * 3e-6 + 6000.0 * 3e-7 + 3000.0 * 3.75e-6 + 500.0 * 1.5e-5;
        assert!(close(c.provider_usd, want), "{} vs {want}", c.provider_usd);
        // gemini-2.5-pro above 200K prompt tokens: the whole request at the long-context tier.
        let c = cost_of(
            model("gemini", "gemini-2.5-pro"),
            &usage(250_000, 50_000, 0, 1000, 400),
            0.0,
        );
        let want = 200_000.0 * 2.5e-6 + 50_000.0 * 2.5e-7 + 1000.0 * 1.5e-5;
        assert!(close(c.provider_usd, want), "{} vs {want}", c.provider_usd);
        // Below the threshold, the base rates.
        let c = cost_of(
            model("gemini", "gemini-2.5-pro"),
            &usage(1000, 0, 0, 100, 0),
            0.0,
        );
        assert!(close(c.provider_usd, 1000.0 * 1.25e-6 + 100.0 * 1e-5));
    }

    #[test]
    fn the_fee_is_kept_apart() {
        let c = cost_of(
            model("openai", "gpt-4o-mini"),
            &usage(1_000_000, 0, 0, 1_000_000, 0),
            2.5,
        );
        assert!(close(c.provider_usd, 0.15 + 0.6));
        assert!(close(c.fee_usd, 0.75 * 0.025));
        assert!(close(c.total_usd, c.provider_usd + c.fee_usd));
    }

    #[test]
    fn missing_rates_fall_back_and_odd_usage_does_not_underflow() {
        let info = ModelInfo {
            input_cost_per_token: Some(1e-6),
            output_cost_per_token: Some(2e-6),
            ..Default::default()
        };
        // No cache prices: cached and written tokens cost the input price.
        let c = cost_of(&info, &usage(100, 30, 20, 10, 0), 0.0);
        assert!(close(c.provider_usd, 100.0 * 1e-6 + 10.0 * 2e-6));
        let c = cost_of(&info, &usage(10, 50, 0, 5, 9), 0.0);
        assert!(c.provider_usd.is_finite() && c.provider_usd >= 0.0);
    }
}

/// Most `provider/model` pairs a [`PriceCache`] keeps: model names come from requests, so a
/// client inventing names must not grow it without end (past the bound, prices are resolved
/// each time).
const PRICE_CACHE_MAX: usize = 4096;

/// Price tags by provider id and model, as a gateway resolved them: its catalog never changes,
/// and resolving a name (most of all one not in the catalog) costs several formatted lookups a
/// request would otherwise repeat for every target.
#[derive(Debug, Default)]
pub(crate) struct PriceCache {
    by_provider: RwLock<HashMap<String, HashMap<String, PriceTag>>>,
}

impl PriceCache {
    /// The tag of `provider`/`model`, resolving it with `resolve` the first time.
    pub(crate) fn get_or_resolve(
        &self,
        provider: &str,
        model: &str,
        resolve: impl FnOnce() -> PriceTag,
    ) -> PriceTag {
        let cached = self
            .by_provider
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|models| models.get(model))
            .cloned();
        if let Some(tag) = cached {
            return tag;
        }
        let tag = resolve();
        let mut by_provider = self
            .by_provider
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let size: usize = by_provider.values().map(HashMap::len).sum();
        if size < PRICE_CACHE_MAX {
            by_provider
                .entry(provider.to_owned())
                .or_default()
                .insert(model.to_owned(), tag.clone());
        }
        tag
    }
}
