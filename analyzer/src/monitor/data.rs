//! Columns of a window or of the reference, in the forms the drift tests borrow.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;

use super::Result;
use crate::drift::ColumnData;
use crate::drift::embedding::{Vectors, is_vector_type};

/// One column's values.
#[derive(Debug, Clone)]
pub enum Column {
    /// Numbers; a missing value is NaN (the drift tests drop it, as Evidently does).
    Numbers(Vec<f64>),
    /// Categories as text (booleans as `true`/`false`); a missing value is null.
    Strings(StringArray),
    /// Embeddings, from a list column whatever `numeric` said; a missing row holds NaNs.
    Vectors(Vectors),
}

impl Column {
    /// Joins the pieces of one column: as vectors when they are lists, else as numbers when
    /// `numeric`, else as text.
    pub fn from_arrays(arrays: &[&dyn Array], numeric: bool) -> Result<Self> {
        let mut column = ColumnBuilder::new(numeric);
        for a in arrays {
            column.push(*a)?;
        }
        column.finish()
    }

    /// Rows, missing ones included.
    pub fn len(&self) -> usize {
        match self {
            Column::Numbers(v) => v.len(),
            Column::Strings(a) => a.len(),
            Column::Vectors(v) => v.rows,
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
            Column::Vectors(v) => v.missing(),
        }
    }

    /// Calls `f` with the column as the drift tests take it, borrowing the values (vectors
    /// have no such form: they are tested whole, and read as no values here).
    pub fn with_data<R>(&self, f: impl FnOnce(&ColumnData<'_>) -> R) -> R {
        match self {
            Column::Numbers(values) => f(&ColumnData::Numerical { values, integer: false }),
            Column::Strings(array) => {
                let refs: Vec<Option<&str>> = array.iter().collect();
                f(&ColumnData::Categorical(&refs))
            }
            Column::Vectors(_) => f(&ColumnData::Numerical { values: &[], integer: false }),
        }
    }

    /// The rows `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Column {
        match self {
            Column::Numbers(v) => Column::Numbers(rows.iter().map(|&i| v[i]).collect()),
            Column::Strings(a) => Column::Strings(rows.iter().map(|&i| a.is_valid(i).then(|| a.value(i))).collect()),
            Column::Vectors(v) => Column::Vectors(v.select(rows.iter().copied())),
        }
    }
}

/// A [`Column`] built piece by piece, each value copied once (no concatenation of the pieces
/// first): a window's columns hold millions of values.
enum ColumnBuilder {
    Numbers(Vec<f64>),
    Strings(Vec<ArrayRef>),
    Vectors(Vectors),
}

impl ColumnBuilder {
    fn new(numeric: bool) -> Self {
        if numeric { ColumnBuilder::Numbers(Vec::new()) } else { ColumnBuilder::Strings(Vec::new()) }
    }

    fn push(&mut self, piece: &dyn Array) -> Result<()> {
        let empty = match self {
            ColumnBuilder::Numbers(v) => v.is_empty(),
            ColumnBuilder::Strings(p) => p.is_empty(),
            ColumnBuilder::Vectors(_) => false,
        };
        if empty && is_vector_type(piece.data_type()) {
            *self = ColumnBuilder::Vectors(Vectors::default());
        }
        match self {
            ColumnBuilder::Numbers(values) => {
                // Timestamps become µs since the epoch (Arrow casts them to integers, not floats).
                let micros;
                let piece = match piece.data_type() {
                    DataType::Timestamp(_, _) => {
                        micros = cast(piece, &DataType::Int64)?;
                        micros.as_ref()
                    }
                    _ => piece,
                };
                let floats = cast(piece, &DataType::Float64)?;
                let floats = floats.as_primitive::<Float64Type>();
                let from = values.len();
                values.extend_from_slice(floats.values());
                if floats.null_count() > 0 {
                    for (i, v) in values[from..].iter_mut().enumerate() {
                        if floats.is_null(i) {
                            *v = f64::NAN;
                        }
                    }
                }
            }
            ColumnBuilder::Strings(pieces) => pieces.push(cast(piece, &DataType::Utf8)?),
            ColumnBuilder::Vectors(vectors) => vectors.append(piece)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<Column> {
        Ok(match self {
            ColumnBuilder::Numbers(values) => Column::Numbers(values),
            ColumnBuilder::Strings(pieces) => {
                let joined = match pieces.len() {
                    0 => arrow::array::new_empty_array(&DataType::Utf8),
                    1 => pieces[0].clone(),
                    _ => concat(&pieces.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?,
                };
                Column::Strings(joined.as_string::<i32>().clone())
            }
            ColumnBuilder::Vectors(vectors) => Column::Vectors(vectors),
        })
    }
}

/// Builds a [`Frame`] from batches as they arrive, so a window's batches need not all be held
/// beside the frame.
pub struct FrameBuilder {
    rows: usize,
    batches: usize,
    columns: Vec<(String, usize, ColumnBuilder)>,
}

impl FrameBuilder {
    /// A builder of the `wanted` columns (name, numeric?).
    pub fn new(wanted: &[(String, bool)]) -> Self {
        let columns = wanted.iter().map(|(name, numeric)| (name.clone(), 0, ColumnBuilder::new(*numeric))).collect();
        Self { rows: 0, batches: 0, columns }
    }

    /// Appends a batch's rows.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.batches += 1;
        for (name, seen, column) in &mut self.columns {
            if let Some(piece) = batch.column_by_name(name) {
                column.push(piece.as_ref())?;
                *seen += 1;
            }
        }
        Ok(())
    }

    /// The frame; a column absent from some batch is left out.
    pub fn finish(self) -> Result<Frame> {
        let mut columns = HashMap::new();
        for (name, seen, column) in self.columns {
            if seen == self.batches {
                columns.insert(name, column.finish()?);
            }
        }
        Ok(Frame { rows: self.rows, columns })
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
        let mut builder = FrameBuilder::new(wanted);
        for b in batches {
            builder.push(b)?;
        }
        builder.finish()
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
                    Column::Vectors(v) => Column::Vectors(v.select(offset..offset + len)),
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
