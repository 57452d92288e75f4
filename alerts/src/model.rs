//! What is notified: alerts in Alertmanager's shape, grouped per model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The condition holds, but not yet for the rule's `for`.
    Pending,
    /// The condition has held for `for` (or is within `keep_firing_for`).
    Firing,
    /// It fired and stopped.
    Resolved,
}

impl State {
    /// `pending`, `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One alert as notified (the fields of Alertmanager's webhook payload, plus the value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable identity: a hash of the labels (16 hex digits).
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: State,
    /// `alertname`, `model`, the series' own labels (`feature`, `metric`, ...) and the rule's.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations with their templates filled in.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing, RFC 3339.
    pub starts_at: String,
    /// When it resolved, RFC 3339; `None` while firing.
    pub ends_at: Option<String>,
    /// The watched value at the last evaluation.
    pub value: f64,
    /// Link to the model's page in anchorwatch.
    pub generator_url: String,
}

/// One message to one receiver: the alerts of one model that changed or are due a reminder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id, the same across retries; receivers can deduplicate on it
    /// (header `X-Anchorwatch-Notification-Id`).
    pub id: String,
    /// The receiver's name.
    pub receiver: String,
    /// The group: the model's name.
    pub model: String,
    /// Alertmanager's group key, `{}:{model="<model>"}`.
    pub group_key: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: State,
    /// The alerts: every firing one of the group, and those resolved since the last message.
    pub alerts: Vec<Alert>,
    /// This anchorwatch's base URL.
    pub external_url: String,
    /// Link to the model's page.
    pub dashboard_url: String,
}

impl Notification {
    /// Labels every alert shares (Alertmanager's `commonLabels`).
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    /// Annotations every alert shares (Alertmanager's `commonAnnotations`).
    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// Alertmanager's webhook payload, version 4.
    pub fn webhook_payload(&self) -> serde_json::Value {
        let alerts: Vec<serde_json::Value> = self
            .alerts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "status": a.status.as_str(),
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.starts_at,
                    "endsAt": a.ends_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                    "generatorURL": a.generator_url,
                    "fingerprint": a.fingerprint,
                })
            })
            .collect();
        serde_json::json!({
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": 0,
            "status": self.status.as_str(),
            "receiver": self.receiver,
            "groupLabels": { "model": self.model },
            "commonLabels": self.common_labels(),
            "commonAnnotations": self.common_annotations(),
            "externalURL": self.external_url,
            "alerts": alerts,
        })
    }
}

fn common<'a>(mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else { return BTreeMap::new() };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}
