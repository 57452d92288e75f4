//! What to train: the model kind and its hyperparameters.

/// Which model to train, with its hyperparameters. Classification or regression follows from the
/// [`Target`](crate::Target).
///
/// In TOML or JSON: `{"kind": "gradient_boosting", "n_trees": 200, "max_depth": 4}`; omitted
/// hyperparameters take their defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainSpec {
    /// Logistic regression on standardized numbers and one-hot categories (classification only).
    LogisticRegression(LogisticRegressionSpec),
    /// Gradient-boosted trees (classification and regression).
    GradientBoosting(GradientBoostingSpec),
    /// Ridge (L2-penalized linear) regression on standardized numbers and one-hot categories
    /// (regression only).
    Ridge(RidgeSpec),
}

impl TrainSpec {
    /// The trainer's name as recorded in the registry: `logistic_regression`, `gradient_boosting`
    /// or `ridge`.
    pub fn name(&self) -> &'static str {
        match self {
            TrainSpec::LogisticRegression(_) => "logistic_regression",
            TrainSpec::GradientBoosting(_) => "gradient_boosting",
            TrainSpec::Ridge(_) => "ridge",
        }
    }
}

/// Logistic regression hyperparameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticRegressionSpec {
    /// L2 penalty on the weights, added to the mean log-loss as `l2 / 2 · ‖W‖²` (not on the
    /// intercept). Example: `0.001`.
    pub l2: f64,
    /// Iteration cap of the L-BFGS optimizer. Example: `200`.
    pub max_iter: usize,
    /// Stop when every gradient component is below this. Example: `1e-6`.
    pub tol: f64,
}

impl Default for LogisticRegressionSpec {
    fn default() -> Self {
        LogisticRegressionSpec { l2: 1e-3, max_iter: 200, tol: 1e-6 }
    }
}

/// Gradient-boosted trees hyperparameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradientBoostingSpec {
    /// Boosting rounds (a multiclass model grows one tree per class per round). Example: `100`.
    pub n_trees: usize,
    /// Maximum depth of a tree (a root-only tree has depth 0). Example: `3`.
    pub max_depth: usize,
    /// Shrinkage of each leaf value. Example: `0.1`.
    pub learning_rate: f64,
    /// Fewest training rows in a leaf. Example: `20`.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values (`-G / (H + l2)`). Example: `1.0`.
    pub l2: f64,
    /// Smallest loss reduction that makes a split. Example: `0.0`.
    pub min_gain: f64,
    /// Histogram bins per feature (2 to 65535). Example: `255`.
    pub max_bins: usize,
}

impl Default for GradientBoostingSpec {
    fn default() -> Self {
        GradientBoostingSpec {
            n_trees: 100,
            max_depth: 3,
            learning_rate: 0.1,
            min_samples_leaf: 20,
            l2: 1.0,
            min_gain: 0.0,
            max_bins: 255,
        }
    }
}

/// Ridge regression hyperparameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RidgeSpec {
    /// L2 penalty, added to the mean squared error as `l2 · ‖w‖²` (not on the intercept).
    /// Example: `0.001`.
    pub l2: f64,
}

impl Default for RidgeSpec {
    fn default() -> Self {
        RidgeSpec { l2: 1e-3 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_with_defaults() {
        let spec: TrainSpec = serde_json::from_str(r#"{"kind": "gradient_boosting", "n_trees": 7}"#).unwrap();
        assert_eq!(spec, TrainSpec::GradientBoosting(GradientBoostingSpec { n_trees: 7, ..Default::default() }));
        let spec: TrainSpec = serde_json::from_str(r#"{"kind": "logistic_regression"}"#).unwrap();
        assert_eq!(spec.name(), "logistic_regression");
        assert!(serde_json::from_str::<TrainSpec>(r#"{"kind": "ridge", "alpha": 1}"#).is_err());
    }
}
