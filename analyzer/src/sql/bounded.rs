//! String functions whose output size the query chooses (`repeat('x', 1500000000)`), wrapped so
//! that a call whose output would exceed the query's memory limit fails before it allocates.
//!
//! DataFusion's memory pool counts what operators buffer, not what a scalar function returns,
//! and constant folding runs these functions while planning, before any limit applies. The
//! wrapper computes an upper bound of the output from the arguments' lengths and refuses, with
//! `ResourcesExhausted`, a call whose output could exceed the query's memory limit, or one value
//! longer than the limit over the batch size: a constant-folded value is later copied into every
//! row of a batch, and a batch of such values must fit the limit too.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) · n`.
    Repeat,
    /// `replace(s, from, to)`: at most `len(s) + (len(s) / len(from) + 1) · len(to)`.
    Replace,
    /// `lpad(s, n[, fill])`, `rpad(…)`: at most `len(s) + 4n` (n characters of up to 4 bytes).
    Pad,
    /// `concat(…)`, `concat_ws(…)`, `overlay(…)`: at most the sum of the arguments' lengths
    /// (`concat_ws` adds its separator between them: at most the separator once per argument).
    Sum,
}

const WRAPPED: [(&str, Growth); 7] = [
    ("repeat", Growth::Repeat),
    ("replace", Growth::Replace),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("concat", Growth::Sum),
    ("concat_ws", Growth::Sum),
    ("overlay", Growth::Sum),
];

/// The smallest bound on one value, whatever the limit and batch size.
const MIN_VALUE_BYTES: usize = 4096;

/// Replaces the session's sized string functions (those it has) with bounded ones: a call whose
/// output could exceed `limit` bytes, or one value `limit / batch_size` bytes, fails with
/// `ResourcesExhausted`.
pub fn register(ctx: &SessionContext, limit: usize) {
    let batch_size = ctx.state().config().batch_size().max(1);
    let per_value = (limit / batch_size).max(MIN_VALUE_BYTES);
    for (name, growth) in WRAPPED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded { inner, growth, limit, per_value }));
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    limit: usize,
    per_value: usize,
}

/// Per-row lengths (bytes of a string, or an integer's value) of one argument, without
/// materialising a scalar for every row.
enum Lengths {
    Const(Option<i64>),
    Rows(Vec<Option<i64>>),
}

impl Lengths {
    fn of(value: &ColumnarValue) -> Option<Self> {
        Some(match value {
            ColumnarValue::Scalar(s) => Lengths::Const(match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_ref().map(|s| s.len() as i64)
                }
                s if s.is_null() => None,
                s => Some(i64::try_from(s.clone()).ok()?),
            }),
            ColumnarValue::Array(a) => Lengths::Rows(match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().iter().map(|v| v.map(|s| s.len() as i64)).collect(),
                DataType::LargeUtf8 => a.as_string::<i64>().iter().map(|v| v.map(|s| s.len() as i64)).collect(),
                DataType::Utf8View => a.as_string_view().iter().map(|v| v.map(|s| s.len() as i64)).collect(),
                _ => {
                    let ints = arrow::compute::cast(a, &DataType::Int64).ok()?;
                    ints.as_primitive::<Int64Type>().iter().collect()
                }
            }),
        })
    }

    fn at(&self, row: usize) -> Option<i64> {
        match self {
            Lengths::Const(v) => *v,
            Lengths::Rows(v) => v.get(row).copied().flatten(),
        }
    }
}

impl Bounded {
    /// Upper bounds of the output's bytes and of its longest value, or `None` when the
    /// arguments are of a shape this does not know (then the call is left to the function).
    fn bound(&self, args: &ScalarFunctionArgs) -> Option<(u128, u128)> {
        let lengths: Vec<Lengths> = args.args.iter().map(Lengths::of).collect::<Option<_>>()?;
        let all_const = lengths.iter().all(|l| matches!(l, Lengths::Const(_)));
        let rows = if all_const { 1 } else { args.number_rows };
        let arg = |i: usize, row: usize| lengths.get(i).and_then(|l| l.at(row)).unwrap_or(0).max(0) as u128;
        let per_row = |row: usize| match self.growth {
            Growth::Repeat => arg(0, row) * arg(1, row),
            Growth::Replace => arg(0, row) + (arg(0, row) / arg(1, row).max(1) + 1) * arg(2, row),
            Growth::Pad => arg(0, row) + 4 * arg(1, row),
            Growth::Sum => (0..lengths.len()).map(|i| arg(i, row)).sum::<u128>() + arg(0, row) * lengths.len() as u128,
        };
        let (total, longest) = (0..rows).map(per_row).fold((0, 0), |(t, m), v| (t + v, m.max(v)));
        Some((if all_const { total * args.number_rows.max(1) as u128 } else { total }, longest))
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some((total, longest)) = self.bound(&args) {
            if total > self.limit as u128 {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{}(…) would return up to {total} bytes, more than the query may hold ({} bytes)",
                    self.name(),
                    self.limit
                )));
            }
            if longest > self.per_value as u128 {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{}(…) would return a value of up to {longest} bytes; one value may hold {} bytes (the query's memory over its batch size)",
                    self.name(),
                    self.per_value
                )));
            }
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    fn exhausted(r: Result<Vec<arrow::record_batch::RecordBatch>>) -> bool {
        matches!(r.as_ref().map_err(|e| e.find_root()), Err(DataFusionError::ResourcesExhausted(_)))
    }

    #[tokio::test]
    async fn calls_whose_output_would_exceed_the_limit_fail_before_running() {
        let ctx = SessionContext::new();
        register(&ctx, 1 << 20);
        let ok = run(&ctx, "SELECT length(repeat('ab', 1000)) AS n").await.unwrap();
        // Within both bounds.
        assert_eq!(arrow::util::pretty::pretty_format_batches(&ok).unwrap().to_string().matches("2000").count(), 1);
        // Constant-folded while planning, and per row while executing.
        assert!(exhausted(run(&ctx, "SELECT length(repeat('x', 1500000000)) AS n").await));
        assert!(exhausted(run(&ctx, "SELECT repeat(s, 2000) FROM (VALUES ('abc'), ('de')) AS t(s)").await));
        assert!(run(&ctx, "SELECT repeat(s, 1000) FROM (VALUES ('abc'), ('de')) AS t(s)").await.is_ok());
        // One value is at most the limit over the batch size (1 MiB / 8192 rounds up to 4 KiB):
        // a constant-folded value is copied into every row of a batch.
        assert!(exhausted(run(&ctx, "SELECT repeat('x', 5000) FROM generate_series(1, 10)").await));
        assert!(run(&ctx, "SELECT repeat('x', 4000) FROM generate_series(1, 10)").await.is_ok());
        assert!(exhausted(run(&ctx, "SELECT length(replace(repeat('x', 1000), 'x', repeat('y', 1000))) AS n").await));
        assert!(exhausted(run(&ctx, "SELECT length(concat(repeat('x', 3000), repeat('y', 3000))) AS n").await));
        assert!(run(&ctx, "SELECT replace('a-b-c', '-', '+') AS s").await.is_ok());
    }
}
