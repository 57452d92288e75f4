//! Compaction and retention of the store: the server's background pass and `anchorwatch compact`.
//! The protocol is in `anchorwatch_collector::compact` and docs/store.md.

use anchorwatch_collector::compact::{self, CompactionConfig, Pass, PassReport, RetentionConfig};
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
