//! The registry: model versions under `<root>/<model>/models/` (layout in `docs/models.md`).
//!
//! Every write is one atomic put through the collector's [`Store`]. A version exists once its
//! `model.json` does (written after its `model.onnx`); `champion.json` says which version is
//! served and which were before it, and is the truth where a `model.json` status disagrees.

use std::collections::BTreeMap;
use std::sync::Arc;

use anchorwatch_collector::ApiError;
use anchorwatch_collector::schema::ModelSchema;
use anchorwatch_collector::store::Store;
use axum::http::StatusCode;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use ort::session::Session;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::runtime;
use super::signature::{self, IoDesc, Signature};

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored, never served.
    Candidate,
    /// Served now.
    Champion,
    /// Served before.
    Retired,
    /// Lost validation (the retraining loop); never served unless promoted by hand.
    Rejected,
}

/// The training data's time span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// Start, RFC 3339.
    pub from: String,
    /// End, RFC 3339.
    pub to: String,
}

/// A version's `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// N of `v<N>`.
    pub version: u32,
    /// Of `model.onnx`, hex.
    pub sha256: String,
    /// Of `model.onnx`.
    pub size_bytes: u64,
    /// When it was stored, RFC 3339 UTC.
    pub created: String,
    /// `upload` or `trainer`.
    pub source: String,
    /// Which trainer made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<String>,
    /// The training data's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_window: Option<TrainingWindow>,
    /// Metrics on the holdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_metrics: Option<BTreeMap<String, f64>>,
    /// The champion when this version was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// Where it stands.
    pub status: Status,
    /// Graph inputs.
    pub inputs: Vec<IoDesc>,
    /// Graph outputs.
    pub outputs: Vec<IoDesc>,
    /// ONNX `producer_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
}

impl ModelRecord {
    /// `v<N>`, as stored in the `model_version` column.
    pub fn tag(&self) -> String {
        format!("v{}", self.version)
    }
}

/// What the caller says about a new version.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    /// `upload` or `trainer`.
    pub source: String,
    /// Which trainer made it.
    pub trainer: Option<String>,
    /// The training data's span.
    pub training_window: Option<TrainingWindow>,
    /// Metrics on the holdout.
    pub holdout_metrics: Option<BTreeMap<String, f64>>,
    /// `candidate` normally; `rejected` to keep a losing candidate for the record.
    pub status: Option<Status>,
}

/// `champion.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChampionState {
    /// The served version.
    pub version: Option<u32>,
    /// Previous champions, oldest first; rollback pops the last.
    #[serde(default)]
    pub history: Vec<u32>,
    /// When it last changed, RFC 3339.
    #[serde(default)]
    pub updated: Option<String>,
}

/// Registry failures, each with its HTTP form ([`RegistryError::to_api`]).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// ONNX Runtime cannot load the file, or it does not fit the schema.
    #[error("{0}")]
    Invalid(String),
    /// The ONNX Runtime library is missing or would not start.
    #[error("{0}")]
    Runtime(String),
    /// No such version.
    #[error("model `{model}` has no version {version}")]
    UnknownVersion {
        /// Model name.
        model: String,
        /// Asked version.
        version: u32,
    },
    /// Rollback with no previous champion.
    #[error("model `{0}` has no previous champion to roll back to")]
    NoPrevious(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] anchorwatch_collector::Error),
    /// A registry file is not what it should be.
    #[error("{0}")]
    Corrupt(String),
}

impl From<object_store::Error> for RegistryError {
    fn from(e: object_store::Error) -> Self {
        Self::Store(e.into())
    }
}

impl RegistryError {
    /// The error a client sees.
    pub fn to_api(&self) -> ApiError {
        match self {
            Self::Invalid(m) => ApiError::bad_request("invalid_model", m.clone()),
            Self::Runtime(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "onnxruntime_missing", m.clone()),
            Self::UnknownVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_version", self.to_string()).field("version")
            }
            Self::NoPrevious(_) => ApiError::new(StatusCode::CONFLICT, "no_previous_champion", self.to_string()),
            Self::Store(_) | Self::Corrupt(_) => ApiError::internal(self),
        }
    }
}

/// Result with [`RegistryError`].
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Loads a model file into a session (one intra-op thread per `intra_threads`).
pub fn session(bytes: &[u8], intra_threads: usize) -> Result<Session> {
    let env = runtime::environment().map_err(RegistryError::Runtime)?;
    let builder = Session::builder(env).map_err(|e| RegistryError::Runtime(format!("ONNX Runtime: {e}")))?;
    let mut builder =
        builder.with_intra_threads(intra_threads).map_err(|e| RegistryError::Runtime(format!("ONNX Runtime: {e}")))?;
    builder
        .commit_from_memory(bytes)
        .map_err(|e| RegistryError::Invalid(format!("ONNX Runtime cannot load the file: {e}")))
}

/// Loads a model file and checks it against the schema.
pub fn validate(bytes: &[u8], schema: &ModelSchema) -> Result<(Session, Signature)> {
    let session = session(bytes, 1)?;
    let signature = signature::check(&session, schema)
        .map_err(|m| RegistryError::Invalid(format!("the model does not fit the schema: {m}")))?;
    Ok((session, signature))
}

/// One model's versions.
pub struct Registry {
    store: Store,
    model: String,
    schema: Arc<ModelSchema>,
    writes: tokio::sync::Mutex<()>,
}

impl Registry {
    /// The registry of `model` in `store`.
    pub fn new(store: Store, model: String, schema: Arc<ModelSchema>) -> Self {
        Self { store, model, schema, writes: tokio::sync::Mutex::new(()) }
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The model's schema.
    pub fn schema(&self) -> &Arc<ModelSchema> {
        &self.schema
    }

    fn path(&self, rest: &str) -> Path {
        Path::from(format!("{}/models/{rest}", self.model))
    }

    async fn read(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.object_store().get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `champion.json`, or the empty state.
    pub async fn champion_state(&self) -> Result<ChampionState> {
        match self.read(&self.path("champion.json")).await? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| RegistryError::Corrupt(format!("{}/models/champion.json: {e}", self.model))),
            None => Ok(ChampionState::default()),
        }
    }

    /// Every version, oldest first, with statuses as `champion.json` has them.
    pub async fn versions(&self) -> Result<Vec<ModelRecord>> {
        let prefix = self.path("");
        let listed: Vec<_> = self.store.object_store().list(Some(&prefix)).try_collect().await?;
        let mut numbers: Vec<u32> = listed
            .iter()
            .filter_map(|m| {
                let rest = m.location.as_ref().strip_prefix(prefix.as_ref())?.trim_start_matches('/');
                rest.strip_suffix("/model.json")?.strip_prefix('v')?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let state = self.champion_state().await?;
        let mut out = Vec::with_capacity(numbers.len());
        for n in numbers {
            if let Some(r) = self.stored_record(n).await? {
                out.push(corrected(r, &state));
            }
        }
        Ok(out)
    }

    async fn stored_record(&self, version: u32) -> Result<Option<ModelRecord>> {
        let Some(b) = self.read(&self.path(&format!("v{version}/model.json"))).await? else { return Ok(None) };
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| RegistryError::Corrupt(format!("{}/models/v{version}/model.json: {e}", self.model)))
    }

    /// One version's record.
    pub async fn record(&self, version: u32) -> Result<ModelRecord> {
        let state = self.champion_state().await?;
        let r = self.stored_record(version).await?.ok_or_else(|| self.unknown(version))?;
        Ok(corrected(r, &state))
    }

    /// One version's ONNX file.
    pub async fn onnx(&self, version: u32) -> Result<Bytes> {
        self.read(&self.path(&format!("v{version}/model.onnx"))).await?.ok_or_else(|| self.unknown(version))
    }

    fn unknown(&self, version: u32) -> RegistryError {
        RegistryError::UnknownVersion { model: self.model.clone(), version }
    }

    async fn write_record(&self, r: &ModelRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(r).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.store.put(&self.path(&format!("v{}/model.json", r.version)), json.into()).await?;
        Ok(())
    }

    async fn write_state(&self, s: &ChampionState) -> Result<()> {
        let json = serde_json::to_vec_pretty(s).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.store.put(&self.path("champion.json"), json.into()).await?;
        Ok(())
    }

    /// Checks a model file with ONNX Runtime and stores it as the next version. A file that does
    /// not load or does not fit the schema is refused and nothing is written.
    pub async fn add(&self, bytes: Bytes, new: NewVersion) -> Result<ModelRecord> {
        let schema = self.schema.clone();
        let checked = bytes.clone();
        let (inputs, outputs, producer) = tokio::task::spawn_blocking(move || {
            let (session, _) = validate(&checked, &schema)?;
            let (inputs, outputs) = signature::describe(&session);
            let producer = session.metadata().ok().and_then(|m| m.producer()).filter(|p| !p.is_empty());
            Ok::<_, RegistryError>((inputs, outputs, producer))
        })
        .await
        .map_err(|e| RegistryError::Invalid(format!("ONNX Runtime failed on the file: {e}")))??;
        let _guard = self.writes.lock().await;
        let version = self.versions().await?.last().map_or(1, |r| r.version + 1);
        let record = ModelRecord {
            version,
            sha256: sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
            size_bytes: bytes.len() as u64,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            source: if new.source.is_empty() { "upload".into() } else { new.source },
            trainer: new.trainer,
            training_window: new.training_window,
            holdout_metrics: new.holdout_metrics,
            parent: self.champion_state().await?.version,
            status: new.status.unwrap_or(Status::Candidate),
            inputs,
            outputs,
            producer,
        };
        self.store.put(&self.path(&format!("v{version}/model.onnx")), bytes).await?;
        self.write_record(&record).await?;
        tracing::info!(model = %self.model, version, sha256 = %record.sha256, "stored a model version");
        Ok(record)
    }

    /// Makes `version` the champion. `build` loads it (and checks it) off the async threads
    /// before anything is written; its result is returned with the record.
    pub async fn promote<T: Send + 'static>(
        &self,
        version: u32,
        build: impl FnOnce(Bytes, u32) -> Result<T> + Send + 'static,
    ) -> Result<(ModelRecord, T)> {
        let _guard = self.writes.lock().await;
        let state = self.champion_state().await?;
        let mut history = state.history.clone();
        if let Some(current) = state.version.filter(|c| *c != version) {
            history.push(current);
        }
        self.switch(state, version, history, build).await
    }

    /// Makes the previous champion the champion again; the current one becomes `retired`.
    pub async fn rollback<T: Send + 'static>(
        &self,
        build: impl FnOnce(Bytes, u32) -> Result<T> + Send + 'static,
    ) -> Result<(ModelRecord, T)> {
        let _guard = self.writes.lock().await;
        let state = self.champion_state().await?;
        let mut history = state.history.clone();
        let previous = history.pop().ok_or_else(|| RegistryError::NoPrevious(self.model.clone()))?;
        self.switch(state, previous, history, build).await
    }

    async fn switch<T: Send + 'static>(
        &self,
        state: ChampionState,
        version: u32,
        history: Vec<u32>,
        build: impl FnOnce(Bytes, u32) -> Result<T> + Send + 'static,
    ) -> Result<(ModelRecord, T)> {
        let mut record = self.stored_record(version).await?.ok_or_else(|| self.unknown(version))?;
        let bytes = self.onnx(version).await?;
        let built = tokio::task::spawn_blocking(move || build(bytes, version))
            .await
            .map_err(|e| RegistryError::Invalid(format!("ONNX Runtime failed on the file: {e}")))??;
        let next = ChampionState {
            version: Some(version),
            history,
            updated: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        };
        self.write_state(&next).await?;
        if let Some(old) = state.version.filter(|c| *c != version) {
            if let Some(mut r) = self.stored_record(old).await? {
                r.status = Status::Retired;
                self.write_record(&r).await?;
            }
        }
        record.status = Status::Champion;
        self.write_record(&record).await?;
        tracing::info!(model = %self.model, version, previous = ?state.version, "new champion");
        Ok((record, built))
    }
}

/// A record's status as `champion.json` has it.
fn corrected(mut r: ModelRecord, state: &ChampionState) -> ModelRecord {
    if state.version == Some(r.version) {
        r.status = Status::Champion;
    } else if r.status == Status::Champion {
        r.status = Status::Retired;
    }
    r
}
