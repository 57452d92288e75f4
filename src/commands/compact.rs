//! `anchorwatch compact`: one pass of compaction and retention over the store, now.

use std::path::Path;
use std::time::Duration;

use anchorwatch_collector::compact::{self, CompactionConfig, Pass};
use anchorwatch_collector::config::units::parse_duration;
use anchorwatch_collector::store::Store;

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
pub async fn run(args: CompactArgs) -> anyhow::Result<()> {
    let loaded = crate::config::load(&args.config)?;
    // Every model unless one is named.
    let models: Vec<String> = match &args.model {
        Some(m) => vec![loaded.models[loaded.pick_model(Some(m), &args.config)?].0.clone()],
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
