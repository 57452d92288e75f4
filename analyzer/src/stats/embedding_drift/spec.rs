//! An embedding column's method as the config files spell it: the `embedding` table of a
//! column's settings, in both `anchorwatch report --config` and `[models.analysis.columns]`.

use serde::{Deserialize, Serialize};

use super::{Distance, DistanceOptions, Method, MmdOptions, ModelOptions, RatioOptions};

/// Which of Evidently's embedding drift methods a column gets, with which options. Every field
/// falls back to Evidently's default, so an empty table runs what `EmbeddingsDriftMetric` runs
/// without a method: the domain classifier, bootstrapped when the reference has fewer than
/// 1000 rows.
///
/// Example: `embedding = { method = "distance", dist = "cosine", threshold = 0.1 }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `"model"` (a domain classifier's ROC AUC), `"distance"` (between the mean embeddings),
    /// `"ratio"` (share of drifted components) or `"mmd"` (maximum mean discrepancy). Default
    /// `"model"`.
    pub method: Option<String>,
    /// Drift when the score exceeds this. Defaults: model 0.55 (an AUC), distance 0.2, ratio
    /// 0.2 (a share of components), mmd 0.015 (an MMD²). Unused with `bootstrap`.
    pub threshold: Option<f64>,
    /// Compare with a bootstrapped quantile instead of `threshold` (model, distance, mmd).
    /// Default: false, except for `model` without a method named and a reference of fewer than
    /// 1000 rows, as Evidently.
    pub bootstrap: Option<bool>,
    /// The bootstrap's quantile. Defaults: model and distance 0.95, mmd 0.05 (Evidently's).
    pub quantile_probability: Option<f64>,
    /// Project both sides on the reference's first principal components before testing, e.g.
    /// `20`. Default: none.
    pub pca_components: Option<usize>,
    /// For `distance`: `"euclidean"` (default), `"cosine"`, `"cityblock"` or `"chebyshev"`.
    pub dist: Option<String>,
    /// For `ratio`: a component drifts when its normed Wasserstein distance reaches this.
    /// Default 0.1.
    pub component_stattest_threshold: Option<f64>,
}

const METHODS: [&str; 4] = ["model", "distance", "ratio", "mmd"];

impl Spec {
    /// Checks names and ranges; the message names the offending field under `at`.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let method = self.method.as_deref().unwrap_or("model");
        if !METHODS.contains(&method) {
            return Err(format!("{at}.method: unknown method `{method}`; one of {}", METHODS.join(", ")));
        }
        if let Some(d) = self.dist.as_deref() {
            if method != "distance" {
                return Err(format!("{at}.dist: only the `distance` method takes a distance"));
            }
            if Distance::from_name(d).is_none() {
                return Err(format!(
                    "{at}.dist: unknown distance `{d}`; one of euclidean, cosine, cityblock, chebyshev"
                ));
            }
        }
        if self.component_stattest_threshold.is_some() && method != "ratio" {
            return Err(format!("{at}.component_stattest_threshold: only the `ratio` method takes it"));
        }
        if self.bootstrap.is_some() && method == "ratio" {
            return Err(format!("{at}.bootstrap: the `ratio` method has no bootstrap"));
        }
        if let Some(q) = self.quantile_probability.filter(|q| !(0.0..=1.0).contains(q)) {
            return Err(format!("{at}.quantile_probability: must be between 0 and 1, got {q}"));
        }
        if let Some(t) = self.threshold.filter(|t| !t.is_finite()) {
            return Err(format!("{at}.threshold: must be a finite number, got {t}"));
        }
        Ok(())
    }

    /// The method to run against a reference of `reference_rows` rows. Call [`Spec::validate`]
    /// first: names it does not know fall back to the defaults here.
    pub fn method(&self, reference_rows: usize) -> Method {
        let pca_components = self.pca_components;
        match self.method.as_deref() {
            Some("distance") => {
                let d = DistanceOptions::default();
                Method::Distance(DistanceOptions {
                    dist: self.dist.as_deref().and_then(Distance::from_name).unwrap_or(d.dist),
                    threshold: self.threshold.unwrap_or(d.threshold),
                    bootstrap: self.bootstrap.unwrap_or(d.bootstrap),
                    quantile_probability: self.quantile_probability.unwrap_or(d.quantile_probability),
                    pca_components,
                })
            }
            Some("ratio") => {
                let d = RatioOptions::default();
                Method::Ratio(RatioOptions {
                    component_stattest_threshold: self
                        .component_stattest_threshold
                        .unwrap_or(d.component_stattest_threshold),
                    threshold: self.threshold.unwrap_or(d.threshold),
                    pca_components,
                })
            }
            Some("mmd") => {
                let d = MmdOptions::default();
                Method::Mmd(MmdOptions {
                    threshold: self.threshold.unwrap_or(d.threshold),
                    bootstrap: self.bootstrap.unwrap_or(d.bootstrap),
                    quantile_probability: self.quantile_probability.unwrap_or(d.quantile_probability),
                    pca_components,
                })
            }
            named => {
                // Only the metric's own default (no method named) bootstraps small references.
                let bootstrap = match (named, Method::metric_default(reference_rows)) {
                    (None, Method::Model(o)) => o.bootstrap,
                    _ => false,
                };
                let d = ModelOptions::default();
                Method::Model(ModelOptions {
                    threshold: self.threshold.unwrap_or(d.threshold),
                    bootstrap: self.bootstrap.unwrap_or(bootstrap),
                    quantile_probability: self.quantile_probability.unwrap_or(d.quantile_probability),
                    pca_components,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> Spec {
        serde_json::from_value(value).expect("a valid spec")
    }

    #[test]
    fn an_empty_spec_runs_evidentlys_metric_default() {
        assert_eq!(Spec::default().method(500), Method::metric_default(500));
        assert_eq!(Spec::default().method(5000), Method::metric_default(5000));
        // Naming the model method drops the small-reference bootstrap, as in Evidently.
        assert_eq!(spec(serde_json::json!({"method": "model"})).method(500), Method::Model(ModelOptions::default()));
    }

    #[test]
    fn options_reach_the_method() {
        let s =
            spec(serde_json::json!({"method": "distance", "dist": "cosine", "threshold": 0.1, "pca_components": 8}));
        assert_eq!(s.validate("c"), Ok(()));
        let expected =
            DistanceOptions { dist: Distance::Cosine, threshold: 0.1, pca_components: Some(8), ..Default::default() };
        assert_eq!(s.method(10), Method::Distance(expected));
    }

    #[test]
    fn mistakes_name_their_field() {
        let bad = |v: serde_json::Value| spec(v).validate("columns.photo.embedding").unwrap_err();
        assert!(
            bad(serde_json::json!({"method": "knn"})).starts_with("columns.photo.embedding.method: unknown method")
        );
        assert!(bad(serde_json::json!({"method": "model", "dist": "cosine"})).contains(".dist: only"));
        assert!(bad(serde_json::json!({"method": "distance", "dist": "manhattan"})).contains("unknown distance"));
        assert!(bad(serde_json::json!({"method": "ratio", "bootstrap": true})).contains(".bootstrap:"));
        assert!(bad(serde_json::json!({"quantile_probability": 1.5})).contains(".quantile_probability:"));
        assert!(serde_json::from_value::<Spec>(serde_json::json!({"methd": "mmd"})).is_err());
    }
}
