//! The HTTP server: wires the collector, queries, metrics and probes into one router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use driftwatch_analyzer::sql::{self, QueryError};
use driftwatch_collector::api::IngestState;
use driftwatch_collector::metrics::Metrics as CollectorMetrics;
use driftwatch_collector::schema::ModelSchema;
use driftwatch_collector::store::Store;
use driftwatch_collector::{ApiError, Collector};
use object_store::ObjectStoreExt;
use serde::Deserialize;
use tokio::sync::{Semaphore, oneshot};

use crate::config::{Loaded, QueryConfig};

/// Every route the server answers, as (method, path template). `docs/openapi.json` describes
/// exactly these; a test holds the two together.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/models"),
    ("POST", "/v1/models/{model}/predictions"),
    ("POST", "/v1/models/{model}/labels"),
    ("POST", "/v1/query"),
    ("POST", "/v1/flush"),
];

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../docs/openapi.json");

#[derive(Clone)]
struct AppState {
    collector: Arc<Collector>,
    schemas: Arc<Vec<(String, ModelSchema)>>,
    query: QueryConfig,
    registry: prometheus::Registry,
    ready: Arc<AtomicBool>,
}

/// A running server.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    collector: Arc<Collector>,
    ready: Arc<AtomicBool>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown_timeout: std::time::Duration,
}

/// Fixes each model's schema in the store: an inferred schema is saved the first time and reused
/// afterwards, so a changed reference file cannot silently change the stored columns.
/// With `save` false (read-only commands) nothing is written.
pub async fn fixed_schemas(loaded: &Loaded, store: &Store, save: bool) -> anyhow::Result<Vec<(String, ModelSchema)>> {
    let mut out = Vec::new();
    for ((name, schema), model) in loaded.models.iter().zip(&loaded.config.models) {
        let path = object_store::path::Path::from(format!("{name}/schema.json"));
        let saved = match store.object_store().get(&path).await {
            Ok(r) => Some(serde_json::from_slice::<ModelSchema>(&r.bytes().await?)?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let inferred = model.schema.features.is_empty();
        let schema = match saved {
            Some(saved) if inferred => saved,
            Some(saved) if saved != *schema => {
                tracing::warn!(model = %name, "the declared schema differs from the one stored before; files written earlier keep their columns");
                schema.clone()
            }
            _ => schema.clone(),
        };
        if save {
            store.put(&path, serde_json::to_vec_pretty(&schema)?.into()).await?;
        }
        out.push((name.clone(), schema));
    }
    Ok(out)
}

impl Server {
    /// Opens the store, replays the WAL, binds `listen` and starts serving.
    pub async fn start(loaded: &Loaded, listen: SocketAddr) -> anyhow::Result<Self> {
        let config = &loaded.config;
        let store = Store::open(&loaded.store_root())?;
        let schemas = fixed_schemas(loaded, &store, true).await?;
        let registry = prometheus::Registry::new();
        let metrics = CollectorMetrics::register(&registry)?;
        let collector = Arc::new(Collector::open(&config.collector, store, schemas.clone(), metrics).await?);
        let ready = Arc::new(AtomicBool::new(false));
        let state = AppState {
            collector: collector.clone(),
            schemas: Arc::new(schemas),
            query: config.query.clone(),
            registry,
            ready: ready.clone(),
        };
        let ingest = driftwatch_collector::api::routes(IngestState {
            collector: collector.clone(),
            max_body_bytes: config.server.max_body_bytes as usize,
            inflight: Arc::new(Semaphore::new(config.server.max_inflight_ingest)),
            inflight_kib: Arc::new(Semaphore::new((config.server.max_inflight_body_bytes / 1024) as usize)),
        });
        let tokens = Arc::new(config.auth.resolve()?);
        let app = Router::new()
            .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
            .route("/v1/models", get(models))
            .route("/v1/query", post(query))
            .route("/v1/flush", post(flush))
            .with_state(state)
            .merge(ingest)
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
            .layer(axum::middleware::from_fn_with_state(tokens, crate::auth::check));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        ready.store(true, Ordering::Relaxed);
        Ok(Self { addr, collector, ready, stop, task, shutdown_timeout: config.server.shutdown_timeout })
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

async fn flush(State(state): State<AppState>) -> Response {
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
        let rows = sql::to_json_rows(&out.batches)?;
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

/// The HTTP form of a query failure.
pub fn query_error(e: QueryError) -> ApiError {
    let message = e.to_string();
    match e {
        QueryError::Invalid(_) => ApiError::bad_request("invalid_query", message),
        QueryError::ReadOnly(_) => ApiError::new(StatusCode::FORBIDDEN, "read_only", message),
        QueryError::ResourcesExhausted(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_too_large", message)
        }
        QueryError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "query_timeout", message),
        QueryError::Execution(_) => ApiError::internal(&message),
    }
}
