//! Evidently's `model` method (`ModelDriftMethod`): how well a linear classifier tells the
//! reference embeddings from the current ones.
//!
//! Evidently labels reference rows 1 and current rows 0, splits reference-then-current in
//! halves with `train_test_split(test_size=0.5, random_state=42, shuffle=True)`, fits
//! `SGDClassifier(loss="log_loss", random_state=42)` on the train half and scores the test half
//! with ROC AUC (reference as the positive class). The split, the classifier's per-epoch
//! shuffles and the random classifiers of the bootstrap are numpy/scikit-learn draws, replayed
//! here as [`super::super::domain_classifier`] replays them for text drift; the SGD itself is
//! scikit-learn 1.9's `_plain_sgd` for dense rows, log loss and the L2 penalty, in its order of
//! operations (scaled weight vector, "optimal" learning rate, stopping on the training
//! objective), so the weights agree with scikit-learn's bit for bit in practice. The AUC then
//! only depends on the order of the test rows' probabilities; scikit-learn computes their
//! logits with a BLAS product, here with four interleaved sums, which can only matter if two
//! rows are within an ulp of each other.

use super::{
    EmbeddingDrift, Embeddings, N_BOOTSTRAP, check_pair, dot, dot_lanes, np_percentile, parallel_map, with_pca,
};
use crate::stats::domain_classifier::{our_rand_r, roc_auc};
use crate::stats::mt19937::Mt19937;
use crate::stats::{Error, Result};

/// Seed Evidently gives `train_test_split` and `SGDClassifier`.
pub const SEED: u32 = 42;
/// `SGDClassifier`'s defaults.
const ALPHA: f64 = 1e-4;
const MAX_EPOCHS: usize = 1000;
const TOL: f64 = 1e-3;
const N_ITER_NO_CHANGE: usize = 5;
/// scikit-learn's gradient clip (`MAX_DLOSS`).
const MAX_DLOSS: f64 = 1e12;
/// Below this the weight vector's scale is folded into its values (`WeightVector64`).
const RESET_WSCALE: f64 = 1e-9;
/// How many steps ahead the SGD asks for a row to be fetched from memory: the rows come in
/// random order, and a step takes longer than a fetch.
const PREFETCH_AHEAD: usize = 2;

/// Evidently's `model(...)` options, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Drift when the ROC AUC exceeds this (default 0.55); unused with `bootstrap`.
    pub threshold: f64,
    /// Compare with the `quantile_probability` quantile of 100 random classifiers' AUCs
    /// instead of `threshold` (default false; `EmbeddingsDriftMetric`'s own default method
    /// bootstraps when the reference has fewer than 1000 rows).
    pub bootstrap: bool,
    /// The quantile of the bootstrap (default 0.95).
    pub quantile_probability: f64,
    /// Project both sides on the reference's first principal components first (default none).
    pub pca_components: Option<usize>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { threshold: 0.55, bootstrap: false, quantile_probability: 0.95, pca_components: None }
    }
}

/// Evidently's `ModelDriftMethod`: the ROC AUC of the domain classifier on the held-out half;
/// drift when it exceeds `threshold`, or with `bootstrap` when it exceeds `np.percentile` at
/// `100·quantile_probability` of the AUCs of 100 classifiers scoring the held-out half with
/// `np.random.seed(i); np.random.rand(n)`.
///
/// Errors as scikit-learn does when a half holds a single class (e.g. very few rows).
///
/// Cost: O(epochs·n·d) for the fit (epochs ≤ 1000; on separable or well-mixed data a few dozen)
/// plus O(n log n) per AUC, n = rows of both sides; the bootstrap's AUCs on all cores.
pub fn model(reference: Embeddings<'_>, current: Embeddings<'_>, options: &ModelOptions) -> Result<EmbeddingDrift> {
    with_pca(reference, current, options.pca_components, |reference, current| {
        let classifier = classify(reference, current)?;
        let score = classifier.roc_auc;
        if !options.bootstrap {
            return Ok(EmbeddingDrift { score, drifted: score > options.threshold, threshold: options.threshold });
        }
        let labels = &classifier.test_labels;
        let aucs = parallel_map(N_BOOTSTRAP, |i| {
            let mut rng = Mt19937::new(i as u32);
            let random: Vec<f64> = labels.iter().map(|_| rng.next_f64()).collect();
            roc_auc(labels, &random)
        });
        let aucs = aucs.into_iter().collect::<Result<Vec<_>>>()?;
        let threshold = np_percentile(aucs, 100.0 * options.quantile_probability)?;
        Ok(EmbeddingDrift { score, drifted: score > threshold, threshold })
    })
}

/// The domain classifier behind [`model`], on the embeddings as given (no PCA).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingClassifier {
    /// The classifier fitted on the train half.
    pub fit: Fit,
    /// Held-out labels, `true` for reference rows (the positive class).
    pub test_labels: Vec<bool>,
    /// ROC AUC of the held-out half's `predict_proba`.
    pub roc_auc: f64,
}

/// Splits reference (label 1) and current (label 0) rows as Evidently's
/// `train_test_split(test_size=0.5, random_state=42, shuffle=True)`, fits [`sgd_log_loss`] on
/// the train half and scores the test half.
pub fn classify(reference: Embeddings<'_>, current: Embeddings<'_>) -> Result<EmbeddingClassifier> {
    check_pair(&reference, &current)?;
    let nr = reference.rows();
    let n = nr + current.rows();
    let row = |i: usize| if i < nr { reference.row(i) } else { current.row(i - nr) };
    let n_test = n.div_ceil(2);
    if n - n_test == 0 {
        return Err(Error::Invalid(format!(
            "With n_samples={n}, test_size=0.5 and train_size=None, the resulting train set will be empty"
        )));
    }
    let permutation = Mt19937::new(SEED).permutation(n);
    let (test, train) = permutation.split_at(n_test);
    let train_rows: Vec<&[f64]> = train.iter().map(|&i| row(i)).collect();
    let train_labels: Vec<bool> = train.iter().map(|&i| i < nr).collect();
    if train_labels.iter().all(|&l| l == train_labels[0]) {
        return Err(Error::Invalid("The number of classes has to be greater than one; got 1 class".into()));
    }
    let fit = sgd_log_loss(&train_rows, &train_labels)?;
    let test_labels: Vec<bool> = test.iter().map(|&i| i < nr).collect();
    let probabilities: Vec<f64> =
        test.iter().map(|&i| expit(dot_lanes(row(i), &fit.weights) + fit.intercept)).collect();
    let roc_auc = roc_auc(&test_labels, &probabilities)?;
    Ok(EmbeddingClassifier { fit, test_labels, roc_auc })
}

/// A fitted linear classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// `coef_`.
    pub weights: Vec<f64>,
    /// `intercept_`.
    pub intercept: f64,
    /// `n_iter_`: epochs run.
    pub epochs: usize,
}

/// `SGDClassifier(loss="log_loss", random_state=42).fit(rows, labels)` on dense rows, `true`
/// being the positive class (label 1): scikit-learn 1.9's `_plain_sgd` with the L2 penalty
/// (α = 1e-4), learning rate "optimal", intercept fitted, tolerance 1e-3 on the training
/// objective with 5 epochs' patience, at most 1000 epochs. Rows must share one length.
///
/// Each step's pass over the weights also forms the next step's product with them: the same
/// operations in the same order as scikit-learn's separate `dot` and `add`, so the same bits,
/// with the running sums advancing side by side. Cost: O(epochs·n·d), one pass over the weights
/// per row.
pub fn sgd_log_loss(rows: &[&[f64]], labels: &[bool]) -> Result<Fit> {
    let n = rows.len();
    let dims = rows.first().map_or(0, |r| r.len());
    // fit_binary's RandomState(42): make_dataset draws the dataset's own seed first (unused by
    // the shuffle), then the shuffle seed is randint(MAX_INT).
    let mut state = Mt19937::new(SEED);
    let _dataset_seed = state.interval(2_147_483_646 - 1) + 1;
    let seed = state.interval(2_147_483_647 - 1) as u32;

    let mut w = vec![0.0f64; dims];
    let mut wscale = 1.0f64;
    let mut sq_norm = 0.0f64;
    let mut l1_norm = 0.0f64;
    let mut intercept = 0.0f64;
    let mut t = 1.0f64;
    // The L2 penalty makes _plain_sgd set l1_ratio to 0.
    let l1_ratio = 0.0f64;
    let typw = (1.0 / ALPHA.sqrt()).sqrt();
    let initial_eta0 = typw / 1.0f64.max(gradient(1.0, -typw));
    let optimal_init = 1.0 / (initial_eta0 * ALPHA);
    // The rows with their labels in the order of scikit-learn's shuffled index (the same
    // swaps), so that an epoch reads them one after another.
    let mut samples: Vec<(&[f64], f64)> =
        rows.iter().zip(labels).map(|(&x, &positive)| (x, if positive { 1.0 } else { 0.0 })).collect();
    let mut best_objective = f64::INFINITY;
    let mut no_improvement = 0usize;
    let mut epochs = 0;
    for epoch in 0..MAX_EPOCHS {
        epochs = epoch + 1;
        let mut s = seed;
        for i in 0..n.saturating_sub(1) {
            let j = i + (our_rand_r(&mut s) % (n - i) as u32) as usize;
            samples.swap(i, j);
        }
        let mut objective_sum = 0.0f64;
        // w·x of the current row: formed by the previous step's pass, or here for the first row.
        let mut product = samples.first().map_or(0.0, |&(x, _)| dot(&w, x));
        for (position, &(x, y)) in samples.iter().enumerate() {
            let next = samples.get(position + 1).map_or(x, |s| s.0);
            let later = samples.get(position + PREFETCH_AHEAD).map_or(x, |s| s.0);
            let inner = product * wscale;
            let p = inner + intercept;
            let eta = 1.0 / (ALPHA * (optimal_init + t - 1.0));
            objective_sum += loss(y, p);
            let norm = sq_norm.sqrt();
            objective_sum += ALPHA * ((1.0 - l1_ratio) * 0.5 * (norm * norm) + l1_ratio * l1_norm);
            let dloss = gradient(y, p).clamp(-MAX_DLOSS, MAX_DLOSS);
            let update = -eta * dloss;
            // WeightVector.scale: no negative scale when eta·alpha is too big.
            let c = 1.0 - ((1.0 - l1_ratio) * eta * ALPHA);
            let c = if 0.0 > c { 0.0 } else { c };
            wscale *= c;
            sq_norm *= c * c;
            l1_norm *= c.abs();
            let mut rescale = 1.0;
            if wscale < RESET_WSCALE {
                rescale = wscale;
                wscale = 1.0;
            }
            let added = (update != 0.0).then(|| (x, update / wscale));
            let (l2, l1, following) = weight_pass(&mut w, rescale, added, next, later);
            if update != 0.0 {
                sq_norm = l2 * (wscale * wscale);
                l1_norm = l1 * wscale;
                intercept += update;
            }
            product = following;
            t += 1.0;
        }
        if !intercept.is_finite() || w.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "Floating-point under-/overflow occurred at epoch #{epochs}. Scaling input data with \
                 StandardScaler or MinMaxScaler might help."
            )));
        }
        let objective = objective_sum / n as f64;
        if objective > best_objective - TOL {
            no_improvement += 1;
        } else {
            no_improvement = 0;
        }
        if objective < best_objective {
            best_objective = objective;
        }
        if no_improvement >= N_ITER_NO_CHANGE {
            break;
        }
    }
    for wj in w.iter_mut() {
        *wj *= wscale;
    }
    Ok(Fit { weights: w, intercept, epochs })
}

/// One step's pass over the weights: each weight times `rescale` (`reset_wscale`, rare; 1
/// leaves the weights as they are), plus x·step when `added` is `(x, step)`
/// (`WeightVector.add`), then Σw² and Σ|w| of the new weights and their product with `next`
/// (`WeightVector.dot` of the next step), each a running sum in index order. Also asks for the
/// row `later` to be fetched from memory. Indexed loops: the tests run this crate unoptimised.
fn weight_pass(
    w: &mut [f64],
    rescale: f64,
    added: Option<(&[f64], f64)>,
    next: &[f64],
    later: &[f64],
) -> (f64, f64, f64) {
    if rescale != 1.0 {
        for wj in w.iter_mut() {
            *wj *= rescale;
        }
    }
    let (mut l2, mut l1, mut product) = (0.0f64, 0.0f64, 0.0f64);
    let next = &next[..w.len()];
    match added {
        Some((x, step)) => {
            let x = &x[..w.len()];
            for j in 0..w.len() {
                if j % 8 == 0 {
                    // A cache line of the later row per cache line of this one.
                    prefetch(&later[j.min(later.len())..]);
                }
                let wj = w[j] + x[j] * step;
                w[j] = wj;
                l2 += wj * wj;
                l1 += wj.abs();
                product += wj * next[j];
            }
        }
        None => {
            prefetch(later);
            for j in 0..w.len() {
                product += w[j] * next[j];
            }
        }
    }
    (l2, l1, product)
}

/// Asks the CPU to start fetching the cache line where `values` start: a hint, with no effect
/// on any value.
#[inline(always)]
fn prefetch(values: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, which the intrinsic needs, is part of x86-64; a prefetch reads nothing the
    // program sees and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(values.as_ptr().cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// `CyHalfBinomialLoss.cy_loss`: log(1 + eᵖ) − y·p, with scikit-learn's branches.
fn loss(y: f64, p: f64) -> f64 {
    let log1pexp = if p <= -37.0 {
        p.exp()
    } else if p <= -2.0 {
        p.exp().ln_1p()
    } else if p <= 18.0 {
        (1.0 + p.exp()).ln()
    } else if p <= 33.3 {
        p + (-p).exp()
    } else {
        p
    };
    log1pexp - y * p
}

/// `CyHalfBinomialLoss.cy_gradient`: expit(p) − y, with scikit-learn's branches.
fn gradient(y: f64, p: f64) -> f64 {
    if p > -37.0 {
        let e = (-p).exp();
        ((1.0 - y) - y * e) / (1.0 + e)
    } else {
        p.exp() - y
    }
}

/// `scipy.special.expit`.
fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_gradient_agree() {
        for p in [-40.0, -5.0, 0.3, 20.0, 40.0] {
            for y in [0.0, 1.0] {
                let h = 1e-6;
                let numeric = (loss(y, p + h) - loss(y, p - h)) / (2.0 * h);
                assert!((numeric - gradient(y, p)).abs() < 1e-6, "y={y} p={p}");
            }
        }
    }

    #[test]
    fn separable_halves_score_one() {
        let r: Vec<f64> = (0..40).map(|i| 3.0 + f64::from(i % 7) * 0.1).collect();
        let c: Vec<f64> = (0..40).map(|i| -3.0 - f64::from(i % 5) * 0.1).collect();
        let (r, c) = (Embeddings::new(&r, 2).unwrap(), Embeddings::new(&c, 2).unwrap());
        let got = model(r, c, &ModelOptions::default()).unwrap();
        assert_eq!((got.score, got.drifted), (1.0, true));
    }
}
