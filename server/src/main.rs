//! `opengateway`: the command line — `serve` runs the OpenAI-compatible gateway; `keys`,
//! `usage` and `models` read and change the store it uses.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use opengateway::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "opengateway",
    version,
    about = "One OpenAI-compatible interface to every major LLM provider"
)]
struct Cli {
    /// Configuration file (YAML). When the default file does not exist, the gateway runs with
    /// the built-in defaults and the providers whose key variables are set.
    #[arg(long, global = true, default_value = "opengateway.yaml")]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the OpenAI-compatible HTTP API.
    Serve {
        /// Address to listen on, overriding `server.listen` (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Print the model catalog (with the config's own prices) as a table.
    Models,
    /// Print usage and cost totals from the ledger in the store (`server.database`).
    Usage(UsageArgs),
    /// Manage the API keys in the store (`server.database`), which a running server reads on
    /// every request.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// Spending cap in USD, platform fee included.
        #[arg(long)]
        budget_usd: Option<f64>,
        /// When the budget starts again from zero: total (never, the default), day or month.
        #[arg(long)]
        budget_period: Option<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute (prompt and completion).
        #[arg(long)]
        tpm: Option<u64>,
        /// Models the key may use, comma-separated: provider/model, provider/*, alias names.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Print JSON (the key's record and `secret`).
        #[arg(long)]
        json: bool,
    },
    /// List the keys: name, prefix, limits, spend, created, last used, revoked.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id: refused from the server's next request on; its usage stays.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct UsageArgs {
    /// Group by these, comma-separated: model, provider, key, user, tag, status, hour, day, month.
    #[arg(long, value_delimiter = ',')]
    pub(crate) by: Vec<String>,
    /// Only requests started at or after: `2026-11-01`, an RFC 3339 time, or `24h` / `7d` ago.
    #[arg(long)]
    since: Option<String>,
    /// Only requests started before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this API key.
    #[arg(long)]
    key: Option<String>,
    /// Only this end user.
    #[arg(long)]
    user: Option<String>,
    /// Only this model (`provider/model` or an alias).
    #[arg(long)]
    model: Option<String>,
    /// Only this provider id.
    #[arg(long)]
    provider: Option<String>,
    /// Only requests with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Print JSON (one array of rows) instead of a table.
    #[arg(long)]
    json: bool,
}

mod keys;
mod log_fields;
mod usage;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENGATEWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(log_fields::PlainFields)
        .init();
    let cli = Cli::parse();
    let runtime = match opengateway_server::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { listen } => load_config(&cli.config)
            .and_then(|config| runtime.block_on(opengateway_server::serve(config, listen))),
        Command::Models => load_config(&cli.config).and_then(|config| print_models(&config)),
        Command::Usage(args) => {
            load_config(&cli.config).and_then(|config| usage::print(&config, &args))
        }
        Command::Keys { command } => {
            load_config(&cli.config).and_then(|config| keys::run(&config, &command))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The catalog as a table: prices in USD per million tokens.
fn print_models(config: &Config) -> Result<(), String> {
    let catalog = opengateway::catalog::Catalog::for_config(config).map_err(|e| e.to_string())?;
    let per_m = |price: Option<f64>| price.map_or("-".to_owned(), |p| format!("{:.4}", p * 1e6));
    let count = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let flag = |on: Option<bool>, mark: &str| {
        if on == Some(true) {
            mark.to_owned()
        } else {
            String::new()
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<42} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10}  {:<29} checked",
        "model",
        "context",
        "max out",
        "in $/M",
        "out $/M",
        "cached $/M",
        "write $/M",
        "capabilities",
    );
    for (id, m) in catalog.models() {
        let capabilities = [
            flag(m.supports_function_calling, "tools"),
            flag(m.supports_vision, "vision"),
            flag(m.supports_response_schema, "schema"),
            flag(m.supports_reasoning, "reasoning"),
        ]
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(",");
        let _ = writeln!(
            out,
            "{:<42} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10}  {:<29} {}",
            id,
            count(m.max_input_tokens),
            count(m.max_output_tokens),
            per_m(m.input_cost_per_token),
            per_m(m.output_cost_per_token),
            per_m(m.cache_read_input_token_cost),
            per_m(m.cache_creation_input_token_cost),
            capabilities,
            m.checked.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

fn load_config(path: &PathBuf) -> Result<Config, String> {
    let default_path = path == &PathBuf::from("opengateway.yaml");
    if default_path && !path.exists() {
        tracing::info!(
            "no opengateway.yaml here: using defaults and provider keys from the environment"
        );
        return Ok(Config::default());
    }
    Config::from_file(path).map_err(|e| e.to_string())
}
