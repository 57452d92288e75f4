//! Wires the alert engine to the service: each model's published analysis becomes an
//! observation, the collector's refusals become the `ingest_rejected` series, the `retrain`
//! action queues a request in the store, and `/v1/alerts` and `/v1/silences` are served.

use std::collections::BTreeMap;
use std::sync::Arc;

use anchorwatch_alerts::config::{HIGHER_IS_BETTER, Watch};
use anchorwatch_alerts::engine::SilenceRequest;
use anchorwatch_alerts::notify::RetrainHook;
use anchorwatch_alerts::{Engine, Notification, Observation, Sample};
use anchorwatch_analyzer::monitor::window::{Role, WindowResult};
use anchorwatch_analyzer::monitor::{Monitor, Published};
use anchorwatch_collector::ApiError;
use anchorwatch_collector::store::Store;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::watch;

use crate::api::Api;
use crate::auth::Scope;

/// The `retrain` action without an external URL: a request file per notification under
/// `<model>/retrain/requests/`, for the retraining loop to pick up.
pub struct StoreRetrain {
    store: Store,
    retrainer: Arc<crate::retrain::Retrainer>,
}

impl StoreRetrain {
    /// Starts runs of `retrainer` for models with retraining enabled; queues a request file in
    /// `store` for the others (an outside loop's input).
    pub fn new(store: Store, retrainer: Arc<crate::retrain::Retrainer>) -> Self {
        Self { store, retrainer }
    }
}

impl RetrainHook for StoreRetrain {
    fn request(&self, model: &str, notification: &Notification) -> BoxFuture<'static, Result<(), String>> {
        if self.retrainer.enabled(model) {
            let (retrainer, model) = (self.retrainer.clone(), model.to_string());
            let names: Vec<String> =
                notification.alerts.iter().filter_map(|a| a.labels.get("alertname").cloned()).collect();
            let trigger = crate::retrain::Trigger { source: "alert".into(), reason: names.join(", ") };
            return Box::pin(async move {
                match retrainer.trigger(&model, trigger).await {
                    Ok(run) => tracing::info!(model = %model, run = %run.id, "retraining started by an alert"),
                    // A run in progress or a recent one already answers the alert.
                    Err(e) => tracing::info!(model = %model, reason = %e, "no new retraining run for the alert"),
                }
                Ok(())
            });
        }
        let store = self.store.clone();
        let path = object_store::path::Path::from(format!("{model}/retrain/requests/{}.json", notification.id));
        let body = serde_json::json!({
            "model": model,
            "notification_id": notification.id,
            "requested_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "reason": notification.alerts.iter().map(|a| a.labels.get("alertname").cloned().unwrap_or_default()).collect::<Vec<_>>(),
            "alerts": notification.alerts,
        });
        Box::pin(async move {
            let data = serde_json::to_vec_pretty(&body).map_err(|e| e.to_string())?;
            store.put(&path, data.into()).await.map_err(|e| e.to_string())?;
            tracing::info!(path = %path, "retrain requested");
            Ok(())
        })
    }
}

/// The samples of one window's result, as the rules see them.
pub fn samples(r: &WindowResult) -> Vec<Sample> {
    let mut out = vec![
        Sample::new(Watch::DatasetDriftShare, &[], r.drift_share),
        Sample::new(Watch::WindowRows, &[], r.rows as f64),
    ];
    for d in r.drift.iter().filter(|d| d.error.is_none()) {
        if d.role == Role::Multivariate {
            let method = [("method", d.stattest.as_str())];
            out.push(Sample::new(Watch::MultivariateDrift, &method, d.score));
            out.push(Sample::new(Watch::MultivariateDrifted, &method, if d.drifted { 1.0 } else { 0.0 }));
            continue;
        }
        let feature = [("feature", d.column.as_str())];
        out.push(Sample::new(Watch::FeatureDriftScore, &feature, d.score));
        out.push(Sample::new(Watch::FeatureDrifted, &feature, if d.drifted { 1.0 } else { 0.0 }));
    }
    for q in &r.quality {
        out.push(Sample::new(Watch::DataQuality, &[("feature", &q.feature), ("check", &q.check)], q.value));
    }
    for p in &r.performance {
        if p.metric == "label_coverage" {
            out.push(Sample::new(Watch::LabelCoverageRatio, &[], p.value));
            continue;
        }
        let labels = [("metric", p.metric.as_str()), ("kind", p.kind.as_str())];
        if p.value.is_finite() {
            out.push(Sample::new(Watch::ModelPerformance, &labels, p.value));
        }
        if let Some(b) = p.breached {
            out.push(Sample::new(Watch::PerformanceThresholdBreached, &labels, if b { 1.0 } else { 0.0 }));
        }
        if let (Some(reference), "realized") = (p.reference, p.kind.as_str()) {
            if reference != 0.0 && p.value.is_finite() && HIGHER_IS_BETTER.contains(&p.metric.as_str()) {
                out.push(Sample::new(
                    Watch::PerformanceDecayRatio,
                    &[("metric", p.metric.as_str())],
                    p.value / reference,
                ));
            }
        }
    }
    out
}

/// Requests refused by the collector so far, per model (all reasons).
fn rejected(registry: &prometheus::Registry) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for family in registry.gather().iter().filter(|f| f.name() == "anchorwatch_ingest_rejected_total") {
        for m in family.get_metric() {
            let model = m.get_label().iter().find(|l| l.name() == "model").map(|l| l.value().to_string());
            if let Some(model) = model {
                *out.entry(model).or_insert(0.0) += m.get_counter().get_value();
            }
        }
    }
    out
}

/// Feeds every model's analysis runs to the engine, and runs the delivery loop, until `stop`.
pub fn start(
    engine: Arc<Engine>,
    monitor: &Monitor,
    registry: prometheus::Registry,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(engine.clone().deliver(stop.clone()))];
    for m in monitor.models() {
        let (engine, registry, mut stop) = (engine.clone(), registry.clone(), stop.clone());
        let mut published = m.subscribe();
        let model = m.name.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen_rejected = rejected(&registry).get(&model).copied().unwrap_or(0.0);
            loop {
                tokio::select! {
                    changed = published.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                let Published { at, latest } = published.borrow_and_update().clone();
                let now_rejected = rejected(&registry).get(&model).copied().unwrap_or(0.0);
                let mut obs = Observation { model: model.clone(), at, window: None, samples: Vec::new() };
                obs.samples.push(Sample::new(Watch::IngestRejected, &[], (now_rejected - seen_rejected).max(0.0)));
                seen_rejected = now_rejected;
                if let Some((start, result)) = latest {
                    obs.window = Some(start);
                    obs.samples.extend(samples(&result));
                }
                if let Err(e) = engine.observe(&obs).await {
                    tracing::error!(model = %model, error = %e, "alert evaluation failed");
                }
            }
        }));
    }
    tasks
}

/// `/v1/alerts` and `/v1/silences`.
pub fn api() -> Api<Arc<Engine>> {
    Api::new()
        .get(Some(Scope::Read), "/v1/alerts", alerts)
        .get(Some(Scope::Read), "/v1/silences", silences)
        .post(Some(Scope::Admin), "/v1/silences", add_silence)
        .delete(Some(Scope::Admin), "/v1/silences/{id}", expire_silence)
}

/// `?history=N`: also the newest N events (default 100 when the parameter is given empty).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    history: Option<String>,
    model: Option<String>,
}

async fn alerts(State(engine): State<Arc<Engine>>, Query(q): Query<AlertsQuery>) -> Response {
    let limit = match q.history.as_deref() {
        None => 0,
        Some("" | "true") => 100,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                return ApiError::bad_request("invalid_parameter", "`history` is a number of events")
                    .field("history")
                    .expected_got("e.g. 100", n)
                    .into_response();
            }
        },
    };
    let mut alerts = engine.alerts().await;
    let mut history = engine.history(if q.model.is_some() { usize::MAX } else { limit }).await;
    if let Some(model) = &q.model {
        alerts.retain(|a| a.labels.get("model") == Some(model));
        history.retain(|e| &e.model == model);
        let skip = history.len().saturating_sub(limit);
        history.drain(..skip);
    }
    let mut evaluations = engine.evaluations();
    if let Some(model) = &q.model {
        evaluations.retain(|m, _| m == model);
    }
    axum::Json(serde_json::json!({"alerts": alerts, "history": history, "evaluations": evaluations})).into_response()
}

async fn silences(State(engine): State<Arc<Engine>>) -> Response {
    let list: Vec<serde_json::Value> = engine
        .silences()
        .await
        .into_iter()
        .map(|(s, active)| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["active"] = active.into();
            v
        })
        .collect();
    axum::Json(serde_json::json!({ "silences": list })).into_response()
}

async fn add_silence(State(engine): State<Arc<Engine>>, body: axum::body::Bytes) -> Response {
    let request: SilenceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(
                "malformed_json",
                format!("expected {{\"matchers\": {{\"label\": \"value\"}}, \"duration\": \"2h\", \"comment\": \"...\"}}: {e}"),
            )
            .into_response();
        }
    };
    match engine.silence(request).await {
        Ok(s) => (StatusCode::CREATED, axum::Json(s)).into_response(),
        Err(e) => {
            let field = e.split(':').next().unwrap_or("").to_string();
            let mut err = ApiError::bad_request("invalid_silence", e);
            if ["matchers", "ends_at", "duration"].contains(&field.as_str()) {
                err = err.field(&field);
            }
            err.into_response()
        }
    }
}

async fn expire_silence(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Response {
    match engine.expire_silence(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => ApiError::new(StatusCode::NOT_FOUND, "unknown_silence", format!("no silence `{id}`"))
            .field("id")
            .into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
