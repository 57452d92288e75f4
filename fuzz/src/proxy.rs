//! The proxy's modules that extraction needs, at the paths they have in the root crate, so
//! `extract.rs`'s `super::config` resolves as it does there.

#[path = "../../src/config/proxy.rs"]
pub mod config;
#[path = "../../src/proxy/extract.rs"]
pub mod extract;
