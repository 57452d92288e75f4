//! The features taken together: NannyML's data reconstruction drift of the current file against
//! the reference, the current file read as one chunk (docs/drift.md, "Features taken jointly").

use super::ColumnPlan;
use super::read::{Input, numbers, strings};
use anchorwatch_analyzer::multivariate::reconstruction::{Reconstruction, ReconstructionOptions};
use anchorwatch_analyzer::multivariate::{self, Table};
use anchorwatch_dashboards::report::{ColumnReport, Multivariate, MultivariateOutcome, Role};

/// The method's name in the report.
const DATA_RECONSTRUCTION: &str = "data_reconstruction";

/// One side's feature values, owned, in the forms a reconstruction table borrows.
enum Values {
    Numbers(Vec<f64>),
    Categories(Vec<Option<String>>),
}

/// The data reconstruction verdict over the compared features of kind `num` or `cat` (text and
/// embeddings have tests of their own); nothing with fewer than two such features.
pub async fn data_reconstruction(
    reference: &Input,
    current: &Input,
    plan: &[ColumnPlan],
    columns: &[ColumnReport],
) -> anyhow::Result<Vec<Multivariate>> {
    // (name, numerical?) of the tabular features, as the column tests saw their kinds.
    let features: Vec<(&str, bool)> = (plan.iter().zip(columns))
        .filter(|(p, c)| p.role == Role::Feature && !p.embedding && (c.kind == "num" || c.kind == "cat"))
        .map(|(p, c)| (p.name.as_str(), p.numeric && c.kind == "num"))
        .collect();
    if features.len() < 2 {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = features.iter().map(|(n, _)| *n).collect();
    let (rt, ct) = tokio::join!(reference.read(&names), current.read(&names));
    let (rt, ct) = (rt?, ct?);
    let side = |table: &super::read::Table| -> anyhow::Result<Vec<Values>> {
        (features.iter().zip(&table.columns))
            .map(|((_, numerical), chunks)| {
                Ok(if *numerical {
                    Values::Numbers(numbers(chunks)?.0)
                } else if chunks.iter().all(|c| c.data_type().is_numeric()) {
                    // Numbers of kind `cat` (few distinct integers): categories by their text.
                    let (v, _) = numbers(chunks)?;
                    Values::Categories(v.iter().map(|x| (!x.is_nan()).then(|| x.to_string())).collect())
                } else {
                    Values::Categories(strings(chunks)?.into_iter().map(|s| s.map(str::to_string)).collect())
                })
            })
            .collect()
    };
    let (r, c) = (side(&rt)?, side(&ct)?);
    let outcome = match fit_and_score(&names, &r, &c) {
        Ok((chunk_value, alert, fitted)) => MultivariateOutcome::Computed {
            value: chunk_value,
            lower: fitted.bounds().lower,
            upper: fitted.bounds().upper,
            drifted: alert,
            reference_chunks: fitted.reference_chunks().iter().map(|c| c.value).collect(),
        },
        Err(e) => MultivariateOutcome::Failed { error: e.to_string() },
    };
    let features = names.iter().map(|n| n.to_string()).collect();
    Ok(vec![Multivariate { method: DATA_RECONSTRUCTION.into(), features, outcome }])
}

/// Borrowed categories of each side's categorical columns (empty for numerical ones).
fn borrowed(side: &[Values]) -> Vec<Vec<Option<&str>>> {
    side.iter()
        .map(|v| match v {
            Values::Categories(c) => c.iter().map(|s| s.as_deref()).collect(),
            Values::Numbers(_) => Vec::new(),
        })
        .collect()
}

/// A reconstruction table over one side's columns.
fn table<'a>(
    names: &[&'a str],
    side: &'a [Values],
    strings: &'a [Vec<Option<&'a str>>],
) -> multivariate::Result<Table<'a>> {
    Table::new(names.iter().zip(side).zip(strings).map(|((name, v), s)| match v {
        Values::Numbers(n) => multivariate::Column::numerical(name, n),
        Values::Categories(_) => multivariate::Column::categorical(name, s),
    }))
}

/// Fits on the reference and scores the whole current file as one chunk.
fn fit_and_score(
    names: &[&str],
    reference: &[Values],
    current: &[Values],
) -> multivariate::Result<(f64, bool, Reconstruction)> {
    let (rb, cb) = (borrowed(reference), borrowed(current));
    let fitted = Reconstruction::fit(&table(names, reference, &rb)?, &ReconstructionOptions::default())?;
    let chunk = fitted.window(&table(names, current, &cb)?)?;
    Ok((chunk.value, chunk.alert, fitted))
}
