//! Columns of a window or of the reference, in the forms the drift tests borrow.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;

use super::Result;
use crate::drift::ColumnData;

/// One column's values.
#[derive(Debug, Clone)]
pub enum Column {
    /// Numbers; a missing value is NaN (the drift tests drop it, as Evidently does).
    Numbers(Vec<f64>),
    /// Categories as text (booleans as `true`/`false`); a missing value is null.
    Strings(StringArray),
}

impl Column {
    /// Joins the pieces of one column, as numbers when `numeric`, else as text.
    pub fn from_arrays(arrays: &[&dyn Array], numeric: bool) -> Result<Self> {
        let joined: ArrayRef = if arrays.is_empty() {
            arrow::array::new_empty_array(if numeric { &DataType::Float64 } else { &DataType::Utf8 })
        } else {
            concat(arrays)?
        };
        Ok(if numeric {
            // Timestamps become µs since the epoch (Arrow casts them to integers, not floats).
            let joined = match joined.data_type() {
                DataType::Timestamp(_, _) => cast(&joined, &DataType::Int64)?,
                _ => joined,
            };
            let floats = cast(&joined, &DataType::Float64)?;
            let floats = floats.as_primitive::<Float64Type>();
            let mut values = floats.values().to_vec();
            if floats.null_count() > 0 {
                for (i, v) in values.iter_mut().enumerate() {
                    if floats.is_null(i) {
                        *v = f64::NAN;
                    }
                }
            }
            Column::Numbers(values)
        } else {
            Column::Strings(cast(&joined, &DataType::Utf8)?.as_string::<i32>().clone())
        })
    }

    /// Rows, missing ones included.
    pub fn len(&self) -> usize {
        match self {
            Column::Numbers(v) => v.len(),
            Column::Strings(a) => a.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Missing values (null, NaN or infinite).
    pub fn missing(&self) -> usize {
        match self {
            Column::Numbers(v) => v.iter().filter(|x| !x.is_finite()).count(),
            Column::Strings(a) => a.null_count(),
        }
    }

    /// Calls `f` with the column as the drift tests take it, borrowing the values.
    pub fn with_data<R>(&self, f: impl FnOnce(&ColumnData<'_>) -> R) -> R {
        match self {
            Column::Numbers(values) => f(&ColumnData::Numerical { values, integer: false }),
            Column::Strings(array) => {
                let refs: Vec<Option<&str>> = array.iter().collect();
                f(&ColumnData::Categorical(&refs))
            }
        }
    }
}

/// Named columns with the same number of rows.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Rows.
    pub rows: usize,
    /// Columns by name.
    pub columns: HashMap<String, Column>,
}

impl Frame {
    /// Takes `wanted` columns (name, numeric?) out of batches; absent columns are skipped.
    pub fn from_batches(batches: &[RecordBatch], wanted: &[(String, bool)]) -> Result<Self> {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let mut columns = HashMap::new();
        for (name, numeric) in wanted {
            let pieces: Vec<&dyn Array> =
                batches.iter().filter_map(|b| b.column_by_name(name)).map(|a| a.as_ref()).collect();
            if pieces.len() == batches.len() && !batches.is_empty() {
                columns.insert(name.clone(), Column::from_arrays(&pieces, *numeric)?);
            } else if batches.is_empty() {
                columns.insert(name.clone(), Column::from_arrays(&[], *numeric)?);
            }
        }
        Ok(Self { rows, columns })
    }

    /// Rows `offset..offset + len` of every column.
    pub fn slice(&self, offset: usize, len: usize) -> Self {
        let columns = self
            .columns
            .iter()
            .map(|(name, c)| {
                let part = match c {
                    Column::Numbers(v) => Column::Numbers(v[offset..offset + len].to_vec()),
                    Column::Strings(a) => Column::Strings(a.slice(offset, len)),
                };
                (name.clone(), part)
            })
            .collect();
        Self { rows: len, columns }
    }

    /// A column by name.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.get(name)
    }
}
