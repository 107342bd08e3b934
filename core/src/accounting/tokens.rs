//! Local token counts, for when a provider reports none (or the request ends before it does)
//! and for the worst case a budget must reserve.
//!
//! A real tokenizer (o200k) costs 50–70 MB of memory and 60–190 ms to load, more than the whole
//! gateway is allowed; so counts are computed from the text instead, in two flavours:
//! - an **estimate**, OpenAI's rule of thumb (about four characters of English per token; a
//!   character outside ASCII, such as CJK, a token of its own), recorded with `estimated: true`;
//! - a **bound** that real tokenizers never exceed for text: byte-level BPE tokenizers (OpenAI,
//!   Anthropic, Gemini's byte fallback) emit at least one byte per token, so a text of N UTF-8
//!   bytes is at most N tokens. Images, audio and files get a fixed allowance per part.

use crate::types::{
    ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, StopSequences,
};

/// Tokens of message framing (role, separators) per message, as OpenAI documents it.
const PER_MESSAGE: u64 = 4;
/// Upper bound of the framing per message.
const PER_MESSAGE_BOUND: u64 = 16;
/// Tokens that prime the reply.
const REPLY_PRIMING: u64 = 3;
/// A typical image: a 1024×1024 picture at OpenAI's high detail (4 tiles × 170 + 85).
const IMAGE_ESTIMATE: u64 = 765;
/// The most any provider charges for one image (OpenAI's largest high-detail tiling is under
/// 1,500; Anthropic's 1.15 MP cap is about 1,600).
const IMAGE_BOUND: u64 = 2_500;

/// The estimated tokens of a text: a token per four ASCII characters, one per other character.
pub fn estimate_text(text: &str) -> u64 {
    // Counted by bytes, which the compiler vectorizes (a stream counts every delta): in UTF-8 an
    // ASCII character is one byte below 0x80, and every other character has exactly one lead
    // byte, 0xC0 or above.
    let (ascii, other) = text.bytes().fold((0u64, 0u64), |(ascii, other), b| {
        (ascii + u64::from(b < 0x80), other + u64::from(b >= 0xC0))
    });
    ascii.div_ceil(4) + other
}

/// A prompt's size in tokens: the estimate and the bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptSize {
    /// Best local estimate.
    pub estimate: u64,
    /// What the prompt cannot exceed (for text; images, audio and files by allowance).
    pub bound: u64,
}

impl PromptSize {
    fn text(&mut self, text: &str) {
        self.estimate += estimate_text(text);
        self.bound += text.len() as u64;
    }

    fn fixed(&mut self, estimate: u64, bound: u64) {
        self.estimate += estimate;
        self.bound += bound;
    }

    fn content(&mut self, content: &MessageContent) {
        match content {
            MessageContent::Text(text) => self.text(text),
            MessageContent::Parts(parts) => {
                for part in parts {
                    match part {
                        ContentPart::Text(t) => self.text(&t.text),
                        ContentPart::Refusal(r) => self.text(&r.refusal),
                        ContentPart::ImageUrl(image) => {
                            if image.image_url.detail.as_deref() == Some("low") {
                                self.fixed(85, 85);
                            } else {
                                self.fixed(IMAGE_ESTIMATE, IMAGE_BOUND);
                            }
                        }
                        // Base64 of encoded media: tokens scale with the duration or pages,
                        // roughly with the size.
                        ContentPart::InputAudio(audio) => {
                            let bytes = audio.input_audio.data.len() as u64;
                            self.fixed(bytes / 400 + 1, bytes / 40 + 100);
                        }
                        ContentPart::File(file) => {
                            let bytes = file.file.file_data.as_ref().map_or(0, String::len) as u64;
                            self.fixed(bytes / 40 + 1, bytes / 4 + 2_000);
                        }
                    }
                }
            }
        }
    }
}

/// The size of everything a request sends as input: messages, tool definitions, the response
/// schema and stop sequences.
pub fn prompt_size(request: &ChatCompletionRequest) -> PromptSize {
    let mut size = PromptSize::default();
    size.fixed(REPLY_PRIMING, REPLY_PRIMING);
    for message in &request.messages {
        size.fixed(PER_MESSAGE, PER_MESSAGE_BOUND);
        match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => size.content(&m.content),
            ChatMessage::User(m) => size.content(&m.content),
            ChatMessage::Tool(m) => size.content(&m.content),
            ChatMessage::Function(m) => size.text(m.content.as_deref().unwrap_or("")),
            ChatMessage::Assistant(m) => {
                if let Some(Some(content)) = &m.content {
                    size.content(content);
                }
                for text in [&m.refusal, &m.reasoning_content].into_iter().flatten() {
                    size.text(text);
                }
                for call in m.tool_calls.iter().flatten() {
                    size.text(&serde_json::to_string(call).unwrap_or_default());
                }
            }
        }
    }
    if let Some(tools) = &request.tools {
        size.text(&serde_json::to_string(tools).unwrap_or_default());
    }
    if let Some(format) = &request.response_format {
        size.text(&serde_json::to_string(format).unwrap_or_default());
    }
    match &request.stop {
        Some(StopSequences::One(s)) => size.text(s),
        Some(StopSequences::Many(list)) => list.iter().for_each(|s| size.text(s)),
        None => {}
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_about_four_characters_a_token() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("Hello"), 2);
        assert_eq!(
            estimate_text("The quick brown fox jumps over the lazy dog."),
            11
        );
        assert_eq!(estimate_text("日本語"), 3);
        // Counted by bytes, the same as by characters: two-, three- and four-byte ones.
        for text in [
            "naïve café",
            "日本語 and English",
            "emoji 🦀🦀 ok",
            "Ωμέγα",
            "a\u{10FFFF}b",
        ] {
            let ascii = text.chars().filter(char::is_ascii).count() as u64;
            let other = text.chars().count() as u64 - ascii;
            assert_eq!(estimate_text(text), ascii.div_ceil(4) + other, "{text}");
        }
    }

    #[test]
    fn the_bound_is_never_below_the_estimate() {
        let request: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture? 日本語"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "look", "arguments": "{\"x\": 1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a cat"}
            ],
            "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
            "stop": ["END"]
        }))
        .unwrap();
        let size = prompt_size(&request);
        assert!(size.estimate > IMAGE_ESTIMATE, "{size:?}");
        assert!(
            size.bound >= size.estimate + (IMAGE_BOUND - IMAGE_ESTIMATE),
            "{size:?}"
        );
    }
}
