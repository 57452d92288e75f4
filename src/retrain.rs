//! The retraining loop: snapshot recent labeled traffic → train a candidate → validate it with
//! ONNX Runtime against the champion on the same holdout → promote only a winner → make its
//! training data the new reference.
//!
//! Takes in: triggers (the `retrain` alert action, `POST /v1/models/{model}/retrain`,
//! `anchorwatch retrain`). Gives out: a run record per trigger (`<root>/<model>/retrain/runs/`),
//! new model versions in the registry, a promoted champion when the candidate wins.
//! Must never: touch the champion when a run fails or loses, or run twice at once for a model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anchorwatch_analyzer::monitor::ModelMonitor;
use anchorwatch_collector::schema::{FeatureKind, ModelSchema, ValueKind};
use anchorwatch_collector::store::Store;
use anchorwatch_trainer as trainer;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::lifecycle::input::{Column, FeatureBatch};
use crate::lifecycle::predictor::{Champion, Lifecycle, Predicted};
use crate::lifecycle::registry::{NewVersion, Status, TrainingWindow};

pub use crate::config::retrain::{RetrainConfig, TrainerKind};

/// The metrics where higher is better, and those where lower is.
const METRICS_HIGHER: &[&str] = &["accuracy", "f1", "r2"];
const METRICS_LOWER: &[&str] = &["rmse", "mae"];

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// `alert`, `api` or `cli`.
    pub source: String,
    /// Why (the alert names, or who asked).
    pub reason: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// In progress.
    Running,
    /// The candidate won and serves now.
    Promoted,
    /// The candidate lost; kept in the registry as `rejected`.
    Rejected,
    /// Something failed (too little data, the trainer crashed or timed out, its file is not a
    /// valid model); nothing changed.
    Failed,
    /// Handed to an external pipeline, which uploads the model through the API.
    HandedOff,
}

impl RunStatus {
    /// Its name in run records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Promoted => "promoted",
            RunStatus::Rejected => "rejected",
            RunStatus::Failed => "failed",
            RunStatus::HandedOff => "handed_off",
        }
    }
}

/// One run, as recorded in `<root>/<model>/retrain/runs/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Its id (time-ordered).
    pub id: String,
    /// The model.
    pub model: String,
    /// What started it.
    pub trigger: Trigger,
    /// Where it stands.
    pub status: RunStatus,
    /// Why it ended so (the decision, or the failure).
    pub reason: String,
    /// The trainer used.
    pub trainer: String,
    /// Start, RFC 3339.
    pub started: String,
    /// End, RFC 3339.
    pub finished: Option<String>,
    /// Seconds per step: `snapshot`, `train`, `validate`, `promote`.
    pub timings: BTreeMap<String, f64>,
    /// Rows trained on and held out.
    pub rows: BTreeMap<String, usize>,
    /// The training data's event-time span.
    pub training_window: Option<TrainingWindow>,
    /// The metric compared.
    pub metric: String,
    /// The champion's and the candidate's metric on the holdout (`champion` absent without one).
    pub scores: BTreeMap<String, f64>,
    /// The champion's version when the run started.
    pub champion_version: Option<u32>,
    /// The candidate's version in the registry.
    pub candidate_version: Option<u32>,
}

/// Why a trigger did not start a run.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// No such model.
    #[error("no model `{0}` is configured")]
    UnknownModel(String),
    /// `[models.retrain] enabled` is false.
    #[error("retraining is not enabled for model `{0}` (models.retrain.enabled)")]
    Disabled(String),
    /// A run is in progress.
    #[error("a retraining run of `{0}` is in progress ({1})")]
    Running(String, String),
    /// Within the cooldown after the last run.
    #[error("model `{0}` was retrained recently; the next run may start in {1} s (models.retrain.cooldown)")]
    Cooldown(String, u64),
}

/// A model's continuous analysis, whose reference a promotion replaces.
pub struct Watched {
    /// The model's monitor.
    pub monitor: Arc<ModelMonitor>,
    /// `models[].analysis.reference_prediction_column`.
    pub prediction_column: String,
    /// `models[].analysis.reference_target_column`.
    pub target_column: String,
}

impl Watched {
    /// The monitor with the column names of its analysis config.
    pub fn new(monitor: Arc<ModelMonitor>, analysis: &anchorwatch_analyzer::monitor::AnalysisConfig) -> Self {
        Self {
            monitor,
            prediction_column: analysis.reference_prediction_column.clone(),
            target_column: analysis.reference_target_column.clone(),
        }
    }
}

struct ModelLoop {
    name: String,
    schema: Arc<ModelSchema>,
    config: RetrainConfig,
    monitor: Option<Watched>,
    /// The run in progress, and when the last one ended.
    state: Mutex<(Option<String>, Option<Instant>)>,
}

#[derive(Clone)]
struct Metrics {
    runs: IntCounterVec,
    duration: HistogramVec,
}

/// The retraining loops of every model.
pub struct Retrainer {
    models: BTreeMap<String, Arc<ModelLoop>>,
    store: Store,
    lifecycle: Arc<Lifecycle>,
    memory_limit: usize,
    metrics: Option<Metrics>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A step failed: the run ends `failed` with this reason.
struct Failed(String);

impl<E: std::fmt::Display> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed(e.to_string())
    }
}

/// The labeled rows of the data window, in event-time order.
struct Snapshot {
    batch: FeatureBatch,
    target: Vec<Option<String>>,
    numbers: Vec<f64>,
    times: Vec<i64>,
    /// The rows as read, for the new reference.
    batches: Vec<RecordBatch>,
}

impl Retrainer {
    /// Sets up the loops; `monitors` give each model's analysis (for the reference update).
    pub fn new(
        store: Store,
        lifecycle: Arc<Lifecycle>,
        models: Vec<(String, ModelSchema, RetrainConfig, Option<Watched>)>,
        memory_limit: usize,
        registry: Option<&Registry>,
    ) -> anyhow::Result<Self> {
        let metrics = match registry {
            Some(r) => {
                let runs = IntCounterVec::new(
                    Opts::new("anchorwatch_retrain_runs_total", "Retraining runs by model and outcome"),
                    &["model", "status"],
                )?;
                let duration = HistogramVec::new(
                    HistogramOpts::new("anchorwatch_retrain_duration_seconds", "Duration of retraining runs")
                        .buckets(vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
                    &["model"],
                )?;
                r.register(Box::new(runs.clone()))?;
                r.register(Box::new(duration.clone()))?;
                Some(Metrics { runs, duration })
            }
            None => None,
        };
        let models = models
            .into_iter()
            .map(|(name, schema, config, monitor)| {
                let l = ModelLoop {
                    name: name.clone(),
                    schema: Arc::new(schema),
                    config,
                    monitor,
                    state: Mutex::new((None, None)),
                };
                (name, Arc::new(l))
            })
            .collect();
        Ok(Self { models, store, lifecycle, memory_limit, metrics })
    }

    /// Whether retraining is enabled for `model`.
    pub fn enabled(&self, model: &str) -> bool {
        self.models.get(model).is_some_and(|m| m.config.enabled)
    }

    /// Starts a run in the background; the returned record says `running`.
    pub async fn trigger(self: &Arc<Self>, model: &str, trigger: Trigger) -> Result<Run, TriggerError> {
        let (l, run) = self.claim(model, trigger).await?;
        let me = self.clone();
        let first = run.clone();
        tokio::spawn(async move { me.execute(l, run).await });
        Ok(first)
    }

    /// Runs now and returns the finished record (the CLI's way).
    pub async fn run_now(&self, model: &str, trigger: Trigger) -> Result<Run, TriggerError> {
        let (l, run) = self.claim(model, trigger).await?;
        Ok(self.execute(l, run).await)
    }

    async fn claim(&self, model: &str, trigger: Trigger) -> Result<(Arc<ModelLoop>, Run), TriggerError> {
        let l = self.models.get(model).ok_or_else(|| TriggerError::UnknownModel(model.into()))?.clone();
        if !l.config.enabled {
            return Err(TriggerError::Disabled(model.into()));
        }
        let mut state = l.state.lock().await;
        if let Some(id) = &state.0 {
            return Err(TriggerError::Running(model.into(), id.clone()));
        }
        if let Some(left) = state.1.and_then(|end| l.config.cooldown.checked_sub(end.elapsed())) {
            return Err(TriggerError::Cooldown(model.into(), left.as_secs().max(1)));
        }
        let id = uuid::Uuid::now_v7().to_string();
        state.0 = Some(id.clone());
        let trainer = match l.config.trainer {
            TrainerKind::Builtin => l.config.builtin.name().to_string(),
            TrainerKind::Command => format!("command:{}", l.config.command.first().cloned().unwrap_or_default()),
            TrainerKind::Webhook => "webhook".into(),
        };
        let run = Run {
            id,
            model: model.into(),
            trigger,
            status: RunStatus::Running,
            reason: String::new(),
            trainer,
            started: now_rfc3339(),
            finished: None,
            timings: BTreeMap::new(),
            rows: BTreeMap::new(),
            training_window: None,
            metric: l.config.metric(&l.schema).to_string(),
            scores: BTreeMap::new(),
            champion_version: None,
            candidate_version: None,
        };
        drop(state);
        if let Err(e) = self.save(&run).await {
            tracing::warn!(model, error = %e, "cannot record the retraining run");
        }
        Ok((l, run))
    }

    fn run_path(&self, model: &str, id: &str) -> Path {
        Path::from(format!("{model}/retrain/runs/{id}.json"))
    }

    async fn save(&self, run: &Run) -> anyhow::Result<()> {
        self.store.put(&self.run_path(&run.model, &run.id), serde_json::to_vec_pretty(run)?.into()).await?;
        Ok(())
    }

    /// The recorded runs of a model, newest first.
    pub async fn runs(&self, model: &str) -> anyhow::Result<Vec<Run>> {
        let prefix = Path::from(format!("{model}/retrain/runs"));
        let metas: Vec<_> = self.store.object_store().list(Some(&prefix)).try_collect().await?;
        let mut runs = Vec::new();
        // Records only: `runs/<id>.json`, not the files of an external trainer's `runs/<id>/`.
        let records = metas.iter().filter(|m| {
            m.location.as_ref().ends_with(".json") && m.location.prefix_match(&prefix).is_some_and(|p| p.count() == 1)
        });
        for m in records {
            let data = self.store.object_store().get(&m.location).await?.bytes().await?;
            runs.push(serde_json::from_slice::<Run>(&data)?);
        }
        runs.sort_by(|a, b| b.id.cmp(&a.id));
        // A record still `running` that is not this process's current run was cut short by a
        // stop or a crash; it reads as failed (the registry shows any version it stored).
        let current = match self.models.get(model) {
            Some(l) => l.state.lock().await.0.clone(),
            None => None,
        };
        for run in runs.iter_mut().filter(|r| r.status == RunStatus::Running && Some(&r.id) != current.as_ref()) {
            run.status = RunStatus::Failed;
            run.reason =
                "interrupted: anchorwatch stopped during the run; see the model's versions for anything it stored"
                    .into();
        }
        Ok(runs)
    }

    async fn execute(&self, l: Arc<ModelLoop>, mut run: Run) -> Run {
        let started = Instant::now();
        tracing::info!(model = %l.name, run = %run.id, trigger = %run.trigger.source, "retraining started");
        match self.steps(&l, &mut run).await {
            Ok(()) => {}
            Err(Failed(reason)) => {
                run.status = RunStatus::Failed;
                run.reason = reason;
            }
        }
        run.finished = Some(now_rfc3339());
        if let Err(e) = self.save(&run).await {
            tracing::error!(model = %l.name, error = %e, "cannot record the retraining run");
        }
        if let Some(m) = &self.metrics {
            m.runs.with_label_values(&[l.name.as_str(), run.status.as_str()]).inc();
            m.duration.with_label_values(&[l.name.as_str()]).observe(started.elapsed().as_secs_f64());
        }
        tracing::info!(model = %l.name, run = %run.id, status = run.status.as_str(), reason = %run.reason, "retraining finished");
        *l.state.lock().await = (None, Some(Instant::now()));
        run
    }

    async fn steps(&self, l: &ModelLoop, run: &mut Run) -> Result<(), Failed> {
        let config = &l.config;
        let t = Instant::now();
        let snapshot = self.snapshot(l).await?;
        run.timings.insert("snapshot".into(), t.elapsed().as_secs_f64());
        let n = snapshot.times.len();
        if n < config.min_rows {
            return Err(Failed(format!(
                "{n} labeled rows in the last {:?}; a run needs {} (models.retrain.min_rows)",
                config.data_window, config.min_rows
            )));
        }
        let holdout = ((n as f64 * config.holdout_fraction).ceil() as usize).clamp(1, n - 1);
        let split = n - holdout;
        run.rows.insert("train".into(), split);
        run.rows.insert("holdout".into(), holdout);
        run.training_window =
            Some(TrainingWindow { from: rfc3339(snapshot.times[0]), to: rfc3339(snapshot.times[split - 1]) });
        let champion = self.lifecycle.model(&l.name).and_then(|m| m.champion());
        run.champion_version = champion.as_ref().map(|c| c.version);

        let t = Instant::now();
        let candidate = match config.trainer {
            TrainerKind::Builtin => self.train_builtin(l, &snapshot, split).await?,
            TrainerKind::Command => self.train_command(l, run, &snapshot, split).await?,
            TrainerKind::Webhook => {
                self.hand_off(l, run, &snapshot, split).await?;
                run.timings.insert("train".into(), t.elapsed().as_secs_f64());
                return Ok(());
            }
        };
        run.timings.insert("train".into(), t.elapsed().as_secs_f64());

        // Validate: both models on the same holdout, through ONNX Runtime.
        let t = Instant::now();
        let holdout_batch = Arc::new(slice_batch(&snapshot.batch, split, n));
        let truth = &snapshot.target[split..];
        let numbers = &snapshot.numbers[split..];
        let predictor_config = self.lifecycle.config().clone();
        let schema = l.schema.clone();
        let bytes = candidate.clone();
        let built = tokio::task::spawn_blocking(move || Champion::build(&bytes, 0, schema, &predictor_config))
            .await
            .map_err(|e| Failed(e.to_string()))?;
        let built =
            built.map_err(|e| Failed(format!("the trainer's model is not a valid model for `{}`: {e}", l.name)))?;
        let metric = run.metric.clone();
        let candidate_predicted = built.predict(holdout_batch.clone()).await.map_err(Failed)?;
        let candidate_score = score(&metric, &l.schema, &candidate_predicted, truth, numbers)?;
        run.scores.insert("candidate".into(), candidate_score);
        let champion_score = match &champion {
            Some(c) => {
                let predicted = c.predict(holdout_batch).await.map_err(Failed)?;
                let s = score(&metric, &l.schema, &predicted, truth, numbers)?;
                run.scores.insert("champion".into(), s);
                Some(s)
            }
            None => None,
        };
        run.timings.insert("validate".into(), t.elapsed().as_secs_f64());

        let higher = METRICS_HIGHER.contains(&metric.as_str());
        debug_assert!(higher || METRICS_LOWER.contains(&metric.as_str()));
        let wins = match champion_score {
            None => true,
            Some(c) if higher => candidate_score >= c + config.min_improvement,
            Some(c) => candidate_score <= c - config.min_improvement,
        };
        let t = Instant::now();
        let holdout_metrics: BTreeMap<String, f64> = [(metric.clone(), candidate_score)].into_iter().collect();
        let new = NewVersion {
            source: "trainer".into(),
            trainer: Some(run.trainer.clone()),
            training_window: run.training_window.clone(),
            holdout_metrics: Some(holdout_metrics),
            status: Some(if wins { Status::Candidate } else { Status::Rejected }),
        };
        let record = self
            .lifecycle
            .upload(&l.name, Bytes::from(candidate), new)
            .await
            .map_err(|e| Failed(format!("storing the candidate: {}", e.message)))?;
        run.candidate_version = Some(record.version);
        let versus = match champion_score {
            Some(c) => {
                format!("{metric} {} vs the champion's {} on {holdout} holdout rows", fmt(candidate_score), fmt(c))
            }
            None => format!("{metric} {} on {holdout} holdout rows; there was no champion", fmt(candidate_score)),
        };
        if !wins {
            run.status = RunStatus::Rejected;
            run.reason = format!(
                "the candidate v{} lost: {versus} (needs {} {} better)",
                record.version,
                if higher { "+" } else { "-" },
                config.min_improvement
            );
            run.timings.insert("promote".into(), t.elapsed().as_secs_f64());
            return Ok(());
        }
        self.lifecycle
            .promote(&l.name, record.version)
            .await
            .map_err(|e| Failed(format!("promoting v{}: {}", record.version, e.message)))?;
        run.status = RunStatus::Promoted;
        run.reason = format!("the candidate v{} won: {versus}", record.version);
        if let (true, Some(watched)) = (config.update_reference, &l.monitor) {
            match new_reference(&built, &l.schema, &snapshot, split, watched).await {
                Ok(data) => match watched.monitor.upload_reference(data, "parquet").await {
                    Ok(_) => run.reason += "; its training data (with its own predictions) is the new reference",
                    Err(e) => run.reason += &format!("; the reference was not updated: {e}"),
                },
                Err(e) => run.reason += &format!("; the reference was not updated: {}", e.0),
            }
        }
        run.timings.insert("promote".into(), t.elapsed().as_secs_f64());
        Ok(())
    }

    /// The labeled rows of the data window, oldest first.
    async fn snapshot(&self, l: &ModelLoop) -> Result<Snapshot, Failed> {
        let ctx = anchorwatch_analyzer::sql::session(&self.store, &l.name, &l.schema, self.memory_limit).await?;
        let from = chrono::Utc::now().timestamp_micros() - l.config.data_window.as_micros() as i64;
        let mut columns: Vec<String> = l.schema.features.iter().map(|f| format!("\"{}\"", f.name)).collect();
        columns.extend(["prediction", "label", "timestamp"].map(String::from));
        for s in &l.schema.scores {
            columns.push(format!("\"score_{s}\""));
        }
        let sql = format!(
            "SELECT {} FROM predictions_labeled WHERE label IS NOT NULL AND timestamp >= '{}' ORDER BY timestamp, prediction_id",
            columns.join(", "),
            rfc3339(from)
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let batch = arrow::compute::concat_batches(
            &batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty())),
            &batches,
        )?;
        let mut out = Snapshot {
            batch: FeatureBatch { rows, columns: Vec::new(), ids: vec![None; rows] },
            target: Vec::new(),
            numbers: Vec::new(),
            times: Vec::new(),
            batches,
        };
        if rows == 0 {
            return Ok(out);
        }
        for f in &l.schema.features {
            let col = batch.column_by_name(&f.name).ok_or_else(|| Failed(format!("column {} missing", f.name)))?;
            match f.kind {
                FeatureKind::Numerical => {
                    let c = arrow::compute::cast(col, &DataType::Float64)?;
                    let v: Vec<f64> = c.as_primitive::<Float64Type>().iter().map(|x| x.unwrap_or(f64::NAN)).collect();
                    out.batch.columns.push(Column::Num(v));
                }
                FeatureKind::Boolean => {
                    let c = arrow::compute::cast(col, &DataType::Boolean)?;
                    let v: Vec<Option<bool>> = c.as_boolean().iter().collect();
                    out.batch.columns.push(Column::Bool(v));
                }
                FeatureKind::Categorical | FeatureKind::Text => {
                    let v = strings(col)?;
                    out.batch.columns.push(Column::Str(v));
                }
                FeatureKind::Embedding => {
                    return Err(Failed(format!(
                        "feature `{}` is an embedding: the built-in trainers and this loop take numerical, boolean, categorical and text features",
                        f.name
                    )));
                }
            }
        }
        let label = batch.column_by_name("label").ok_or_else(|| Failed("column label missing".into()))?;
        out.target = strings(label)?;
        out.numbers = match l.schema.label {
            ValueKind::Numerical => {
                let c = arrow::compute::cast(label, &DataType::Float64)?;
                c.as_primitive::<Float64Type>().iter().map(|x| x.unwrap_or(f64::NAN)).collect()
            }
            _ => vec![f64::NAN; rows],
        };
        let ts = batch.column_by_name("timestamp").ok_or_else(|| Failed("column timestamp missing".into()))?;
        let ts = arrow::compute::cast(ts, &DataType::Int64)?;
        out.times = ts.as_primitive::<arrow::datatypes::Int64Type>().iter().map(|x| x.unwrap_or(0)).collect();
        Ok(out)
    }

    async fn train_builtin(&self, l: &ModelLoop, s: &Snapshot, split: usize) -> Result<Vec<u8>, Failed> {
        let features: Vec<trainer::Feature> =
            l.schema.features.iter().zip(&s.batch.columns).map(|(f, c)| train_feature(&f.name, c, split)).collect();
        let data = trainer::Data::new(features)?;
        let target = match l.schema.label {
            ValueKind::Numerical => trainer::Target::Values(s.numbers[..split].to_vec()),
            _ => trainer::Target::Classes(s.target[..split].iter().map(|t| t.clone().unwrap_or_default()).collect()),
        };
        let train = trainer::TrainData::new(data, target)?;
        let spec = l.config.builtin.clone();
        let task = tokio::task::spawn_blocking(move || trainer::train(&spec, &train).map(|m| m.to_onnx()));
        match tokio::time::timeout(l.config.timeout, task).await {
            Err(_) => Err(Failed(format!("training took longer than {:?} (models.retrain.timeout)", l.config.timeout))),
            Ok(joined) => Ok(joined.map_err(|e| Failed(e.to_string()))??),
        }
    }

    /// The run's local folder: `<root>/<model>/retrain/runs/<id>` in a local store. With object
    /// storage, the same path under the system's temporary folder: a trainer reads local files.
    fn run_dir(&self, l: &ModelLoop, run: &Run) -> Result<PathBuf, Failed> {
        let root = match self.store.local_root() {
            Some(root) => root.to_path_buf(),
            None => std::env::temp_dir().join("anchorwatch"),
        };
        let dir = root.join(&l.name).join("retrain").join("runs").join(&run.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failed(format!("cannot create the run's folder {}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// Train and holdout rows as Parquet files, for an external trainer.
    fn data_files(&self, s: &Snapshot, split: usize) -> Result<(Bytes, Bytes), Failed> {
        let train = reference_parquet(&s.batches, split)?;
        let all = arrow::compute::concat_batches(&s.batches[0].schema(), &s.batches)?;
        let rest = all.slice(split, all.num_rows() - split);
        Ok((train, Bytes::from(parquet_bytes(&[rest])?)))
    }

    /// Writes train and holdout Parquet files into the run's local folder.
    fn write_data(&self, s: &Snapshot, split: usize, dir: &std::path::Path) -> Result<(PathBuf, PathBuf), Failed> {
        let train = dir.join("train.parquet");
        let holdout = dir.join("holdout.parquet");
        let (train_data, holdout_data) = self.data_files(s, split)?;
        std::fs::write(&train, train_data)?;
        std::fs::write(&holdout, holdout_data)?;
        Ok((train, holdout))
    }

    async fn train_command(&self, l: &ModelLoop, run: &Run, s: &Snapshot, split: usize) -> Result<Vec<u8>, Failed> {
        let dir = self.run_dir(l, run)?;
        let (train, holdout) = self.write_data(s, split, &dir)?;
        let output = dir.join("model.onnx");
        let schema = dir.join("schema.json");
        std::fs::write(&schema, serde_json::to_vec_pretty(&*l.schema)?)?;
        let log = std::fs::File::create(dir.join("trainer.log"))?;
        let mut command = tokio::process::Command::new(&l.config.command[0]);
        command
            .args(&l.config.command[1..])
            .env("ANCHORWATCH_MODEL", &l.name)
            .env("ANCHORWATCH_TRAIN", &train)
            .env("ANCHORWATCH_HOLDOUT", &holdout)
            .env("ANCHORWATCH_SCHEMA", &schema)
            .env("ANCHORWATCH_OUTPUT", &output)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child =
            command.spawn().map_err(|e| Failed(format!("cannot start the trainer `{}`: {e}", l.config.command[0])))?;
        let status = match tokio::time::timeout(l.config.timeout, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(Failed(format!(
                    "the trainer ran longer than {:?} (models.retrain.timeout) and was stopped; log: {}",
                    l.config.timeout,
                    dir.join("trainer.log").display()
                )));
            }
        };
        let log_tail = tail(&dir.join("trainer.log"));
        if !status.success() {
            return Err(Failed(format!("the trainer exited with {status}; last lines of its log: {log_tail}")));
        }
        std::fs::read(&output).map_err(|e| Failed(format!("the trainer wrote no model at {}: {e}", output.display())))
    }

    async fn hand_off(&self, l: &ModelLoop, run: &mut Run, s: &Snapshot, split: usize) -> Result<(), Failed> {
        let url = l.config.webhook_url.clone().unwrap_or_default();
        let (train, holdout) = match self.store.local_root() {
            Some(_) => {
                let dir = self.run_dir(l, run)?;
                let (t, h) = self.write_data(s, split, &dir)?;
                (t.display().to_string(), h.display().to_string())
            }
            None => {
                // The pipeline cannot read this host's disk: the files go beside the run record in
                // the bucket, and the body names them by URL.
                let (train_data, holdout_data) = self.data_files(s, split)?;
                let train = Path::from(format!("{}/retrain/runs/{}/train.parquet", l.name, run.id));
                let holdout = Path::from(format!("{}/retrain/runs/{}/holdout.parquet", l.name, run.id));
                self.store.put(&train, train_data).await?;
                self.store.put(&holdout, holdout_data).await?;
                (format!("{}/{train}", self.store.url()), format!("{}/{holdout}", self.store.url()))
            }
        };
        let body = serde_json::json!({
            "model": l.name,
            "run_id": run.id,
            "training_window": run.training_window,
            "rows": run.rows,
            "train_path": train,
            "holdout_path": holdout,
            "upload": format!("/v1/models/{}/versions", l.name),
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let response = client.post(&url).json(&body).send().await?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(Failed(format!(
                "the pipeline answered {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        run.status = RunStatus::HandedOff;
        run.reason = "handed to the external pipeline; it uploads the model through the API".into();
        Ok(())
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.4}")
}

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn strings(col: &dyn Array) -> Result<Vec<Option<String>>, Failed> {
    let c = arrow::compute::cast(col, &DataType::Utf8)?;
    Ok(c.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect())
}

/// The first `n` values of a feature column, as the trainer takes them.
fn train_feature(name: &str, c: &Column, n: usize) -> trainer::Feature {
    match c {
        Column::Num(v) => trainer::Feature::numerical(name, v[..n].to_vec()),
        Column::Bool(v) => trainer::Feature::boolean(name, v[..n].to_vec()),
        Column::Str(v) => trainer::Feature::categorical(name, v[..n].to_vec()),
        Column::Emb(..) => unreachable!("the snapshot refuses embedding features"),
    }
}

fn slice_batch(b: &FeatureBatch, from: usize, to: usize) -> FeatureBatch {
    let columns = b
        .columns
        .iter()
        .map(|c| match c {
            Column::Num(v) => Column::Num(v[from..to].to_vec()),
            Column::Str(v) => Column::Str(v[from..to].to_vec()),
            Column::Bool(v) => Column::Bool(v[from..to].to_vec()),
            Column::Emb(v, d) => Column::Emb(v[from * d..to * d].to_vec(), *d),
        })
        .collect();
    FeatureBatch { rows: to - from, columns, ids: vec![None; to - from] }
}

/// The model's metric on the holdout.
fn score(
    metric: &str,
    schema: &ModelSchema,
    p: &Predicted,
    truth: &[Option<String>],
    numbers: &[f64],
) -> Result<f64, Failed> {
    use anchorwatch_analyzer::performance::{classification, regression};
    let n = truth.len();
    let v = match p {
        Predicted::Values(pred) => {
            let pred: Vec<f64> = pred.iter().take(n).copied().collect();
            match metric {
                "rmse" => regression::rmse(numbers, &pred)?,
                "mae" => regression::mae(numbers, &pred)?,
                "r2" => regression::r2(numbers, &pred)?,
                other => return Err(Failed(format!("metric `{other}` needs a classifier"))),
            }
        }
        Predicted::Classes { .. } => {
            let pred: Vec<String> = (0..n)
                .map(|i| match p.prediction(schema.prediction, i) {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect();
            let truth: Vec<&str> = truth.iter().map(|t| t.as_deref().unwrap_or("")).collect();
            let pred: Vec<&str> = pred.iter().map(String::as_str).collect();
            match metric {
                "accuracy" => classification::accuracy(&truth, &pred)?,
                "f1" => classification::f1(&truth, &pred, classification::Average::Macro)?,
                other => return Err(Failed(format!("metric `{other}` needs a regressor"))),
            }
        }
    };
    Ok(v)
}

fn parquet_bytes(batches: &[RecordBatch]) -> Result<Vec<u8>, Failed> {
    let mut buf = Vec::new();
    let schema = batches.first().map(|b| b.schema()).ok_or_else(|| Failed("no rows".into()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(buf)
}

/// The training rows as a reference file: the features, the candidate's own predictions and
/// scores on them (so prediction drift compares the new model with itself), and the label as
/// the target, under the analysis config's column names.
async fn new_reference(
    candidate: &Champion,
    schema: &ModelSchema,
    s: &Snapshot,
    split: usize,
    w: &Watched,
) -> Result<Bytes, Failed> {
    use arrow::array::{ArrayRef, BooleanArray, Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    let predicted = candidate.predict(Arc::new(slice_batch(&s.batch, 0, split))).await.map_err(Failed)?;
    let all = arrow::compute::concat_batches(&s.batches[0].schema(), &s.batches)?;
    let rows = all.slice(0, split);
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut push = |name: &str, column: ArrayRef| {
        fields.push(Field::new(name, column.data_type().clone(), true));
        columns.push(column);
    };
    for f in &schema.features {
        let c = rows.column_by_name(&f.name).ok_or_else(|| Failed(format!("column {} missing", f.name)))?;
        push(&f.name, c.clone());
    }
    let kind = schema.prediction;
    let prediction: ArrayRef = match (&predicted, kind) {
        (Predicted::Values(v), _) => Arc::new(Float64Array::from(v[..split].to_vec())),
        (_, ValueKind::Boolean) => {
            Arc::new((0..split).map(|i| predicted.prediction(kind, i).as_bool()).collect::<BooleanArray>())
        }
        _ => Arc::new(
            (0..split)
                .map(|i| match predicted.prediction(kind, i) {
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                })
                .collect::<StringArray>(),
        ),
    };
    push(&w.prediction_column, prediction);
    let label = rows.column_by_name("label").ok_or_else(|| Failed("column label missing".into()))?;
    push(&w.target_column, label.clone());
    for (c, class) in schema.scores.iter().enumerate() {
        let values: Float64Array = (0..split).map(|i| predicted.scores(i).map(|p| f64::from(p[c]))).collect();
        push(&ModelSchema::score_column(class), Arc::new(values));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Bytes::from(parquet_bytes(&[batch])?))
}

/// The first `split` rows (the training data) as Parquet.
fn reference_parquet(batches: &[RecordBatch], split: usize) -> Result<Bytes, Failed> {
    let schema = batches.first().map(|b| b.schema()).ok_or_else(|| Failed("no rows".into()))?;
    let all = arrow::compute::concat_batches(&schema, batches)?;
    Ok(Bytes::from(parquet_bytes(&[all.slice(0, split)])?))
}

/// `POST /v1/models/{model}/retrain` and `GET /v1/models/{model}/retrain/runs`.
pub fn api() -> crate::api::Api<Arc<Retrainer>> {
    use crate::auth::Scope;
    crate::api::Api::new().post(Some(Scope::Admin), "/v1/models/{model}/retrain", start_run).get(
        Some(Scope::Read),
        "/v1/models/{model}/retrain/runs",
        list_runs,
    )
}

fn trigger_error(e: TriggerError) -> anchorwatch_collector::ApiError {
    use anchorwatch_collector::ApiError;
    use axum::http::StatusCode;
    let message = e.to_string();
    match e {
        TriggerError::UnknownModel(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_model", message).field("model"),
        TriggerError::Disabled(_) => ApiError::new(StatusCode::CONFLICT, "retrain_disabled", message),
        TriggerError::Running(..) => ApiError::new(StatusCode::CONFLICT, "retrain_running", message),
        TriggerError::Cooldown(..) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "retrain_cooldown", message),
    }
}

async fn start_run(
    axum::extract::State(r): axum::extract::State<Arc<Retrainer>>,
    axum::extract::Path(model): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let trigger = Trigger { source: "api".into(), reason: "POST /v1/models/{model}/retrain".into() };
    match r.trigger(&model, trigger).await {
        Ok(run) => (axum::http::StatusCode::ACCEPTED, axum::Json(run)).into_response(),
        Err(e) => trigger_error(e).into_response(),
    }
}

async fn list_runs(
    axum::extract::State(r): axum::extract::State<Arc<Retrainer>>,
    axum::extract::Path(model): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !r.models.contains_key(&model) {
        return trigger_error(TriggerError::UnknownModel(model)).into_response();
    }
    match r.runs(&model).await {
        Ok(runs) => axum::Json(serde_json::json!({ "model": model, "runs": runs })).into_response(),
        Err(e) => anchorwatch_collector::ApiError::internal(&e).into_response(),
    }
}
