//! `anchorwatch query`: read-only SQL over a model's stored data, without a server.

use std::path::Path;

use anchorwatch_analyzer::sql;
use anchorwatch_collector::store::Store;
use clap::ValueEnum;

use crate::config;

#[derive(Clone, Copy, ValueEnum)]
/// How `query` prints rows.
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
}

/// Runs `sql` on `model`'s tables (the only model when `model` is `None`) and prints at most
/// `max_rows` rows (default `query.max_rows`) as `format`.
pub async fn run(
    config: &Path,
    model: Option<&str>,
    format: OutputFormat,
    max_rows: Option<usize>,
    sql: &str,
) -> anyhow::Result<()> {
    let loaded = config::load(config)?;
    let i = loaded.pick_model(model, config)?;
    let model = &loaded.models[i].0;
    let store = Store::connect(&loaded.store_root()).await?;
    let schemas = config::fixed_schemas(&loaded, &store, false).await?;
    let (_, schema) = &schemas[i];
    let mut limits = loaded.config.query.limits();
    limits.max_rows = max_rows.unwrap_or(limits.max_rows);
    let ctx = sql::session(&store, model, schema, limits.memory_limit).await?;
    let out = sql::run(&ctx, sql, &limits).await?;
    print_batches(&out, format, limits.memory_limit)?;
    if out.truncated {
        eprintln!("(output cut at {} rows; raise --max-rows)", limits.max_rows);
    }
    Ok(())
}

fn print_batches(out: &sql::QueryOutput, format: OutputFormat, max_bytes: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Table => writeln!(stdout, "{}", arrow::util::pretty::pretty_format_batches(&out.batches)?)?,
        OutputFormat::Json => {
            stdout.write_all(&sql::to_json_rows(&out.batches, max_bytes)?)?;
            writeln!(stdout)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut stdout);
            for b in &out.batches {
                writer.write(b)?;
            }
        }
    }
    Ok(())
}
