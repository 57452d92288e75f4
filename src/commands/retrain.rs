//! `anchorwatch retrain`: one run of a model's retraining loop, now, in this process.

use std::sync::Arc;

use anchorwatch_analyzer::monitor::ModelMonitor;
use anchorwatch_collector::store::Store;

use crate::lifecycle::Lifecycle;
use crate::retrain::{Retrainer, RunStatus, Trigger, Watched};
use prometheus::Registry;

/// `anchorwatch retrain`: one run, in this process, against the store.
pub async fn run(config: &std::path::Path, model: Option<&str>) -> anyhow::Result<()> {
    let loaded = crate::config::load(config)?;
    let i = loaded.pick_model(model, config)?;
    let model = loaded.models[i].0.clone();
    let store = Store::connect(&loaded.store_root()).await?;
    let schemas = crate::config::fixed_schemas(&loaded, &store, false).await?;
    let c = &loaded.config;
    let lifecycle = Arc::new(Lifecycle::open(&store, &schemas, c.predictor.clone(), None, None).await?);
    let registry = Registry::new();
    let monitor = ModelMonitor::open(
        model.clone(),
        schemas[i].1.clone(),
        c.models[i].analysis.clone(),
        store.clone(),
        loaded.base.clone(),
        c.query.memory_limit as usize,
        anchorwatch_analyzer::monitor::metrics::Metrics::register(&registry)?,
    )
    .await?;
    let retrainer = Retrainer::new(
        store,
        lifecycle,
        vec![(
            model.clone(),
            schemas[i].1.clone(),
            c.models[i].retrain.clone(),
            Some(Watched::new(Arc::new(monitor), &c.models[i].analysis)),
        )],
        c.query.memory_limit as usize,
        None,
    )?;
    eprintln!("retraining `{model}`: snapshot, train, validate against the champion…");
    let run = retrainer
        .run_now(&model, Trigger { source: "cli".into(), reason: "anchorwatch retrain".into() })
        .await
        .map_err(anyhow::Error::msg)?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    match run.status {
        RunStatus::Failed => anyhow::bail!("the run failed: {}", run.reason),
        _ => {
            eprintln!("{}: {}", run.status.as_str(), run.reason);
            Ok(())
        }
    }
}
