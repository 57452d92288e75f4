//! The analyzer: statistics and queries over what the collector stored.
//!
//! Takes in: Arrow arrays and slices (statistics), and the store layout of
//! [`anchorwatch_collector`] (SQL over a model's predictions and labels).
//! Gives out: drift test results with Evidently's numbers, and query results as Arrow batches.
//! Must never: write to the store, or do IO inside a statistic (those are pure functions).

pub mod drift;
pub mod hash;
pub mod monitor;
pub mod multivariate;
mod parallel;
pub mod performance;
pub mod sql;
pub mod stats;
