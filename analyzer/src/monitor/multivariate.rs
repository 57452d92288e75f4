//! A window's multivariate drift: NannyML's data reconstruction error
//! ([`crate::multivariate::reconstruction`]) and, when turned on, its domain classifier
//! ([`crate::multivariate::domain_classifier`]) over the model's tabular features, fitted once
//! per reference, so a change in how the features go together shows even when every column
//! alone looks the same.

use anchorwatch_collector::schema::{FeatureKind, ModelSchema};

use super::config::AnalysisConfig;
use super::data::{Column, Frame};
use super::window::{DriftRow, Role};
use crate::multivariate::domain_classifier::{DomainClassifier, DomainClassifierOptions};
use crate::multivariate::reconstruction::{Reconstruction, ReconstructionOptions};
use crate::multivariate::{self, Table};

/// The methods' names in results, metrics and alert labels.
pub const DATA_RECONSTRUCTION: &str = "data_reconstruction";
/// See [`DATA_RECONSTRUCTION`].
pub const DOMAIN_CLASSIFIER: &str = "domain_classifier";

/// The features the reconstruction reads: numerical, categorical and boolean ones (text and
/// embeddings have tests of their own). Fewer than two leave nothing joint to watch.
pub fn tabular_features(schema: &ModelSchema) -> Vec<&str> {
    let names: Vec<&str> = (schema.features.iter())
        .filter(|f| matches!(f.kind, FeatureKind::Numerical | FeatureKind::Categorical | FeatureKind::Boolean))
        .map(|f| f.name.as_str())
        .collect();
    if names.len() < 2 { Vec::new() } else { names }
}

/// The features whose rows a window's multivariate drift reads (none when it is turned off).
pub fn rows_needed<'a>(schema: &'a ModelSchema, config: &AnalysisConfig) -> Vec<&'a str> {
    if config.multivariate || config.domain_classifier { tabular_features(schema) } else { Vec::new() }
}

/// Calls `f` with the `names` columns of `frame` as a reconstruction table.
fn with_table<R>(
    frame: &Frame,
    names: &[&str],
    f: impl FnOnce(&Table<'_>) -> multivariate::Result<R>,
) -> Result<R, String> {
    let mut strings: Vec<(usize, Vec<Option<&str>>)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match frame.get(name) {
            Some(Column::Strings(a)) => strings.push((i, a.iter().collect())),
            Some(Column::Numbers(_)) => {}
            Some(Column::Vectors(_)) | None => return Err(format!("the rows lack the feature column {name:?}")),
        }
    }
    let columns = names.iter().enumerate().map(|(i, name)| match frame.get(name) {
        Some(Column::Numbers(v)) => multivariate::Column::numerical(name, v),
        _ => {
            let values = &strings.iter().find(|(j, _)| *j == i).expect("collected above").1;
            multivariate::Column::categorical(name, values)
        }
    });
    Table::new(columns).and_then(|t| f(&t)).map_err(|e| e.to_string())
}

/// The multivariate methods fitted on a reference's tabular features (or why they cannot be);
/// a method is `None` when it is turned off or the model has fewer than two tabular features.
#[derive(Debug)]
pub struct Fitted {
    /// NannyML's data reconstruction, with its defaults: 65% of the variance, thresholds
    /// mean ± 3 std over ten reference chunks.
    pub reconstruction: Option<Result<Reconstruction, String>>,
    /// NannyML's domain classifier, with its defaults: 5 folds, the band 0.45–0.65.
    pub domain_classifier: Option<Result<DomainClassifier, String>>,
}

/// Fits the methods `config` turns on, on the reference's tabular features.
pub fn fit(reference: &Frame, schema: &ModelSchema, config: &AnalysisConfig) -> Fitted {
    let names = tabular_features(schema);
    let on = |enabled: bool| enabled && !names.is_empty();
    Fitted {
        reconstruction: on(config.multivariate)
            .then(|| with_table(reference, &names, |t| Reconstruction::fit(t, &ReconstructionOptions::default()))),
        domain_classifier: on(config.domain_classifier)
            .then(|| with_table(reference, &names, |t| DomainClassifier::fit(t, &DomainClassifierOptions::default()))),
    }
}

/// The window's multivariate drift rows, one per fitted method: its value against the
/// reference's band (`threshold` holds the band's upper bound; a value below the lower bound
/// drifts too).
pub fn window_rows(fitted: &Fitted, current: &Frame, schema: &ModelSchema) -> Vec<DriftRow> {
    let names = tabular_features(schema);
    let mut out = Vec::new();
    if let Some(r) = &fitted.reconstruction {
        let result = r
            .as_ref()
            .map_err(|e| format!("the reference cannot be fitted: {e}"))
            .and_then(|r| with_table(current, &names, |t| r.window(t)).map(|c| (c.value, r.bounds().upper, c.alert)));
        out.push(row(DATA_RECONSTRUCTION, result));
    }
    if let Some(d) = &fitted.domain_classifier {
        let result = d
            .as_ref()
            .map_err(|e| format!("the reference cannot be fitted: {e}"))
            .and_then(|d| with_table(current, &names, |t| d.window(t)).map(|c| (c.value, d.bounds().upper, c.alert)));
        out.push(row(DOMAIN_CLASSIFIER, result));
    }
    out
}

/// A multivariate drift row from a method's (value, upper bound, drifted).
fn row(method: &str, result: Result<(f64, Option<f64>, bool), String>) -> DriftRow {
    let (score, threshold, drifted, error) = match result {
        Ok((value, upper, drifted)) => (value, upper.unwrap_or(f64::NAN), drifted, None),
        Err(e) => (f64::NAN, f64::NAN, false, Some(e)),
    };
    DriftRow {
        column: method.into(),
        role: Role::Multivariate,
        kind: "multivariate".into(),
        stattest: method.into(),
        score,
        threshold,
        drifted,
        error,
    }
}
