//! The Gemini API's wire types: the `GenerateContentRequest` and `GenerateContentResponse`
//! bodies, with the `Content`/`Part` types both directions share.

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `GenerateContentRequest`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiRequest {
    pub(super) contents: Vec<GeminiContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system_instruction: Option<GeminiSystemInstruction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<GeminiTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_config: Option<GeminiToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) safety_settings: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cached_content: Option<Value>,
    #[serde(skip_serializing_if = "GeminiGenerationConfig::is_empty")]
    pub(super) generation_config: GeminiGenerationConfig,
}

#[derive(Debug, Serialize)]
pub(super) struct GeminiSystemInstruction {
    pub(super) parts: Vec<GeminiPart>,
}

/// `Content`: a role and its parts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(super) parts: Vec<GeminiPart>,
}

/// `Part`: exactly one of the data fields, plus the thought flag and signature.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) thought: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) thought_signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) inline_data: Option<GeminiBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) file_data: Option<GeminiFileData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) function_call: Option<GeminiFunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) function_response: Option<GeminiFunctionResponse>,
}

impl GeminiPart {
    pub(super) fn text(text: impl Into<String>) -> Self {
        GeminiPart {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    pub(super) fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

// Response parts are read leniently (`default`): a part the adapter does not translate must
// not make the whole answer unreadable.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiBlob {
    #[serde(default)]
    pub(super) mime_type: String,
    #[serde(default)]
    pub(super) data: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiFileData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) mime_type: Option<String>,
    #[serde(default)]
    pub(super) file_uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GeminiFunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) args: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GeminiFunctionResponse {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) response: Value,
}

/// `Tool`: function declarations, or a built-in tool.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiTool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) function_declarations: Option<Vec<GeminiFunctionDeclaration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) google_search: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiFunctionDeclaration {
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parameters_json_schema: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiToolConfig {
    pub(super) function_calling_config: GeminiFunctionCallingConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiFunctionCallingConfig {
    pub(super) mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) allowed_function_names: Option<Vec<String>>,
}

/// `GenerationConfig`.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiGenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_json_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_config: Option<GeminiThinkingConfig>,
}

impl GeminiGenerationConfig {
    fn is_empty(&self) -> bool {
        *self == GeminiGenerationConfig::default()
    }
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_budget: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_level: Option<&'static str>,
}

/// `GenerateContentResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiResponse {
    #[serde(default, deserialize_with = "null_default")]
    pub(super) candidates: Vec<GeminiCandidate>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<GeminiPromptFeedback>,
    #[serde(default)]
    pub(super) usage_metadata: Option<GeminiUsage>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiCandidate {
    #[serde(default)]
    pub(super) content: Option<GeminiContent>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) finish_message: Option<String>,
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(default)]
    pub(super) logprobs_result: Option<GeminiLogprobsResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiPromptFeedback {
    #[serde(default)]
    pub(super) block_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiUsage {
    #[serde(default)]
    pub(super) prompt_token_count: Option<u64>,
    #[serde(default)]
    pub(super) candidates_token_count: Option<u64>,
    #[serde(default)]
    pub(super) thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub(super) cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub(super) tool_use_prompt_token_count: Option<u64>,
    #[serde(default)]
    pub(super) total_token_count: Option<u64>,
    #[serde(default, deserialize_with = "null_default")]
    pub(super) prompt_tokens_details: Vec<GeminiModalityCount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiModalityCount {
    #[serde(default)]
    pub(super) modality: String,
    #[serde(default)]
    pub(super) token_count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiLogprobsResult {
    #[serde(default, deserialize_with = "null_default")]
    pub(super) top_candidates: Vec<GeminiTopCandidates>,
    #[serde(default, deserialize_with = "null_default")]
    pub(super) chosen_candidates: Vec<GeminiLogprobCandidate>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GeminiTopCandidates {
    #[serde(default, deserialize_with = "null_default")]
    pub(super) candidates: Vec<GeminiLogprobCandidate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeminiLogprobCandidate {
    #[serde(default)]
    pub(super) token: String,
    #[serde(default)]
    pub(super) log_probability: f64,
}

/// Reads `null` as the type's default (Google omits empty fields, but proxies write `null`).
pub(super) fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}
