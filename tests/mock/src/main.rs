//! `opengateway-mock`: serves the mock provider until SIGTERM/SIGINT.
//!
//! Prints `listening on http://ADDR` as its only stdout line once bound, so a test harness
//! started with `--listen 127.0.0.1:0` can learn the port.

use std::{
    io::{self, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
};

use clap::Parser;
use opengateway_mock::{MockConfig, MockServer};

/// Mock LLM provider (OpenAI, Anthropic and Gemini wire formats) for opengateway's tests and demos.
#[derive(Debug, Parser)]
#[command(name = "opengateway-mock", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Default delay between stream chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Default delay before response headers, in milliseconds.
    #[arg(long, default_value_t = 0)]
    first_byte_delay_ms: u64,
    /// Default number of content pieces per stream (default: one per word).
    #[arg(long)]
    chunks: Option<usize>,
    /// Default assistant text (default: echo the last user message).
    #[arg(long)]
    content: Option<String>,
    /// Directory of recorded fixtures (`<provider>/<case>/`) replayed for models named
    /// `fixture--<provider>--<case>`.
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// Keep no request log (`GET /mock/requests` stays empty): for load tests.
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = MockConfig {
        chunk_delay_ms: args.chunk_delay_ms,
        first_byte_delay_ms: args.first_byte_delay_ms,
        chunks: args.chunks,
        content: args.content,
        fixtures_dir: args.fixtures,
        no_record: args.no_record,
    };
    let server = match MockServer::start_on(args.listen, config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("opengateway-mock: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = announce(server.addr()) {
        eprintln!("opengateway-mock: cannot write to stdout: {err}");
        return ExitCode::FAILURE;
    }
    shutdown_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Harnesses block reading this line, so it must be flushed even when stdout is a pipe.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without signal support, run until killed rather than exit at once.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
