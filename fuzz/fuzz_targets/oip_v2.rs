//! The built-in predictor's request parsers against [`anchorwatch_fuzz::schema`]:
//! `/v2/models/{model}/infer` (Open Inference Protocol v2, with and without a matrix input holding
//! every feature) and `/v1/models/{model}/predict` (JSON records), on the same bytes.
#![no_main]

use std::sync::LazyLock;

use anchorwatch_collector::ModelSchema;
use anchorwatch_fuzz::lifecycle::input::{oip, records};
use anchorwatch_fuzz::{MATRIX_INPUT, MAX_ROWS};
use libfuzzer_sys::fuzz_target;

static SCHEMA: LazyLock<ModelSchema> = LazyLock::new(anchorwatch_fuzz::schema);

fuzz_target!(|body: &[u8]| {
    let _ = oip(&SCHEMA, None, body, MAX_ROWS);
    let _ = oip(&SCHEMA, Some(MATRIX_INPUT), body, MAX_ROWS);
    let _ = records(&SCHEMA, body, MAX_ROWS);
});
