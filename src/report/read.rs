//! Reading the two datasets through DataFusion, and viewing Arrow columns as the analyzer's
//! [`ColumnData`] without copying strings.

use anchorwatch_analyzer::drift::embedding::Vectors;
use anchorwatch_analyzer::drift::{self, Prepared};
use anchorwatch_analyzer::hash::FastMap;
use anyhow::{Context, bail};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::{DataType, Schema};
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext};
use std::path::{Path, PathBuf};

/// Rows DataFusion looks at to infer a CSV file's column types: enough that a column whose
/// first rows look like integers and later rows hold decimals is typed as floats.
const CSV_INFER_ROWS: usize = 100_000;

/// A file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.parquet` or `.pq`.
    Parquet,
    /// `.csv` (comma-separated, with a header row).
    Csv,
}

/// One input file, opened lazily: its schema is known, its data not read yet.
pub struct Input {
    /// "reference" or "current", for messages.
    pub side: &'static str,
    /// The path as given.
    pub path: PathBuf,
    frame: DataFrame,
    /// Arrow schema of the whole file.
    pub schema: Schema,
    /// The file's format.
    pub format: Format,
}

/// The selected columns of one file, as Arrow chunks in file order.
pub struct Table {
    /// Rows read.
    pub rows: u64,
    /// Per selected column (in selection order), its arrays.
    pub columns: Vec<Vec<ArrayRef>>,
}

fn format_of(side: &str, path: &Path) -> anyhow::Result<(Format, String)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = match ext.to_ascii_lowercase().as_str() {
        "parquet" | "pq" => Format::Parquet,
        "csv" => Format::Csv,
        _ => bail!("{side} file {}: unknown extension {ext:?}; expected .parquet, .pq or .csv", path.display()),
    };
    Ok((format, format!(".{ext}")))
}

/// Checks that the file exists and is readable, then lets DataFusion read its schema (a
/// Parquet footer, or the first rows of a CSV file).
pub async fn open(ctx: &SessionContext, side: &'static str, path: &Path) -> anyhow::Result<Input> {
    let (format, ext) = format_of(side, path)?;
    // DataFusion's own messages for a missing file mention URLs and listing tables; say it plainly.
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {side} file {}", path.display()))?;
    if !meta.is_file() {
        bail!("{side} file {} is not a regular file", path.display());
    }
    std::fs::File::open(path).with_context(|| format!("cannot read {side} file {}", path.display()))?;
    if meta.len() == 0 {
        bail!("{side} file {} is empty (0 bytes)", path.display());
    }
    let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let location = absolute.to_str().with_context(|| format!("{side} file path is not UTF-8: {}", path.display()))?;
    let frame = match format {
        Format::Parquet => ctx.read_parquet(location, ParquetReadOptions::default().file_extension(&ext)).await,
        Format::Csv => {
            let options =
                CsvReadOptions::new().has_header(true).file_extension(&ext).schema_infer_max_records(CSV_INFER_ROWS);
            ctx.read_csv(location, options).await
        }
    }
    .with_context(|| format!("cannot read {side} file {}", path.display()))?;
    let schema = frame.schema().as_arrow().clone();
    if schema.fields().is_empty() {
        bail!("{side} file {} has no columns", path.display());
    }
    Ok(Input { side, path: path.to_path_buf(), frame, schema, format })
}

impl Input {
    /// Reads only `columns`, keeping the file's row order (the permutation tests depend on it).
    pub async fn read(&self, columns: &[&str]) -> anyhow::Result<Table> {
        let context = || format!("cannot read {} file {}", self.side, self.path.display());
        let frame = self.frame.clone().select_columns(columns).with_context(context)?;
        // Partitions of one file are consecutive byte ranges: concatenating them in partition
        // order is file order, which `collect` (interleaving partitions) would not keep.
        let partitions = frame.collect_partitioned().await.with_context(context)?;
        let mut table = Table { rows: 0, columns: vec![Vec::new(); columns.len()] };
        for batch in partitions.into_iter().flatten() {
            table.rows += batch.num_rows() as u64;
            for (i, array) in batch.columns().iter().enumerate() {
                table.columns[i].push(array.clone());
            }
        }
        if table.rows == 0 {
            bail!("{} file {} has no rows", self.side, self.path.display());
        }
        Ok(table)
    }
}

/// How a column's Arrow type maps onto the analyzer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Numbers, converted to f64; `integer` for integer types.
    Numeric {
        /// An integer data type.
        integer: bool,
    },
    /// Text, booleans, dictionaries of text: categories.
    Categorical,
    /// Arrow's Null type (a CSV column with no value at all): takes the other side's class.
    Null,
    /// Lists of numbers, one vector per row: an embedding column.
    Embedding,
    /// Anything else (dates, binary, lists...): the column is skipped.
    Unsupported,
}

/// The class of an Arrow type.
pub fn class_of(dt: &DataType) -> Class {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Class::Numeric { integer: true },
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Class::Numeric { integer: false },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => Class::Categorical,
        DataType::Null => Class::Null,
        dt if drift::embedding::is_vector_type(dt) => Class::Embedding,
        DataType::Dictionary(_, value) => match class_of(value) {
            Class::Categorical => Class::Categorical,
            Class::Numeric { integer } => Class::Numeric { integer },
            _ => Class::Unsupported,
        },
        _ => Class::Unsupported,
    }
}

/// The column's values as f64 in one buffer, nulls as NaN; also whether any value was null.
/// This is the one copy a numerical column needs: Arrow holds it in chunks, the tests want
/// one contiguous slice.
pub fn numbers(chunks: &[ArrayRef]) -> anyhow::Result<(Vec<f64>, bool)> {
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
    let mut any_null = false;
    for chunk in chunks {
        let cast;
        let floats: &Float64Array = if chunk.data_type() == &DataType::Float64 {
            chunk.as_primitive()
        } else {
            cast = arrow::compute::cast(chunk, &DataType::Float64)?;
            cast.as_primitive()
        };
        let start = out.len();
        out.extend_from_slice(floats.values());
        if let Some(nulls) = floats.logical_nulls().filter(|n| n.null_count() > 0) {
            any_null = true;
            for i in 0..floats.len() {
                if nulls.is_null(i) {
                    out[start + i] = f64::NAN;
                }
            }
        }
    }
    Ok((out, any_null))
}

/// The column's vectors, row after row (a null row as NaNs).
pub fn vectors(chunks: &[ArrayRef]) -> anyhow::Result<Vectors> {
    let mut out = Vectors::default();
    for chunk in chunks {
        out.append(chunk.as_ref())?;
    }
    Ok(out)
}

/// The column's values as borrowed strings (`None` for null); booleans read "true"/"false".
pub fn strings(chunks: &[ArrayRef]) -> anyhow::Result<Vec<Option<&str>>> {
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
    for chunk in chunks {
        push_strings(chunk.as_ref(), &mut out)?;
    }
    Ok(out)
}

/// The categories of string-view columns (what DataFusion reads Parquet text as), coded as
/// [`Prepared::from_codes`] takes them, with each side's missing values; `None` when a chunk is
/// of another type. A string of up to 12 bytes lives whole in its 16-byte view, so it is hashed
/// and compared as one integer; longer ones by their text. Same result as
/// `Prepared::new` over [`strings`], without the per-row string slices.
pub fn view_categories<'a>(
    reference: &'a [ArrayRef],
    current: &'a [ArrayRef],
) -> Option<(Result<Prepared<'static>, drift::Error>, (u64, u64))> {
    if !reference.iter().chain(current).all(|a| a.data_type() == &DataType::Utf8View) {
        return None;
    }
    let mut inline: FastMap<u128, u32> = FastMap::default();
    let mut long: FastMap<&str, u32> = FastMap::default();
    let mut first_seen: Vec<String> = Vec::new();
    let mut side = |chunks: &'a [ArrayRef]| -> (Vec<u32>, u64) {
        let mut codes = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
        let mut missing = 0u64;
        for chunk in chunks {
            let array = chunk.as_string_view();
            let nulls = array.logical_nulls();
            for (i, &view) in array.views().iter().enumerate() {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    missing += 1;
                    continue;
                }
                let len = view as u32;
                let mut new = || {
                    first_seen.push(array.value(i).to_string());
                    (first_seen.len() - 1) as u32
                };
                let code = if len <= 12 {
                    // Length and bytes, the padding past them masked off.
                    let key = if len == 12 { view } else { view & ((1u128 << (32 + 8 * len)) - 1) };
                    *inline.entry(key).or_insert_with(new)
                } else {
                    match long.get(array.value(i)) {
                        Some(&code) => code,
                        None => {
                            let code = new();
                            long.insert(array.value(i), code);
                            code
                        }
                    }
                };
                codes.push(code);
            }
        }
        (codes, missing)
    };
    let (r, r_missing) = side(reference);
    let (c, c_missing) = side(current);
    Some((Prepared::from_codes(&first_seen, r, c), (r_missing, c_missing)))
}

fn push_strings<'a>(array: &'a dyn Array, out: &mut Vec<Option<&'a str>>) -> anyhow::Result<()> {
    match array.data_type() {
        DataType::Utf8 => out.extend(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => out.extend(array.as_string::<i64>().iter()),
        DataType::Utf8View => out.extend(array.as_string_view().iter()),
        DataType::Boolean => out.extend(array.as_boolean().iter().map(|b| b.map(|b| if b { "true" } else { "false" }))),
        DataType::Null => out.extend(std::iter::repeat_n(None, array.len())),
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let mut values = Vec::with_capacity(dict.values().len());
            push_strings(dict.values().as_ref(), &mut values)?;
            let keys = dict.normalized_keys();
            let nulls = array.logical_nulls();
            for (i, k) in keys.into_iter().enumerate() {
                let valid = nulls.as_ref().is_none_or(|n| n.is_valid(i));
                out.push(if valid { values.get(k).copied().flatten() } else { None });
            }
        }
        other => bail!("cannot read {other} values as categories"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringViewArray;

    use super::*;

    #[test]
    fn categories_by_view_equal_the_string_path() {
        // Empty, short, exactly 12 bytes, 13 bytes, long, non-ASCII, and nulls, split into chunks.
        let values = [
            Some(""),
            Some("a"),
            Some("twelve bytes"),
            Some("thirteen byte"),
            Some("a much longer category name"),
            Some("ærøskøbing"),
            None,
            Some("a"),
            Some("twelve bytes"),
            Some("a much longer category name"),
            None,
            Some("b"),
        ];
        let chunk = |range: std::ops::Range<usize>| -> ArrayRef {
            Arc::new(StringViewArray::from_iter(values[range].iter().copied()))
        };
        let reference = vec![chunk(0..5), chunk(5..9)];
        let current = vec![chunk(3..12), chunk(0..2)];
        let (by_view, missing) = view_categories(&reference, &current).expect("string views");
        let (r, c) = (strings(&reference).unwrap(), strings(&current).unwrap());
        let expected = Prepared::new(&drift::ColumnData::Categorical(&r), &drift::ColumnData::Categorical(&c)).unwrap();
        let by_view = by_view.unwrap();
        let fields = |p: &Prepared<'_>| match p {
            Prepared::Categorical { keys, reference, current, reference_codes, current_codes } => {
                (keys.clone(), reference.clone(), current.clone(), reference_codes.clone(), current_codes.clone())
            }
            Prepared::Numerical { .. } => unreachable!(),
        };
        assert_eq!(fields(&by_view), fields(&expected));
        let nulls = |side: &[Option<&str>]| side.iter().filter(|v| v.is_none()).count() as u64;
        assert_eq!(missing, (nulls(&r), nulls(&c)));
        // Other types take the string path.
        let utf8: Vec<ArrayRef> = vec![Arc::new(arrow::array::StringArray::from(vec!["a"]))];
        assert!(view_categories(&utf8, &utf8).is_none());
    }
}
