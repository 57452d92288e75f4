//! A window's multivariate drift: NannyML's data reconstruction error over the model's tabular
//! features ([`crate::multivariate::reconstruction`]), fitted once per reference, so a change in
//! how the features go together shows even when every column alone looks the same.

use anchorwatch_collector::schema::{FeatureKind, ModelSchema};

use super::config::AnalysisConfig;
use super::data::{Column, Frame};
use super::window::{DriftRow, Role};
use crate::multivariate::reconstruction::{Reconstruction, ReconstructionOptions};
use crate::multivariate::{self, Table};

/// The method's name in results, metrics and alert labels.
pub const DATA_RECONSTRUCTION: &str = "data_reconstruction";

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
    if config.multivariate { tabular_features(schema) } else { Vec::new() }
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

/// NannyML's reconstruction fitted on the reference's tabular features, with its defaults:
/// 65% of the variance, thresholds mean ± 3 std over ten reference chunks. `None` when the
/// model has fewer than two tabular features.
pub fn fit(reference: &Frame, schema: &ModelSchema) -> Option<Result<Reconstruction, String>> {
    let names = tabular_features(schema);
    if names.is_empty() {
        return None;
    }
    Some(with_table(reference, &names, |t| Reconstruction::fit(t, &ReconstructionOptions::default())))
}

/// The window's multivariate drift row: its mean reconstruction error against the reference's
/// band (`threshold` holds the upper bound; a value at or below the lower bound drifts too).
pub fn window_row(fitted: &Result<Reconstruction, String>, current: &Frame, schema: &ModelSchema) -> DriftRow {
    let result = fitted
        .as_ref()
        .map_err(|e| format!("the reference cannot be fitted: {e}"))
        .and_then(|r| with_table(current, &tabular_features(schema), |t| r.window(t)).map(|chunk| (chunk, r.bounds())));
    let (score, threshold, drifted, error) = match result {
        Ok((chunk, bounds)) => (chunk.value, bounds.upper.unwrap_or(f64::NAN), chunk.alert, None),
        Err(e) => (f64::NAN, f64::NAN, false, Some(e)),
    };
    DriftRow {
        column: DATA_RECONSTRUCTION.into(),
        role: Role::Multivariate,
        kind: "multivariate".into(),
        stattest: DATA_RECONSTRUCTION.into(),
        score,
        threshold,
        drifted,
        error,
    }
}
