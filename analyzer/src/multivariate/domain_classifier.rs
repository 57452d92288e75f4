//! NannyML 0.13.1's domain classifier (`DomainClassifierCalculator`,
//! `nannyml/drift/multivariate/domain_classifier/calculator.py`), with the project's own
//! gradient-boosted trees ([`anchorwatch_trainer`]) where NannyML trains LightGBM.
//!
//! What it detects: a classifier learns to tell a chunk's rows from the reference's, and its
//! cross-validated ROC AUC is the chunk's value. 0.5 means the rows cannot be told apart; the
//! closer to 1, the more the chunk differs, in any feature or in how the features relate. Unlike
//! [`reconstruction`](super::reconstruction), which sees linear structure only, trees see any
//! change a classifier can learn, at the cost of training k classifiers per chunk.
//!
//! NannyML's rules, matched (line numbers of `calculator.py`):
//!
//! 1. The data (`_calculate_chunk`, 299–314): for a reference chunk, the whole reference with its
//!    chunk's rows labelled 1 and the others 0; for any other chunk (an analysis chunk, a
//!    window), the reference rows labelled 0 followed by the chunk's rows labelled 1.
//! 2. Folds (323–340): scikit-learn's `StratifiedKFold(n_splits=cv_folds_num)` with its defaults,
//!    so no shuffle: classes are numbered by first appearance, the test-fold sizes come from a
//!    round robin over the labels sorted by that number, and each class's rows go to the folds in
//!    blocks, in row order (`_make_test_folds`, `sklearn/model_selection/_split.py`). Each fold's
//!    model is trained on the other folds and predicts the probability of label 1 for its rows.
//!    Refused, as scikit-learn refuses: fewer rows than folds, or both labels on fewer rows than
//!    folds.
//! 3. The value (341–352): `roc_auc_score` of the out-of-fold predictions, i.e. the
//!    Mann–Whitney statistic with ties counted half. When every row has one label (a reference
//!    chunk that is the whole reference) it is NaN, and never alerts: NannyML catches
//!    scikit-learn's `ValueError` to return 0.5 there, but scikit-learn 1.9.1's `roc_auc_score`
//!    warns and returns NaN instead, which is what NannyML 0.13.1 gives.
//! 4. Thresholds (93, 197–198, 354–361): a constant band 0.45–0.65 by default; any
//!    [`Threshold`] computed on the reference chunks' values, then clamped to the AUC's range as
//!    `calculate_threshold_values` does with `override_using_none=False` (a lower bound at or
//!    below 0 becomes 0, an upper bound at or above 1 becomes 1).
//! 5. Alerts (363–375): `value > upper or value < lower`, strict, so a value equal to a bound
//!    does not alert ([`DomainClassifier::alert`]; not [`Bounds::alert`], which is
//!    reconstruction's rule).
//!
//! Where it differs: the classifier. NannyML trains `LGBMClassifier` (its
//! `DEFAULT_LGBM_HYPERPARAMS`, 38–59: 100 rounds, learning rate 0.1, 31 leaves grown leaf-wise,
//! at least 20 rows per leaf, no L2) on ordinal-coded categories (`OrdinalEncoder` fitted on the
//! chunk's data, 394–403) that LightGBM splits natively, and on numbers whose missing values
//! LightGBM sends to the better side. Here each fold trains [`anchorwatch_trainer`]'s gradient
//! boosting with [`DomainClassifier::classifier_spec`], chosen once to resemble those defaults and
//! not tuned on the test data: 100 rounds, learning rate 0.1, trees grown level by level to depth
//! 5 (at most 32 leaves), at least 20 rows per leaf, no L2, 255 histogram bins. Categories become
//! one-hot columns (the trainer's: the 100 most frequent of the training rows, an empty string
//! read as missing; LightGBM's own split for up to 4 categories is one category against the
//! rest, which a one-hot column is), a missing category is all zeros, and a numerical column with
//! a missing value gets a 0/1 "missing" column beside its mean-imputed values, so that a tree
//! can send missing values either way as LightGBM does. A training fold holding one label only
//! predicts 1e-15 for its rows, as LightGBM does (its label encoder makes the only class 0, and
//! `BoostFromScore` clamps the share of positives to 1e-15). Values are float32 to the trees (a
//! number whose float32 rounding is infinite is refused like ±inf).
//!
//! So the AUC is NannyML's within a tolerance, not to rounding: `tests/domain_classifier_golden.rs`
//! runs both on NannyML's bundled datasets and edge cases, holds every AUC within 0.05 of
//! NannyML's (0.035 at most observed on the bundled datasets, in chunks of 500 rows; less noise
//! with more rows) and every verdict equal, except where NannyML's AUC lies within 0.05 of a
//! threshold (those chunks are counted).
//!
//! Not offered: NannyML's `hyperparameters` and `tune_hyperparameters` (the classifier is fixed),
//! `treat_as_categorical` (a [`Table`] column's kind decides), and timestamps (rows are taken in
//! their order, as NannyML takes them without a timestamp column). An open side of a constant
//! threshold never alerts; NannyML 0.13.1 fails on it (`value < None`, 366–371).
//!
//! Costs, for a reference of n rows and a chunk of m, d features making d′ design columns
//! (numbers, missing flags, one-hot categories), k folds, T = 100 trees of depth D = 5 and
//! B = 255 bins: a chunk trains k models on (k−1)/k·(n + m) rows each, O(k·T·(D·(n + m)·d′ +
//! 2^D·d′·B)) time, plus O(k·(n + m)·d) to copy the rows and O((n + m)·log(n + m)) for the AUC.
//! Fitting measures every reference chunk that way with m = 0: c chunks cost c times one
//! window. The fitted model keeps the reference rows (O(n·d)) and no trained tree: every
//! window trains its own classifiers.
//!
//! Inputs are borrowed columns ([`Table`]), as reconstruction's: numerical as `&[f64]` with NaN
//! for a missing value, categorical as `&[Option<&str>]` with `None` for a missing value.

use std::ops::Range;

use anchorwatch_trainer::{
    Column as TrainColumn, Data, Feature as TrainFeature, GradientBoostingSpec, Predictions, Target, TrainData,
    TrainSpec,
};
use serde::{Deserialize, Deserializer, Serialize};

use super::{Bounds, Chunking, Kind, MultivariateError, Result, Table, Threshold, Values, invalid};

/// What LightGBM predicts after training on one class only: the share of positives clamped to
/// `kEpsilon` (`BinaryLogloss::BoostFromScore`).
const ONE_CLASS_PREDICTION: f64 = 1e-15;

/// Options of [`DomainClassifier::fit`], NannyML's defaults when absent.
///
/// Example (JSON): `{"cv_folds": 5, "chunking": {"by": {"size": 5000}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainClassifierOptions {
    /// Cross-validation folds per chunk, at least 2: NannyML's `cv_folds_num`. Default 5.
    pub cv_folds: usize,
    /// How the reference (and an analysis set given to [`DomainClassifier::chunks`]) is cut
    /// into chunks. Default: ten chunks.
    pub chunking: Chunking,
    /// How the alert band is set. Default: constant, 0.45 to 0.65 (NannyML's
    /// `ConstantThreshold(lower=0.45, upper=0.65)`).
    pub threshold: Threshold,
}

impl Default for DomainClassifierOptions {
    fn default() -> Self {
        DomainClassifierOptions {
            cv_folds: 5,
            chunking: Chunking::default(),
            threshold: Threshold::Constant { lower: Some(0.45), upper: Some(0.65) },
        }
    }
}

impl DomainClassifierOptions {
    /// Checks every option's range; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.cv_folds < 2 {
            return Err(invalid("cv_folds", format!("must be at least 2, got {}", self.cv_folds)));
        }
        self.chunking.validate()?;
        self.threshold.validate()
    }
}

/// A chunk's (or a window's) result, as a row of NannyML's result frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunk {
    /// The chunk's first row in the table it was cut from (NannyML's `start_index`; 0 for a
    /// window).
    pub start: usize,
    /// Its number of rows (`end_index` is `start + rows − 1`).
    pub rows: usize,
    /// The cross-validated ROC AUC of the classifier telling its rows from the reference's; NaN
    /// for a reference chunk that holds every reference row (one label only).
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// Whether the value lies strictly outside the band ([`DomainClassifier::alert`]).
    pub alert: bool,
}

/// A reference column, owned: the classifier of every chunk trains on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The column's name.
    pub name: String,
    /// The reference's values.
    pub values: Stored,
}

/// A reference column's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "values", rename_all = "snake_case")]
pub enum Stored {
    /// Numbers; NaN (`null` in JSON) is missing.
    Numerical(#[serde(with = "nan_as_null::all")] Vec<f64>),
    /// Categories; `None` is missing.
    Categorical(Vec<Option<String>>),
}

impl Stored {
    fn len(&self) -> usize {
        match self {
            Stored::Numerical(v) => v.len(),
            Stored::Categorical(v) => v.len(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Stored::Numerical(_) => Kind::Numerical,
            Stored::Categorical(_) => Kind::Categorical,
        }
    }
}

impl Feature {
    /// The feature's kind.
    pub fn kind(&self) -> Kind {
        self.values.kind()
    }
}

/// What a fitted domain classifier holds; [`DomainClassifier`] checks it when deserialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    options: DomainClassifierOptions,
    features: Vec<Feature>,
    /// The reference chunks' results.
    reference: Vec<Chunk>,
    /// The alert band.
    bounds: Bounds,
}

/// A domain classifier fitted on a reference: see the [module](self) documentation.
///
/// Serialises to JSON (or any serde format) with its reference rows and reference chunks' results,
/// so the costly reference chunks are not measured again; deserialising checks that the shapes fit
/// together.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct DomainClassifier {
    model: Model,
}

impl<'de> Deserialize<'de> for DomainClassifier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let model = Model::deserialize(deserializer)?;
        model.check().map_err(serde::de::Error::custom)?;
        Ok(DomainClassifier { model })
    }
}

impl DomainClassifier {
    /// The gradient boosting every fold trains, chosen once to resemble NannyML's LightGBM
    /// defaults (see the [module](self) documentation).
    pub fn classifier_spec() -> GradientBoostingSpec {
        GradientBoostingSpec {
            n_trees: 100,
            max_depth: 5,
            learning_rate: 0.1,
            min_samples_leaf: 20,
            l2: 0.0,
            min_gain: 0.0,
            max_bins: 255,
        }
    }

    /// Keeps `reference` (its columns, in order, are the features), measures its chunks and sets
    /// the alert band, as NannyML's `fit`.
    ///
    /// Errors: an invalid option; no feature; a reference with no rows or too few for the
    /// chunking; an infinite value; a reference chunk the folds refuse (fewer reference rows
    /// than folds, or both labels on fewer rows than folds); a standard-deviation threshold
    /// over values that are all NaN (a single chunk of every row; NannyML's thresholds are NaN
    /// there, and nothing alerts).
    pub fn fit(reference: &Table<'_>, options: &DomainClassifierOptions) -> Result<Self> {
        options.validate()?;
        if reference.columns().is_empty() {
            return Err(MultivariateError::NoFeatures);
        }
        let ranges = options.chunking.split(reference.rows(), "reference")?;
        let mut features = Vec::with_capacity(reference.columns().len());
        for column in reference.columns() {
            let values = match column.values {
                Values::Numerical(v) => {
                    finite(column.name, v)?;
                    Stored::Numerical(v.to_vec())
                }
                Values::Categorical(v) => Stored::Categorical(v.iter().map(|s| s.map(str::to_string)).collect()),
            };
            features.push(Feature { name: column.name.to_string(), values });
        }
        let mut model = Model { options: options.clone(), features, reference: Vec::new(), bounds: Bounds::default() };
        let mut chunks = Vec::with_capacity(ranges.len());
        for range in ranges {
            let labels: Vec<bool> = (0..reference.rows()).map(|i| range.contains(&i)).collect();
            let value = model.auc(None, &labels, "reference")?;
            chunks.push(Chunk { start: range.start, rows: range.len(), value, alert: false });
        }
        let values: Vec<f64> = chunks.iter().map(|c| c.value).collect();
        let bounds = options.threshold.bounds(&values, None)?;
        model.bounds = Bounds {
            lower: bounds.lower.map(|l| if l <= AUC_RANGE.start { AUC_RANGE.start } else { l }),
            upper: bounds.upper.map(|u| if u >= AUC_RANGE.end { AUC_RANGE.end } else { u }),
        };
        for c in &mut chunks {
            c.alert = alert(model.bounds, c.value);
        }
        model.reference = chunks;
        Ok(DomainClassifier { model })
    }

    /// `rows` (a window: any number of rows, at least one) against the reference: the AUC and
    /// its alert. Trains the folds' classifiers on the reference and the window together.
    ///
    /// Errors: no rows; a feature missing from `rows` or of another kind; an infinite value.
    pub fn window(&self, rows: &Table<'_>) -> Result<Chunk> {
        if rows.rows() == 0 {
            return Err(MultivariateError::Empty("window"));
        }
        let value = self.model.measure(rows, "window")?;
        Ok(Chunk { start: 0, rows: rows.rows(), value, alert: self.alert(value) })
    }

    /// `analysis` cut with the fitted chunking and measured chunk by chunk, as NannyML's
    /// `calculate` does.
    pub fn chunks(&self, analysis: &Table<'_>) -> Result<Vec<Chunk>> {
        let ranges = self.model.options.chunking.split(analysis.rows(), "analysis")?;
        ranges
            .into_iter()
            .map(|range| {
                let value = self.model.measure(&analysis.slice(range.clone()), "analysis")?;
                Ok(Chunk { start: range.start, rows: range.len(), value, alert: self.alert(value) })
            })
            .collect()
    }

    /// Whether `value` alerts against the reference's band: NannyML's strict
    /// `value > upper or value < lower` (a bound itself, and NaN, do not alert).
    pub fn alert(&self, value: f64) -> bool {
        alert(self.model.bounds, value)
    }

    /// The alert band: the threshold's bounds, clamped to [0, 1].
    pub fn bounds(&self) -> Bounds {
        self.model.bounds
    }

    /// The reference chunks' results, with their alerts.
    pub fn reference_chunks(&self) -> &[Chunk] {
        &self.model.reference
    }

    /// The options it was fitted with.
    pub fn options(&self) -> &DomainClassifierOptions {
        &self.model.options
    }

    /// The features with the reference's values, in the reference's column order.
    pub fn features(&self) -> &[Feature] {
        &self.model.features
    }
}

/// An AUC's range: NannyML's `_lower_threshold_value_limit` and `_upper_threshold_value_limit`.
const AUC_RANGE: Range<f64> = 0.0..1.0;

fn alert(bounds: Bounds, value: f64) -> bool {
    bounds.lower.is_some_and(|l| value < l) || bounds.upper.is_some_and(|u| value > u)
}

impl Model {
    /// Consistency of a deserialised model.
    fn check(&self) -> Result<()> {
        let corrupt = |what: String| Err(MultivariateError::Corrupt(what));
        self.options.validate()?;
        let Some(first) = self.features.first() else {
            return corrupt("no features".into());
        };
        let n = first.values.len();
        for (i, f) in self.features.iter().enumerate() {
            if f.values.len() != n {
                return corrupt(format!("feature {:?} has {} rows, the first {n}", f.name, f.values.len()));
            }
            if self.features[..i].iter().any(|g| g.name == f.name) {
                return corrupt(format!("feature {:?} is given twice", f.name));
            }
            if let Stored::Numerical(v) = &f.values {
                finite(&f.name, v)?;
            }
        }
        let ranges = self.options.chunking.split(n, "reference")?;
        let chunks: Vec<Range<usize>> = self.reference.iter().map(|c| c.start..c.start + c.rows).collect();
        if chunks != ranges {
            return corrupt("the reference chunks do not match the chunking".into());
        }
        Ok(())
    }

    /// The AUC of `rows` (labelled 1) against the reference (labelled 0).
    fn measure(&self, rows: &Table<'_>, which: &'static str) -> Result<f64> {
        let columns = self
            .features
            .iter()
            .map(|f| {
                let column = rows.column(&f.name).ok_or_else(|| MultivariateError::MissingColumn(f.name.clone()))?;
                if column.values.kind() != f.kind() {
                    return Err(MultivariateError::KindMismatch {
                        column: f.name.clone(),
                        expected: f.kind(),
                        got: column.values.kind(),
                    });
                }
                if let Values::Numerical(v) = column.values {
                    finite(&f.name, v)?;
                }
                Ok(column.values)
            })
            .collect::<Result<Vec<Values<'_>>>>()?;
        let reference_rows = self.features[0].values.len();
        let mut labels = vec![false; reference_rows];
        labels.resize(reference_rows + rows.rows(), true);
        self.auc(Some(&columns), &labels, which)
    }

    /// The out-of-fold ROC AUC of classifiers telling the rows labelled `true` from the others;
    /// the rows are the reference's, followed by `extra`'s when given. `which` names the rows in
    /// errors.
    fn auc(&self, extra: Option<&[Values<'_>]>, labels: &[bool], which: &'static str) -> Result<f64> {
        let folds = stratified_folds(labels, self.options.cv_folds, which)?;
        if labels.iter().all(|&l| l == labels[0]) {
            return Ok(f64::NAN);
        }
        let design = Design::new(&self.features, extra);
        let mut scores = vec![0.0; labels.len()];
        for fold in 0..self.options.cv_folds {
            let (train, test): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&i| folds[i] != fold);
            let predicted = design.train_and_predict(&train, &test, labels)?;
            for (i, p) in test.into_iter().zip(predicted) {
                scores[i] = p;
            }
        }
        Ok(roc_auc(labels, &scores))
    }
}

/// The classifier's input columns over all rows (the reference's, then the chunk's), built once
/// per chunk and cut into folds.
struct Design {
    columns: Vec<TrainColumn>,
}

impl Design {
    /// The features as the trainer's columns: numbers (NaN missing, imputed by the trainer) with
    /// a 0/1 missing flag when a value is missing, categories as they are (one-hot in the
    /// trainer).
    fn new(features: &[Feature], extra: Option<&[Values<'_>]>) -> Self {
        let mut columns = Vec::with_capacity(features.len());
        for (j, f) in features.iter().enumerate() {
            let more = extra.map(|e| e[j]);
            match (&f.values, more) {
                (Stored::Numerical(r), more) => {
                    let mut v = r.clone();
                    if let Some(Values::Numerical(m)) = more {
                        v.extend_from_slice(m);
                    }
                    if v.iter().any(|x| x.is_nan()) {
                        columns.push(TrainColumn::Boolean(v.iter().map(|x| Some(x.is_nan())).collect()));
                    }
                    columns.push(TrainColumn::Numerical(v));
                }
                (Stored::Categorical(r), more) => {
                    let mut v = r.clone();
                    if let Some(Values::Categorical(m)) = more {
                        v.extend(m.iter().map(|s| s.map(str::to_string)));
                    }
                    columns.push(TrainColumn::Categorical(v));
                }
            }
        }
        Design { columns }
    }

    /// The rows `rows` of every column as the trainer's data; columns are named by position.
    fn data(&self, rows: &[usize]) -> Result<Data> {
        let features = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let column = match c {
                    TrainColumn::Numerical(v) => TrainColumn::Numerical(rows.iter().map(|&i| v[i]).collect()),
                    TrainColumn::Boolean(v) => TrainColumn::Boolean(rows.iter().map(|&i| v[i]).collect()),
                    TrainColumn::Categorical(v) => {
                        TrainColumn::Categorical(rows.iter().map(|&i| v[i].clone()).collect())
                    }
                };
                TrainFeature { name: format!("x{j}"), column }
            })
            .collect();
        Data::new(features).map_err(classifier)
    }

    /// Trains on the rows `train` and returns the probability of `true` for the rows `test`.
    fn train_and_predict(&self, train: &[usize], test: &[usize], labels: &[bool]) -> Result<Vec<f64>> {
        if train.iter().all(|&i| labels[i] == labels[train[0]]) {
            return Ok(vec![ONE_CLASS_PREDICTION; test.len()]);
        }
        let usable = self.columns.iter().any(|c| match c {
            TrainColumn::Categorical(v) => train.iter().any(|&i| v[i].as_deref().is_some_and(|s| !s.is_empty())),
            _ => true,
        });
        if !usable {
            // Only missing categories: nothing to split on, as LightGBM on all-NaN columns, which
            // predicts the share of positives.
            let positives = train.iter().filter(|&&i| labels[i]).count();
            return Ok(vec![positives as f64 / train.len() as f64; test.len()]);
        }
        let target = Target::Classes(train.iter().map(|&i| if labels[i] { "1" } else { "0" }.to_string()).collect());
        let data = TrainData::new(self.data(train)?, target).map_err(classifier)?;
        let spec = TrainSpec::GradientBoosting(DomainClassifier::classifier_spec());
        let model = anchorwatch_trainer::train(&spec, &data).map_err(classifier)?;
        match model.predict(&self.data(test)?).map_err(classifier)? {
            // Classes are sorted: column 1 is "1".
            Predictions::Classes { probabilities, .. } => Ok(probabilities.into_iter().map(|p| p[1]).collect()),
            Predictions::Values(_) => Err(MultivariateError::Classifier("it predicted numbers, not classes".into())),
        }
    }
}

fn classifier(e: anchorwatch_trainer::Error) -> MultivariateError {
    MultivariateError::Classifier(e.to_string())
}

/// Each row's test fold, as scikit-learn's `StratifiedKFold(n_splits=folds)._make_test_folds`
/// without shuffling: classes numbered by first appearance; fold f's share of class k is the
/// number of positions p ≡ f (mod folds) that class k holds in the labels sorted by class
/// number; each class's rows fill fold 0, then fold 1, ..., in row order. `which` names the rows
/// in errors.
fn stratified_folds(labels: &[bool], folds: usize, which: &'static str) -> Result<Vec<usize>> {
    let n = labels.len();
    if n < folds {
        return Err(MultivariateError::TooFewRows { which, rows: n, need: folds, purpose: "cross-validation" });
    }
    let first = labels[0];
    let class = |l: bool| usize::from(l != first);
    let mut counts = [0usize; 2];
    labels.iter().for_each(|&l| counts[class(l)] += 1);
    if counts.iter().all(|&c| c < folds) {
        let reason = format!(
            "{folds} folds need at least {folds} rows of one label; the {which} has {} and {}",
            counts[0], counts[1]
        );
        return Err(invalid("cv_folds", reason));
    }
    // Positions p < x with p ≡ f (mod folds).
    let below = |x: usize, f: usize| (x + folds - 1 - f) / folds;
    let starts = [0, counts[0]];
    let mut next = [(0usize, 0usize); 2]; // (fold, rows given to it) per class
    let mut out = Vec::with_capacity(n);
    for &l in labels {
        let k = class(l);
        let allocation = |f: usize| below(starts[k] + counts[k], f) - below(starts[k], f);
        let (fold, given) = &mut next[k];
        while *given == allocation(*fold) {
            *fold += 1;
            *given = 0;
        }
        out.push(*fold);
        *given += 1;
    }
    Ok(out)
}

/// `roc_auc_score(labels, scores)`: the share of (positive, negative) pairs whose positive
/// scores higher, ties counted half (the Mann–Whitney U over n₁·n₀, from midranks).
fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i + 1 ..= j + 1 share their mean.
        let midrank = (i + j + 2) as f64 / 2.0;
        rank_sum += midrank * order[i..=j].iter().filter(|&&r| labels[r]).count() as f64;
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Errors on the first value that is infinite, or becomes infinite as the float32 the trees
/// compare.
fn finite(name: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|&v| (v as f32).is_infinite()) {
        Some(row) => Err(MultivariateError::Infinite { column: name.to_string(), row }),
        None => Ok(()),
    }
}

/// NaN written as `null` and read back, for a value that has none (a chunk of one label) and
/// the missing numbers of a stored reference, in formats without NaN such as JSON.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() { s.serialize_none() } else { s.serialize_some(v) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    /// The same for every number of a column.
    pub mod all {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|x| if x.is_nan() { None } else { Some(*x) }))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkBy, Column};
    use super::*;

    /// scikit-learn 1.9.1: `StratifiedKFold(5)._make_test_folds(None, y)`.
    #[test]
    fn folds_follow_scikit_learn() {
        let y = |s: &str| s.chars().map(|c| c == '1').collect::<Vec<bool>>();
        let folds = |y: &[bool], k| stratified_folds(y, k, "window");
        assert_eq!(folds(&y("000000001111"), 5).unwrap(), [0, 0, 1, 1, 2, 2, 3, 4, 0, 1, 3, 4]);
        // A first chunk: label 1 appears first, so it leads the round robin.
        assert_eq!(folds(&y("111000000000"), 5).unwrap(), [0, 1, 2, 0, 0, 1, 1, 2, 3, 3, 4, 4]);
        // One row of label 1, in fold 1: that fold trains on label 0 only.
        assert_eq!(folds(&y("0000001"), 5).unwrap(), [0, 0, 1, 2, 3, 4, 1]);
        assert!(matches!(folds(&y("0011"), 5), Err(MultivariateError::TooFewRows { .. })));
        assert!(matches!(folds(&y("0000111"), 5), Err(MultivariateError::InvalidOption { field: "cv_folds", .. })));
    }

    #[test]
    fn auc_counts_ties_half() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&labels, &[0.1, 0.4, 0.35, 0.8]), 0.75);
        assert_eq!(roc_auc(&labels, &[0.5, 0.5, 0.5, 0.5]), 0.5);
        assert_eq!(roc_auc(&labels, &[0.1, 0.5, 0.5, 0.9]), 0.875);
    }

    /// Two numerical features, a categorical one and a missing value, `n` rows; the analysis
    /// side shifts `a` by `shift`.
    fn sample(n: usize, seed: u64, shift: f64) -> (Vec<f64>, Vec<f64>, Vec<Option<&'static str>>) {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let (mut a, mut b, mut s) = (vec![], vec![], vec![]);
        for i in 0..n {
            a.push(next() + shift);
            b.push(if i % 17 == 3 { f64::NAN } else { next() });
            s.push([Some("red"), Some("green"), None, Some("blue")][i % 4]);
        }
        (a, b, s)
    }

    #[test]
    fn tells_a_shifted_window_from_the_reference() {
        let (a, b, s) = sample(400, 3, 0.0);
        let reference =
            Table::new([Column::numerical("a", &a), Column::numerical("b", &b), Column::categorical("s", &s)]).unwrap();
        let options = DomainClassifierOptions {
            chunking: Chunking { by: ChunkBy::Number(4), ..Chunking::default() },
            ..DomainClassifierOptions::default()
        };
        let model = DomainClassifier::fit(&reference, &options).unwrap();
        assert_eq!(model.bounds(), Bounds { lower: Some(0.45), upper: Some(0.65) });
        assert_eq!(model.reference_chunks().len(), 4);
        for c in model.reference_chunks() {
            assert!((0.3..0.7).contains(&c.value), "{c:?}");
        }
        let (a2, b2, s2) = sample(150, 9, 0.4);
        let shifted =
            Table::new([Column::numerical("a", &a2), Column::numerical("b", &b2), Column::categorical("s", &s2)])
                .unwrap();
        let drifted = model.window(&shifted).unwrap();
        assert!(drifted.value > 0.75 && drifted.alert, "{drifted:?}");
        let (a3, b3, s3) = sample(150, 21, 0.0);
        let same =
            Table::new([Column::numerical("a", &a3), Column::numerical("b", &b3), Column::categorical("s", &s3)])
                .unwrap();
        let quiet = model.window(&same).unwrap();
        assert!(quiet.value < 0.65 && !quiet.alert, "{quiet:?}");
        // Equal to a bound is no alert; beyond is.
        assert!(!model.alert(0.65) && !model.alert(0.45) && model.alert(0.651) && !model.alert(f64::NAN));
    }

    #[test]
    fn refuses_what_nannyml_refuses() {
        let (a, b, s) = sample(30, 5, 0.0);
        let reference =
            Table::new([Column::numerical("a", &a), Column::numerical("b", &b), Column::categorical("s", &s)]).unwrap();
        let opts = DomainClassifierOptions::default();
        assert_eq!(DomainClassifier::fit(&Table::default(), &opts), Err(MultivariateError::NoFeatures));
        let bad = DomainClassifierOptions { cv_folds: 1, ..DomainClassifierOptions::default() };
        assert!(matches!(DomainClassifier::fit(&reference, &bad), Err(MultivariateError::InvalidOption { .. })));
        let mut inf = a.clone();
        inf[4] = 1e39; // finite, but infinite as a float32
        let infinite = Table::new([Column::numerical("a", &inf)]).unwrap();
        assert!(matches!(DomainClassifier::fit(&infinite, &opts), Err(MultivariateError::Infinite { row: 4, .. })));
        // One chunk of all 30 rows: a single label, NaN without training, and no alert.
        let whole = DomainClassifierOptions {
            chunking: Chunking { by: ChunkBy::Size(31), ..Chunking::default() },
            ..DomainClassifierOptions::default()
        };
        let model = DomainClassifier::fit(&reference, &whole).unwrap();
        let whole_chunk = model.reference_chunks()[0];
        assert!(whole_chunk.value.is_nan() && !whole_chunk.alert);
        let back: DomainClassifier = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
        assert!(back.reference_chunks()[0].value.is_nan());
        let missing = Table::new([Column::numerical("a", &a)]).unwrap();
        assert_eq!(model.window(&missing), Err(MultivariateError::MissingColumn("b".into())));
        let swapped =
            Table::new([Column::numerical("a", &a), Column::numerical("b", &b), Column::numerical("s", &a)]).unwrap();
        assert!(matches!(model.window(&swapped), Err(MultivariateError::KindMismatch { .. })));
        // Only missing categories: nothing to split on, every fold predicts its share of label 1.
        let none = [None; 30];
        let empty = Table::new([Column::categorical("s", &none)]).unwrap();
        let blank = DomainClassifier::fit(&empty, &whole).unwrap().window(&empty.slice(0..10)).unwrap();
        assert!((0.0..=1.0).contains(&blank.value), "{blank:?}");
        // One row: the fold holding it trains on the reference alone and predicts 1e-15.
        let one = model.window(&reference.slice(0..1)).unwrap();
        assert!((0.0..=1.0).contains(&one.value));
    }

    #[test]
    fn survives_a_json_round_trip_and_refuses_a_corrupt_one() {
        let (a, b, s) = sample(60, 7, 0.0);
        let reference =
            Table::new([Column::numerical("a", &a), Column::numerical("b", &b), Column::categorical("s", &s)]).unwrap();
        let options = DomainClassifierOptions {
            chunking: Chunking { by: ChunkBy::Number(2), ..Chunking::default() },
            ..DomainClassifierOptions::default()
        };
        let model = DomainClassifier::fit(&reference, &options).unwrap();
        let text = serde_json::to_string(&model).unwrap();
        let back: DomainClassifier = serde_json::from_str(&text).unwrap();
        assert_eq!(back.reference_chunks(), model.reference_chunks());
        assert_eq!(back.window(&reference.slice(0..20)), model.window(&reference.slice(0..20)));
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["reference"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<DomainClassifier>(value).is_err());
    }
}
