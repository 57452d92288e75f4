//! PLACEHOLDER written by the lead so the crate compiles; helper-7 replaces this file entirely.
use std::sync::Arc;

use crate::config::ReceiverConfig;
use crate::model::Notification;

/// A failed delivery.
#[derive(Debug)]
pub struct DeliveryError {
    /// What went wrong.
    pub message: String,
    /// Whether to retry.
    pub retryable: bool,
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Hands a model to retraining.
pub trait RetrainHook: Send + Sync + 'static {
    /// Requests a retrain.
    fn request(&self, model: &str, notification: &Notification) -> futures::future::BoxFuture<'static, Result<(), String>>;
}

/// A receiver.
pub struct Notifier {
    config: ReceiverConfig,
}

impl Notifier {
    /// Builds.
    pub fn new(config: &ReceiverConfig, _retrain: Arc<dyn RetrainHook>) -> Result<Notifier, String> {
        Ok(Self { config: config.clone() })
    }
    /// Name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
    /// Send resolved.
    pub fn send_resolved(&self) -> bool {
        self.config.send_resolved
    }
    /// Sends.
    pub async fn send(&self, _n: &Notification) -> Result<(), DeliveryError> {
        Err(DeliveryError { message: "placeholder".into(), retryable: true })
    }
}
