//! The results tables, as Parquet under `<model>/results/{drift,performance,quality}/`: one file
//! per window, named after the window's start (event-time windows) or number (row-count
//! windows), so a recomputed window replaces its file.

use std::sync::Arc;

use anchorwatch_collector::schema::timestamp_type;
use anchorwatch_collector::store::Store;
use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;

use super::Result;
use super::window::WindowResult;

/// The three results tables.
pub const TABLES: [&str; 3] = ["drift", "performance", "quality"];

/// Which window a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A tumbling event-time window, `[start, end)` in µs.
    Tumbling {
        /// First µs of the window.
        start: i64,
        /// First µs after it.
        end: i64,
    },
    /// A tumbling row-count window (`window_rows`): block `index` (from 0) of the rows in
    /// (timestamp, prediction_id) order, spanning event times `[start, end)`.
    Rows {
        /// The block's number.
        index: u64,
        /// Event time of its first row.
        start: i64,
        /// Event time of its last row, plus 1 µs.
        end: i64,
    },
    /// The rolling "last N rows" window, spanning event times `[start, end)`.
    Rolling {
        /// Event time of its first row.
        start: i64,
        /// Event time of its last row, plus 1 µs.
        end: i64,
    },
}

impl Window {
    /// The value of the `window` column: `tumbling`, `rows` or `rolling`.
    pub fn kind(&self) -> &'static str {
        match self {
            Window::Tumbling { .. } => "tumbling",
            Window::Rows { .. } => "rows",
            Window::Rolling { .. } => "rolling",
        }
    }

    fn bounds(&self) -> (i64, i64) {
        match *self {
            Window::Tumbling { start, end } | Window::Rows { start, end, .. } | Window::Rolling { start, end } => {
                (start, end)
            }
        }
    }

    fn index(&self) -> Option<u64> {
        match *self {
            Window::Rows { index, .. } => Some(index),
            _ => None,
        }
    }
}

fn common() -> Vec<Field> {
    vec![
        Field::new("window", DataType::Utf8, false),
        // Added with row-count windows; files written before lack it and read as null.
        Field::new("window_index", DataType::UInt64, true),
        Field::new("window_start", timestamp_type(), false),
        Field::new("window_end", timestamp_type(), false),
        Field::new("computed_at", timestamp_type(), false),
        Field::new("rows", DataType::UInt64, false),
    ]
}

/// Schema of a results table.
pub fn schema(table: &str) -> SchemaRef {
    let mut fields = common();
    match table {
        "drift" => fields.extend([
            Field::new("column", DataType::Utf8, false),
            Field::new("role", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("stattest", DataType::Utf8, false),
            Field::new("score", DataType::Float64, true),
            Field::new("threshold", DataType::Float64, true),
            Field::new("drifted", DataType::Boolean, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("dataset_drift_share", DataType::Float64, false),
            Field::new("dataset_drifted", DataType::Boolean, false),
        ]),
        "performance" => fields.extend([
            Field::new("labeled_rows", DataType::UInt64, false),
            Field::new("metric", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
            Field::new("reference_value", DataType::Float64, true),
            Field::new("lower_threshold", DataType::Float64, true),
            Field::new("upper_threshold", DataType::Float64, true),
            Field::new("breached", DataType::Boolean, true),
        ]),
        _ => fields.extend([
            Field::new("feature", DataType::Utf8, false),
            Field::new("check", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
        ]),
    }
    Arc::new(Schema::new(fields))
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The window's rows of each table.
pub fn batches(window: &Window, computed_us: i64, r: &WindowResult) -> Result<Vec<(&'static str, RecordBatch)>> {
    let ts = |n: usize, v: i64| Arc::new(TimestampMicrosecondArray::from_value(v, n).with_timezone("UTC")) as ArrayRef;
    let (start_us, end_us) = window.bounds();
    let head = |n: usize| {
        vec![
            Arc::new(StringArray::from(vec![window.kind(); n])) as ArrayRef,
            Arc::new(UInt64Array::from(vec![window.index(); n])) as ArrayRef,
            ts(n, start_us),
            ts(n, end_us),
            ts(n, computed_us),
            Arc::new(UInt64Array::from_value(r.rows as u64, n)) as ArrayRef,
        ]
    };
    let strings = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;

    let n = r.drift.len();
    let mut drift = head(n);
    drift.extend([
        strings(r.drift.iter().map(|d| d.column.as_str()).collect()),
        strings(r.drift.iter().map(|d| d.role.as_str()).collect()),
        strings(r.drift.iter().map(|d| d.kind.as_str()).collect()),
        strings(r.drift.iter().map(|d| d.stattest.as_str()).collect()),
        Arc::new(Float64Array::from_iter(r.drift.iter().map(|d| finite(d.score)))),
        Arc::new(Float64Array::from_iter(r.drift.iter().map(|d| finite(d.threshold)))),
        Arc::new(BooleanArray::from_iter(r.drift.iter().map(|d| Some(d.drifted)))),
        Arc::new(StringArray::from_iter(r.drift.iter().map(|d| d.error.as_deref()))),
        Arc::new(Float64Array::from_value(r.drift_share, n)),
        Arc::new(BooleanArray::from(vec![r.dataset_drifted; n])),
    ]);

    let n = r.performance.len();
    let mut performance = head(n);
    performance.extend([
        Arc::new(UInt64Array::from_value(r.labeled_rows as u64, n)) as ArrayRef,
        strings(r.performance.iter().map(|p| p.metric.as_str()).collect()),
        strings(r.performance.iter().map(|p| p.kind.as_str()).collect()),
        Arc::new(Float64Array::from_iter(r.performance.iter().map(|p| finite(p.value)))),
        Arc::new(Float64Array::from_iter(r.performance.iter().map(|p| p.reference.and_then(finite)))),
        Arc::new(Float64Array::from_iter(r.performance.iter().map(|p| p.lower))),
        Arc::new(Float64Array::from_iter(r.performance.iter().map(|p| p.upper))),
        Arc::new(BooleanArray::from_iter(r.performance.iter().map(|p| p.breached))),
    ]);

    let n = r.quality.len();
    let mut quality = head(n);
    quality.extend([
        strings(r.quality.iter().map(|q| q.feature.as_str()).collect()),
        strings(r.quality.iter().map(|q| q.check.as_str()).collect()),
        Arc::new(Float64Array::from_iter(r.quality.iter().map(|q| finite(q.value)))),
    ]);

    Ok(vec![
        ("drift", RecordBatch::try_new(schema("drift"), drift)?),
        ("performance", RecordBatch::try_new(schema("performance"), performance)?),
        ("quality", RecordBatch::try_new(schema("quality"), quality)?),
    ])
}

/// Path of a window's file of a table: one per tumbling window (by start) and row-count window
/// (by number), one for the rolling window.
pub fn path(model: &str, table: &str, window: &Window) -> Path {
    match *window {
        Window::Rolling { .. } => Path::from(format!("{model}/results/{table}/rolling.parquet")),
        Window::Rows { index, .. } => Path::from(format!("{model}/results/{table}/rows-{index:020}.parquet")),
        Window::Tumbling { start, .. } => Path::from(format!("{model}/results/{table}/window-{start:020}.parquet")),
    }
}

/// `batch` as a Parquet file (default settings).
pub(crate) fn parquet(batch: &RecordBatch) -> Result<Bytes> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(buf))
}

/// Writes a window's results, replacing an earlier computation of the same window.
pub async fn write(store: &Store, model: &str, window: &Window, computed_us: i64, r: &WindowResult) -> Result<()> {
    for (table, batch) in batches(window, computed_us, r)? {
        store.put(&path(model, table, window), parquet(&batch)?).await?;
    }
    Ok(())
}

/// Deletes a window's results (a row-count window that no longer exists).
pub async fn delete(store: &Store, model: &str, window: &Window) -> Result<()> {
    for table in TABLES {
        store.delete(&path(model, table, window)).await?;
    }
    Ok(())
}
