//! Alertmanager: the alerts POSTed to `<base>/api/v2/alerts` as API v2 postable alerts, so
//! Alertmanager groups, routes and silences them with the rest of a team's alerts.

use crate::model::{Notification, State};

/// A JSON array of postable alerts. Firing alerts carry no `endsAt` (Alertmanager resolves them
/// after its `resolve_timeout` unless they are sent again); resolved ones carry theirs.
pub(super) fn body(n: &Notification) -> serde_json::Value {
    let alerts = n
        .alerts
        .iter()
        .map(|a| {
            let mut alert = serde_json::json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "generatorURL": a.generator_url,
            });
            if a.status == State::Resolved
                && let Some(ends_at) = &a.ends_at
            {
                alert["endsAt"] = serde_json::Value::String(ends_at.clone());
            }
            alert
        })
        .collect();
    serde_json::Value::Array(alerts)
}
