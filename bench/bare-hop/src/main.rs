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
struct Args {
    listen: SocketAddr,
    upstream: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--listen {value}: {e}"))?,
                )
            }
            "--upstream" => upstream = Some(value.trim_end_matches('/').to_owned()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
    })
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\nusage: opengateway-bare-hop --listen ADDR --upstream URL");
            return std::process::ExitCode::from(2);
        }
    };
    // The gateway's runtime choice (server/src/main.rs): single-threaded on one CPU.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.event_interval(4096);
        builder
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
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
        upstream: args.upstream.into(),
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
