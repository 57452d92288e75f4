//! Text-content drift of one column: Evidently's domain classifier
//! ([`crate::stats::domain_classifier`]) behind `abs_text_content_drift` and
//! `perc_text_content_drift`, with the typical words the report shows.

use super::{ColumnData, ColumnDriftResult, ColumnKind, ColumnOptions, Error, Result, StatTest};
use crate::stats::domain_classifier;

/// A text column's verdict and what explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDrift {
    /// The verdict, score = the classifier's ROC AUC.
    pub result: ColumnDriftResult,
    /// For `perc_text_content_drift`: the random classifiers' AUC percentile the score had to
    /// exceed.
    pub random_percentile: Option<f64>,
    /// Words most typical of the current texts (largest positive weights), strongest first.
    pub words_current: Vec<String>,
    /// Words most typical of the reference texts (most negative weights), strongest first.
    pub words_reference: Vec<String>,
}

/// Drift of a text column as Evidently 0.7 computes it: missing texts dropped, the test
/// `options.stattest` or by default `perc_text_content_drift` for up to 1000 reference texts
/// and `abs_text_content_drift` above, the threshold `options.threshold` or the test's own.
pub fn text_drift(reference: &ColumnData<'_>, current: &ColumnData<'_>, options: &ColumnOptions) -> Result<TextDrift> {
    let (ColumnData::Categorical(r), ColumnData::Categorical(c)) = (reference, current) else {
        return Err(Error::NotText);
    };
    let r: Vec<&str> = r.iter().flatten().copied().collect();
    if r.is_empty() {
        return Err(Error::EmptyColumn("reference"));
    }
    let c: Vec<&str> = c.iter().flatten().copied().collect();
    if c.is_empty() {
        return Err(Error::EmptyColumn("current"));
    }
    let stattest = match options.stattest {
        Some(t) if !t.applies_to(ColumnKind::Text) => {
            return Err(Error::NotApplicable { test: t.name(), kind: ColumnKind::Text.name() });
        }
        Some(t) => t,
        None => super::default_stattest(ColumnKind::Text, r.len(), 0),
    };
    let threshold = options.threshold.unwrap_or_else(|| stattest.default_threshold());
    let classifier = domain_classifier::domain_classifier(&r, &c)?;
    let score = classifier.roc_auc;
    let (drifted, random_percentile) = if stattest == StatTest::PercTextContentDrift {
        let p = domain_classifier::random_classifier_percentile(&classifier.test_labels, 1.0 - threshold)?;
        (score > p, Some(p))
    } else {
        (stattest.is_drift(score, threshold), None)
    };
    Ok(TextDrift {
        result: ColumnDriftResult { kind: ColumnKind::Text, stattest, score, threshold, drifted },
        random_percentile,
        words_current: classifier.words_current,
        words_reference: classifier.words_reference,
    })
}
