//! The features taken together: NannyML's data reconstruction drift (and, when the config asks,
//! its domain classifier) of the current file against the reference, the current file read as
//! one chunk (docs/drift.md, "Features taken jointly").

use super::ColumnPlan;
use super::read::{Input, numbers, strings};
use anchorwatch_analyzer::multivariate::domain_classifier::{DomainClassifier, DomainClassifierOptions};
use anchorwatch_analyzer::multivariate::reconstruction::{Reconstruction, ReconstructionOptions};
use anchorwatch_analyzer::multivariate::{self, Bounds, Table};
use anchorwatch_dashboards::report::{ColumnReport, Multivariate, MultivariateOutcome, Role};

/// The methods' names in the report.
const DATA_RECONSTRUCTION: &str = "data_reconstruction";
/// See [`DATA_RECONSTRUCTION`].
const DOMAIN_CLASSIFIER: &str = "domain_classifier";

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
    domain_classifier: bool,
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
    let (rb, cb) = (borrowed(&r), borrowed(&c));
    let (rt, ct) = (table(&names, &r, &rb), table(&names, &c, &cb));
    let tables = || -> multivariate::Result<(&Table<'_>, &Table<'_>)> {
        Ok((rt.as_ref().map_err(Clone::clone)?, ct.as_ref().map_err(Clone::clone)?))
    };
    let features: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let entry = |method: &str, result: multivariate::Result<Computed>| Multivariate {
        method: method.into(),
        features: features.clone(),
        outcome: match result {
            Ok(c) => MultivariateOutcome::Computed {
                value: c.value,
                lower: c.bounds.lower,
                upper: c.bounds.upper,
                drifted: c.drifted,
                reference_chunks: c.reference_chunks,
            },
            Err(e) => MultivariateOutcome::Failed { error: e.to_string() },
        },
    };
    let mut out = vec![entry(
        DATA_RECONSTRUCTION,
        tables().and_then(|(r, c)| {
            let fitted = Reconstruction::fit(r, &ReconstructionOptions::default())?;
            let chunk = fitted.window(c)?;
            let reference_chunks = fitted.reference_chunks().iter().map(|c| c.value).collect();
            Ok(Computed { value: chunk.value, bounds: fitted.bounds(), drifted: chunk.alert, reference_chunks })
        }),
    )];
    if domain_classifier {
        out.push(entry(
            DOMAIN_CLASSIFIER,
            tables().and_then(|(r, c)| {
                let fitted = DomainClassifier::fit(r, &DomainClassifierOptions::default())?;
                let chunk = fitted.window(c)?;
                let reference_chunks = fitted.reference_chunks().iter().map(|c| c.value).collect();
                Ok(Computed { value: chunk.value, bounds: fitted.bounds(), drifted: chunk.alert, reference_chunks })
            }),
        ));
    }
    Ok(out)
}

/// A method's result on the current file.
struct Computed {
    value: f64,
    bounds: Bounds,
    drifted: bool,
    reference_chunks: Vec<f64>,
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
