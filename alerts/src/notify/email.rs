//! Email through SMTP (lettre): plain, STARTTLS (required) or implicit TLS, optional auth, and a
//! multipart/alternative message with a text and an HTML part that show each alert's values and
//! link to the dashboard.

use std::fmt::Write as _;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::http::{ID_HEADER, chain};
use super::{DETAIL_LABELS, DeliveryError, alert_names, format_value, status_tag};
use crate::config::{ReceiverConfig, SmtpTls};
use crate::model::{Alert, Notification};

/// An email receiver: the transport, built once, and the addresses.
pub(super) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    /// Checks the addresses, reads `ca_file` and the password, and builds the transport.
    pub(super) fn new(config: &ReceiverConfig) -> Result<Self, String> {
        let at = format!("receiver `{}`", config.name);
        let host = config.smtp_host.as_deref().ok_or_else(|| format!("{at}: `smtp_host` is required"))?;
        let from = config.from.as_deref().ok_or_else(|| format!("{at}: `from` is required"))?;
        let from: Mailbox = from.parse().map_err(|e| format!("{at}: from `{from}` is not an email address: {e}"))?;
        if config.to.is_empty() {
            return Err(format!("{at}: `to` needs at least one address"));
        }
        let to = config
            .to
            .iter()
            .map(|t| t.parse::<Mailbox>().map_err(|e| format!("{at}: to `{t}` is not an email address: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let port = config.smtp_port.unwrap_or(match config.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        // `builder_dangerous` only means "no TLS unless set below": the security is `config.tls`.
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).timeout(Some(config.timeout));
        if config.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(host.to_string());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|e| format!("{at}: cannot read ca_file `{path}`: {e}"))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("{at}: ca_file `{path}` holds no usable PEM certificate: {}", chain(&e)))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| format!("{at}: TLS setup failed: {}", chain(&e)))?;
            builder = builder.tls(match config.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some(user) = &config.username {
            let var = config.password_env.as_deref().ok_or_else(|| format!("{at}: `username` needs `password_env`"))?;
            let password = std::env::var(var)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("{at}: environment variable `{var}` (password_env) is not set"))?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self { transport: builder.build(), from, to })
    }

    /// Sends the message. SMTP 5xx replies and client-side errors are permanent; 4xx replies,
    /// connection, TLS and timeout errors are retryable.
    pub(super) async fn send(&self, n: &Notification) -> Result<(), DeliveryError> {
        let message = self.message(n).map_err(|e| DeliveryError::permanent(format!("cannot build the email: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = format!("SMTP: {}", chain(&e));
                if e.is_permanent() || e.is_client() {
                    Err(DeliveryError::permanent(message))
                } else {
                    Err(DeliveryError::retryable(message))
                }
            }
        }
    }

    fn message(&self, n: &Notification) -> Result<Message, lettre::error::Error> {
        let mut builder =
            Message::builder().from(self.from.clone()).subject(subject(n)).header(NotificationId(n.id.clone()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.multipart(MultiPart::alternative_plain_html(text(n), html(n)))
    }
}

/// `[FIRING:2] churn: AnchorwatchDatasetDrift, AnchorwatchFeatureDrift` (at most three names).
fn subject(n: &Notification) -> String {
    let names = alert_names(&n.alerts);
    let mut list = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        let _ = write!(list, " and {} more", names.len() - 3);
    }
    format!("{} {}: {list}", status_tag(n), n.model)
}

fn name(a: &Alert) -> &str {
    a.labels.get("alertname").map(String::as_str).unwrap_or("alert")
}

/// Every label, `key=value, ...`.
fn labels_line(a: &Alert) -> String {
    a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn text(n: &Notification) -> String {
    let mut out = format!("{} model {}\n\n", status_tag(n), n.model);
    for a in &n.alerts {
        let _ = writeln!(out, "{} ({})", name(a), a.status.as_str());
        let _ = writeln!(out, "  value: {}", format_value(a.value));
        for label in DETAIL_LABELS {
            if let Some(v) = a.labels.get(*label) {
                let _ = writeln!(out, "  {label}: {v}");
            }
        }
        if let Some(summary) = a.annotations.get("summary") {
            let _ = writeln!(out, "  summary: {summary}");
        }
        let _ = writeln!(out, "  labels: {}", labels_line(a));
        let _ = writeln!(out, "  since: {}", a.starts_at);
        if let Some(ends_at) = &a.ends_at {
            let _ = writeln!(out, "  ended: {ends_at}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Dashboard: {}", n.dashboard_url);
    out
}

fn html(n: &Notification) -> String {
    let e = escape;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body style=\"font-family: sans-serif\">\n",
    );
    let _ = writeln!(out, "<h2>{} model {}</h2>", e(&status_tag(n)), e(&n.model));
    for a in &n.alerts {
        let _ = writeln!(out, "<h3>{} <small>({})</small></h3>", e(name(a)), e(a.status.as_str()));
        out.push_str("<table cellpadding=\"4\">\n");
        let mut row = |k: &str, v: &str| {
            let _ = writeln!(out, "<tr><th align=\"left\">{}</th><td>{}</td></tr>", e(k), e(v));
        };
        row("value", &format_value(a.value));
        for label in DETAIL_LABELS {
            if let Some(v) = a.labels.get(*label) {
                row(label, v);
            }
        }
        if let Some(summary) = a.annotations.get("summary") {
            row("summary", summary);
        }
        row("labels", &labels_line(a));
        row("since", &a.starts_at);
        if let Some(ends_at) = &a.ends_at {
            row("ended", ends_at);
        }
        out.push_str("</table>\n");
    }
    let _ = writeln!(out, "<p><a href=\"{}\">Open {} in anchorwatch</a></p>", e(&n.dashboard_url), e(&n.model));
    out.push_str("</body></html>\n");
    out
}

/// Escapes text for HTML element content and quoted attribute values (the report's escaping).
fn escape(s: &str) -> String {
    anchorwatch_dashboards::html::escape(s)
}

/// `X-Anchorwatch-Notification-Id`, so a mail filter or a test can deduplicate.
#[derive(Clone)]
struct NotificationId(String);

impl Header for NotificationId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(ID_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
