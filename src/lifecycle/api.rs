//! HTTP: the registry (`/v1/models/{model}/versions`, promote, rollback) and the predictor
//! (`/v1/models/{model}/predict`, `/v2/models/{model}/infer`, the v2 readiness probes).

use std::sync::Arc;

use anchorwatch_collector::ApiError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::input;
use super::predictor::{Answer, Lifecycle};
use super::registry::{ModelRecord, NewVersion};
use crate::api::Api;
use crate::auth::Scope;

/// The registry's and the predictor's routes, each with the scope it needs.
pub fn api() -> Api<Arc<Lifecycle>> {
    Api::new()
        .get(Some(Scope::Read), "/v1/models/{model}/versions", versions)
        .post(Some(Scope::Admin), "/v1/models/{model}/versions", upload)
        .post(Some(Scope::Admin), "/v1/models/{model}/versions/{version}/promote", promote)
        .post(Some(Scope::Admin), "/v1/models/{model}/rollback", rollback)
        .post(Some(Scope::Ingest), "/v1/models/{model}/predict", predict)
        .post(Some(Scope::Ingest), "/v2/models/{model}/infer", infer)
        .get(None, "/v2/models/{model}/ready", model_ready)
        .get(None, "/v2/health/ready", health_ready)
}

fn reply(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn versions(State(l): State<Arc<Lifecycle>>, Path(model): Path<String>) -> Response {
    reply(
        async {
            let served = l.model(&model).ok_or_else(|| unknown(&l, &model))?;
            let versions = served.registry.versions().await.map_err(|e| e.to_api())?;
            let state = served.registry.champion_state().await.map_err(|e| e.to_api())?;
            let serving = served.champion().map(|c| c.version);
            Ok(axum::Json(json!({
                "model": model,
                "champion": state.version,
                "previous_champions": state.history,
                "serving": serving,
                "versions": versions,
            }))
            .into_response())
        }
        .await,
    )
}

fn unknown(l: &Lifecycle, model: &str) -> ApiError {
    let known: Vec<&str> = l.model_names().collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        format!("no model `{model}` is configured; configured: {}", known.join(", ")),
    )
    .field("model")
}

async fn upload(
    State(l): State<Arc<Lifecycle>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(
        async {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let media = content_type.split(';').next().unwrap_or("").trim();
            if !matches!(media, "application/octet-stream" | "application/onnx" | "application/x-onnx" | "") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send the ONNX file as application/octet-stream, not `{media}`"),
                ));
            }
            if body.is_empty() {
                return Err(ApiError::bad_request("empty", "the body is empty; send the ONNX file"));
            }
            let record = l.upload(&model, body, NewVersion { source: "upload".into(), ..Default::default() }).await?;
            Ok((StatusCode::CREATED, axum::Json(record)).into_response())
        }
        .await,
    )
}

fn parse_version(v: &str) -> Result<u32, ApiError> {
    v.strip_prefix('v').unwrap_or(v).parse().map_err(|_| {
        ApiError::bad_request("invalid_parameter", format!("`{v}` is not a version; give a number such as 3 or v3"))
            .field("version")
            .expected_got("a version number, e.g. 3 or v3", v)
    })
}

/// Whether the request is a browser's form post (the UI's Promote and Roll back buttons) rather
/// than an API client: a form body, and a browser that wants HTML back.
fn from_browser_form(headers: &HeaderMap) -> bool {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    value(header::CONTENT_TYPE).trim_start().starts_with("application/x-www-form-urlencoded")
        && value(header::ACCEPT).contains("text/html")
}

/// A champion change's answer: a browser's form post goes back to the model's page, with
/// `?done=<what>-<version>` or `?error=<code>` for the page to show; API clients get the JSON
/// record or error.
fn changed(headers: &HeaderMap, model: &str, done: &str, result: Result<ModelRecord, ApiError>) -> Response {
    if from_browser_form(headers) {
        let page = format!("/models/{}", anchorwatch_dashboards::ui::url_segment(model));
        let outcome = match &result {
            Ok(record) => format!("done={done}-{}", record.version),
            Err(e) => format!("error={}", e.code),
        };
        return Redirect::to(&format!("{page}?{outcome}#versions")).into_response();
    }
    reply(result.map(|record| axum::Json(json!({"model": model, "champion": record})).into_response()))
}

async fn promote(
    State(l): State<Arc<Lifecycle>>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = match parse_version(&version) {
        Ok(v) => l.promote(&model, v).await,
        Err(e) => Err(e),
    };
    changed(&headers, &model, "promoted", result)
}

async fn rollback(State(l): State<Arc<Lifecycle>>, Path(model): Path<String>, headers: HeaderMap) -> Response {
    let result = l.rollback(&model).await;
    changed(&headers, &model, "rolled-back", result)
}

fn scores_object(l: &Lifecycle, model: &str, answer: &Answer, i: usize) -> Option<Value> {
    let schema = l.model(model)?.registry.schema().clone();
    let s = answer.predicted.scores(i)?;
    if schema.scores.is_empty() {
        return Some(Value::from(s.iter().map(|x| f64::from(*x)).collect::<Vec<_>>()));
    }
    Some(Value::Object(schema.scores.iter().zip(s).map(|(c, p)| (c.clone(), Value::from(f64::from(*p)))).collect()))
}

fn with_id(mut response: Response, ids: &[String]) -> Response {
    if let [id] = ids {
        if let Ok(v) = header::HeaderValue::from_str(id) {
            response.headers_mut().insert("x-prediction-id", v);
        }
    }
    response
}

async fn predict(State(l): State<Arc<Lifecycle>>, Path(model): Path<String>, body: Bytes) -> Response {
    let result = async {
        let champion = l.champion(&model)?;
        let schema = l.model(&model).map(|m| m.registry.schema().clone()).ok_or_else(|| unknown(&l, &model))?;
        let (batch, single) = input::records(&schema, &body, l.config().max_batch_rows)?;
        let answer = l.predict(&model, champion, batch).await?;
        let row = |i: usize| {
            let mut r = json!({
                "prediction_id": answer.ids[i],
                "prediction": answer.predicted.prediction(schema.prediction, i),
            });
            if let Some(s) = scores_object(&l, &model, &answer, i) {
                r["scores"] = s;
            }
            r
        };
        let version = format!("v{}", answer.version);
        let body = if single {
            let mut r = row(0);
            r["model_version"] = Value::from(version);
            r
        } else {
            json!({"model_version": version, "predictions": (0..answer.ids.len()).map(row).collect::<Vec<_>>()})
        };
        Ok(with_id(axum::Json(body).into_response(), &answer.ids))
    }
    .await;
    l.count(&model, "predict", result.as_ref().map_or_else(|e: &ApiError| e.code, |_| "ok"));
    reply(result)
}

async fn infer(State(l): State<Arc<Lifecycle>>, Path(model): Path<String>, body: Bytes) -> Response {
    let result = async {
        let champion = l.champion(&model)?;
        let schema = l.model(&model).map(|m| m.registry.schema().clone()).ok_or_else(|| unknown(&l, &model))?;
        let (batch, id) = input::oip(&schema, champion.matrix_input(), &body, l.config().max_batch_rows)?;
        let rows = batch.rows;
        let answer = l.predict(&model, champion, batch).await?;
        let mut out = json!({
            "model_name": model,
            "model_version": format!("v{}", answer.version),
            "outputs": answer.predicted.oip_outputs(rows),
            "parameters": {"prediction_ids": answer.ids},
        });
        if let Some(id) = id {
            out["id"] = Value::from(id);
        }
        Ok(with_id(axum::Json(out).into_response(), &answer.ids))
    }
    .await;
    l.count(&model, "infer", result.as_ref().map_or_else(|e: &ApiError| e.code, |_| "ok"));
    reply(result)
}

async fn model_ready(State(l): State<Arc<Lifecycle>>, Path(model): Path<String>) -> Response {
    reply(
        async {
            let champion = l.champion(&model)?;
            Ok(axum::Json(json!({"name": model, "ready": true, "version": format!("v{}", champion.version)}))
                .into_response())
        }
        .await,
    )
}

async fn health_ready(State(l): State<Arc<Lifecycle>>) -> Response {
    let mut waiting = Vec::new();
    for name in l.model_names() {
        let Some(m) = l.model(name) else { continue };
        let stored = m.registry.champion_state().await.ok().and_then(|s| s.version);
        if l.config().enabled && stored.is_some() && m.champion().map(|c| c.version) != stored {
            waiting.push(name.to_string());
        }
    }
    if waiting.is_empty() {
        axum::Json(json!({"ready": true})).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("the champion of {} is not loaded", waiting.join(", ")),
        )
        .into_response()
    }
}
