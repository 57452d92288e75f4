//! Column drift: choosing a test per column and computing its verdict, as Evidently 0.7 does.
//!
//! The flow per column is Evidently's `get_one_column_drift`: infer the column kind
//! ([`infer_kind`]), drop NaN and ±inf, refuse an empty side, pick the test (an override or
//! [`default_stattest`]), compute its score and compare it with the threshold in the test's
//! own direction ([`StatTest::is_drift`]). [`dataset_drift`] then applies the share rule.
//!
//! Everything here is a pure function of borrowed slices: columns can be processed on any
//! number of threads at once, and a column is copied only when NaN or ±inf must be dropped.

pub mod embedding;
mod stattest;
pub mod text;

pub use stattest::StatTest;

use crate::hash::FastMap;
use crate::stats;
use std::borrow::Cow;

/// Why a column's drift cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A side has no values once NaN and ±inf are dropped (Evidently raises the same).
    #[error("the {0} column is empty after dropping missing and infinite values")]
    EmptyColumn(&'static str),
    /// Reference and current hold different data types (numbers vs strings).
    #[error("reference and current columns have different data types")]
    TypeMismatch,
    /// The chosen test does not accept this column kind.
    #[error("stattest {test} does not apply to {kind} columns")]
    NotApplicable {
        /// The test's Evidently name.
        test: &'static str,
        /// The column kind.
        kind: &'static str,
    },
    /// A column declared as text holds numbers.
    #[error("a text column must hold strings")]
    NotText,
    /// The statistic itself refused the data.
    #[error(transparent)]
    Stats(#[from] stats::Error),
}

/// Result alias for drift computations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One column's values, borrowed from wherever they live (Arrow buffers, a parquet page).
#[derive(Debug, Clone, Copy)]
pub enum ColumnData<'a> {
    /// Numbers; NaN marks a missing value. `integer` says the column's type is an integer type,
    /// which matters twice in Evidently: integer columns with at most 5 distinct values are
    /// categorical, and histogram bins of integer data are at least 1 wide.
    Numerical {
        /// The values.
        values: &'a [f64],
        /// Whether the column has an integer data type (and so no missing values).
        integer: bool,
    },
    /// Strings (or booleans rendered as strings); `None` marks a missing value.
    Categorical(&'a [Option<&'a str>]),
}

/// The kind Evidently assigns a column, which decides the tests that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// Continuous values: distribution tests on the numbers themselves.
    Numerical,
    /// Categories: tests on counts per category.
    Categorical,
    /// Free text: the domain-classifier text-content drift ([`text`]). Never inferred, as in
    /// Evidently's column mapping: a column is text only when declared so.
    Text,
    /// Fixed-length vectors: one of Evidently's embedding drift methods over the whole vector
    /// ([`embedding`]). Declared by the schema or read from a list column, never inferred.
    Embedding,
}

impl ColumnKind {
    /// "num", "cat" or "text", Evidently's short names, and "embedding".
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Numerical => "num",
            ColumnKind::Categorical => "cat",
            ColumnKind::Text => "text",
            ColumnKind::Embedding => "embedding",
        }
    }
}

/// Per-column choices; every field falls back to Evidently's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnOptions {
    /// Force the column kind (Evidently's column mapping) instead of inferring it.
    pub kind: Option<ColumnKind>,
    /// Use this test instead of the default choice.
    pub stattest: Option<StatTest>,
    /// Use this threshold instead of the test's default.
    pub threshold: Option<f64>,
}

/// One column's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnDriftResult {
    /// The column kind the test ran under.
    pub kind: ColumnKind,
    /// The test that ran.
    pub stattest: StatTest,
    /// Its score: a p-value or a distance, per [`StatTest::is_pvalue`].
    pub score: f64,
    /// The threshold compared against.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
}

/// Dataset-level verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetDrift {
    /// Columns that drifted.
    pub drifted_columns: usize,
    /// Columns examined.
    pub columns: usize,
    /// drifted_columns / columns (NaN for no columns).
    pub share: f64,
    /// share ≥ the share threshold.
    pub drifted: bool,
}

/// Evidently's dataset drift rule: drifted when the share of drifted columns is at least
/// `share_threshold` (Evidently's default 0.5).
pub fn dataset_drift(results: &[ColumnDriftResult], share_threshold: f64) -> DatasetDrift {
    let drifted_columns = results.iter().filter(|r| r.drifted).count();
    let columns = results.len();
    let share = drifted_columns as f64 / columns as f64;
    DatasetDrift { drifted_columns, columns, share, drifted: share >= share_threshold }
}

/// Evidently's column-type inference for plain feature columns: integer columns whose
/// reference (or, when the reference has none, current) holds at most 5 distinct values are
/// categorical, other numbers numerical, strings categorical. Missing values do not count.
/// Text is never inferred (Evidently's legacy column mapping declares it).
pub fn infer_kind(reference: &ColumnData<'_>, current: &ColumnData<'_>) -> ColumnKind {
    match (reference, current) {
        (ColumnData::Numerical { values: r, integer }, ColumnData::Numerical { values: c, .. }) => {
            if *integer {
                let n_ref = count_distinct_finite(r);
                let nunique = if n_ref > 0 { n_ref } else { count_distinct_finite(c) };
                if nunique <= 5 {
                    return ColumnKind::Categorical;
                }
            }
            ColumnKind::Numerical
        }
        _ => ColumnKind::Categorical,
    }
}

fn count_distinct_finite(values: &[f64]) -> usize {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    stats::binning::n_unique(&v)
}

/// Evidently 0.7's default test for a column (`_get_default_stattest`), with `n_reference`
/// the reference rows and `n_unique` the distinct values of reference and current together.
///
/// n ≤ 1000: numerical with more than 5 values → `ks`; 3–5 values, or categorical with more
/// than 2 → `chisquare`; otherwise `z`. n > 1000: numerical with more than 5 values →
/// `wasserstein`; otherwise `jensenshannon`. Text: `perc_text_content_drift` for n ≤ 1000,
/// `abs_text_content_drift` above.
pub fn default_stattest(kind: ColumnKind, n_reference: usize, n_unique: usize) -> StatTest {
    if kind == ColumnKind::Text {
        return if n_reference > 1000 { StatTest::AbsTextContentDrift } else { StatTest::PercTextContentDrift };
    }
    if n_reference <= 1000 {
        match kind {
            ColumnKind::Numerical if n_unique > 5 => StatTest::Ks,
            _ if n_unique > 2 => StatTest::ChiSquare,
            _ => StatTest::Z,
        }
    } else {
        match kind {
            ColumnKind::Numerical if n_unique > 5 => StatTest::Wasserstein,
            _ => StatTest::JensenShannon,
        }
    }
}

/// A column with missing and infinite values dropped, ready for any test.
#[derive(Debug, Clone)]
pub enum Prepared<'a> {
    /// Finite numbers of each side.
    Numerical {
        /// Reference values (borrowed when nothing had to be dropped).
        reference: Cow<'a, [f64]>,
        /// Current values.
        current: Cow<'a, [f64]>,
        /// Integer data type.
        integer: bool,
    },
    /// Category counts over the sorted union of categories of both sides.
    Categorical {
        /// The categories, sorted (numbers numerically, strings lexicographically).
        keys: Vec<String>,
        /// Reference count per key.
        reference: Vec<u64>,
        /// Current count per key.
        current: Vec<u64>,
        /// Index into `keys` of every reference value, in data order (permutation tests).
        reference_codes: Vec<u32>,
        /// Index into `keys` of every current value, in data order.
        current_codes: Vec<u32>,
    },
}

impl<'a> Prepared<'a> {
    /// Drops NaN/±inf (numbers) or `None` (strings) from both sides; errors when a side ends
    /// up empty, as Evidently does.
    pub fn new(reference: &ColumnData<'a>, current: &ColumnData<'a>) -> Result<Self> {
        match (reference, current) {
            (ColumnData::Numerical { values: r, integer: ri }, ColumnData::Numerical { values: c, integer: ci }) => {
                let reference = finite(r);
                if reference.is_empty() {
                    return Err(Error::EmptyColumn("reference"));
                }
                let current = finite(c);
                if current.is_empty() {
                    return Err(Error::EmptyColumn("current"));
                }
                Ok(Prepared::Numerical { reference, current, integer: *ri && *ci })
            }
            (ColumnData::Categorical(r), ColumnData::Categorical(c)) => {
                // One hash lookup per value: each category gets a code in order of first sight,
                // then the codes are renumbered in the categories' sorted order.
                let mut seen: FastMap<&str, u32> = FastMap::default();
                let mut first_seen: Vec<&str> = Vec::new();
                let mut code_of = |v: &'a str| {
                    *seen.entry(v).or_insert_with(|| {
                        first_seen.push(v);
                        (first_seen.len() - 1) as u32
                    })
                };
                let reference_codes: Vec<u32> = r.iter().flatten().map(|&v| code_of(v)).collect();
                let current_codes: Vec<u32> = c.iter().flatten().map(|&v| code_of(v)).collect();
                Self::from_codes(&first_seen, reference_codes, current_codes)
            }
            _ => Err(Error::TypeMismatch),
        }
    }

    /// A categorical column from codes given in order of first sight: category `first_seen[k]`
    /// has code `k`, and each side lists the codes of its non-missing values in data order.
    /// Renumbers the codes in the categories' sorted order and counts them, as [`Prepared::new`]
    /// does after its own coding; errors when a side is empty.
    pub fn from_codes(
        first_seen: &[impl AsRef<str>],
        mut reference_codes: Vec<u32>,
        mut current_codes: Vec<u32>,
    ) -> Result<Prepared<'static>> {
        let mut order: Vec<u32> = (0..first_seen.len() as u32).collect();
        order.sort_by(|&a, &b| first_seen[a as usize].as_ref().cmp(first_seen[b as usize].as_ref()));
        let mut rank = vec![0u32; order.len()];
        for (sorted_code, &code) in order.iter().enumerate() {
            rank[code as usize] = sorted_code as u32;
        }
        let (mut reference, mut current) = (vec![0u64; order.len()], vec![0u64; order.len()]);
        for (codes, counts) in [(&mut reference_codes, &mut reference), (&mut current_codes, &mut current)] {
            for code in codes.iter_mut() {
                *code = rank[*code as usize];
                counts[*code as usize] += 1;
            }
        }
        let prepared = Prepared::Categorical {
            keys: order.iter().map(|&code| first_seen[code as usize].as_ref().to_string()).collect(),
            reference,
            current,
            reference_codes,
            current_codes,
        };
        prepared.check_non_empty()?;
        Ok(prepared)
    }

    fn check_non_empty(&self) -> Result<()> {
        if let Prepared::Categorical { reference, current, .. } = self {
            if reference.iter().sum::<u64>() == 0 {
                return Err(Error::EmptyColumn("reference"));
            }
            if current.iter().sum::<u64>() == 0 {
                return Err(Error::EmptyColumn("current"));
            }
        }
        Ok(())
    }

    /// Reference rows after cleaning.
    pub fn n_reference(&self) -> usize {
        match self {
            Prepared::Numerical { reference, .. } => reference.len(),
            Prepared::Categorical { reference, .. } => reference.iter().sum::<u64>() as usize,
        }
    }

    /// [`Prepared::n_unique`], but counting stops past `cap`: enough for the default test choice,
    /// which only asks whether there are more than 2 or 5 values, without sorting millions.
    pub fn n_unique_at_most(&self, cap: usize) -> usize {
        match self {
            Prepared::Numerical { reference, current, .. } => {
                let mut seen: Vec<f64> = Vec::with_capacity(cap + 1);
                for &x in reference.iter().chain(current.iter()) {
                    // `==` merges −0.0 and 0.0, as value_counts does.
                    if !seen.contains(&x) {
                        seen.push(x);
                        if seen.len() > cap {
                            break;
                        }
                    }
                }
                seen.len()
            }
            Prepared::Categorical { keys, .. } => keys.len(),
        }
    }

    /// Category code of every value of each side, in data order, indexing the sorted union.
    pub fn codes(&self) -> (Vec<u32>, Vec<u32>) {
        match self {
            Prepared::Numerical { reference, current, .. } => {
                let (keys, _, _) = stats::binning::value_counts(reference, current);
                let code = |side: &[f64]| side.iter().map(|v| keys.partition_point(|k| k < v) as u32).collect();
                (code(reference), code(current))
            }
            Prepared::Categorical { reference_codes, current_codes, .. } => {
                (reference_codes.clone(), current_codes.clone())
            }
        }
    }

    /// Category counts over the union (numbers: one category per distinct value).
    pub fn counts(&self) -> (Vec<u64>, Vec<u64>) {
        match self {
            Prepared::Numerical { reference, current, .. } => {
                let (_, r, c) = stats::binning::value_counts(reference, current);
                (r, c)
            }
            Prepared::Categorical { reference, current, .. } => (reference.clone(), current.clone()),
        }
    }
}

fn finite(values: &[f64]) -> Cow<'_, [f64]> {
    if values.iter().all(|v| v.is_finite()) {
        Cow::Borrowed(values)
    } else {
        Cow::Owned(values.iter().copied().filter(|v| v.is_finite()).collect())
    }
}

/// Drift of one column, as Evidently 0.7's `ColumnDriftMetric` computes it.
pub fn column_drift(
    reference: &ColumnData<'_>,
    current: &ColumnData<'_>,
    options: &ColumnOptions,
) -> Result<ColumnDriftResult> {
    column_drift_inner(reference, current, None, options)
}

/// [`column_drift`] of a numerical column whose finite values the caller has already sorted
/// (`sorted_reference`, `sorted_current`: NaN and ±inf dropped, ascending in `total_cmp`
/// order), e.g. for its summary quantiles: the tests that sort use them instead of sorting
/// again. Same results as [`column_drift`]; with string data the sorted slices are ignored.
pub fn column_drift_sorted(
    reference: &ColumnData<'_>,
    current: &ColumnData<'_>,
    sorted_reference: &[f64],
    sorted_current: &[f64],
    options: &ColumnOptions,
) -> Result<ColumnDriftResult> {
    column_drift_inner(reference, current, Some((sorted_reference, sorted_current)), options)
}

/// [`infer_kind`] when the reference's and current's finite values are already sorted: the
/// distinct count of an integer column is a linear scan instead of a sort.
pub fn infer_kind_sorted(
    reference: &ColumnData<'_>,
    current: &ColumnData<'_>,
    sorted_reference: &[f64],
    sorted_current: &[f64],
) -> ColumnKind {
    match (reference, current) {
        (ColumnData::Numerical { integer: true, .. }, ColumnData::Numerical { .. }) => {
            // Integer columns carry no NaN or ±inf, so the sorted finite values are all of them.
            let distinct = |v: &[f64]| stats::binning::n_unique_sorted(v);
            let n_ref = distinct(sorted_reference);
            let nunique = if n_ref > 0 { n_ref } else { distinct(sorted_current) };
            if nunique <= 5 { ColumnKind::Categorical } else { ColumnKind::Numerical }
        }
        _ => infer_kind(reference, current),
    }
}

fn column_drift_inner(
    reference: &ColumnData<'_>,
    current: &ColumnData<'_>,
    sorted: Option<(&[f64], &[f64])>,
    options: &ColumnOptions,
) -> Result<ColumnDriftResult> {
    let kind = options.kind.unwrap_or_else(|| infer_kind(reference, current));
    if kind == ColumnKind::Text {
        return text::text_drift(reference, current, options).map(|t| t.result);
    }
    if kind == ColumnKind::Embedding {
        // Vectors are tested as a whole by [`embedding::embedding_drift`], never per value.
        let test = options.stattest.map_or("a column test", StatTest::name);
        return Err(Error::NotApplicable { test, kind: kind.name() });
    }
    let prepared = Prepared::new(reference, current)?;
    prepared_drift(&prepared, kind, sorted, options)
}

/// [`column_drift`] of a column already [prepared](Prepared::new) as `kind`, for a caller that
/// also needs the prepared counts (a report's category summary) and should not count twice.
/// `sorted` as in [`column_drift_sorted`], or `None`.
pub fn prepared_drift(
    prepared: &Prepared<'_>,
    kind: ColumnKind,
    sorted: Option<(&[f64], &[f64])>,
    options: &ColumnOptions,
) -> Result<ColumnDriftResult> {
    let stattest = match options.stattest {
        Some(t) => {
            if !t.applies_to(kind) {
                return Err(Error::NotApplicable { test: t.name(), kind: kind.name() });
            }
            t
        }
        None => default_stattest(kind, prepared.n_reference(), prepared.n_unique_at_most(5)),
    };
    let threshold = options.threshold.unwrap_or_else(|| stattest.default_threshold());
    let score = match (prepared, sorted) {
        (Prepared::Numerical { reference, .. }, Some((r, c)))
            if stattest == StatTest::Wasserstein && kind == ColumnKind::Numerical =>
        {
            stats::wasserstein::wasserstein_sorted(reference, r, c)?
        }
        _ => stattest.score(prepared, kind)?,
    };
    Ok(ColumnDriftResult { kind, stattest, score, threshold, drifted: stattest.is_drift(score, threshold) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: &[f64]) -> ColumnData<'_> {
        ColumnData::Numerical { values: v, integer: false }
    }

    #[test]
    fn default_choice_regimes() {
        use ColumnKind::*;
        assert_eq!(default_stattest(Numerical, 1000, 6), StatTest::Ks);
        assert_eq!(default_stattest(Numerical, 1000, 5), StatTest::ChiSquare);
        assert_eq!(default_stattest(Numerical, 1000, 2), StatTest::Z);
        assert_eq!(default_stattest(Categorical, 10, 3), StatTest::ChiSquare);
        assert_eq!(default_stattest(Numerical, 1001, 6), StatTest::Wasserstein);
        assert_eq!(default_stattest(Numerical, 1001, 5), StatTest::JensenShannon);
        assert_eq!(default_stattest(Categorical, 5000, 50), StatTest::JensenShannon);
    }

    #[test]
    fn integers_with_few_values_are_categorical() {
        let v = [1.0, 2.0, 3.0, 1.0];
        let i = ColumnData::Numerical { values: &v, integer: true };
        assert_eq!(infer_kind(&i, &i), ColumnKind::Categorical);
        assert_eq!(infer_kind(&num(&v), &num(&v)), ColumnKind::Numerical);
    }

    #[test]
    fn nan_and_inf_are_dropped_and_empty_is_an_error() {
        let r = [f64::NAN, f64::INFINITY];
        let c = [1.0];
        let e = column_drift(&num(&r), &num(&c), &ColumnOptions::default()).unwrap_err();
        assert_eq!(e, Error::EmptyColumn("reference"));
    }

    #[test]
    fn identical_columns_do_not_drift() {
        let v: Vec<f64> = (0..100).map(f64::from).collect();
        let r = column_drift(&num(&v), &num(&v), &ColumnOptions::default()).unwrap();
        assert_eq!(r.stattest, StatTest::Ks);
        assert!(!r.drifted);
        let ds = dataset_drift(&[r], 0.5);
        assert!(!ds.drifted);
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let v: Vec<f64> = (0..100).map(f64::from).collect();
        let opts = ColumnOptions { stattest: Some(StatTest::Psi), threshold: Some(0.2), ..Default::default() };
        let r = column_drift(&num(&v), &num(&v), &opts).unwrap();
        assert_eq!((r.stattest, r.threshold), (StatTest::Psi, 0.2));
        let bad = ColumnOptions { stattest: Some(StatTest::ChiSquare), ..Default::default() };
        assert!(column_drift(&num(&v), &num(&v), &bad).is_err());
    }
}
