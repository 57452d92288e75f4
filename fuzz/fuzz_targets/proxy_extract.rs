//! The proxy's extraction of rows from a captured predict request and its response.
//!
//! Input layout: the first byte picks one of [`configs`] (modulo their number); the rest is the
//! request body, a NUL byte, and the response body (no NUL: the response is empty). JSON bodies
//! hold no raw NUL, so every request and response pair can be written this way.
#![no_main]

use std::sync::LazyLock;

use anchorwatch_fuzz::proxy::config::{ExtractConfig, Mapping};
use anchorwatch_fuzz::proxy::extract::extract;
use libfuzzer_sys::fuzz_target;

/// Detected shapes with no options; with `--feature-names` and named OIP outputs; a JSON-pointer
/// mapping into nested rows; and a mapping of whole bodies.
fn configs() -> Vec<ExtractConfig> {
    vec![
        ExtractConfig::default(),
        ExtractConfig {
            feature_names: vec!["age".into(), "city".into(), "vip".into()],
            prediction_output: Some("label".into()),
            scores_output: Some("probs".into()),
            model_version: Some("v1".into()),
            mapping: None,
        },
        ExtractConfig {
            mapping: Some(Mapping {
                request_rows: "/data".into(),
                features: vec![("age".into(), "/person/age".into()), ("vip".into(), "/vip".into())],
                response_rows: "/result".into(),
                prediction: "/label".into(),
                scores: Some("/p".into()),
            }),
            ..Default::default()
        },
        ExtractConfig { mapping: Some(Mapping::default()), ..Default::default() },
    ]
}

static CONFIGS: LazyLock<Vec<ExtractConfig>> = LazyLock::new(configs);

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let config = &CONFIGS[usize::from(pick) % CONFIGS.len()];
    let (request, response) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &[][..]),
    };
    let _ = extract(config, request, response);
});
