//! What people look at: the drift report's data model and its self-contained HTML rendering.
//!
//! Takes in: a finished [`report::Report`] (verdicts and per-column summaries, already computed
//! by the analyzer; nothing here computes statistics).
//! Gives out: the report as JSON (through serde) and as one HTML page ([`html::render`]) with
//! inline CSS, inline vanilla JS and charts drawn as inline SVG ([`svg`]).
//! Must never: reference anything outside the page (no network, fonts, CDNs), embed raw data
//! rows (a page's size depends on the number of columns, not rows), or put a user string
//! (column name, category, file name) into the page without escaping it.

pub mod html;
pub mod report;
pub mod svg;
pub mod ui;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the page to its destination failed.
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
