//! Ordered fallback: the alias `smart` tries a provider that is down, then the mock, and the
//! route shows every attempt.
//!
//! Run: `cargo run -p opengateway-examples --example fallback`

use opengateway::types::{ChatCompletionRequest, ChatMessage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Port 9 (discard) on loopback: nothing listens there, so the first target fails fast.
    let extra = "  down: { type: openai, api_base: \"http://127.0.0.1:9/v1\", api_key: x }\n\
                 models:\n  - name: smart\n    targets: [down/gpt-4o, mock/mock-gpt]\n\
                 router: { retries: 0 }\n";
    let (gateway, _mock) = opengateway_examples::demo_gateway(extra).await?;
    let request = ChatCompletionRequest {
        model: "smart".into(),
        messages: vec![ChatMessage::user("Are you there?")],
        ..Default::default()
    };
    let answer = gateway.chat(request).await?;
    println!("served by {}/{}", answer.route.provider, answer.route.model);
    for (i, attempt) in answer.route.attempts.iter().enumerate() {
        let outcome = attempt.error_message.as_deref().unwrap_or("ok");
        println!(
            "  attempt {}: {}/{} after {} ms: {}",
            i + 1,
            attempt.provider,
            attempt.model,
            attempt.latency_ms,
            outcome
        );
    }
    Ok(())
}
