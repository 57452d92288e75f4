//! Slack: an incoming-webhook message with Block Kit blocks, and a one-line `text` that Slack
//! shows in notifications and clients without blocks. Slack answers 200 `ok`.

use serde_json::{Value, json};

use super::{DETAIL_LABELS, format_value, status_tag};
use crate::model::Notification;

/// Slack refuses messages of more than 50 blocks: the header, this many alerts, a "more" line
/// and the dashboard link stay under it.
const MAX_ALERT_BLOCKS: usize = 46;
/// Slack's limit for a section's text is 3000 characters; a summary gets at most this many.
const MAX_SUMMARY_CHARS: usize = 1500;

/// `{"text": <fallback>, "blocks": [header, one section per alert, dashboard link]}`.
pub(super) fn body(n: &Notification) -> Value {
    let headline = format!("{} model {}", status_tag(n), n.model);
    let text = format!("{headline}: {}", super::alert_names(&n.alerts).join(", "));
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&headline, 149) },
    })];
    for a in n.alerts.iter().take(MAX_ALERT_BLOCKS) {
        let name = a.labels.get("alertname").map(String::as_str).unwrap_or("alert");
        let mut lines = vec![format!("*{}* · {}", escape(name), a.status.as_str())];
        if let Some(summary) = a.annotations.get("summary") {
            lines.push(escape(&truncate(summary, MAX_SUMMARY_CHARS)));
        }
        let mut details = vec![format!("*value* {}", format_value(a.value))];
        for label in DETAIL_LABELS {
            if let Some(v) = a.labels.get(*label) {
                details.push(format!("*{label}* {}", escape(&truncate(v, 200))));
            }
        }
        lines.push(details.join(" · "));
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": lines.join("\n") } }));
    }
    if n.alerts.len() > MAX_ALERT_BLOCKS {
        let more = n.alerts.len() - MAX_ALERT_BLOCKS;
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("…and {more} more") } }));
    }
    blocks.push(json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": format!("<{}|Open {} in anchorwatch>", link(&n.dashboard_url), escape(&n.model)),
        },
    }));
    json!({ "text": text, "blocks": blocks })
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` only.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A URL inside `<url|text>`: escaped, and without the `|` that would end it.
fn link(url: &str) -> String {
    escape(url).replace('|', "%7C")
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}
