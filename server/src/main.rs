//! `opengateway`: the command line — `serve` runs the OpenAI-compatible gateway.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use opengateway::Gateway;
use opengateway::config::{AuthMode, Config};

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

mod usage;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENGATEWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { listen } => runtime.block_on(serve(&cli.config, listen)),
        Command::Models => load_config(&cli.config).and_then(|config| print_models(&config)),
        Command::Usage(args) => {
            load_config(&cli.config).and_then(|config| usage::print(&config, &args))
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

async fn serve(config_path: &PathBuf, listen: Option<String>) -> Result<(), String> {
    let mut config = load_config(config_path)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let addr = config.server.listen_addr().map_err(|e| e.to_string())?;
    if config.server.auth == AuthMode::Keys {
        return Err(
            "server.auth is `keys` (the default), but API keys arrive with gateway mode and are not available in this version yet. \
             To serve without authentication, set it explicitly in the config:  server: { auth: none }"
                .to_owned(),
        );
    }
    let db_path = config.server.sqlite_path().map_err(|e| e.to_string())?;
    let (_store, schema) = opengateway::store::open(&db_path).map_err(|e| e.to_string())?;
    tracing::info!(path = %db_path.display(), schema, "store ready");

    // The usage ledger lives in the server's store unless the config puts it elsewhere; the
    // gateway creates and migrates it, and marks requests a killed server left open.
    if config.ledger.database.is_none() {
        config.ledger.database = Some(config.server.database.clone());
    }
    let mut gateway = Gateway::from_config(config.clone()).map_err(|e| e.to_string())?;
    let _mock = start_demo_mock(&mut config, &mut gateway).await?;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::warn!(
        "authentication is OFF (server.auth: none): anyone who can reach http://{local} can use the configured providers"
    );
    let example_model = example_model(&gateway);
    // The first stdout line is read by test harnesses to learn the port.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "opengateway listening on http://{local}");
    let _ = writeln!(
        out,
        "try: curl http://{local}/v1/chat/completions -H 'Content-Type: application/json' -d '{{\"model\": \"{example_model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
    );
    let _ = out.flush();

    let gateway_for_flush = gateway.clone();
    axum::serve(listener, opengateway_server::app(gateway))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    // Requests in flight are done: write their records before the process ends.
    gateway_for_flush.flush().await;
    tracing::info!("stopped");
    Ok(())
}

/// When nothing is configured and no provider key is set, serve the bundled mock provider as
/// `mock/...`, so the gateway can be tried at once on a fresh machine.
#[cfg(feature = "demo-mock")]
async fn start_demo_mock(
    config: &mut Config,
    gateway: &mut Gateway,
) -> Result<Option<opengateway_mock::MockServer>, String> {
    if !config.providers.is_empty() || gateway.has_usable_provider() {
        return Ok(None);
    }
    let mock = opengateway_mock::MockServer::start(opengateway_mock::MockConfig::default())
        .await
        .map_err(|e| format!("cannot start the bundled mock provider: {e}"))?;
    config.providers.insert(
        "mock".to_owned(),
        opengateway::config::ProviderConfig {
            kind: Some(opengateway::providers::ProviderType::Openai),
            api_key: Some("mock".to_owned()),
            api_base: Some(mock.base_url()),
            ..Default::default()
        },
    );
    *gateway = Gateway::from_config(config.clone()).map_err(|e| e.to_string())?;
    tracing::warn!(
        api_base = %mock.base_url(),
        "no providers configured and no provider keys set: serving the bundled mock provider as `mock/<any model>`"
    );
    Ok(Some(mock))
}

#[cfg(not(feature = "demo-mock"))]
async fn start_demo_mock(_: &mut Config, _: &mut Gateway) -> Result<Option<()>, String> {
    Ok(None)
}

fn example_model(gateway: &Gateway) -> String {
    let config = gateway.config();
    if let Some(alias) = config.models.first() {
        return alias.name.clone();
    }
    if config.providers.contains_key("mock") {
        return "mock/mock-gpt".to_owned();
    }
    if let Some(id) = config.providers.keys().next() {
        return format!("{id}/MODEL");
    }
    "openai/gpt-4o-mini".to_owned()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
