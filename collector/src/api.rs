//! Ingest endpoints: `POST /v1/models/{model}/predictions` and `POST /v1/models/{model}/labels`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
    /// Ingest requests being decoded or written at once; more answer 429. Taken once the body
    /// has arrived, so slow senders cannot hold these permits.
    pub inflight: Arc<Semaphore>,
    /// Body memory held by requests in flight, in KiB permits; more answer 429. A request holds
    /// what it has sent so far, taken as its bytes arrive: a client that declares 16 MiB and
    /// trickles holds only what it trickled.
    pub inflight_kib: Arc<Semaphore>,
}

/// Response to an accepted prediction request.
#[derive(Serialize)]
struct Accepted<'a> {
    accepted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction_ids: Option<Vec<&'a str>>,
}

/// `POST /v1/models/{model}/predictions` (the server declares the route and its scope).
pub async fn predictions(state: State<IngestState>, model: Path<String>, headers: HeaderMap, body: Body) -> Response {
    ingest(state, model, headers, body, Table::Predictions).await
}

/// `POST /v1/models/{model}/labels` (the server declares the route and its scope).
pub async fn labels(state: State<IngestState>, model: Path<String>, headers: HeaderMap, body: Body) -> Response {
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
    let (bytes, _memory) = read_body(state, body, declared.unwrap_or(0), too_large).await?;
    let Ok(_permit) = state.inflight.try_acquire() else {
        return Err(ApiError::overloaded("too many ingest requests at once; retry later", 1));
    };
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

/// Reads the body whole, at most `max_body_bytes`, taking a KiB permit of `inflight_kib` for
/// each KiB as it arrives; the permits are held until the request is answered.
async fn read_body<'s>(
    state: &'s IngestState,
    mut body: Body,
    declared: usize,
    too_large: impl Fn() -> ApiError,
) -> Result<(Vec<u8>, tokio::sync::SemaphorePermit<'s>), ApiError> {
    use http_body_util::BodyExt;
    let busy = || ApiError::overloaded("too much request data in flight; retry later", 1);
    let mut memory = state.inflight_kib.try_acquire_many(1).map_err(|_| busy())?;
    let mut held_kib = 1usize;
    // What a client declares is reserved up to 1 MiB; beyond, the buffer grows with what arrives.
    let mut bytes = Vec::with_capacity(declared.min(state.max_body_bytes).min(1 << 20));
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request("body_read", format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if bytes.len() + data.len() > state.max_body_bytes {
            return Err(too_large());
        }
        bytes.extend_from_slice(&data);
        let needed = bytes.len() / 1024 + 1;
        if needed > held_kib {
            let more = u32::try_from(needed - held_kib).map_err(|_| busy())?;
            memory.merge(state.inflight_kib.try_acquire_many(more).map_err(|_| busy())?);
            held_kib = needed;
        }
    }
    Ok((bytes, memory))
}
