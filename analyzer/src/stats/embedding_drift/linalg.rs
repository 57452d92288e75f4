//! The small dense linear algebra that PCA needs, written out because the analyzer has no
//! linear algebra dependency: a row-major matrix, a symmetric eigendecomposition (cyclic
//! Jacobi), a thin SVD (one-sided Jacobi, Hestenes) and an orthonormal basis (Householder QR).
//!
//! Jacobi methods were chosen over LAPACK's algorithms for their accuracy (eigenvectors and
//! singular vectors to full relative precision for well-separated values) and their brevity.
//! Results agree with LAPACK's up to rounding and the sign of each vector; the callers fix
//! signs as scikit-learn's `svd_flip` does. Costs: [`symmetric_eigen`] O(d³) per sweep,
//! [`thin_svd`] O(m·n·min(m, n)) per sweep, a handful of sweeps (at most [`MAX_SWEEPS`]).

/// Sweeps after which a Jacobi iteration stops even if some pair is not yet orthogonal to
/// working precision (never reached on finite input in practice: convergence is quadratic).
pub const MAX_SWEEPS: usize = 60;

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows × cols` values, row after row.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        let mut t = Matrix::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        t
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Matrix) -> Matrix {
        assert_eq!(self.cols, other.rows, "matmul shapes");
        let mut out = Matrix::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            let a = self.row(i);
            let o = &mut out.data[i * other.cols..(i + 1) * other.cols];
            for (k, &aik) in a.iter().enumerate() {
                for (oj, &bkj) in o.iter_mut().zip(other.row(k)) {
                    *oj += aik * bkj;
                }
            }
        }
        out
    }

    /// `selfᵀ · other`, without forming the transpose.
    pub fn t_matmul(&self, other: &Matrix) -> Matrix {
        assert_eq!(self.rows, other.rows, "t_matmul shapes");
        let mut out = Matrix::zeros(self.cols, other.cols);
        for k in 0..self.rows {
            let b = other.row(k);
            for (i, &aki) in self.row(k).iter().enumerate() {
                let o = &mut out.data[i * other.cols..(i + 1) * other.cols];
                for (oj, &bkj) in o.iter_mut().zip(b) {
                    *oj += aki * bkj;
                }
            }
        }
        out
    }
}

/// Eigenvalues and eigenvectors of the symmetric matrix `a` (only its values are read, both
/// triangles): `(values, vectors)` with `vectors` holding the unit eigenvector of `values[j]`
/// in column `j`, in no particular order. Cyclic Jacobi rotations (Golub & Van Loan §8.5).
pub fn symmetric_eigen(a: &Matrix) -> (Vec<f64>, Matrix) {
    let n = a.rows;
    assert_eq!(n, a.cols, "symmetric_eigen needs a square matrix");
    let mut a = a.clone();
    let mut v = Matrix::zeros(n, n);
    for i in 0..n {
        v.data[i * n + i] = 1.0;
    }
    for sweep in 0..MAX_SWEEPS {
        let mut off = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                off += a.data[i * n + j].abs();
            }
        }
        if off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a.data[p * n + q];
                let (app, aqq) = (a.data[p * n + p], a.data[q * n + q]);
                // Numerical Recipes' rule: after a few sweeps, an element too small to change
                // either diagonal entry is set to zero instead of rotated away.
                let g = 100.0 * apq.abs();
                if sweep > 3 && app.abs() + g == app.abs() && aqq.abs() + g == aqq.abs() {
                    a.data[p * n + q] = 0.0;
                    a.data[q * n + p] = 0.0;
                    continue;
                }
                if apq == 0.0 {
                    continue;
                }
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta.is_infinite() { 0.0 } else { t };
                if t == 0.0 {
                    continue;
                }
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J on rows and columns p, q.
                for k in 0..n {
                    let (akp, akq) = (a.data[k * n + p], a.data[k * n + q]);
                    a.data[k * n + p] = c * akp - s * akq;
                    a.data[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a.data[p * n + k], a.data[q * n + k]);
                    a.data[p * n + k] = c * apk - s * aqk;
                    a.data[q * n + k] = s * apk + c * aqk;
                }
                a.data[p * n + q] = 0.0;
                a.data[q * n + p] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v.data[k * n + p], v.data[k * n + q]);
                    v.data[k * n + p] = c * vkp - s * vkq;
                    v.data[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a.data[i * n + i]).collect(), v)
}

/// A thin singular value decomposition `a = u · diag(s) · vt`, singular values descending.
#[derive(Debug, Clone)]
pub struct Svd {
    /// `rows × p` left singular vectors (columns), p = min(rows, cols).
    pub u: Matrix,
    /// `p` singular values, descending.
    pub s: Vec<f64>,
    /// `p × cols` right singular vectors (rows).
    pub vt: Matrix,
    /// `rows × p`: `u · diag(s)`, the columns as the rotations left them (more accurate than
    /// the product when a singular value is tiny).
    pub us: Matrix,
}

/// Thin SVD of `a` by one-sided Jacobi rotations on the columns of `a` (or of `aᵀ` when `a`
/// is wide). A singular vector whose singular value is exactly 0 is left as zeros.
pub fn thin_svd(a: &Matrix) -> Svd {
    if a.rows >= a.cols {
        let (w, v, s) = hestenes(a);
        // a·V = W = U·Σ.
        let order = descending(&s);
        let p = a.cols;
        let mut out = Svd {
            u: Matrix::zeros(a.rows, p),
            s: order.iter().map(|&j| s[j]).collect(),
            vt: Matrix::zeros(p, a.cols),
            us: Matrix::zeros(a.rows, p),
        };
        for (k, &j) in order.iter().enumerate() {
            for i in 0..a.rows {
                let x = w[j * a.rows + i];
                out.us.data[i * p + k] = x;
                out.u.data[i * p + k] = if s[j] > 0.0 { x / s[j] } else { 0.0 };
            }
            for i in 0..a.cols {
                out.vt.data[k * a.cols + i] = v.data[i * a.cols + j];
            }
        }
        out
    } else {
        let t = thin_svd(&a.transpose());
        // aᵀ = U'·Σ·V'ᵀ, so a = V'·Σ·U'ᵀ.
        let mut us = t.vt.transpose();
        for i in 0..us.rows {
            for (x, s) in us.row_mut(i).iter_mut().zip(&t.s) {
                *x *= s;
            }
        }
        Svd { u: t.vt.transpose(), s: t.s, vt: t.u.transpose(), us }
    }
}

/// Indices of `s` by descending value (ties keep their order).
fn descending(s: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&i, &j| s[j].total_cmp(&s[i]));
    order
}

/// One-sided Jacobi on the columns of a tall `a` (rows ≥ cols): returns the rotated columns
/// `w` (column-major, `cols` columns of `rows` values, mutually orthogonal), the accumulated
/// rotation `v` (cols × cols, row-major, a·v = w) and the column norms (singular values).
fn hestenes(a: &Matrix) -> (Vec<f64>, Matrix, Vec<f64>) {
    let (m, n) = (a.rows, a.cols);
    let mut w = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            w[j * m + i] = a.data[i * n + j];
        }
    }
    let mut v = Matrix::zeros(n, n);
    for i in 0..n {
        v.data[i * n + i] = 1.0;
    }
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (cp, cq) = (&w[p * m..(p + 1) * m], &w[q * m..(q + 1) * m]);
                let (mut alpha, mut beta, mut gamma) = (0.0, 0.0, 0.0);
                for (x, y) in cp.iter().zip(cq) {
                    alpha += x * x;
                    beta += y * y;
                    gamma += x * y;
                }
                if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                let (lo, hi) = w.split_at_mut(q * m);
                for (x, y) in lo[p * m..(p + 1) * m].iter_mut().zip(&mut hi[..m]) {
                    let (xp, xq) = (*x, *y);
                    *x = c * xp - s * xq;
                    *y = s * xp + c * xq;
                }
                for k in 0..n {
                    let (vp, vq) = (v.data[k * n + p], v.data[k * n + q]);
                    v.data[k * n + p] = c * vp - s * vq;
                    v.data[k * n + q] = s * vp + c * vq;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let s = (0..n).map(|j| w[j * m..(j + 1) * m].iter().map(|x| x * x).sum::<f64>().sqrt()).collect();
    (w, v, s)
}

/// An orthonormal basis of the column space of `a`: the `rows × min(rows, cols)` factor Q of
/// a Householder QR (`scipy.linalg.qr(mode="economic")` up to the signs of its columns).
pub fn orthonormal_basis(a: &Matrix) -> Matrix {
    let (m, n) = (a.rows, a.cols);
    let p = m.min(n);
    // Column-major working copy; the Householder vectors replace the columns below the diagonal.
    let mut r: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| a.data[i * n + j]).collect()).collect();
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(p);
    for k in 0..p {
        let x = &r[k][k..];
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut v = x.to_vec();
        if norm == 0.0 {
            vs.push(vec![0.0; m - k]);
            continue;
        }
        let alpha = if x[0] >= 0.0 { -norm } else { norm };
        v[0] -= alpha;
        let vnorm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        for x in v.iter_mut() {
            *x /= vnorm;
        }
        for col in r.iter_mut().skip(k) {
            let dot: f64 = col[k..].iter().zip(&v).map(|(a, b)| a * b).sum();
            for (c, vi) in col[k..].iter_mut().zip(&v) {
                *c -= 2.0 * dot * vi;
            }
        }
        vs.push(v);
    }
    // Q = H₀·H₁·…·H_{p−1} applied to the first p columns of the identity.
    let mut q = Matrix::zeros(m, p);
    for j in 0..p {
        let mut e = vec![0.0; m];
        e[j] = 1.0;
        for k in (0..p).rev() {
            let v = &vs[k];
            let dot: f64 = e[k..].iter().zip(v).map(|(a, b)| a * b).sum();
            for (c, vi) in e[k..].iter_mut().zip(v) {
                *c -= 2.0 * dot * vi;
            }
        }
        for i in 0..m {
            q.data[i * p + j] = e[i];
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Matrix, b: &Matrix, tol: f64) -> bool {
        a.rows == b.rows && a.cols == b.cols && a.data.iter().zip(&b.data).all(|(x, y)| (x - y).abs() <= tol)
    }

    fn sample(rows: usize, cols: usize) -> Matrix {
        let mut state = 7u64;
        let data = (0..rows * cols)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        Matrix { rows, cols, data }
    }

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut vals, _) = symmetric_eigen(&Matrix { rows: 2, cols: 2, data: vec![2.0, 1.0, 1.0, 2.0] });
        vals.sort_by(f64::total_cmp);
        assert!((vals[0] - 1.0).abs() < 1e-15 && (vals[1] - 3.0).abs() < 1e-15);
    }

    #[test]
    fn eigen_reconstructs() {
        let x = sample(40, 7);
        let c = x.t_matmul(&x);
        let (vals, v) = symmetric_eigen(&c);
        let mut vl = v.clone();
        for i in 0..7 {
            for j in 0..7 {
                vl.data[i * 7 + j] *= vals[j];
            }
        }
        assert!(close(&vl.matmul(&v.transpose()), &c, 1e-12));
        assert!(close(&v.t_matmul(&v), &symmetric_eigen(&Matrix::zeros(7, 7)).1, 1e-14));
    }

    #[test]
    fn svd_reconstructs_tall_and_wide() {
        for (r, c) in [(30, 6), (6, 30), (5, 5)] {
            let a = sample(r, c);
            let svd = thin_svd(&a);
            assert!(svd.s.windows(2).all(|w| w[0] >= w[1]));
            assert!(close(&svd.us.matmul(&svd.vt), &a, 1e-14), "{r}x{c}");
            let p = r.min(c);
            let mut eye = Matrix::zeros(p, p);
            for i in 0..p {
                eye.data[i * p + i] = 1.0;
            }
            assert!(close(&svd.u.t_matmul(&svd.u), &eye, 1e-14));
            assert!(close(&svd.vt.matmul(&svd.vt.transpose()), &eye, 1e-14));
        }
    }

    #[test]
    fn basis_is_orthonormal_and_spans() {
        let a = sample(20, 4);
        let q = orthonormal_basis(&a);
        assert_eq!((q.rows, q.cols), (20, 4));
        let qtq = q.t_matmul(&q);
        let mut eye = Matrix::zeros(4, 4);
        for i in 0..4 {
            eye.data[i * 4 + i] = 1.0;
        }
        assert!(close(&qtq, &eye, 1e-14));
        // Q·Qᵀ·a = a.
        assert!(close(&q.matmul(&q.t_matmul(&a)), &a, 1e-14));
    }
}
