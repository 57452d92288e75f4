//! `POST /v1/models/{model}/predictions` and `/labels` with `Content-Type: application/json`: one
//! object, an array of objects, or objects one after another, against [`anchorwatch_fuzz::schema`].
#![no_main]

use std::sync::LazyLock;

use anchorwatch_collector::ModelSchema;
use anchorwatch_collector::decode::Format;
use libfuzzer_sys::fuzz_target;

static SCHEMA: LazyLock<ModelSchema> = LazyLock::new(anchorwatch_fuzz::schema);

fuzz_target!(|body: &[u8]| {
    anchorwatch_fuzz::decode_both_tables(&SCHEMA, Format::Json, body);
});
