//! A streamed answer printed as it arrives, then the usage chunk.
//!
//! Run: `cargo run -p opengateway-examples --example stream`

use std::io::Write;

use futures_util::StreamExt;
use opengateway::types::ChatCompletionRequest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (gateway, _mock) = opengateway_examples::demo_gateway("").await?;
    let request: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
        "model": "mock/mock-gpt",
        "messages": [{"role": "user", "content": "Tell me a short story."}],
        "stream": true,
        "stream_options": {"include_usage": true}
    }))?;
    let mut stream = gateway.chat_stream(request).await?;
    println!("streaming from {}:", stream.route().provider);
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(Some(text)) = &choice.delta.content {
                write!(out, "{text}")?;
                out.flush()?;
            }
            if let Some(reason) = &choice.finish_reason {
                writeln!(out, "\n[finish_reason: {reason}]")?;
            }
        }
        if let Some(usage) = chunk.usage() {
            println!(
                "[usage: {} tokens, ${:.6}]",
                usage.total_tokens,
                usage.cost.unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
