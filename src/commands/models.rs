//! `anchorwatch models`: the registry from the command line. It works on the store directly (no
//! server needed); a running server picks up a promotion within `predictor.reload_interval`.

use std::path::PathBuf;

use anchorwatch_collector::store::Store;
use anyhow::Context;

use crate::lifecycle::{Lifecycle, ModelRecord, NewVersion, PredictorConfig};

/// Arguments of `anchorwatch models`.
#[derive(clap::Args, Debug)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

/// Which config and model.
#[derive(clap::Args, Debug)]
struct Target {
    /// The TOML config file (its store and the model's schema).
    #[arg(long, short, env = "ANCHORWATCH_CONFIG")]
    config: PathBuf,
    /// The model; may be left out when only one is configured.
    #[arg(long, short)]
    model: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum ModelsCommand {
    /// List the model's versions (number, status, sha256, created, source) and its champion.
    Versions {
        #[command(flatten)]
        target: Target,
        /// Print the records as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check an ONNX file against the model's schema with ONNX Runtime and store it as the next
    /// version (status `candidate`). A file that does not fit is refused and nothing is stored.
    Upload {
        #[command(flatten)]
        target: Target,
        /// The ONNX file (see docs/models.md for the signature contract).
        file: PathBuf,
        /// Promote the new version to champion right away.
        #[arg(long)]
        promote: bool,
    },
    /// Make a version the champion (the one the predictor serves); the old champion is retired.
    Promote {
        #[command(flatten)]
        target: Target,
        /// The version, e.g. `3` or `v3`.
        #[arg(value_name = "VERSION")]
        number: String,
    },
    /// Go back to the previous champion; the current one is retired.
    Rollback {
        #[command(flatten)]
        target: Target,
    },
}

async fn open(target: &Target) -> anyhow::Result<(Lifecycle, String)> {
    let loaded = crate::config::load(&target.config)?;
    let model = loaded.models[loaded.pick_model(target.model.as_deref(), &target.config)?].0.clone();
    let store = Store::connect(&loaded.store_root()).await?;
    let schemas = crate::config::fixed_schemas(&loaded, &store, false).await?;
    // Versions are only checked here, never served: no session pools.
    let config = PredictorConfig { enabled: false, ..loaded.config.predictor.clone() };
    Ok((Lifecycle::open(&store, &schemas, config, None, None).await?, model))
}

fn line(r: &ModelRecord) -> String {
    format!(
        "v{:<5} {:<10} {}  {}  {}{}",
        r.version,
        serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        &r.sha256[..12.min(r.sha256.len())],
        r.created,
        r.source,
        r.trainer.as_deref().map(|t| format!(" ({t})")).unwrap_or_default()
    )
}

/// Runs `anchorwatch models ...`.
pub async fn run(args: ModelsArgs) -> anyhow::Result<()> {
    match args.command {
        ModelsCommand::Versions { target, json } => {
            let (l, model) = open(&target).await?;
            let served = l.model(&model).context("model")?;
            let versions = served.registry.versions().await?;
            let state = served.registry.champion_state().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "model": model, "champion": state.version, "previous_champions": state.history, "versions": versions
                    }))?
                );
            } else if versions.is_empty() {
                println!("model {model}: no versions yet (anchorwatch models upload --config ... FILE)");
            } else {
                println!("model {model}: champion {}", state.version.map_or("none".into(), |v| format!("v{v}")));
                for r in &versions {
                    println!("  {}", line(r));
                }
            }
            Ok(())
        }
        ModelsCommand::Upload { target, file, promote } => {
            let (l, model) = open(&target).await?;
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let record =
                l.upload(&model, bytes.into(), NewVersion { source: "upload".into(), ..Default::default() }).await?;
            println!("stored {model} {}", line(&record));
            if promote {
                let record = l.promote(&model, record.version).await?;
                println!("promoted {model} v{} to champion", record.version);
            }
            Ok(())
        }
        ModelsCommand::Promote { target, number: version } => {
            let (l, model) = open(&target).await?;
            let v: u32 = version
                .strip_prefix('v')
                .unwrap_or(&version)
                .parse()
                .with_context(|| format!("`{version}` is not a version; give a number such as 3 or v3"))?;
            let record = l.promote(&model, v).await?;
            println!("promoted {model} v{} to champion", record.version);
            Ok(())
        }
        ModelsCommand::Rollback { target } => {
            let (l, model) = open(&target).await?;
            let record = l.rollback(&model).await?;
            println!("rolled {model} back to v{}", record.version);
            Ok(())
        }
    }
}
