//! Linear models on the standardized design matrix: logistic regression (binary with a sigmoid,
//! multiclass with a softmax), fitted by L-BFGS, and ridge regression, solved exactly.

use crate::preprocess::Matrix;
use crate::spec::{LogisticRegressionSpec, RidgeSpec};
use crate::{Error, Result};

/// Weights `[d, k]` row-major and one bias per output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Linear {
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub outputs: usize,
}

impl Linear {
    /// `x · W + b` for one row.
    pub(crate) fn scores(&self, x: &[f64]) -> Vec<f64> {
        let mut z = self.bias.clone();
        for (j, xj) in x.iter().enumerate() {
            if *xj != 0.0 {
                let w = &self.weights[j * self.outputs..(j + 1) * self.outputs];
                for (zc, wc) in z.iter_mut().zip(w) {
                    *zc += xj * wc;
                }
            }
        }
        z
    }
}

/// What the optimizer did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fit {
    pub iterations: usize,
    pub loss: f64,
    pub converged: bool,
}

/// Logistic regression: minimizes mean log-loss + `l2`/2 · ‖W‖² (the bias is not penalized).
/// `classes` is the number of classes (≥ 2); two classes use one sigmoid output for class 1.
pub(crate) fn fit_logistic(x: &Matrix, y: &[usize], classes: usize, spec: &LogisticRegressionSpec) -> (Linear, Fit) {
    let d = x.cols;
    let k = if classes == 2 { 1 } else { classes };
    let n = x.rows as f64;
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let (w, b) = theta.split_at(d * k);
        let model = Linear { weights: w.to_vec(), bias: b.to_vec(), outputs: k };
        let mut loss = 0.0;
        let mut dz = vec![0.0; k];
        for i in 0..x.rows {
            let row = x.row(i);
            let z = model.scores(row);
            if k == 1 {
                let t = if y[i] == 1 { 1.0 } else { 0.0 };
                loss += softplus(z[0]) - t * z[0];
                dz[0] = sigmoid(z[0]) - t;
            } else {
                let lse = log_sum_exp(&z);
                loss += lse - z[y[i]];
                for c in 0..k {
                    dz[c] = (z[c] - lse).exp() - if c == y[i] { 1.0 } else { 0.0 };
                }
            }
            for (j, xj) in row.iter().enumerate() {
                if *xj != 0.0 {
                    for c in 0..k {
                        grad[j * k + c] += xj * dz[c];
                    }
                }
            }
            for c in 0..k {
                grad[d * k + c] += dz[c];
            }
        }
        loss /= n;
        grad.iter_mut().for_each(|g| *g /= n);
        for (g, wj) in grad[..d * k].iter_mut().zip(w) {
            *g += spec.l2 * wj;
        }
        loss + 0.5 * spec.l2 * w.iter().map(|v| v * v).sum::<f64>()
    };
    let theta0 = vec![0.0; d * k + k];
    let (theta, fit) = lbfgs(objective, theta0, spec.max_iter, spec.tol);
    let (w, b) = theta.split_at(d * k);
    (Linear { weights: w.to_vec(), bias: b.to_vec(), outputs: k }, fit)
}

/// Ridge regression: minimizes mean squared error + `l2` · ‖w‖² (the bias is not penalized), by
/// solving the normal equations with a Cholesky factorization.
pub(crate) fn fit_ridge(x: &Matrix, y: &[f64], spec: &RidgeSpec) -> Result<Linear> {
    let d = x.cols;
    let m = d + 1; // the last unknown is the bias
    let n = x.rows as f64;
    let mut a = vec![0.0; m * m];
    let mut rhs = vec![0.0; m];
    let mut row = vec![0.0; m];
    for (i, yi) in y.iter().enumerate() {
        row[..d].copy_from_slice(x.row(i));
        row[d] = 1.0;
        for p in 0..m {
            if row[p] == 0.0 {
                continue;
            }
            rhs[p] += row[p] * yi / n;
            for q in 0..m {
                a[p * m + q] += row[p] * row[q] / n;
            }
        }
    }
    for p in 0..d {
        a[p * m + p] += spec.l2;
    }
    // A tiny jitter rescues an exactly singular system (l2 = 0 with collinear columns).
    let solution = cholesky_solve(&a, &rhs, m).or_else(|| {
        let mut jittered = a.clone();
        for p in 0..m {
            jittered[p * m + p] += 1e-9;
        }
        cholesky_solve(&jittered, &rhs, m)
    });
    let solution = solution.ok_or_else(|| Error::Training("ridge: the normal equations are singular".into()))?;
    Ok(Linear { weights: solution[..d].to_vec(), bias: vec![solution[d]], outputs: 1 })
}

fn cholesky_solve(a: &[f64], b: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..=i {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= l[i * m + k] * l[j * m + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * m + i] = s.sqrt();
            } else {
                l[i * m + j] = s / l[j * m + j];
            }
        }
    }
    let mut z = vec![0.0; m];
    for i in 0..m {
        let s: f64 = (0..i).map(|k| l[i * m + k] * z[k]).sum();
        z[i] = (b[i] - s) / l[i * m + i];
    }
    let mut x = vec![0.0; m];
    for i in (0..m).rev() {
        let s: f64 = (i + 1..m).map(|k| l[k * m + i] * x[k]).sum();
        x[i] = (z[i] - s) / l[i * m + i];
    }
    Some(x)
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 { z + (-z).exp().ln_1p() } else { z.exp().ln_1p() }
}

pub(crate) fn log_sum_exp(z: &[f64]) -> f64 {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Softmax, stable.
pub(crate) fn softmax(z: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(z);
    z.iter().map(|v| (v - lse).exp()).collect()
}

/// Limited-memory BFGS (history 10) with a backtracking Armijo line search. Deterministic: no
/// randomness, fixed iteration cap. Stops when the largest gradient component is below `tol`, or
/// the objective stops moving (relative change below 1e-12), or after `max_iter` iterations.
fn lbfgs(mut f: impl FnMut(&[f64], &mut [f64]) -> f64, mut x: Vec<f64>, max_iter: usize, tol: f64) -> (Vec<f64>, Fit) {
    const HISTORY: usize = 10;
    let m = x.len();
    let mut g = vec![0.0; m];
    let mut fx = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho_hist: Vec<f64> = Vec::new();
    let mut x_new = vec![0.0; m];
    let mut g_new = vec![0.0; m];
    let norm_inf = |v: &[f64]| v.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    for iter in 0..max_iter {
        if norm_inf(&g) < tol {
            return (x, Fit { iterations: iter, loss: fx, converged: true });
        }
        // Two-loop recursion: direction = -H g.
        let mut q = g.clone();
        let mut alpha = vec![0.0; s_hist.len()];
        for i in (0..s_hist.len()).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &q);
            axpy(-alpha[i], &y_hist[i], &mut q);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / norm_inf(&g).max(1.0),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for i in 0..s_hist.len() {
            let beta = rho_hist[i] * dot(&y_hist[i], &q);
            axpy(alpha[i] - beta, &s_hist[i], &mut q);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            dir = g.iter().map(|v| -v / norm_inf(&g).max(1.0)).collect();
            slope = dot(&g, &dir);
        }
        let mut step = 1.0;
        let mut accepted = false;
        let mut f_new = fx;
        for _ in 0..40 {
            for i in 0..m {
                x_new[i] = x[i] + step * dir[i];
            }
            f_new = f(&x_new, &mut g_new);
            if f_new.is_finite() && f_new <= fx + 1e-4 * step * slope {
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            return (x, Fit { iterations: iter, loss: fx, converged: false });
        }
        let s: Vec<f64> = (0..m).map(|i| x_new[i] - x[i]).collect();
        let yv: Vec<f64> = (0..m).map(|i| g_new[i] - g[i]).collect();
        let sy = dot(&s, &yv);
        let change = (fx - f_new).abs() / fx.abs().max(f_new.abs()).max(1.0);
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        fx = f_new;
        if sy > 1e-12 {
            if s_hist.len() == HISTORY {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(yv);
            rho_hist.push(1.0 / sy);
        }
        if change < 1e-12 {
            return (x, Fit { iterations: iter + 1, loss: fx, converged: true });
        }
    }
    let converged = norm_inf(&g) < tol;
    (x, Fit { iterations: max_iter, loss: fx, converged })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lbfgs_minimizes_a_quadratic() {
        // f = (x0 - 3)^2 + 10 (x1 + 1)^2
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            g[1] = 20.0 * (x[1] + 1.0);
            (x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2)
        };
        let (x, fit) = lbfgs(f, vec![0.0, 0.0], 100, 1e-10);
        assert!(fit.converged);
        assert!((x[0] - 3.0).abs() < 1e-8 && (x[1] + 1.0).abs() < 1e-8, "{x:?}");
    }

    #[test]
    fn ridge_recovers_a_line() {
        let xs: Vec<f64> = (0..50).map(|i| i as f64 / 10.0).collect();
        let y: Vec<f64> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
        let m = Matrix { rows: 50, cols: 1, data: xs };
        let model = fit_ridge(&m, &y, &RidgeSpec { l2: 0.0 }).unwrap();
        assert!((model.weights[0] - 2.0).abs() < 1e-8 && (model.bias[0] + 1.0).abs() < 1e-8, "{model:?}");
    }

    #[test]
    fn stable_helpers() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((softplus(1000.0) - 1000.0).abs() < 1e-9);
        let p = softmax(&[1000.0, 1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-12);
    }
}
