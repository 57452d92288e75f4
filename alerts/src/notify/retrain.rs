//! The `retrain` action over HTTP: tells an external retraining pipeline which model to retrain
//! and why. Without a URL the notifier calls the in-process [`super::RetrainHook`] instead.

use crate::model::{Notification, State};

/// `{"model", "notification_id", "reason", "alerts"}` for a firing notification: `reason` joins
/// the names of the firing alerts with `, `, and `alerts` lists them in the webhook payload's
/// shape. `None` for a resolved notification: only firing alerts ask for a retrain.
pub(super) fn body(n: &Notification) -> Option<serde_json::Value> {
    if n.status != State::Firing {
        return None;
    }
    let firing: Vec<_> = n.alerts.iter().filter(|a| a.status == State::Firing).cloned().collect();
    let reason = super::alert_names(&firing).join(", ");
    let payload = n.webhook_payload();
    let alerts: Vec<serde_json::Value> = payload["alerts"]
        .as_array()
        .map(|all| all.iter().filter(|a| a["status"] == "firing").cloned().collect())
        .unwrap_or_default();
    Some(serde_json::json!({
        "model": n.model,
        "notification_id": n.id,
        "reason": reason,
        "alerts": alerts,
    }))
}
