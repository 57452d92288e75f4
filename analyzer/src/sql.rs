//! Read-only SQL over a model's stored predictions and labels, with DataFusion.
//!
//! Tables of the chosen model:
//! - `predictions`: every stored prediction, plus the partition columns `date` and `hour`;
//! - `labels`: every label as received (a prediction may have several);
//! - `labels_latest`: one label per prediction, the one that arrived last;
//! - `predictions_labeled`: `predictions` left-joined with `labels_latest` by `prediction_id`,
//!   adding `label` and `label_timestamp`;
//! - `drift`, `performance`, `quality`: the continuous analysis' results, one row per window
//!   and column, metric or check (see [`crate::monitor::results`]).
//!
//! Files merged by compaction are not seen twice: the store is registered through
//! [`anchorwatch_collector::compact::LiveStore`], whose listings leave out compacted sources.
//!
//! Statements other than queries (DDL, DML, `COPY`, `SET`) are refused. Results are capped in rows,
//! memory and time, and so is everything on the way there: the SQL text ([`MAX_SQL_BYTES`]),
//! planning (on the query threads, whose stacks grow on the heap for deep expressions), the
//! functions whose output the query sizes ([`bounded`]), the rows collected and the JSON written.
//! Queries run on threads of their own ([`run`]), so a query that computes for long stalls no
//! other request.

mod bounded;

use std::sync::Arc;
use std::time::Duration;

use anchorwatch_collector::decode::Table;
use anchorwatch_collector::layout::table_dir;
use anchorwatch_collector::schema::ModelSchema;
use anchorwatch_collector::store::Store;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

/// The URL under which the store is registered with DataFusion; every scan goes through the
/// store's own `object_store` instance, seen through `compact::LiveStore`.
const STORE_URL: &str = "anchorwatch://store/";

/// The longest SQL text accepted, in bytes. Far above any query a person writes; below it,
/// planning stays within the query threads' stacks however deep the expression.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// The deepest nesting of expressions accepted (`1+1+…+1` nests one level per term). Planning
/// time grows faster than the depth (seconds at a thousand levels), so deeper queries are refused
/// before they are planned rather than left to hold a query thread.
pub const MAX_EXPRESSION_DEPTH: usize = 500;

/// Stack of each query thread. Virtual memory: only what deep plans touch is ever committed.
const QUERY_STACK_BYTES: usize = 64 << 20;

/// Queries planned and executed at once; more wait for a turn within their timeout.
const QUERY_THREADS: usize = 2;

/// Limits on one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Rows returned at most; the result says when it was cut.
    pub max_rows: usize,
    /// Memory a query may hold, in bytes: what its operators buffer, what one function call
    /// returns, and the rows it returns.
    pub memory_limit: usize,
    /// Wall time a query may take, waiting for a turn and planning included.
    pub timeout: Duration,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse or plan (unknown table or column, type errors).
    #[error("{0}")]
    Invalid(String),
    /// The statement would change something; only queries are allowed.
    #[error("only read-only queries are allowed: {0}")]
    ReadOnly(String),
    /// The query needed more memory than allowed.
    #[error("the query needs more memory than query.memory_limit allows: {0}")]
    ResourcesExhausted(String),
    /// The query ran longer than allowed.
    #[error("the query ran longer than query.timeout ({0:?})")]
    Timeout(Duration),
    /// Reading the store failed.
    #[error("reading the store failed: {0}")]
    Execution(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => {
                let msg = e.find_root().to_string();
                if msg.contains("not supported")
                    && (msg.contains("DDL") || msg.contains("DML") || msg.contains("Statement"))
                {
                    QueryError::ReadOnly(msg)
                } else {
                    QueryError::Invalid(msg)
                }
            }
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            other => QueryError::Execution(other.to_string()),
        }
    }
}

/// A query's answer.
#[derive(Debug)]
pub struct QueryOutput {
    /// Result columns.
    pub schema: SchemaRef,
    /// Result rows, at most `max_rows`.
    pub batches: Vec<RecordBatch>,
    /// Whether more rows existed than were returned.
    pub truncated: bool,
}

impl QueryOutput {
    /// Rows returned.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A session over one model's tables, ready for [`run`].
pub async fn session(
    store: &Store,
    model: &str,
    schema: &ModelSchema,
    memory_limit: usize,
) -> Result<SessionContext, QueryError> {
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(memory_limit, 1.0).build_arc()?;
    let config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    bounded::register(&ctx, memory_limit);
    let url = url::Url::parse(STORE_URL).expect("a valid URL");
    // Listings hide the sources of compacted files, so every scan reads each row once.
    ctx.register_object_store(&url, store.live_object_store());
    let utf8 = |name: &str| (name.to_string(), DataType::Utf8);
    register(&ctx, model, Table::Predictions, schema.predictions_schema(), vec![utf8("date"), utf8("hour")])?;
    register(&ctx, model, Table::Labels, schema.labels_schema(), vec![utf8("date")])?;
    for table in crate::monitor::results::TABLES {
        let url = ListingTableUrl::parse(format!("{STORE_URL}{model}/results/{table}/"))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(crate::monitor::results::schema(table));
        ctx.register_table(table, Arc::new(ListingTable::try_new(config)?))?;
    }
    for view in [
        "CREATE VIEW labels_latest AS SELECT prediction_id, label, timestamp, received_at FROM (\
           SELECT *, row_number() OVER (PARTITION BY prediction_id ORDER BY received_at DESC, timestamp DESC) AS rank FROM labels\
         ) WHERE rank = 1",
        "CREATE VIEW predictions_labeled AS SELECT p.*, l.label, l.timestamp AS label_timestamp \
         FROM predictions p LEFT JOIN labels_latest l ON p.prediction_id = l.prediction_id",
    ] {
        ctx.sql(view).await?;
    }
    Ok(ctx)
}

fn register(
    ctx: &SessionContext,
    model: &str,
    table: Table,
    schema: SchemaRef,
    partitions: Vec<(String, DataType)>,
) -> Result<(), QueryError> {
    let url = ListingTableUrl::parse(format!("{STORE_URL}{}/", table_dir(model, table)))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    ctx.register_table(table.as_str(), Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// The threads queries are planned and executed on, apart from the server's: a query that
/// computes for long (a cross join, a deep expression) holds one of these, never a thread that
/// answers probes or ingest. Their stacks are large, and DataFusion grows them on the heap where
/// it recurses, so no expression depth within [`MAX_SQL_BYTES`] overflows them.
fn query_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(QUERY_THREADS)
            .thread_name("anchorwatch-query")
            .thread_stack_size(QUERY_STACK_BYTES)
            .enable_all()
            .build()
            .expect("the query threads start")
    })
}

/// Runs one read-only statement against a session from [`session`], on the query threads.
pub async fn run(ctx: &SessionContext, sql: &str, limits: &QueryLimits) -> Result<QueryOutput, QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::Invalid(format!(
            "the SQL text is {} bytes long; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(QUERY_THREADS);
    let (ctx, sql, owned) = (ctx.clone(), sql.to_string(), limits.clone());
    let work = async move {
        let _turn = TURNS.acquire().await.map_err(|e| QueryError::Execution(e.to_string()))?;
        let task = query_runtime().spawn(async move { execute(&ctx, &sql, &owned).await });
        let abort = task.abort_handle();
        // Dropping this future (the timeout) stops the query at its next await.
        let _stop = Abort(abort);
        task.await.map_err(|e| QueryError::Execution(format!("the query task failed: {e}")))?
    };
    tokio::time::timeout(limits.timeout, work).await.map_err(|_| QueryError::Timeout(limits.timeout))?
}

/// Aborts a task when dropped.
struct Abort(tokio::task::AbortHandle);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The deepest nesting of expressions in `sql`, counted up to just past
/// [`MAX_EXPRESSION_DEPTH`]; `None` when it does not parse (DataFusion then says why).
fn expression_depth(sql: &str) -> Option<usize> {
    use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;

    struct Depth {
        now: usize,
        max: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now += 1;
            self.max = self.max.max(self.now);
            if self.max > MAX_EXPRESSION_DEPTH { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    let statements = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let mut depth = Depth { now: 0, max: 0 };
    for statement in &statements {
        let _ = statement.visit(&mut depth);
    }
    Some(depth.max)
}

async fn execute(ctx: &SessionContext, sql: &str, limits: &QueryLimits) -> Result<QueryOutput, QueryError> {
    if let Some(depth) = expression_depth(sql).filter(|d| *d > MAX_EXPRESSION_DEPTH) {
        return Err(QueryError::Invalid(format!(
            "expressions nest more than {MAX_EXPRESSION_DEPTH} levels deep (at least {depth}); split the query"
        )));
    }
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await?;
    let mut batches = Vec::new();
    let (mut rows, mut bytes) = (0, 0);
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let mut batch = batch?;
        let room = limits.max_rows - rows;
        if batch.num_rows() > room {
            batch = batch.slice(0, room);
            truncated = true;
        }
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if bytes > limits.memory_limit {
            return Err(QueryError::ResourcesExhausted(format!(
                "the result holds more than {} bytes; select fewer rows or columns",
                limits.memory_limit
            )));
        }
        batches.push(batch);
        if truncated {
            break;
        }
    }
    Ok(QueryOutput { schema, batches, truncated })
}

/// Writes rows as a JSON array of objects (timestamps as RFC 3339 text), at most `max_bytes`
/// long: past that, `ResourcesExhausted`.
pub fn to_json_rows(batches: &[RecordBatch], max_bytes: usize) -> Result<Vec<u8>, QueryError> {
    let too_large = || {
        QueryError::ResourcesExhausted(format!(
            "the answer would be longer than {max_bytes} bytes; select fewer rows or columns"
        ))
    };
    let mut writer = arrow::json::ArrayWriter::new(Capped { out: Vec::new(), max: max_bytes });
    for b in batches {
        writer.write(b).map_err(|e| if is_capped(&e) { too_large() } else { QueryError::Execution(e.to_string()) })?;
    }
    writer.finish().map_err(|e| if is_capped(&e) { too_large() } else { QueryError::Execution(e.to_string()) })?;
    let out = writer.into_inner().out;
    Ok(if out.is_empty() { b"[]".to_vec() } else { out })
}

/// A buffer that refuses to grow past `max` bytes.
struct Capped {
    out: Vec<u8>,
    max: usize,
}

/// The message of the error [`Capped`] fails with.
const CAPPED: &str = "the answer is longer than allowed";

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.max {
            return Err(std::io::Error::other(CAPPED));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn is_capped(e: &arrow::error::ArrowError) -> bool {
    e.to_string().contains(CAPPED)
}
