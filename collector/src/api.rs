//! Ingest endpoints: `POST /v1/models/{model}/predictions` and `POST /v1/models/{model}/labels`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::decode::{Format, Table};
use crate::error::ApiError;
use crate::metrics::UNKNOWN_MODEL;
use crate::model::Collector;
use crate::schema::is_valid_name;

/// What the ingest endpoints share.
#[derive(Clone)]
pub struct IngestState {
    /// The collector.
    pub collector: Arc<Collector>,
    /// Largest accepted request body, in bytes; more answers 413.
    pub max_body_bytes: usize,
    /// Ingest requests being decoded or written at once; more answer 429.
    pub inflight: Arc<Semaphore>,
    /// Body memory held by requests in flight, in KiB permits; more answer 429. A request holds
    /// its declared length, or `max_body_bytes` when it declares none (chunked).
    pub inflight_kib: Arc<Semaphore>,
}

/// The ingest routes, ready to merge into the server's router.
pub fn routes(state: IngestState) -> Router {
    Router::new()
        .route("/v1/models/{model}/predictions", post(predictions))
        .route("/v1/models/{model}/labels", post(labels))
        .with_state(state)
}

/// Response to an accepted prediction request.
#[derive(Serialize)]
struct Accepted<'a> {
    accepted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction_ids: Option<Vec<&'a str>>,
}

async fn predictions(state: State<IngestState>, model: Path<String>, headers: HeaderMap, body: Body) -> Response {
    ingest(state, model, headers, body, Table::Predictions).await
}

async fn labels(state: State<IngestState>, model: Path<String>, headers: HeaderMap, body: Body) -> Response {
    ingest(state, model, headers, body, Table::Labels).await
}

async fn ingest(
    State(state): State<IngestState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
    table: Table,
) -> Response {
    let known = state.collector.model(&model).is_some();
    match accept(&state, &model, &headers, body, table).await {
        Ok(response) => response,
        Err(e) => {
            let label = if known { model.as_str() } else { UNKNOWN_MODEL };
            state.collector.metrics.rejected.with_label_values(&[label, e.code]).inc();
            tracing::debug!(model = %label, table = table.as_str(), code = e.code, message = %e.message, "ingest rejected");
            e.into_response()
        }
    }
}

async fn accept(
    state: &IngestState,
    model: &str,
    headers: &HeaderMap,
    body: Body,
    table: Table,
) -> Result<Response, ApiError> {
    if !is_valid_name(model) {
        return Err(ApiError::bad_request(
            "invalid_model_name",
            "a model name is 1 to 64 of A-Z a-z 0-9 _ - . starting with a letter or digit",
        )
        .field("model"));
    }
    let Some(collector) = state.collector.model(model) else {
        let known: Vec<&str> = state.collector.model_names().collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_model",
            format!("no model `{model}` is configured; configured: {}", known.join(", ")),
        )
        .field("model"));
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than server.max_body_bytes = {} bytes; split it", state.max_body_bytes),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return Err(too_large());
    }
    let format = Format::from_content_type(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()))?;
    let Ok(_permit) = state.inflight.try_acquire() else {
        return Err(ApiError::overloaded("too many ingest requests at once; retry later", 1));
    };
    let kib = (declared.unwrap_or(state.max_body_bytes) / 1024 + 1).min(u32::MAX as usize) as u32;
    let Ok(_memory) = state.inflight_kib.try_acquire_many(kib) else {
        return Err(ApiError::overloaded("too much request data in flight; retry later", 1));
    };
    let bytes = axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|e| {
        let limit = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limit {
            too_large()
        } else {
            ApiError::bad_request("body_read", format!("could not read the request body: {e}"))
        }
    })?;
    let receipt = collector.ingest(table, format, &bytes).await?;
    let ids = matches!(table, Table::Predictions).then(|| receipt.prediction_ids().collect());
    let accepted = Accepted { accepted: receipt.rows(), prediction_ids: ids };
    let mut response = (StatusCode::OK, axum::Json(&accepted)).into_response();
    if let Some([id]) = accepted.prediction_ids.as_deref() {
        if let Ok(value) = header::HeaderValue::from_str(id) {
            response.headers_mut().insert("x-prediction-id", value);
        }
    }
    Ok(response)
}
