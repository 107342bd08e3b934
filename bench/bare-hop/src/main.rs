//! `opengateway-bare-hop --listen ADDR --upstream URL`: forwards every request to `URL` + its
//! path and streams the answer back, nothing else — no parsing, accounting or logging.
//!
//! It is built on the stack the gateway serves with (axum on hyper, reqwest with rustls, tokio's
//! single-threaded runtime on one CPU, the same client and runtime settings), so that
//! `bench/server/run.py` can show, in the same run, what that stack costs by itself beside nginx
//! (the bare-hop floor) and what the gateway's own work adds on top of it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

/// Where to listen and where to send what arrives.
#[derive(clap::Parser, Debug)]
#[command(
    name = "opengateway-bare-hop",
    about = "A bare proxy on the gateway's HTTP stack, for the benchmarks"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port, which is printed).
    #[arg(long)]
    listen: SocketAddr,
    /// Base URL every request is forwarded to, with the request's path appended.
    #[arg(long)]
    upstream: String,
}

/// What every request handler shares: the pooled client and the upstream's base URL.
#[derive(Clone)]
struct Hop {
    client: reqwest::Client,
    upstream: std::sync::Arc<str>,
}

async fn forward(State(hop): State<Hop>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let url = format!("{}{}", hop.upstream, parts.uri.path());
    let mut headers = HeaderMap::new();
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    let upstream = hop
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send();
    // The gateway bounds the wait for the answer's headers the same way (core/src/transport.rs).
    match tokio::time::timeout(Duration::from_secs(600), upstream).await {
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, "no answer in time").into_response(),
        Ok(Ok(answer)) => {
            let mut response = Response::builder().status(answer.status());
            if let Some(content_type) = answer.headers().get(header::CONTENT_TYPE) {
                response = response.header(header::CONTENT_TYPE, content_type.clone());
            }
            let body = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
            response.body(body).unwrap_or_else(|e| {
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            })
        }
        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    // The gateway's own runtime (single-threaded on one CPU), so both are measured alike.
    let runtime = match opengateway_server::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    // The gateway's transport settings (core/src/transport.rs).
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(600))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let hop = Hop {
        client,
        upstream: args.upstream.trim_end_matches('/').into(),
    };
    let app = axum::Router::new().fallback(forward).with_state(hop);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {address}");
    // As the gateway's server does (server/src/serve.rs): no delayed-ACK waits on small writes,
    // the routes resolved once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app.into_make_service())
        .await
        .map_err(|e| e.to_string())
}
