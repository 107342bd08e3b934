//! `opengateway usage`: ledger totals from the store, as a table or JSON.

use std::io::Write;

use opengateway::accounting::{
    GroupBy, LedgerSink, SqliteSink, UsageQuery, UsageTotals, new_instance_id,
};
use opengateway::config::{Config, LedgerStore};
use opengateway_server::admin::UsageParams;

use crate::UsageArgs;

/// Prints the totals the arguments ask for.
pub(crate) fn print(config: &Config, args: &UsageArgs) -> Result<(), String> {
    let mut ledger = config.ledger.clone();
    if ledger.database.is_none() {
        ledger.database = Some(config.server.database.clone());
    }
    let path = match ledger.store().map_err(|e| e.to_string())? {
        LedgerStore::Sqlite(path) => path,
        LedgerStore::Memory => {
            return Err(
                "the ledger is kept in memory (ledger.database: memory): there is no store to read"
                    .into(),
            );
        }
    };
    if !path.exists() {
        return Err(format!(
            "no store at {} yet: start the server once (opengateway serve) to create it",
            path.display()
        ));
    }
    let query = query(args)?;
    // Read-only use: this instance never recovers (marks) other processes' records.
    let sink = SqliteSink::open(&path, &new_instance_id()).map_err(|e| e.to_string())?;
    let rows = sink.totals(&query).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "{json}");
    } else {
        table(&mut out, &query.group_by, &rows);
    }
    Ok(())
}

fn query(args: &UsageArgs) -> Result<UsageQuery, String> {
    let params = UsageParams {
        by: Some(args.by.join(",")),
        since: args.since.clone(),
        until: args.until.clone(),
        key: args.key.clone(),
        user: args.user.clone(),
        model: args.model.clone(),
        provider: args.provider.clone(),
        tag: args.tag.clone(),
        ..Default::default()
    };
    params
        .query()
        .map_err(|(param, message)| format!("--{param} {message}"))
}

fn table(out: &mut impl Write, group_by: &[GroupBy], rows: &[UsageTotals]) {
    let mut header: Vec<String> = group_by.iter().map(|g| g.as_str().to_owned()).collect();
    header.extend(
        [
            "requests",
            "ok",
            "errors",
            "prompt",
            "completion",
            "cached",
            "reasoning",
            "provider $",
            "fee $",
            "total $",
        ]
        .map(str::to_owned),
    );
    let mut lines: Vec<Vec<String>> = vec![header];
    let mut total = UsageTotals::default();
    for row in rows {
        let mut line: Vec<String> = group_by
            .iter()
            .map(|g| {
                row.group
                    .get(g)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "-".to_owned())
            })
            .collect();
        line.extend(numbers(row));
        lines.push(line);
        add(&mut total, row);
    }
    if !group_by.is_empty() && rows.len() > 1 && !group_by.contains(&GroupBy::Tag) {
        let mut line = vec!["total".to_owned()];
        line.extend(std::iter::repeat_n(String::new(), group_by.len() - 1));
        line.extend(numbers(&total));
        lines.push(line);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c < group_by.len() {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
}

fn numbers(row: &UsageTotals) -> Vec<String> {
    vec![
        row.requests.to_string(),
        row.ok.to_string(),
        row.errors.to_string(),
        row.prompt_tokens.to_string(),
        row.completion_tokens.to_string(),
        row.cached_tokens.to_string(),
        row.reasoning_tokens.to_string(),
        format!("{:.6}", row.provider_cost_usd),
        format!("{:.6}", row.fee_usd),
        format!("{:.6}", row.total_cost_usd),
    ]
}

fn add(total: &mut UsageTotals, row: &UsageTotals) {
    total.requests += row.requests;
    total.ok += row.ok;
    total.errors += row.errors;
    total.prompt_tokens += row.prompt_tokens;
    total.completion_tokens += row.completion_tokens;
    total.cached_tokens += row.cached_tokens;
    total.reasoning_tokens += row.reasoning_tokens;
    total.provider_cost_usd += row.provider_cost_usd;
    total.fee_usd += row.fee_usd;
    total.total_cost_usd += row.total_cost_usd;
}
