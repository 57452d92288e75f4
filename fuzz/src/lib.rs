//! What the fuzz targets share: the schemas they decode against, and the proxy's and the
//! predictor's request parsers, compiled here from their own source files.
//!
//! `src/proxy/extract.rs` with `src/config/proxy.rs`, and `src/lifecycle/input.rs`, need nothing
//! from the root crate but the collector, serde and serde_json, so they are included by `#[path]`
//! unchanged: the fuzzed code is the shipped code, without building the root crate and DataFusion.
//! A file here that stops compiling means one of them grew a dependency on the root crate.

pub mod lifecycle;
pub mod proxy;
mod schemas;

pub use schemas::{MATRIX_INPUT, MAX_ROWS, NOW_US, schema, strict_schema};

use anchorwatch_collector::decode::{DecodeContext, Format, Table, decode};
use anchorwatch_collector::schema::ModelSchema;

/// Decodes `body` for the predictions and then the labels table. Results are dropped: a target
/// only checks that decoding returns, without a panic, an abort or an allocation past the limit.
pub fn decode_both_tables(schema: &ModelSchema, format: Format, body: &[u8]) {
    let cx = DecodeContext { schema, now_us: NOW_US };
    for table in [Table::Predictions, Table::Labels] {
        let _ = decode(&cx, table, format, body);
    }
}

/// Runs `decode` for a target whose code under test catches panics on purpose, as the Arrow IPC
/// decoder does around the Arrow reader (a stream the reader panics on is refused with 400): a
/// panic caught there is that defence working, and only one that escapes is a finding.
///
/// libfuzzer-sys aborts on every panic, caught or not; this replaces its hook with one that only
/// remembers the message, and aborts (printing it) when a panic reaches the target. Set
/// `FUZZ_STRICT_PANICS=1` to keep libfuzzer-sys's hook and find the panics that are caught too,
/// with their backtraces (`RUST_BACKTRACE=1`): bugs to report upstream.
pub fn abort_on_escaped_panic(decode: impl FnOnce()) {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    thread_local! {
        static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    if std::env::var_os("FUZZ_STRICT_PANICS").is_none() {
        QUIET_HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string())));
        });
    }
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).is_err() {
        let message = LAST_PANIC.with(|last| last.take());
        eprintln!("a panic escaped the code under test: {message}");
        eprintln!("rerun the input with FUZZ_STRICT_PANICS=1 RUST_BACKTRACE=1 for its backtrace");
        std::process::abort();
    }
}
