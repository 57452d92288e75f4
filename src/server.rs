//! The HTTP server: wires the collector, queries, metrics and probes into one router.

mod limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anchorwatch_analyzer::monitor::{self, ModelMonitor, Monitor};
use anchorwatch_analyzer::sql::{self, QueryError};
use anchorwatch_collector::api::IngestState;
use anchorwatch_collector::decode::EVENT_TIMES_US;
use anchorwatch_collector::metrics::Metrics as CollectorMetrics;
use anchorwatch_collector::schema::ModelSchema;
use anchorwatch_collector::store::Store;
use anchorwatch_collector::{ApiError, Collector};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{Semaphore, oneshot};

use crate::api::{Api, Route, query_error};
use crate::auth::Scope;
use crate::config::{Loaded, QueryConfig};

/// Every route the server answers, with the scope a token needs for it, as declared by the
/// components (docs/openapi.json and docs/api.md are checked against this list).
pub fn routes() -> Vec<Route> {
    Surface::declare().routes()
}

/// The server's routes, one [`Api`] per component, each on that component's state. Both
/// methods take the struct apart field by field, so a component added here is both served and
/// listed, or the build fails.
struct Surface {
    own: Api<AppState>,
    ingest: Api<IngestState>,
    ui: Api<Arc<crate::ui::Sources>>,
    alerts: Api<Arc<anchorwatch_alerts::Engine>>,
    lifecycle: Api<Arc<crate::lifecycle::Lifecycle>>,
    retrain: Api<Arc<crate::retrain::Retrainer>>,
    login: Api<Arc<crate::auth::Auth>>,
}

/// What [`Surface::serve`] gives each component.
struct States {
    own: AppState,
    ingest: IngestState,
    ui: crate::ui::Sources,
    alerts: Arc<anchorwatch_alerts::Engine>,
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
    retrain: Arc<crate::retrain::Retrainer>,
    auth: Arc<crate::auth::Auth>,
}

impl Surface {
    fn declare() -> Self {
        let read = Some(Scope::Read);
        let own = Api::new()
            .get(None, "/healthz", || async { axum::Json(serde_json::json!({"status": "ok"})) })
            .get(None, "/readyz", readyz)
            .get(None, "/metrics", metrics_text)
            .get(None, "/openapi.json", || async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) })
            .get(read, "/v1/models", models)
            .post(read, "/v1/query", query)
            .post(Some(Scope::Admin), "/v1/flush", flush)
            .get(read, "/v1/models/{model}/drift", |s, m, q| results(s, m, q, "drift"))
            .get(read, "/v1/models/{model}/performance", |s, m, q| results(s, m, q, "performance"))
            .get(read, "/v1/models/{model}/quality", |s, m, q| results(s, m, q, "quality"))
            .post(Some(Scope::Admin), "/v1/models/{model}/reference", upload_reference)
            .post(Some(Scope::Admin), "/v1/models/{model}/analyze", analyze);
        let ingest = Api::new()
            .post(Some(Scope::Ingest), "/v1/models/{model}/predictions", anchorwatch_collector::api::predictions)
            .post(Some(Scope::Ingest), "/v1/models/{model}/labels", anchorwatch_collector::api::labels);
        Surface {
            own,
            ingest,
            ui: crate::ui::api(),
            alerts: crate::alerting::api(),
            lifecycle: crate::lifecycle::api::api(),
            retrain: crate::retrain::api(),
            login: crate::ui::login::api(),
        }
    }

    fn routes(&self) -> Vec<Route> {
        let Surface { own, ingest, ui, alerts, lifecycle, retrain, login } = self;
        [
            own.routes(),
            ingest.routes(),
            ui.routes(),
            alerts.routes(),
            lifecycle.routes(),
            retrain.routes(),
            login.routes(),
        ]
        .concat()
    }

    fn serve(self, states: States) -> Router {
        let Surface { own, ingest, ui, alerts, lifecycle, retrain, login } = self;
        own.with_state(states.own)
            .merge(ingest.with_state(states.ingest))
            .merge(ui.with_state(Arc::new(states.ui)))
            .merge(alerts.with_state(states.alerts))
            .merge(lifecycle.with_state(states.lifecycle))
            .merge(retrain.with_state(states.retrain))
            .merge(login.with_state(states.auth.clone()))
            .into_router(&states.auth)
    }
}

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../docs/openapi.json");

#[derive(Clone)]
struct AppState {
    collector: Arc<Collector>,
    schemas: Arc<Vec<(String, ModelSchema)>>,
    query: QueryConfig,
    registry: prometheus::Registry,
    ready: Arc<AtomicBool>,
    monitor: Arc<Monitor>,
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
}

/// A running server.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    collector: Arc<Collector>,
    monitor: Arc<Monitor>,
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
    ready: Arc<AtomicBool>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown_timeout: std::time::Duration,
    alerts_stop: tokio::sync::watch::Sender<bool>,
    alert_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Opens the store, replays the WAL, binds `listen` and starts serving.
    pub async fn start(loaded: &Loaded, listen: SocketAddr) -> anyhow::Result<Self> {
        let config = &loaded.config;
        let store = Store::connect(&loaded.store_root()).await?;
        let schemas = crate::config::fixed_schemas(loaded, &store, true).await?;
        let registry = prometheus::Registry::new();
        let metrics = CollectorMetrics::register(&registry)?;
        let collector = Arc::new(Collector::open(&config.collector, store.clone(), schemas.clone(), metrics).await?);
        let lifecycle = Arc::new(
            crate::lifecycle::Lifecycle::open(
                &store,
                &schemas,
                config.predictor.clone(),
                Some(collector.clone()),
                Some(crate::lifecycle::metrics::Metrics::register(&registry)?),
            )
            .await?,
        );
        let analyzer_metrics = monitor::metrics::Metrics::register(&registry)?;
        let mut monitors = Vec::new();
        for ((name, schema), model) in schemas.iter().zip(&config.models) {
            let m = ModelMonitor::open(
                name.clone(),
                schema.clone(),
                model.analysis.clone(),
                store.clone(),
                loaded.base.clone(),
                config.query.memory_limit as usize,
                analyzer_metrics.clone(),
            )
            .await?;
            monitors.push(Arc::new(m));
        }
        let monitor = Arc::new(Monitor::start(monitors));
        let retrainer = Arc::new(crate::retrain::Retrainer::new(
            store.clone(),
            lifecycle.clone(),
            schemas
                .iter()
                .zip(&config.models)
                .map(|((name, schema), model)| {
                    let watched = monitor.model(name).map(|m| crate::retrain::Watched::new(m.clone(), &model.analysis));
                    (name.clone(), schema.clone(), model.retrain.clone(), watched)
                })
                .collect(),
            config.query.memory_limit as usize,
            Some(&registry),
        )?);
        let retrain = Arc::new(crate::alerting::StoreRetrain::new(store.clone(), retrainer.clone()));
        let engine = anchorwatch_alerts::Engine::open(config.alerts.clone(), store.clone(), &registry, retrain).await?;
        let (alerts_stop, alerts_stopped) = tokio::sync::watch::channel(false);
        let mut alert_tasks = crate::alerting::start(engine.clone(), &monitor, registry.clone(), alerts_stopped);
        // The champion reloader stops with the alert tasks, before the collector is shut down.
        alert_tasks.push(lifecycle.clone().spawn_reloader(alerts_stop.subscribe()));
        let maintained = crate::maintenance::served_models(loaded);
        if !maintained.is_empty() {
            // So does compaction and retention.
            alert_tasks.push(crate::maintenance::spawn(
                store.clone(),
                maintained,
                config.store.compaction.clone(),
                config.store.retention.clone(),
                config.collector.zstd_level,
                anchorwatch_collector::metrics::StoreMetrics::register(&registry)?,
                alerts_stop.subscribe(),
            ));
        }
        let ready = Arc::new(AtomicBool::new(false));
        let state = AppState {
            collector: collector.clone(),
            schemas: Arc::new(schemas),
            query: config.query.clone(),
            registry,
            ready: ready.clone(),
            monitor: monitor.clone(),
            lifecycle: lifecycle.clone(),
        };
        let ingest = IngestState {
            collector: collector.clone(),
            max_body_bytes: config.server.max_body_bytes as usize,
            inflight: Arc::new(Semaphore::new(config.server.max_inflight_ingest)),
            inflight_kib: Arc::new(Semaphore::new((config.server.max_inflight_body_bytes / 1024) as usize)),
        };
        let auth = Arc::new(crate::auth::Auth::new(&config.auth, &config.server)?);
        let ui = crate::ui::Sources {
            collector: collector.clone(),
            monitor: monitor.clone(),
            engine: engine.clone(),
            lifecycle: lifecycle.clone(),
            retrainer: retrainer.clone(),
            query: config.query.clone(),
        };
        let states = States {
            own: state,
            ingest,
            ui,
            alerts: engine,
            lifecycle: lifecycle.clone(),
            retrain: retrainer,
            auth: auth.clone(),
        };
        let app = Surface::declare()
            .serve(states)
            .fallback(|| async {
                ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint; see /openapi.json")
            })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this endpoint does not take that method; see /openapi.json",
                )
            })
            // Innermost first: bodies up to max_body_bytes for every route (ingest checks its
            // own, streaming), read within body_read_timeout; then the open mode's checks (each
            // route's scope is checked by its own layer, see `Api`); then every
            // plain-text refusal turned into the JSON error; then the pages' security headers.
            .layer(axum::extract::DefaultBodyLimit::max(config.server.max_body_bytes as usize))
            .layer(axum::middleware::from_fn_with_state(config.server.body_read_timeout, limits::body_deadline))
            .layer(axum::middleware::from_fn_with_state(auth, crate::auth::guard))
            .layer(axum::middleware::from_fn(limits::json_errors))
            .layer(axum::middleware::from_fn(limits::page_headers));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        ready.store(true, Ordering::Relaxed);
        Ok(Self {
            addr,
            collector,
            monitor,
            lifecycle,
            ready,
            stop,
            task,
            shutdown_timeout: config.server.shutdown_timeout,
            alerts_stop,
            alert_tasks,
        })
    }

    /// The collector, for in-process use.
    pub fn collector(&self) -> &Arc<Collector> {
        &self.collector
    }

    /// Stops taking requests, lets those in flight finish (up to `server.shutdown_timeout`), and
    /// writes everything acknowledged to Parquet.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.ready.store(false, Ordering::Relaxed);
        let _ = self.stop.send(());
        let mut task = self.task;
        match tokio::time::timeout(self.shutdown_timeout, &mut task).await {
            Ok(result) => result??,
            Err(_) => {
                tracing::warn!(timeout = ?self.shutdown_timeout, "requests still in flight at the shutdown timeout; closing them");
                task.abort();
                let _ = task.await;
            }
        }
        self.monitor.shutdown().await;
        // Evaluation and delivery stop between steps; what is queued stays in the outbox.
        let _ = self.alerts_stop.send(true);
        for t in self.alert_tasks {
            let _ = tokio::time::timeout(self.shutdown_timeout, t).await;
        }
        // Rows answered by the predictor but still queued for capture are written first, for at
        // most `shutdown_timeout`; what is left then is counted as dropped.
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        // The workers keep their deadline themselves; this only guards against a write that hangs.
        let guard = deadline + std::time::Duration::from_secs(5);
        if tokio::time::timeout_at(guard, self.lifecycle.stop_capture(deadline)).await.is_err() {
            tracing::warn!("the predictor's capture workers did not end within the shutdown timeout");
        }
        drop(self.lifecycle);
        self.collector.flush().await.map_err(anyhow::Error::msg)?;
        match Arc::try_unwrap(self.collector) {
            Ok(collector) => tokio::task::spawn_blocking(move || collector.shutdown()).await?,
            Err(_) => tracing::warn!("collector still referenced at shutdown; its WAL is replayed at the next start"),
        }
        Ok(())
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "starting or shutting down").into_response()
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&state.registry.gather(), &mut out) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], out).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

async fn models(State(state): State<AppState>) -> Response {
    let models: Vec<_> =
        state.schemas.iter().map(|(name, schema)| serde_json::json!({"name": name, "schema": schema})).collect();
    axum::Json(serde_json::json!({ "models": models })).into_response()
}

/// How long `/v1/flush` waits for the predictor's capture queues to be written.
const FLUSH_CAPTURE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn flush(State(state): State<AppState>) -> Response {
    if tokio::time::timeout(FLUSH_CAPTURE_WAIT, state.lifecycle.drain_capture()).await.is_err() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "flush_failed",
            format!(
                "the predictor's capture queue was not written within {} s: the collector is overloaded or cannot write; retry later",
                FLUSH_CAPTURE_WAIT.as_secs()
            ),
        )
        .into_response();
    }
    match state.collector.flush().await {
        Ok(()) => axum::Json(serde_json::json!({"flushed": true})).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "flush_failed", e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    model: String,
    sql: String,
}

async fn query(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let request: QueryRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(
                "malformed_json",
                format!("expected {{\"model\": \"...\", \"sql\": \"...\"}}: {e}"),
            )
            .into_response();
        }
    };
    let Some((_, schema)) = state.schemas.iter().find(|(name, _)| *name == request.model) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_model",
            format!("no model `{}` is configured", request.model),
        )
        .field("model")
        .into_response();
    };
    let result = async {
        let ctx =
            sql::session(&state.collector.store, &request.model, schema, state.query.memory_limit as usize).await?;
        let out = sql::run(&ctx, &request.sql, &state.query.limits()).await?;
        let rows = sql::to_json_rows(&out.batches, state.query.memory_limit as usize)?;
        Ok::<_, QueryError>((out, rows))
    }
    .await;
    match result {
        Ok((out, rows)) => {
            let columns: Vec<_> = out
                .schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            let mut body = format!(
                "{{\"columns\":{},\"row_count\":{},\"truncated\":{},\"rows\":",
                serde_json::Value::from(columns),
                out.num_rows(),
                out.truncated
            )
            .into_bytes();
            body.extend_from_slice(&rows);
            body.push(b'}');
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => query_error(e).into_response(),
    }
}

fn monitor_of<'a>(state: &'a AppState, model: &str) -> Result<&'a Arc<ModelMonitor>, ApiError> {
    state.monitor.model(model).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "unknown_model", format!("no model `{model}` is configured"))
            .field("model")
    })
}

/// `?from=&to=&window=`: RFC 3339 bounds on the window start, and `tumbling`, `rows` or `rolling`
/// windows (default: the model's own tumbling windows, `rows` when it has `window_rows`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: Option<String>,
    to: Option<String>,
    window: Option<String>,
}

/// An RFC 3339 bound as the results tables compare it. Windows only exist within the accepted
/// event times ([`EVENT_TIMES_US`]), so a bound outside them is moved to their edge: any valid
/// time is a valid bound, and the comparison never leaves what the query engine can represent.
fn bound(value: &Option<String>, field: &str, default: &str) -> Result<String, ApiError> {
    let Some(v) = value else { return Ok(default.to_string()) };
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| {
            let us = t.timestamp_micros().clamp(EVENT_TIMES_US.start, EVENT_TIMES_US.end);
            let t = chrono::DateTime::from_timestamp_micros(us).expect("within the accepted event times");
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        })
        .map_err(|e| {
            ApiError::bad_request("invalid_parameter", format!("`{field}` must be an RFC 3339 time: {e}"))
                .field(field)
                .expected_got("e.g. 2026-11-25T13:00:00Z", v.clone())
        })
}

/// The per-window header fields; everything else of a row goes into the window's item list.
const WINDOW_FIELDS: [&str; 9] = [
    "window",
    "window_index",
    "window_start",
    "window_end",
    "computed_at",
    "rows",
    "labeled_rows",
    "dataset_drift_share",
    "dataset_drifted",
];

async fn results(
    State(state): State<AppState>,
    axum::extract::Path(model): axum::extract::Path<String>,
    axum::extract::Query(range): axum::extract::Query<Range>,
    table: &'static str,
) -> Response {
    let result = async {
        let monitor = monitor_of(&state, &model)?;
        let from = bound(&range.from, "from", "1970-01-01T00:00:00Z")?;
        let to = bound(&range.to, "to", "2200-01-01T00:00:00Z")?;
        let (_, schema) = state.schemas.iter().find(|(n, _)| *n == model).expect("monitored models are configured");
        let ctx = sql::session(&state.collector.store, &model, schema, state.query.memory_limit as usize)
            .await
            .map_err(query_error)?;
        let window = match range.window.as_deref() {
            None => monitor.tumbling_kind(),
            Some("tumbling") => "tumbling",
            Some("rows") => "rows",
            Some("rolling") => "rolling",
            Some(other) => {
                return Err(ApiError::bad_request("invalid_parameter", "`window` is `tumbling`, `rows` or `rolling`")
                    .field("window")
                    .expected_got("tumbling, rows or rolling", other));
            }
        };
        let sql = format!(
            "SELECT * FROM {table} WHERE window = '{window}' AND window_start >= '{from}' AND window_start < '{to}' ORDER BY window_start, window_index"
        );

        let out = sql::run(&ctx, &sql, &state.query.limits()).await.map_err(query_error)?;
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&sql::to_json_rows(&out.batches, state.query.memory_limit as usize).map_err(query_error)?)
                .map_err(|e| ApiError::internal(&e))?;
        let items = match table {
            "drift" => "columns",
            "performance" => "metrics",
            _ => "checks",
        };
        let mut windows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
        for row in rows {
            let serde_json::Value::Object(mut row) = row else { continue };
            let id = (row.get("window_start").cloned(), row.get("window_index").cloned());
            if windows.last().is_none_or(|w| (w.get("window_start").cloned(), w.get("window_index").cloned()) != id) {
                let mut w = serde_json::Map::new();
                for f in WINDOW_FIELDS {
                    if let Some(v) = row.get(f) {
                        w.insert(f.into(), v.clone());
                    }
                }
                w.insert(items.into(), serde_json::Value::Array(vec![]));
                windows.push(w);
            }
            for f in WINDOW_FIELDS {
                row.remove(f);
            }
            if let Some(serde_json::Value::Array(list)) = windows.last_mut().and_then(|w| w.get_mut(items)) {
                list.push(serde_json::Value::Object(row));
            }
        }
        Ok::<_, ApiError>(axum::Json(
            serde_json::json!({"model": model, "truncated": out.truncated, "windows": windows}),
        ))
    }
    .await;
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn upload_reference(
    State(state): State<AppState>,
    axum::extract::Path(model): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = async {
        let monitor = monitor_of(&state, &model)?;
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let format = match content_type.split(';').next().unwrap_or("").trim() {
            "text/csv" => "csv",
            "application/vnd.apache.parquet" | "application/x-parquet" | "application/octet-stream" => "parquet",
            other => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send the reference as Parquet (application/vnd.apache.parquet) or CSV (text/csv), not `{other}`"),
                ));
            }
        };
        match monitor.upload_reference(body, format).await {
            Ok(profile) => Ok(axum::Json(serde_json::json!({"reference": profile}))),
            Err(monitor::Error::Reference(m)) => Err(ApiError::bad_request("invalid_reference", m)),
            Err(e @ (monitor::Error::Arrow(_) | monitor::Error::Parquet(_))) => {
                Err(ApiError::bad_request("invalid_reference", format!("the reference cannot be read: {e}")))
            }
            Err(e) => Err(ApiError::internal(&e)),
        }
    }
    .await;
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn analyze(State(state): State<AppState>, axum::extract::Path(model): axum::extract::Path<String>) -> Response {
    let monitor = match monitor_of(&state, &model) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    match monitor.run_once().await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "analysis_failed", e.to_string()).into_response(),
    }
}
