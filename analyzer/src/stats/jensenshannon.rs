//! Jensen-Shannon distance, as Evidently's `jensenshannon` stattest.

use super::kl_div::rel_entr;
use super::{Result, np_sum, np_sum_by, same_len};

/// `scipy.spatial.distance.jensenshannon(reference, current)` with the natural log: both
/// arrays renormalised, m = (p + q)/2, √((Σ rel_entr(p, m) + Σ rel_entr(q, m)) / 2).
///
/// Evidently passes binned shares without zero filling. A distance in [0, √ln 2]; drift when
/// ≥ threshold (default 0.1).
pub fn jensenshannon(reference: &[f64], current: &[f64]) -> Result<f64> {
    same_len(reference, current)?;
    let sp = np_sum(reference);
    let sq = np_sum(current);
    let p = |i: usize| reference[i] / sp;
    let q = |i: usize| current[i] / sq;
    let m = |i: usize| (p(i) + q(i)) / 2.0;
    let left = np_sum_by(reference.len(), |i| rel_entr(p(i), m(i)));
    let right = np_sum_by(reference.len(), |i| rel_entr(q(i), m(i)));
    Ok(((left + right) / 2.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_is_sqrt_ln2() {
        let v = jensenshannon(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        assert!((v - 2f64.ln().sqrt()).abs() < 1e-15);
        assert_eq!(jensenshannon(&[0.2, 0.8], &[0.2, 0.8]).unwrap(), 0.0);
    }
}
