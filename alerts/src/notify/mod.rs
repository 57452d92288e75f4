//! Notifiers: each delivers one [`Notification`] to one receiver, in one attempt.
//!
//! Takes in: a receiver's [`ReceiverConfig`] (secrets are read from the environment once, at
//! build time) and notifications. Gives out: `Ok` when the receiver accepted the notification,
//! else a [`DeliveryError`] carrying the receiver's answer and whether a retry can help.
//! Must never: log or return secrets (HMAC keys, passwords, URLs given through `url_env`), or
//! take longer than the receiver's `timeout`. Retries and backoff are the outbox's job.

mod alertmanager;
mod email;
mod http;
mod retrain;
mod slack;
mod webhook;

use std::sync::Arc;

use crate::config::{ReceiverConfig, ReceiverKind};
use crate::model::{Alert, Notification, State};

/// A failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What went wrong, with the receiver's answer when there was one: the HTTP status and the
    /// first bytes of the body, or the SMTP reply.
    pub message: String,
    /// Whether another attempt may succeed (5xx, 429, timeouts, connection errors, SMTP 4xx).
    pub retryable: bool,
}

impl DeliveryError {
    pub(crate) fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false }
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeliveryError {}

/// The retraining loop, as the `retrain` receiver sees it when it has no URL.
pub trait RetrainHook: Send + Sync + 'static {
    /// Hands `model` to the retraining loop, in process (used when a retrain receiver has no url).
    fn request(
        &self,
        model: &str,
        notification: &Notification,
    ) -> futures::future::BoxFuture<'static, Result<(), String>>;
}

/// One configured receiver, ready to deliver.
pub struct Notifier {
    name: String,
    send_resolved: bool,
    timeout: std::time::Duration,
    target: Target,
}

enum Target {
    Webhook(http::Endpoint),
    Alertmanager(http::Endpoint),
    Slack(http::Endpoint),
    Email(Box<email::Email>),
    RetrainUrl(http::Endpoint),
    RetrainHook(Arc<dyn RetrainHook>),
}

impl Notifier {
    /// Builds from config; reads secrets from the environment now (url_env, secret_env,
    /// password_env) and fails with an error naming the receiver and the missing variable.
    /// Builds the SMTP transport (lettre) once.
    pub fn new(config: &ReceiverConfig, retrain: Arc<dyn RetrainHook>) -> Result<Notifier, String> {
        let at = format!("receiver `{}`", config.name);
        let target = match config.kind {
            ReceiverKind::Webhook => Target::Webhook(http::Endpoint::new(config, true)?),
            ReceiverKind::Alertmanager => {
                let mut endpoint = http::Endpoint::new(config, false)?;
                endpoint.join_path("api/v2/alerts").map_err(|e| format!("{at}: {e}"))?;
                Target::Alertmanager(endpoint)
            }
            ReceiverKind::Slack => Target::Slack(http::Endpoint::new(config, false)?),
            ReceiverKind::Email => Target::Email(Box::new(email::Email::new(config)?)),
            ReceiverKind::Retrain if config.url.is_some() || config.url_env.is_some() => {
                Target::RetrainUrl(http::Endpoint::new(config, true)?)
            }
            ReceiverKind::Retrain => Target::RetrainHook(retrain),
        };
        Ok(Notifier { name: config.name.clone(), send_resolved: config.send_resolved, timeout: config.timeout, target })
    }

    /// The receiver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether resolved alerts are notified to this receiver.
    pub fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    /// One attempt, bounded by the receiver's `timeout`.
    pub async fn send(&self, n: &Notification) -> Result<(), DeliveryError> {
        let attempt = async {
            match &self.target {
                Target::Webhook(endpoint) => endpoint.post(&webhook::body(n), &n.id).await,
                Target::Alertmanager(endpoint) => endpoint.post(&alertmanager::body(n), &n.id).await,
                Target::Slack(endpoint) => endpoint.post(&slack::body(n), &n.id).await,
                Target::Email(email) => email.send(n).await,
                Target::RetrainUrl(endpoint) => match retrain::body(n) {
                    Some(body) => endpoint.post(&body, &n.id).await,
                    None => Ok(()),
                },
                Target::RetrainHook(hook) => {
                    if n.status != State::Firing {
                        return Ok(());
                    }
                    hook.request(&n.model, n)
                        .await
                        .map_err(|e| DeliveryError::retryable(format!("retraining loop refused the request: {e}")))
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::retryable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// `[FIRING:2]` (the number of firing alerts) or `[RESOLVED]`, as in Alertmanager's templates.
fn status_tag(n: &Notification) -> String {
    let firing = n.alerts.iter().filter(|a| a.status == State::Firing).count();
    if n.status == State::Firing { format!("[FIRING:{firing}]") } else { "[RESOLVED]".to_string() }
}

/// The distinct alert names of the notification, in order of first appearance.
fn alert_names(alerts: &[Alert]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for a in alerts {
        let name = a.labels.get("alertname").map(String::as_str).unwrap_or("alert");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A value as people read it: integers without a fraction, otherwise up to four decimals.
fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    if v.abs() >= 1e-4 && v.abs() < 1e9 {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s != "0" && s != "-0" {
            return s.to_string();
        }
    }
    format!("{v:e}")
}

/// The labels worth showing beside an alert's name (its series' own labels).
const DETAIL_LABELS: &[&str] = &["feature", "metric", "kind", "check"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        assert_eq!(format_value(0.75), "0.75");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.666666666), "0.6667");
        assert_eq!(format_value(0.00001), "1e-5");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
