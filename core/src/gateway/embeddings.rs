//! Embeddings through the gateway: the same resolution, ordered fallback, ledger and budgets as
//! chat, over each provider's embeddings API.
//!
//! Targets whose provider has no embeddings API (Anthropic) are left out of the fallback list;
//! when that leaves none, the request is a 400 naming `model`. Whatever format a provider
//! answers in, the client gets the `encoding_format` it asked for (float by default): the
//! gateway converts between numbers and base64 of little-endian f32 itself. A provider that
//! reports no token counts (Gemini) gets a local count, and the ledger record says it is
//! estimated.

use std::time::{Duration, Instant};

use super::{Admission, Gateway, Routed, Target};
use crate::accounting::tokens::{self, PromptSize};
use crate::accounting::{CallContext, Ending, Ticket};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::no_embeddings;
use crate::router::InFlight;
use crate::types::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage};

/// The ledger's endpoint name for embeddings requests.
const ENDPOINT: &str = "embeddings";

impl Gateway {
    /// Embeds `request.input`, trying each target in order.
    pub async fn embeddings(&self, request: EmbeddingRequest) -> Result<Routed<EmbeddingResponse>> {
        self.embeddings_with(request, &CallContext::default()).await
    }

    /// [`Gateway::embeddings`] for a caller: the key, user and tags the ledger records and
    /// budgets charge.
    pub async fn embeddings_with(
        &self,
        request: EmbeddingRequest,
        context: &CallContext,
    ) -> Result<Routed<EmbeddingResponse>> {
        request.validate()?;
        let targets = self.embedding_targets(&request)?;
        let mut ticket = self.accept_embeddings(&request, &targets, context).await?;
        let (mut response, route) = self
            .run_targets(&mut ticket, &targets, None, |target, in_flight| {
                let request = &request;
                async move { self.embed_once(request, target, in_flight).await }
            })
            .await?;
        response.object = "list".to_owned();
        response.provider = Some(route.provider.clone());
        if response.model.is_empty() {
            response.model = route.model.clone();
        }
        let price = self.price(&route.provider, &route.model);
        let reported = response.usage.as_ref().map(EmbeddingUsage::to_usage);
        let usage = response.usage.get_or_insert_with(|| {
            let estimate = input_size(&request.input).estimate;
            EmbeddingUsage {
                prompt_tokens: estimate,
                total_tokens: estimate,
                ..Default::default()
            }
        });
        usage.cost = Some(price.cost(&usage.to_usage()).total_usd);
        ticket.settle(Ending {
            // Without the provider's counts, the ticket records its local estimate.
            usage: reported,
            response_body: self.kept_body(&response),
            ..super::served(&route, price)
        });
        Ok(Routed {
            response,
            route,
            request_id: ticket.id().to_owned(),
        })
    }

    /// The targets for `model` plus the request's fallback `models`, in order, without those
    /// whose provider has no embeddings API.
    fn embedding_targets(&self, request: &EmbeddingRequest) -> Result<Vec<Target>> {
        if request.model.trim().is_empty() {
            return Err(Error::invalid_param(
                "model",
                "`model` is required and must not be empty",
            ));
        }
        let mut targets = self.resolve_one(&request.model, "model", None)?;
        for (i, m) in request.models.iter().flatten().enumerate() {
            for t in self.resolve_one(m, &format!("models[{i}]"), None)? {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        let first = targets.first().cloned();
        targets.retain(|t| {
            self.inner.providers.get(&t.provider).is_none_or(|entry| {
                entry
                    .adapter
                    .as_ref()
                    .is_none_or(|adapter| adapter.supports_embeddings())
            })
        });
        match first {
            Some(first) if targets.is_empty() => Err(no_embeddings(&first.provider, &first.model)),
            _ => Ok(targets),
        }
    }

    /// Opens an embeddings request's ledger record and reserves its worst case on its budgets:
    /// the input's size bound at the dearest input price of the targets (embeddings have no
    /// output tokens). The embeddings sibling of the chat path's `accept`.
    async fn accept_embeddings(
        &self,
        request: &EmbeddingRequest,
        targets: &[Target],
        context: &CallContext,
    ) -> Result<Ticket> {
        self.admit(
            Admission {
                endpoint: ENDPOINT,
                stream: false,
                model: &request.model,
                fallbacks: request.models.as_deref(),
                user: request.user.as_deref(),
                metadata: request.metadata.as_ref(),
                size: input_size(&request.input),
                // Embeddings have no output tokens.
                max_output: Some(0),
                choices: 1,
            },
            request,
            targets,
            context,
        )
        .await
    }

    async fn embed_once(
        &self,
        request: &EmbeddingRequest,
        target: &Target,
        _in_flight: InFlight,
    ) -> Result<(EmbeddingResponse, Duration)> {
        let (entry, adapter) = self.adapter(target)?;
        let total = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(entry.timeout);
        let started = Instant::now();
        let upstream = adapter.encode_embeddings(request, &target.model)?;
        let transport = entry.transport.as_ref().unwrap_or(&self.inner.transport);
        let response = transport.send(adapter.id(), upstream, total).await?;
        let ttfb = started.elapsed();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let remaining = (started + total).saturating_duration_since(Instant::now());
        let body = transport
            .read_body(adapter.id(), response, remaining)
            .await?;
        if !(200..300).contains(&status) {
            return Err(adapter.decode_error(status, &headers, &body));
        }
        let mut answer = adapter.decode_embeddings(&body)?;
        conform(&mut answer, request, adapter.id())?;
        Ok((answer, ttfb))
    }
}

/// Puts a provider's answer in the client's terms: one embedding per input, in input order, in
/// the asked encoding. An answer that cannot be (a missing vector, bad base64) is a failed
/// attempt, so the next target can serve instead.
fn conform(
    answer: &mut EmbeddingResponse,
    request: &EmbeddingRequest,
    provider: &str,
) -> Result<()> {
    let bad = |what: String| {
        Error::new(
            ErrorKind::Connection,
            format!("provider `{provider}` sent {what}"),
        )
        .with_provider(provider)
    };
    let wanted = request.input.len();
    if answer.data.len() != wanted {
        return Err(bad(format!(
            "{} embeddings for {wanted} inputs",
            answer.data.len()
        )));
    }
    // Providers number their vectors; one that does not (every index 0) is taken in order.
    let numbered = {
        let mut seen = vec![false; wanted];
        answer.data.iter().all(|e| {
            usize::try_from(e.index)
                .ok()
                .and_then(|i| seen.get_mut(i))
                .is_some_and(|s| !std::mem::replace(s, true))
        })
    };
    if numbered {
        answer.data.sort_by_key(|e| e.index);
    }
    let format = request.encoding_format.unwrap_or_default();
    for (i, item) in answer.data.iter_mut().enumerate() {
        item.index = u32::try_from(i).unwrap_or(u32::MAX);
        item.object = "embedding".to_owned();
        let vector = std::mem::replace(
            &mut item.embedding,
            crate::types::EmbeddingVector::Float(Vec::new()),
        );
        item.embedding = vector
            .into_format(format)
            .map_err(|e| bad(e.message().to_owned()))?;
    }
    Ok(())
}

/// The input's size in tokens: text estimated and bounded like a chat prompt (a token is at
/// least one byte), token ids counted exactly.
fn input_size(input: &EmbeddingInput) -> PromptSize {
    let text = |t: &str| PromptSize {
        estimate: tokens::estimate_text(t),
        bound: t.len() as u64,
    };
    let ids = |n: usize| PromptSize {
        estimate: n as u64,
        bound: n as u64,
    };
    let sizes: Vec<PromptSize> = match input {
        EmbeddingInput::Text(t) => vec![text(t)],
        EmbeddingInput::Texts(ts) => ts.iter().map(|t| text(t)).collect(),
        EmbeddingInput::Tokens(t) => vec![ids(t.len())],
        EmbeddingInput::TokenArrays(ts) => ts.iter().map(|t| ids(t.len())).collect(),
    };
    sizes
        .into_iter()
        .fold(PromptSize::default(), |a, b| PromptSize {
            estimate: a.estimate + b.estimate,
            bound: a.bound + b.bound,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::{Embedding, EmbeddingVector, JsonObject};

    fn answer(indices: &[u32]) -> EmbeddingResponse {
        EmbeddingResponse {
            object: "list".into(),
            data: indices
                .iter()
                .map(|&i| Embedding::new(i, vec![i as f32 + 0.5]))
                .collect(),
            model: String::new(),
            usage: None,
            provider: None,
            extra: JsonObject::new(),
        }
    }

    #[test]
    fn answers_come_back_in_input_order_and_count() {
        let request = EmbeddingRequest {
            input: EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        let mut shuffled = answer(&[1, 0]);
        conform(&mut shuffled, &request, "p").unwrap();
        assert_eq!(
            shuffled.data[0].embedding,
            EmbeddingVector::Float(vec![0.5])
        );
        // Unnumbered (all 0): taken in order and renumbered.
        let mut unnumbered = answer(&[0, 0]);
        conform(&mut unnumbered, &request, "p").unwrap();
        assert_eq!(unnumbered.data[1].index, 1);
        let err = conform(&mut answer(&[0]), &request, "p").unwrap_err();
        assert!(
            err.message().contains("1 embeddings for 2 inputs"),
            "{}",
            err.message()
        );
    }
}
