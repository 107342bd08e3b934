//! One chat completion: the answer, who served it, and what it cost.
//!
//! Run: `cargo run -p opengateway-examples --example chat`

use opengateway::types::{ChatCompletionRequest, ChatMessage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (gateway, _mock) = opengateway_examples::demo_gateway("").await?;
    let request = ChatCompletionRequest {
        model: "mock/mock-gpt".into(),
        messages: vec![
            ChatMessage::system("You are terse."),
            ChatMessage::user("What is opengateway?"),
        ],
        ..Default::default()
    };
    let answer = gateway.chat(request).await?;
    let text = answer.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();
    let usage = answer.usage.clone().unwrap_or_default();
    println!("answer:   {text}");
    println!(
        "provider: {} (model {})",
        answer.route.provider, answer.route.model
    );
    println!(
        "tokens:   {} in, {} out; cost ${:.6}",
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost.unwrap_or(0.0)
    );
    Ok(())
}
