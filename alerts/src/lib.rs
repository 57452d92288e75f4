//! Alerts: rules over analysis results, the pending → firing → resolved state machine, the
//! persisted notification outbox, and the notifiers (webhook, Alertmanager, Slack, email, retrain).
//!
//! Takes in: per-model observations (the newest window's figures, as samples). Gives out:
//! notifications, grouped per model, each delivered at least once and, barring a crash between
//! a receiver's answer and the outbox update, exactly once.
//! Must never: lose a notification across a restart, or send one twice when nothing crashed.

pub mod config;
pub mod engine;
pub mod model;
pub mod notify;
pub mod rules;

pub use config::AlertsConfig;
pub use engine::Engine;
pub use model::{Alert, Notification, State};
pub use rules::{Observation, Sample};
