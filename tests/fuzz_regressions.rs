//! Every fuzz seed and every input a fuzzer once crashed on (`fuzz/corpus/`, `fuzz/regressions/`),
//! replayed through the shipped decoders and parsers on the stable toolchain: each returns, with a
//! value or an error, and none panics. The fuzzing itself needs the nightly toolchain (`make fuzz`,
//! docs/fuzzing.md); this keeps what it found fixed. A case is added by adding a file there.

#[path = "../fuzz/src/schemas.rs"]
mod schemas;

use std::path::{Path, PathBuf};

use anchorwatch::proxy::config::ExtractConfig;
use anchorwatch_collector::decode::{DecodeContext, Format, Table, decode};
use anchorwatch_collector::schema::ModelSchema;

/// The seed and regression files of a fuzz target.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir).join(target)).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs for the fuzz target {target}");
    files
}

/// Runs `replay` on each input of `target`; a panic fails the test naming the file.
fn replay(target: &str, replay: impl Fn(&[u8])) {
    let mut panicked = Vec::new();
    for file in inputs(target) {
        let body = std::fs::read(&file).unwrap();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(&body))).is_err() {
            panicked.push(file.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "{target}: these inputs panic: {panicked:?}");
}

fn decode_both(schema: &ModelSchema, format: Format, body: &[u8]) {
    let cx = DecodeContext { schema, now_us: schemas::NOW_US };
    for table in [Table::Predictions, Table::Labels] {
        let _ = decode(&cx, table, format, body);
    }
}

#[test]
fn request_decoders_return_on_every_fuzz_input() {
    let (schema, strict) = (schemas::schema(), schemas::strict_schema());
    replay("json", |body| decode_both(&schema, Format::Json, body));
    replay("ndjson", |body| decode_both(&strict, Format::Json, body));
    replay("arrow_ipc", |body| decode_both(&schema, Format::ArrowStream, body));
}

#[test]
fn proxy_and_predictor_parsers_return_on_every_fuzz_input() {
    let schema = schemas::schema();
    // The proxy target's first byte picks a configuration; the default one is replayed here.
    replay("proxy_extract", |data| {
        let Some((_, rest)) = data.split_first() else { return };
        let (request, response) = match rest.iter().position(|&b| b == 0) {
            Some(nul) => (&rest[..nul], &rest[nul + 1..]),
            None => (rest, &[][..]),
        };
        let _ = anchorwatch::proxy::extract::extract(&ExtractConfig::default(), request, response);
    });
    replay("oip_v2", |body| {
        use anchorwatch::lifecycle::input::{oip, records};
        let _ = oip(&schema, None, body, schemas::MAX_ROWS);
        let _ = oip(&schema, Some(schemas::MATRIX_INPUT), body, schemas::MAX_ROWS);
        let _ = records(&schema, body, schemas::MAX_ROWS);
    });
}
