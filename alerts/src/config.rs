//! `[alerts]`: rules, receivers, inhibition and delivery. Every field is documented in
//! `docs/config.md` (section `[alerts]`).

use std::collections::BTreeMap;
use std::time::Duration;

use anchorwatch_collector::config::units;
use serde::{Deserialize, Serialize};

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Whether the built-in default rules (see [`default_rules`]) are evaluated besides `rules`.
    /// Default `true`.
    pub default_rules: bool,
    /// Base URL of this anchorwatch as people reach it, for links in notifications.
    /// Default `"http://127.0.0.1:8080"`.
    pub external_url: String,
    /// How often a still-firing group is notified again. Default `"4h"`.
    #[serde(with = "units::duration")]
    pub repeat_interval: Duration,
    /// Alert events kept for `GET /v1/alerts?history=true`. Default `1000`.
    pub history_limit: usize,
    /// Delivery retries.
    pub retry: RetryConfig,
    /// `[[alerts.rules]]`.
    pub rules: Vec<RuleConfig>,
    /// `[[alerts.receivers]]`.
    pub receivers: Vec<ReceiverConfig>,
    /// `[[alerts.inhibit_rules]]`.
    pub inhibit_rules: Vec<InhibitRule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            default_rules: true,
            external_url: "http://127.0.0.1:8080".into(),
            repeat_interval: Duration::from_secs(4 * 3600),
            history_limit: 1000,
            retry: RetryConfig::default(),
            rules: Vec::new(),
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
        }
    }
}

/// `[alerts.retry]`: how failed deliveries are retried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per notification, the first one included; then it is dropped and counted.
    /// Default `10`.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after each failure. Default `"1s"`.
    #[serde(with = "units::duration")]
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default `"5m"`.
    #[serde(with = "units::duration")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { max_attempts: 10, initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(300) }
    }
}

/// What a rule watches: the series of the analysis, named as on `/metrics` without the
/// `anchorwatch_` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watch {
    /// Share of drifted features in the newest window.
    DatasetDriftShare,
    /// A feature's drift score (p-value or distance); per `feature`.
    FeatureDriftScore,
    /// 1 when a feature drifted, else 0; per `feature`.
    FeatureDrifted,
    /// A multivariate drift value of the features together; per `method`
    /// (`data_reconstruction`).
    MultivariateDrift,
    /// 1 when the multivariate value is outside the reference's band, else 0; per `method`.
    MultivariateDrifted,
    /// A performance metric; per `metric` and `kind` (realized, estimated).
    ModelPerformance,
    /// 1 while a metric is outside its threshold; per `metric` and `kind`.
    PerformanceThresholdBreached,
    /// Realized value over the reference's; per `metric`.
    PerformanceDecayRatio,
    /// Labeled share of the newest window.
    LabelCoverageRatio,
    /// A data-quality figure; per `feature` and `check`.
    DataQuality,
    /// Requests the collector refused since the previous evaluation (collector health).
    IngestRejected,
    /// Rows in the newest window.
    WindowRows,
}

impl Watch {
    /// The name used in config and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Watch::DatasetDriftShare => "dataset_drift_share",
            Watch::FeatureDriftScore => "feature_drift_score",
            Watch::FeatureDrifted => "feature_drifted",
            Watch::MultivariateDrift => "multivariate_drift",
            Watch::MultivariateDrifted => "multivariate_drifted",
            Watch::ModelPerformance => "model_performance",
            Watch::PerformanceThresholdBreached => "performance_threshold_breached",
            Watch::PerformanceDecayRatio => "performance_decay_ratio",
            Watch::LabelCoverageRatio => "label_coverage_ratio",
            Watch::DataQuality => "data_quality",
            Watch::IngestRejected => "ingest_rejected",
            Watch::WindowRows => "window_rows",
        }
    }
}

/// A comparison of the watched value with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// Whether `value op threshold` holds (never for NaN).
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => !value.is_nan() && value != threshold,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// How long a condition must hold before the alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    /// This many consecutive analysis windows (`"3 windows"`).
    Windows(u32),
    /// This long (`"10m"`).
    Duration(Duration),
}

impl Default for For {
    fn default() -> Self {
        For::Duration(Duration::ZERO)
    }
}

impl Serialize for For {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            For::Windows(n) => s.serialize_str(&format!("{n} windows")),
            For::Duration(d) => units::duration::serialize(d, s),
        }
    }
}

impl<'de> Deserialize<'de> for For {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        if let Some(n) = t.strip_suffix("windows").or_else(|| t.strip_suffix("window")) {
            return n.trim().parse().map(For::Windows).map_err(|_| {
                serde::de::Error::custom(format!("`{text}`: expected a count of windows like \"3 windows\""))
            });
        }
        units::parse_duration(t)
            .map(For::Duration)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or a count of windows like \"3 windows\"")))
    }
}

/// `[[alerts.rules]]`: one alert rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert's name (label `alertname`); unique among rules.
    pub name: String,
    /// Models the rule applies to; empty means every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// The watched series.
    pub watch: Watch,
    /// For per-feature series: the feature, or `"*"` (default) for each feature separately.
    /// Here and in `metric`, `kind` and `check`, `a|b` matches either.
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub feature: String,
    /// For performance series: the metric (`accuracy`, `f1`, `rmse`, ...), or `"*"` (default).
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub metric: String,
    /// For performance series: `realized` or `estimated`, or `"*"` (default).
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub kind: String,
    /// For `data_quality`: the check (`missing_share`, ...), or `"*"` (default).
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub check: String,
    /// The comparison.
    pub op: Op,
    /// The threshold compared with.
    pub threshold: f64,
    /// How long the condition must hold: `"3 windows"` or a duration. Default `"0s"`.
    #[serde(default, rename = "for")]
    pub for_: For,
    /// How long the alert keeps firing after the condition stops holding. Default `"0s"`.
    #[serde(default, with = "units::duration")]
    pub keep_firing_for: Duration,
    /// Labels added to the alert (e.g. `severity`, `team`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, with `{{ model }}`, `{{ value }}`, `{{ threshold }}`, `{{ feature }}`,
    /// `{{ metric }}`, `{{ kind }}`, `{{ check }}` and `{{ dashboard }}` replaced.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Receivers that get it; empty means every receiver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
}

fn any() -> String {
    "*".into()
}

fn is_any(s: &String) -> bool {
    s == "*"
}

/// The kind of a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// POST of Alertmanager's webhook payload (version 4), signed with HMAC-SHA256.
    Webhook,
    /// POST of the alerts to an Alertmanager's `/api/v2/alerts`.
    Alertmanager,
    /// A Slack incoming-webhook message.
    Slack,
    /// Email through SMTP.
    Email,
    /// Hands the model to the retraining loop.
    Retrain,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (only for a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// `[[alerts.receivers]]`: where notifications go. Which fields apply depends on `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Name, used by rules' `receivers`.
    pub name: String,
    /// `webhook`, `alertmanager`, `slack`, `email` or `retrain`.
    #[serde(rename = "type")]
    pub kind: ReceiverKind,
    /// webhook, alertmanager, slack, retrain: the URL to POST to (for `retrain`, optional: an
    /// external pipeline's hook; without it the request is queued in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Environment variable holding the URL instead (a Slack webhook URL is a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// webhook, retrain: environment variable holding the HMAC-SHA256 secret; the signature goes
    /// in `X-Anchorwatch-Signature: sha256=<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Timeout of one delivery attempt. Default `"10s"`.
    #[serde(default = "default_timeout", with = "units::duration")]
    pub timeout: Duration,
    /// Whether resolved alerts are notified too. Default `true`.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// email: SMTP server host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// email: SMTP port. Default 25 (`none`), 587 (`starttls`), 465 (`tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// email: `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// email: PEM file of an extra CA certificate to trust (a private relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// email: SMTP user name (AUTH PLAIN/LOGIN); no auth without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// email: environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// email: the From address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// email: the recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn yes() -> bool {
    true
}

/// `[[alerts.inhibit_rules]]`: while an alert matching `source` fires, alerts matching `target`
/// with the same values of the `equal` labels are muted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Labels the muting alert has (e.g. `{ alertname = "AccuracyDrop" }`).
    pub source: BTreeMap<String, String>,
    /// Labels the muted alerts have (e.g. `{ watch = "feature_drifted" }`).
    pub target: BTreeMap<String, String>,
    /// Labels both must share. Default `["model"]`.
    #[serde(default = "model_label")]
    pub equal: Vec<String>,
}

fn model_label() -> Vec<String> {
    vec!["model".into()]
}

/// The built-in rules, the same as the Prometheus rules shipped in
/// `grafana/prometheus/anchorwatch-alerts.yml` (a test holds them together), except
/// `AnchorwatchAnalysisFailing` and `AnchorwatchAnalysisStale`: an analysis that fails or stopped
/// cannot be trusted to report itself, so an outside observer such as Prometheus raises them.
pub fn default_rules() -> Vec<RuleConfig> {
    let rule =
        |name: &str, watch: Watch, op: Op, threshold: f64, for_: Duration, severity: &str, summary: &str| RuleConfig {
            name: name.into(),
            models: Vec::new(),
            watch,
            feature: any(),
            metric: any(),
            kind: any(),
            check: any(),
            op,
            threshold,
            for_: For::Duration(for_),
            keep_firing_for: Duration::ZERO,
            labels: [("severity".to_string(), severity.to_string()), ("team".to_string(), "ml".to_string())]
                .into_iter()
                .collect(),
            annotations: [
                ("summary".to_string(), summary.to_string()),
                ("dashboard".to_string(), "{{ dashboard }}".to_string()),
            ]
            .into_iter()
            .collect(),
            receivers: Vec::new(),
        };
    let m15 = Duration::from_secs(900);
    let mut rules = vec![
        rule(
            "AnchorwatchDatasetDrift",
            Watch::DatasetDriftShare,
            Op::Ge,
            0.5,
            m15,
            "warning",
            "{{ model }}: {{ value }} of the features drifted",
        ),
        rule(
            "AnchorwatchFeatureDrift",
            Watch::FeatureDrifted,
            Op::Eq,
            1.0,
            m15,
            "info",
            "{{ model }}: feature {{ feature }} drifted",
        ),
        rule(
            "AnchorwatchPerformanceBreached",
            Watch::PerformanceThresholdBreached,
            Op::Eq,
            1.0,
            m15,
            "critical",
            "{{ model }}: realized {{ metric }} is outside its threshold",
        ),
        rule(
            "AnchorwatchEstimatedPerformanceBreached",
            Watch::PerformanceThresholdBreached,
            Op::Eq,
            1.0,
            m15,
            "warning",
            "{{ model }}: estimated {{ metric }} is outside its threshold",
        ),
        rule(
            "AnchorwatchPerformanceDecay",
            Watch::PerformanceDecayRatio,
            Op::Lt,
            0.9,
            m15,
            "critical",
            "{{ model }}: {{ metric }} is at {{ value }} of the reference's",
        ),
        rule(
            "AnchorwatchMissingValues",
            Watch::DataQuality,
            Op::Gt,
            0.2,
            m15,
            "warning",
            "{{ model }}: {{ value }} of {{ feature }} is missing",
        ),
        rule(
            "AnchorwatchIngestRejections",
            Watch::IngestRejected,
            Op::Gt,
            0.0,
            Duration::ZERO,
            "warning",
            "{{ model }}: {{ value }} ingest requests refused",
        ),
    ];
    rules[2].kind = "realized".into();
    rules[3].kind = "estimated".into();
    rules[4].metric = HIGHER_IS_BETTER.join("|");
    rules[5].check = "missing_share".into();
    rules
}

/// Metrics whose higher values are better; the decay rule watches only these.
pub const HIGHER_IS_BETTER: &[&str] = &["accuracy", "precision", "recall", "f1", "roc_auc", "r2"];

impl AlertsConfig {
    /// Checks names and references; the error names the field.
    pub fn validate(&self, models: &[&str]) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let at = format!("alerts.receivers[{i}]");
            if !names.insert(r.name.as_str()) {
                return Err(format!("{at}.name: `{}` is declared twice", r.name));
            }
            let need = |field: &str, present: bool| {
                if present { Ok(()) } else { Err(format!("{at}.{field}: required for a {:?} receiver", r.kind)) }
            };
            match r.kind {
                ReceiverKind::Webhook | ReceiverKind::Alertmanager | ReceiverKind::Slack => {
                    need("url", r.url.is_some() || r.url_env.is_some())?
                }
                ReceiverKind::Email => {
                    need("smtp_host", r.smtp_host.is_some())?;
                    need("from", r.from.is_some())?;
                    need("to", !r.to.is_empty())?;
                }
                ReceiverKind::Retrain => {}
            }
            if r.url.is_some() && r.url_env.is_some() {
                return Err(format!("{at}: give `url` or `url_env`, not both"));
            }
        }
        let mut rules = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("alerts.rules[{i}]");
            if rule.name.is_empty() || !rules.insert(rule.name.as_str()) {
                return Err(format!("{at}.name: `{}` is empty or declared twice", rule.name));
            }
            if let Some(m) = rule.models.iter().find(|m| !models.contains(&m.as_str())) {
                return Err(format!("{at}.models: `{m}` is not a declared model"));
            }
            if let Some(r) = rule.receivers.iter().find(|r| !names.contains(r.as_str())) {
                return Err(format!("{at}.receivers: `{r}` is not a declared receiver"));
            }
            if !rule.threshold.is_finite() {
                return Err(format!("{at}.threshold: must be a finite number"));
            }
            if rule.for_ == For::Windows(0) {
                return Err(format!("{at}.for: a count of windows must be at least 1"));
            }
        }
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            if r.source.is_empty() || r.target.is_empty() {
                return Err(format!("alerts.inhibit_rules[{i}]: `source` and `target` need at least one label each"));
            }
        }
        if self.retry.max_attempts == 0 {
            return Err("alerts.retry.max_attempts: must be at least 1".into());
        }
        Ok(())
    }

    /// The rules in force: the configured ones, then the defaults whose names are not taken.
    pub fn effective_rules(&self) -> Vec<RuleConfig> {
        let mut rules = self.rules.clone();
        if self.default_rules {
            let taken: std::collections::BTreeSet<String> = rules.iter().map(|r| r.name.clone()).collect();
            rules.extend(default_rules().into_iter().filter(|r| !taken.contains(&r.name)));
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each default rule has its Prometheus twin: same name, same comparison and threshold over
    /// the same series, same `for` and severity.
    #[test]
    fn default_rules_match_the_shipped_prometheus_rules() {
        let yml = include_str!("../../grafana/prometheus/anchorwatch-alerts.yml");
        let blocks: Vec<&str> = yml.split("- alert: ").skip(1).collect();
        let names: Vec<&str> = blocks.iter().map(|b| b.lines().next().unwrap().trim()).collect();
        let rules = default_rules();
        let mut expected: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        expected.extend(["AnchorwatchAnalysisFailing", "AnchorwatchAnalysisStale"]);
        assert_eq!(names, expected);
        for (rule, block) in rules.iter().zip(&blocks) {
            let field = |key: &str| {
                block.lines().find_map(|l| l.trim().strip_prefix(key)).map(str::trim).unwrap_or("").to_string()
            };
            let expr = field("expr:");
            assert!(
                expr.contains(
                    &format!("anchorwatch_{}", rule.watch.as_str())
                        .replace("_ingest_rejected", "_ingest_rejected_total")
                ),
                "{}: {expr}",
                rule.name
            );
            let threshold = if rule.threshold == rule.threshold.trunc() {
                format!("{}", rule.threshold as i64)
            } else {
                rule.threshold.to_string()
            };
            assert!(expr.ends_with(&format!("{} {threshold}", rule.op.as_str())), "{}: {expr}", rule.name);
            for (label, selector) in [("kind", &rule.kind), ("check", &rule.check)] {
                if selector != "*" {
                    assert!(expr.contains(&format!("{label}=\"{selector}\"")), "{}: {expr}", rule.name);
                }
            }
            if rule.metric != "*" {
                assert!(expr.contains(&format!("metric=~\"{}\"", rule.metric)), "{}: {expr}", rule.name);
            }
            let for_ = match rule.for_ {
                For::Duration(d) if d.is_zero() => String::new(),
                For::Duration(d) => format!("{}m", d.as_secs() / 60),
                For::Windows(_) => panic!("Prometheus has no windows"),
            };
            assert_eq!(field("for:"), for_, "{}", rule.name);
            assert_eq!(field("severity:"), rule.labels["severity"], "{}", rule.name);
        }
    }

    #[test]
    fn for_reads_windows_and_durations() {
        let read = |s: &str| -> Result<For, String> {
            toml::from_str::<std::collections::BTreeMap<String, For>>(&format!("f = \"{s}\""))
                .map(|m| m["f"])
                .map_err(|e| e.to_string())
        };
        assert_eq!(read("3 windows").unwrap(), For::Windows(3));
        assert_eq!(read("1 window").unwrap(), For::Windows(1));
        assert_eq!(read("15m").unwrap(), For::Duration(Duration::from_secs(900)));
        assert!(read("many windows").unwrap_err().contains("count of windows"));
        assert!(read("15").unwrap_err().contains("no unit"));
    }
}
