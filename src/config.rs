//! The one TOML config file. Every field is documented in `docs/config.md`; defaults live here.

pub mod auth;
pub mod predictor;
pub mod proxy;
pub mod retrain;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anchorwatch_analyzer::stats::text_descriptors::Descriptor;
use anchorwatch_collector::CollectorConfig;
use anchorwatch_collector::config::units;
use anchorwatch_collector::schema::{FeatureKind, ModelSchema, SchemaConfig, is_valid_name};
use anchorwatch_collector::store::{Location, Store};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where to listen and request limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[store]`: where the data lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[collector]`: durability and batching of ingest.
    #[serde(default)]
    pub collector: CollectorConfig,
    /// `[query]`: limits of `/v1/query` and `anchorwatch query`.
    #[serde(default)]
    pub query: QueryConfig,
    /// `[auth]`: bearer tokens; without any, the API is open.
    #[serde(default)]
    pub auth: auth::AuthConfig,
    /// `[[models]]`: the models watched.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// `[alerts]`: rules, receivers, silences' companions (inhibition) and delivery.
    #[serde(default)]
    pub alerts: anchorwatch_alerts::AlertsConfig,
    /// `[proxy]`: settings of `anchorwatch proxy --config FILE` (flags win over them); `serve`
    /// ignores the section. See `docs/proxy.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<proxy::ProxyConfig>,
    /// `[predictor]`: the built-in ONNX predictor (docs/models.md).
    #[serde(default)]
    pub predictor: predictor::PredictorConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `"127.0.0.1:8080"`. Example: `"0.0.0.0:8080"`.
    pub listen: SocketAddr,
    /// Largest request body; larger ones get 413. Default `"16MiB"`.
    #[serde(with = "units::bytes")]
    pub max_body_bytes: u64,
    /// Ingest requests handled at once; more get 429 with Retry-After. Default `256`.
    pub max_inflight_ingest: usize,
    /// Request body bytes held by ingest requests in flight, together; more get 429. Bounds the
    /// memory of ingest under overload. A request holds the bytes it has sent so far.
    /// Default `"256MiB"`.
    #[serde(with = "units::bytes")]
    pub max_inflight_body_bytes: u64,
    /// How long a request body may take to arrive whole; slower ones get 408 `body_timeout`.
    /// Default `"30s"`. Example: `"2m"` for large uploads over slow links.
    #[serde(with = "units::duration")]
    pub body_read_timeout: Duration,
    /// Host names the `Host` header may carry when no token is configured (open mode), besides
    /// IP addresses the server listens on and `localhost`; `["*"]` accepts any. Guards an open
    /// server against web pages that reach it through a name of their own (DNS rebinding).
    /// Default: none. Example: `["anchorwatch.monitoring.svc"]`.
    pub allowed_hosts: Vec<String>,
    /// How long a graceful shutdown waits for requests in flight. Default `"30s"`.
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            max_body_bytes: 16 << 20,
            max_inflight_ingest: 256,
            max_inflight_body_bytes: 256 << 20,
            body_read_timeout: Duration::from_secs(30),
            allowed_hosts: Vec::new(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Root of the dataset: a local folder (relative to the config file), a `file://` URL, or
    /// `s3://bucket/prefix` on any S3-compatible service, with credentials, region and endpoint
    /// from the `AWS_*` environment variables (docs/store.md). Default `"./data"`.
    pub root: String,
    /// `[store.compaction]`: merging the small files of each partition (docs/store.md).
    pub compaction: anchorwatch_collector::compact::CompactionConfig,
    /// `[store.retention]`: how long each table is kept; unset keeps forever.
    pub retention: anchorwatch_collector::compact::RetentionConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { root: "./data".into(), compaction: Default::default(), retention: Default::default() }
    }
}

/// `[query]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Rows a query returns at most; the answer says when it was cut. Default `10000`.
    pub max_rows: usize,
    /// Memory one query may hold. Default `"512MiB"`.
    #[serde(with = "units::bytes")]
    pub memory_limit: u64,
    /// Wall time one query may take. Default `"30s"`.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self { max_rows: 10_000, memory_limit: 512 << 20, timeout: Duration::from_secs(30) }
    }
}

impl QueryConfig {
    /// As the analyzer takes them.
    pub fn limits(&self) -> anchorwatch_analyzer::sql::QueryLimits {
        anchorwatch_analyzer::sql::QueryLimits {
            max_rows: self.max_rows,
            memory_limit: self.memory_limit as usize,
            timeout: self.timeout,
        }
    }
}

/// `[[models]]`: one watched model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model's name, used in URLs and the store. 1 to 64 of `A-Z a-z 0-9 _ - .`. Example: `"credit"`.
    pub name: String,
    /// `[models.schema]`: what its records hold.
    #[serde(default)]
    pub schema: SchemaConfig,
    /// `[models.analysis]`: reference, windows and tests of the continuous analysis.
    #[serde(default)]
    pub analysis: anchorwatch_analyzer::monitor::AnalysisConfig,
    /// `[models.retrain]`: the retraining loop.
    #[serde(default)]
    pub retrain: retrain::RetrainConfig,
}

/// A loaded, validated config and the folder its relative paths are resolved against.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Folder of the config file.
    pub base: PathBuf,
    /// Each model's schema, declared or inferred.
    pub models: Vec<(String, ModelSchema)>,
}

impl Loaded {
    /// The model a command works on, by its index in `models`: `wanted` (the command's
    /// `--model`), or the only one configured. `path` is the config file, for the message.
    pub fn pick_model(&self, wanted: Option<&str>, path: &Path) -> anyhow::Result<usize> {
        let declared = || self.models.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
        match wanted {
            Some(m) => self.models.iter().position(|(n, _)| n == m).ok_or_else(|| {
                anyhow::anyhow!("--model: `{m}` is not declared in {} (declared: {})", path.display(), declared())
            }),
            None if self.models.len() == 1 => Ok(0),
            None => anyhow::bail!("--model: several models are configured; choose one of {}", declared()),
        }
    }

    /// The store root with relative paths resolved against the config file's folder.
    pub fn store_root(&self) -> String {
        let root = &self.config.store.root;
        if root.contains("://") || Path::new(root).is_absolute() {
            root.clone()
        } else {
            self.base.join(root).display().to_string()
        }
    }
}

/// Reads, parses and validates a config file. Errors name the file, the field and what is wrong.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    parse(&text, &base).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Parses and validates config text; relative paths resolve against `base`.
pub fn parse(text: &str, base: &Path) -> anyhow::Result<Loaded> {
    let mut config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    let models = validate(&config, base)?;
    if let Some(dir) = config.collector.wal_dir.as_mut().filter(|d| d.is_relative()) {
        *dir = base.join(&*dir);
    }
    Ok(Loaded { config, base: base.to_path_buf(), models })
}

fn validate(config: &Config, base: &Path) -> anyhow::Result<Vec<(String, ModelSchema)>> {
    config.collector.validate().map_err(anyhow::Error::msg)?;
    config.store.compaction.validate().map_err(anyhow::Error::msg)?;
    config.store.retention.validate().map_err(anyhow::Error::msg)?;
    let location = Location::parse(&config.store.root)?;
    if matches!(location, Location::S3 { .. }) && config.collector.wal_dir.is_none() {
        anyhow::bail!(
            "collector.wal_dir: must be set when store.root is object storage (`{}`): the write-ahead log \
             needs a folder on local disk, one per process, e.g. wal_dir = \"/var/lib/anchorwatch/wal\" (docs/store.md)",
            config.store.root
        );
    }
    if config.server.max_body_bytes == 0 {
        anyhow::bail!("server.max_body_bytes: must be more than 0");
    }
    if config.server.max_inflight_body_bytes < config.server.max_body_bytes {
        anyhow::bail!("server.max_inflight_body_bytes: must be at least server.max_body_bytes");
    }
    if config.server.body_read_timeout < Duration::from_secs(1) {
        anyhow::bail!("server.body_read_timeout: must be at least 1s");
    }
    if let Some(h) = config.server.allowed_hosts.iter().find(|h| h.is_empty() || h.contains(['/', ' ', ':'])) {
        anyhow::bail!("server.allowed_hosts: `{h}` is not a host name (no port, scheme or path)");
    }
    if config.server.max_inflight_ingest == 0 {
        anyhow::bail!("server.max_inflight_ingest: must be at least 1");
    }
    if config.query.max_rows == 0 {
        anyhow::bail!("query.max_rows: must be at least 1");
    }
    config.auth.validate()?;
    config.predictor.validate().map_err(anyhow::Error::msg)?;
    if config.models.is_empty() {
        anyhow::bail!("models: no [[models]] declared; declare at least one (see docs/config.md)");
    }
    let mut out: Vec<(String, ModelSchema)> = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        if !is_valid_name(&model.name) {
            anyhow::bail!(
                "models[{i}].name: `{}` is not a valid name (1 to 64 of A-Z a-z 0-9 _ - . starting with a letter or digit)",
                model.name
            );
        }
        if out.iter().any(|(name, _)| *name == model.name) {
            anyhow::bail!("models[{i}].name: `{}` is declared twice", model.name);
        }
        let schema = ModelSchema::from_config(&model.schema, base)
            .map_err(|e| anyhow::anyhow!("models[{i}].schema (model `{}`): {e}", model.name))?;
        // A text feature's descriptors (`review.text_length`) take overrides like features.
        let descriptors: Vec<String> = schema
            .features
            .iter()
            .filter(|f| f.kind == FeatureKind::Text)
            .flat_map(|f| Descriptor::ALL.map(|d| format!("{}.{}", f.name, d.name())))
            .collect();
        let features: Vec<&str> =
            schema.features.iter().map(|f| f.name.as_str()).chain(descriptors.iter().map(String::as_str)).collect();
        model.analysis.validate(&format!("models[{i}].analysis"), &features).map_err(anyhow::Error::msg)?;
        model.retrain.validate(&format!("models[{i}].retrain"), &schema).map_err(anyhow::Error::msg)?;
        if let Some(reference) = &model.analysis.reference {
            let path = base.join(reference);
            anyhow::ensure!(
                path.is_file(),
                "models[{i}].analysis.reference: {} is not a readable file",
                path.display()
            );
        }
        out.push((model.name.clone(), schema));
    }
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    config.alerts.validate(&names).map_err(anyhow::Error::msg)?;
    Ok(out)
}

/// The example config shipped in the repo, embedded so `anchorwatch demo` runs anywhere.
pub const EXAMPLE: &str = include_str!("../examples/anchorwatch.toml");

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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new(".")).unwrap_err().to_string()
    }

    #[test]
    fn example_config_is_valid() {
        let loaded = parse(EXAMPLE, Path::new("examples")).unwrap();
        assert!(!loaded.models.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let model = "[[models]]\nname = \"m\"\nschema.features = [{ name = \"a\", kind = \"numerical\" }]\n";
        assert!(err(&format!("[server]\nlisen = \"x\"\n{model}")).contains("unknown field `lisen`"));
        assert!(err(&format!("[collector]\nflush_interval = \"10 parsecs\"\n{model}")).contains("flush_interval"));
        assert!(err(&format!("[collector]\nzstd_level = 40\n{model}")).contains("collector.zstd_level"));
        assert!(
            err("[[models]]\nname = \"../x\"\nschema.features = [{ name = \"a\", kind = \"numerical\" }]\n")
                .contains("models[0].name")
        );
        assert!(
            err("[[models]]\nname = \"m\"\nschema.features = [{ name = \"a\", kind = \"numeric\" }]\n")
                .contains("unknown variant `numeric`")
        );
        assert!(err("[[models]]\nname = \"m\"\n").contains("models[0].schema"));
        assert!(err("").contains("no [[models]]"));
        assert!(err(&format!("[store]\nroot = \"s3://Bad_Bucket\"\n{model}")).contains("not a valid bucket name"));
        assert!(err(&format!("[store]\nroot = \"s3://bucket/p\"\n{model}")).contains("collector.wal_dir: must be set"));
        assert!(
            err(&format!("[store.compaction]\nmin_files = 1\n{model}"))
                .contains("store.compaction.min_files: must be at least 2")
        );
        assert!(err(&format!("[store.compaction]\ninterval = \"0s\"\n{model}")).contains("store.compaction.interval"));
        assert!(
            err(&format!("[store.retention]\npredictions = \"90 days\"\n{model}")).contains("unknown duration unit")
        );
        assert!(
            err(&format!("[store.retention]\nlabels = \"0d\"\n{model}"))
                .contains("store.retention.labels: must be more than 0")
        );
    }

    #[test]
    fn compaction_is_on_and_retention_off_by_default() {
        let model = "[[models]]\nname = \"m\"\nschema.features = [{ name = \"a\", kind = \"numerical\" }]\n";
        let loaded = parse(model, Path::new(".")).unwrap();
        let store = &loaded.config.store;
        assert!(store.compaction.enabled && store.compaction.min_files == 8);
        assert_eq!(store.compaction.interval, Duration::from_secs(600));
        assert!(!store.retention.is_set());
        let text = format!("[store.retention]\npredictions = \"90d\"\nresults = \"12h\"\n{model}");
        let loaded = parse(&text, Path::new(".")).unwrap();
        assert_eq!(loaded.config.store.retention.predictions, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(loaded.config.store.retention.results, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(loaded.config.store.retention.labels, None);
    }

    #[test]
    fn object_store_with_a_wal_dir_is_valid_and_the_wal_dir_is_relative_to_the_config() {
        let model = "[[models]]\nname = \"m\"\nschema.features = [{ name = \"a\", kind = \"numerical\" }]\n";
        let text = format!("[store]\nroot = \"s3://bucket/p\"\n[collector]\nwal_dir = \"wal\"\n{model}");
        let loaded = parse(&text, Path::new("/etc/anchorwatch")).unwrap();
        assert_eq!(loaded.store_root(), "s3://bucket/p");
        assert_eq!(loaded.config.collector.wal_dir.as_deref(), Some(Path::new("/etc/anchorwatch/wal")));
    }
}

#[cfg(test)]
mod docs {
    use super::*;

    fn paths(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    paths(&p, v, out);
                }
            }
            toml::Value::Array(items) if items.iter().all(|i| i.is_table()) && !items.is_empty() => {
                for item in items {
                    paths(&format!("{prefix}[]"), item, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    /// Every config field appears in `docs/config.md`, so the reference cannot fall behind.
    #[test]
    fn every_field_is_documented() {
        let mut config = Config::default();
        config.collector.wal_dir = Some("/wal".into());
        config.store.retention = anchorwatch_collector::compact::RetentionConfig {
            predictions: Some(std::time::Duration::from_secs(86_400)),
            labels: Some(std::time::Duration::from_secs(86_400)),
            results: Some(std::time::Duration::from_secs(86_400)),
        };
        config.auth.tokens.push(auth::TokenConfig {
            name: "t".into(),
            token_env: Some("T".into()),
            token: Some("x".into()),
            scopes: vec![auth::Scope::Read],
        });
        let mut schema = anchorwatch_collector::schema::SchemaConfig {
            infer_from: Some("ref.csv".into()),
            prediction: Some(anchorwatch_collector::schema::ValueKind::Numerical),
            label: Some(anchorwatch_collector::schema::ValueKind::Numerical),
            scores: vec!["a".into()],
            ..Default::default()
        };
        schema.features.push(anchorwatch_collector::schema::FeatureConfig {
            name: "e".into(),
            kind: anchorwatch_collector::schema::FeatureKind::Embedding,
            dim: Some(3),
            nullable: true,
        });
        let mut analysis = anchorwatch_analyzer::monitor::AnalysisConfig {
            reference: Some("ref.parquet".into()),
            reference_span: Some(std::time::Duration::from_secs(3600)),
            rolling_rows: Some(100),
            // Both, so the walk sees both (validation would refuse the pair).
            window: Some(std::time::Duration::from_secs(3600)),
            window_rows: Some(1000),
            positive_class: Some("yes".into()),
            ..Default::default()
        };
        analysis.columns.insert("e".into(), Default::default());
        analysis.columns.get_mut("e").unwrap().stattest = Some("psi".into());
        analysis.columns.get_mut("e").unwrap().threshold = Some(0.2);
        analysis.thresholds.insert(
            "accuracy".into(),
            anchorwatch_analyzer::monitor::config::MetricThreshold {
                lower: Some(0.8),
                upper: Some(1.0),
                ..Default::default()
            },
        );
        let retrain = retrain::RetrainConfig {
            command: vec!["python3".into(), "train.py".into()],
            webhook_url: Some("http://ci".into()),
            metric: Some("accuracy".into()),
            ..Default::default()
        };
        config.models.push(ModelConfig { name: "m".into(), schema, analysis, retrain });
        let mut rule = anchorwatch_alerts::config::default_rules().remove(0);
        rule.models = vec!["m".into()];
        rule.receivers = vec!["r".into()];
        config.alerts.rules.push(rule);
        config.alerts.receivers.push(anchorwatch_alerts::config::ReceiverConfig {
            name: "r".into(),
            kind: anchorwatch_alerts::config::ReceiverKind::Email,
            url: Some("http://x".into()),
            url_env: Some("X".into()),
            secret_env: Some("S".into()),
            timeout: std::time::Duration::from_secs(1),
            send_resolved: true,
            smtp_host: Some("h".into()),
            smtp_port: Some(25),
            tls: Default::default(),
            ca_file: Some("ca.pem".into()),
            username: Some("u".into()),
            password_env: Some("P".into()),
            from: Some("a@b".into()),
            to: vec!["c@d".into()],
        });
        let mut proxy = proxy::ProxyConfig {
            metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
            collector: Some("http://c".into()),
            collector_token_env: Some("T".into()),
            spool_dir: Some("/spool".into()),
            ..Default::default()
        };
        proxy.extract.prediction_output = Some("label".into());
        proxy.extract.scores_output = Some("probabilities".into());
        proxy.extract.model_version = Some("v1".into());
        proxy.extract.feature_names = vec!["a".into()];
        proxy.extract.mapping = Some(proxy::Mapping {
            features: vec![("a".into(), "/a".into())],
            scores: Some("/s".into()),
            ..Default::default()
        });
        config.proxy = Some(proxy);
        config.alerts.inhibit_rules.push(anchorwatch_alerts::config::InhibitRule {
            source: [("alertname".to_string(), "A".to_string())].into_iter().collect(),
            target: [("alertname".to_string(), "B".to_string())].into_iter().collect(),
            equal: vec!["model".into()],
        });
        config.predictor.pool_size = 3;
        let value = toml::Value::try_from(&config).unwrap();
        let mut all = Vec::new();
        paths("", &value, &mut all);
        let doc = include_str!("../docs/config.md");
        // `columns` is keyed by feature name; the reference writes the key as `<column>`.
        let all: Vec<String> = all
            .iter()
            .map(|p| {
                let p = p
                    .replace(".columns.e.", ".columns.<column>.")
                    .replace(".thresholds.accuracy.", ".thresholds.<metric>.");
                // Label and annotation maps are free-form: the reference documents the map itself.
                match p
                    .find(".labels.")
                    .or_else(|| p.find(".annotations."))
                    .or_else(|| p.find(".source."))
                    .or_else(|| p.find(".builtin."))
                    .or_else(|| p.find(".target."))
                {
                    Some(i) => p[..p[i + 1..].find('.').map_or(p.len(), |j| i + 1 + j)].to_string(),
                    None => p,
                }
            })
            .collect();
        let missing: Vec<&String> = all.iter().filter(|p| !doc.contains(&format!("`{p}`"))).collect();
        assert!(missing.is_empty(), "docs/config.md does not document: {missing:?}");
        assert!(all.len() > 30, "the walk found too few fields: {all:?}");
    }
}
