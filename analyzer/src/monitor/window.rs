//! One window's analysis: drift, data quality and performance against the reference. Pure CPU
//! work over a [`Frame`]; columns are analysed in parallel.

use anchorwatch_collector::schema::{FeatureKind, ModelSchema, ValueKind};
use serde::{Deserialize, Serialize};

use super::config::AnalysisConfig;
use super::data::{Column, Frame};
use super::reference::Reference;
use crate::drift::{self, ColumnData, ColumnKind, ColumnOptions, StatTest};
use crate::hash::FastMap;
use crate::stats::embedding_drift::Spec;
use crate::stats::text_descriptors::Descriptor;

/// What a drifted column is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An input feature.
    Feature,
    /// The model's output (prediction drift).
    Prediction,
    /// The true label (target drift), on the labeled rows of the window.
    Target,
    /// A text descriptor of a text feature (`review.text_length`), tested as a numerical
    /// column. Not counted in the dataset's drift share, as Evidently's descriptor drift is
    /// apart from its dataset drift.
    Descriptor,
    /// A multivariate drift method over the tabular features together (`data_reconstruction`).
    /// Not counted in the drift share: it is a verdict on the features jointly, not a feature.
    Multivariate,
}

impl Role {
    /// `feature`, `prediction` or `target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Feature => "feature",
            Role::Prediction => "prediction",
            Role::Target => "target",
            Role::Descriptor => "descriptor",
            Role::Multivariate => "multivariate",
        }
    }
}

/// One column's drift in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    /// Column name (`prediction` and `label` for the model's output and target).
    pub column: String,
    /// Its role.
    pub role: Role,
    /// `num`, `cat`, `text` or `embedding`.
    pub kind: String,
    /// Evidently's name of the test (for embeddings, of the method: `model`, `distance`,
    /// `ratio` or `mmd`).
    pub stattest: String,
    /// The test's score (p-value or distance); NaN when it could not be computed.
    pub score: f64,
    /// The threshold.
    pub threshold: f64,
    /// Whether it drifted.
    pub drifted: bool,
    /// Why the score could not be computed (e.g. no values in the window).
    pub error: Option<String>,
}

/// One data-quality figure of one feature in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityRow {
    /// The feature.
    pub feature: String,
    /// `missing_share`, `out_of_range_share` (numerical: outside the reference's min..max),
    /// `new_categories` (categorical: distinct values the reference never had) or
    /// `new_category_share` (rows holding one).
    pub check: String,
    /// The figure.
    pub value: f64,
}

/// One performance figure in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceRow {
    /// Metric name, e.g. `accuracy`, `f1`, `rmse`, `label_coverage`, `label_delay_seconds`.
    pub metric: String,
    /// `realized` (from labels) or `estimated` (from scores, before labels).
    pub kind: String,
    /// The value.
    pub value: f64,
    /// The same metric on the reference, when known.
    pub reference: Option<f64>,
    /// Lower bound of the metric's threshold, when one is configured.
    #[serde(default)]
    pub lower: Option<f64>,
    /// Upper bound of the metric's threshold, when one is configured.
    #[serde(default)]
    pub upper: Option<f64>,
    /// Whether the value is outside the threshold; `None` without a threshold.
    #[serde(default)]
    pub breached: Option<bool>,
}

/// A window's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowResult {
    /// Rows in the window.
    pub rows: usize,
    /// Rows with a label.
    pub labeled_rows: usize,
    /// Drift of every feature, the prediction and the target.
    pub drift: Vec<DriftRow>,
    /// Share of drifted features (features only, as Evidently's dataset drift).
    pub drift_share: f64,
    /// Whether the share reached the configured threshold.
    pub dataset_drifted: bool,
    /// Data quality per feature.
    pub quality: Vec<QualityRow>,
    /// Realized and estimated performance.
    pub performance: Vec<PerformanceRow>,
}

/// The columns to test, with their role and kind as the schema declares them.
pub(crate) fn tested_columns(schema: &ModelSchema) -> Vec<(String, Role, ColumnKind)> {
    let value_kind =
        |k: ValueKind| if k == ValueKind::Numerical { ColumnKind::Numerical } else { ColumnKind::Categorical };
    let mut out: Vec<(String, Role, ColumnKind)> = schema
        .features
        .iter()
        .map(|f| {
            let kind = match f.kind {
                FeatureKind::Numerical => ColumnKind::Numerical,
                FeatureKind::Categorical | FeatureKind::Boolean => ColumnKind::Categorical,
                FeatureKind::Text => ColumnKind::Text,
                FeatureKind::Embedding => ColumnKind::Embedding,
            };
            (f.name.clone(), Role::Feature, kind)
        })
        .collect();
    out.push(("prediction".into(), Role::Prediction, value_kind(schema.prediction)));
    out.push(("label".into(), Role::Target, value_kind(schema.label)));
    out
}

/// The test and threshold a column gets: its override, else Evidently's default choice.
pub(crate) fn column_options(name: &str, kind: ColumnKind, config: &AnalysisConfig) -> ColumnOptions {
    let over = config.columns.get(name);
    ColumnOptions {
        kind: Some(kind),
        stattest: over.and_then(|o| o.stattest.as_deref()).and_then(StatTest::from_name),
        threshold: over.and_then(|o| o.threshold),
    }
}

/// A column's drift row from its test's outcome.
pub(crate) fn drift_row(
    name: &str,
    role: Role,
    kind: ColumnKind,
    options: &ColumnOptions,
    result: drift::Result<drift::ColumnDriftResult>,
) -> DriftRow {
    match result {
        Ok(r) => DriftRow {
            column: name.into(),
            role,
            kind: r.kind.name().into(),
            stattest: r.stattest.name().into(),
            score: r.score,
            threshold: r.threshold,
            drifted: r.drifted,
            error: None,
        },
        Err(e) => DriftRow {
            column: name.into(),
            role,
            kind: kind.name().into(),
            stattest: options.stattest.map_or("", StatTest::name).into(),
            score: f64::NAN,
            threshold: options.threshold.unwrap_or(f64::NAN),
            drifted: false,
            error: Some(e.to_string()),
        },
    }
}

/// A column's drift rows: one, or for a text feature its content drift and then one per
/// [descriptor](Descriptor).
fn drift_one(
    name: &str,
    role: Role,
    kind: ColumnKind,
    current: &Column,
    reference: &Column,
    config: &AnalysisConfig,
) -> Vec<DriftRow> {
    let options = column_options(name, kind, config);
    match (kind, reference, current) {
        (ColumnKind::Embedding, Column::Vectors(r), Column::Vectors(c)) => {
            let spec = config.columns.get(name).and_then(|o| o.embedding.clone()).unwrap_or_default();
            let result = if r.dims == c.dims || r.dims == 0 || c.dims == 0 {
                drift::embedding::embedding_drift(&r.values, &c.values, r.dims.max(c.dims), &spec)
            } else {
                Err(drift::Error::Stats(crate::stats::Error::Invalid(format!(
                    "the reference's embeddings have {} dimensions, the window's {}",
                    r.dims, c.dims
                ))))
            };
            vec![embedding_row(name, role, &spec, result)]
        }
        (ColumnKind::Text, Column::Strings(r), Column::Strings(c)) => {
            let (r, c): (Vec<Option<&str>>, Vec<Option<&str>>) = (r.iter().collect(), c.iter().collect());
            let (rd, cd) = (ColumnData::Categorical(&r), ColumnData::Categorical(&c));
            let content = drift::text::text_drift(&rd, &cd, &options).map(|t| t.result);
            let mut rows = vec![drift_row(name, role, kind, &options, content)];
            for descriptor in Descriptor::ALL {
                let column = format!("{name}.{}", descriptor.name());
                let (rv, cv) = (descriptor.column(&r), descriptor.column(&c));
                let options = column_options(&column, ColumnKind::Numerical, config);
                let result = drift::column_drift(
                    &ColumnData::Numerical { values: &rv, integer: descriptor.integer() },
                    &ColumnData::Numerical { values: &cv, integer: descriptor.integer() },
                    &options,
                );
                rows.push(drift_row(&column, Role::Descriptor, ColumnKind::Numerical, &options, result));
            }
            rows
        }
        _ => {
            let result = reference.with_data(|r| current.with_data(|c| drift::column_drift(r, c, &options)));
            vec![drift_row(name, role, kind, &options, result)]
        }
    }
}

/// An embedding column's drift row from its method's outcome.
pub(crate) fn embedding_row(
    name: &str,
    role: Role,
    spec: &Spec,
    result: drift::Result<drift::embedding::EmbeddingDrift>,
) -> DriftRow {
    let kind = ColumnKind::Embedding.name().into();
    match result {
        Ok(r) => DriftRow {
            column: name.into(),
            role,
            kind,
            stattest: r.method.into(),
            score: r.score,
            threshold: r.threshold,
            drifted: r.drifted,
            error: None,
        },
        Err(e) => DriftRow {
            column: name.into(),
            role,
            kind,
            stattest: spec.method.clone().unwrap_or_else(|| "model".into()),
            score: f64::NAN,
            threshold: spec.threshold.unwrap_or(f64::NAN),
            drifted: false,
            error: Some(e.to_string()),
        },
    }
}

/// Labeled rows only: the target drift compares the labels that arrived with the reference's.
fn labeled(column: &Column) -> Column {
    match column {
        Column::Numbers(v) => Column::Numbers(v.iter().copied().filter(|x| x.is_finite()).collect()),
        Column::Strings(a) => Column::Strings(a.iter().flatten().map(Some).collect()),
        Column::Vectors(v) => Column::Vectors(v.clone()),
    }
}

/// `f` of every item on all cores, in the items' order. Items are taken from a shared queue, so
/// one worker left with the slow columns does not hold the others idle.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    crate::parallel::parallel_map(items.len(), |i| f(&items[i]))
}

/// The data-quality rows of one feature.
fn quality_of(name: &str, column: &Column, reference: &Reference) -> Vec<QualityRow> {
    let rows = column.len().max(1) as f64;
    let row = |check: &str, value: f64| QualityRow { feature: name.into(), check: check.into(), value };
    let mut out = vec![row("missing_share", column.missing() as f64 / rows)];
    match column {
        Column::Numbers(v) => {
            if let Some(&(lo, hi)) = reference.ranges.get(name) {
                let outside = v.iter().filter(|x| x.is_finite() && (**x < lo || **x > hi)).count();
                out.push(row("out_of_range_share", outside as f64 / rows));
            }
        }
        Column::Strings(a) => {
            if let Some(known) = reference.categories.get(name) {
                // Each distinct value is looked up in the reference once.
                let mut new: FastMap<&str, bool> = FastMap::default();
                let mut new_rows = 0usize;
                for v in a.iter().flatten() {
                    if *new.entry(v).or_insert_with(|| !known.contains(v)) {
                        new_rows += 1;
                    }
                }
                out.push(row("new_categories", new.values().filter(|n| **n).count() as f64));
                out.push(row("new_category_share", new_rows as f64 / rows));
            }
        }
        Column::Vectors(_) => {}
    }
    out
}

/// Drift and quality rows a caller has already decided (from [profiles](super::profile)), by
/// column; [`analyse_with`] takes them instead of computing them from the rows.
#[derive(Debug, Default)]
pub struct Precomputed {
    /// Drift rows of features and the prediction.
    pub drift: std::collections::HashMap<String, DriftRow>,
    /// Quality rows of features.
    pub quality: std::collections::HashMap<String, Vec<QualityRow>>,
}

/// One unit of a window's analysis.
enum Task<'a> {
    Drift(&'a str, Role, ColumnKind, &'a Column, &'a Column),
    Quality(&'a str, &'a Column),
}

/// Analyses one window of `current` rows against the reference.
pub fn analyse(current: &Frame, reference: &Reference, schema: &ModelSchema, config: &AnalysisConfig) -> WindowResult {
    analyse_with(current, reference, schema, config, &Precomputed::default())
}

/// [`analyse`], taking the rows in `done` as they are: `current` need only hold the other
/// columns (and those performance reads), with every row of the window.
pub fn analyse_with(
    current: &Frame,
    reference: &Reference,
    schema: &ModelSchema,
    config: &AnalysisConfig,
    done: &Precomputed,
) -> WindowResult {
    let columns = tested_columns(schema);
    let labels = current.get("label").map(labeled);
    let mut tasks: Vec<Task<'_>> = columns
        .iter()
        .filter_map(|(name, role, kind)| {
            if *role != Role::Target && done.drift.contains_key(name) {
                return None;
            }
            let cur = if *role == Role::Target { labels.as_ref()? } else { current.get(name)? };
            let reference = reference.frame.get(name)?;
            if *role == Role::Target && (cur.is_empty() || reference.len() == reference.missing()) {
                return None;
            }
            Some(Task::Drift(name.as_str(), *role, *kind, cur, reference))
        })
        .collect();
    let drift_tasks = tasks.len();
    tasks.extend(
        schema
            .features
            .iter()
            .filter(|f| !done.quality.contains_key(&f.name))
            .filter_map(|f| Some(Task::Quality(f.name.as_str(), current.get(&f.name)?))),
    );
    // The slowest tasks (numerical drift: sorting) start first; results keep the tasks' order.
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| match &tasks[i] {
        Task::Drift(_, _, ColumnKind::Embedding | ColumnKind::Text, ..) => 0,
        Task::Drift(_, _, ColumnKind::Numerical, ..) => 1,
        Task::Drift(..) => 2,
        Task::Quality(..) => 3,
    });
    let outputs = parallel_map(&order, |&i| match &tasks[i] {
        Task::Drift(n, role, kind, cur, r) => (i, drift_one(n, *role, *kind, cur, r, config), Vec::new()),
        Task::Quality(n, column) => (i, Vec::new(), quality_of(n, column, reference)),
    });
    let mut outputs: Vec<_> = outputs.into_iter().collect();
    outputs.sort_unstable_by_key(|(i, _, _)| *i);
    let mut computed_drift = Vec::with_capacity(drift_tasks);
    let mut computed_quality: std::collections::HashMap<String, Vec<QualityRow>> = Default::default();
    for (_, d, q) in outputs {
        computed_drift.extend(d);
        if let Some(first) = q.first() {
            computed_quality.insert(first.feature.clone(), q);
        }
    }
    // Schema order, whichever way each row was decided.
    let mut computed_drift = computed_drift.into_iter().peekable();
    let mut drift: Vec<DriftRow> = Vec::with_capacity(columns.len());
    for (name, role, _) in &columns {
        if *role != Role::Target
            && let Some(row) = done.drift.get(name)
        {
            drift.push(row.clone());
        } else if computed_drift.peek().is_some_and(|r| r.column == *name && r.role == *role) {
            drift.extend(computed_drift.next());
            // A text feature's descriptor rows follow it.
            while let Some(d) = computed_drift.next_if(|r| r.role == Role::Descriptor) {
                drift.push(d);
            }
        }
    }
    let quality: Vec<QualityRow> = schema
        .features
        .iter()
        .filter_map(|f| done.quality.get(&f.name).or_else(|| computed_quality.get(&f.name)))
        .flatten()
        .cloned()
        .collect();
    let tested = drift.iter().filter(|r| r.role == Role::Feature && r.error.is_none()).count();
    let drifted = drift.iter().filter(|r| r.role == Role::Feature && r.error.is_none() && r.drifted).count();
    let drift_share = if tested == 0 { 0.0 } else { drifted as f64 / tested as f64 };

    drift.extend(super::multivariate::window_rows(reference.multivariate(schema, config), current, schema));
    let labeled_rows = labels.as_ref().map_or(0, Column::len);
    let performance = super::performance::window_performance(current, reference, schema, config);
    WindowResult {
        rows: current.rows,
        labeled_rows,
        drift,
        drift_share,
        dataset_drifted: tested > 0 && drift_share >= config.drift_share,
        quality,
        performance,
    }
}
