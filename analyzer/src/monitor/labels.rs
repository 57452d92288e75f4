//! The label join state of profiled analysis: the latest label of every labeled prediction,
//! kept per prediction hour, so that a window joins its rows with the labels of its own hours
//! instead of with every label ever stored.
//!
//! Stored under `<model>/results/_labels/`:
//! - `hour=<YYYY-MM-DDTHH>.parquet`: for the predictions whose event time falls in that hour,
//!   the latest label of each, in the labels schema (`prediction_id`, `label`, `timestamp`,
//!   `received_at`). "Latest" is the one received last, then the one with the latest label
//!   time, as in the `labels_latest` view.
//! - `pending.parquet`: labels whose prediction was not found (yet: a label may arrive before
//!   its prediction), kept for the label lookback after they were received.
//!
//! A new label file is read once. Its ids are looked up among the predictions made up to the
//! label lookback before its label time, in one DataFusion join that reads only `prediction_id`
//! and `timestamp` of the days that may hold them; a new prediction file's hour is looked up for
//! the pending labels only. So the work follows new data, and a window
//! reads its hours' labels, not the label history.
//!
//! Every write puts a whole file, and folding the same labels twice gives the same state, so a
//! crash between two puts is mended by the next run, which folds the same files again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anchorwatch_collector::store::Store;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::Result;
use super::data::{Column, Frame};

const HOUR_US: i64 = 3_600_000_000;

fn dir(model: &str) -> String {
    format!("{model}/results/_labels")
}

fn hour_path(model: &str, hour: i64) -> Path {
    let t = chrono::DateTime::from_timestamp_micros(hour).unwrap_or_default();
    Path::from(format!("{}/hour={}.parquet", dir(model), t.format("%Y-%m-%dT%H")))
}

fn pending_path(model: &str) -> Path {
    Path::from(format!("{}/pending.parquet", dir(model)))
}

/// The rows of the Parquet object at `path` in the labels `schema`; `None` when it does not exist.
async fn read(store: &Store, path: &Path, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
    let data = match store.object_store().get(path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let schema = schema.clone();
    let batch = tokio::task::spawn_blocking(move || -> Result<RecordBatch> {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
        let mut batches = Vec::new();
        for batch in reader {
            let batch = batch?;
            // Take the labels schema's columns by name, in its types (a file may hold more).
            let columns = schema
                .fields()
                .iter()
                .map(|f| {
                    let column = batch.column_by_name(f.name()).ok_or_else(|| {
                        arrow::error::ArrowError::SchemaError(format!("a label file has no `{}` column", f.name()))
                    })?;
                    cast(column, f.data_type())
                })
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(concat_batches(&schema, &batches)?)
    })
    .await
    .map_err(|e| super::Error::Reference(format!("label reading task failed: {e}")))??;
    Ok(Some(batch))
}

async fn write(store: &Store, path: &Path, batch: &RecordBatch) -> Result<()> {
    Ok(store.put(path, super::results::parquet(batch)?).await?)
}

/// The objects of the join state, hour files first (their names sort by time), then `pending`.
async fn state_files(store: &Store, model: &str) -> Result<Vec<Path>> {
    let prefix = Path::from(dir(model));
    Ok(store.object_store().list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?)
}

fn times(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch.column_by_name(name).map_or_else(Vec::new, |c| c.as_primitive::<TimestampMicrosecondType>().values().to_vec())
}

/// One row per `prediction_id`: the label received last, then the one with the latest label
/// time; among equals the first. Rows keep their order.
fn latest(batch: &RecordBatch) -> Result<RecordBatch> {
    let ids = batch.column(0).as_string::<i32>();
    let (label_time, received) = (times(batch, "timestamp"), times(batch, "received_at"));
    let mut best: HashMap<&str, usize> = HashMap::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        best.entry(ids.value(i))
            .and_modify(|b| {
                if (received[i], label_time[i]) > (received[*b], label_time[*b]) {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    if best.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    let mut keep: Vec<u32> = best.into_values().map(|i| i as u32).collect();
    keep.sort_unstable();
    Ok(take_record_batch(batch, &UInt32Array::from(keep))?)
}

/// What [`fold`] is given.
pub(crate) struct Fold<'a> {
    /// The store and model.
    pub store: &'a Store,
    pub model: &'a str,
    /// A session over the model's tables (`predictions` is looked up).
    pub ctx: &'a SessionContext,
    /// The labels schema.
    pub schema: SchemaRef,
    /// Label files to fold in: new or rewritten ones.
    pub label_files: Vec<String>,
    /// How far before its label time (µs) a label's prediction may have been made.
    pub lookback: i64,
    /// Prediction hours (start, µs) with new files, looked up for the pending labels.
    pub new_hours: BTreeSet<i64>,
    /// Pending labels received before this (µs) are dropped.
    pub pending_from: i64,
}

/// Folds new label files and new prediction hours into the join state; returns the prediction
/// hours the folded labels label, changed or not: folding the same files again after a crash
/// returns the same hours, so their windows are analysed even if the state was already written.
pub(crate) async fn fold(f: &Fold<'_>) -> Result<BTreeSet<i64>> {
    let mut parts = Vec::new();
    let pending = read(f.store, &pending_path(f.model), &f.schema).await?;
    parts.extend(pending.clone());
    let mut earliest = i64::MAX;
    for file in &f.label_files {
        // A listed file that is gone (compaction deleted it after a long run): this run fails,
        // and the next one lists the store again.
        let batch = read(f.store, &Path::from(file.as_str()), &f.schema)
            .await?
            .ok_or_else(|| super::Error::Reference(format!("the label file {file} is gone since it was listed")))?;
        earliest = times(&batch, "timestamp").into_iter().fold(earliest, i64::min);
        parts.push(batch);
    }
    let candidates = latest(&concat_batches(&f.schema, &parts)?)?;
    if candidates.num_rows() == 0 {
        return Ok(BTreeSet::new());
    }
    // Where to look: the days the lookback allows for new labels, the new hours for all.
    let mut places = Vec::new();
    if earliest < i64::MAX {
        let t = chrono::DateTime::from_timestamp_micros(earliest.saturating_sub(f.lookback)).unwrap_or_default();
        places.push(format!("p.date >= '{}'", t.format("%Y-%m-%d")));
    }
    for hour in &f.new_hours {
        let t = chrono::DateTime::from_timestamp_micros(*hour).unwrap_or_default();
        places.push(format!("(p.date = '{}' AND p.hour = '{}')", t.format("%Y-%m-%d"), t.format("%H")));
    }
    if places.is_empty() {
        return Ok(BTreeSet::new());
    }
    let ids = RecordBatch::try_from_iter([("prediction_id", candidates.column(0).clone())])?;
    f.ctx.register_batch("label_probe", ids)?;
    let query = format!(
        "SELECT p.prediction_id, p.timestamp FROM predictions p JOIN label_probe n \
         ON p.prediction_id = n.prediction_id WHERE {}",
        places.join(" OR ")
    );
    let found = f.ctx.sql(&query).await?.collect().await;
    f.ctx.deregister_table("label_probe")?;
    let found = found?;

    let index: HashMap<&str, u32> = candidates
        .column(0)
        .as_string::<i32>()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.unwrap_or(""), i as u32))
        .collect();
    let label_time = times(&candidates, "timestamp");
    let mut by_hour: BTreeMap<i64, BTreeSet<u32>> = BTreeMap::new();
    let mut matched = vec![false; candidates.num_rows()];
    for batch in &found {
        let ids = cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let time = cast(batch.column(1), &arrow::datatypes::DataType::Int64)?;
        let time = time.as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            let found = ids.is_valid(i).then(|| index.get(ids.value(i))).flatten();
            // The day filter above prunes; this is the exact lookback, label by label.
            if let Some(&row) =
                found.filter(|&&row| time.value(i) >= label_time[row as usize].saturating_sub(f.lookback))
            {
                matched[row as usize] = true;
                by_hour.entry(time.value(i).div_euclid(HOUR_US) * HOUR_US).or_default().insert(row);
            }
        }
    }

    let labeled: BTreeSet<i64> = by_hour.keys().copied().collect();
    for (hour, rows) in by_hour {
        let path = hour_path(f.model, hour);
        let before = read(f.store, &path, &f.schema).await?;
        let new = take_record_batch(&candidates, &UInt32Array::from_iter_values(rows))?;
        let merged = match &before {
            Some(b) => latest(&concat_batches(&f.schema, [b, &new])?)?,
            None => new,
        };
        if before.as_ref() != Some(&merged) {
            write(f.store, &path, &merged).await?;
        }
    }
    // Labels not found wait for their prediction, for a while.
    let received = times(&candidates, "received_at");
    let wait: Vec<u32> = (0..candidates.num_rows())
        .filter(|&i| !matched[i] && received[i] >= f.pending_from)
        .map(|i| i as u32)
        .collect();
    let still = take_record_batch(&candidates, &UInt32Array::from(wait))?;
    if still.num_rows() > 0 {
        if pending.as_ref() != Some(&still) {
            write(f.store, &pending_path(f.model), &still).await?;
        }
    } else if pending.is_some() {
        f.store.delete(&pending_path(f.model)).await?;
    }
    Ok(labeled)
}

/// Deletes the whole join state (before it is built anew).
pub(crate) async fn clear(store: &Store, model: &str) -> Result<()> {
    for path in state_files(store, model).await? {
        store.delete(&path).await?;
    }
    Ok(())
}

/// Deletes the hour states of hours before `oldest`, the oldest hour with predictions
/// (retention deleted the ones before).
pub(crate) async fn prune(store: &Store, model: &str, oldest: i64) -> Result<()> {
    let first = hour_path(model, oldest);
    for path in state_files(store, model).await?.into_iter().filter(|p| p.as_ref() < first.as_ref()) {
        store.delete(&path).await?;
    }
    Ok(())
}

/// Adds `label` and `label_timestamp` to a window's `frame` from the join state of the hours
/// `start..end` overlaps, by the frame's `prediction_id` (which it takes out). `numeric` says
/// how the label column is read.
pub(crate) async fn attach(
    store: &Store,
    model: &str,
    schema: &SchemaRef,
    frame: &mut Frame,
    (start, end): (i64, i64),
    numeric: bool,
) -> Result<()> {
    let mut parts = Vec::new();
    let mut hour = start.div_euclid(HOUR_US) * HOUR_US;
    while hour < end {
        parts.extend(read(store, &hour_path(model, hour), schema).await?);
        hour += HOUR_US;
    }
    let labels = concat_batches(schema, &parts)?;
    let label_ids = labels.column(0).as_string::<i32>();
    let index: HashMap<&str, u32> = (0..labels.num_rows()).map(|i| (label_ids.value(i), i as u32)).collect();
    let rows: UInt32Array = match frame.columns.remove("prediction_id") {
        Some(Column::Strings(ids)) => ids.iter().map(|id| id.and_then(|id| index.get(id).copied())).collect(),
        _ => std::iter::repeat_n(None, frame.rows).collect(),
    };
    let column = |name: &str| -> Result<ArrayRef> {
        let values = labels.column_by_name(name).expect("a labels schema column");
        Ok(if labels.num_rows() == 0 {
            new_null_array(values.data_type(), frame.rows)
        } else {
            arrow::compute::take(values.as_ref(), &rows, None)?
        })
    };
    let (label, time) = (column("label")?, column("timestamp")?);
    frame.columns.insert("label".into(), Column::from_arrays(&[label.as_ref()], numeric)?);
    frame.columns.insert("label_timestamp".into(), Column::from_arrays(&[time.as_ref()], true)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    fn batch(rows: &[(&str, f64, i64, i64)]) -> RecordBatch {
        let t = |f: fn(&(&str, f64, i64, i64)) -> i64| {
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC")) as ArrayRef
        };
        RecordBatch::try_from_iter([
            ("prediction_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("label", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1)))),
            ("timestamp", t(|r| r.2)),
            ("received_at", t(|r| r.3)),
        ])
        .unwrap()
    }

    #[test]
    fn the_latest_label_is_the_last_received_then_the_latest_in_label_time() {
        let b = batch(&[("a", 1.0, 5, 10), ("b", 2.0, 0, 0), ("a", 3.0, 1, 20), ("a", 4.0, 9, 20), ("a", 5.0, 0, 15)]);
        let l = latest(&b).unwrap();
        assert_eq!(l.num_rows(), 2);
        assert_eq!(l.column(0).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(l.column(1).as_primitive::<arrow::datatypes::Float64Type>().values().to_vec(), [2.0, 4.0]);
        // Equal keys: the first stays, so folding the same labels again changes nothing.
        let twice = concat_batches(&l.schema(), [&l, &l]).unwrap();
        assert_eq!(latest(&twice).unwrap(), l);
    }
}
