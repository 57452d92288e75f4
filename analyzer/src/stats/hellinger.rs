//! Hellinger distance, as Evidently's `hellinger` stattest.

use super::binning::{histogram, sturges_edges};
use super::{Result, count_totals, non_empty};

/// Hellinger distance between category shares, as Evidently 0.7 `_hellinger_distance` for
/// categorical columns: √(1 − clip(Σ √(pᵢ qᵢ), 0, 1)) with p, q the shares of each sample.
///
/// Drift when ≥ threshold (default 0.1).
pub fn hellinger_categorical(reference: &[u64], current: &[u64]) -> Result<f64> {
    let (nr, nc) = count_totals(reference, current)?;
    let mut bc = 0.0;
    for (&r, &c) in reference.iter().zip(current) {
        bc += (r as f64 / nr as f64 * (c as f64 / nc as f64)).sqrt();
    }
    Ok((1.0 - bc.clamp(0.0, 1.0)).sqrt())
}

/// Hellinger distance for numerical columns as Evidently 0.7 computes it: Sturges edges over
/// the *distinct values* of the union (not the values themselves), `np.histogram(density=True)`
/// of each sample, and Σ √(h₁ h₂) · w with w the mean bin width; then √(1 − clip(·, 0, 1)).
///
/// `integer` is the column dtype being integer (numpy floors the bin width at 1).
pub fn hellinger_numerical(reference: &[f64], current: &[f64], integer: bool) -> Result<f64> {
    non_empty(reference, current)?;
    let (keys, _, _) = super::binning::value_counts(reference, current);
    let edges = sturges_edges(&keys, &[], integer)?;
    let h1 = density(reference, &edges);
    let h2 = density(current, &edges);
    let nb = edges.len() - 1;
    let width = (edges[nb] - edges[0]) / nb as f64;
    let mut bc = 0.0;
    for (a, b) in h1.iter().zip(&h2) {
        bc += (a * b).sqrt() * width;
    }
    Ok((1.0 - bc.clamp(0.0, 1.0)).sqrt())
}

/// `np.histogram(x, bins=edges, density=True)[0]`: counts / bin width / total count.
fn density(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let counts = histogram(values, edges);
    let total: u64 = counts.iter().sum();
    counts.iter().enumerate().map(|(i, &c)| c as f64 / (edges[i + 1] - edges[i]) / total as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categorical_hand_checked() {
        assert_eq!(hellinger_categorical(&[1, 1], &[1, 1]).unwrap(), 0.0);
        assert_eq!(hellinger_categorical(&[1, 0], &[0, 1]).unwrap(), 1.0);
    }

    #[test]
    fn numerical_identical_is_zero() {
        let x: Vec<f64> = (0..50).map(f64::from).collect();
        let d = hellinger_numerical(&x, &x, false).unwrap();
        assert!(d < 1e-7, "{d}");
    }
}
