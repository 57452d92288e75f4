//! Gradient-boosted regression trees on the raw (unstandardized) design matrix, with histogram
//! splits. Losses: squared error (regression), log-loss (binary, one tree per round), softmax
//! log-loss (multiclass, one tree per class per round). Second-order leaf values
//! `-G / (H + l2)` scaled by the learning rate, as in XGBoost and LightGBM.
//!
//! Every value the trees compare is a float32 (inputs are rounded to float32, thresholds are
//! float32), and a split sends `x <= threshold` left, so the ONNX `BRANCH_LEQ` nodes take exactly
//! the same paths as the in-memory trees.

use crate::linear::{sigmoid, softmax};
use crate::preprocess::Matrix;
use crate::spec::GradientBoostingSpec;

/// A node of a tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Node {
    /// `x[feature] <= threshold` goes to `left`, otherwise to `right` (indexes into the tree).
    Split { feature: usize, threshold: f32, left: usize, right: usize },
    /// A leaf's contribution to the raw score.
    Leaf { value: f32 },
}

/// One tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub(crate) fn predict(&self, x: &[f64]) -> f32 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Split { feature, threshold, left, right } => {
                    i = if (x[feature] as f32) <= threshold { left } else { right };
                }
                Node::Leaf { value } => return value,
            }
        }
    }
}

/// The loss being boosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Objective {
    SquaredError,
    Binary,
    Multiclass,
}

/// A fitted ensemble: `raw[k] = base[k] + Σ_rounds trees[round][k](x)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Gbm {
    pub objective: Objective,
    pub base: Vec<f64>,
    /// `trees[round][output]`.
    pub trees: Vec<Vec<Tree>>,
}

impl Gbm {
    /// Raw scores (before the sigmoid / softmax) for one row.
    pub(crate) fn raw(&self, x: &[f64]) -> Vec<f64> {
        let mut raw = self.base.clone();
        for round in &self.trees {
            for (r, tree) in raw.iter_mut().zip(round) {
                *r += tree.predict(x) as f64;
            }
        }
        raw
    }
}

/// Training targets for [`fit`].
pub(crate) enum Labels<'a> {
    Values(&'a [f64]),
    Classes { y: &'a [usize], classes: usize },
}

/// Fits the ensemble; deterministic (no sampling).
pub(crate) fn fit(x: &Matrix, labels: Labels<'_>, spec: &GradientBoostingSpec) -> Gbm {
    let n = x.rows;
    let (objective, base) = match labels {
        Labels::Values(y) => (Objective::SquaredError, vec![y.iter().sum::<f64>() / n as f64]),
        Labels::Classes { y, classes } => {
            let mut counts = vec![0usize; classes];
            y.iter().for_each(|c| counts[*c] += 1);
            let prior = |c: usize| (counts[c] as f64 / n as f64).clamp(1e-6, 1.0 - 1e-6);
            if classes == 2 {
                (Objective::Binary, vec![(prior(1) / (1.0 - prior(1))).ln()])
            } else {
                (Objective::Multiclass, (0..classes).map(|c| prior(c).ln()).collect())
            }
        }
    };
    let outputs = base.len();
    let binned = Binned::new(x, spec.max_bins);
    let mut raw: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
    let mut g = vec![0.0; n];
    let mut h = vec![0.0; n];
    let mut trees = Vec::with_capacity(spec.n_trees);
    let mut rows: Vec<usize> = (0..n).collect();
    for _ in 0..spec.n_trees {
        let mut round = Vec::with_capacity(outputs);
        // Gradients of all outputs come from the scores before this round.
        let probs: Vec<Vec<f64>> = match objective {
            Objective::Multiclass => (0..n).map(|i| softmax(&raw[i * outputs..(i + 1) * outputs])).collect(),
            _ => vec![],
        };
        for k in 0..outputs {
            for i in 0..n {
                let r = raw[i * outputs + k];
                (g[i], h[i]) = match (&labels, objective) {
                    (Labels::Values(y), _) => (r - y[i], 1.0),
                    (Labels::Classes { y, .. }, Objective::Binary) => {
                        let p = sigmoid(r);
                        (p - if y[i] == 1 { 1.0 } else { 0.0 }, (p * (1.0 - p)).max(1e-16))
                    }
                    (Labels::Classes { y, .. }, _) => {
                        let p = probs[i][k];
                        (p - if y[i] == k { 1.0 } else { 0.0 }, (p * (1.0 - p)).max(1e-16))
                    }
                };
            }
            rows.iter_mut().enumerate().for_each(|(i, r)| *r = i);
            let mut builder = TreeBuilder { binned: &binned, g: &g, h: &h, spec, nodes: Vec::new() };
            builder.build(&mut rows, 0);
            round.push(Tree { nodes: builder.nodes });
        }
        for (k, tree) in round.iter().enumerate() {
            for i in 0..n {
                raw[i * outputs + k] += tree.predict(x.row(i)) as f64;
            }
        }
        trees.push(round);
    }
    Gbm { objective, base, trees }
}

/// Feature values replaced by bin indexes; bin `b` of feature `f` holds the values
/// `thresholds[f][b-1] < x <= thresholds[f][b]`.
struct Binned {
    thresholds: Vec<Vec<f32>>,
    /// Column-major: `bins[f * rows + i]`.
    bins: Vec<u16>,
    rows: usize,
}

impl Binned {
    fn new(x: &Matrix, max_bins: usize) -> Self {
        let max_bins = max_bins.clamp(2, u16::MAX as usize);
        let mut thresholds = Vec::with_capacity(x.cols);
        let mut bins = vec![0u16; x.rows * x.cols];
        for f in 0..x.cols {
            let mut column: Vec<f32> = (0..x.rows).map(|i| x.data[i * x.cols + f] as f32).collect();
            let t = cut_points(&mut column, max_bins);
            for i in 0..x.rows {
                let v = x.data[i * x.cols + f] as f32;
                bins[f * x.rows + i] = t.partition_point(|&c| c < v) as u16;
            }
            thresholds.push(t);
        }
        Binned { thresholds, bins, rows: x.rows }
    }
}

/// Thresholds splitting the sorted distinct values into at most `max_bins` bins of about equal
/// counts; each threshold is a float32 strictly between two neighbouring values (their midpoint
/// when it is representable strictly below the upper one, else the lower value itself).
fn cut_points(column: &mut [f32], max_bins: usize) -> Vec<f32> {
    column.sort_by(f32::total_cmp);
    let n = column.len();
    let mut distinct: Vec<(f32, usize)> = Vec::new(); // value, count of values <= it
    for (i, v) in column.iter().enumerate() {
        match distinct.last_mut() {
            Some((last, upto)) if *last == *v => *upto = i + 1,
            _ => distinct.push((*v, i + 1)),
        }
    }
    let mut cuts = Vec::new();
    if distinct.len() <= max_bins {
        cuts.extend(0..distinct.len().saturating_sub(1));
    } else {
        // Cut after the distinct value holding the q-th quantile, once per quantile.
        for q in 1..max_bins {
            let target = q * n / max_bins;
            let idx = distinct.partition_point(|(_, upto)| *upto < target.max(1));
            if idx + 1 < distinct.len() && cuts.last() != Some(&idx) {
                cuts.push(idx);
            }
        }
    }
    cuts.into_iter()
        .map(|i| {
            let (a, b) = (distinct[i].0, distinct[i + 1].0);
            let mid = ((a as f64 + b as f64) / 2.0) as f32;
            if mid >= a && mid < b { mid } else { a }
        })
        .collect()
}

struct TreeBuilder<'a> {
    binned: &'a Binned,
    g: &'a [f64],
    h: &'a [f64],
    spec: &'a GradientBoostingSpec,
    nodes: Vec<Node>,
}

struct Best {
    gain: f64,
    feature: usize,
    bin: usize,
}

impl TreeBuilder<'_> {
    /// Builds the subtree over `rows` and returns its node index.
    fn build(&mut self, rows: &mut [usize], depth: usize) -> usize {
        let (gs, hs) = rows.iter().fold((0.0, 0.0), |(a, b), &i| (a + self.g[i], b + self.h[i]));
        let id = self.nodes.len();
        let leaf_value = (-gs / (hs + self.spec.l2) * self.spec.learning_rate) as f32;
        self.nodes.push(Node::Leaf { value: leaf_value });
        if depth >= self.spec.max_depth || rows.len() < 2 * self.spec.min_samples_leaf.max(1) {
            return id;
        }
        let Some(best) = self.best_split(rows, gs, hs) else { return id };
        let threshold = self.binned.thresholds[best.feature][best.bin];
        let column = &self.binned.bins[best.feature * self.binned.rows..(best.feature + 1) * self.binned.rows];
        let mut split = 0;
        for j in 0..rows.len() {
            if column[rows[j]] as usize <= best.bin {
                rows.swap(split, j);
                split += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(split);
        let left = self.build(left_rows, depth + 1);
        let right = self.build(right_rows, depth + 1);
        self.nodes[id] = Node::Split { feature: best.feature, threshold, left, right };
        id
    }

    fn best_split(&self, rows: &[usize], gs: f64, hs: f64) -> Option<Best> {
        let lambda = self.spec.l2;
        let parent = gs * gs / (hs + lambda);
        let min_leaf = self.spec.min_samples_leaf.max(1);
        let mut best: Option<Best> = None;
        for (f, thresholds) in self.binned.thresholds.iter().enumerate() {
            if thresholds.is_empty() {
                continue;
            }
            let bins = thresholds.len() + 1;
            let mut hist = vec![(0.0f64, 0.0f64, 0usize); bins];
            let column = &self.binned.bins[f * self.binned.rows..(f + 1) * self.binned.rows];
            for &i in rows {
                let e = &mut hist[column[i] as usize];
                e.0 += self.g[i];
                e.1 += self.h[i];
                e.2 += 1;
            }
            let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0usize);
            for (b, (gb, hb, nb)) in hist.iter().enumerate().take(bins - 1) {
                gl += gb;
                hl += hb;
                nl += nb;
                let nr = rows.len() - nl;
                if nl < min_leaf {
                    continue;
                }
                if nr < min_leaf {
                    break;
                }
                let (gr, hr) = (gs - gl, hs - hl);
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                if gain > self.spec.min_gain && best.as_ref().is_none_or(|b| gain > b.gain) {
                    best = Some(Best { gain, feature: f, bin: b });
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_points_sit_between_values() {
        let mut col = vec![3.0, 1.0, 2.0, 2.0, 1.0];
        assert_eq!(cut_points(&mut col, 255), vec![1.5, 2.5]);
        // Neighbouring float32 values: no midpoint between them, the lower one is the threshold.
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        let mut col = vec![a, b];
        assert_eq!(cut_points(&mut col, 255), vec![a]);
        // Many distinct values: at most max_bins - 1 cuts.
        let mut col: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let cuts = cut_points(&mut col, 10);
        assert_eq!(cuts.len(), 9);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn fits_a_step_function() {
        let xs: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let y: Vec<f64> = xs.iter().map(|x| if *x < 100.0 { 0.0 } else { 10.0 }).collect();
        let m = Matrix { rows: 200, cols: 1, data: xs };
        let spec = GradientBoostingSpec { n_trees: 50, learning_rate: 0.3, ..GradientBoostingSpec::default() };
        let model = fit(&m, Labels::Values(&y), &spec);
        assert!((model.raw(&[10.0])[0] - 0.0).abs() < 0.01);
        assert!((model.raw(&[150.0])[0] - 10.0).abs() < 0.01);
        let Node::Split { threshold, .. } = model.trees[0][0].nodes[0] else { panic!("root is a leaf") };
        assert_eq!(threshold, 99.5);
    }
}
