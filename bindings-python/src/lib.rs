//! Python bindings for `opengateway`, built by maturin into the `opengateway._native` module.
//!
//! The binding is a thin adapter: requests arrive as JSON text (the Python layer builds the
//! body from keyword arguments), are read by the core's [`opengateway::types::from_json`], and
//! answers leave as JSON text that the Python layer wraps in attribute-access objects. Errors
//! leave as one payload ({status, kind, body, provider, attempts}) that
//! `opengateway._errors._from_payload` turns into the typed exception class.
//!
//! The GIL is released during all I/O; one tokio runtime (pyo3-async-runtimes') serves every
//! call and is created on first use, so importing the module does no work.

use pyo3::prelude::*;

/// The native extension module `opengateway._native`.
#[pymodule]
mod _native {
    use std::future::Future;
    use std::sync::{Arc, Mutex as StdMutex};
    use std::time::Duration;

    use futures_util::StreamExt;
    use opengateway::config::Config;
    use opengateway::inbound::anthropic::{MessagesRequest, MessagesStream};
    use opengateway::types::{ChatCompletionRequest, EmbeddingRequest, from_json};
    use opengateway::{CallContext, ChatStream, Error, ErrorKind, Gateway, UsageQuery};
    use pyo3::exceptions::{PyRuntimeError, PyValueError};
    use pyo3::prelude::*;
    use tokio::sync::Mutex as AsyncMutex;

    /// How often a blocking call wakes to let Python handle signals (Ctrl-C).
    const SIGNAL_CHECK: Duration = Duration::from_millis(50);

    /// Returns the version of the `opengateway` core this module was built from.
    #[pyfunction]
    fn core_version() -> &'static str {
        opengateway::VERSION
    }

    /// Sets `__version__` to this package's version (the workspace version, shared with core).
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }

    fn runtime() -> &'static tokio::runtime::Runtime {
        pyo3_async_runtimes::tokio::get_runtime()
    }

    /// The typed Python exception for a core error, built by `opengateway._errors` (the one
    /// place that maps statuses and kinds to classes).
    fn to_py_err(py: Python<'_>, error: &Error) -> PyErr {
        let payload = serde_json::json!({
            "status": error.status(),
            "kind": error.kind(),
            "body": error.to_body(),
            "provider": error.provider(),
            "attempts": error.attempts(),
            "retry_after": error.retry_after().map(|d| d.as_secs_f64()),
        })
        .to_string();
        let built = py
            .import("opengateway._errors")
            .and_then(|m| m.getattr("_from_payload"))
            .and_then(|f| f.call1((payload.clone(),)));
        match built {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    }

    /// [`to_py_err`] from a thread that does not hold the GIL (a tokio worker).
    fn to_py_err_detached(error: &Error) -> PyErr {
        Python::attach(|py| to_py_err(py, error))
    }

    fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadRequest, message)
    }

    fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
        serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Runs `future` to completion with the GIL released, waking every [`SIGNAL_CHECK`] to let
    /// Python raise KeyboardInterrupt; then the future is dropped (closing any upstream request).
    fn block_on<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        py.detach(|| {
            runtime().block_on(async {
                let mut future = std::pin::pin!(future);
                let start = tokio::time::Instant::now() + SIGNAL_CHECK;
                let mut ticker = tokio::time::interval_at(start, SIGNAL_CHECK);
                loop {
                    tokio::select! {
                        out = &mut future => return Ok(out),
                        _ = ticker.tick() => Python::attach(|py| py.check_signals())?,
                    }
                }
            })
        })
    }

    /// What a call is made for: tags, user and key, as JSON text from the Python layer.
    fn call_context(context: Option<&str>) -> Result<CallContext, Error> {
        match context {
            None => Ok(CallContext::default()),
            Some(text) => from_json(text.as_bytes()),
        }
    }

    /// A response with its route and request id, as `(response_json, route_json, request_id)`.
    type Answer = (String, String, String);

    fn answer<T: serde::Serialize>(routed: &opengateway::Routed<T>) -> Result<Answer, Error> {
        Ok((
            ser(&routed.response)?,
            ser(&routed.route)?,
            routed.request_id.clone(),
        ))
    }

    fn ser<T: serde::Serialize>(value: &T) -> Result<String, Error> {
        serde_json::to_string(value)
            .map_err(|e| Error::new(ErrorKind::InternalServer, e.to_string()))
    }

    /// A configuration from JSON text (a dict) or a YAML file path; with neither, the defaults
    /// and the providers whose key variables are set. Errors name the field at fault.
    fn load_config(config_json: Option<&str>, config_path: Option<&str>) -> Result<Config, Error> {
        let config = match (config_json, config_path) {
            (_, Some(path)) => Config::from_file(path),
            (Some(text), None) => {
                let value = serde_json::from_str(text)
                    .map_err(|e| bad_request(format!("config is not JSON: {e}")))?;
                Config::from_value(value)
            }
            (None, None) => Config::from_value(serde_json::Value::Object(Default::default())),
        };
        config.map_err(|e| bad_request(e.to_string()))
    }

    /// The in-process gateway (`opengateway.Gateway` and `AsyncGateway` wrap it).
    #[pyclass(frozen, module = "opengateway._native")]
    struct NativeGateway {
        gateway: Gateway,
    }

    impl NativeGateway {
        async fn do_chat(
            gateway: Gateway,
            body: Vec<u8>,
            context: Option<String>,
        ) -> Result<Answer, Error> {
            let request: ChatCompletionRequest = from_json(&body)?;
            let context = call_context(context.as_deref())?;
            let routed = gateway.chat_json_with(request, &context).await?;
            Ok((routed.response.json, ser(&routed.route)?, routed.request_id))
        }

        async fn do_chat_stream(
            gateway: Gateway,
            body: Vec<u8>,
            context: Option<String>,
        ) -> Result<NativeStream, Error> {
            let request: ChatCompletionRequest = from_json(&body)?;
            let context = call_context(context.as_deref())?;
            let stream = gateway.chat_stream_with(request, &context).await?;
            NativeStream::new(Inner::Chat(Box::new(stream)))
        }

        async fn do_messages(
            gateway: Gateway,
            body: Vec<u8>,
            context: Option<String>,
        ) -> Result<Answer, Error> {
            let request: MessagesRequest = from_json(&body)?;
            let context = call_context(context.as_deref())?;
            answer(&gateway.messages_with(request, &context).await?)
        }

        async fn do_messages_stream(
            gateway: Gateway,
            body: Vec<u8>,
            context: Option<String>,
        ) -> Result<NativeStream, Error> {
            let request: MessagesRequest = from_json(&body)?;
            let context = call_context(context.as_deref())?;
            let stream = gateway.messages_stream_with(request, &context).await?;
            NativeStream::new(Inner::Messages(Box::new(stream)))
        }

        async fn do_embeddings(
            gateway: Gateway,
            body: Vec<u8>,
            context: Option<String>,
        ) -> Result<Answer, Error> {
            let request: EmbeddingRequest = from_json(&body)?;
            let context = call_context(context.as_deref())?;
            answer(&gateway.embeddings_with(request, &context).await?)
        }

        /// Runs a call with the GIL released, raising the typed error on failure.
        fn run_sync<T: Send>(
            py: Python<'_>,
            call: impl Future<Output = Result<T, Error>> + Send,
        ) -> PyResult<T> {
            block_on(py, call)?.map_err(|e| to_py_err(py, &e))
        }

        /// Runs a call on the runtime as an asyncio awaitable; cancelling the awaitable drops
        /// the call (and so closes its upstream request).
        fn run_async<'py, T>(
            py: Python<'py>,
            call: impl Future<Output = Result<T, Error>> + Send + 'static,
        ) -> PyResult<Bound<'py, PyAny>>
        where
            T: for<'a> IntoPyObject<'a> + Send + 'static,
        {
            pyo3_async_runtimes::tokio::future_into_py(py, async move {
                call.await.map_err(|e| to_py_err_detached(&e))
            })
        }
    }

    #[pymethods]
    impl NativeGateway {
        /// Builds a gateway from configuration JSON text (a dict), or a YAML file path; with
        /// neither, the defaults and the providers whose key variables are set.
        #[new]
        #[pyo3(signature = (config_json=None, config_path=None))]
        fn new(
            py: Python<'_>,
            config_json: Option<&str>,
            config_path: Option<&str>,
        ) -> PyResult<Self> {
            let config = load_config(config_json, config_path).map_err(|e| to_py_err(py, &e))?;
            // Building the gateway may open a SQLite ledger and spawn its writer thread: do it
            // inside the runtime, which the ledger's async parts expect.
            let _guard = runtime().enter();
            let gateway = Gateway::from_config(config).map_err(|e| to_py_err(py, &e))?;
            Ok(NativeGateway { gateway })
        }

        /// A chat completion, blocking: `(response_json, route_json, request_id)`.
        #[pyo3(signature = (body, context=None))]
        fn chat(&self, py: Python<'_>, body: Vec<u8>, context: Option<String>) -> PyResult<Answer> {
            Self::run_sync(py, Self::do_chat(self.gateway.clone(), body, context))
        }

        /// A chat completion, as an awaitable of `(response_json, route_json, request_id)`.
        #[pyo3(signature = (body, context=None))]
        fn chat_async<'py>(
            &self,
            py: Python<'py>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            Self::run_async(py, Self::do_chat(self.gateway.clone(), body, context))
        }

        /// A streamed chat completion, blocking until it starts.
        #[pyo3(signature = (body, context=None))]
        fn chat_stream(
            &self,
            py: Python<'_>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<NativeStream> {
            Self::run_sync(
                py,
                Self::do_chat_stream(self.gateway.clone(), body, context),
            )
        }

        /// A streamed chat completion, as an awaitable of the stream once it started.
        #[pyo3(signature = (body, context=None))]
        fn chat_stream_async<'py>(
            &self,
            py: Python<'py>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            Self::run_async(
                py,
                Self::do_chat_stream(self.gateway.clone(), body, context),
            )
        }

        /// An Anthropic Messages answer, blocking: `(response_json, route_json, request_id)`.
        #[pyo3(signature = (body, context=None))]
        fn messages(
            &self,
            py: Python<'_>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Answer> {
            Self::run_sync(py, Self::do_messages(self.gateway.clone(), body, context))
        }

        /// An Anthropic Messages answer, as an awaitable.
        #[pyo3(signature = (body, context=None))]
        fn messages_async<'py>(
            &self,
            py: Python<'py>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            Self::run_async(py, Self::do_messages(self.gateway.clone(), body, context))
        }

        /// Embeddings, blocking: `(response_json, route_json, request_id)`.
        #[pyo3(signature = (body, context=None))]
        fn embeddings(
            &self,
            py: Python<'_>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Answer> {
            Self::run_sync(py, Self::do_embeddings(self.gateway.clone(), body, context))
        }

        /// Embeddings, as an awaitable of `(response_json, route_json, request_id)`.
        #[pyo3(signature = (body, context=None))]
        fn embeddings_async<'py>(
            &self,
            py: Python<'py>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            Self::run_async(py, Self::do_embeddings(self.gateway.clone(), body, context))
        }

        /// A streamed Anthropic Messages answer (events), blocking until it starts.
        #[pyo3(signature = (body, context=None))]
        fn messages_stream(
            &self,
            py: Python<'_>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<NativeStream> {
            Self::run_sync(
                py,
                Self::do_messages_stream(self.gateway.clone(), body, context),
            )
        }

        /// A streamed Anthropic Messages answer, as an awaitable of the stream.
        #[pyo3(signature = (body, context=None))]
        fn messages_stream_async<'py>(
            &self,
            py: Python<'py>,
            body: Vec<u8>,
            context: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            Self::run_async(
                py,
                Self::do_messages_stream(self.gateway.clone(), body, context),
            )
        }

        /// Ledger totals for a query (`UsageQuery` as JSON text), as JSON text.
        fn usage(&self, py: Python<'_>, query: &str) -> PyResult<String> {
            let gateway = self.gateway.clone();
            let rows = py
                .detach(|| {
                    let query: UsageQuery = from_json(query.as_bytes())?;
                    gateway.usage(&query)
                })
                .map_err(|e| to_py_err(py, &e))?;
            to_json(&rows)
        }

        /// Ledger records a filter (`UsageFilter` as JSON text) covers, newest first, as JSON.
        fn usage_records(&self, py: Python<'_>, filter: &str, limit: usize) -> PyResult<String> {
            let gateway = self.gateway.clone();
            let rows = py
                .detach(|| {
                    let filter = from_json(filter.as_bytes())?;
                    gateway.usage_records(&filter, limit)
                })
                .map_err(|e| to_py_err(py, &e))?;
            to_json(&rows)
        }

        /// Calls `hook(record_json)` on the ledger's own thread once each request has ended. An
        /// exception in the hook is reported through `sys.unraisablehook` and changes nothing.
        fn on_request_end(&self, hook: Py<PyAny>) {
            self.gateway.on_request_end(move |record| {
                let Ok(json) = serde_json::to_string(record) else {
                    return;
                };
                // At interpreter shutdown there is nobody left to tell.
                Python::try_attach(|py| {
                    if let Err(e) = hook.call1(py, (json,)) {
                        e.write_unraisable(py, Some(hook.bind(py)));
                    }
                });
            });
        }

        /// Waits until every record so far is written to the ledger's store.
        fn flush(&self, py: Python<'_>) -> PyResult<()> {
            let gateway = self.gateway.clone();
            block_on(py, async move { gateway.flush().await })
        }

        /// [`NativeGateway::flush`] as an awaitable.
        fn flush_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            let gateway = self.gateway.clone();
            pyo3_async_runtimes::tokio::future_into_py(py, async move {
                gateway.flush().await;
                Ok(())
            })
        }
    }

    /// The stream a call returned: chat chunks or Anthropic events.
    enum Inner {
        Chat(Box<ChatStream>),
        Messages(Box<MessagesStream>),
    }

    impl Inner {
        /// The next item as JSON text; `None` at the end.
        async fn next(&mut self) -> Result<Option<String>, Error> {
            match self {
                Inner::Chat(stream) => stream.next_json().await.transpose(),
                Inner::Messages(stream) => match stream.next().await {
                    None => Ok(None),
                    Some(Err(e)) => Err(e),
                    Some(Ok(event)) => match stream.error() {
                        // The `error` event is the stream's end: raise the error it stands for.
                        Some(e) => Err(e.clone()),
                        None => ser(&event.data).map(Some),
                    },
                },
            }
        }
    }

    /// A started stream. Reading it is serialized by a lock; closing it drops the core stream,
    /// which closes the upstream connection and records the request (as cancelled if unfinished).
    #[pyclass(frozen, module = "opengateway._native")]
    struct NativeStream {
        inner: Arc<AsyncMutex<Option<Inner>>>,
        route: String,
        request_id: String,
    }

    impl NativeStream {
        fn new(inner: Inner) -> Result<Self, Error> {
            let (route, request_id) = match &inner {
                Inner::Chat(s) => (s.route(), s.request_id()),
                Inner::Messages(s) => (s.route(), s.request_id()),
            };
            let route = serde_json::to_string(route).map_err(|e| bad_request(e.to_string()))?;
            let request_id = request_id.to_owned();
            Ok(NativeStream {
                inner: Arc::new(AsyncMutex::new(Some(inner))),
                route,
                request_id,
            })
        }

        async fn next_of(inner: Arc<AsyncMutex<Option<Inner>>>) -> Result<Option<String>, Error> {
            let mut guard = inner.lock().await;
            let Some(stream) = guard.as_mut() else {
                return Ok(None);
            };
            let item = stream.next().await;
            if !matches!(item, Ok(Some(_))) {
                // Ended or failed: release the upstream connection now, not at garbage collection.
                *guard = None;
            }
            item
        }
    }

    #[pymethods]
    impl NativeStream {
        /// The route as JSON text: provider, model and every attempt.
        #[getter]
        fn route(&self) -> &str {
            &self.route
        }

        /// The id of the request's usage record.
        #[getter]
        fn request_id(&self) -> &str {
            &self.request_id
        }

        /// The next item as JSON text, blocking with the GIL released; `None` at the end.
        fn next(&self, py: Python<'_>) -> PyResult<Option<String>> {
            let inner = self.inner.clone();
            NativeGateway::run_sync(py, Self::next_of(inner))
        }

        /// The next item as an awaitable of JSON text (`None` at the end).
        fn anext<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            NativeGateway::run_async(py, Self::next_of(self.inner.clone()))
        }

        /// Drops the stream now: the upstream connection is closed, the record settled.
        fn close(&self) {
            match self.inner.try_lock() {
                Ok(mut guard) => *guard = None,
                // A read is in flight (another thread or task): drop the stream once it ends.
                Err(_) => {
                    let inner = self.inner.clone();
                    runtime().spawn(async move {
                        *inner.lock().await = None;
                    });
                }
            }
        }
    }

    /// `2026-11-01`, an RFC 3339 time, or `90m` / `24h` / `7d` ago, as Unix milliseconds.
    #[pyfunction]
    fn parse_time(text: &str) -> PyResult<i64> {
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        opengateway_server::admin::parse_time(text, now).map_err(PyValueError::new_err)
    }

    /// A server started from Python: serving in the background until `stop()`.
    #[pyclass(frozen, module = "opengateway._native")]
    struct NativeServer {
        running: StdMutex<Option<opengateway_server::Running>>,
        address: String,
    }

    #[pymethods]
    impl NativeServer {
        /// Binds and starts the server of a configuration (JSON text or a YAML path).
        #[new]
        #[pyo3(signature = (config_json=None, config_path=None, listen=None))]
        fn new(
            py: Python<'_>,
            config_json: Option<&str>,
            config_path: Option<&str>,
            listen: Option<String>,
        ) -> PyResult<Self> {
            let config = load_config(config_json, config_path).map_err(|e| to_py_err(py, &e))?;
            let running = block_on(py, opengateway_server::start(config, listen))?
                .map_err(PyRuntimeError::new_err)?;
            let address = running.local_addr().to_string();
            Ok(NativeServer {
                running: StdMutex::new(Some(running)),
                address,
            })
        }

        /// `HOST:PORT` the server listens on.
        #[getter]
        fn address(&self) -> &str {
            &self.address
        }

        /// Prints the `opengateway listening on http://ADDR` banner, as the binary does.
        fn print_banner(&self) {
            if let Ok(guard) = self.running.lock()
                && let Some(running) = guard.as_ref()
            {
                opengateway_server::serve::print_banner(running);
            }
        }

        /// Stops the server (requests in flight finish) and waits until it has stopped.
        fn stop(&self, py: Python<'_>) -> PyResult<()> {
            let running = match self.running.lock() {
                Ok(mut guard) => guard.take(),
                Err(_) => None,
            };
            let Some(mut running) = running else {
                return Ok(());
            };
            running.stop();
            block_on(py, running.wait())?.map_err(PyRuntimeError::new_err)
        }

        /// Blocks (GIL released) until Ctrl-C, then stops the server and re-raises.
        fn wait(&self, py: Python<'_>) -> PyResult<()> {
            let forever = std::future::pending::<()>();
            let interrupted = block_on(py, forever);
            self.stop(py)?;
            interrupted
        }
    }
}
