//! A bill you can read: requests for two users, a daily budget, a hook that sees every record,
//! and the ledger's totals by user and model.
//!
//! Run: `cargo run -p opengateway-examples --example cost_report`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opengateway::CallContext;
use opengateway::accounting::{GroupBy, UsageQuery};
use opengateway::types::{ChatCompletionRequest, ChatMessage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The mock model priced like a small model: $0.40 in, $1.60 out per million tokens; a 2%
    // platform fee; each user may spend $0.0001 a day.
    let extra = "pricing:\n  platform_fee_percent: 2\n  models:\n    mock/mock-gpt: { input_cost_per_token: 0.0000004, output_cost_per_token: 0.0000016, max_output_tokens: 16 }\n\
                 budgets:\n  - { user: \"*\", limit_usd: 0.0001, period: day }\n";
    let (gateway, _mock) = opengateway_examples::demo_gateway(extra).await?;
    let ended = Arc::new(AtomicUsize::new(0));
    let counter = ended.clone();
    gateway.on_request_end(move |record| {
        counter.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "hook: {} {} {} ${:.8}",
            record.id,
            record.status,
            record.billed_model(),
            record.cost.total_usd
        );
    });

    for (user, questions) in [("ada", 2), ("bob", 6)] {
        let context = CallContext {
            user: Some(user.into()),
            tags: vec!["example".into()],
            ..Default::default()
        };
        for i in 0..questions {
            let request = ChatCompletionRequest {
                model: "mock/mock-gpt".into(),
                messages: vec![ChatMessage::user(format!("Question {i}?"))],
                ..Default::default()
            };
            match gateway.chat_with(request, &context).await {
                Ok(answer) => println!(
                    "{user}: {} tokens, ${:.8}",
                    answer.usage.as_ref().map_or(0, |u| u.total_tokens),
                    answer.usage.as_ref().and_then(|u| u.cost).unwrap_or(0.0)
                ),
                Err(e) => println!("{user}: refused ({}): {}", e.status(), e.message()),
            }
        }
    }

    gateway.flush().await;
    let rows = gateway.usage(&UsageQuery {
        group_by: vec![GroupBy::User, GroupBy::Model],
        ..Default::default()
    })?;
    println!(
        "\n{:<6} {:<16} {:>8} {:>6} {:>8} {:>12} {:>12}",
        "user", "model", "requests", "ok", "tokens", "fee $", "total $"
    );
    for row in &rows {
        let value = |by| row.group.get(&by).cloned().flatten().unwrap_or_default();
        println!(
            "{:<6} {:<16} {:>8} {:>6} {:>8} {:>12.8} {:>12.8}",
            value(GroupBy::User),
            value(GroupBy::Model),
            row.requests,
            row.ok,
            row.prompt_tokens + row.completion_tokens,
            row.fee_usd,
            row.total_cost_usd
        );
    }
    // Hooks run on a thread of their own; give the last one a moment before exiting.
    for _ in 0..50 {
        if ended.load(Ordering::Relaxed) == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    println!("hooks saw {} requests", ended.load(Ordering::Relaxed));
    Ok(())
}
