//! Built-in trainers for the retraining loop (issue #6): logistic regression, gradient-boosted
//! trees and ridge regression over a model's features, each exported as an ONNX model.
//!
//! Takes in: training rows as plain columns ([`Data`]: numbers, booleans, categories) and a
//! target ([`Target`]: class labels or numbers), and a [`TrainSpec`].
//! Gives out: a [`Trained`] model that predicts in memory ([`Trained::predict`]), describes itself
//! ([`ModelInfo`]), and writes itself as ONNX bytes ([`Trained::to_onnx`]) following the signature
//! contract of `docs/models.md`: raw feature values in (preprocessing is inside the graph),
//! `label` + `probabilities` or `variable` out. The ONNX protobuf is encoded here, by hand (private `onnx` module).
//! Must never: export a model whose ONNX predictions differ from its in-memory ones (the tests
//! score every exported model kind with the real ONNX Runtime), do IO, or use randomness:
//! the same data and spec give the same model, byte for byte.

mod data;
mod gbm;
mod linear;
mod model;
mod onnx;
mod preprocess;
mod spec;

pub use data::{Column, Data, Feature, FeatureKind, Target, TrainData};
pub use model::{InputLayout, ModelInfo, Predictions, Task, TrainReport, Trained};
pub use preprocess::{FeatureInfo, MAX_CATEGORIES};
pub use spec::{GradientBoostingSpec, LogisticRegressionSpec, RidgeSpec, TrainSpec};

use model::Fitted;

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data cannot be trained on or predicted (ragged columns, a missing feature, one class
    /// only, non-finite values...).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The spec does not fit the data or has values out of range.
    #[error("invalid train spec: {0}")]
    InvalidSpec(String),
    /// Asked for something this trainer does not do (e.g. a categorical feature in the
    /// one-tensor input layout).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The optimizer failed.
    #[error("training failed: {0}")]
    Training(String),
}

/// The trainer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Trains the model `spec` describes on `data`. Classification or regression follows from the
/// target; logistic regression needs classes, ridge needs numbers, gradient boosting takes either.
pub fn train(spec: &TrainSpec, data: &TrainData) -> Result<Trained> {
    validate(spec)?;
    for f in data.features.features() {
        if f.name.starts_with(onnx::INTERNAL_PREFIX) || onnx::OUTPUT_NAMES.contains(&f.name.as_str()) {
            return Err(Error::InvalidData(format!(
                "feature name '{}' is reserved: the ONNX graph uses it (outputs {:?}, names starting with '{}')",
                f.name,
                onnx::OUTPUT_NAMES,
                onnx::INTERNAL_PREFIX
            )));
        }
    }
    let standardize = !matches!(spec, TrainSpec::GradientBoosting(_));
    let preprocessor = preprocess::Preprocessor::fit(&data.features, standardize)?;
    let x = preprocessor.transform(&data.features)?;
    if x.cols == 0 {
        return Err(Error::InvalidData("no usable features (no features, or categorical ones with no values)".into()));
    }
    let (task, classes, fitted, mut report) = match (&data.target, spec) {
        (Target::Classes(labels), TrainSpec::LogisticRegression(s)) => {
            let (classes, y) = encode_classes(labels)?;
            let (m, fit) = linear::fit_logistic(&x, &y, classes.len(), s);
            let report = TrainReport {
                rows: x.rows,
                training_loss: 0.0,
                iterations: Some(fit.iterations),
                converged: Some(fit.converged),
                trees: None,
            };
            (Task::Classification, classes, Fitted::Logistic(m), report)
        }
        (Target::Classes(labels), TrainSpec::GradientBoosting(s)) => {
            let (classes, y) = encode_classes(labels)?;
            let m = gbm::fit(&x, gbm::Labels::Classes { y: &y, classes: classes.len() }, s);
            let trees = Some(m.trees.iter().map(Vec::len).sum());
            let report = TrainReport { rows: x.rows, training_loss: 0.0, iterations: None, converged: None, trees };
            (Task::Classification, classes, Fitted::Trees(m), report)
        }
        (Target::Values(y), TrainSpec::GradientBoosting(s)) => {
            let m = gbm::fit(&x, gbm::Labels::Values(y), s);
            let trees = Some(m.trees.iter().map(Vec::len).sum());
            let report = TrainReport { rows: x.rows, training_loss: 0.0, iterations: None, converged: None, trees };
            (Task::Regression, vec![], Fitted::Trees(m), report)
        }
        (Target::Values(y), TrainSpec::Ridge(s)) => {
            let m = linear::fit_ridge(&x, y, s)?;
            let report =
                TrainReport { rows: x.rows, training_loss: 0.0, iterations: None, converged: None, trees: None };
            (Task::Regression, vec![], Fitted::Ridge(m), report)
        }
        (Target::Values(_), TrainSpec::LogisticRegression(_)) => {
            return Err(Error::InvalidSpec("logistic regression needs class labels, the target is numbers".into()));
        }
        (Target::Classes(_), TrainSpec::Ridge(_)) => {
            return Err(Error::InvalidSpec("ridge regression needs numbers, the target is class labels".into()));
        }
    };
    let info = ModelInfo {
        spec: spec.clone(),
        task,
        features: preprocessor.features.clone(),
        columns: preprocessor.column_names(),
        classes,
        report: report.clone(),
    };
    let mut trained = Trained { info, preprocessor, fitted };
    report.training_loss = training_loss(&trained, &x, &data.target);
    trained.info.report = report;
    Ok(trained)
}

fn validate(spec: &TrainSpec) -> Result<()> {
    let bad = |what: &str| Err(Error::InvalidSpec(what.to_string()));
    match spec {
        TrainSpec::LogisticRegression(s) => {
            if !(s.l2 >= 0.0 && s.l2.is_finite()) {
                return bad("l2 must be a finite number >= 0");
            }
            if s.tol.is_nan() || s.tol <= 0.0 {
                return bad("tol must be > 0");
            }
        }
        TrainSpec::GradientBoosting(s) => {
            if s.n_trees == 0 {
                return bad("n_trees must be at least 1");
            }
            if !(s.learning_rate > 0.0 && s.learning_rate.is_finite()) {
                return bad("learning_rate must be a finite number > 0");
            }
            if !(s.l2 >= 0.0 && s.l2.is_finite()) {
                return bad("l2 must be a finite number >= 0");
            }
            if s.min_gain.is_nan() || s.min_gain < 0.0 {
                return bad("min_gain must be >= 0");
            }
            if !(2..=65535).contains(&s.max_bins) {
                return bad("max_bins must be between 2 and 65535");
            }
        }
        TrainSpec::Ridge(s) => {
            if !(s.l2 >= 0.0 && s.l2.is_finite()) {
                return bad("l2 must be a finite number >= 0");
            }
        }
    }
    Ok(())
}

/// Sorted distinct classes and each row's class index.
fn encode_classes(labels: &[String]) -> Result<(Vec<String>, Vec<usize>)> {
    let mut classes: Vec<String> = labels.to_vec();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(Error::InvalidData(format!(
            "classification needs at least two classes, the target has {}",
            classes.len()
        )));
    }
    let y = labels.iter().map(|l| classes.binary_search(l).expect("every label is a class")).collect();
    Ok((classes, y))
}

fn training_loss(model: &Trained, x: &preprocess::Matrix, target: &Target) -> f64 {
    match (model.predict_matrix(x), target) {
        (Predictions::Classes { probabilities, .. }, Target::Classes(labels)) => {
            let classes = &model.info.classes;
            let total: f64 = probabilities
                .iter()
                .zip(labels)
                .map(|(p, l)| -p[classes.binary_search(l).expect("a training class")].max(1e-15).ln())
                .sum();
            total / labels.len() as f64
        }
        (Predictions::Values(v), Target::Values(y)) => {
            v.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / y.len() as f64
        }
        _ => f64::NAN,
    }
}
