//! The built-in web UI at `/` and `/models/{model}`: gathers what the results API, the alerts
//! engine, the registry and the retraining loop know, and hands it to
//! [`anchorwatch_dashboards::ui`] to draw. The numbers come from the same results tables and the
//! same SQL the results API runs, so page and API always agree.

pub mod login;

use std::collections::BTreeMap;
use std::sync::Arc;

use anchorwatch_alerts::Engine;
use anchorwatch_analyzer::monitor::Monitor;
use anchorwatch_analyzer::sql;
use anchorwatch_collector::schema::{FeatureKind, ModelSchema};
use anchorwatch_collector::{ApiError, Collector};
use anchorwatch_dashboards::ui::{
    ActiveAlert, AlertEvent, Distribution, FeatureScores, Flash, ModelPage, ModelSummary, Overview, RunItem, Series,
    Status, VersionItem, Window,
};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use object_store::ObjectStoreExt;
use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;
use crate::auth::{Scope, SignedIn};
use crate::config::QueryConfig;
use crate::lifecycle::Lifecycle;
use crate::retrain::{Retrainer, RunStatus};

/// Seconds between the pages' automatic reloads.
const REFRESH_SECONDS: u32 = 60;
/// Bins of a numerical feature's histogram.
const BINS: usize = 20;
/// Categories shown at most (the most frequent ones).
const MAX_CATEGORIES: usize = 20;

/// Where the UI reads from: the same parts the API routes use.
#[derive(Clone)]
pub struct Sources {
    /// The collector (its store holds the results tables and the reference).
    pub collector: Arc<Collector>,
    /// The continuous analysis.
    pub monitor: Arc<Monitor>,
    /// The alerts engine.
    pub engine: Arc<Engine>,
    /// Registries and champions.
    pub lifecycle: Arc<Lifecycle>,
    /// Retraining runs.
    pub retrainer: Arc<Retrainer>,
    /// Query limits, as for the results API.
    pub query: QueryConfig,
}

/// The UI's pages (read scope).
pub fn api() -> Api<Arc<Sources>> {
    Api::new().get(Some(Scope::Read), "/", overview).get(Some(Scope::Read), "/models/{model}", model_page)
}

fn html(body: String) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

async fn overview(State(s): State<Arc<Sources>>, signed_in: Option<Extension<SignedIn>>) -> Response {
    let mut models = Vec::new();
    for name in s.lifecycle.model_names() {
        match summary(&s, name).await {
            Ok((m, _)) => models.push(m),
            Err(e) => return e.into_response(),
        }
    }
    html(anchorwatch_dashboards::ui::render_overview(&Overview {
        models,
        refresh_seconds: REFRESH_SECONDS,
        signed_in: signed_in.map(|Extension(who)| who.name),
    }))
}

/// `?feature=&window=`: the feature and window (index) whose distributions are drawn;
/// `?done=` or `?error=`: the outcome of a promote or roll back from the page (see
/// [`crate::lifecycle::api`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pick {
    feature: Option<String>,
    window: Option<usize>,
    done: Option<String>,
    error: Option<String>,
}

async fn model_page(
    State(s): State<Arc<Sources>>,
    Path(model): Path<String>,
    Query(pick): Query<Pick>,
    signed_in: Option<Extension<SignedIn>>,
) -> Response {
    let flash = flash(pick.done.as_deref(), pick.error.as_deref());
    match build_page(&s, &model, pick).await {
        Ok(page) => html(anchorwatch_dashboards::ui::render_model(&ModelPage {
            signed_in: signed_in.map(|Extension(who)| who.name),
            flash,
            ..page
        })),
        Err(e) => e.into_response(),
    }
}

/// The message for `?done=promoted-3`, `?done=rolled-back-2` or `?error=<code>`. Only known
/// shapes are shown, so a crafted link cannot put words on the page.
fn flash(done: Option<&str>, error: Option<&str>) -> Option<Flash> {
    if let Some(code) = error {
        let why = match code {
            "no_previous_champion" => "There is no previous champion to roll back to.",
            "unknown_version" => "That version does not exist.",
            "invalid_model" => "That version does not load or does not fit the schema.",
            "onnxruntime_missing" => "ONNX Runtime is not available to this server.",
            _ => "The change failed; the server log has the details.",
        };
        let known = !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let code = if known { format!(" ({code})") } else { String::new() };
        return Some(Flash::Failed(format!("{why} The champion is unchanged{code}.")));
    }
    let version = |prefix: &str| done?.strip_prefix(prefix)?.parse::<u32>().ok();
    if let Some(v) = version("promoted-") {
        Some(Flash::Done(format!("Version {v} is now the champion.")))
    } else {
        version("rolled-back-").map(|v| Flash::Done(format!("Rolled back: version {v} is the champion again.")))
    }
}

/// One window's drift and performance rows, as the results tables hold them.
#[derive(Default)]
struct Windows {
    windows: Vec<(Window, String, String)>,
    features: Vec<FeatureScores>,
    performance: Vec<Series>,
    computed_at: Option<String>,
}

fn schema_of<'a>(s: &'a Sources, model: &str) -> Result<&'a Arc<ModelSchema>, ApiError> {
    s.lifecycle.model(model).map(|m| m.registry.schema()).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "unknown_model", format!("no model `{model}` is configured"))
            .field("model")
    })
}

async fn rows(s: &Sources, model: &str, query: &str) -> Result<Vec<Value>, ApiError> {
    let schema = schema_of(s, model)?;
    let ctx = sql::session(&s.collector.store, model, schema, s.query.memory_limit as usize)
        .await
        .map_err(crate::api::query_error)?;
    let out = sql::run(&ctx, query, &s.query.limits()).await.map_err(crate::api::query_error)?;
    let bytes = sql::to_json_rows(&out.batches, s.query.memory_limit as usize).map_err(crate::api::query_error)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(&e))
}

fn key(row: &Value) -> String {
    format!("{}/{}", row["window_start"], row["window_index"])
}

/// Reads the model's default windows from the results tables, as `GET /v1/models/{m}/drift` does.
async fn windows(s: &Sources, model: &str) -> Result<Windows, ApiError> {
    let kind = s.monitor.model(model).map(|m| m.tumbling_kind()).unwrap_or("tumbling");
    let drift = rows(
        s,
        model,
        &format!(
            "SELECT window_start, window_index, window_end, computed_at, rows, \"column\", stattest, score, threshold, drifted, \
             dataset_drift_share, dataset_drifted FROM drift WHERE window = '{kind}' ORDER BY window_start, window_index"
        ),
    )
    .await?;
    let mut out = Windows::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut feature_index: BTreeMap<String, usize> = BTreeMap::new();
    for row in &drift {
        let k = key(row);
        let w = *index.entry(k).or_insert_with(|| {
            out.windows.push((
                Window {
                    start: row["window_start"].as_str().unwrap_or_default().to_string(),
                    rows: row["rows"].as_u64().unwrap_or(0),
                    labeled_rows: None,
                    drift_share: row["dataset_drift_share"].as_f64().unwrap_or(0.0),
                    dataset_drifted: row["dataset_drifted"].as_bool().unwrap_or(false),
                },
                row["window_start"].as_str().unwrap_or_default().to_string(),
                row["window_end"].as_str().unwrap_or_default().to_string(),
            ));
            out.windows.len() - 1
        });
        if let Some(c) = row["computed_at"].as_str()
            && out.computed_at.as_deref().is_none_or(|t| t < c)
        {
            out.computed_at = Some(c.to_string());
        }
        let column = row["column"].as_str().unwrap_or_default().to_string();
        let f = *feature_index.entry(column.clone()).or_insert_with(|| {
            out.features.push(FeatureScores {
                name: column,
                stattest: row["stattest"].as_str().unwrap_or_default().to_string(),
                scores: Vec::new(),
                drifted: Vec::new(),
                thresholds: Vec::new(),
            });
            out.features.len() - 1
        });
        let feature = &mut out.features[f];
        feature.scores.resize(w + 1, None);
        feature.drifted.resize(w + 1, false);
        feature.thresholds.resize(w + 1, None);
        feature.thresholds[w] = row["threshold"].as_f64();
        feature.scores[w] = row["score"].as_f64();
        feature.drifted[w] = row["drifted"].as_bool().unwrap_or(false);
    }
    let n = out.windows.len();
    for f in &mut out.features {
        f.scores.resize(n, None);
        f.drifted.resize(n, false);
        f.thresholds.resize(n, None);
    }
    let performance = rows(
        s,
        model,
        &format!(
            "SELECT window_start, window_index, labeled_rows, metric, kind, value FROM performance \
             WHERE window = '{kind}' ORDER BY window_start, window_index, kind, metric"
        ),
    )
    .await?;
    let mut series: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &performance {
        let Some(&w) = index.get(&key(row)) else { continue };
        out.windows[w].0.labeled_rows = row["labeled_rows"].as_u64();
        let id =
            (row["kind"].as_str().unwrap_or_default().to_string(), row["metric"].as_str().unwrap_or_default().into());
        let i = *series.entry(id.clone()).or_insert_with(|| {
            out.performance.push(Series { metric: id.1.clone(), kind: id.0.clone(), values: vec![None; n] });
            out.performance.len() - 1
        });
        out.performance[i].values[w] = row["value"].as_f64();
    }
    // Label coverage and delay are drawn on their own scale; estimate errors are in the API.
    out.performance.retain(|s| matches!(s.kind.as_str(), "realized" | "estimated") && !s.metric.starts_with("label_"));
    Ok(out)
}

/// The model's line of the overview, and its windows.
async fn summary(s: &Sources, model: &str) -> Result<(ModelSummary, Windows), ApiError> {
    let w = windows(s, model).await?;
    let served = s.lifecycle.model(model);
    let champion = match served {
        Some(m) => m.registry.champion_state().await.map_err(|e| e.to_api())?.version,
        None => None,
    };
    let firing = s
        .engine
        .alerts()
        .await
        .into_iter()
        .filter(|a| a.labels.get("model").map(String::as_str) == Some(model))
        .filter(|a| a.state == anchorwatch_alerts::State::Firing && a.silenced_by.is_empty() && !a.inhibited)
        .count();
    let retraining = s.retrainer.runs(model).await.unwrap_or_default().iter().any(|r| r.status == RunStatus::Running);
    let latest = w.windows.last().map(|(w, _, _)| w);
    let drift_share = latest.map(|w| w.drift_share);
    let failing = s.monitor.model(model).and_then(|m| m.failing());
    let status = if failing.is_some() {
        Status::Failing
    } else if retraining {
        Status::Retraining
    } else if firing > 0 {
        Status::Alerting
    } else if latest.is_some_and(|w| w.dataset_drifted) {
        Status::Drifting
    } else {
        Status::Healthy
    };
    let m = ModelSummary {
        name: model.to_string(),
        status,
        last_analysis: w.computed_at.clone(),
        champion,
        drift_share,
        firing_alerts: firing,
        analysis_error: failing.map(|f| {
            let since = chrono::DateTime::from_timestamp_micros(f.since)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            format!("{} runs in a row since {since}; the last one: {}", f.runs, f.error)
        }),
    };
    Ok((m, w))
}

fn text(v: impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

async fn build_page(s: &Sources, model: &str, pick: Pick) -> Result<ModelPage, ApiError> {
    let (summary, w) = summary(s, model).await?;
    let schema = schema_of(s, model)?.clone();
    // By default: the newest window, and its most drifted feature.
    let window = pick.window.filter(|i| *i < w.windows.len()).or(w.windows.len().checked_sub(1));
    let feature = pick.feature.filter(|f| w.features.iter().any(|x| x.name == *f)).or_else(|| {
        let i = window?;
        w.features.iter().find(|f| f.drifted.get(i) == Some(&true)).or(w.features.first()).map(|f| f.name.clone())
    });
    let selected = feature.zip(window);
    let (distribution, note) = match &selected {
        Some((feature, i)) => {
            let (_, start, end) = &w.windows[*i];
            match distribution(s, model, &schema, feature, start, end).await {
                Ok(d) => (d, Some("Distributions are drawn for numerical, categorical and boolean columns.".into())),
                Err(e) => (None, Some(format!("The distributions cannot be read: {e}"))),
            }
        }
        None => (None, None),
    };
    let alerts = s.engine.alerts().await;
    let active_alerts = alerts
        .into_iter()
        .filter(|a| a.labels.get("model").map(String::as_str) == Some(model))
        .map(|a| ActiveAlert {
            name: a.labels.get("alertname").cloned().unwrap_or_default(),
            state: a.state.as_str().to_string(),
            value: a.value,
            since: a.active_since,
            summary: a.annotations.get("summary").cloned().unwrap_or_default(),
        })
        .collect();
    let alert_events = s
        .engine
        .history(1000)
        .await
        .into_iter()
        .filter(|e| e.model == model && e.alertname.is_some())
        .map(|e| AlertEvent { at: e.at, event: e.event, name: e.alertname.unwrap_or_default(), value: e.value })
        .collect();
    let runs = s
        .retrainer
        .runs(model)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .into_iter()
        .map(|r| RunItem {
            id: r.id,
            trigger: text(&r.trigger),
            status: text(r.status),
            started: r.started,
            finished: r.finished,
            reason: r.reason,
            candidate: r.candidate_version,
        })
        .collect();
    let versions = match s.lifecycle.model(model) {
        Some(m) => m
            .registry
            .versions()
            .await
            .map_err(|e| e.to_api())?
            .into_iter()
            .map(|v| VersionItem {
                version: v.version,
                champion: Some(v.version) == summary.champion,
                created: v.created,
                source: v.source,
                status: text(v.status),
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(ModelPage {
        summary,
        refresh_seconds: REFRESH_SECONDS,
        windows: w.windows.into_iter().map(|(w, _, _)| w).collect(),
        features: w.features,
        selected,
        distribution: distribution.clone(),
        distribution_note: if distribution.is_some() { None } else { note },
        performance: w.performance,
        active_alerts,
        alert_events,
        runs,
        versions,
        signed_in: None,
        flash: None,
    })
}

/// Reference values (from the stored reference file) and current values (the window's stored
/// predictions) of one column, counted over shared bins or categories.
async fn distribution(
    s: &Sources,
    model: &str,
    schema: &ModelSchema,
    column: &str,
    start: &str,
    end: &str,
) -> anyhow::Result<Option<Distribution>> {
    let numerical = match schema.features.iter().find(|f| f.name == column) {
        Some(f) if f.kind == FeatureKind::Numerical => true,
        Some(f) if matches!(f.kind, FeatureKind::Categorical | FeatureKind::Boolean) => false,
        Some(_) => return Ok(None),
        None if column == "prediction" => false,
        None => return Ok(None),
    };
    let store = s.collector.store.object_store();
    let profile_path = object_store::path::Path::from(format!("{model}/reference/profile.json"));
    let profile: Value = serde_json::from_slice(&store.get(&profile_path).await?.bytes().await?)?;
    let format = profile["format"].as_str().unwrap_or("parquet").to_string();
    let data_path = object_store::path::Path::from(format!("{model}/reference/reference.{format}"));
    let data = store.get(&data_path).await?.bytes().await?;
    let batches = anchorwatch_analyzer::monitor::reference::decode(data, &format)?;
    let target = if numerical { arrow::datatypes::DataType::Float64 } else { arrow::datatypes::DataType::Utf8 };
    let mut reference_num = Vec::new();
    let mut reference_cat = Vec::new();
    for b in &batches {
        let Some(col) = b.column_by_name(column) else { continue };
        let col = arrow::compute::cast(col, &target)?;
        if numerical {
            let a = col.as_any().downcast_ref::<arrow::array::Float64Array>().expect("cast to Float64");
            reference_num.extend(a.iter().flatten().filter(|v| v.is_finite()));
        } else {
            let a = col.as_any().downcast_ref::<arrow::array::StringArray>().expect("cast to Utf8");
            reference_cat.extend(a.iter().flatten().map(str::to_string));
        }
    }
    let quoted = format!("\"{}\"", column.replace('"', "\"\""));
    let current = rows(
        s,
        model,
        &format!(
            "SELECT {quoted} AS v FROM predictions WHERE timestamp >= '{start}' AND timestamp <= '{end}' AND {quoted} IS NOT NULL"
        ),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    if numerical {
        let current: Vec<f64> = current.iter().filter_map(|r| r["v"].as_f64()).filter(|v| v.is_finite()).collect();
        let all = reference_num.iter().chain(&current);
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        if lo > hi {
            return Ok(None);
        }
        let hi = if hi == lo { lo + 1.0 } else { hi };
        let edges: Vec<f64> = (0..=BINS).map(|i| lo + (hi - lo) * i as f64 / BINS as f64).collect();
        let count = |values: &[f64]| {
            let mut c = vec![0u64; BINS];
            for v in values {
                let i = (((v - lo) / (hi - lo)) * BINS as f64).floor() as usize;
                c[i.min(BINS - 1)] += 1;
            }
            c
        };
        Ok(Some(Distribution::Numerical { reference: count(&reference_num), current: count(&current), edges }))
    } else {
        let current: Vec<String> = current
            .iter()
            .map(|r| match &r["v"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for v in &reference_cat {
            counts.entry(v).or_default().0 += 1;
        }
        for v in &current {
            counts.entry(v).or_default().1 += 1;
        }
        let mut ordered: Vec<_> = counts.into_iter().collect();
        ordered.sort_by(|a, b| (b.1.0 + b.1.1).cmp(&(a.1.0 + a.1.1)).then(a.0.cmp(b.0)));
        ordered.truncate(MAX_CATEGORIES);
        Ok(Some(Distribution::Categorical {
            labels: ordered.iter().map(|(l, _)| l.to_string()).collect(),
            reference: ordered.iter().map(|(_, c)| c.0).collect(),
            current: ordered.iter().map(|(_, c)| c.1).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_shows_only_known_shapes() {
        assert_eq!(flash(Some("promoted-3"), None), Some(Flash::Done("Version 3 is now the champion.".into())));
        assert_eq!(
            flash(Some("rolled-back-2"), None),
            Some(Flash::Done("Rolled back: version 2 is the champion again.".into()))
        );
        assert_eq!(flash(Some("pwned <b>"), None), None);
        assert_eq!(flash(None, None), None);
        let Some(Flash::Failed(m)) = flash(None, Some("no_previous_champion")) else { panic!("a failure") };
        assert!(m.contains("no previous champion") && m.ends_with("(no_previous_champion)."), "{m}");
        let Some(Flash::Failed(m)) = flash(None, Some("Call +1 555 now")) else { panic!("a failure") };
        assert!(!m.contains("555"), "{m}");
    }
}
