//! The proxy's settings, [`ProxyConfig`]: what `anchorwatch proxy` flags resolve to. Every field is
//! documented in `docs/proxy.md`; defaults live here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anchorwatch_collector::config::units;
use anchorwatch_collector::schema::is_valid_name;
use serde::{Deserialize, Serialize};

/// Predict routes captured when none are configured: the Open Inference Protocol (v2, with and
/// without a version), TF-Serving's REST predict, SageMaker's `/invocations`, and `/predict`.
pub const DEFAULT_PREDICT_PATHS: &[&str] =
    &["/v2/models/*/infer", "/v2/models/*/versions/*/infer", "/v1/models/*:predict", "/predict", "/invocations"];

/// Everything the proxy runs with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Address clients connect to. Default `"127.0.0.1:8081"`. Example: `"0.0.0.0:8081"`.
    pub listen: SocketAddr,
    /// Base URL of the predictor, plain HTTP; a path prefix is prepended to every request path.
    /// Example: `"http://127.0.0.1:8080"`.
    pub upstream: String,
    /// Speak HTTP/2 with prior knowledge (h2c) to the upstream instead of HTTP/1.1. Default `false`.
    pub upstream_http2: bool,
    /// Longest wait for the upstream's response headers; beyond it the client gets 504.
    /// Default `"30s"`.
    #[serde(with = "units::duration")]
    pub upstream_timeout: Duration,
    /// Longest wait for a TCP connection to the upstream; beyond it the client gets 502.
    /// Default `"5s"`.
    #[serde(with = "units::duration")]
    pub connect_timeout: Duration,
    /// The model captured rows belong to. Example: `"credit"`.
    pub model: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; apart from `listen` so the proxy
    /// never shadows an upstream path. Default: not served. Example: `"0.0.0.0:9464"`.
    pub metrics_listen: Option<SocketAddr>,
    /// Routes whose POST requests are captured: globs over the path, where `*` matches within one
    /// segment and `**` across segments. Default [`DEFAULT_PREDICT_PATHS`].
    /// Example: `["/v2/models/*/infer", "/api/**"]`.
    pub predict_paths: Vec<String>,
    /// Largest request or response body captured; larger ones are streamed through untouched
    /// and counted as dropped (`too_large`). Default `"1MiB"`.
    #[serde(with = "units::bytes")]
    pub capture_max_bytes: u64,
    /// Captured exchanges waiting for extraction and storage; when full, new ones are dropped
    /// (`queue_full`). Default `1024`.
    pub capture_queue: usize,
    /// Rows sent to the collector in one write at most. Default `1000`.
    pub batch_max_rows: usize,
    /// CPU priority (nice, 0 to 19) of capture's threads: extraction, the local collector's
    /// write-ahead log and Parquet flushes, and the work they start. Higher leaves the cores to
    /// the forwarded traffic when they are busy; capture that falls behind fills its queue and
    /// drops (counted). 0 runs capture at the traffic's priority. Linux only. Default `10`.
    pub capture_nice: i32,
    /// How features and predictions are read from bodies.
    pub extract: ExtractConfig,
    /// Local collector: the anchorwatch TOML config whose store and model schema receive the rows
    /// (unless `collector` is set). Set by `--config`; not a `[proxy]` field.
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Remote collector: base URL of a central `anchorwatch serve`; rows go there instead of the
    /// local store. Example: `"http://anchorwatch:8080"`.
    pub collector: Option<String>,
    /// Bearer token for the remote collector (needs the `ingest` scope). Given by
    /// `--collector-token` or, in `[proxy]`, through `collector_token_env`. Default: none.
    #[serde(skip)]
    pub collector_token: Option<String>,
    /// `[proxy]` only: environment variable holding the remote collector's token.
    pub collector_token_env: Option<String>,
    /// Longest wait for one POST to the remote collector. Default `"10s"`.
    #[serde(with = "units::duration")]
    pub collector_timeout: Duration,
    /// Longest pause between delivery attempts while the remote collector is down (the pause
    /// doubles from 100ms up to this). Default `"5s"`.
    #[serde(with = "units::duration")]
    pub collector_max_backoff: Duration,
    /// Folder holding rows the remote collector has not taken yet; they are sent on at the next
    /// start too. Default: `anchorwatch-spool-<model>` under the system's temporary folder.
    /// Example: `"/var/lib/anchorwatch/spool"`.
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool holds; beyond it new rows are dropped (`spool_full`). Default `"512MiB"`.
    #[serde(with = "units::bytes")]
    pub spool_max_bytes: u64,
    /// How long a graceful shutdown waits for requests in flight, and then for the capture queue
    /// to drain. Default `"30s"`.
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            upstream: String::new(),
            upstream_http2: false,
            upstream_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            model: String::new(),
            metrics_listen: None,
            predict_paths: DEFAULT_PREDICT_PATHS.iter().map(|p| p.to_string()).collect(),
            capture_max_bytes: 1 << 20,
            capture_queue: 1024,
            batch_max_rows: 1000,
            capture_nice: 10,
            extract: ExtractConfig::default(),
            config: None,
            collector: None,
            collector_token: None,
            collector_token_env: None,
            collector_timeout: Duration::from_secs(10),
            collector_max_backoff: Duration::from_secs(5),
            spool_dir: None,
            spool_max_bytes: 512 << 20,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// How rows are read from request and response bodies (see `docs/proxy.md`, "Extraction").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    /// Names for positional features: TF-Serving instances given as lists, and an Open Inference
    /// Protocol input whose elements are vectors of this length. Default: none (`f0`, `f1`, ... for
    /// lists; the input's name holding the vector for OIP). Example: `["age", "income"]`.
    pub feature_names: Vec<String>,
    /// The Open Inference Protocol output holding the prediction. Default: the first output.
    /// Example: `"label"`.
    pub prediction_output: Option<String>,
    /// The Open Inference Protocol output holding the scores (probabilities). Default: none.
    /// Example: `"probabilities"`.
    pub scores_output: Option<String>,
    /// `model_version` of captured rows when the response names none. Default: none. Example: `"v3"`.
    pub model_version: Option<String>,
    /// JSON-pointer mapping for bodies of any other shape; when set, shapes are not detected.
    pub mapping: Option<Mapping>,
}

/// A JSON-pointer mapping (RFC 6901) from a request and its response to rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// Pointer to the request's rows: an array (one row each) or one object. Default `""`, the
    /// whole body. Example: `"/data/rows"`.
    pub request_rows: String,
    /// Feature name and pointer within one request row. Default: none, the row object is the
    /// features map. Example: `[["age", "/person/age"]]`.
    pub features: Vec<(String, String)>,
    /// Pointer to the response's rows: an array or one value. Default `""`. Example: `"/result"`.
    pub response_rows: String,
    /// Pointer to the prediction within one response row. Default `""`, the row itself.
    /// Example: `"/label"`.
    pub prediction: String,
    /// Pointer to the scores within one response row. Default: none. Example: `"/probs"`.
    pub scores: Option<String>,
}

impl ProxyConfig {
    /// Checks every field; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if !is_valid_name(&self.model) {
            return Err(format!(
                "--model: `{}` is not a valid model name (1 to 64 of A-Z a-z 0-9 _ - . starting with a letter or digit)",
                self.model
            ));
        }
        if self.config.is_none() && self.collector.is_none() {
            return Err("give --config FILE (local collector) or --collector URL (remote anchorwatch)".into());
        }
        if let Some(url) = self.collector.as_ref().filter(|u| !u.starts_with("http://")) {
            return Err(format!("--collector: `{url}` must be an http:// URL"));
        }
        if self.predict_paths.iter().any(|p| !p.starts_with('/')) {
            return Err("--predict-path: every pattern starts with `/`".into());
        }
        if self.capture_queue == 0 {
            return Err("--capture-queue: must be at least 1".into());
        }
        if self.batch_max_rows == 0 {
            return Err("--batch-max-rows: must be at least 1".into());
        }
        if !(0..=19).contains(&self.capture_nice) {
            return Err(format!("--capture-nice: {} is not a nice value from 0 to 19", self.capture_nice));
        }
        if self.upstream_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err("--upstream-timeout and --connect-timeout: must be more than 0".into());
        }
        if let Some(m) = &self.extract.mapping {
            let pointers = [&m.request_rows, &m.response_rows, &m.prediction]
                .into_iter()
                .chain(m.scores.as_ref())
                .chain(m.features.iter().map(|(_, p)| p));
            for p in pointers {
                if !p.is_empty() && !p.starts_with('/') {
                    return Err(format!("JSON pointer `{p}`: must be empty or start with `/` (RFC 6901)"));
                }
            }
        }
        Ok(())
    }
}
