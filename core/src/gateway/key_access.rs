//! What an API key may do, checked when a request is accepted: the models it may use, its
//! budget, and its requests and tokens per minute. The key and its limits arrive on the
//! [`CallContext`] (the server reads them from the key store); a context without limits is
//! not checked here.

use super::Gateway;
use crate::accounting::{BudgetConfig, CallContext, LimitHold, RateLimitStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::KeyLimits;

impl Gateway {
    /// Checks the caller's key against the request: a disallowed model is a 403
    /// `model_not_allowed`, a spent rate limit a 429 naming it. Keeps the key's budget rule in
    /// [`Gateway::budgets`] in line with the key's record. Returns what the request took from
    /// the key's rate limits.
    pub(super) fn admit_key(
        &self,
        context: &CallContext,
        model: &str,
        fallbacks: Option<&[String]>,
        prompt_estimate: u64,
    ) -> Result<Option<LimitHold>> {
        let (Some(key), Some(limits)) = (&context.key, &context.limits) else {
            return Ok(None);
        };
        let asked = std::iter::once(("model".to_owned(), model)).chain(
            fallbacks
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("models[{i}]"), m.as_str())),
        );
        for (param, model) in asked {
            if !self.key_allows_model(limits, model) {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "The API key `{key}` may not use the model `{model}`; it may use: {}.",
                        limits.models.join(", ")
                    ),
                )
                .with_param(param)
                .with_type("model_not_allowed")
                .with_code("model_not_allowed"));
            }
        }
        let name = key_budget_name(key);
        let rule = limits.budget_usd.map(|limit_usd| BudgetConfig {
            name: Some(name.clone()),
            key: Some(key.clone()),
            user: None,
            model: None,
            limit_usd,
            period: limits.budget_period,
        });
        self.inner.budgets.sync(&name, rule)?;
        self.inner.rate_limits.acquire(key, limits, prompt_estimate)
    }

    /// Whether a key's allowed models cover `model`: by its own name (`provider/model`,
    /// `provider/*`, alias), or for an alias, when every one of its targets is covered.
    pub fn key_allows_model(&self, limits: &KeyLimits, model: &str) -> bool {
        if limits.allows_id(model) {
            return true;
        }
        self.inner.aliases.get(model).is_some_and(|alias| {
            !alias.targets.is_empty()
                && alias
                    .targets
                    .iter()
                    .all(|t| limits.allows_id(&t.target.to_string()))
        })
    }

    /// [`Gateway::list_models`] as the caller's key sees it: only the models it may use.
    pub async fn list_models_for(&self, context: &CallContext) -> Vec<super::ModelEntry> {
        let mut entries = self.list_models().await;
        if let Some(limits) = &context.limits {
            entries.retain(|e| self.key_allows_model(limits, &e.id));
        }
        entries
    }

    /// The caller's key's rate limits now (`x-ratelimit-*`); `None` for a caller without
    /// requests or tokens per minute.
    pub fn rate_limit_status(&self, context: &CallContext) -> Option<RateLimitStatus> {
        let (Some(key), Some(limits)) = (&context.key, &context.limits) else {
            return None;
        };
        if limits.rpm.is_none() && limits.tpm.is_none() {
            return None;
        }
        Some(self.inner.rate_limits.status(key, limits))
    }
}

/// The name of the budget rule a key's own budget is kept under.
fn key_budget_name(key: &str) -> String {
    format!("key:{key}")
}
