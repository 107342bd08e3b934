//! Running the server: bind, serve until told to stop, then write the ledger's last records.
//! The binary's `serve` subcommand and the Python binding's `opengateway.serve` share it.

use std::io::Write;
use std::net::SocketAddr;

use opengateway::Gateway;
use opengateway::config::{AuthMode, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server bound to its address and serving in the background until [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    local: SocketAddr,
    example_model: String,
    keys_required: bool,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    /// The address the server listens on (the real port when `:0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A model id the configuration can serve, for the `try: curl …` hint.
    pub fn example_model(&self) -> &str {
        &self.example_model
    }

    /// Whether `/v1/` requests need an API key (`server.auth: keys`).
    pub fn keys_required(&self) -> bool {
        self.keys_required
    }

    /// Asks the server to stop: it takes no new connections and finishes requests in flight.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until the server has stopped and the ledger holds every record.
    pub async fn wait(self) -> Result<(), String> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(format!("server task failed: {e}")),
        }
    }
}

/// Binds the server of `config` (on `listen` when given, else `server.listen`) and starts serving
/// in the background on the current tokio runtime.
pub async fn start(mut config: Config, listen: Option<String>) -> Result<Running, String> {
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let addr = config.server.listen_addr().map_err(|e| e.to_string())?;
    let db_path = config.server.sqlite_path().map_err(|e| e.to_string())?;
    let (_store, schema) = opengateway::store::open(&db_path).map_err(|e| e.to_string())?;
    tracing::info!(path = %db_path.display(), schema, "store ready");
    if config.server.auth == AuthMode::Keys {
        // Fail at start, not on the first request, when the key table cannot be read.
        let keys = opengateway::keys::KeyStore::open(&db_path).map_err(|e| e.to_string())?;
        let active = keys.active_count().map_err(|e| e.to_string())?;
        if active == 0 {
            tracing::warn!(
                "API keys are required (server.auth: keys) and there are none yet: create one with `opengateway keys create --name NAME`"
            );
        } else {
            tracing::info!(active, "API keys are required (server.auth: keys)");
        }
    }

    // The usage ledger lives in the server's store unless the config puts it elsewhere; the
    // gateway creates and migrates it, and marks requests a killed server left open.
    if config.ledger.database.is_none() {
        config.ledger.database = Some(config.server.database.clone());
    }
    let mut gateway = Gateway::from_config(config.clone()).map_err(|e| e.to_string())?;
    let mock = start_demo_mock(&mut config, &mut gateway).await?;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if config.server.auth == AuthMode::None {
        tracing::warn!(
            "authentication is OFF (server.auth: none): anyone who can reach http://{local} can use the configured providers"
        );
    }
    let example_model = example_model(&gateway);
    let keys_required = gateway.config().server.auth == AuthMode::Keys;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // The demo mock serves as long as the server does.
        let _mock = mock;
        let gateway_for_flush = gateway.clone();
        // Without TCP_NODELAY a stream's small writes wait on the client's delayed ACK
        // (~40 ms a stream on Linux).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        // `into_make_service` resolves the routes once; serving the `Router` itself rebuilds
        // its route table for every connection (about 10 KB each, measured with heaptrack).
        axum::serve(listener, crate::app(gateway).into_make_service())
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                tracing::info!("shutting down: finishing requests in flight");
            })
            .await
            .map_err(|e| format!("server error: {e}"))?;
        // Requests in flight are done: write their records before the caller goes on.
        gateway_for_flush.flush().await;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running {
        local,
        example_model,
        keys_required,
        stop: Some(stop),
        task,
    })
}

/// Serves `config` until Ctrl-C or SIGTERM, announcing the address on stdout first.
pub async fn serve(config: Config, listen: Option<String>) -> Result<(), String> {
    let mut running = start(config, listen).await?;
    // The handlers are installed before the banner: a harness that signals as soon as it reads
    // the banner must get a graceful stop, not the default action of the signal.
    let stop_signal = shutdown_signal();
    print_banner(&running);
    stop_signal.await;
    running.stop();
    running.wait().await
}

/// Prints `opengateway listening on http://ADDR` (the first stdout line, which test harnesses
/// read to learn the port) and a `curl` line to try (with a key, when keys are required).
pub fn print_banner(running: &Running) {
    let local = running.local_addr();
    let model = running.example_model();
    let auth = if running.keys_required() {
        " -H \"Authorization: Bearer $OGW_KEY\""
    } else {
        ""
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "opengateway listening on http://{local}");
    let _ = writeln!(
        out,
        "try: curl http://{local}/v1/chat/completions{auth} -H 'Content-Type: application/json' -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
    );
    if running.keys_required() {
        let _ = writeln!(
            out,
            "     with OGW_KEY set to a key from `opengateway keys create --name NAME` (the same --config)"
        );
    }
    let _ = out.flush();
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

/// Installs the Ctrl-C and SIGTERM handlers now and returns a future that resolves on either.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let interrupted = async {
                match interrupt {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            let terminated = async {
                match terminate {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = interrupted => {},
                _ = terminated => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Tasks the single-threaded runtime runs between two polls for I/O while tasks are queued.
/// Tokio's default (61) reads new requests while the tasks that return finished streams'
/// upstream connections to the pool still wait behind them, so a burst of streams ending and
/// starting again opened ~1,400 upstream connections for 1,000 streams (1,000 with this).
const EVENT_INTERVAL: u32 = 4096;

/// The async runtime. On one CPU (a container's CPU quota, `taskset`) the single-threaded
/// scheduler: the work-stealing one with its one worker served some 30% fewer requests a
/// second there (bench/README.md, "Server mode").
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.event_interval(EVENT_INTERVAL);
        builder
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
