//! Anthropic Messages (`POST {api_base}/messages`): translation between the OpenAI Chat
//! Completions shape and Anthropic's request, response, named-event stream and error bodies.
//!
//! API reference: <https://docs.claude.com/en/api/messages>, streaming:
//! <https://docs.claude.com/en/docs/build-with-claude/streaming>.
//!
//! Anything Anthropic cannot honour that would change the answer (log probabilities, `n` > 1,
//! penalties, `logit_bias`, `seed`, audio, predicted outputs, free-form JSON mode, custom
//! tools) is refused with a 400 naming the parameter, never dropped silently.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use http::header::HeaderMap;
use serde::Deserialize;

use self::request::encode_request;
use self::response::{decode_error_body, decode_message, parse_json};
use self::stream::AnthropicStreamDecoder;
use super::openai::retry_after;
use super::{Endpoint, Provider, StreamContext, StreamDecoder, UpstreamRequest, base_headers};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{ChatCompletion, ChatCompletionRequest};

/// The API version every request is pinned to; a config header can override it.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// An Anthropic provider entry: id, base URL (`.../v1`), key and extra headers.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    id: String,
    endpoint: Endpoint,
}

impl AnthropicProvider {
    /// Builds the adapter; `api_key` of `None` or `""` sends no `x-api-key` header. Extra
    /// headers (e.g. `anthropic-beta`) are added last and replace defaults of the same name.
    pub fn new(
        id: &str,
        api_base: &str,
        api_key: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Result<Self> {
        let auth = api_key
            .filter(|k| !k.is_empty())
            .map(|k| ("x-api-key", k.to_owned()));
        let headers = base_headers(
            id,
            auth,
            &[("anthropic-version", ANTHROPIC_VERSION)],
            extra_headers,
        )?;
        Ok(AnthropicProvider {
            id: id.to_owned(),
            endpoint: Endpoint::new(api_base, headers),
        })
    }
}

impl Provider for AnthropicProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn encode_chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest> {
        let body = encode_request(request, model, stream)?;
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        Ok(self.endpoint.post("/messages", bytes.into()))
    }

    fn decode_chat(&self, body: &[u8]) -> Result<ChatCompletion> {
        decode_message(&self.id, body, unix_now())
    }

    fn stream_decoder(&self, context: StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicStreamDecoder::new(&self.id, context, unix_now()))
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        decode_error_body(&self.id, status, body).with_retry_after(retry_after(headers))
    }

    fn list_models_request(&self) -> Option<UpstreamRequest> {
        // The list is paginated (20 per page by default); 1000 is the largest page allowed.
        Some(self.endpoint.get("/models?limit=1000"))
    }

    fn decode_model_list(&self, body: &[u8]) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct AnthropicModelList {
            data: Vec<AnthropicModelEntry>,
        }
        #[derive(Deserialize)]
        struct AnthropicModelEntry {
            id: String,
        }
        let list: AnthropicModelList = parse_json(&self.id, body, "model list")?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
