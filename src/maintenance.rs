//! Compaction and retention of the store: the server's background pass and `anchorwatch compact`.
//! The protocol is in `anchorwatch_collector::compact` and docs/store.md.

use std::path::Path;
use std::time::Duration;

use anchorwatch_collector::compact::{self, CompactionConfig, Pass, PassReport, RetentionConfig};
use anchorwatch_collector::config::units::parse_duration;
use anchorwatch_collector::metrics::StoreMetrics;
use anchorwatch_collector::store::Store;
use tokio::sync::watch;

use crate::config::Loaded;

/// The models whose store `anchorwatch serve` maintains: the ones it analyses. One process per
/// model analyses (docs/store.md), and compaction, too, must run in one process only.
pub fn served_models(loaded: &Loaded) -> Vec<String> {
    let store = &loaded.config.store;
    if !store.compaction.enabled && !store.retention.is_set() {
        return Vec::new();
    }
    loaded.config.models.iter().filter(|m| m.analysis.enabled).map(|m| m.name.clone()).collect()
}

/// Runs a pass over every model in `models` each `compaction.interval` (the first one interval
/// after start) until `stop` turns true. A pass cut short by the stop leaves the store readable:
/// every step of the protocol does.
pub fn spawn(
    store: Store,
    models: Vec<String>,
    compaction: CompactionConfig,
    retention: RetentionConfig,
    zstd_level: i32,
    metrics: StoreMetrics,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = compaction.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            for model in &models {
                let pass = Pass {
                    compaction: compaction.enabled.then_some(&compaction),
                    retention: &retention,
                    zstd_level,
                    now: chrono::Utc::now(),
                };
                let result = tokio::select! {
                    r = compact::run(&store, model, &pass) => r,
                    _ = stop.changed() => return,
                };
                match result {
                    Ok(report) => {
                        metrics.record(&report);
                        log(&report);
                    }
                    Err(e) => {
                        metrics.errors.with_label_values(&[model]).inc();
                        tracing::error!(model = %model, error = %e, "compaction and retention pass failed; retried at the next interval");
                    }
                }
            }
        }
    })
}

fn log(report: &PassReport) {
    for t in &report.tables {
        if t.changed() {
            tracing::info!(
                model = %report.model,
                table = %t.table,
                partitions_compacted = t.partitions_compacted,
                files_merged = t.files_merged,
                bytes_before = t.bytes_before,
                bytes_after = t.bytes_after,
                sources_deleted = t.sources_deleted,
                stale_manifests_deleted = t.stale_manifests_deleted,
                partitions_deleted = t.partitions_deleted,
                files_deleted = t.files_deleted,
                "store maintenance"
            );
        }
    }
}

/// `anchorwatch compact`: the settings a pass takes from the command line over the config.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    /// The TOML config file (`[store.compaction]` and `[store.retention]`, docs/config.md).
    #[arg(long, short, env = "ANCHORWATCH_CONFIG")]
    pub config: std::path::PathBuf,
    /// Only this model (default: every configured model).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Override `store.compaction.min_files`: compact a partition with at least this many files.
    #[arg(long)]
    pub min_files: Option<usize>,
    /// Override `store.compaction.min_age`, e.g. `0s`: files younger than this are left alone.
    #[arg(long, value_parser = parse_duration)]
    pub min_age: Option<Duration>,
    /// Override `store.compaction.grace`, e.g. `0s`: a pass deletes the sources merged by an
    /// earlier pass once that merge is this old.
    #[arg(long, value_parser = parse_duration)]
    pub grace: Option<Duration>,
    /// Retention only: merge nothing.
    #[arg(long)]
    pub no_compaction: bool,
}

/// Runs one pass (compaction, then retention) now over the configured models and prints what it
/// did. `store.compaction.enabled` does not apply: it is about the server's background pass.
/// Must not run while another process compacts the same store.
pub async fn cli(args: CompactArgs) -> anyhow::Result<()> {
    let loaded = crate::config::load(&args.config)?;
    let models: Vec<String> = match &args.model {
        Some(m) if loaded.models.iter().any(|(n, _)| n == m) => vec![m.clone()],
        Some(m) => anyhow::bail!("no model `{m}` in {}", args.config.display()),
        None => loaded.models.iter().map(|(n, _)| n.clone()).collect(),
    };
    let mut compaction = loaded.config.store.compaction.clone();
    compaction.min_files = args.min_files.unwrap_or(compaction.min_files);
    compaction.min_age = args.min_age.unwrap_or(compaction.min_age);
    compaction.grace = args.grace.unwrap_or(compaction.grace);
    compaction.validate().map_err(|e| anyhow::anyhow!("{e} (from --min-files or the config)"))?;
    let store = Store::connect(&loaded.store_root()).await?;
    print_header(&args.config, &store, &compaction, args.no_compaction);
    for model in models {
        let pass = Pass {
            compaction: (!args.no_compaction).then_some(&compaction),
            retention: &loaded.config.store.retention,
            zstd_level: loaded.config.collector.zstd_level,
            now: chrono::Utc::now(),
        };
        let report = compact::run(&store, &model, &pass).await?;
        for t in &report.tables {
            println!("{model}/{t}");
        }
    }
    Ok(())
}

fn print_header(config: &Path, store: &Store, compaction: &CompactionConfig, off: bool) {
    if off {
        println!("{}: retention only, store {}", config.display(), store.url());
    } else {
        println!(
            "{}: store {}; compacting partitions with at least {} files older than {} s, grace {} s",
            config.display(),
            store.url(),
            compaction.min_files,
            compaction.min_age.as_secs_f64(),
            compaction.grace.as_secs_f64()
        );
    }
}
