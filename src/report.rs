//! `anchorwatch report`: compare a current dataset with a reference and report drift per column,
//! as JSON or as one self-contained HTML page (docs/report.md describes both and the config).
//!
//! Flow: open both files through DataFusion (schemas only), decide the columns to compare,
//! read just those, compute every column's drift and summaries in parallel with the analyzer's
//! Evidently-exact statistics, apply the dataset share rule, test the tabular features jointly
//! (NannyML's data reconstruction drift), write the output.

mod compute;
pub mod config;
mod multivariate;
mod read;
mod summary;

use anchorwatch_analyzer::drift::ColumnKind;
use anchorwatch_dashboards::report::{DatasetVerdict, Outcome, Report, Role, Sides, Skipped};
use anyhow::{Context, bail};
use clap::ValueEnum;
use datafusion::prelude::SessionContext;
use read::Class;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `anchorwatch report`.
#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  anchorwatch report --reference train.parquet --current last_week.parquet\n  \
    anchorwatch report --reference ref.csv --current cur.csv --config report.toml --output drift.html"
)]
pub struct ReportArgs {
    /// The reference dataset: what "no drift" looks like (typically training data).
    ///
    /// Parquet (`.parquet`, `.pq`) or CSV with a header row (`.csv`), chosen by extension. Only
    /// the compared columns are read.
    #[arg(long, value_name = "FILE")]
    pub reference: PathBuf,
    /// The current dataset: what the model sees now. Same formats as --reference.
    #[arg(long, value_name = "FILE")]
    pub current: PathBuf,
    /// A TOML file choosing columns, kinds, tests and thresholds (see docs/report.md).
    ///
    /// Without it, every column the two files share is compared with Evidently's default test
    /// choice and thresholds, and the dataset drifts when at least half the columns drift.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format [default: html when --output ends in .html or .htm, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the report here instead of standard output (replaced atomically).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// No progress lines on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The report's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The documented JSON object (docs/report.md).
    Json,
    /// One self-contained HTML page: verdict, sortable column table, SVG charts.
    Html,
}

/// Progress lines on stderr: one per phase, plus a live column counter on a terminal.
pub(crate) struct Progress {
    quiet: bool,
    terminal: bool,
    start: Instant,
}

impl Progress {
    fn line(&self, message: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("anchorwatch report: {message} ({:.1} s)", self.start.elapsed().as_secs_f64());
        }
    }

    fn tick(&self, done: usize, total: usize) {
        if !self.quiet && self.terminal {
            eprint!("\ranchorwatch report: {done}/{total} columns\x1b[K");
            if done == total {
                eprint!("\r\x1b[K");
            }
        }
    }
}

/// One column to compare, as decided from both schemas.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    name: String,
    role: Role,
    /// Read as numbers (else as categories, or as vectors when `embedding`).
    numeric: bool,
    /// Lists of numbers: tested with an embedding drift method.
    embedding: bool,
    /// Integer Arrow type in (reference, current).
    integer: (bool, bool),
}

fn format_for(args: &ReportArgs) -> Format {
    args.format.unwrap_or_else(|| {
        let ext = args.output.as_deref().and_then(Path::extension).and_then(|e| e.to_str()).unwrap_or("");
        if ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm") { Format::Html } else { Format::Json }
    })
}

/// Runs the command: reads both files, computes the report, writes it.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let progress = Progress { quiet: args.quiet, terminal: std::io::stderr().is_terminal(), start: Instant::now() };
    let settings = match &args.config {
        Some(path) => config::Settings::load(path)?,
        None => config::Settings::default(),
    };
    let format = format_for(&args);
    let report = build(&args.reference, &args.current, &settings, &progress).await?;
    let bytes = match format {
        Format::Json => {
            let mut b = serde_json::to_vec_pretty(&report)?;
            b.push(b'\n');
            b
        }
        Format::Html => anchorwatch_dashboards::html::render(&report).into_bytes(),
    };
    match &args.output {
        Some(path) => write_atomically(path, &bytes)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).and_then(|()| out.flush()).context("cannot write the report to standard output")?;
        }
    }
    let d = &report.dataset_drift;
    progress.line(format_args!(
        "{} of {} columns drifted; dataset drift: {}{}",
        d.drifted_columns,
        d.columns,
        if d.drifted { "yes" } else { "no" },
        args.output.as_ref().map(|p| format!("; wrote {}", p.display())).unwrap_or_default()
    ));
    Ok(())
}

/// Replaces a regular file (or creates one) through a temporary file and a rename, so a failed
/// run never leaves half a report. Anything else (a device such as /dev/null, a FIFO, a
/// symlink) is written in place: renaming over it would replace the device or the link itself.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let context = || format!("cannot write the report to {}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).with_context(context)?;
            return file.write_all(bytes).and_then(|()| file.flush()).with_context(context);
        }
        _ => {}
    }
    let name = path.file_name().with_context(|| format!("--output {} is not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(context)
}

/// Reads both files and computes the whole report.
async fn build(
    reference: &Path,
    current: &Path,
    settings: &config::Settings,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let ctx = SessionContext::new();
    let (r, c) = tokio::join!(read::open(&ctx, "reference", reference), read::open(&ctx, "current", current));
    let (r, c) = (r?, c?);
    let (plan, skipped) = plan(&r, &c, settings)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(plan.len());
    // Parquet is read a few columns at a time (as many as there are threads) and each group is
    // dropped once computed, so memory follows the widest group, not the whole file. A CSV file
    // has no column access: it is parsed once, whole.
    let group =
        if r.format == read::Format::Parquet && c.format == read::Format::Parquet { threads } else { plan.len() };
    progress.line(format_args!(
        "reading {} columns of {} and {}; computing drift for {} columns on {threads} threads",
        plan.len(),
        reference.display(),
        current.display(),
        plan.len()
    ));
    let mut columns = Vec::with_capacity(plan.len());
    let mut rows = Sides { reference: 0, current: 0 };
    // The next group is read while this one is computed: decoding Parquet and the tests then
    // share the cores instead of taking turns. At most two groups are held at once.
    let (r, c) = (Arc::new(r), Arc::new(c));
    let read_group = |chunk: &[ColumnPlan]| {
        let names: Vec<String> = chunk.iter().map(|p| p.name.clone()).collect();
        let (r, c) = (r.clone(), c.clone());
        tokio::spawn(async move {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (rt, ct) = tokio::join!(r.read(&names), c.read(&names));
            anyhow::Ok((rt?, ct?))
        })
    };
    let chunks: Vec<&[ColumnPlan]> = plan.chunks(group.max(1)).collect();
    let mut pending = chunks.first().map(|chunk| read_group(chunk));
    for (i, chunk) in chunks.iter().enumerate() {
        let Some(reading) = pending.take() else { break };
        let (rt, ct) = reading.await.context("reading the input files stopped")??;
        pending = chunks.get(i + 1).map(|next| read_group(next));
        rows = Sides { reference: rt.rows, current: ct.rows };
        // Blocking this runtime thread is fine: the reads run on the runtime's workers, and the
        // scoped threads borrow the Arrow data instead of copying it into 'static tasks.
        columns.extend(compute::all(chunk, &rt, &ct, settings, threads, progress, (columns.len(), plan.len()))?);
    }
    // Evidently's dataset drift counts tabular and text columns; an embedding column gives
    // its own verdict beside it.
    progress.line(format_args!("testing the features taken jointly"));
    let multivariate =
        multivariate::data_reconstruction(&r, &c, &plan, &columns, settings.config.domain_classifier).await?;
    let computed: Vec<bool> = columns
        .iter()
        .filter(|c| c.kind != ColumnKind::Embedding.name())
        .filter_map(|c| match c.outcome {
            Outcome::Computed { drifted, .. } => Some(drifted),
            Outcome::Failed { .. } => None,
        })
        .collect();
    let drifted_columns = computed.iter().filter(|d| **d).count();
    let threshold = settings.config.drift_share;
    // With no computable column there is no evidence of drift: share 0, not NaN (JSON has no NaN).
    let share = if computed.is_empty() { 0.0 } else { drifted_columns as f64 / computed.len() as f64 };
    Ok(Report {
        dataset_drift: DatasetVerdict {
            drifted: !computed.is_empty() && share >= threshold,
            share,
            threshold,
            drifted_columns,
            columns: computed.len(),
        },
        columns,
        rows,
        skipped,
        multivariate,
        files: Sides { reference: reference.display().to_string(), current: current.display().to_string() },
    })
}

/// Decides the compared columns from both schemas: the reference's columns also in the
/// current file, filtered by the config. A column in only one file is skipped with a reason,
/// unless the config names it (then it is an error); so are types the tests cannot use.
fn plan(
    reference: &read::Input,
    current: &read::Input,
    settings: &config::Settings,
) -> anyhow::Result<(Vec<ColumnPlan>, Vec<Skipped>)> {
    let (rs, cs) = (&reference.schema, &current.schema);
    for name in settings.named_columns() {
        for (input, schema) in [(reference, rs), (current, cs)] {
            if schema.field_with_name(name).is_err() {
                bail!("column {name:?} named in the config is not in the {} file {}", input.side, input.path.display());
            }
        }
    }
    let c = &settings.config;
    let mut plan = Vec::new();
    let mut skipped = Vec::new();
    for rf in rs.fields() {
        let name = rf.name();
        if !settings.selects(name) {
            continue;
        }
        let Ok(cf) = cs.field_with_name(name) else {
            skipped.push(Skipped { name: name.clone(), reason: "only in the reference file".into() });
            continue;
        };
        let (rc, cc) = (read::class_of(rf.data_type()), read::class_of(cf.data_type()));
        let embedding =
            matches!((rc, cc), (Class::Embedding, Class::Embedding | Class::Null) | (Class::Null, Class::Embedding));
        let numeric = match (rc, cc) {
            _ if embedding => false,
            (Class::Unsupported, _) | (_, Class::Unsupported) => {
                let ty = if rc == Class::Unsupported { rf.data_type() } else { cf.data_type() };
                skipped.push(Skipped { name: name.clone(), reason: format!("unsupported type {ty}") });
                continue;
            }
            (Class::Numeric { .. }, Class::Numeric { .. } | Class::Null) | (Class::Null, Class::Numeric { .. }) => true,
            (Class::Categorical | Class::Null, Class::Categorical | Class::Null) => false,
            _ => bail!(
                "column {name:?} has incompatible types: {} in the reference file {}, {} in the current file {}",
                rf.data_type(),
                reference.path.display(),
                cf.data_type(),
                current.path.display()
            ),
        };
        let integer = |class| matches!(class, Class::Numeric { integer: true });
        let role = if c.prediction.as_deref() == Some(name.as_str()) {
            Role::Prediction
        } else if c.target.as_deref() == Some(name.as_str()) {
            Role::Target
        } else {
            Role::Feature
        };
        plan.push(ColumnPlan { name: name.clone(), role, numeric, embedding, integer: (integer(rc), integer(cc)) });
    }
    for cf in cs.fields() {
        if settings.selects(cf.name()) && rs.field_with_name(cf.name()).is_err() {
            skipped.push(Skipped { name: cf.name().clone(), reason: "only in the current file".into() });
        }
    }
    if plan.is_empty() {
        let why = if skipped.is_empty() {
            "the config leaves none".to_string()
        } else {
            skipped.iter().map(|s| format!("{:?}: {}", s.name, s.reason)).collect::<Vec<_>>().join("; ")
        };
        bail!("no column to compare between {} and {} ({why})", reference.path.display(), current.path.display());
    }
    Ok((plan, skipped))
}
