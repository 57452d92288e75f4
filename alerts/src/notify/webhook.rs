//! Generic webhook: Alertmanager's webhook payload (version 4), so receivers written for
//! Alertmanager work unchanged. Signed and sent by [`super::http::Endpoint`].

use crate::model::Notification;

/// The request body: [`Notification::webhook_payload`].
pub(super) fn body(n: &Notification) -> serde_json::Value {
    n.webhook_payload()
}
