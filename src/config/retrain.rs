//! `[models.retrain]`: the retraining loop's settings (the loop itself is the `retrain` module).

use std::time::Duration;

use anchorwatch_collector::config::units;
use anchorwatch_collector::schema::{ModelSchema, ValueKind};
use anchorwatch_trainer::TrainSpec;
use serde::{Deserialize, Serialize};

/// Which trainer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainerKind {
    /// The built-in trainers (`builtin` gives the model kind and hyperparameters).
    #[default]
    Builtin,
    /// An external command (`command`), see `docs/retrain.md` for its contract.
    Command,
    /// An external pipeline (`webhook_url`) that later uploads the model through the API.
    Webhook,
}

/// `[models.retrain]`: the retraining loop of one model. Every field is in `docs/config.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    /// Whether triggers start runs. Default `false`.
    pub enabled: bool,
    /// `builtin`, `command` or `webhook`. Default `builtin`.
    pub trainer: TrainerKind,
    /// The built-in trainer's model and hyperparameters. Default gradient-boosted trees.
    pub builtin: TrainSpec,
    /// The external trainer: program and arguments, e.g. `["python3", "train.py"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The external pipeline's URL (a JSON POST describing the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Labeled traffic used: the newest this long of event time. Default `"7d"`.
    #[serde(with = "units::duration")]
    pub data_window: Duration,
    /// Share of the rows, the newest, kept out of training to compare the models. Default `0.2`.
    pub holdout_fraction: f64,
    /// Fewest labeled rows a run needs. Default `200`.
    pub min_rows: usize,
    /// The metric the candidate must win on: `accuracy`, `f1` (macro) for classifiers; `rmse`,
    /// `mae` (lower is better) or `r2` for regressors. Default: `accuracy` or `rmse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// How much better than the champion the candidate must be on `metric`. Default `0.0`.
    pub min_improvement: f64,
    /// Wait after a run before another may start. Default `"10m"`.
    #[serde(with = "units::duration")]
    pub cooldown: Duration,
    /// Longest a run's training may take. Default `"10m"`.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// After a promotion, make the training data the drift reference. Default `true`.
    pub update_reference: bool,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            trainer: TrainerKind::Builtin,
            builtin: TrainSpec::GradientBoosting(Default::default()),
            command: Vec::new(),
            webhook_url: None,
            data_window: Duration::from_secs(7 * 86400),
            holdout_fraction: 0.2,
            min_rows: 200,
            metric: None,
            min_improvement: 0.0,
            cooldown: Duration::from_secs(600),
            timeout: Duration::from_secs(600),
            update_reference: true,
        }
    }
}

impl RetrainConfig {
    /// Checks the fields against the model's schema; the error names the field.
    pub fn validate(&self, at: &str, schema: &ModelSchema) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.holdout_fraction) || self.holdout_fraction == 0.0 {
            return Err(format!("{at}.holdout_fraction: must be between 0 and 1 (exclusive)"));
        }
        let metric = self.metric(schema);
        let classifier = schema.prediction != ValueKind::Numerical;
        let fits =
            if classifier { ["accuracy", "f1"].contains(&metric) } else { ["rmse", "mae", "r2"].contains(&metric) };
        if !fits {
            return Err(format!(
                "{at}.metric: `{metric}` does not fit a {}; use {}",
                if classifier { "classifier" } else { "regressor" },
                if classifier { "accuracy or f1" } else { "rmse, mae or r2" }
            ));
        }
        match self.trainer {
            TrainerKind::Command if self.command.is_empty() => {
                Err(format!("{at}.command: required with trainer = \"command\", e.g. [\"python3\", \"train.py\"]"))
            }
            TrainerKind::Webhook if self.webhook_url.is_none() => {
                Err(format!("{at}.webhook_url: required with trainer = \"webhook\""))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn metric<'a>(&'a self, schema: &ModelSchema) -> &'a str {
        match &self.metric {
            Some(m) => m,
            None if schema.prediction == ValueKind::Numerical => "rmse",
            None => "accuracy",
        }
    }
}
