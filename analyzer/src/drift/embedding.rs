//! Drift of an embedding column: rows of fixed-length vectors, read from Arrow list columns,
//! tested with one of Evidently's embedding drift methods ([`crate::stats::embedding_drift`]).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::error::ArrowError;

use super::{Error, Result};
use crate::stats::embedding_drift::{self, Embeddings, Spec};

/// Whether an Arrow type holds vectors an embedding column can be read from: a fixed-size
/// list, list or large list of numbers.
pub fn is_vector_type(dt: &DataType) -> bool {
    match dt {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => f.data_type().is_numeric(),
        _ => false,
    }
}

/// An embedding column's rows: `dims` values each, row after row. A missing row holds NaNs, so
/// rows keep their positions beside the other columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vectors {
    /// The values, `rows × dims`.
    pub values: Vec<f64>,
    /// Values per row; 0 while no row with a value has been seen.
    pub dims: usize,
    /// Rows, missing ones included.
    pub rows: usize,
}

impl Vectors {
    /// Appends the rows of `piece` (a list column, see [`is_vector_type`]). Every row must hold
    /// as many values as the first one (a fixed-size list's length decides it at once); a null
    /// row becomes NaNs, and so does a null value inside a row.
    pub fn append(&mut self, piece: &dyn Array) -> Result<(), ArrowError> {
        let (values, offsets): (_, Vec<usize>) = match piece.data_type() {
            DataType::FixedSizeList(_, n) => {
                let list = piece.as_fixed_size_list();
                let n = *n as usize;
                self.set_dims(n)?;
                let start = list.offset() * n;
                (list.values().slice(start, list.len() * n), (0..=list.len()).map(|i| i * n).collect())
            }
            DataType::List(_) => {
                let list = piece.as_list::<i32>();
                let first = list.value_offsets()[0] as usize;
                let offsets = list.value_offsets().iter().map(|&o| o as usize - first).collect();
                let len = list.value_offsets()[list.len()] as usize - first;
                (list.values().slice(first, len), offsets)
            }
            DataType::LargeList(_) => {
                let list = piece.as_list::<i64>();
                let first = list.value_offsets()[0] as usize;
                let offsets = list.value_offsets().iter().map(|&o| o as usize - first).collect();
                let len = list.value_offsets()[list.len()] as usize - first;
                (list.values().slice(first, len), offsets)
            }
            other => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "an embedding is a list of numbers, not {other}"
                )));
            }
        };
        let floats = arrow::compute::cast(&values, &DataType::Float64)?;
        let floats = floats.as_primitive::<Float64Type>();
        let nulls = piece.logical_nulls();
        for row in 0..piece.len() {
            let (from, to) = (offsets[row], offsets[row + 1]);
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                self.values.extend(std::iter::repeat_n(f64::NAN, self.dims));
            } else {
                self.set_dims(to - from).map_err(|e| match e {
                    ArrowError::InvalidArgumentError(m) => {
                        ArrowError::InvalidArgumentError(format!("row {}: {m}", self.rows))
                    }
                    e => e,
                })?;
                self.values.extend((from..to).map(|i| if floats.is_null(i) { f64::NAN } else { floats.value(i) }));
            }
            self.rows += 1;
        }
        Ok(())
    }

    /// Fixes the row length at `dims` (filling the rows seen so far, all missing, with NaN), or
    /// checks it is the one already fixed.
    fn set_dims(&mut self, dims: usize) -> Result<(), ArrowError> {
        if self.dims == 0 && dims > 0 {
            self.dims = dims;
            self.values = vec![f64::NAN; self.rows * dims];
        } else if dims != self.dims {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{dims} values where the column's embeddings have {}",
                self.dims
            )));
        }
        Ok(())
    }

    /// The rows `rows`, in that order.
    pub fn select(&self, rows: impl Iterator<Item = usize>) -> Vectors {
        let mut out = Vectors { values: Vec::new(), dims: self.dims, rows: 0 };
        for i in rows {
            out.values.extend_from_slice(&self.values[i * self.dims..(i + 1) * self.dims]);
            out.rows += 1;
        }
        out
    }

    /// Rows that hold a missing or infinite value.
    pub fn missing(&self) -> usize {
        if self.dims == 0 {
            return self.rows;
        }
        self.values.chunks_exact(self.dims).filter(|row| row.iter().any(|v| !v.is_finite())).count()
    }
}

/// An embedding column's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingDrift {
    /// Evidently's name of the method that ran: `model`, `distance`, `ratio` or `mmd`.
    pub method: &'static str,
    /// The method's score.
    pub score: f64,
    /// What the score was compared with (the threshold, or the bootstrapped quantile).
    pub threshold: f64,
    /// Whether the embeddings drifted.
    pub drifted: bool,
}

/// The drift of the embeddings `current` against `reference` (row-major, `dims` values per
/// row) with the method `spec` names. Rows holding a missing or infinite value are left out
/// (Evidently's classifier refuses them); a side with no row left is an error.
pub fn embedding_drift(reference: &[f64], current: &[f64], dims: usize, spec: &Spec) -> Result<EmbeddingDrift> {
    let complete = |values: &[f64]| -> Vec<f64> {
        if values.iter().all(|v| v.is_finite()) {
            return values.to_vec();
        }
        values.chunks_exact(dims.max(1)).filter(|row| row.iter().all(|v| v.is_finite())).flatten().copied().collect()
    };
    let (r, c) = (complete(reference), complete(current));
    if r.is_empty() {
        return Err(Error::EmptyColumn("reference"));
    }
    if c.is_empty() {
        return Err(Error::EmptyColumn("current"));
    }
    let (r, c) = (Embeddings::new(&r, dims)?, Embeddings::new(&c, dims)?);
    let method = spec.method(r.rows());
    let result = embedding_drift::embedding_drift(r, c, &method)?;
    Ok(EmbeddingDrift {
        method: method.name(),
        score: result.score,
        threshold: result.threshold,
        drifted: result.drifted,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{FixedSizeListArray, Float32Array, ListArray};
    use arrow::datatypes::{Field, Float32Type};

    use super::*;

    #[test]
    fn lists_flatten_row_after_row_with_null_rows_as_nan() {
        let field = Arc::new(Field::new("item", DataType::Float32, true));
        let values = Float32Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let nulls = arrow::buffer::NullBuffer::from(vec![true, false, true]);
        let fixed = FixedSizeListArray::new(field, 2, Arc::new(values), Some(nulls));
        let mut v = Vectors::default();
        v.append(&fixed.slice(1, 2)).unwrap();
        assert_eq!((v.dims, v.rows, v.missing()), (2, 2, 1));
        assert!(v.values[..2].iter().all(|x| x.is_nan()));
        assert_eq!(v.values[2..], [5.0, 6.0]);
        assert_eq!(v.select([1, 1].into_iter()).values, [5.0, 6.0, 5.0, 6.0]);

        // A list column: leading missing rows get their NaNs once the length is known.
        let list = |rows: Vec<Option<Vec<Option<f32>>>>| ListArray::from_iter_primitive::<Float32Type, _, _>(rows);
        let mut v = Vectors::default();
        v.append(&list(vec![None, Some(vec![Some(1.0), None])])).unwrap();
        assert_eq!((v.dims, v.rows, v.values.len(), v.values[2]), (2, 2, 4, 1.0));
        assert!(v.values[3].is_nan() && v.values[..2].iter().all(|x| x.is_nan()));
        let error = v.append(&list(vec![Some(vec![Some(3.0)])])).unwrap_err();
        assert!(error.to_string().contains("row 2: 1 values where the column's embeddings have 2"), "{error}");
    }

    #[test]
    fn incomplete_rows_are_left_out() {
        let spec = Spec { method: Some("distance".into()), ..Spec::default() };
        let reference = [0.0, 0.0, 1.0, 1.0, f64::NAN, 9.0];
        let current = [1.0, 1.0, 2.0, 2.0];
        let d = embedding_drift(&reference, &current, 2, &spec).unwrap();
        // Means (0.5, 0.5) and (1.5, 1.5): the NaN row's 9 does not count.
        assert_eq!((d.method, d.score, d.drifted), ("distance", 2f64.sqrt(), true));
        assert_eq!(embedding_drift(&[f64::NAN, 1.0], &current, 2, &spec), Err(Error::EmptyColumn("reference")));
    }
}
