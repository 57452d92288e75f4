//! `anchorwatch proxy`: a sidecar reverse proxy that captures predictions in front of any HTTP
//! predictor, with no change to the predictor's code.
//!
//! Takes in: client requests (HTTP/1.1), forwarded to the upstream predictor (HTTP/1.1 or h2c).
//! Gives out: the upstream's responses unchanged plus `x-prediction-id`; rows extracted from the
//! predict routes, stored by a collector in this process (`--config`) or sent to a remote
//! anchorwatch (`--collector`) with a spool on disk; metrics on `--metrics-listen`.
//! Must never: delay, alter or fail the predictor's traffic for capture's sake. When capture must
//! shed load it drops and counts (`anchorwatch_capture_dropped_total{reason}`). `docs/proxy.md`
//! is the user's reference.

pub mod capture;
pub use crate::config::proxy as config;
pub mod extract;
pub mod forward;
pub mod metrics;
pub mod remote;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anchorwatch_collector::Collector;
use anchorwatch_collector::config::units::{parse_bytes, parse_duration};
use anchorwatch_collector::metrics::Metrics as CollectorMetrics;
use anchorwatch_collector::store::Store;
use axum::http::header;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::capture::{CaptureQueue, Sink};
use self::config::{ExtractConfig, Mapping, ProxyConfig};
use self::forward::Forwarder;
use self::metrics::ProxyMetrics;
use self::remote::Remote;

/// Arguments of `anchorwatch proxy`. Sizes take units (`1MiB`), durations too (`250ms`, `30s`).
/// Every setting can also come from a `[proxy]` section of the `--config` file; a flag (or its
/// environment variable) wins over the file, the file over the default.
#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// Address clients connect to, e.g. `0.0.0.0:8081` (port 0 picks a free one) [default: 127.0.0.1:8081].
    #[arg(long, env = "ANCHORWATCH_PROXY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Base URL of the predictor, plain HTTP, e.g. `http://127.0.0.1:8080` (required, here or in `[proxy]`).
    #[arg(long, env = "ANCHORWATCH_PROXY_UPSTREAM")]
    pub upstream: Option<String>,
    /// Speak HTTP/2 with prior knowledge (h2c) to the upstream instead of HTTP/1.1.
    #[arg(long, env = "ANCHORWATCH_PROXY_UPSTREAM_HTTP2")]
    pub upstream_http2: bool,
    /// Longest wait for the upstream's response headers; then the client gets 504 [default: 30s].
    #[arg(long, env = "ANCHORWATCH_PROXY_UPSTREAM_TIMEOUT", value_parser = parse_duration)]
    pub upstream_timeout: Option<Duration>,
    /// Longest wait for a connection to the upstream; then the client gets 502 [default: 5s].
    #[arg(long, env = "ANCHORWATCH_PROXY_CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// The model captured rows belong to (required, here or in `[proxy]`).
    #[arg(long, env = "ANCHORWATCH_PROXY_MODEL")]
    pub model: Option<String>,
    /// The anchorwatch config: its `[proxy]` section supplies settings not given as flags, and,
    /// without a remote collector, its store and `[[models]]` schema take the rows (local collector).
    #[arg(long, short, env = "ANCHORWATCH_CONFIG", required_unless_present = "collector")]
    pub config: Option<PathBuf>,
    /// Remote collector: base URL of a central `anchorwatch serve`, e.g. `http://anchorwatch:8080`.
    #[arg(long, env = "ANCHORWATCH_PROXY_COLLECTOR")]
    pub collector: Option<String>,
    /// Bearer token for the remote collector (a token with the `ingest` scope).
    #[arg(long, env = "ANCHORWATCH_PROXY_COLLECTOR_TOKEN", hide_env_values = true)]
    pub collector_token: Option<String>,
    /// Longest wait for one POST to the remote collector [default: 10s].
    #[arg(long, env = "ANCHORWATCH_PROXY_COLLECTOR_TIMEOUT", value_parser = parse_duration)]
    pub collector_timeout: Option<Duration>,
    /// Longest pause between delivery attempts while the remote collector is down [default: 5s].
    #[arg(long, env = "ANCHORWATCH_PROXY_COLLECTOR_MAX_BACKOFF", value_parser = parse_duration)]
    pub collector_max_backoff: Option<Duration>,
    /// Folder for rows the remote collector has not taken yet (kept across restarts); default
    /// `anchorwatch-spool-<model>` in the temporary folder. Use a volume in Kubernetes.
    #[arg(long, env = "ANCHORWATCH_PROXY_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool holds; beyond it new rows are dropped and counted (`spool_full`) [default: 512MiB].
    #[arg(long, env = "ANCHORWATCH_PROXY_SPOOL_MAX_BYTES", value_parser = parse_bytes)]
    pub spool_max_bytes: Option<u64>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here (apart from --listen, so no upstream path is
    /// shadowed), e.g. `0.0.0.0:9464`. Not served when absent.
    #[arg(long, env = "ANCHORWATCH_PROXY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Worker threads of the proxy's async runtime. A sidecar shares its Pod's cores with the
    /// predictor: one thread forwards tens of thousands of requests a second, and more threads
    /// contending for busy cores lengthen the tail latency (docs/proxy.md, "Performance").
    /// Command line and environment only: the runtime starts before the config is read [default: 1].
    #[arg(long, env = "ANCHORWATCH_PROXY_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Captured routes (POST only): path globs where `*` matches within a segment and `**` across.
    /// Repeat or separate with commas. Default: /v2/models/*/infer, /v2/models/*/versions/*/infer,
    /// /v1/models/*:predict, /predict, /invocations.
    #[arg(long = "predict-path", env = "ANCHORWATCH_PROXY_PREDICT_PATHS", value_delimiter = ',')]
    pub predict_paths: Vec<String>,
    /// Largest request or response body captured; larger ones stream through and count as dropped [default: 1MiB].
    #[arg(long, env = "ANCHORWATCH_PROXY_CAPTURE_MAX_BYTES", value_parser = parse_bytes)]
    pub capture_max_bytes: Option<u64>,
    /// Captured exchanges waiting to be stored; when full, new ones are dropped and counted [default: 1024].
    #[arg(long, env = "ANCHORWATCH_PROXY_CAPTURE_QUEUE")]
    pub capture_queue: Option<usize>,
    /// Rows written to the collector in one batch at most [default: 1000].
    #[arg(long, env = "ANCHORWATCH_PROXY_BATCH_MAX_ROWS")]
    pub batch_max_rows: Option<usize>,
    /// CPU priority (nice, 0-19) of capture's threads (extraction, the local collector's WAL and
    /// Parquet flushes): higher leaves busy cores to the traffic; capture that falls behind drops
    /// and counts. 0: the traffic's priority. Linux only [default: 10].
    #[arg(long, env = "ANCHORWATCH_PROXY_CAPTURE_NICE")]
    pub capture_nice: Option<i32>,
    /// Names of positional features (TF-Serving list instances, OIP inputs holding vectors of
    /// this length), comma-separated.
    #[arg(long, env = "ANCHORWATCH_PROXY_FEATURE_NAMES", value_delimiter = ',')]
    pub feature_names: Vec<String>,
    /// The Open Inference Protocol output holding the prediction (default: the first output).
    #[arg(long, env = "ANCHORWATCH_PROXY_PREDICTION_OUTPUT")]
    pub prediction_output: Option<String>,
    /// The Open Inference Protocol output holding the scores (probabilities).
    #[arg(long, env = "ANCHORWATCH_PROXY_SCORES_OUTPUT")]
    pub scores_output: Option<String>,
    /// `model_version` of captured rows when the response names none.
    #[arg(long, env = "ANCHORWATCH_PROXY_MODEL_VERSION")]
    pub model_version: Option<String>,
    /// Mapping: JSON pointer to the request's rows (an array, or one object). Setting any mapping
    /// flag turns shape detection off (and replaces a `[proxy.extract.mapping]` from the file).
    #[arg(long)]
    pub request_rows: Option<String>,
    /// Mapping: a feature as NAME=POINTER, the pointer within one request row. Repeatable.
    #[arg(long = "feature")]
    pub features: Vec<String>,
    /// Mapping: JSON pointer to the response's rows (an array, or one value).
    #[arg(long)]
    pub response_rows: Option<String>,
    /// Mapping: JSON pointer to the prediction within one response row (default: the row).
    #[arg(long)]
    pub prediction_pointer: Option<String>,
    /// Mapping: JSON pointer to the scores within one response row.
    #[arg(long)]
    pub scores_pointer: Option<String>,
    /// How long shutdown waits for requests in flight, then for the capture queue to drain [default: 30s].
    #[arg(long, env = "ANCHORWATCH_PROXY_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
}

impl ProxyArgs {
    /// The settings these flags give over `file` (the `[proxy]` section, or the defaults), validated.
    pub fn into_config(self, file: ProxyConfig) -> anyhow::Result<ProxyConfig> {
        let mapped = self.request_rows.is_some()
            || self.response_rows.is_some()
            || self.prediction_pointer.is_some()
            || self.scores_pointer.is_some()
            || !self.features.is_empty();
        let mapping = if mapped {
            let features = self
                .features
                .iter()
                .map(|f| match f.split_once('=') {
                    Some((name, pointer)) if !name.is_empty() => Ok((name.to_string(), pointer.to_string())),
                    _ => Err(anyhow::anyhow!("--feature `{f}`: expected NAME=POINTER, e.g. age=/person/age")),
                })
                .collect::<anyhow::Result<_>>()?;
            Some(Mapping {
                request_rows: self.request_rows.unwrap_or_default(),
                features,
                response_rows: self.response_rows.unwrap_or_default(),
                prediction: self.prediction_pointer.unwrap_or_default(),
                scores: self.scores_pointer,
            })
        } else {
            file.extract.mapping
        };
        let collector_token = match (self.collector_token, &file.collector_token_env) {
            (Some(token), _) => Some(token),
            (None, Some(var)) => Some(
                std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("proxy.collector_token_env: environment variable {var} is not set"))?,
            ),
            (None, None) => None,
        };
        let or_file = |flag: Vec<String>, file: Vec<String>| if flag.is_empty() { file } else { flag };
        let config = ProxyConfig {
            listen: self.listen.unwrap_or(file.listen),
            upstream: self.upstream.unwrap_or(file.upstream),
            upstream_http2: self.upstream_http2 || file.upstream_http2,
            upstream_timeout: self.upstream_timeout.unwrap_or(file.upstream_timeout),
            connect_timeout: self.connect_timeout.unwrap_or(file.connect_timeout),
            model: self.model.unwrap_or(file.model),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            predict_paths: or_file(self.predict_paths, file.predict_paths),
            capture_max_bytes: self.capture_max_bytes.unwrap_or(file.capture_max_bytes),
            capture_queue: self.capture_queue.unwrap_or(file.capture_queue),
            batch_max_rows: self.batch_max_rows.unwrap_or(file.batch_max_rows),
            capture_nice: self.capture_nice.unwrap_or(file.capture_nice),
            extract: ExtractConfig {
                feature_names: or_file(self.feature_names, file.extract.feature_names),
                prediction_output: self.prediction_output.or(file.extract.prediction_output),
                scores_output: self.scores_output.or(file.extract.scores_output),
                model_version: self.model_version.or(file.extract.model_version),
                mapping,
            },
            config: self.config,
            collector: self.collector.or(file.collector),
            collector_token,
            collector_token_env: file.collector_token_env,
            collector_timeout: self.collector_timeout.unwrap_or(file.collector_timeout),
            collector_max_backoff: self.collector_max_backoff.unwrap_or(file.collector_max_backoff),
            spool_dir: self.spool_dir.or(file.spool_dir),
            spool_max_bytes: self.spool_max_bytes.unwrap_or(file.spool_max_bytes),
            shutdown_timeout: self.shutdown_timeout.unwrap_or(file.shutdown_timeout),
        };
        if config.upstream.is_empty() {
            anyhow::bail!("--upstream: give the predictor's URL, as a flag or as `upstream` in [proxy]");
        }
        if config.model.is_empty() {
            anyhow::bail!("--model: give the model's name, as a flag or as `model` in [proxy]");
        }
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// Runs `anchorwatch proxy` until SIGINT or SIGTERM.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => section(path)?,
        None => ProxyConfig::default(),
    };
    let config = args.into_config(file)?;
    let upstream = config.upstream.clone();
    let sink = match (&config.collector, &config.config) {
        (Some(url), _) => format!("remote collector {url}"),
        (None, Some(path)) => format!("local collector ({})", path.display()),
        _ => String::new(),
    };
    let proxy = Proxy::start(config).await?;
    tracing::info!(
        addr = %proxy.addr,
        metrics_addr = %proxy.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
        upstream = %upstream,
        sink = %sink,
        "anchorwatch proxy is listening"
    );
    crate::signals::shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight and draining the capture queue");
    proxy.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The `[proxy]` section of a config file (defaults when the file has none). Only this section is
/// read here; the rest of the file is checked when it serves as the local collector's config.
pub fn section(path: &std::path::Path) -> anyhow::Result<ProxyConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
    match table.remove("proxy") {
        Some(value) => value
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}: [proxy]: {}", path.display(), e.to_string().trim_end())),
        None => Ok(ProxyConfig::default()),
    }
}

/// A running proxy.
pub struct Proxy {
    /// Where clients connect (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The proxy's metrics.
    pub metrics: Arc<ProxyMetrics>,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    worker: CaptureWorker,
    /// Dropped at the end of a shutdown, after the collector's threads, which use it.
    capture: CaptureRuntime,
    delivery: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    metrics_server: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    collector: Option<Arc<Collector>>,
    ready: Arc<AtomicBool>,
    shutdown_timeout: Duration,
}

/// The capture worker's task, and what stops it before the queue is drained.
struct CaptureWorker {
    cancel: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Capture's own runtime: one worker thread named `capture`, at capture's CPU priority
/// (`--capture-nice`), as are the threads started from it (the local collector's WAL writer and
/// flusher, its blocking pool). Extracting and encoding batches never holds up the request path's
/// runtime, and busy cores go to the traffic first.
struct CaptureRuntime(Option<tokio::runtime::Runtime>);

impl CaptureRuntime {
    async fn start(nice: i32) -> anyhow::Result<Self> {
        // Linux threads inherit their creator's nice value: the runtime is built on a thread
        // that has capture's.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("capture-start".into()).spawn(move || {
            lower_priority(nice);
            let built = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("capture")
                .enable_all()
                .build();
            let _ = tx.send(built);
        })?;
        let runtime = rx.await.map_err(|_| anyhow::anyhow!("capture's runtime did not start"))??;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("capture's runtime runs until dropped").handle()
    }
}

impl Drop for CaptureRuntime {
    fn drop(&mut self) {
        // Shutdown has already waited for capture's tasks (with its timeout); dropping a runtime
        // the blocking way is not allowed inside the request path's runtime.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Proxy {
    /// Opens the collector (local or remote), binds the listeners and starts forwarding.
    pub async fn start(config: ProxyConfig) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let metrics = Arc::new(ProxyMetrics::new()?);
        let (stop, stopped) = watch::channel(false);
        let capture = CaptureRuntime::start(config.capture_nice).await?;
        let mut collector = None;
        let mut delivery = None;
        let sink = if let Some(base) = config.collector.clone() {
            let spool_dir = config
                .spool_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(format!("anchorwatch-spool-{}", config.model)));
            let remote = Arc::new(Remote::new(&config, &base, &spool_dir, metrics.clone())?);
            let (tx, rx) = watch::channel(false);
            delivery = Some((tx, capture.handle().spawn(remote.clone().run_delivery(rx))));
            Sink::Remote(remote)
        } else {
            let path =
                config.config.as_ref().ok_or_else(|| anyhow::anyhow!("--config: needed for the local collector"))?;
            let loaded = crate::config::load(path)?;
            let store = Store::connect(&loaded.store_root()).await?;
            let schemas: Vec<_> = crate::config::fixed_schemas(&loaded, &store, true)
                .await?
                .into_iter()
                .filter(|(name, _)| *name == config.model)
                .collect();
            if schemas.is_empty() {
                let known: Vec<&str> = loaded.models.iter().map(|(n, _)| n.as_str()).collect();
                anyhow::bail!(
                    "--model `{}` is not declared in {} (declared: {})",
                    config.model,
                    path.display(),
                    known.join(", ")
                );
            }
            let collector_metrics = CollectorMetrics::register(&metrics.registry)?;
            // Opened in capture's runtime: the collector's threads start there, at its priority.
            let settings = loaded.config.collector.clone();
            let opened = capture
                .handle()
                .spawn(async move { Collector::open(&settings, store, schemas, collector_metrics).await })
                .await??;
            let opened = Arc::new(opened);
            let model = opened.model(&config.model).cloned().ok_or_else(|| anyhow::anyhow!("model not opened"))?;
            collector = Some(opened);
            Sink::Local(model)
        };
        let (queue, rx) = CaptureQueue::new(config.capture_queue, metrics.clone());
        let forwarder = Arc::new(Forwarder::new(&config, Arc::new(queue), metrics.clone())?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        let ready = Arc::new(AtomicBool::new(false));
        let (metrics_addr, metrics_server) = match config.metrics_listen {
            Some(at) => {
                // Metrics stay up until the very end of a shutdown, so the drain can be watched.
                let (tx, rx) = watch::channel(false);
                let (a, task) = serve_metrics(at, metrics.clone(), ready.clone(), rx).await?;
                (Some(a), Some((tx, task)))
            }
            None => (None, None),
        };
        let worker = {
            let (extract, metrics, batch_max_rows) = (config.extract.clone(), metrics.clone(), config.batch_max_rows);
            let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
            let task = capture.handle().spawn(async move {
                tokio::select! {
                    () = capture::run_worker(rx, extract, sink, metrics, batch_max_rows) => {}
                    _ = cancelled => {}
                }
            });
            CaptureWorker { cancel, task }
        };
        let accept = tokio::spawn(accept_loop(listener, forwarder, stopped));
        ready.store(true, Ordering::Relaxed);
        Ok(Self {
            addr,
            metrics_addr,
            metrics,
            stop,
            accept,
            worker,
            capture,
            delivery,
            metrics_server,
            collector,
            ready,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// Stops accepting, lets requests in flight finish, drains the capture queue into the
    /// collector (flushed to Parquet) or the spool, then stops.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.ready.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let limit = self.shutdown_timeout;
        let mut accept = self.accept;
        if tokio::time::timeout(limit, &mut accept).await.is_err() {
            tracing::warn!(timeout = ?limit, "requests still in flight at the shutdown timeout; closing them");
            accept.abort();
            let _ = accept.await;
        }
        // With every connection gone, the queue's last sender is gone: the worker drains and ends.
        let CaptureWorker { cancel, mut task } = self.worker;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            tracing::warn!(timeout = ?limit, "the capture queue did not drain in time; the rest is dropped");
            let _ = cancel.send(());
            let _ = task.await;
        }
        if let Some((stop, mut task)) = self.delivery {
            let _ = stop.send(true);
            if tokio::time::timeout(limit, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        if let Some(collector) = self.collector {
            collector.flush().await.map_err(anyhow::Error::msg)?;
            match Arc::try_unwrap(collector) {
                Ok(c) => tokio::task::spawn_blocking(move || c.shutdown()).await?,
                Err(_) => {
                    tracing::warn!("collector still referenced at shutdown; its WAL is replayed at the next start")
                }
            }
        }
        // The collector's threads have ended: capture's runtime can go.
        drop(self.capture);
        if let Some((stop, task)) = self.metrics_server {
            let _ = stop.send(true);
            let _ = task.await;
        }
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, forwarder: Arc<Forwarder>, mut stop: watch::Receiver<bool>) {
    let for_connections = stop.clone();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, forwarder.clone(), for_connections.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    drop(forwarder);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(stream: TcpStream, forwarder: Arc<Forwarder>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let forwarder = forwarder.clone();
        async move { Ok::<_, std::convert::Infallible>(forwarder.handle(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        }
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn serve_metrics(
    at: SocketAddr,
    metrics: Arc<ProxyMetrics>,
    ready: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    use axum::routing::get;
    let listener =
        TcpListener::bind(at).await.map_err(|e| anyhow::anyhow!("cannot listen on {at} (--metrics-listen): {e}"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    let mut out = String::new();
                    match prometheus::TextEncoder::new().encode_utf8(&metrics.registry.gather(), &mut out) {
                        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], out).into_response(),
                        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Relaxed);
                async move {
                    if ready {
                        axum::Json(serde_json::json!({"status": "ready"})).into_response()
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({"status": "stopping"})),
                        )
                            .into_response()
                    }
                }
            }),
        );
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the metrics server failed");
        }
    });
    Ok((addr, task))
}

/// Lowers the calling thread's CPU priority to `nice`; threads it starts inherit it. Linux sets
/// nice per thread. A process already running at a lower priority keeps its own.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid, getpriority and setpriority only read and set the calling thread's
    // scheduling attributes.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if nice > current && libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "could not lower capture's CPU priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Resolves once `stop` is set (or its sender is gone); holds no borrow of it afterwards.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
