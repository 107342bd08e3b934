//! `opengateway keys`: create, list and revoke API keys in the store the server reads, so a
//! change counts on the server's next request.

use std::io::Write;

use chrono::{DateTime, Utc};
use opengateway::accounting::BudgetPeriod;
use opengateway::config::Config;
use opengateway::keys::{KeyLimits, KeyReport, KeyStore};

use crate::KeysCommand;

/// Runs one `keys` subcommand.
pub(crate) fn run(config: &Config, command: &KeysCommand) -> Result<(), String> {
    let path = config.server.sqlite_path().map_err(|e| e.to_string())?;
    let store = KeyStore::open(&path).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create {
            name,
            budget_usd,
            budget_period,
            rpm,
            tpm,
            models,
            json,
        } => {
            let period = match budget_period.as_deref() {
                None | Some("total") => BudgetPeriod::Total,
                Some("day") => BudgetPeriod::Day,
                Some("month") => BudgetPeriod::Month,
                Some(other) => {
                    return Err(format!(
                        "--budget-period `{other}` is not one of total, day, month"
                    ));
                }
            };
            let limits = KeyLimits {
                rpm: *rpm,
                tpm: *tpm,
                budget_usd: *budget_usd,
                budget_period: period,
                models: models.iter().map(|m| m.trim().to_owned()).collect(),
            };
            let created = store
                .create(name, limits)
                .map_err(|e| format!("cannot create the key: {e}"))?;
            if *json {
                let text = serde_json::to_string_pretty(&created).map_err(|e| e.to_string())?;
                let _ = writeln!(out, "{text}");
            } else {
                let _ = writeln!(
                    out,
                    "Created API key {} ({}). Store it now: it is shown only this once.",
                    created.key.id, created.key.name
                );
                let _ = writeln!(out, "{}", created.secret);
            }
        }
        KeysCommand::List { json } => {
            let keys = store.list().map_err(|e| e.to_string())?;
            if *json {
                let text = serde_json::to_string_pretty(&keys).map_err(|e| e.to_string())?;
                let _ = writeln!(out, "{text}");
            } else {
                table(&mut out, &keys);
            }
        }
        KeysCommand::Revoke { id } => {
            let key = store.revoke(id).map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "Revoked API key {} ({}, {}…): refused from the next request on.",
                key.id, key.name, key.prefix
            );
        }
    }
    Ok(())
}

fn table(out: &mut impl Write, keys: &[KeyReport]) {
    let time = |ms: Option<i64>| {
        ms.and_then(DateTime::<Utc>::from_timestamp_millis)
            .map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    let opt = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let mut lines = vec![
        [
            "id",
            "name",
            "prefix",
            "rpm",
            "tpm",
            "budget $",
            "models",
            "requests",
            "spent $",
            "created",
            "last used",
            "revoked",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for k in keys {
        let limits = &k.key.limits;
        let budget = limits
            .budget_usd
            .map_or("-".to_owned(), |b| match limits.budget_period {
                BudgetPeriod::Total => format!("{b:.2}"),
                period => format!("{b:.2}/{}", period.as_str()),
            });
        let models = if limits.models.is_empty() {
            "*".to_owned()
        } else {
            limits.models.join(",")
        };
        lines.push(vec![
            k.key.id.clone(),
            k.key.name.clone(),
            format!("{}…", k.key.prefix),
            opt(limits.rpm),
            opt(limits.tpm),
            budget,
            models,
            k.requests.to_string(),
            format!("{:.6}", k.spent_usd),
            time(Some(k.key.created_at_ms)),
            time(k.last_used_at_ms),
            time(k.key.revoked_at_ms),
        ]);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
}
