//! Drift and summaries of every column, in parallel across columns.

use super::config::Settings;
use super::read::{Table, numbers, strings, vectors, view_categories};
use super::summary::{self, Counts, Sorted};
use super::{ColumnPlan, Progress};
use anchorwatch_analyzer::drift::{self, ColumnData, ColumnKind, Prepared, infer_kind, infer_kind_sorted};
use anchorwatch_analyzer::stats;
use anchorwatch_dashboards::report::{ColumnReport, Outcome, Summary};
use anyhow::Context;
use arrow::array::ArrayRef;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Computes every planned column on up to `threads` threads; progress counts from
/// `done_before` of `total`. Columns differ a lot in cost (a
/// Kolmogorov-Smirnov column sorts, a 3-category column only counts), so threads take the next
/// column from a shared counter instead of a fixed chunk each.
pub fn all(
    plan: &[ColumnPlan],
    reference: &Table,
    current: &Table,
    settings: &Settings,
    threads: usize,
    progress: &Progress,
    (done_before, total): (usize, usize),
) -> anyhow::Result<Vec<ColumnReport>> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(done_before);
    let results: Vec<Mutex<Option<anyhow::Result<ColumnReport>>>> = plan.iter().map(|_| Mutex::new(None)).collect();
    let threads = threads.clamp(1, plan.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(column) = plan.get(i) else { break };
                    let result = one(column, &reference.columns[i], &current.columns[i], settings)
                        .with_context(|| format!("column {:?}", column.name));
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                    progress.tick(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            });
        }
    });
    results
        .into_iter()
        .zip(plan)
        .map(|(slot, column)| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow::anyhow!("column {:?}: computation did not finish", column.name)))
        })
        .collect()
}

fn outcome(result: drift::Result<drift::ColumnDriftResult>) -> Outcome {
    match result {
        Ok(r) => Outcome::Computed {
            stattest: r.stattest.name().to_string(),
            score: r.score,
            threshold: r.threshold,
            drifted: r.drifted,
        },
        Err(e) => Outcome::Failed { error: e.to_string() },
    }
}

/// One column: its verdict and both summaries. Arrow chunks are borrowed; numbers are copied
/// once into a contiguous f64 buffer, strings not at all.
fn one(
    column: &ColumnPlan,
    reference: &[ArrayRef],
    current: &[ArrayRef],
    settings: &Settings,
) -> anyhow::Result<ColumnReport> {
    let name = column.name.as_str();
    let (kind, outcome, reference, current) = if column.embedding {
        let (r, c) = (vectors(reference)?, vectors(current)?);
        let result = if r.dims == c.dims || r.dims == 0 || c.dims == 0 {
            drift::embedding::embedding_drift(&r.values, &c.values, r.dims.max(c.dims), &settings.embedding(name))
        } else {
            Err(drift::Error::Stats(stats::Error::Invalid(format!(
                "the reference's embeddings have {} dimensions, the current's {}",
                r.dims, c.dims
            ))))
        };
        let outcome = match result {
            Ok(e) => Outcome::Computed {
                stattest: e.method.to_string(),
                score: e.score,
                threshold: e.threshold,
                drifted: e.drifted,
            },
            Err(e) => Outcome::Failed { error: e.to_string() },
        };
        let (rs, cs) = summary::embeddings(&r, &c);
        (ColumnKind::Embedding, outcome, Summary::Embedding(rs), Summary::Embedding(cs))
    } else if column.numeric {
        let (r, r_null) = numbers(reference)?;
        let (c, c_null) = numbers(current)?;
        // pandas holds an integer column with missing values as floats, and Evidently decides
        // on that dtype: so does an Arrow integer column with nulls here.
        let (ri, ci) = (column.integer.0 && !r_null, column.integer.1 && !c_null);
        let rd = ColumnData::Numerical { values: &r, integer: ri };
        let cd = ColumnData::Numerical { values: &c, integer: ci };
        // Each side is sorted once, here: the summary's quantiles and histogram, the kind
        // inference (distinct integers) and the tests that sort (Wasserstein) all share it.
        let (rs, cs) = (Sorted::new(&r), Sorted::new(&c));
        let kind = settings.kind(name).unwrap_or_else(|| infer_kind_sorted(&rd, &cd, rs.values(), cs.values()));
        let options = settings.options(name, kind);
        let outcome = outcome(drift::column_drift_sorted(&rd, &cd, rs.values(), cs.values(), &options));
        let (rs, cs) = match kind {
            ColumnKind::Numerical => {
                let edges = summary::shared_edges(&rs, &cs, ri && ci);
                (
                    Summary::Numerical(summary::numerical(&rs, &edges)),
                    Summary::Numerical(summary::numerical(&cs, &edges)),
                )
            }
            // Numbers declared as text: the outcome says why no test ran; show their counts.
            ColumnKind::Categorical | ColumnKind::Text | ColumnKind::Embedding => {
                let (rs, cs) = Counts::numbers(&r, &c).summaries();
                (Summary::Categorical(rs), Summary::Categorical(cs))
            }
        };
        (kind, outcome, rs, cs)
    } else if let Some((prepared, missing)) =
        view_categories(reference, current).filter(|_| settings.kind(name).is_none_or(|k| k == ColumnKind::Categorical))
    {
        // Text read as string views: coded by view, never gathered into string slices. (Strings
        // infer as categorical, so only a declared `text` kind takes the path below.)
        let kind = ColumnKind::Categorical;
        let (outcome, counts) = match prepared {
            Ok(prepared) => (
                outcome(drift::prepared_drift(&prepared, kind, None, &settings.options(name, kind))),
                Counts::from_prepared(&prepared, missing),
            ),
            Err(e) => (outcome(Err(e)), None),
        };
        let (rs, cs) = match counts {
            Some(counts) => counts.summaries(),
            None => Counts::strings(&strings(reference)?, &strings(current)?).summaries(),
        };
        (kind, outcome, Summary::Categorical(rs), Summary::Categorical(cs))
    } else {
        let r = strings(reference)?;
        let c = strings(current)?;
        let rd = ColumnData::Categorical(&r);
        let cd = ColumnData::Categorical(&c);
        let kind = settings.kind(name).unwrap_or_else(|| infer_kind(&rd, &cd));
        if kind == ColumnKind::Text {
            let result = drift::text::text_drift(&rd, &cd, &settings.options(name, kind));
            let (words_r, words_c) = match &result {
                Ok(t) => (t.words_reference.clone(), t.words_current.clone()),
                Err(_) => (Vec::new(), Vec::new()),
            };
            let (rs, cs) = summary::texts(&r, &c, words_r, words_c);
            (kind, outcome(result.map(|t| t.result)), Summary::Text(rs), Summary::Text(cs))
        } else {
            // The test's own category counts feed the summary: the values are hashed once.
            let missing = |side: &[Option<&str>]| side.iter().filter(|v| v.is_none()).count() as u64;
            let (outcome, counts) = match Prepared::new(&rd, &cd) {
                Ok(prepared) => (
                    outcome(drift::prepared_drift(&prepared, kind, None, &settings.options(name, kind))),
                    Counts::from_prepared(&prepared, (missing(&r), missing(&c))),
                ),
                Err(e) => (outcome(Err(e)), None),
            };
            let (rs, cs) = counts.unwrap_or_else(|| Counts::strings(&r, &c)).summaries();
            (kind, outcome, Summary::Categorical(rs), Summary::Categorical(cs))
        }
    };
    Ok(ColumnReport {
        name: column.name.clone(),
        role: column.role,
        kind: kind.name().to_string(),
        outcome,
        reference,
        current,
    })
}
