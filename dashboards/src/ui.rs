//! The built-in web UI: server-rendered pages with SVG charts, no script and nothing fetched from
//! elsewhere, so it works offline and behind any proxy.
//!
//! Takes in: plain view models ([`Overview`], [`ModelPage`], [`LoginPage`]) that the server fills
//! from its results tables, alerts engine, registry and retraining runs.
//! Gives out: whole HTML pages as strings. Every chart mark carries its number in a `data-value`
//! attribute and a `<title>` (read by screen readers and shown on hover), so tests and people
//! read the same numbers the API returns.
//! Must never: put a user string (model, feature, category, reason) into a page unescaped.

pub mod charts;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::html::{escape, format_number};

/// What a model needs from people right now, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The analysis has failed since its last success: drift and decay go unseen.
    Failing,
    /// A retraining run is in progress.
    Retraining,
    /// An alert is firing.
    Alerting,
    /// The newest window's dataset drift share reached its threshold.
    Drifting,
    /// None of the above.
    Healthy,
}

impl Status {
    /// The word shown (and used as a CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Failing => "failing",
            Status::Retraining => "retraining",
            Status::Alerting => "alerting",
            Status::Drifting => "drifting",
            Status::Healthy => "healthy",
        }
    }
}

/// One row of the models list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// When its newest window was computed (RFC 3339), if ever.
    pub last_analysis: Option<String>,
    /// The champion version, if one is promoted.
    pub champion: Option<u32>,
    /// The newest window's dataset drift share.
    pub drift_share: Option<f64>,
    /// Alerts firing for it.
    pub firing_alerts: usize,
    /// Why its analysis fails, since when and how often in a row; `None` while it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_error: Option<String>,
}

/// The front page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    /// Every configured model.
    pub models: Vec<ModelSummary>,
    /// Seconds between automatic reloads (0: none).
    pub refresh_seconds: u32,
    /// The token name of a viewer signed in through the login page; the header then offers
    /// Sign out. `None` when the page was asked for with a bearer token or without auth.
    #[serde(default)]
    pub signed_in: Option<String>,
}

/// One analysis window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// Its start, RFC 3339.
    pub start: String,
    /// Rows in it.
    pub rows: u64,
    /// Rows with a label, when performance was computed.
    pub labeled_rows: Option<u64>,
    /// Share of drifted features.
    pub drift_share: f64,
    /// Whether the share reached the threshold.
    pub dataset_drifted: bool,
}

/// One feature's drift scores, one per window (aligned with [`ModelPage::windows`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureScores {
    /// Column name.
    pub name: String,
    /// The test used (e.g. `ks`, `psi`).
    pub stattest: String,
    /// Score per window; `None` when the window has no result for it.
    pub scores: Vec<Option<f64>>,
    /// Whether it drifted, per window.
    pub drifted: Vec<bool>,
    /// The threshold the score was compared with, per window (for a multivariate method, the
    /// upper bound of the reference's band).
    #[serde(default)]
    pub thresholds: Vec<Option<f64>>,
}

/// Reference and current values of one feature in one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Distribution {
    /// Counts over shared bin edges (`edges.len() == counts.len() + 1`).
    Numerical {
        /// Bin edges.
        edges: Vec<f64>,
        /// Reference counts.
        reference: Vec<u64>,
        /// Current counts.
        current: Vec<u64>,
    },
    /// Counts per category.
    Categorical {
        /// Categories.
        labels: Vec<String>,
        /// Reference counts.
        reference: Vec<u64>,
        /// Current counts.
        current: Vec<u64>,
    },
}

/// One performance metric over the windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    /// Metric name (`accuracy`, ...).
    pub metric: String,
    /// `realized` or `estimated`.
    pub kind: String,
    /// Value per window.
    pub values: Vec<Option<f64>>,
}

/// An alert that is pending or firing now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// `alertname`.
    pub name: String,
    /// `pending` or `firing`.
    pub state: String,
    /// The watched value.
    pub value: f64,
    /// Since when, RFC 3339.
    pub since: String,
    /// The summary annotation.
    pub summary: String,
}

/// One entry of the alerts history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertEvent {
    /// When, RFC 3339.
    pub at: String,
    /// What happened (`pending`, `firing`, `resolved`, `delivered`, ...).
    pub event: String,
    /// The alert's name.
    pub name: String,
    /// The value at the time.
    pub value: Option<f64>,
}

/// One retraining run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunItem {
    /// Run id.
    pub id: String,
    /// What started it.
    pub trigger: String,
    /// Where it stands.
    pub status: String,
    /// Start, RFC 3339.
    pub started: String,
    /// End, RFC 3339.
    pub finished: Option<String>,
    /// Why it ended so.
    pub reason: String,
    /// The candidate version.
    pub candidate: Option<u32>,
}

/// One model version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionItem {
    /// Version number.
    pub version: u32,
    /// Created, RFC 3339.
    pub created: String,
    /// Where it came from.
    pub source: String,
    /// Registry status.
    pub status: String,
    /// Whether it is the champion.
    pub champion: bool,
}

/// A model's page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelPage {
    /// The model's line of the overview.
    pub summary: ModelSummary,
    /// Seconds between automatic reloads (0: none).
    pub refresh_seconds: u32,
    /// Windows, oldest first.
    pub windows: Vec<Window>,
    /// Drift scores per feature.
    pub features: Vec<FeatureScores>,
    /// The feature and window (index into `windows`) chosen for the distribution chart.
    pub selected: Option<(String, usize)>,
    /// Their distributions, when they could be read.
    pub distribution: Option<Distribution>,
    /// Why there is no distribution, when there is none.
    pub distribution_note: Option<String>,
    /// Performance over the windows.
    pub performance: Vec<Series>,
    /// Alerts pending or firing.
    pub active_alerts: Vec<ActiveAlert>,
    /// Alert history, oldest first.
    pub alert_events: Vec<AlertEvent>,
    /// Retraining runs, newest first.
    pub runs: Vec<RunItem>,
    /// Registered versions.
    pub versions: Vec<VersionItem>,
    /// As [`Overview::signed_in`].
    #[serde(default)]
    pub signed_in: Option<String>,
    /// What became of the last promote or roll back, shown above the versions.
    #[serde(default)]
    pub flash: Option<Flash>,
}

/// A one-line outcome of an action taken from the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum Flash {
    /// It worked.
    Done(String),
    /// It did not; nothing changed.
    Failed(String),
}

/// Why the last sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginError {
    /// The token matches none configured.
    Invalid,
    /// The token is valid but may not read (it has only the `ingest` scope).
    Scope,
}

/// The sign-in page, shown when `[auth]` tokens are configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginPage {
    /// Where to go after signing in: a path on this server, already checked by the caller.
    pub next: String,
    /// Why the last try failed, if it did.
    pub error: Option<LoginError>,
}

const STYLE: &str = r#"
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;color:#1f2328}
body{margin:0 auto;max-width:1280px;padding:0 1.25rem 3rem}
header{display:flex;gap:1rem;align-items:baseline;border-bottom:1px solid #d0d7de;padding:.75rem 0}
header h1{font-size:1.25rem;margin:0}
a{color:#0550ae}
a:focus,button:focus,select:focus,input:focus{outline:3px solid #fb8500;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e6e8eb;vertical-align:top}
th{background:#f6f8fa}
.status{display:inline-block;padding:0 .5rem;border-radius:1rem;font-weight:600}
.status.healthy{background:#dafbe1;color:#116329}
.status.drifting{background:#fff1c2;color:#7d4e00}
.status.alerting{background:#ffd8d3;color:#a40e26}
.status.failing{background:#3d0a14;color:#fff}
.status.retraining{background:#ddf4ff;color:#0550ae}
section{margin:1.5rem 0}
section h2{font-size:1.1rem;border-bottom:1px solid #e6e8eb;padding-bottom:.25rem}
.scroll{overflow-x:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1rem}
.note{color:#57606a}
svg text{fill:#333}
form.inline{display:inline}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
.account{margin-left:auto}
.flash{padding:.5rem .75rem;border-radius:6px;border:1px solid}
.flash.done{background:#dafbe1;color:#116329;border-color:#4ac26b}
.flash.failed{background:#ffebe9;color:#a40e26;border-color:#ff8182}
form.login{display:grid;gap:.5rem;max-width:24rem;margin:1rem 0}
form.login input{font:inherit;padding:.4rem .5rem;border:1px solid #8c959f;border-radius:6px}
form.login button{justify-self:start;font:inherit;padding:.35rem 1rem}
"#;

/// A whole page. With `signed_in`, the header names the token and offers Sign out.
fn page(title: &str, refresh: u32, signed_in: Option<&str>, body: &str) -> String {
    let refresh =
        if refresh > 0 { format!(r#"<meta http-equiv="refresh" content="{refresh}">"#) } else { String::new() };
    let account = match signed_in {
        Some(name) => format!(
            r#"<div class="account"><span class="note">Signed in as <strong id="signed-in">{}</strong></span> <form class="inline" method="post" action="/logout"><button type="submit">Sign out</button></form></div>"#,
            escape(name)
        ),
        None => String::new(),
    };
    format!(
        r##"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{refresh}<link rel="icon" href="data:,"><title>{} · anchorwatch</title><style>{STYLE}</style></head><body><a class="skip" href='#main'>Skip to content</a><header><h1><a href="/">anchorwatch</a></h1><span class="note">model monitoring</span>{account}</header><main id="main">{body}</main></body></html>"##,
        escape(title)
    )
}

fn status_badge(s: Status) -> String {
    format!(r#"<span class="status {0}" data-status="{0}">{0}</span>"#, s.as_str())
}

fn opt_num(x: Option<f64>) -> String {
    x.map(format_number).unwrap_or_else(|| "—".into())
}

fn opt_text(x: Option<&str>) -> String {
    x.map(escape).unwrap_or_else(|| "—".into())
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The front page: every model with its status, last analysis and champion.
pub fn render_overview(o: &Overview) -> String {
    let mut body = String::from(
        r#"<h2 id="models-title">Models</h2><table id="models" aria-labelledby="models-title"><thead><tr><th scope="col">Model</th><th scope="col">Status</th><th scope="col">Drift share</th><th scope="col">Firing alerts</th><th scope="col">Last analysis</th><th scope="col">Champion</th></tr></thead><tbody>"#,
    );
    for m in &o.models {
        let _ = write!(
            body,
            r#"<tr data-model="{name}"><th scope="row"><a href="/models/{url}">{name}</a></th><td>{status}</td><td data-value="{share}">{share_text}</td><td>{firing}</td><td>{last}</td><td>{champion}</td></tr>"#,
            name = escape(&m.name),
            url = url_segment(&m.name),
            status = status_badge(m.status),
            share = m.drift_share.map(|x| x.to_string()).unwrap_or_default(),
            share_text = opt_num(m.drift_share),
            firing = m.firing_alerts,
            last = opt_text(m.last_analysis.as_deref()),
            champion = m.champion.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into()),
        );
    }
    body.push_str("</tbody></table>");
    if o.models.is_empty() {
        body.push_str(r#"<p class="note">No models are configured.</p>"#);
    }
    page("Models", o.refresh_seconds, o.signed_in.as_deref(), &body)
}

/// A model's page: drift over time, the feature × window heatmap, one feature's distributions,
/// performance with label coverage, alerts, retraining runs and versions.
pub fn render_model(p: &ModelPage) -> String {
    let m = &p.summary;
    let name = escape(&m.name);
    let url = url_segment(&m.name);
    let labels: Vec<String> = p.windows.iter().map(|w| short_time(&w.start)).collect();
    let mut b = String::with_capacity(64 * 1024);
    let _ = write!(
        b,
        r#"<h2 id="model" data-model="{name}">{name} {status}</h2><p>Last analysis: {last} · champion: {champion} · windows: {n}</p><nav aria-label="sections"><a href='#drift'>Drift</a> · <a href='#heatmap'>Features</a> · <a href='#distribution'>Distribution</a> · <a href='#performance'>Performance</a> · <a href='#alerts'>Alerts</a> · <a href='#retraining'>Retraining</a> · <a href='#versions'>Versions</a></nav>"#,
        status = status_badge(m.status),
        last = opt_text(m.last_analysis.as_deref()),
        champion = m.champion.map(|v| format!("v{v}")).unwrap_or_else(|| "none".into()),
        n = p.windows.len(),
    );
    if let Some(e) = &m.analysis_error {
        let _ = write!(
            b,
            r#"<p id="analysis-failing" class="flash failed" role="alert">The analysis is failing: {}</p>"#,
            escape(e)
        );
    }

    b.push_str(
        r#"<section id="drift" aria-labelledby="drift-title"><h2 id="drift-title">Dataset drift share over time</h2>"#,
    );
    if p.windows.is_empty() {
        b.push_str(r#"<p class="note">No analysed windows yet.</p>"#);
    } else {
        let shares: Vec<Option<f64>> = p.windows.iter().map(|w| Some(w.drift_share)).collect();
        b.push_str(&charts::line(
            "drift-share",
            "dataset drift share per window",
            &labels,
            &[charts::Line { name: "drift share".into(), color: "#cf222e", values: &shares }],
            Some((0.0, 1.0)),
        ));
        // The features taken jointly: the multivariate value against its band, per window.
        if let Some(joint) = p.features.iter().find(|f| f.name == "data_reconstruction") {
            b.push_str(r#"<h3 id="multivariate-title">Features taken jointly: reconstruction error</h3>"#);
            b.push_str(&charts::line(
                "multivariate",
                "mean reconstruction error of the tabular features per window, and the upper bound of the reference's band",
                &labels,
                &[
                    charts::Line { name: "reconstruction error".into(), color: "#8250df", values: &joint.scores },
                    charts::Line { name: "upper bound".into(), color: "#999999", values: &joint.thresholds },
                ],
                None,
            ));
        }
    }
    b.push_str("</section>");

    let _ = write!(
        b,
        r#"<section id="heatmap" aria-labelledby="heatmap-title"><h2 id="heatmap-title">Drift scores, feature × window</h2><p class="note">Red cells drifted. Each cell links to that feature's distributions in that window.</p><div class="scroll">{}</div></section>"#,
        charts::heatmap(&url, &labels, &p.features)
    );

    b.push_str(r#"<section id="distribution" aria-labelledby="dist-title"><h2 id="dist-title">Reference and current distributions</h2>"#);
    let _ =
        write!(b, r#"<form method="get" action="/models/{url}#distribution"><label>Feature <select name="feature">"#);
    for f in &p.features {
        let selected = p.selected.as_ref().is_some_and(|(s, _)| *s == f.name);
        let _ = write!(
            b,
            r#"<option value="{0}"{1}>{0}</option>"#,
            escape(&f.name),
            if selected { " selected" } else { "" }
        );
    }
    b.push_str(r#"</select></label> <label>Window <select name="window">"#);
    for (i, l) in labels.iter().enumerate() {
        let selected = p.selected.as_ref().is_some_and(|(_, w)| *w == i);
        let _ = write!(b, r#"<option value="{i}"{}>{}</option>"#, if selected { " selected" } else { "" }, escape(l));
    }
    b.push_str(r#"</select></label> <button type="submit">Show</button></form>"#);
    if let Some((feature, w)) = &p.selected {
        let _ = write!(
            b,
            r#"<p>Feature <strong>{}</strong>, window starting {}</p>"#,
            escape(feature),
            escape(labels.get(*w).map(String::as_str).unwrap_or("?"))
        );
    }
    match &p.distribution {
        Some(Distribution::Numerical { edges, reference, current }) => {
            b.push_str(&crate::svg::histogram(edges, reference, current))
        }
        Some(Distribution::Categorical { labels, reference, current }) => {
            let l: Vec<&str> = labels.iter().map(String::as_str).collect();
            let totals = (reference.iter().sum(), current.iter().sum());
            b.push_str(&crate::svg::categories(&l, reference, current, totals))
        }
        None => {
            let _ = write!(
                b,
                r#"<p class="note">{}</p>"#,
                escape(p.distribution_note.as_deref().unwrap_or("Choose a feature and a window."))
            );
        }
    }
    b.push_str("</section>");

    b.push_str(r#"<section id="performance" aria-labelledby="perf-title"><h2 id="perf-title">Performance and label coverage</h2>"#);
    if p.performance.is_empty() {
        b.push_str(r#"<p class="note">No performance computed yet (labels or scores are needed).</p>"#);
    } else {
        // One chart per metric, realized beside estimated, so every chart has one scale.
        let mut metrics: Vec<&str> = p.performance.iter().map(|s| s.metric.as_str()).collect();
        metrics.sort_unstable();
        metrics.dedup();
        b.push_str(r#"<div class="grid">"#);
        for metric in metrics {
            let lines: Vec<charts::Line> = p
                .performance
                .iter()
                .filter(|s| s.metric == metric)
                .map(|s| charts::Line {
                    name: format!("{} {}", s.kind, s.metric),
                    color: if s.kind == "realized" { "#1f6feb" } else { "#8250df" },
                    values: &s.values,
                })
                .collect();
            let _ = write!(
                b,
                "<div>{}</div>",
                charts::line(
                    &format!("performance-{}", url_segment(metric)),
                    &format!("{metric}, realized and estimated, per window"),
                    &labels,
                    &lines,
                    None,
                )
            );
        }
        b.push_str("</div>");
    }
    let coverage: Vec<Option<f64>> = p
        .windows
        .iter()
        .map(|w| w.labeled_rows.map(|l| if w.rows == 0 { 0.0 } else { l as f64 / w.rows as f64 }))
        .collect();
    if coverage.iter().any(Option::is_some) {
        b.push_str(&charts::line(
            "label-coverage",
            "share of rows with a label per window",
            &labels,
            &[charts::Line { name: "label coverage".into(), color: "#57606a", values: &coverage }],
            Some((0.0, 1.0)),
        ));
    }
    b.push_str("</section>");

    b.push_str(r#"<section id="alerts" aria-labelledby="alerts-title"><h2 id="alerts-title">Alerts</h2>"#);
    if p.active_alerts.is_empty() {
        b.push_str(r#"<p>No alert is pending or firing.</p>"#);
    } else {
        b.push_str(r#"<table><caption>Pending and firing</caption><thead><tr><th scope="col">Alert</th><th scope="col">State</th><th scope="col">Value</th><th scope="col">Since</th><th scope="col">Summary</th></tr></thead><tbody>"#);
        for a in &p.active_alerts {
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td>{}</td><td data-value="{}">{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&a.name),
                escape(&a.state),
                a.value,
                format_number(a.value),
                escape(&a.since),
                escape(&a.summary)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str(&charts::timeline(&p.alert_events));
    if !p.alert_events.is_empty() {
        b.push_str(r#"<details><summary>Alert history as a table</summary><table><thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Alert</th><th scope="col">Value</th></tr></thead><tbody>"#);
        for e in p.alert_events.iter().rev() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.at),
                escape(&e.event),
                escape(&e.name),
                opt_num(e.value)
            );
        }
        b.push_str("</tbody></table></details>");
    }
    b.push_str("</section>");

    b.push_str(r#"<section id="retraining" aria-labelledby="runs-title"><h2 id="runs-title">Retraining runs</h2>"#);
    if p.runs.is_empty() {
        b.push_str(r#"<p class="note">No retraining runs.</p>"#);
    } else {
        b.push_str(r#"<table><thead><tr><th scope="col">Run</th><th scope="col">Trigger</th><th scope="col">Status</th><th scope="col">Started</th><th scope="col">Finished</th><th scope="col">Candidate</th><th scope="col">Reason</th></tr></thead><tbody>"#);
        for r in &p.runs {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.id),
                escape(&r.trigger),
                escape(&r.status),
                escape(&r.started),
                opt_text(r.finished.as_deref()),
                r.candidate.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into()),
                escape(&r.reason)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    b.push_str(
        r#"<section id="versions" aria-labelledby="versions-title"><h2 id="versions-title">Model versions</h2>"#,
    );
    match &p.flash {
        Some(Flash::Done(m)) => {
            let _ = write!(b, r#"<p id="flash" class="flash done" role="status">{}</p>"#, escape(m));
        }
        Some(Flash::Failed(m)) => {
            let _ = write!(b, r#"<p id="flash" class="flash failed" role="alert">{}</p>"#, escape(m));
        }
        None => {}
    }
    if p.versions.is_empty() {
        b.push_str(r#"<p class="note">No versions registered.</p>"#);
    } else {
        b.push_str(r#"<table><thead><tr><th scope="col">Version</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col">Source</th><th scope="col">Action</th></tr></thead><tbody>"#);
        for v in &p.versions {
            let action = if v.champion {
                "<strong>champion</strong>".to_string()
            } else {
                format!(
                    r#"<form class="inline" method="post" action="/v1/models/{url}/versions/{0}/promote"><button type="submit" aria-label="promote version {0}">Promote</button></form>"#,
                    v.version
                )
            };
            let _ = write!(
                b,
                "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                v.version,
                escape(&v.status),
                escape(&v.created),
                escape(&v.source)
            );
        }
        b.push_str("</tbody></table>");
        let _ = write!(
            b,
            r#"<form method="post" action="/v1/models/{url}/rollback"><button type="submit">Roll back to the previous champion</button></form>"#
        );
    }
    b.push_str("</section>");
    page(&m.name, p.refresh_seconds, p.signed_in.as_deref(), &b)
}

/// The sign-in page: one password field for an access token. The token is never put back into
/// the page, not even after a failed try. A hidden, unnamed (never sent) username field lets
/// password managers file the token, as browsers ask of password forms.
pub fn render_login(p: &LoginPage) -> String {
    let mut b = String::from(
        r#"<h2 id="login-title">Sign in</h2><p>This anchorwatch asks for an access token: one of the <code>[auth]</code> tokens with the <code>read</code> or <code>admin</code> scope.</p>"#,
    );
    let invalid = match p.error {
        Some(e) => {
            let message = match e {
                LoginError::Invalid => "That token was not accepted. Check it and try again.",
                LoginError::Scope => {
                    "That token may only send data (scope ingest); the UI needs a token with the read or admin scope."
                }
            };
            let _ = write!(b, r#"<p id="login-error" class="flash failed" role="alert">{message}</p>"#);
            r#" aria-invalid="true" aria-describedby="login-error""#
        }
        None => "",
    };
    let _ = write!(
        b,
        r#"<form class="login" method="post" action="/login" aria-labelledby="login-title"><input type="text" autocomplete="username" value="anchorwatch" hidden><label for="token">Access token</label><input id="token" name="token" type="password" autocomplete="current-password" spellcheck="false" required autofocus{invalid}><input type="hidden" name="next" value="{}"><button type="submit">Sign in</button></form>"#,
        escape(&p.next)
    );
    page("Sign in", 0, None, &b)
}

/// `2026-11-20T00:00:00.000000Z` → `2026-11-20 00:00`; anything else unchanged.
pub fn short_time(t: &str) -> String {
    if t.len() >= 16 && t.as_bytes().get(10) == Some(&b'T') { format!("{} {}", &t[..10], &t[11..16]) } else { t.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> ModelSummary {
        ModelSummary {
            name: "<m>".into(),
            status: Status::Drifting,
            last_analysis: Some("2026-11-20T01:00:00Z".into()),
            champion: Some(2),
            drift_share: Some(0.75),
            firing_alerts: 0,
            analysis_error: None,
        }
    }

    #[test]
    fn overview_escapes_names_and_carries_numbers() {
        let html = render_overview(&Overview { models: vec![summary()], refresh_seconds: 30, signed_in: None });
        assert!(html.contains("&lt;m&gt;") && !html.contains("<m>"));
        assert!(html.contains(r#"href="/models/%3Cm%3E""#));
        assert!(html.contains(r#"data-value="0.75""#));
        assert!(html.contains(r#"data-status="drifting""#));
        assert!(html.contains(r#"http-equiv="refresh" content="30""#));
        assert!(!html.contains("/logout"), "no Sign out without a session");
        let html = render_overview(&Overview { models: vec![], refresh_seconds: 0, signed_in: Some("<ops>".into()) });
        assert!(html.contains(r#"action="/logout""#) && html.contains("&lt;ops&gt;"));
    }

    #[test]
    fn login_page_has_a_labelled_password_field_and_never_echoes() {
        let html = render_login(&LoginPage { next: "/models/a?x=\"1\"".into(), error: None });
        assert!(html.contains(r#"<label for="token">"#) && html.contains(r#"id="token" name="token" type="password""#));
        assert!(html.contains(r#"action="/login""#));
        assert!(html.contains(r#"name="next" value="/models/a?x=&quot;1&quot;""#));
        assert!(!html.contains("login-error") && !html.contains("/logout") && !html.contains("<script"));
        let html = render_login(&LoginPage { next: "/".into(), error: Some(LoginError::Invalid) });
        assert!(html.contains(r#"id="login-error""#) && html.contains(r#"aria-describedby="login-error""#));
    }

    #[test]
    fn model_page_draws_every_section_with_hundreds_of_features() {
        let windows: Vec<Window> = (0..24)
            .map(|i| Window {
                start: format!("2026-11-20T{i:02}:00:00Z"),
                rows: 100,
                labeled_rows: Some(50),
                drift_share: i as f64 / 24.0,
                dataset_drifted: i >= 12,
            })
            .collect();
        let features: Vec<FeatureScores> = (0..300)
            .map(|f| FeatureScores {
                name: format!("f{f}"),
                stattest: "psi".into(),
                scores: (0..24).map(|i| Some((f * i) as f64 / 1000.0)).collect(),
                drifted: (0..24).map(|i| i > 12).collect(),
                thresholds: vec![None; 24],
            })
            .collect();
        let page = ModelPage {
            summary: summary(),
            refresh_seconds: 60,
            windows,
            features,
            selected: Some(("f1".into(), 3)),
            distribution: Some(Distribution::Numerical {
                edges: vec![0.0, 1.0, 2.0],
                reference: vec![1, 2],
                current: vec![2, 1],
            }),
            distribution_note: None,
            performance: vec![Series {
                metric: "accuracy".into(),
                kind: "realized".into(),
                values: vec![Some(0.9); 24],
            }],
            active_alerts: vec![],
            alert_events: vec![AlertEvent {
                at: "2026-11-20T01:00:00Z".into(),
                event: "pending".into(),
                name: "AnchorwatchDatasetDrift".into(),
                value: Some(0.75),
            }],
            runs: vec![],
            versions: vec![VersionItem {
                version: 1,
                created: "x".into(),
                source: "upload".into(),
                status: "candidate".into(),
                champion: false,
            }],
            signed_in: None,
            flash: Some(Flash::Failed("<nope>".into())),
        };
        let html = render_model(&page);
        assert_eq!(html.matches("<rect class=\"cell").count(), 300 * 24);
        assert!(html.contains(r#"data-feature="f299""#));
        assert!(html.contains("/versions/1/promote"));
        assert!(html.contains(r#"class="flash failed" role="alert">&lt;nope&gt;"#));
        assert!(html.contains("AnchorwatchDatasetDrift"));
        assert!(!html.contains("<script"));
    }
}
