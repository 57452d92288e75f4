//! Alerts: rules over analysis results, the pending → firing → resolved state machine, the
//! persisted notification outbox, and the notifiers (webhook, Alertmanager, Slack, email, retrain).
//!
//! Takes in: the analyzer's per-window results. Gives out: notifications, each delivered once.
//! Must never: send a notification twice across a restart, or lose one.
//!
//! Nothing is implemented here yet (issue #5); the crate holds its place in the workspace layout.
