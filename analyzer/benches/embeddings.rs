//! Time of each embedding drift method ([`embedding_drift`]) on one reference/current pair read
//! from files, printed as one JSON line per method on stdout; `benches/embeddings_vs_evidently.py`
//! writes the pair, runs this and runs Evidently 0.7.23's same methods on the same values.
//!
//! From the repository root (`--workspace`: the analyzer is not a default member):
//!
//! ```text
//! cargo bench --workspace --bench embeddings -- --reference REF --current CUR --dims 384
//!     [--dtype f32|f64] [--mmd-rows 5000] [--pca 20] [--repeat 5] [--budget 20]
//!     [--methods distance,distance_bootstrap,ratio,model,model_pca,mmd]
//! ```
//!
//! Each file holds raw little-endian floats (`--dtype`, default `f32`), row-major, `--dims` values
//! a row; the row count is the file's length divided by the row's size, so the two sides may
//! differ. Values are widened to f64, as pandas holds them.
//!
//! Methods, each with Evidently's defaults otherwise: `distance` (Euclidean between the means),
//! `distance_bootstrap`, `ratio` (normed Wasserstein per component), `model` (domain
//! classifier), `model_pca` (`model` after PCA to `--pca` components) and `mmd`, which is
//! quadratic in rows and runs on the first `--mmd-rows` rows of each side (0: all rows).
//!
//! A method runs up to `--repeat` times and stops repeating once its runs took `--budget`
//! seconds together; `seconds` is the best run. `peak_rss_mib` is the process's peak resident
//! set during the method's runs, the loaded pair included (Linux: the peak is reset through
//! `/proc/self/clear_refs` before each method; elsewhere it is null). Progress goes to stderr.
//! Not a test: the figures depend on the machine. The methods use every core the process may
//! use (`std::thread::available_parallelism`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anchorwatch_analyzer::stats::embedding_drift::{
    DistanceOptions, EmbeddingDrift, Embeddings, Method, MmdOptions, ModelOptions, RatioOptions, embedding_drift,
};
use serde_json::json;

const USAGE: &str = "usage: embeddings --reference FILE --current FILE --dims N [--dtype f32|f64] \
                     [--mmd-rows N] [--pca K] [--repeat N] [--budget SECONDS] [--methods a,b,...]";

/// Every method name `--methods` accepts, in the order they run by default.
const METHODS: [&str; 6] = ["distance", "distance_bootstrap", "ratio", "model", "model_pca", "mmd"];

struct Args {
    reference: PathBuf,
    current: PathBuf,
    dims: usize,
    f64_input: bool,
    mmd_rows: usize,
    pca: usize,
    repeat: usize,
    budget: f64,
    methods: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        reference: PathBuf::new(),
        current: PathBuf::new(),
        dims: 0,
        f64_input: false,
        mmd_rows: 5000,
        pca: 20,
        repeat: 5,
        budget: 20.0,
        methods: METHODS.iter().map(|m| m.to_string()).collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--reference" => args.reference = value.into(),
            "--current" => args.current = value.into(),
            "--dims" => args.dims = number(&value)?,
            "--dtype" => {
                args.f64_input = match value.as_str() {
                    "f32" => false,
                    "f64" => true,
                    other => return Err(format!("--dtype {other}: f32 or f64")),
                }
            }
            "--mmd-rows" => args.mmd_rows = number(&value)?,
            "--pca" => args.pca = number(&value)?,
            "--repeat" => args.repeat = number(&value)?.max(1),
            "--budget" => args.budget = value.parse().map_err(|e| format!("--budget {value}: {e}"))?,
            "--methods" => {
                args.methods = value.split(',').map(str::to_string).collect();
                if let Some(m) = args.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
                    return Err(format!("--methods: unknown method {m}; known: {}", METHODS.join(", ")));
                }
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.reference.as_os_str().is_empty() || args.current.as_os_str().is_empty() || args.dims == 0 {
        return Err("--reference, --current and --dims are required".into());
    }
    Ok(args)
}

/// The file's floats widened to f64.
fn read_matrix(path: &PathBuf, dims: usize, f64_input: bool) -> Result<Vec<f64>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let width = if f64_input { 8 } else { 4 };
    if bytes.len() % (width * dims) != 0 {
        return Err(format!(
            "{}: {} bytes are not rows of {dims} values of {width} bytes",
            path.display(),
            bytes.len()
        ));
    }
    Ok(if f64_input {
        bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
    } else {
        bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))).collect()
    })
}

/// Resets the process's peak resident set (Linux ≥ 4.0); false where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set in MiB (`VmHWM`), if the system says.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn method(name: &str, pca: usize) -> Method {
    match name {
        "distance" => Method::Distance(DistanceOptions::default()),
        "distance_bootstrap" => Method::Distance(DistanceOptions { bootstrap: true, ..Default::default() }),
        "ratio" => Method::Ratio(RatioOptions::default()),
        "model" => Method::Model(ModelOptions::default()),
        "model_pca" => Method::Model(ModelOptions { pca_components: Some(pca), ..Default::default() }),
        "mmd" => Method::Mmd(MmdOptions::default()),
        other => unreachable!("checked by parse_args: {other}"),
    }
}

/// The first `rows` rows (all of them when `rows` is 0 or more than there are).
fn head<'a>(e: Embeddings<'a>, rows: usize) -> Embeddings<'a> {
    if rows == 0 || rows >= e.rows() {
        return e;
    }
    Embeddings::new(&e.values()[..rows * e.dims()], e.dims()).expect("a prefix of valid embeddings")
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let start = Instant::now();
    let reference = read_matrix(&args.reference, args.dims, args.f64_input)?;
    let current = read_matrix(&args.current, args.dims, args.f64_input)?;
    let reference = Embeddings::new(&reference, args.dims).map_err(|e| format!("reference: {e}"))?;
    let current = Embeddings::new(&current, args.dims).map_err(|e| format!("current: {e}"))?;
    eprintln!(
        "read {} + {} rows × {} dims in {:.1} s",
        reference.rows(),
        current.rows(),
        args.dims,
        start.elapsed().as_secs_f64()
    );

    for name in &args.methods {
        let (r, c) = if name == "mmd" {
            (head(reference, args.mmd_rows), head(current, args.mmd_rows))
        } else {
            (reference, current)
        };
        let m = method(name, args.pca);
        let tracked = reset_peak_rss();
        let mut best = f64::INFINITY;
        let mut spent = 0.0;
        let mut runs = 0;
        let mut result: Option<EmbeddingDrift> = None;
        while runs < args.repeat && (runs == 0 || spent < args.budget) {
            eprint!("{name} ({} + {} rows): run {} ... ", r.rows(), c.rows(), runs + 1);
            let t = Instant::now();
            let got = embedding_drift(r, c, &m).map_err(|e| format!("{name}: {e}"))?;
            let seconds = t.elapsed().as_secs_f64();
            eprintln!("{seconds:.3} s");
            let same = |a: EmbeddingDrift| {
                (a.score.to_bits(), a.drifted, a.threshold.to_bits())
                    == (got.score.to_bits(), got.drifted, got.threshold.to_bits())
            };
            if result.is_some_and(|prev| !same(prev)) {
                return Err(format!("{name}: a rerun gave {got:?} after {result:?}"));
            }
            result = Some(got);
            best = best.min(seconds);
            spent += seconds;
            runs += 1;
        }
        let got = result.expect("at least one run");
        let line = json!({
            "method": name,
            "reference_rows": r.rows(),
            "current_rows": c.rows(),
            "dims": r.dims(),
            "runs": runs,
            "seconds": best,
            "score": got.score,
            "drifted": got.drifted,
            "threshold": got.threshold,
            "peak_rss_mib": if tracked { peak_rss_mib() } else { None },
        });
        println!("{line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
