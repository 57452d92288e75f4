//! `POST /v1/models/{model}/predictions` and `/labels` with
//! `Content-Type: application/vnd.apache.arrow.stream`, against [`anchorwatch_fuzz::schema`]:
//! the IPC stream reader (message framing, flatbuffer metadata, buffers), then the column checks
//! and casts into the stored schema. The decoder refuses a stream the Arrow reader panics on, so
//! only a panic that escapes it is a finding ([`anchorwatch_fuzz::abort_on_escaped_panic`]).
#![no_main]

use std::sync::LazyLock;

use anchorwatch_collector::ModelSchema;
use anchorwatch_collector::decode::Format;
use libfuzzer_sys::fuzz_target;

static SCHEMA: LazyLock<ModelSchema> = LazyLock::new(anchorwatch_fuzz::schema);

fuzz_target!(|body: &[u8]| {
    anchorwatch_fuzz::abort_on_escaped_panic(|| {
        anchorwatch_fuzz::decode_both_tables(&SCHEMA, Format::ArrowStream, body);
    });
});
