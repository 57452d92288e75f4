//! Evidently's `get_pca_df`: `PCA(n_components=k, random_state=0)` fitted on the reference,
//! `fit_transform(reference)` and `transform(current)`, as scikit-learn 1.9 computes them.
//!
//! scikit-learn picks its solver from the reference's shape (n rows, d dimensions), and so does
//! [`Solver::for_shape`]:
//!
//! - `covariance_eigh` when d ≤ 1000 and n ≥ 10·d: the eigenvectors of the covariance
//!   `(XᵀX − n·μμᵀ)/(n − 1)`, largest first; the reference is projected like the current,
//!   `X·Vₖ − μ·Vₖ`. Here XᵀX is [`linalg::gram_of_columns`] (each entry summed over the rows
//!   in order, on all cores) and the eigenvectors come from [`linalg::eigh`] (Householder
//!   tridiagonalisation and QL iterations, where LAPACK's `syevd` divides and conquers the same
//!   tridiagonal matrix): O(n·d²/2 + d³).
//! - `full` when max(n, d) ≤ 500 (or k ≥ 0.8·min(n, d)): the SVD of the centred reference,
//!   which is projected as `U·S`. Here: [`linalg::thin_svd`] (one-sided Jacobi) instead of
//!   LAPACK's `gesdd`.
//! - `randomized` otherwise (`randomized_svd` with 10 oversamples, 7 power iterations when
//!   k < 0.1·min(n, d) else 4, LU-normalised, transposed when n < d): a Gaussian start matrix
//!   drawn from `RandomState(0)` — replayed draw for draw — whose range is refined by power
//!   iterations, then the SVD of the reference projected on that range. The range is the same
//!   whichever basis represents it, so the iterations are normalised here with QR
//!   ([`linalg::orthonormal_basis`]) where scikit-learn uses LU: the results agree up to
//!   rounding. The reference is projected as scikit-learn's `U·S`, which for this solver is the
//!   projection on the refined range, not `X·Vₖ`.
//!
//! Signs follow `svd_flip(u_based_decision=False)`: each component's entry of largest
//! magnitude (the first, on ties) is positive. Components of equal (or numerically equal)
//! variance are only defined up to a rotation among themselves, in scikit-learn as here; every
//! method but `ratio` is invariant to that rotation, and `ratio` may then count differently.
//! So are components beyond the rank of the centred reference (k ≥ n): scikit-learn returns
//! some unit vectors there, this returns zeros.

use super::linalg::{self, Matrix};
use super::{Embeddings, column_means, dot};
use crate::stats::mt19937::Mt19937;
use crate::stats::{Error, Result};

/// scikit-learn's `n_oversamples` default.
const OVERSAMPLES: usize = 10;

/// The SVD solver scikit-learn's `PCA(svd_solver="auto")` picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Eigendecomposition of the covariance matrix.
    CovarianceEigh,
    /// Full SVD of the centred data.
    Full,
    /// Randomized truncated SVD.
    Randomized,
}

impl Solver {
    /// The solver for a reference of `rows × dims` and `k` components.
    pub fn for_shape(rows: usize, dims: usize, k: usize) -> Solver {
        if dims <= 1000 && rows >= 10 * dims {
            Solver::CovarianceEigh
        } else if rows.max(dims) <= 500 {
            Solver::Full
        } else if k >= 1 && (k as f64) < 0.8 * rows.min(dims) as f64 {
            Solver::Randomized
        } else {
            Solver::Full
        }
    }

    /// scikit-learn's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Solver::CovarianceEigh => "covariance_eigh",
            Solver::Full => "full",
            Solver::Randomized => "randomized",
        }
    }
}

/// A fitted PCA.
#[derive(Debug, Clone)]
pub struct Pca {
    /// The solver that fitted it.
    pub solver: Solver,
    /// Column means of the reference.
    pub mean: Vec<f64>,
    /// `k × dims`: the components, one per row, largest variance first.
    pub components: Matrix,
}

impl Pca {
    /// `transform`: `X·Vₖᵀ − μ·Vₖᵀ` (scikit-learn centres after projecting), the products
    /// blocked on all cores ([`linalg::products`]). O(n·d·k).
    pub fn transform(&self, x: Embeddings<'_>) -> Matrix {
        let k = self.components.rows;
        let offset: Vec<f64> = (0..k).map(|c| dot(&self.mean, self.components.row(c))).collect();
        let mut out = linalg::products(x.values(), &self.components.data, x.dims());
        for row in out.data.chunks_mut(k.max(1)) {
            for (o, m) in row.iter_mut().zip(&offset) {
                *o -= m;
            }
        }
        out
    }
}

/// Fits `PCA(n_components=k, random_state=0)` on `reference` and returns it with
/// `fit_transform(reference)`.
pub fn fit_transform(reference: Embeddings<'_>, k: usize) -> Result<(Pca, Matrix)> {
    let (n, d) = (reference.rows(), reference.dims());
    let solver = Solver::for_shape(n, d, k);
    let low = usize::from(solver == Solver::Randomized);
    if k < low || k > n.min(d) {
        return Err(Error::Invalid(format!(
            "n_components={k} must be between {low} and min(n_samples, n_features)={} with svd_solver='{}'",
            n.min(d),
            solver.name()
        )));
    }
    let mean = column_means(reference, 0..n);
    match solver {
        Solver::CovarianceEigh => {
            let mut c = linalg::gram_of_columns(reference.values(), d);
            let nf = n as f64;
            for i in 0..d {
                for j in 0..d {
                    c.data[i * d + j] -= nf * mean[i] * mean[j];
                    c.data[i * d + j] /= nf - 1.0;
                }
            }
            // Ascending, as LAPACK's; scikit-learn reverses them, and so equal eigenvalues.
            let (_, vectors) = linalg::eigh(&c);
            let mut components = Matrix::zeros(k, d);
            for r in 0..k {
                components.row_mut(r).copy_from_slice(vectors.row(d - 1 - r));
            }
            flip_signs(&mut components, None);
            let pca = Pca { solver, mean, components };
            let projected = pca.transform(reference);
            Ok((pca, projected))
        }
        Solver::Full => {
            let centred = centred(reference, &mean);
            let svd = linalg::thin_svd(&centred);
            let mut components = Matrix::zeros(k, d);
            components.data.copy_from_slice(&svd.vt.data[..k * d]);
            let mut us = leading_columns(&svd.us, k);
            flip_signs(&mut components, Some(&mut us));
            Ok((Pca { solver, mean, components }, us))
        }
        Solver::Randomized => {
            let (components, us) = randomized(&centred(reference, &mean), k);
            Ok((Pca { solver, mean, components }, us))
        }
    }
}

/// Evidently's `get_pca_df`: the reference's and the current's projections on the reference's
/// first `k` principal components.
pub fn project(reference: Embeddings<'_>, current: Embeddings<'_>, k: usize) -> Result<(Matrix, Matrix)> {
    let (pca, r) = fit_transform(reference, k)?;
    Ok((r, pca.transform(current)))
}

/// `_randomized_svd(x, k, n_oversamples=10, n_iter="auto", power_iteration_normalizer="auto",
/// flip_sign=False, random_state=RandomState(0))` followed by PCA's `svd_flip`: the components
/// and `U·S`.
fn randomized(x: &Matrix, k: usize) -> (Matrix, Matrix) {
    let (n, d) = (x.rows, x.cols);
    let n_iter = if (k as f64) < 0.1 * n.min(d) as f64 { 7 } else { 4 };
    let transpose = n < d;
    let m = if transpose { x.transpose() } else { x.clone() };
    let mut normal = LegacyNormal::new(0);
    let size = k + OVERSAMPLES;
    let mut q = Matrix::zeros(m.cols, size);
    for v in q.data.iter_mut() {
        *v = normal.next();
    }
    for _ in 0..n_iter {
        q = linalg::orthonormal_basis(&m.matmul(&q));
        q = linalg::orthonormal_basis(&m.t_matmul(&q));
    }
    q = linalg::orthonormal_basis(&m.matmul(&q));
    let b = q.t_matmul(&m);
    let svd = linalg::thin_svd(&b);
    let u = q.matmul(&svd.u);
    let (mut components, mut us) = if transpose {
        // U_pca = Vtᵀ, Vt_pca = Uᵀ.
        let mut us = Matrix::zeros(n, k);
        for i in 0..n {
            for c in 0..k {
                us.data[i * k + c] = svd.vt.data[c * svd.vt.cols + i] * svd.s[c];
            }
        }
        (leading_columns(&u, k).transpose(), us)
    } else {
        let mut us = leading_columns(&u, k);
        for i in 0..n {
            for (c, v) in us.row_mut(i).iter_mut().enumerate() {
                *v *= svd.s[c];
            }
        }
        let mut components = Matrix::zeros(k, d);
        components.data.copy_from_slice(&svd.vt.data[..k * d]);
        (components, us)
    };
    flip_signs(&mut components, Some(&mut us));
    (components, us)
}

/// `x − μ`, row by row.
fn centred(x: Embeddings<'_>, mean: &[f64]) -> Matrix {
    let mut c = Matrix { rows: x.rows(), cols: x.dims(), data: x.values().to_vec() };
    for i in 0..c.rows {
        for (v, m) in c.row_mut(i).iter_mut().zip(mean) {
            *v -= m;
        }
    }
    c
}

/// The first `k` columns of `m`.
fn leading_columns(m: &Matrix, k: usize) -> Matrix {
    let mut out = Matrix::zeros(m.rows, k);
    for i in 0..m.rows {
        out.row_mut(i).copy_from_slice(&m.row(i)[..k]);
    }
    out
}

/// `svd_flip(u, v, u_based_decision=False)`: each row of `components` (and the matching
/// column of `us`) times the sign of its entry of largest magnitude, the first on ties.
pub(crate) fn flip_signs(components: &mut Matrix, mut us: Option<&mut Matrix>) {
    for c in 0..components.rows {
        let row = components.row(c);
        let mut best = 0;
        for (j, v) in row.iter().enumerate() {
            if v.abs() > row[best].abs() {
                best = j;
            }
        }
        let pivot = row[best];
        let sign = if pivot > 0.0 {
            1.0
        } else if pivot < 0.0 {
            -1.0
        } else {
            0.0
        };
        for v in components.row_mut(c) {
            *v *= sign;
        }
        if let Some(us) = us.as_deref_mut() {
            for i in 0..us.rows {
                us.data[i * us.cols + c] *= sign;
            }
        }
    }
}

/// numpy's legacy `RandomState(seed).normal(0, 1)`: Marsaglia's polar method, which yields two
/// values per accepted pair and hands out the cached one first (`legacy_gauss`).
struct LegacyNormal {
    mt: Mt19937,
    cached: Option<f64>,
}

impl LegacyNormal {
    fn new(seed: u32) -> Self {
        LegacyNormal { mt: Mt19937::new(seed), cached: None }
    }

    fn next(&mut self) -> f64 {
        if let Some(g) = self.cached.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.mt.next_f64() - 1.0;
            let x2 = 2.0 * self.mt.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                // numpy calls the C library's log and sqrt, as Rust's ln and sqrt do.
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached = Some(f * x1);
                return f * x2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_normal_matches_numpy() {
        // np.random.RandomState(0).normal(size=4)
        let mut g = LegacyNormal::new(0);
        let want = [1.764052345967664, 0.4001572083672233, 0.9787379841057392, 2.240893199201458];
        for w in want {
            assert_eq!(g.next(), w);
        }
    }

    #[test]
    fn solver_choice_follows_scikit_learn() {
        assert_eq!(Solver::for_shape(1000, 32, 5), Solver::CovarianceEigh);
        assert_eq!(Solver::for_shape(30, 32, 3), Solver::Full);
        assert_eq!(Solver::for_shape(600, 64, 6), Solver::Randomized);
        assert_eq!(Solver::for_shape(40, 510, 5), Solver::Randomized);
        assert_eq!(Solver::for_shape(600, 64, 60), Solver::Full);
    }

    #[test]
    fn full_pca_of_a_line() {
        // Points on the line y = 2x: one component (1, 2)/√5, sign positive; the projection
        // is the signed distance along it from the mean.
        let x = [0.0, 0.0, 1.0, 2.0, 2.0, 4.0];
        let e = Embeddings::new(&x, 2).unwrap();
        let (pca, proj) = fit_transform(e, 1).unwrap();
        assert_eq!(pca.solver, Solver::Full);
        let s5 = 5f64.sqrt();
        assert!((pca.components.data[0] - 1.0 / s5).abs() < 1e-15);
        assert!((pca.components.data[1] - 2.0 / s5).abs() < 1e-15);
        for (p, want) in proj.data.iter().zip([-s5, 0.0, s5]) {
            assert!((p - want).abs() < 1e-14, "{p} vs {want}");
        }
    }
}
