//! Mergeable per-file profiles: what a window's drift and data-quality checks need from one stored
//! Parquet file, computed once per file and reference, so a window's cost follows its new files,
//! not the rows it already holds or the history retained beside it (docs/store.md).
//!
//! A profile holds, per event-time window the file's rows fall in and per feature (and the
//! prediction): rows and missing values; for numbers, the counts over [`BINS`] equal-mass bins
//! cut at the reference's quantiles, the count and summed distance of values below the
//! reference's minimum and above its maximum, and the distinct values while there are at most
//! [`MAX_VALUES`]; for categories, the count of every category while there are at most
//! [`MAX_CATEGORIES`]. Profiles of the same window merge by adding.
//!
//! From the merged profile of a window:
//! - exact, the same numbers as the raw rows give: every count-based test of a categorical
//!   column (`chisquare`, `z`, `jensenshannon`, `psi`, `kl_div`, `hellinger`, `g_test`,
//!   `fisher_exact`), the same of a numerical column with at most 20 distinct reference values
//!   (one bin per value, as Evidently), and every data-quality figure;
//! - approximate, with a bound: the normed `wasserstein` of a numerical column. The current
//!   side's CDF is known exactly at the bin edges (values equal to an edge are counted apart)
//!   and outside the reference's range, and is interpolated linearly inside each bin; the
//!   reference side is exact. The error is at most `Σ_bins count · width / (n · norm)` over the
//!   values strictly inside bins ([`WassersteinSketch::bound`]); for data whose values are the
//!   reference's own (integers, rounded numbers) it is 0. When the score lies
//!   within that bound of the threshold, the verdict is not certain and the column is read raw,
//!   so verdicts always equal the exact ones;
//! - exact up to the order of additions: the `distance` method (without bootstrap or PCA) of an
//!   embedding column, from the summed vectors of the window's complete rows;
//! - everything else (`ks`, `TVD`, the Sturges-binned tests of numerical columns, `anderson`,
//!   …), the target and performance read the window's raw rows of just those columns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::AnalysisConfig;
use super::data::{Column, Frame};
use super::reference::Reference;
use super::window::{self, DriftRow, Precomputed, QualityRow, Role};
use crate::drift::embedding::{EmbeddingDrift, Vectors};
use crate::drift::{self, ColumnKind, Prepared, StatTest};
use crate::stats::embedding_drift::Method;

/// Equal-mass bins cut at the reference's quantiles, per numerical column.
pub const BINS: usize = 1000;
/// Distinct numbers kept exactly per profile; past this only the bins are kept.
pub const MAX_VALUES: usize = 32;
/// Distinct categories kept per profile; past this the column is read raw.
pub const MAX_CATEGORIES: usize = 10_000;

/// One column over some rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnProfile {
    /// A numerical column.
    Numbers {
        /// Rows, missing ones included.
        rows: u64,
        /// Missing values (null, NaN, ±inf).
        missing: u64,
        /// Counts over the reference's bins and beyond its range; `None` when a sum overflowed.
        sketch: Option<Sketch>,
        /// Distinct finite values and their counts, ascending; `None` past [`MAX_VALUES`].
        values: Option<Vec<(f64, u64)>>,
    },
    /// An embedding column: what the `distance` method needs.
    Vectors {
        /// Rows, missing ones included.
        rows: u64,
        /// Rows with a missing or infinite value (left out of the test).
        missing: u64,
        /// Σ of the complete rows' vectors; `None` when files disagree on the length.
        sums: Option<Vec<f64>>,
    },
    /// A categorical column.
    Categories {
        /// Rows, missing ones included.
        rows: u64,
        /// Missing values.
        missing: u64,
        /// Count per category; `None` past [`MAX_CATEGORIES`].
        counts: Option<BTreeMap<String, u64>>,
    },
}

/// A numerical column's counts over the reference's bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Values below the reference's minimum.
    pub below: u64,
    /// Σ (minimum − value) over them.
    pub below_gap: f64,
    /// Values above the reference's maximum.
    pub above: u64,
    /// Σ (value − maximum) over them.
    pub above_gap: f64,
    /// (edge, count) of values equal to a bin edge, ascending (edge `i` is the `i`-th of
    /// [`BasisColumn::edges`]).
    pub at_edges: Vec<(u32, u64)>,
    /// (bin, count) of values strictly between two edges, ascending (bin `i` is between edges
    /// `i` and `i + 1`).
    pub bins: Vec<(u32, u64)>,
}

/// The rows of one file in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The window's start, µs.
    pub start: i64,
    /// Rows.
    pub rows: u64,
    /// Profile of every profiled column.
    pub columns: BTreeMap<String, ColumnProfile>,
}

/// A stored file's profile, kept beside it as `_profile-<stem>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileProfile {
    /// The reference version the bins come from.
    pub reference: String,
    /// The window length, µs.
    pub window_us: i64,
    /// The profiled file's size in bytes (a rewritten file is profiled again).
    pub file_size: u64,
    /// One segment per window the file has rows in, by start.
    pub segments: Vec<Segment>,
}

/// What profiles are cut against, derived once per reference.
#[derive(Debug)]
pub struct Basis {
    /// The reference version.
    pub version: String,
    /// The window length, µs.
    pub window_us: i64,
    /// The profiled columns, in analysis order.
    pub columns: Vec<BasisColumn>,
}

/// One profiled column's side of the reference.
#[derive(Debug)]
pub struct BasisColumn {
    /// Column name.
    pub name: String,
    /// Numbers (`true`) or categories.
    pub numeric: bool,
    /// Numbers: the bins' edges, from the reference's minimum to its maximum, strictly increasing
    /// (a single value twice for a constant reference).
    pub edges: Vec<f64>,
    /// Numbers: the reference's finite values, sorted.
    pub sorted: Vec<f64>,
    /// Numbers: Evidently's norm of the Wasserstein distance, `max(std(reference), 0.001)`.
    pub norm: f64,
    /// Numbers: the reference's distinct values with counts when there are at most 20 (numbers
    /// then drift as categories); categories: every category's count.
    pub counts: Option<Vec<(Key, u64)>>,
    /// Embeddings: the mean of the reference's complete rows (empty for other columns).
    pub mean: Vec<f64>,
}

/// A category, or a distinct number.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Key {
    /// A number (`−0.0` folded into `0.0`).
    Number(f64),
    /// A category.
    Text(String),
}

impl Key {
    /// The key as text, for the prepared counts' labels.
    fn label(&self) -> String {
        match self {
            Key::Number(x) => x.to_string(),
            Key::Text(s) => s.clone(),
        }
    }
}

impl Basis {
    /// The basis of `reference` for windows `window_us` long, over the reference's columns among
    /// `columns` (name, numeric?).
    pub fn new(reference: &Reference, window_us: i64, columns: &[(String, bool)]) -> Self {
        let columns = columns
            .iter()
            .filter_map(|(name, _)| {
                let column = reference.frame.get(name)?;
                Some(match column {
                    Column::Numbers(v) => {
                        let sorted =
                            crate::stats::sorted(&v.iter().copied().filter(|x| x.is_finite()).collect::<Vec<_>>());
                        let edges = quantile_edges(&sorted);
                        let norm = crate::stats::np_std(&sorted).max(0.001);
                        let counts = small_value_counts(&sorted, 20);
                        BasisColumn { name: name.clone(), numeric: true, edges, sorted, norm, counts, mean: Vec::new() }
                    }
                    Column::Strings(a) => {
                        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
                        for v in a.iter().flatten() {
                            *counts.entry(v).or_default() += 1;
                        }
                        let counts = counts.into_iter().map(|(k, n)| (Key::Text(k.to_string()), n)).collect();
                        BasisColumn {
                            name: name.clone(),
                            numeric: false,
                            edges: Vec::new(),
                            sorted: Vec::new(),
                            norm: 1.0,
                            counts: Some(counts),
                            mean: Vec::new(),
                        }
                    }
                    // Only the sums the `distance` method needs; the caller profiles an
                    // embedding only when that method settles it.
                    Column::Vectors(v) => {
                        let (sums, complete) = vector_sums(v, (0..v.rows).map(|_| true));
                        BasisColumn {
                            name: name.clone(),
                            numeric: false,
                            edges: Vec::new(),
                            sorted: Vec::new(),
                            norm: 1.0,
                            counts: None,
                            mean: sums.iter().map(|s| s / complete as f64).collect(),
                        }
                    }
                })
            })
            .collect();
        Self { version: reference.profile.version.clone(), window_us, columns }
    }

    /// The profile of a file's rows (`frame`, with `timestamp` in µs), one segment per window.
    pub fn profile(&self, frame: &Frame, file_size: u64) -> FileProfile {
        let times = match frame.get("timestamp") {
            Some(Column::Numbers(t)) => t.as_slice(),
            _ => &[],
        };
        let mut starts: Vec<i64> = Vec::new();
        let segment_of: Vec<usize> = times
            .iter()
            .map(|t| {
                let start = (*t as i64).div_euclid(self.window_us) * self.window_us;
                match starts.iter().position(|s| *s == start) {
                    Some(i) => i,
                    None => {
                        starts.push(start);
                        starts.len() - 1
                    }
                }
            })
            .collect();
        let mut segments: Vec<Segment> = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| Segment {
                start,
                rows: segment_of.iter().filter(|s| **s == i).count() as u64,
                columns: BTreeMap::new(),
            })
            .collect();
        for basis in &self.columns {
            let Some(column) = frame.get(&basis.name) else { continue };
            for (i, profile) in basis.profile(column, &segment_of, starts.len()).into_iter().enumerate() {
                segments[i].columns.insert(basis.name.clone(), profile);
            }
        }
        segments.sort_by_key(|s| s.start);
        FileProfile { reference: self.version.clone(), window_us: self.window_us, file_size, segments }
    }

    fn column(&self, name: &str) -> Option<&BasisColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// `BINS + 1` edges at the sorted values' quantiles (positions `i · (n − 1) / BINS`), deduplicated.
fn quantile_edges(sorted: &[f64]) -> Vec<f64> {
    let Some(&last) = sorted.last() else { return Vec::new() };
    let n = sorted.len();
    let mut edges: Vec<f64> = (0..=BINS).map(|i| sorted[i * (n - 1) / BINS]).collect();
    edges.dedup();
    if edges.len() == 1 {
        edges.push(last);
    }
    edges
}

/// Distinct values of sorted numbers with their counts, or `None` past `cap` of them.
fn small_value_counts(sorted: &[f64], cap: usize) -> Option<Vec<(Key, u64)>> {
    let mut out: Vec<(Key, u64)> = Vec::new();
    for &x in sorted {
        let x = x + 0.0;
        match out.last_mut() {
            Some((Key::Number(k), n)) if *k == x => *n += 1,
            _ => {
                if out.len() == cap {
                    return None;
                }
                out.push((Key::Number(x), 1));
            }
        }
    }
    Some(out)
}

impl BasisColumn {
    /// The column's profile in each of `segments` windows; `segment_of` gives each row's.
    fn profile(&self, column: &Column, segment_of: &[usize], segments: usize) -> Vec<ColumnProfile> {
        match column {
            Column::Numbers(values) => {
                let (lo, hi) = (self.edges[0], self.edges[self.edges.len() - 1]);
                let inner = &self.edges[1..self.edges.len() - 1];
                let bins = self.edges.len() - 1;
                let mut out = Vec::with_capacity(segments);
                for segment in 0..segments {
                    let (mut rows, mut missing) = (0u64, 0u64);
                    let (mut below, mut below_gap, mut above, mut above_gap) = (0u64, 0.0, 0u64, 0.0);
                    let mut counts = vec![0u64; bins];
                    let mut at_edges = vec![0u64; bins + 1];
                    let mut distinct: Option<BTreeMap<u64, (f64, u64)>> = Some(BTreeMap::new());
                    for (&x, _) in values.iter().zip(segment_of).filter(|(_, s)| **s == segment) {
                        rows += 1;
                        if !x.is_finite() {
                            missing += 1;
                            continue;
                        }
                        if x < lo {
                            below += 1;
                            below_gap += lo - x;
                        } else if x > hi {
                            above += 1;
                            above_gap += x - hi;
                        } else {
                            let j = inner.partition_point(|e| *e <= x);
                            if x == self.edges[j] {
                                at_edges[j] += 1;
                            } else if x == hi {
                                at_edges[bins] += 1;
                            } else {
                                counts[j] += 1;
                            }
                        }
                        if let Some(d) = &mut distinct {
                            let x = x + 0.0;
                            d.entry(x.to_bits()).or_insert((x, 0)).1 += 1;
                            if d.len() > MAX_VALUES {
                                distinct = None;
                            }
                        }
                    }
                    let sketch = (below_gap.is_finite() && above_gap.is_finite()).then(|| Sketch {
                        below,
                        below_gap,
                        above,
                        above_gap,
                        at_edges: sparse(&at_edges),
                        bins: sparse(&counts),
                    });
                    let values = distinct.map(|d| {
                        let mut v: Vec<(f64, u64)> = d.into_values().collect();
                        v.sort_by(|a, b| a.0.total_cmp(&b.0));
                        v
                    });
                    out.push(ColumnProfile::Numbers { rows, missing, sketch, values });
                }
                out
            }
            Column::Vectors(v) => (0..segments)
                .map(|segment| {
                    let mine = segment_of.iter().map(|s| *s == segment);
                    let rows = segment_of.iter().filter(|s| **s == segment).count() as u64;
                    let (sums, complete) = vector_sums(v, mine);
                    ColumnProfile::Vectors { rows, missing: rows - complete as u64, sums: Some(sums) }
                })
                .collect(),
            Column::Strings(array) => {
                // (rows, missing, counts) of each segment.
                type Counted = (u64, u64, Option<BTreeMap<String, u64>>);
                let mut out: Vec<Counted> = (0..segments).map(|_| (0, 0, Some(BTreeMap::new()))).collect();
                for (v, &segment) in array.iter().zip(segment_of) {
                    let (rows, missing, counts) = &mut out[segment];
                    *rows += 1;
                    let Some(v) = v else {
                        *missing += 1;
                        continue;
                    };
                    if let Some(c) = counts {
                        match c.get_mut(v) {
                            Some(n) => *n += 1,
                            None => {
                                c.insert(v.to_string(), 1);
                            }
                        }
                        if c.len() > MAX_CATEGORIES {
                            *counts = None;
                        }
                    }
                }
                out.into_iter()
                    .map(|(rows, missing, counts)| ColumnProfile::Categories { rows, missing, counts })
                    .collect()
            }
        }
    }
}

impl ColumnProfile {
    /// Adds `other`'s rows to this profile's.
    pub fn merge(&mut self, other: &ColumnProfile) {
        match (self, other) {
            (
                ColumnProfile::Numbers { rows, missing, sketch, values },
                ColumnProfile::Numbers { rows: r, missing: m, sketch: s, values: v },
            ) => {
                *rows += r;
                *missing += m;
                *sketch = match (sketch.take(), s) {
                    (Some(a), Some(b)) => a.merged(b),
                    _ => None,
                };
                *values = match (values.take(), v) {
                    (Some(a), Some(b)) => merge_values(&a, b),
                    _ => None,
                };
            }
            (
                ColumnProfile::Categories { rows, missing, counts },
                ColumnProfile::Categories { rows: r, missing: m, counts: c },
            ) => {
                *rows += r;
                *missing += m;
                *counts = match (counts.take(), c) {
                    (Some(mut a), Some(b)) => {
                        for (k, n) in b {
                            *a.entry(k.clone()).or_default() += n;
                        }
                        (a.len() <= MAX_CATEGORIES).then_some(a)
                    }
                    _ => None,
                };
            }
            (
                ColumnProfile::Vectors { rows, missing, sums },
                ColumnProfile::Vectors { rows: r, missing: m, sums: s },
            ) => {
                *rows += r;
                *missing += m;
                *sums = match (sums.take(), s) {
                    (Some(mut a), Some(b)) if a.len() == b.len() => {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                        Some(a)
                    }
                    _ => None,
                };
            }
            // A column whose type changed between files: nothing exact can be said.
            (this, _) => {
                if let ColumnProfile::Numbers { sketch, values, .. } = this {
                    *sketch = None;
                    *values = None;
                } else if let ColumnProfile::Categories { counts, .. } = this {
                    *counts = None;
                } else if let ColumnProfile::Vectors { sums, .. } = this {
                    *sums = None;
                }
            }
        }
    }
}

impl Sketch {
    fn merged(self, other: &Sketch) -> Option<Sketch> {
        let (below_gap, above_gap) = (self.below_gap + other.below_gap, self.above_gap + other.above_gap);
        (below_gap.is_finite() && above_gap.is_finite()).then(|| Sketch {
            below: self.below + other.below,
            below_gap,
            above: self.above + other.above,
            above_gap,
            at_edges: add_sparse(self.at_edges, &other.at_edges),
            bins: add_sparse(self.bins, &other.bins),
        })
    }

    /// Values counted.
    fn total(&self) -> u64 {
        self.below + self.above + self.bins.iter().chain(&self.at_edges).map(|(_, n)| n).sum::<u64>()
    }
}

/// (index, count) of the non-zero counts.
fn sparse(counts: &[u64]) -> Vec<(u32, u64)> {
    counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (i as u32, *n)).collect()
}

/// Adds two sparse count lists.
fn add_sparse(a: Vec<(u32, u64)>, b: &[(u32, u64)]) -> Vec<(u32, u64)> {
    let mut sum: BTreeMap<u32, u64> = a.into_iter().collect();
    for (i, n) in b {
        *sum.entry(*i).or_default() += n;
    }
    sum.into_iter().collect()
}

fn merge_values(a: &[(f64, u64)], b: &[(f64, u64)]) -> Option<Vec<(f64, u64)>> {
    let mut merged: Vec<(f64, u64)> = a.iter().chain(b).copied().collect();
    merged.sort_by(|x, y| x.0.total_cmp(&y.0));
    merged.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
    (merged.len() <= MAX_VALUES).then_some(merged)
}

impl Segment {
    /// Adds `other`'s rows (the same window) to this segment's.
    pub fn merge(&mut self, other: &Segment) {
        self.rows += other.rows;
        for (name, p) in &other.columns {
            match self.columns.get_mut(name) {
                Some(mine) => mine.merge(p),
                None => {
                    self.columns.insert(name.clone(), p.clone());
                }
            }
        }
    }
}

/// The normed Wasserstein distance between the exact reference and a sketched current side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WassersteinSketch {
    /// The estimate.
    pub score: f64,
    /// The estimate is within this of the exact distance.
    pub bound: f64,
}

/// [`WassersteinSketch`] of a column: `∫ |F_ref − F_cur| dx / norm`, with `F_cur` interpolated
/// linearly inside each bin (see the module's notes).
pub fn wasserstein(basis: &BasisColumn, sketch: &Sketch) -> Option<WassersteinSketch> {
    let n = sketch.total() as f64;
    let r = &basis.sorted;
    if n == 0.0 || r.is_empty() {
        return None;
    }
    let nr = r.len() as f64;
    let edges = &basis.edges;
    let mut total = (sketch.below_gap + sketch.above_gap) / n;
    let mut bound = 0.0;
    // ∫ over [s, t) of |f − G(x)| with G linear from g_s to g_t.
    let segment = |s: f64, t: f64, f: f64, g_s: f64, g_t: f64| -> f64 {
        let (d_s, d_t) = (g_s - f, g_t - f);
        if d_s * d_t >= 0.0 {
            (d_s.abs() + d_t.abs()) / 2.0 * (t - s)
        } else {
            let p = d_s / (d_s - d_t);
            (d_s.abs() * p + d_t.abs() * (1.0 - p)) / 2.0 * (t - s)
        }
    };
    let dense = |sparse: &[(u32, u64)], len: usize| {
        let mut out = vec![0u64; len];
        for (i, c) in sparse {
            if let Some(slot) = out.get_mut(*i as usize) {
                *slot += c;
            }
        }
        out
    };
    let counts = dense(&sketch.bins, edges.len() - 1);
    let at_edges = dense(&sketch.at_edges, edges.len());
    let mut below = sketch.below as f64;
    let mut i = 0usize;
    for (j, &c) in counts.iter().enumerate() {
        let (a, b) = (edges[j], edges[j + 1]);
        let width = b - a;
        // Values at the bin's lower edge are exact steps of the current side's CDF.
        below += at_edges[j] as f64;
        let c = c as f64;
        bound += c * width / n;
        if width <= 0.0 {
            below += c;
            continue;
        }
        let g = |x: f64| (below + c * (x - a) / width) / n;
        while i < r.len() && r[i] <= a {
            i += 1;
        }
        let mut x0 = a;
        while i < r.len() && r[i] < b {
            let f = i as f64 / nr;
            total += segment(x0, r[i], f, g(x0), g(r[i]));
            x0 = r[i];
            while i < r.len() && r[i] <= x0 {
                i += 1;
            }
        }
        total += segment(x0, b, i as f64 / nr, g(x0), g(b));
        below += c;
    }
    Some(WassersteinSketch { score: total / basis.norm, bound: bound / basis.norm })
}

/// What the merged profile of a window settles, and the columns it leaves to the raw rows.
pub struct Settled {
    /// Drift rows and quality rows decided from the profile.
    pub precomputed: Precomputed,
    /// Columns whose raw values the window still needs.
    pub raw: Vec<String>,
}

/// Drift and quality of every profiled column of a window's merged profile that can be decided
/// from it; the rest is listed in [`Settled::raw`].
pub fn settle(
    merged: &Segment,
    basis: &Basis,
    reference: &Reference,
    columns: &[(String, Role, ColumnKind)],
    config: &AnalysisConfig,
) -> Settled {
    let mut precomputed = Precomputed::default();
    let mut raw = Vec::new();
    for (name, role, kind) in columns.iter().filter(|(_, role, _)| *role != Role::Target) {
        let (Some(profile), Some(b)) = (merged.columns.get(name), basis.column(name)) else {
            raw.push(name.clone());
            continue;
        };
        let drift = drift_row(name, *role, *kind, profile, b, config);
        let quality = if *role == Role::Feature { quality_rows(name, profile, reference) } else { Some(Vec::new()) };
        match (drift, quality) {
            (Some(d), Some(q)) => {
                precomputed.drift.insert(name.clone(), d);
                if *role == Role::Feature {
                    precomputed.quality.insert(name.clone(), q);
                }
            }
            _ => raw.push(name.clone()),
        }
    }
    Settled { precomputed, raw }
}

/// The drift row of a column from its profile, or `None` when its test needs the raw values.
fn drift_row(
    name: &str,
    role: Role,
    kind: ColumnKind,
    profile: &ColumnProfile,
    basis: &BasisColumn,
    config: &AnalysisConfig,
) -> Option<DriftRow> {
    if let ColumnProfile::Vectors { rows, missing, sums } = profile {
        return vector_drift_row(name, role, (*rows - *missing, sums.as_deref()?), basis, config);
    }
    let options = window::column_options(name, kind, config);
    let ref_counts = basis.counts.as_ref();
    let n_reference =
        if basis.numeric { basis.sorted.len() } else { ref_counts?.iter().map(|(_, n)| n).sum::<u64>() as usize };
    // The current side's counts by key, when the profile has them.
    let current: Option<Vec<(Key, u64)>> = match profile {
        ColumnProfile::Numbers { values, .. } => {
            values.as_ref().map(|v| v.iter().map(|(x, n)| (Key::Number(*x), *n)).collect())
        }
        ColumnProfile::Categories { counts, .. } => {
            Some(counts.as_ref()?.iter().map(|(k, n)| (Key::Text(k.clone()), *n)).collect())
        }
        ColumnProfile::Vectors { .. } => None,
    };
    let present = match profile {
        ColumnProfile::Numbers { rows, missing, .. }
        | ColumnProfile::Categories { rows, missing, .. }
        | ColumnProfile::Vectors { rows, missing, .. } => rows - missing,
    };
    if n_reference == 0 {
        return None;
    }
    if present == 0 {
        return Some(window::drift_row(name, role, kind, &options, Err(drift::Error::EmptyColumn("current"))));
    }
    // Over the union of keys, when both sides' counts are known.
    let union = ref_counts.zip(current.as_ref()).map(|(r, c)| union_counts(r, c));
    let n_unique = match (&union, basis.numeric) {
        (Some((keys, _, _)), _) => keys.len(),
        // More than 20 distinct reference values, or more than MAX_VALUES current ones.
        (None, true) => 6,
        (None, false) => return None,
    };
    let test = options.stattest.unwrap_or_else(|| drift::default_stattest(kind, n_reference, n_unique.min(6)));
    let counted = matches!(
        test,
        StatTest::ChiSquare
            | StatTest::Z
            | StatTest::JensenShannon
            | StatTest::Psi
            | StatTest::KlDiv
            | StatTest::GTest
            | StatTest::FisherExact
    ) || test == StatTest::Hellinger && kind == ColumnKind::Categorical;
    if counted {
        // Numbers drift as categories only with ≤ 20 distinct reference values (one bin each).
        let (keys, reference, current) = union?;
        let prepared = Prepared::Categorical {
            keys: keys.iter().map(Key::label).collect(),
            reference,
            current,
            reference_codes: Vec::new(),
            current_codes: Vec::new(),
        };
        let result = drift::prepared_drift(&prepared, kind, None, &options);
        return Some(window::drift_row(name, role, kind, &options, result));
    }
    if test == StatTest::Wasserstein && kind == ColumnKind::Numerical {
        let ColumnProfile::Numbers { sketch: Some(sketch), .. } = profile else { return None };
        let w = wasserstein(basis, sketch)?;
        let threshold = options.threshold.unwrap_or_else(|| test.default_threshold());
        // Decided only when the whole error interval lies on one side of the threshold.
        let drifted = test.is_drift(w.score - w.bound, threshold);
        if drifted != test.is_drift(w.score + w.bound, threshold) {
            return None;
        }
        let result = Ok(drift::ColumnDriftResult { kind, stattest: test, score: w.score, threshold, drifted });
        return Some(window::drift_row(name, role, kind, &options, result));
    }
    None
}

/// Σ of the complete rows (every value finite) among those `keep` selects, and their number.
fn vector_sums(v: &Vectors, keep: impl Iterator<Item = bool>) -> (Vec<f64>, usize) {
    let mut sums = vec![0.0; v.dims];
    let mut complete = 0;
    for (row, keep) in v.values.chunks_exact(v.dims.max(1)).zip(keep) {
        if keep && row.iter().all(|x| x.is_finite()) {
            sums.iter_mut().zip(row).for_each(|(s, x)| *s += x);
            complete += 1;
        }
    }
    (sums, complete)
}

/// Whether an embedding column's method can be settled from profiles: `distance` without
/// bootstrap or PCA, which needs only the two means.
pub fn vectors_mergeable(name: &str, config: &AnalysisConfig) -> bool {
    let spec = config.columns.get(name).and_then(|o| o.embedding.clone()).unwrap_or_default();
    matches!(spec.method(0), Method::Distance(o) if !o.bootstrap && o.pca_components.is_none_or(|k| k == 0))
}

/// An embedding column's drift row from the sums of its `present` complete rows, or `None`
/// when its method needs the rows.
fn vector_drift_row(
    name: &str,
    role: Role,
    (present, sums): (u64, &[f64]),
    basis: &BasisColumn,
    config: &AnalysisConfig,
) -> Option<DriftRow> {
    let spec = config.columns.get(name).and_then(|o| o.embedding.clone()).unwrap_or_default();
    let Method::Distance(options) = spec.method(0) else { return None };
    if !vectors_mergeable(name, config) || basis.mean.is_empty() {
        return None;
    }
    let result = if present == 0 {
        Err(drift::Error::EmptyColumn("current"))
    } else if sums.len() != basis.mean.len() {
        let what =
            format!("the reference's embeddings have {} dimensions, the window's {}", basis.mean.len(), sums.len());
        Err(drift::Error::Stats(crate::stats::Error::Invalid(what)))
    } else {
        let mean: Vec<f64> = sums.iter().map(|s| s / present as f64).collect();
        options.dist.between(&basis.mean, &mean).map_err(drift::Error::from).map(|score| EmbeddingDrift {
            method: "distance",
            score,
            threshold: options.threshold,
            drifted: score > options.threshold,
        })
    };
    Some(window::embedding_row(name, role, &spec, result))
}

/// Keys of both sides in ascending order, with each side's counts.
fn union_counts(reference: &[(Key, u64)], current: &[(Key, u64)]) -> (Vec<Key>, Vec<u64>, Vec<u64>) {
    let mut all: Vec<(Key, u64, u64)> = reference
        .iter()
        .map(|(k, n)| (k.clone(), *n, 0))
        .chain(current.iter().map(|(k, n)| (k.clone(), 0, *n)))
        .collect();
    all.sort_by(|a, b| match (&a.0, &b.0) {
        (Key::Number(x), Key::Number(y)) => x.total_cmp(y),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        (Key::Number(_), Key::Text(_)) => std::cmp::Ordering::Less,
        (Key::Text(_), Key::Number(_)) => std::cmp::Ordering::Greater,
    });
    all.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
            kept.2 += next.2;
        }
        same
    });
    let keys = all.iter().map(|a| a.0.clone()).collect();
    let r = all.iter().map(|a| a.1).collect();
    let c = all.iter().map(|a| a.2).collect();
    (keys, r, c)
}

/// The data-quality rows of a feature from its profile, as [`window`] computes them from rows.
fn quality_rows(name: &str, profile: &ColumnProfile, reference: &Reference) -> Option<Vec<QualityRow>> {
    let row = |check: &str, value: f64| QualityRow { feature: name.into(), check: check.into(), value };
    match profile {
        ColumnProfile::Numbers { rows, missing, sketch, .. } => {
            let n = (*rows).max(1) as f64;
            let mut out = vec![row("missing_share", *missing as f64 / n)];
            if reference.ranges.contains_key(name) {
                let s = sketch.as_ref()?;
                out.push(row("out_of_range_share", (s.below + s.above) as f64 / n));
            }
            Some(out)
        }
        ColumnProfile::Vectors { rows, missing, .. } => {
            Some(vec![row("missing_share", *missing as f64 / (*rows).max(1) as f64)])
        }
        ColumnProfile::Categories { rows, missing, counts } => {
            let n = (*rows).max(1) as f64;
            let mut out = vec![row("missing_share", *missing as f64 / n)];
            if let Some(known) = reference.categories.get(name) {
                let counts = counts.as_ref()?;
                let new: Vec<u64> = counts.iter().filter(|(k, _)| !known.contains(*k)).map(|(_, n)| *n).collect();
                out.push(row("new_categories", new.len() as f64));
                out.push(row("new_category_share", new.iter().sum::<u64>() as f64 / n));
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use anchorwatch_collector::schema::{FeatureConfig, FeatureKind, ModelSchema, ValueKind};
    use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};

    use super::*;
    use crate::monitor::reference::{self, Profile};
    use crate::stats::mt19937::Mt19937;

    const HOUR: i64 = 3_600_000_000;

    /// Standard normal draws (Box–Muller) from a fixed seed.
    fn normals(seed: u32, n: usize) -> Vec<f64> {
        let mut rng = Mt19937::new(seed);
        (0..n)
            .map(|_| {
                let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    fn basis_of(values: &[f64]) -> BasisColumn {
        let sorted = crate::stats::sorted(values);
        BasisColumn {
            name: "x".into(),
            numeric: true,
            edges: quantile_edges(&sorted),
            norm: crate::stats::np_std(&sorted).max(0.001),
            counts: small_value_counts(&sorted, 20),
            sorted,
            mean: Vec::new(),
        }
    }

    /// The sketch of `current` against `basis`, merged from three pieces as separate files are.
    fn sketch_of(basis: &BasisColumn, current: &[f64]) -> Sketch {
        let column = |v: &[f64]| Column::Numbers(v.to_vec());
        let third = current.len() / 3;
        let mut merged: Option<ColumnProfile> = None;
        for piece in [&current[..third], &current[third..2 * third], &current[2 * third..]] {
            let p = basis.profile(&column(piece), &vec![0; piece.len()], 1).remove(0);
            match &mut merged {
                Some(m) => m.merge(&p),
                None => merged = Some(p),
            }
        }
        match merged {
            Some(ColumnProfile::Numbers { sketch: Some(s), .. }) => s,
            other => panic!("no sketch: {other:?}"),
        }
    }

    #[test]
    fn wasserstein_sketch_is_within_its_bound_of_the_exact_distance() {
        let reference = normals(1, 20_000);
        let heavy: Vec<f64> = normals(2, 20_000).iter().map(|z| z.exp()).collect();
        let cases: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
            ("same distribution", reference.clone(), normals(3, 50_000)),
            ("shifted 0.1", reference.clone(), normals(4, 50_000).iter().map(|z| z + 0.1).collect()),
            (
                "shifted 5 (mostly above the range)",
                reference.clone(),
                normals(5, 5_000).iter().map(|z| z + 5.0).collect(),
            ),
            ("scaled 3 (both tails outside)", reference.clone(), normals(6, 5_000).iter().map(|z| z * 3.0).collect()),
            ("log-normal", heavy.clone(), normals(7, 30_000).iter().map(|z| (z + 0.05).exp()).collect()),
            (
                "integers 0..50",
                (0..20_000).map(|i| (i % 50) as f64).collect(),
                (0..9_000).map(|i| (i * 7 % 53) as f64).collect(),
            ),
            ("constant reference", vec![2.5; 5000], normals(8, 1000)),
            ("one current value", reference.clone(), vec![0.3]),
            (
                "huge magnitudes",
                reference.iter().map(|z| z * 1e12).collect(),
                normals(9, 3000).iter().map(|z| z * 1.1e12).collect(),
            ),
        ];
        for (name, reference, current) in cases {
            let basis = basis_of(&reference);
            let sketch = sketch_of(&basis, &current);
            let w = wasserstein(&basis, &sketch).expect("a score");
            let exact = crate::stats::wasserstein::wasserstein(&reference, &current).unwrap();
            let error = (w.score - exact).abs();
            assert!(
                error <= w.bound * (1.0 + 1e-9) + 1e-12 * exact.abs().max(1.0),
                "{name}: sketch {} exact {exact} bound {}",
                w.score,
                w.bound
            );
            // The bound is useful: well below the default threshold (0.1) for data near the reference.
            if name != "shifted 5 (mostly above the range)" && name != "scaled 3 (both tails outside)" {
                assert!(w.bound < 0.03, "{name}: bound {}", w.bound);
            }
            eprintln!("{name}: exact {exact:.6} sketch {:.6} error {error:.2e} bound {:.2e}", w.score, w.bound);
        }
    }

    fn schema() -> ModelSchema {
        let feature = |name: &str, kind| FeatureConfig { name: name.into(), kind, dim: None, nullable: true };
        ModelSchema {
            features: vec![
                feature("x", FeatureKind::Numerical),
                feature("few", FeatureKind::Numerical),
                feature("city", FeatureKind::Categorical),
                feature("ids", FeatureKind::Categorical),
                FeatureConfig { name: "emb".into(), kind: FeatureKind::Embedding, dim: Some(3), nullable: true },
            ],
            prediction: ValueKind::Numerical,
            label: ValueKind::Numerical,
            scores: Vec::new(),
        }
    }

    /// Rows: `x` normal + shift, `few` in 0..4, `city` with one new category when `shift`,
    /// `ids` unique per row (too many categories for a profile), every 10th `x` missing.
    fn batch(seed: u32, n: usize, shift: f64, first_time: i64) -> RecordBatch {
        let z = normals(seed, n);
        let x: Float64Array = z.iter().enumerate().map(|(i, v)| (i % 10 != 3).then_some(v + shift)).collect();
        let few: Float64Array = (0..n).map(|i| Some(((i as f64 * (1.0 + shift)) as usize % 4) as f64)).collect();
        let cities = ["Oslo", "Lima", "Kyiv", "Pune"];
        let city: StringArray = (0..n)
            .map(|i| Some(if shift > 0.0 && i % 7 == 0 { "Nuuk" } else { cities[(i * 3 + seed as usize) % 4] }))
            .collect();
        let ids: StringArray = (0..n).map(|i| Some(format!("{seed}-{i}"))).collect();
        // Every 9th vector missing, every 13th holding a NaN: both left out of the means.
        let emb = arrow::array::FixedSizeListArray::from_iter_primitive::<arrow::datatypes::Float64Type, _, _>(
            z.iter().enumerate().map(|(i, v)| {
                (i % 9 != 4)
                    .then(|| vec![Some(v + shift), Some(if i % 13 == 5 { f64::NAN } else { v * 0.5 }), Some(1.0)])
            }),
            3,
        );
        let prediction: Float64Array = z.iter().map(|v| Some(v * 2.0 + shift)).collect();
        let time: Int64Array = (0..n as i64).map(|i| Some(first_time + i * (2 * HOUR / n as i64))).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("x", Arc::new(x)),
            ("few", Arc::new(few)),
            ("city", Arc::new(city)),
            ("ids", Arc::new(ids)),
            ("emb", Arc::new(emb)),
            ("prediction", Arc::new(prediction)),
            ("timestamp", Arc::new(time)),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn a_window_from_merged_profiles_matches_the_raw_analysis() {
        let schema = schema();
        let profile = Profile {
            source: "test".into(),
            version: "v1".into(),
            format: "parquet".into(),
            prediction_column: "prediction".into(),
            target_column: "target".into(),
            rows: 0,
            performance: Default::default(),
        };
        let reference = Reference::new(vec![batch(11, 30_000, 0.0, 0)], &schema, profile).unwrap();
        let mut wanted = reference::analysed_columns(&schema);
        wanted.push(("timestamp".into(), true));
        let basis = Basis::new(&reference, HOUR, &wanted);
        // The embedding's `distance` method needs only means: profiles settle it.
        let mut config = AnalysisConfig::default();
        let distance = crate::stats::embedding_drift::Spec { method: Some("distance".into()), ..Default::default() };
        config.columns.insert(
            "emb".into(),
            super::super::config::ColumnOverride { embedding: Some(distance), ..Default::default() },
        );
        let columns = window::tested_columns(&schema);
        for (shift, seed) in [(0.0, 21), (0.05, 22), (0.4, 23)] {
            // Three files spanning two one-hour windows.
            let files: Vec<RecordBatch> = (0..3).map(|f| batch(seed + f, 9_000, shift, f as i64 * 1000)).collect();
            let profiles: Vec<FileProfile> = files
                .iter()
                .map(|b| basis.profile(&Frame::from_batches(std::slice::from_ref(b), &wanted).unwrap(), 1))
                .collect();
            for start in [0, HOUR] {
                let mut merged: Option<Segment> = None;
                for s in profiles.iter().flat_map(|p| &p.segments).filter(|s| s.start == start) {
                    match &mut merged {
                        Some(m) => m.merge(s),
                        None => merged = Some(s.clone()),
                    }
                }
                let merged = merged.expect("rows in the window");
                let rows = Frame::from_batches(&files, &wanted).unwrap();
                let keep: Vec<usize> = match rows.get("timestamp") {
                    Some(Column::Numbers(t)) => (0..t.len()).filter(|&i| t[i] as i64 / HOUR * HOUR == start).collect(),
                    _ => unreachable!(),
                };
                let window = Frame {
                    rows: keep.len(),
                    columns: rows.columns.iter().map(|(name, c)| (name.clone(), c.select(&keep))).collect(),
                };
                assert_eq!(merged.rows as usize, window.rows);
                let exact = window::analyse(&window, &reference, &schema, &config);
                let settled = settle(&merged, &basis, &reference, &columns, &config);
                // `ids` has a category per row: it cannot be profiled, so it is read raw.
                assert_eq!(settled.raw, vec!["ids".to_string()], "shift {shift}");
                let mut rest = window.clone();
                let joint = super::super::multivariate::rows_needed(&schema, &config);
                for name in settled.precomputed.drift.keys().filter(|n| !joint.contains(&n.as_str())) {
                    rest.columns.remove(name);
                }
                let profiled = window::analyse_with(&rest, &reference, &schema, &config, &settled.precomputed);
                assert_eq!(profiled.rows, exact.rows);
                assert_eq!(profiled.drift.len(), exact.drift.len());
                for (p, e) in profiled.drift.iter().zip(&exact.drift) {
                    let what = format!("shift {shift}, window {start}, {}: {p:?} vs {e:?}", p.column);
                    assert_eq!(
                        (&p.column, &p.stattest, p.drifted, &p.error),
                        (&e.column, &e.stattest, e.drifted, &e.error),
                        "{what}"
                    );
                    let tolerance = if p.stattest == "wasserstein" { 0.01 } else { 1e-12 * e.score.abs().max(1e-300) };
                    assert!((p.score - e.score).abs() <= tolerance, "{what}");
                }
                assert_eq!(profiled.quality, exact.quality, "shift {shift}");
                assert_eq!(profiled.drift_share, exact.drift_share);
                assert_eq!(profiled.dataset_drifted, exact.dataset_drifted);
            }
        }
    }

    #[test]
    fn profiles_round_trip_through_json() {
        let reference = normals(1, 5000);
        let basis = basis_of(&reference);
        let current: Vec<f64> = normals(2, 100).into_iter().chain([f64::NAN, 1e300, -1e300]).collect();
        let p = basis.profile(&Column::Numbers(current), &vec![0; 103], 1);
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Vec<ColumnProfile>>(&text).unwrap(), p);
    }
}
