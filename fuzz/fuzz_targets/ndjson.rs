//! `POST /v1/models/{model}/predictions` and `/labels` with `Content-Type: application/x-ndjson`,
//! against [`anchorwatch_fuzz::strict_schema`]. The decoder is the JSON one; this target differs
//! from `json` by its seeds (several records, one per line) and by a schema where every feature
//! is required and the prediction and label are numerical and boolean.
#![no_main]

use std::sync::LazyLock;

use anchorwatch_collector::ModelSchema;
use anchorwatch_collector::decode::Format;
use libfuzzer_sys::fuzz_target;

static SCHEMA: LazyLock<ModelSchema> = LazyLock::new(anchorwatch_fuzz::strict_schema);
static FORMAT: LazyLock<Format> = LazyLock::new(|| {
    Format::from_content_type(Some("application/x-ndjson")).expect("NDJSON is an accepted media type")
});

fuzz_target!(|body: &[u8]| {
    anchorwatch_fuzz::decode_both_tables(&SCHEMA, *FORMAT, body);
});
