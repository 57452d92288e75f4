//! The small dense linear algebra that PCA and the kernel methods need, written out because the
//! analyzer has no linear algebra dependency: a row-major matrix; blocked, multi-threaded
//! products of many vectors with each other ([`Packed`], [`upper_tiles`], [`gram_of_rows`],
//! [`gram_of_columns`], [`products`]); two symmetric eigendecompositions, Householder
//! tridiagonalisation with implicit QL ([`eigh`], the algorithm family of LAPACK's `syev`) and
//! cyclic Jacobi ([`symmetric_eigen`]); a thin SVD (one-sided Jacobi, Hestenes) and an
//! orthonormal basis (Householder QR).
//!
//! The blocked products keep every entry a running sum in index order without fused
//! multiply-adds, so an entry has the bits of a plain loop whatever the number of threads or the
//! instruction set (the long columns of [`gram_of_columns`] are summed over fixed slices of rows,
//! whose sums are then added in order); the blocks only decide which entries are formed together.
//!
//! Jacobi methods give eigenvectors and singular vectors to full relative precision for
//! well-separated values and are short; [`eigh`] is the fast one for the leading eigenvectors of
//! a covariance, backward stable like LAPACK's. Results agree with LAPACK's up to rounding and
//! the sign of each vector; the callers fix signs as scikit-learn's `svd_flip` does. Costs:
//! [`eigh`] O(d³) (about 4d³ flops), [`symmetric_eigen`] O(d³) per sweep, [`thin_svd`]
//! O(m·n·min(m, n)) per sweep, a handful of sweeps (at most [`MAX_SWEEPS`]).

use std::ops::Range;

use super::parallel;

/// Sweeps after which a Jacobi iteration stops even if some pair is not yet orthogonal to
/// working precision (never reached on finite input in practice: convergence is quadratic);
/// also the QL iterations [`eigh`] allows per eigenvalue (it needs one to three).
pub const MAX_SWEEPS: usize = 60;

/// Vectors in a block of the blocked products: a tile of 64 × 64 products is formed from two
/// packed blocks of 64 vectors.
pub const BLOCK: usize = 64;
/// Values of each vector a tile's products take in one pass (measured on 384 values: one pass
/// is faster than three of 128, whose sums go back and forth). Longer vectors take several, each
/// sum carried over from pass to pass: the order of additions is the same whatever the passes.
const DEPTH: usize = 512;
/// Rows of a work item of [`gram_of_columns`].
const SLICE: usize = 8192;
/// Rows of the columns [`gram_of_columns`] packs at once: its six blocks of 384 columns then
/// take 768 KiB, and every tile between them is formed before the next rows are packed.
const COLUMN_ROWS: usize = 256;
/// Vectors in a panel of a [`Packed`] block, and products the kernel forms per vector at once.
const LANES: usize = 8;

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

    /// A `rows × cols` matrix of zeros, or `None` when that does not fit in memory.
    pub fn try_zeros(rows: usize, cols: usize) -> Option<Self> {
        let len = rows.checked_mul(cols)?;
        let mut data = Vec::new();
        data.try_reserve_exact(len).ok()?;
        data.resize(len, 0.0);
        Some(Matrix { rows, cols, data })
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

/// Up to [`BLOCK`] vectors of equal length, packed for [`Packed::products_into`]: panels of
/// eight vectors holding their k-th values side by side for k = 0, 1, …, zeros past the
/// last vector, so that the kernel reads both operands in order.
#[derive(Debug)]
pub struct Packed {
    panels: Vec<f64>,
    count: usize,
    len: usize,
}

impl Packed {
    /// Rows `rows` of the row-major `values` (`dims` values a row) as vectors.
    pub fn rows(values: &[f64], dims: usize, rows: Range<usize>) -> Packed {
        let mut packed = Packed::zeros(rows.len(), dims);
        for (panel, first) in packed.panels.chunks_exact_mut(LANES * dims).zip(rows.clone().step_by(LANES)) {
            let mut sources: [&[f64]; LANES] = [&[]; LANES];
            for (source, i) in sources.iter_mut().zip(first..rows.end) {
                *source = &values[i * dims..(i + 1) * dims];
            }
            if sources.iter().all(|s| s.len() == dims) {
                // A whole panel: written in order, its rows read side by side.
                for (k, lanes) in panel.chunks_exact_mut(LANES).enumerate() {
                    for (to, source) in lanes.iter_mut().zip(&sources) {
                        *to = source[k];
                    }
                }
            } else {
                for (lane, source) in sources.iter().enumerate() {
                    for (k, &v) in source.iter().enumerate() {
                        panel[k * LANES + lane] = v;
                    }
                }
            }
        }
        packed
    }

    /// Columns `cols` of the row-major `values` (`dims` values a row) as vectors, their values
    /// in the rows `rows`.
    pub fn columns(values: &[f64], dims: usize, cols: Range<usize>, rows: Range<usize>) -> Packed {
        let mut packed = Packed::zeros(cols.len(), rows.len());
        let len = packed.len;
        for (k, i) in rows.enumerate() {
            let row = &values[i * dims + cols.start..i * dims + cols.end];
            // Whole panels' values are moved as arrays: a copy of a run-time length is a call.
            let whole = row.len() / LANES * LANES;
            for (p, lanes) in row[..whole].chunks_exact(LANES).enumerate() {
                let to: &mut [f64; LANES] =
                    (&mut packed.panels[(p * len + k) * LANES..][..LANES]).try_into().expect("LANES values");
                *to = lanes.try_into().expect("LANES values");
            }
            let rest = &row[whole..];
            if !rest.is_empty() {
                packed.panels[(whole / LANES * len + k) * LANES..][..rest.len()].copy_from_slice(rest);
            }
        }
        packed
    }

    fn zeros(count: usize, len: usize) -> Packed {
        assert!(count <= BLOCK, "a packed block holds at most {BLOCK} vectors");
        Packed { panels: vec![0.0; count.div_ceil(LANES) * LANES * len], count, len }
    }

    /// Number of vectors.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The values `ks` of the panel holding vector `first`.
    fn panel(&self, first: usize, ks: &Range<usize>) -> &[f64] {
        let start = first / LANES * LANES * self.len;
        &self.panels[start + ks.start * LANES..start + ks.end * LANES]
    }

    /// `out[i·stride + j] += Σ_k selfᵢ[k]·otherⱼ[k]` for every vector i of `self` and j of
    /// `other`, the sum continued from `out`'s value in k order, each product and each sum
    /// rounded on its own (no fused multiply-add): the bits of a plain running sum. Formed in
    /// passes of 512 values.
    ///
    /// Runs the AVX2 build of the kernel where the CPU has AVX2: the same operations in the same
    /// order, four lanes per instruction instead of two, so the same bits.
    pub fn products_into(&self, other: &Packed, out: &mut [f64], stride: usize) {
        assert_eq!(self.len, other.len, "products of vectors of different lengths");
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2");
        for k in (0..self.len).step_by(DEPTH) {
            let ks = k..(k + DEPTH).min(self.len);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports AVX2, as checked above.
                unsafe { products_avx2(self, other, ks, out, stride) };
                continue;
            }
            products_kernel(self, other, ks, out, stride);
        }
    }
}

/// [`products_kernel`] compiled for AVX2 (without FMA, which would round differently).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn products_avx2(a: &Packed, b: &Packed, ks: Range<usize>, out: &mut [f64], stride: usize) {
    products_kernel(a, b, ks, out, stride);
}

/// One pass of [`Packed::products_into`] over the values `ks`: four vectors of `a` against a
/// panel of `b` at a time, their 32 running sums held in registers while the values stream past.
#[inline(always)]
fn products_kernel(a: &Packed, b: &Packed, ks: Range<usize>, out: &mut [f64], stride: usize) {
    const ROWS: usize = 4;
    for i0 in (0..a.count).step_by(ROWS) {
        let rows = ROWS.min(a.count - i0);
        let pa = a.panel(i0, &ks);
        for j0 in (0..b.count).step_by(LANES) {
            let cols = LANES.min(b.count - j0);
            // Whole rows of eight are moved as arrays: a copy of a run-time length is a call.
            let mut sums = [[0.0; LANES]; ROWS];
            for (r, s) in sums.iter_mut().enumerate().take(rows) {
                let from = &out[(i0 + r) * stride + j0..][..cols];
                match <&[f64; LANES]>::try_from(from) {
                    Ok(whole) => *s = *whole,
                    Err(_) => s[..cols].copy_from_slice(from),
                }
            }
            micro_kernel(pa, i0 % LANES, b.panel(j0, &ks), &mut sums);
            for (r, s) in sums.iter().enumerate().take(rows) {
                let to = &mut out[(i0 + r) * stride + j0..][..cols];
                match <&mut [f64; LANES]>::try_from(&mut *to) {
                    Ok(whole) => *whole = *s,
                    Err(_) => to.copy_from_slice(&s[..cols]),
                }
            }
        }
    }
}

/// `sums[r][s] += a[k][lane + r]·b[k][s]` for k in order, over two panels. Indexed loops over
/// fixed-size arrays: the form the compiler keeps in registers and unrolls into whole vectors.
#[inline(always)]
fn micro_kernel<const ROWS: usize>(a: &[f64], lane: usize, b: &[f64], sums: &mut [[f64; LANES]; ROWS]) {
    let mut acc = *sums;
    for (ak, bk) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        let ak: &[f64; ROWS] = ak[lane..lane + ROWS].try_into().expect("ROWS values");
        let bk: &[f64; LANES] = bk.try_into().expect("LANES values");
        for r in 0..ROWS {
            for s in 0..LANES {
                acc[r][s] += ak[r] * bk[s];
            }
        }
    }
    *sums = acc;
}

/// `0..count` in consecutive blocks of [`BLOCK`].
pub fn blocks(count: usize) -> Vec<Range<usize>> {
    (0..count).step_by(BLOCK).map(|start| start..(start + BLOCK).min(count)).collect()
}

/// Rows `ranges` of the row-major `values` (`dims` values a row), each packed (on all cores).
pub fn pack_rows(values: &[f64], dims: usize, ranges: &[Range<usize>]) -> Vec<Packed> {
    super::parallel_map(ranges.len(), |b| Packed::rows(values, dims, ranges[b].clone()))
}

/// The products of many vectors with each other, tile by tile, on all cores.
///
/// For every pair of the packed `blocks` ib ≤ jb, `visit(&mut states[ib], ib, jb, tile)` gets
/// their products, row-major (a row per vector of block ib, a value per vector of block jb),
/// each a running sum in k order. A work item is a block ib with all its tiles, visited in jb
/// order, so a state's content depends on neither the number of threads nor their timing; the
/// states come back in order.
///
/// Cost: O(vectors²·len/2) time; a tile per thread.
pub fn upper_tiles<S: Send>(
    blocks: &[Packed],
    states: Vec<S>,
    visit: impl Fn(&mut S, usize, usize, &[f64]) + Sync,
) -> Vec<S> {
    assert_eq!(blocks.len(), states.len(), "a state per block");
    parallel(states, |ib, state| {
        let mut tile = Vec::new();
        for (jb, b) in blocks.iter().enumerate().skip(ib) {
            tile.clear();
            tile.resize(blocks[ib].count * b.count, 0.0);
            blocks[ib].products_into(b, &mut tile, b.count);
            visit(state, ib, jb, &tile);
        }
    })
}

/// `a·aᵀ` for the row-major `a` (`dims` values a row): the products of its rows, each a running
/// sum in index order (the bits of a plain `dot`). O(rows²·dims/2) time on all cores.
pub fn gram_of_rows(a: &[f64], dims: usize) -> Matrix {
    let mut g = Matrix::zeros(a.len() / dims, a.len() / dims);
    gram_of_rows_into(a, dims, &mut g);
    g
}

/// [`gram_of_rows`] into `g`, a zero matrix of `rows × rows` the caller allocated. The upper
/// block triangle is formed ([`upper_tiles`]), the rest mirrored: a product and its mirror have
/// the same bits, the same factors in the same order.
pub fn gram_of_rows_into(a: &[f64], dims: usize, g: &mut Matrix) {
    let count = a.len() / dims;
    assert_eq!((g.rows, g.cols), (count, count), "a row and a column of the Gram matrix per row of a");
    let ranges = blocks(count);
    let strips: Vec<&mut [f64]> = g.data.chunks_mut(BLOCK * count.max(1)).collect();
    upper_tiles(&pack_rows(a, dims, &ranges), strips, |strip, _, jb, tile| {
        let cols = ranges[jb].clone();
        for (row, products) in strip.chunks_mut(count).zip(tile.chunks(cols.len())) {
            row[cols.clone()].copy_from_slice(products);
        }
    });
    mirror_upper_blocks(g);
}

/// Copies the blocks above the diagonal blocks of the square `g` to their mirror images below,
/// a block at a time (a column of a large matrix read one entry a row would miss the cache on
/// every entry).
fn mirror_upper_blocks(g: &mut Matrix) {
    let n = g.rows;
    for i0 in (BLOCK..n).step_by(BLOCK) {
        for j0 in (0..i0).step_by(BLOCK) {
            for i in i0..(i0 + BLOCK).min(n) {
                for j in j0..j0 + BLOCK {
                    g.data[i * n + j] = g.data[j * n + i];
                }
            }
        }
    }
}

/// `aᵀ·a` for the row-major `a` (`cols` values a row): the products of its columns, each summed
/// over slices of 8192 rows, a running sum over the rows within a slice and the slices'
/// sums added in order (the bits of [`Matrix::t_matmul`] when there is one slice). A work item
/// is a slice: it reads its rows once, whatever the number of columns, and forms the upper block
/// triangle of its slice's product, which is mirrored. O(rows·cols²/2) time on all cores,
/// O(cols²) memory per slice.
pub fn gram_of_columns(a: &[f64], cols: usize) -> Matrix {
    let rows = a.len() / cols;
    let ranges = blocks(cols);
    let partials = super::parallel_map(rows.div_ceil(SLICE), |slice| {
        let mut g = Matrix::zeros(cols, cols);
        let end = ((slice + 1) * SLICE).min(rows);
        for k in (slice * SLICE..end).step_by(COLUMN_ROWS) {
            let ks = k..(k + COLUMN_ROWS).min(end);
            let packed: Vec<Packed> = ranges.iter().map(|c| Packed::columns(a, cols, c.clone(), ks.clone())).collect();
            for (ib, (a_block, i)) in packed.iter().zip(&ranges).enumerate() {
                for (b_block, j) in packed[ib..].iter().zip(&ranges[ib..]) {
                    a_block.products_into(b_block, &mut g.data[i.start * cols + j.start..], cols);
                }
            }
        }
        g
    });
    let mut g = Matrix::zeros(cols, cols);
    for partial in &partials {
        for (sum, x) in g.data.iter_mut().zip(&partial.data) {
            *sum += x;
        }
    }
    mirror_upper_blocks(&mut g);
    g
}

/// `a·bᵀ` for the row-major `a` and `b` (`dims` values a row): `out[i][j]` the product of row
/// i of `a` with row j of `b`, a running sum in index order (the bits of a plain `dot`).
/// O(rows_a·rows_b·dims) time on all cores, a work item per block of rows of `a`; `b` is
/// packed once and shared.
pub fn products(a: &[f64], b: &[f64], dims: usize) -> Matrix {
    let (ra, rb) = (a.len() / dims, b.len() / dims);
    let mut out = Matrix::zeros(ra, rb);
    let (row_blocks, col_blocks) = (blocks(ra), blocks(rb));
    let packed_b = pack_rows(b, dims, &col_blocks);
    let strips: Vec<&mut [f64]> = out.data.chunks_mut(BLOCK * rb.max(1)).collect();
    parallel(strips, |ib, strip| {
        let pa = Packed::rows(a, dims, row_blocks[ib].clone());
        for (cols, pb) in col_blocks.iter().zip(&packed_b) {
            pa.products_into(pb, &mut strip[cols.start..], rb);
        }
    });
    out
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

/// Eigenvalues and eigenvectors of the symmetric matrix `a` (its upper triangle is read):
/// `(values, vectors)`, values ascending as LAPACK's `eigh` returns them, `vectors` holding the
/// unit eigenvector of `values[j]` in row j.
///
/// Householder reduction to a tridiagonal matrix, then implicit QL iterations with Wilkinson
/// shifts on it (EISPACK's `tql2`, as in JAMA), the rotations accumulated on the rows of the
/// reduction's orthogonal factor (Golub & Van Loan §8.3). Backward stable: eigenvectors of
/// eigenvalues separated by more than ε·‖a‖ agree with LAPACK's to rounding. About 4·d³ flops,
/// against d³ per sweep for [`symmetric_eigen`] (which needs 6 to 10 sweeps).
pub fn eigh(a: &Matrix) -> (Vec<f64>, Matrix) {
    let n = a.rows;
    assert_eq!(n, a.cols, "eigh needs a square matrix");
    let (mut diagonal, mut off, mut z) = tridiagonalize(a);
    tridiagonal_ql(&mut diagonal, &mut off, &mut z);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| diagonal[i].total_cmp(&diagonal[j]));
    let mut vectors = Matrix::zeros(n, n);
    for (r, &j) in order.iter().enumerate() {
        vectors.row_mut(r).copy_from_slice(z.row(j));
    }
    (order.iter().map(|&j| diagonal[j]).collect(), vectors)
}

/// Householder reduction of the symmetric `a` (upper triangle read) to a tridiagonal T with
/// a = Q·T·Qᵀ: T's diagonal, its off-diagonal (T[i][i + 1] at i, then a 0) and Qᵀ. Step k
/// reflects row k right of the diagonal onto its first axis and applies the reflection
/// H = I − β·v·vᵀ to the trailing block on both sides, as A − v·wᵀ − w·vᵀ with
/// w = p − (β·pᵀv/2)·v, p = β·A·v (Golub & Van Loan, Algorithm 8.3.1).
fn tridiagonalize(a: &Matrix) -> (Vec<f64>, Vec<f64>, Matrix) {
    let n = a.rows;
    let mut t = a.clone();
    for i in 0..n {
        for j in 0..i {
            t.data[i * n + j] = t.data[j * n + i];
        }
    }
    let (mut diagonal, mut off) = (vec![0.0; n], vec![0.0; n]);
    let mut qt = Matrix::zeros(n, n);
    for i in 0..n {
        qt.data[i * n + i] = 1.0;
    }
    let (mut p, mut w, mut u) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for k in 0..n {
        diagonal[k] = t.data[k * n + k];
        if k + 1 >= n {
            break;
        }
        let mut v = t.row(k)[k + 1..].to_vec();
        if k + 2 == n {
            off[k] = v[0];
            continue;
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let alpha = if v[0] > 0.0 { -norm } else { norm };
        v[0] -= alpha;
        off[k] = alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        if vv == 0.0 {
            // Row k is already zero right of the diagonal: nothing to reflect.
            continue;
        }
        let beta = 2.0 / vv;
        let m = v.len();
        let trailing = |i: usize| (k + 1 + i) * n + k + 1;
        for (i, pi) in p[..m].iter_mut().enumerate() {
            *pi = beta * super::dot_lanes(&t.data[trailing(i)..trailing(i) + m], &v);
        }
        let half = beta / 2.0 * super::dot_lanes(&p[..m], &v);
        for ((wi, pi), vi) in w.iter_mut().zip(&p[..m]).zip(&v) {
            *wi = pi - half * vi;
        }
        for i in 0..m {
            let (vi, wi) = (v[i], w[i]);
            for ((x, &vj), &wj) in t.data[trailing(i)..trailing(i) + m].iter_mut().zip(&v).zip(&w[..m]) {
                *x -= vi * wj + wi * vj;
            }
        }
        // Qᵀ ← H·Qᵀ: the rows k + 1.. less β·v·(vᵀ·those rows).
        u.fill(0.0);
        for (i, &vi) in v.iter().enumerate() {
            for (ui, &q) in u.iter_mut().zip(qt.row(k + 1 + i)) {
                *ui += vi * q;
            }
        }
        for (i, &vi) in v.iter().enumerate() {
            for (q, &ui) in qt.row_mut(k + 1 + i).iter_mut().zip(&u) {
                *q -= beta * vi * ui;
            }
        }
    }
    (diagonal, off, qt)
}

/// Eigenvalues of the symmetric tridiagonal matrix with `diagonal` and `off` (off[i] couples i
/// and i + 1, the last is 0), left in `diagonal`, by implicit QL iterations with Wilkinson
/// shifts (EISPACK's `tql2`); each rotation also turns rows i, i + 1 of `z`, whose row j ends as
/// the eigenvector of `diagonal[j]` when `z` starts as Qᵀ of the reduction. Stops iterating on an
/// eigenvalue after [`MAX_SWEEPS`] iterations (one to three suffice on finite input).
fn tridiagonal_ql(diagonal: &mut [f64], off: &mut [f64], z: &mut Matrix) {
    let n = diagonal.len();
    let (d, e) = (diagonal, off);
    let mut shift = 0.0;
    let mut scale = 0.0f64;
    for l in 0..n {
        scale = scale.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m + 1 < n && e[m].abs() > f64::EPSILON * scale {
            m += 1;
        }
        if m > l {
            for _ in 0..MAX_SWEEPS {
                let g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let r = if p < 0.0 { -p.hypot(1.0) } else { p.hypot(1.0) };
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let h = g - d[l];
                for x in &mut d[l + 2..] {
                    *x -= h;
                }
                shift += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    let g = c * e[i];
                    let h = c * p;
                    let r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    let (upper, lower) = z.data.split_at_mut((i + 1) * n);
                    for (zi, zi1) in upper[i * n..].iter_mut().zip(&mut lower[..n]) {
                        let (a, b) = (*zi, *zi1);
                        *zi1 = s * a + c * b;
                        *zi = c * a - s * b;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= f64::EPSILON * scale || e[l].is_nan() {
                    break;
                }
            }
        }
        d[l] += shift;
        e[l] = 0.0;
    }
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

    fn identity(n: usize) -> Matrix {
        let mut eye = Matrix::zeros(n, n);
        for i in 0..n {
            eye.data[i * n + i] = 1.0;
        }
        eye
    }

    #[test]
    fn blocked_products_are_plain_running_sums() {
        // Sizes off every block boundary, and vectors longer than one pass (DEPTH).
        for (ra, rb, dims) in [(70, 131, 37), (5, 3, 600), (64, 64, 1), (130, 9, 1100)] {
            let (a, b) = (sample(ra, dims), sample(rb, dims));
            let got = products(&a.data, &b.data, dims);
            for i in 0..ra {
                for j in 0..rb {
                    assert_eq!(
                        got.data[i * rb + j],
                        super::super::dot(a.row(i), b.row(j)),
                        "{ra}x{rb}x{dims} ({i}, {j})"
                    );
                }
            }
            assert_eq!(gram_of_rows(&a.data, dims), a.matmul(&a.transpose()), "{ra}x{dims}");
            assert_eq!(gram_of_columns(&a.data, dims), a.t_matmul(&a), "{ra}x{dims}");
        }
        // Past one slice of rows, the slices' sums are added: equal to rounding.
        let tall = sample(2 * SLICE + 77, 70);
        let (got, want) = (gram_of_columns(&tall.data, 70), tall.t_matmul(&tall));
        for (g, w) in got.data.iter().zip(&want.data) {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
        }
        assert_eq!(got, got.transpose());
        assert_eq!(gram_of_columns(&[], 3), Matrix::zeros(3, 3));
        assert_eq!(products(&[], &[1.0, 2.0], 2), Matrix::zeros(0, 1));
    }

    #[test]
    fn every_build_of_the_kernel_gives_the_same_bits() {
        let (x, y) = (sample(61, 300), sample(45, 300));
        let (a, b) = (Packed::rows(&x.data, 300, 0..61), Packed::rows(&y.data, 300, 0..45));
        let (mut plain, mut dispatched) = (vec![0.5; 61 * 45], vec![0.5; 61 * 45]);
        products_kernel(&a, &b, 0..300, &mut plain, 45);
        a.products_into(&b, &mut dispatched, 45);
        assert_eq!(plain, dispatched);
    }

    /// `vectors` are orthonormal rows and a·vⱼ = λⱼ·vⱼ, within `tol` of a's largest entry.
    fn assert_eigen(a: &Matrix, values: &[f64], vectors: &Matrix, tol: f64) {
        let n = a.rows;
        let scale = a.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        assert!(close(&vectors.matmul(&vectors.transpose()), &identity(n), 1e-14));
        for (j, &lambda) in values.iter().enumerate() {
            let v = vectors.row(j);
            for i in 0..n {
                let av: f64 = a.row(i).iter().zip(v).map(|(x, y)| x * y).sum();
                assert!(
                    (av - lambda * v[i]).abs() <= tol * scale,
                    "λ{j} = {lambda}: row {i} off by {}",
                    av - lambda * v[i]
                );
            }
        }
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "ascending: {values:?}");
    }

    #[test]
    fn eigh_of_known_matrices() {
        let (values, vectors) = eigh(&Matrix { rows: 2, cols: 2, data: vec![2.0, 1.0, 1.0, 2.0] });
        assert!((values[0] - 1.0).abs() < 1e-15 && (values[1] - 3.0).abs() < 1e-15, "{values:?}");
        assert_eigen(&Matrix { rows: 2, cols: 2, data: vec![2.0, 1.0, 1.0, 2.0] }, &values, &vectors, 1e-15);
        for n in [0, 1, 3] {
            let (values, vectors) = eigh(&Matrix::zeros(n, n));
            assert_eq!((values, vectors), (vec![0.0; n], identity(n)));
        }
        let (values, vectors) = eigh(&identity(5));
        assert_eq!((values, vectors), (vec![1.0; 5], identity(5)));
    }

    #[test]
    fn eigh_decomposes_covariances_and_repeated_eigenvalues() {
        let x = sample(200, 37);
        let c = x.t_matmul(&x);
        let (values, vectors) = eigh(&c);
        assert_eigen(&c, &values, &vectors, 1e-13);
        let (mut jacobi, _) = symmetric_eigen(&c);
        jacobi.sort_by(f64::total_cmp);
        for (a, b) in values.iter().zip(&jacobi) {
            assert!((a - b).abs() <= 1e-13 * jacobi[36], "{a} vs {b}");
        }
        // Q·diag(λ)·Qᵀ with λ repeated: each eigenspace is found whole, its vectors orthonormal.
        let q = orthonormal_basis(&sample(9, 9));
        let lambda = [-1.0, 2.0, 2.0, 2.0, 0.0, 0.0, 5.0, 5.0, 7.5];
        let mut a = Matrix::zeros(9, 9);
        for i in 0..9 {
            for j in 0..9 {
                a.data[i * 9 + j] = (0..9).map(|k| q.data[i * 9 + k] * lambda[k] * q.data[j * 9 + k]).sum();
            }
        }
        let (values, vectors) = eigh(&a);
        let mut want = lambda.to_vec();
        want.sort_by(f64::total_cmp);
        for (got, want) in values.iter().zip(&want) {
            assert!((got - want).abs() < 1e-14, "{values:?}");
        }
        assert_eigen(&a, &values, &vectors, 1e-14);
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
