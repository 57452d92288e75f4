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
//! memory and time.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use anchorwatch_collector::decode::Table;
use anchorwatch_collector::layout::table_dir;
use anchorwatch_collector::schema::ModelSchema;
use anchorwatch_collector::store::Store;
use futures::StreamExt;

/// The URL under which the store is registered with DataFusion; every scan goes through the
/// store's own `object_store` instance, seen through `compact::LiveStore`.
const STORE_URL: &str = "anchorwatch://store/";

/// Limits on one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Rows returned at most; the result says when it was cut.
    pub max_rows: usize,
    /// Memory a query may hold, in bytes.
    pub memory_limit: usize,
    /// Wall time a query may take.
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

/// Runs one read-only statement against a session from [`session`].
pub async fn run(ctx: &SessionContext, sql: &str, limits: &QueryLimits) -> Result<QueryOutput, QueryError> {
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let work = async {
        let df = ctx.sql_with_options(sql, options).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let room = limits.max_rows - rows;
            if batch.num_rows() > room {
                batches.push(batch.slice(0, room));
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok::<_, QueryError>(QueryOutput { schema, batches, truncated })
    };
    tokio::time::timeout(limits.timeout, work).await.map_err(|_| QueryError::Timeout(limits.timeout))?
}

/// Writes rows as a JSON array of objects (timestamps as RFC 3339 text).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<u8>, QueryError> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for b in batches {
        writer.write(b).map_err(|e| QueryError::Execution(e.to_string()))?;
    }
    writer.finish().map_err(|e| QueryError::Execution(e.to_string()))?;
    let out = writer.into_inner();
    Ok(if out.is_empty() { b"[]".to_vec() } else { out })
}
