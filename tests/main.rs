//! The end-to-end tests: the real `anchorwatch` binary and its real peers (Prometheus, Chromium,
//! ONNX Runtime, an S3 server, an SMTP server, Python readers) on loopback, one module per area.
//!
//! One test binary rather than one per file: each binary links the whole stack, so a single one
//! builds and links once. `cargo test --test integration <module>::` runs one area, e.g.
//! `cargo test --test integration grafana::`. What the modules share is in [`support`].

mod support;

mod alerts;
mod analysis;
mod api;
mod bad_input;
mod builds;
mod cli;
mod crash;
mod demo;
mod deploy;
mod embedding_text_drift;
mod fuzz_regressions;
mod grafana;
mod hostile;
mod ingest;
mod interop;
mod layers;
mod overload;
mod predictor;
mod prometheus_rules;
mod proxy;
mod report;
mod report_browser;
mod report_pair;
mod retrain;
mod s3;
mod schemathesis;
mod ui_browser;
