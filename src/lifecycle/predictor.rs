//! The built-in predictor: each model's champion as a small pool of ONNX Runtime sessions, swapped
//! atomically on promotion, and the capture of every prediction through the collector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anchorwatch_collector::schema::{ModelSchema, ValueKind};
use anchorwatch_collector::store::Store;
use anchorwatch_collector::{ApiError, Collector};
use axum::http::StatusCode;
use bytes::Bytes;
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::capture::{Answered, Capture};
use super::config::PredictorConfig;
use super::input::{Column, FeatureBatch};
use super::metrics::Metrics;
use super::registry::{self, ModelRecord, NewVersion, Registry, RegistryError};
use super::signature::{Elem, Layout, Outputs, Signature};

/// A version being served: its sessions and how to feed and read them.
pub struct Champion {
    /// The version.
    pub version: u32,
    /// How inputs and outputs map to the schema.
    pub signature: Signature,
    schema: Arc<ModelSchema>,
    sessions: Mutex<Vec<Session>>,
    free: Semaphore,
}

/// A model's labels as it outputs them.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// int64 labels.
    Int(Vec<i64>),
    /// string labels.
    Str(Vec<String>),
}

/// What the model said for a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicted {
    /// A classifier's labels and, when read, probabilities (`C` per row, flat).
    Classes {
        /// One per row.
        labels: Labels,
        /// `(C, values)`.
        probabilities: Option<(usize, Vec<f32>)>,
    },
    /// A regressor's values.
    Values(Vec<f64>),
}

impl Predicted {
    /// Row `i`'s prediction as the schema stores it.
    pub fn prediction(&self, kind: ValueKind, i: usize) -> Value {
        match (self, kind) {
            (Predicted::Values(v), _) => Value::from(v[i]),
            (Predicted::Classes { labels: Labels::Int(l), .. }, ValueKind::Boolean) => Value::from(l[i] != 0),
            (Predicted::Classes { labels: Labels::Str(l), .. }, ValueKind::Boolean) => {
                Value::from(matches!(l[i].as_str(), "true" | "True" | "1"))
            }
            (Predicted::Classes { labels: Labels::Int(l), .. }, _) => Value::from(l[i].to_string()),
            (Predicted::Classes { labels: Labels::Str(l), .. }, _) => Value::from(l[i].as_str()),
        }
    }

    /// Row `i`'s probabilities.
    pub fn scores(&self, i: usize) -> Option<&[f32]> {
        match self {
            Predicted::Classes { probabilities: Some((c, p)), .. } => Some(&p[i * c..(i + 1) * c]),
            _ => None,
        }
    }

    /// The outputs in Open Inference Protocol v2 form.
    pub fn oip_outputs(&self, rows: usize) -> Vec<Value> {
        match self {
            Predicted::Values(v) => {
                vec![json!({"name": "variable", "datatype": "FP64", "shape": [rows, 1], "data": v})]
            }
            Predicted::Classes { labels, probabilities } => {
                let mut out = vec![match labels {
                    Labels::Int(l) => json!({"name": "label", "datatype": "INT64", "shape": [rows], "data": l}),
                    Labels::Str(l) => json!({"name": "label", "datatype": "BYTES", "shape": [rows], "data": l}),
                }];
                if let Some((c, p)) = probabilities {
                    out.push(json!({"name": "probabilities", "datatype": "FP32", "shape": [rows, c], "data": p}));
                }
                out
            }
        }
    }
}

type RunError = String;

impl Champion {
    /// Loads `pool_size` sessions of a model file and checks its signature.
    pub fn build(
        bytes: &[u8],
        version: u32,
        schema: Arc<ModelSchema>,
        config: &PredictorConfig,
    ) -> Result<Self, RegistryError> {
        let (first, signature) = registry::validate(bytes, &schema)?;
        let mut sessions = vec![first];
        for _ in 1..config.pool_size {
            sessions.push(registry::session(bytes, config.intra_threads)?);
        }
        Ok(Self { version, signature, schema, free: Semaphore::new(sessions.len()), sessions: Mutex::new(sessions) })
    }

    /// The single input's name when the model takes all features as one `[N, F]` tensor.
    pub fn matrix_input(&self) -> Option<&str> {
        match &self.signature.layout {
            Layout::Matrix { name, .. } => Some(name),
            Layout::PerFeature(_) => None,
        }
    }

    /// Runs the model on a batch, waiting for a free session.
    pub async fn predict(&self, batch: Arc<FeatureBatch>) -> Result<Predicted, RunError> {
        let _permit = self.free.acquire().await.map_err(|e| e.to_string())?;
        let mut session = self
            .sessions
            .lock()
            .map_err(|_| "session pool poisoned".to_string())?
            .pop()
            .ok_or_else(|| "no free session".to_string())?;
        let signature = self.signature.clone();
        let schema = self.schema.clone();
        let (session, result) = tokio::task::spawn_blocking(move || {
            let result = run(&mut session, &signature, &schema, &batch);
            (session, result)
        })
        .await
        .map_err(|e| format!("inference task failed: {e}"))?;
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.push(session);
        }
        result
    }
}

fn tensor<T: Clone + std::fmt::Debug + ort::value::PrimitiveTensorElementType + 'static>(
    shape: [usize; 2],
    data: Vec<T>,
) -> Result<DynValue, RunError> {
    Tensor::from_array((shape, data)).map(|t| t.into_dyn()).map_err(|e| e.to_string())
}

fn float_column(column: &Column, rows: usize) -> Vec<f64> {
    match column {
        Column::Num(v) => v.clone(),
        Column::Bool(v) => v.iter().map(|b| b.map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 })).collect(),
        _ => vec![f64::NAN; rows],
    }
}

fn input(column: &Column, elem: Elem, rows: usize) -> Result<DynValue, RunError> {
    match (column, elem) {
        (Column::Str(v), _) => {
            let strings: Vec<String> = v.iter().map(|s| s.clone().unwrap_or_default()).collect();
            Tensor::from_string_array(([rows, 1], &strings[..])).map(|t| t.into_dyn()).map_err(|e| e.to_string())
        }
        (Column::Emb(v, dim), _) => tensor([rows, *dim], v.clone()),
        (Column::Bool(v), Elem::Bool) => tensor([rows, 1], v.iter().map(|b| b.unwrap_or(false)).collect()),
        (Column::Num(v), Elem::I64) => {
            tensor([rows, 1], v.iter().map(|x| if x.is_nan() { 0 } else { *x as i64 }).collect())
        }
        (c, Elem::F64) => tensor([rows, 1], float_column(c, rows)),
        (c, _) => tensor([rows, 1], float_column(c, rows).into_iter().map(|x| x as f32).collect()),
    }
}

fn run(
    session: &mut Session,
    signature: &Signature,
    schema: &ModelSchema,
    batch: &FeatureBatch,
) -> Result<Predicted, RunError> {
    let rows = batch.rows;
    let mut inputs: Vec<(String, DynValue)> = Vec::new();
    match &signature.layout {
        Layout::PerFeature(elems) => {
            for ((f, column), elem) in schema.features.iter().zip(&batch.columns).zip(elems) {
                inputs.push((f.name.clone(), input(column, *elem, rows)?));
            }
        }
        Layout::Matrix { name, elem } => {
            let columns: Vec<Vec<f64>> = batch.columns.iter().map(|c| float_column(c, rows)).collect();
            let f = columns.len();
            let flat: Vec<f64> = (0..rows * f).map(|k| columns[k % f][k / f]).collect();
            let value = match elem {
                Elem::F64 => tensor([rows, f], flat)?,
                _ => tensor([rows, f], flat.into_iter().map(|x| x as f32).collect())?,
            };
            inputs.push((name.clone(), value));
        }
    }
    let outputs = session.run(inputs).map_err(|e| format!("ONNX Runtime: {e}"))?;
    let get = |name: &str| outputs.get(name).ok_or_else(|| format!("the model gave no `{name}` output"));
    let check = |name: &str, n: usize| {
        if n == rows { Ok(()) } else { Err(format!("output `{name}` has {n} rows for {rows} input rows")) }
    };
    match &signature.outputs {
        Outputs::Regressor { elem } => {
            let v = get("variable")?;
            let values: Vec<f64> = match elem {
                Elem::F64 => v.try_extract_tensor::<f64>().map_err(|e| e.to_string())?.1.to_vec(),
                _ => {
                    v.try_extract_tensor::<f32>().map_err(|e| e.to_string())?.1.iter().map(|x| f64::from(*x)).collect()
                }
            };
            check("variable", values.len())?;
            Ok(Predicted::Values(values))
        }
        Outputs::Classifier { label, probabilities } => {
            let l = get("label")?;
            let labels = match label {
                Elem::I64 => Labels::Int(l.try_extract_tensor::<i64>().map_err(|e| e.to_string())?.1.to_vec()),
                _ => Labels::Str(l.try_extract_strings().map_err(|e| e.to_string())?.1),
            };
            check(
                "label",
                match &labels {
                    Labels::Int(v) => v.len(),
                    Labels::Str(v) => v.len(),
                },
            )?;
            let probabilities = if *probabilities {
                let (shape, p) = get("probabilities")?.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
                let c = shape.get(1).copied().unwrap_or(1).max(1) as usize;
                check("probabilities", p.len() / c)?;
                Some((c, p.to_vec()))
            } else {
                None
            };
            Ok(Predicted::Classes { labels, probabilities })
        }
    }
}

/// One model: its registry and the champion served.
pub struct ServedModel {
    /// The versions.
    pub registry: Registry,
    champion: RwLock<Option<Arc<Champion>>>,
}

impl ServedModel {
    /// The champion now; a request keeps the `Arc` it started with.
    pub fn champion(&self) -> Option<Arc<Champion>> {
        self.champion.read().ok().and_then(|c| c.clone())
    }

    fn swap(&self, champion: Option<Arc<Champion>>) {
        if let Ok(mut slot) = self.champion.write() {
            *slot = champion;
        }
    }
}

/// A prediction answered: ids, the model version, and what it said.
pub struct Answer {
    /// The version that answered.
    pub version: u32,
    /// One per row.
    pub ids: Vec<String>,
    /// The outputs.
    pub predicted: Predicted,
}

/// Every model's registry and champion, and the capture into the collector.
pub struct Lifecycle {
    models: BTreeMap<String, Arc<ServedModel>>,
    config: PredictorConfig,
    capture: Option<Capture>,
    metrics: Option<Metrics>,
}

impl Lifecycle {
    /// Opens every model's registry and loads its champion. A champion that cannot be loaded
    /// (no ONNX Runtime, a broken file) is logged and the model serves 503 until one is promoted.
    pub async fn open(
        store: &Store,
        schemas: &[(String, ModelSchema)],
        config: PredictorConfig,
        collector: Option<Arc<Collector>>,
        metrics: Option<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut models = BTreeMap::new();
        for (name, schema) in schemas {
            let registry = Registry::new(store.clone(), name.clone(), Arc::new(schema.clone()));
            models.insert(name.clone(), Arc::new(ServedModel { registry, champion: RwLock::new(None) }));
        }
        // Capture runs only where there is a collector to write to and it is on.
        let capture = match (&collector, config.capture) {
            (Some(c), true) => Some(Capture::start(c, config.capture_queue_rows, CAPTURE_BATCH_ROWS, metrics.clone())),
            _ => None,
        };
        let lifecycle = Self { models, config, capture, metrics };
        if lifecycle.config.enabled {
            for name in lifecycle.models.keys() {
                if let Err(e) = lifecycle.reload(name).await {
                    tracing::error!(model = %name, error = %e, "cannot load the champion; the predictor answers 503 for this model until one is promoted");
                }
            }
        }
        Ok(lifecycle)
    }

    /// A model, when configured.
    pub fn model(&self, name: &str) -> Option<&Arc<ServedModel>> {
        self.models.get(name)
    }

    /// Names of the models.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The predictor's settings.
    pub fn config(&self) -> &PredictorConfig {
        &self.config
    }

    fn served(&self, name: &str) -> Result<&Arc<ServedModel>, ApiError> {
        self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.model_names().collect();
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_model",
                format!("no model `{name}` is configured; configured: {}", known.join(", ")),
            )
            .field("model")
        })
    }

    fn builder(
        &self,
        model: &ServedModel,
    ) -> impl FnOnce(Bytes, u32) -> registry::Result<Option<Arc<Champion>>> + Send + 'static {
        let schema = model.registry.schema().clone();
        let config = self.config.clone();
        move |bytes, version| {
            if config.enabled {
                Champion::build(&bytes, version, schema, &config).map(|c| Some(Arc::new(c)))
            } else {
                registry::validate(&bytes, &schema).map(|_| None)
            }
        }
    }

    fn installed(&self, name: &str, model: &ServedModel, champion: Option<Arc<Champion>>, version: u32) {
        if self.config.enabled {
            model.swap(champion);
        }
        if let Some(m) = &self.metrics {
            m.champion.with_label_values(&[name]).set(i64::from(version));
        }
    }

    /// Stores a new version (checked first).
    pub async fn upload(&self, name: &str, bytes: Bytes, new: NewVersion) -> Result<ModelRecord, ApiError> {
        let model = self.served(name)?;
        model.registry.add(bytes, new).await.map_err(|e| e.to_api())
    }

    /// Promotes a version and swaps the predictor to it.
    pub async fn promote(&self, name: &str, version: u32) -> Result<ModelRecord, ApiError> {
        let model = self.served(name)?;
        let (record, champion) = model.registry.promote(version, self.builder(model)).await.map_err(|e| e.to_api())?;
        self.installed(name, model, champion, record.version);
        Ok(record)
    }

    /// Rolls back to the previous champion and swaps the predictor to it.
    pub async fn rollback(&self, name: &str) -> Result<ModelRecord, ApiError> {
        let model = self.served(name)?;
        let (record, champion) = model.registry.rollback(self.builder(model)).await.map_err(|e| e.to_api())?;
        self.installed(name, model, champion, record.version);
        Ok(record)
    }

    /// Loads the stored champion when it differs from the one served (a promotion by another process).
    pub async fn reload(&self, name: &str) -> registry::Result<()> {
        let Some(model) = self.models.get(name) else { return Ok(()) };
        let state = model.registry.champion_state().await?;
        let served = model.champion().map(|c| c.version);
        match state.version {
            Some(v) if served != Some(v) => {
                let bytes = model.registry.onnx(v).await?;
                let build = self.builder(model);
                let champion = tokio::task::spawn_blocking(move || build(bytes, v))
                    .await
                    .map_err(|e| RegistryError::Invalid(e.to_string()))??;
                self.installed(name, model, champion, v);
                tracing::info!(model = %name, version = v, "serving the champion");
            }
            None if served.is_some() => self.installed(name, model, None, 0),
            _ => {}
        }
        Ok(())
    }

    /// Checks the store for promotions by other processes every `reload_interval`, until stopped.
    pub fn spawn_reloader(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if !self.config.enabled {
                return;
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.reload_interval) => {}
                    _ = stop.changed() => return,
                }
                for name in self.models.keys() {
                    if let Err(e) = self.reload(name).await {
                        tracing::warn!(model = %name, error = %e, "cannot reload the champion");
                    }
                }
            }
        })
    }

    /// The champion of a model, or the error a client sees.
    pub fn champion(&self, name: &str) -> Result<Arc<Champion>, ApiError> {
        let model = self.served(name)?;
        if !self.config.enabled {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "predictor_disabled",
                "the predictor is disabled (predictor.enabled = false)",
            ));
        }
        model.champion().ok_or_else(|| {
            if let Err(e) = super::runtime::environment() {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "onnxruntime_missing", e);
            }
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_champion",
                format!(
                    "model `{name}` has no champion; upload a version (POST /v1/models/{name}/versions) and promote it"
                ),
            )
        })
    }

    /// Predicts a batch on `champion` and queues the rows for capture (unless `predictor.capture`
    /// is off). Capture never delays the answer; its failures are counted, not returned.
    pub async fn predict(&self, name: &str, champion: Arc<Champion>, batch: FeatureBatch) -> Result<Answer, ApiError> {
        let batch = Arc::new(batch);
        // The rows' event time: the arrival, not the later capture write.
        let arrived = chrono::Utc::now();
        let started = Instant::now();
        let predicted = champion.predict(batch.clone()).await.map_err(|e| {
            tracing::warn!(model = %name, version = champion.version, error = %e, "inference failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "inference_failed",
                format!("the model failed on this input: {e}"),
            )
        })?;
        if let Some(m) = &self.metrics {
            m.inference.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
            m.rows.with_label_values(&[name]).inc_by(batch.rows as u64);
        }
        let ids: Vec<String> =
            batch.ids.iter().map(|id| id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string())).collect();
        if let Some(capture) = &self.capture {
            capture.submit(
                name,
                Answered {
                    batch: batch.clone(),
                    ids: ids.clone(),
                    predicted: predicted.clone(),
                    version: champion.version,
                    arrived_us: arrived.timestamp_micros(),
                },
            );
        }
        Ok(Answer { version: champion.version, ids, predicted })
    }

    /// Returns once every row answered before the call is stored through the collector (or
    /// dropped and counted): `/v1/flush` calls it before flushing the collector.
    pub async fn drain_capture(&self) {
        if let Some(capture) = &self.capture {
            capture.drain().await;
        }
    }

    /// Writes the capture queues until `deadline`, counts what is left as dropped, and ends the
    /// workers: before the collector shuts down.
    pub async fn stop_capture(&self, deadline: tokio::time::Instant) {
        if let Some(capture) = &self.capture {
            capture.stop(deadline).await;
        }
    }

    /// Counts an answered request.
    pub fn count(&self, name: &str, endpoint: &str, code: &str) {
        if let (Some(m), true) = (&self.metrics, self.models.contains_key(name)) {
            m.requests.with_label_values(&[name, endpoint, code]).inc();
        }
    }
}

/// Rows one capture write holds at most: batches of small requests fill up to this.
const CAPTURE_BATCH_ROWS: usize = 1000;
