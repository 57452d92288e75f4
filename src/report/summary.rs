//! Per-side summaries shown beside each verdict: what the report embeds instead of raw rows.

use anchorwatch_analyzer::drift::Prepared;
use anchorwatch_analyzer::drift::embedding::Vectors;
use anchorwatch_analyzer::hash::FastMap;
use anchorwatch_analyzer::stats::{self, binning};
use anchorwatch_dashboards::report::{
    CategoricalSummary, CategoryCount, EmbeddingSummary, Histogram, NumericalSummary, TextSummary,
};
use std::collections::HashSet;

/// Categories listed by name; the rest are counted as "other" (and new ones beyond this many
/// are only counted), so a column with a million distinct ids stays a few lines.
pub const TOP_CATEGORIES: usize = 20;

/// Finite values of one side, sorted, with the counts of what was left out.
pub struct Sorted {
    values: Vec<f64>,
    missing: u64,
    infinite: u64,
}

impl Sorted {
    /// Sorts the finite values of `values` (NaN means missing).
    pub fn new(values: &[f64]) -> Sorted {
        let (mut missing, mut infinite) = (0, 0);
        let mut finite = Vec::with_capacity(values.len());
        for &v in values {
            if v.is_nan() {
                missing += 1;
            } else if v.is_infinite() {
                infinite += 1;
            } else {
                finite.push(v);
            }
        }
        stats::sort_in_place(&mut finite);
        Sorted { values: finite, missing, infinite }
    }

    /// The finite values, ascending: shared with the drift tests so a column is sorted once.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

/// Histogram edges shared by both sides: numpy's Sturges bins over both sides together, the
/// binning Evidently's own plots use; none when neither side has a finite value.
pub fn shared_edges(reference: &Sorted, current: &Sorted, integer: bool) -> Vec<f64> {
    // Sorted sides: the range is in their first and last values.
    let sides = [&reference.values, &current.values];
    let lo = sides.iter().filter_map(|v| v.first()).copied().fold(f64::INFINITY, f64::min);
    let hi = sides.iter().filter_map(|v| v.last()).copied().fold(f64::NEG_INFINITY, f64::max);
    let n = reference.values.len() + current.values.len();
    binning::sturges_edges_over(lo, hi, n, integer).unwrap_or_default()
}

/// Summary of one numerical side over `edges`.
pub fn numerical(side: &Sorted, edges: &[f64]) -> NumericalSummary {
    let v = &side.values;
    let n = v.len();
    let quantile = |q: f64| -> Option<f64> {
        // numpy's default "linear" method.
        let pos = q * (n.checked_sub(1)? as f64);
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
    };
    let mean = (n > 0).then(|| stats::np_sum(v) / n as f64);
    let std = mean.filter(|_| n > 1).map(|m| {
        let ss = stats::np_sum_by(n, |i| (v[i] - m) * (v[i] - m));
        (ss / (n - 1) as f64).sqrt()
    });
    let counts = if edges.len() >= 2 {
        let last = edges.len() - 1;
        let cum: Vec<usize> = edges
            .iter()
            .enumerate()
            .map(|(i, &e)| if i == last { v.partition_point(|&x| x <= e) } else { v.partition_point(|&x| x < e) })
            .collect();
        cum.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
    } else {
        Vec::new()
    };
    NumericalSummary {
        count: n as u64,
        missing: side.missing,
        infinite: side.infinite,
        mean,
        std,
        min: v.first().copied(),
        p5: quantile(0.05),
        p25: quantile(0.25),
        p50: quantile(0.5),
        p75: quantile(0.75),
        p95: quantile(0.95),
        max: v.last().copied(),
        histogram: Histogram { edges: edges.to_vec(), counts },
    }
}

/// Summaries of two text sides: counts, distinct texts, words per text, and the length in
/// characters summarised like a numerical column (Sturges bins shared by both sides, integer
/// widths); `words_*` are the classifier's typical words of each side.
pub fn texts(
    reference: &[Option<&str>],
    current: &[Option<&str>],
    words_reference: Vec<String>,
    words_current: Vec<String>,
) -> (TextSummary, TextSummary) {
    let lengths = |side: &[Option<&str>]| -> (Sorted, Option<f64>, u64) {
        let present: Vec<&str> = side.iter().flatten().copied().collect();
        let unique = present.iter().collect::<HashSet<_>>().len() as u64;
        let words: u64 = present.iter().map(|t| t.split_whitespace().count() as u64).sum();
        let mean_words = (!present.is_empty()).then(|| words as f64 / present.len() as f64);
        let mut len: Vec<f64> = present.iter().map(|t| t.chars().count() as f64).collect();
        len.resize(side.len(), f64::NAN);
        (Sorted::new(&len), mean_words, unique)
    };
    let (rl, rw, ru) = lengths(reference);
    let (cl, cw, cu) = lengths(current);
    let edges = shared_edges(&rl, &cl, true);
    let summary = |sorted: &Sorted, mean_words, unique, typical_words| {
        let length = numerical(sorted, &edges);
        TextSummary { count: length.count, missing: length.missing, unique, mean_words, length, typical_words }
    };
    (summary(&rl, rw, ru, words_reference), summary(&cl, cw, cu, words_current))
}

/// Summaries of two embedding sides: counts, length, the norm of the mean vector and the norms
/// of the vectors (Sturges bins shared by both sides). A row with a missing or infinite value
/// counts as missing, as the test leaves it out.
pub fn embeddings(reference: &Vectors, current: &Vectors) -> (EmbeddingSummary, EmbeddingSummary) {
    let norms = |side: &Vectors| -> (Sorted, Option<f64>) {
        let dims = side.dims.max(1);
        let mut sum = vec![0.0; side.dims];
        let mut complete = 0usize;
        let norms: Vec<f64> = (0..side.rows)
            .map(|i| {
                let row = side.values.get(i * dims..(i + 1) * dims).unwrap_or(&[]);
                if row.is_empty() || row.iter().any(|v| !v.is_finite()) {
                    return f64::NAN;
                }
                complete += 1;
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                row.iter().map(|v| v * v).sum::<f64>().sqrt()
            })
            .collect();
        let mean_norm = (complete > 0).then(|| sum.iter().map(|s| (s / complete as f64).powi(2)).sum::<f64>().sqrt());
        (Sorted::new(&norms), mean_norm)
    };
    let (rn, rm) = norms(reference);
    let (cn, cm) = norms(current);
    let edges = shared_edges(&rn, &cn, false);
    let summary = |sorted: &Sorted, dims: usize, mean_norm| {
        let norm = numerical(sorted, &edges);
        EmbeddingSummary { count: norm.count, missing: norm.missing, dims: dims as u64, mean_norm, norm }
    };
    (summary(&rn, reference.dims, rm), summary(&cn, current.dims, cm))
}

/// Category counts of both sides: `(category, reference count, current count)`.
pub struct Counts {
    entries: Vec<(String, u64, u64)>,
    missing: (u64, u64),
}

impl Counts {
    /// Counts of string columns (`None` is missing).
    pub fn strings(reference: &[Option<&str>], current: &[Option<&str>]) -> Counts {
        let mut map: FastMap<&str, (u64, u64)> = FastMap::default();
        let mut missing = (0, 0);
        for v in reference {
            match v {
                Some(s) => map.entry(s).or_default().0 += 1,
                None => missing.0 += 1,
            }
        }
        for v in current {
            match v {
                Some(s) => map.entry(s).or_default().1 += 1,
                None => missing.1 += 1,
            }
        }
        Counts { entries: map.into_iter().map(|(k, (r, c))| (k.to_string(), r, c)).collect(), missing }
    }

    /// The counts a categorical drift test already made (`None` for numbers), with the
    /// missing values of each side, which the test dropped.
    pub fn from_prepared(prepared: &Prepared<'_>, missing: (u64, u64)) -> Option<Counts> {
        let Prepared::Categorical { keys, reference, current, .. } = prepared else { return None };
        let entries = keys.iter().zip(reference).zip(current).map(|((k, &r), &c)| (k.clone(), r, c)).collect();
        Some(Counts { entries, missing })
    }

    /// Counts of numbers treated as categories (NaN and ±inf are missing, as the tests drop them).
    pub fn numbers(reference: &[f64], current: &[f64]) -> Counts {
        let finite = |v: &[f64]| -> (Vec<f64>, u64) {
            let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            let dropped = (v.len() - f.len()) as u64;
            (f, dropped)
        };
        let (r, rm) = finite(reference);
        let (c, cm) = finite(current);
        let (keys, rc, cc) = binning::value_counts(&r, &c);
        let entries = keys.iter().zip(rc).zip(cc).map(|((k, r), c)| (number_label(*k), r, c)).collect();
        Counts { entries, missing: (rm, cm) }
    }

    /// The two summaries; the top list is the same for both sides so bars line up.
    pub fn summaries(mut self) -> (CategoricalSummary, CategoricalSummary) {
        let (r_total, c_total): (u64, u64) = self.entries.iter().fold((0, 0), |a, e| (a.0 + e.1, a.1 + e.2));
        let unique = |side: fn(&(String, u64, u64)) -> u64| self.entries.iter().filter(|e| side(e) > 0).count() as u64;
        let (r_unique, c_unique) = (unique(|e| e.1), unique(|e| e.2));
        let mut new: Vec<CategoryCount> = self
            .entries
            .iter()
            .filter(|e| e.1 == 0 && e.2 > 0)
            .map(|e| CategoryCount { value: e.0.clone(), count: e.2 })
            .collect();
        let new_unique = new.len() as u64;
        new.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        new.truncate(TOP_CATEGORIES);
        self.entries.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then_with(|| a.0.cmp(&b.0)));
        self.entries.truncate(TOP_CATEGORIES);
        let top = |side: fn(&(String, u64, u64)) -> u64| -> Vec<CategoryCount> {
            self.entries.iter().map(|e| CategoryCount { value: e.0.clone(), count: side(e) }).collect()
        };
        let (r_top, c_top) = (top(|e| e.1), top(|e| e.2));
        let r_other = r_total - r_top.iter().map(|t| t.count).sum::<u64>();
        let c_other = c_total - c_top.iter().map(|t| t.count).sum::<u64>();
        (
            CategoricalSummary {
                count: r_total,
                missing: self.missing.0,
                unique: r_unique,
                top: r_top,
                other: r_other,
                new_categories: None,
                new_unique: None,
            },
            CategoricalSummary {
                count: c_total,
                missing: self.missing.1,
                unique: c_unique,
                top: c_top,
                other: c_other,
                new_categories: Some(new),
                new_unique: Some(new_unique),
            },
        )
    }
}

/// A number as a category label: integers without a fraction, others in Rust's shortest form.
fn number_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_histogram_match_numpy() {
        let s = Sorted::new(&[4.0, 1.0, f64::NAN, 3.0, 2.0, f64::INFINITY]);
        let sum = numerical(&s, &[1.0, 2.5, 4.0]);
        assert_eq!((sum.count, sum.missing, sum.infinite), (4, 1, 1));
        // np.percentile([1,2,3,4], [5, 50, 95]) == [1.15, 2.5, 3.85]
        assert!((sum.p5.unwrap() - 1.15).abs() < 1e-12);
        assert_eq!(sum.p50, Some(2.5));
        assert!((sum.p95.unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(sum.histogram.counts, vec![2, 2]);
        // pandas' std (ddof=1) of [1,2,3,4]
        assert!((sum.std.unwrap() - 1.2909944487358056).abs() < 1e-12);
    }

    #[test]
    fn categories_share_one_top_list_and_report_new_ones() {
        let r = [Some("a"), Some("a"), Some("b"), None];
        let c = [Some("a"), Some("c"), Some("c")];
        let (rs, cs) = Counts::strings(&r, &c).summaries();
        assert_eq!(rs.top.iter().map(|t| t.value.as_str()).collect::<Vec<_>>(), ["a", "c", "b"]);
        assert_eq!(cs.top.iter().map(|t| t.count).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!((rs.missing, rs.unique, cs.unique), (1, 2, 2));
        assert_eq!(cs.new_categories.unwrap(), vec![CategoryCount { value: "c".into(), count: 2 }]);
    }
}
