//! anchorwatch: watches machine-learning models in production.
//!
//! Takes in: a TOML config ([`config::Config`]) and commands from the CLI.
//! Gives out: the HTTP server ([`server`]) wiring the collector and the analyzer together, and the
//! batch commands (`check-config`, `query`, `compact`, `demo`).
//! Must never: start with a config it could not fully validate, or lose acknowledged data on
//! shutdown (the collector is flushed before the process exits).

pub mod alerting;
pub mod api;
pub mod auth;
pub mod batching;
pub mod commands;
pub mod config;
pub mod demo;
pub mod lifecycle;
pub mod logging;
pub mod maintenance;
pub mod proxy;
pub mod report;
pub mod retrain;
pub mod server;
pub mod signals;
pub mod ui;
