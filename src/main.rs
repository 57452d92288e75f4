//! The `anchorwatch` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anchorwatch::commands;
use anchorwatch::logging::{self, LogFormat};
use clap::{Parser, Subcommand};

/// anchorwatch watches machine-learning models in production: it captures what a model sees and
/// says into Parquet, finds drift and accuracy decay, alerts, and closes the loop by retraining.
#[derive(Parser)]
#[command(name = "anchorwatch", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` for log shippers. Level from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ANCHORWATCH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: ingest API, queries, /metrics, /healthz and /readyz.
    ///
    /// Replays the write-ahead log left by a previous run before it listens. SIGINT or SIGTERM
    /// shuts it down gracefully: requests in flight finish and every acknowledged row is written
    /// to Parquet.
    Serve {
        /// The TOML config file (see docs/config.md; an example is examples/anchorwatch.toml).
        #[arg(long, short, env = "ANCHORWATCH_CONFIG")]
        config: PathBuf,
        /// Listen here instead of `server.listen`, e.g. `0.0.0.0:8080` (port 0 picks a free one).
        #[arg(long, env = "ANCHORWATCH_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Check a config file: parse it, validate every field, infer schemas, and print a summary.
    ///
    /// Exits 0 when the file is valid, 1 with a message naming the field otherwise.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Run read-only SQL over a model's stored data (no server needed).
    ///
    /// Tables: `predictions`, `labels`, `labels_latest` (one label per prediction, the last to
    /// arrive) and `predictions_labeled` (predictions joined with their latest label). Rows still
    /// in the write-ahead log of a running server appear once flushed (`collector.flush_interval`).
    Query {
        /// The TOML config file.
        #[arg(long, short, env = "ANCHORWATCH_CONFIG")]
        config: PathBuf,
        /// The model whose tables to query; may be left out when only one is configured.
        #[arg(long, short)]
        model: Option<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = commands::query::OutputFormat::Table)]
        format: commands::query::OutputFormat,
        /// Print at most this many rows (default: query.max_rows from the config).
        #[arg(long)]
        max_rows: Option<usize>,
        /// The SQL, e.g. "SELECT count(*) FROM predictions".
        sql: String,
    },
    /// Compact and apply retention to the store once, now, and print what was done.
    ///
    /// Merges the small Parquet files of each partition that has at least `min_files` files
    /// older than `min_age` into one file, deletes files merged by an earlier pass once `grace`
    /// has passed, and deletes partitions and results older than `[store.retention]`
    /// (docs/store.md, "Compaction and retention"). `anchorwatch serve` does the same every
    /// `store.compaction.interval` for the models it analyses: run this only where no server
    /// compacts the same store, since one compactor at a time may run per store.
    Compact(commands::compact::CompactArgs),
    /// Compare a current dataset with a reference and report drift per column (JSON or HTML), with
    /// Evidently's numbers.
    Report(anchorwatch::report::ReportArgs),
    /// Sidecar reverse proxy: forwards every request to the predictor unchanged and captures
    /// features and predictions from its predict routes.
    Proxy(anchorwatch::proxy::ProxyArgs),
    /// The model registry: list versions, upload an ONNX file, promote a version, roll back.
    ///
    /// Works on the store directly (no server needed); a running server serves a new champion
    /// within `predictor.reload_interval`. The ONNX signature contract is in docs/models.md.
    Models(commands::models::ModelsArgs),
    /// Run the retraining loop of a model once, now: snapshot its recent labeled data, train,
    /// validate the candidate against the champion on the holdout with ONNX Runtime, and promote
    /// it only if it wins (`[models.retrain]` in the config). A running server serves the new
    /// champion within `predictor.reload_interval`. Exits non-zero when the run fails.
    Retrain {
        /// The TOML config file.
        #[arg(long, short, env = "ANCHORWATCH_CONFIG")]
        config: PathBuf,
        /// The model to retrain; may be left out when only one is configured.
        #[arg(long, short)]
        model: Option<String>,
    },
    /// Run the demo: the whole loop on a credit-scoring model, told on the terminal.
    ///
    /// A first model is trained on past applications by the built-in trainer and served by the
    /// predictor; generated traffic and late labels stream in; at a known hour the world shifts;
    /// drift is detected, accuracy falls, the alert reaches the demo's own webhook receiver and
    /// mailbox and the retraining loop, which promotes a better model; accuracy recovers. Needs
    /// ONNX Runtime (`make setup-onnxruntime`; `make demo` runs it).
    Demo {
        /// Where the demo keeps its data, config and mailbox (wiped at start).
        #[arg(long, default_value = "demo-data")]
        store: PathBuf,
        /// Listen address (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Applications per simulated hour (one analysis window); default 1000, or 400 with --fast.
        #[arg(long)]
        rows: Option<usize>,
        /// Compress time: the whole loop in well under a minute (about 15 s).
        #[arg(long)]
        fast: bool,
        /// Keep the server running after the demo, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Report(_)) {
        limit_malloc_arenas();
    }
    logging::init(cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Proxy(args) = &cli.command {
        builder.worker_threads(usize::from(args.threads.unwrap_or(1)));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, listen } => commands::serve::run(&config, listen).await,
        Command::CheckConfig { file } => commands::check_config::run(&file),
        Command::Query { config, model, format, max_rows, sql } => {
            commands::query::run(&config, model.as_deref(), format, max_rows, &sql).await
        }
        Command::Compact(args) => commands::compact::run(args).await,
        Command::Report(args) => anchorwatch::report::run(args).await,
        Command::Proxy(args) => anchorwatch::proxy::run(args).await,
        Command::Models(args) => commands::models::run(args).await,
        Command::Retrain { config, model } => commands::retrain::run(&config, model.as_deref()).await,
        Command::Demo { store, listen, rows, fast, serve } => {
            anchorwatch::demo::run(anchorwatch::demo::Options { store, listen, rows, fast, serve }).await
        }
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and keeps memory
/// freed in an arena for that arena's reuse. `report` frees and allocates column-sized buffers
/// on its worker threads and Parquet readers one after another; two arenas keep its peak memory
/// near what it holds at once (1M rows × 20 columns, measured: 270 MiB instead of 350-370 MiB,
/// same time). Must run before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists, and M_ARENA_MAX with a positive value is a documented, always-valid setting.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
