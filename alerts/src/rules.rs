//! Rule evaluation: observations in, alert instances with their state out. Pure, clock-free (the
//! time is the observation's), so every transition can be tested exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{For, RuleConfig, Watch};
use crate::model::State;

/// One figure of a model's newest window (or of the collector), like one series on `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The series.
    pub watch: Watch,
    /// Its labels besides `model`: `feature`, `metric`, `kind`, `check`, as the series has them.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample with the given labels.
    pub fn new(watch: Watch, labels: &[(&str, &str)], value: f64) -> Self {
        Self { watch, labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value }
    }
}

/// Everything known about one model at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The model.
    pub model: String,
    /// Evaluation time, µs since the epoch.
    pub at: i64,
    /// Start of the newest analysis window (µs); consecutive-window counts advance when it changes.
    pub window: Option<i64>,
    /// The figures.
    pub samples: Vec<Sample>,
}

/// Whether a selector (`"*"`, a value, or `a|b|c`) accepts a label value.
pub fn selects(selector: &str, value: Option<&String>) -> bool {
    selector == "*" || value.is_some_and(|v| selector.split('|').any(|s| s == v))
}

impl RuleConfig {
    /// Whether the rule applies to `model`.
    pub fn applies_to(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    /// Whether the rule watches this sample.
    pub fn watches(&self, s: &Sample) -> bool {
        s.watch == self.watch
            && [("feature", &self.feature), ("metric", &self.metric), ("kind", &self.kind), ("check", &self.check)]
                .iter()
                .all(|(label, selector)| selects(selector, s.labels.get(*label)))
    }

    /// The alert's labels for a sample: the series' labels, `alertname`, `model`, then the rule's.
    pub fn alert_labels(&self, model: &str, s: &Sample) -> BTreeMap<String, String> {
        let mut labels = s.labels.clone();
        labels.insert("alertname".into(), self.name.clone());
        labels.insert("model".into(), model.into());
        labels.insert("watch".into(), self.watch.as_str().into());
        for (k, v) in &self.labels {
            labels.insert(k.clone(), v.clone());
        }
        labels
    }
}

/// A stable 16-hex-digit fingerprint of a label set (FNV-1a 64 over `k=v` pairs in order).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Fills `{{ name }}` (or `{{name}}`) placeholders from `values`; unknown ones are left as written.
pub fn render(template: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let key = after[..close].trim();
                match values.get(key) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A value as people read it: up to four decimals, no trailing zeros.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "0" || s == "-0" { format!("{v:.3e}") } else { s.to_string() }
}

/// One alert instance's evaluation state (persisted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// The rule's name.
    pub rule: String,
    /// The model.
    pub model: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations as rendered at the last evaluation where the condition held.
    pub annotations: BTreeMap<String, String>,
    /// Pending, firing or resolved.
    pub state: State,
    /// When the condition started to hold (µs).
    pub active_since: i64,
    /// When it started firing (µs).
    pub fired_at: Option<i64>,
    /// When it resolved (µs).
    pub resolved_at: Option<i64>,
    /// The last evaluation at which the condition held (µs).
    pub last_held: i64,
    /// Consecutive windows in which it held.
    pub windows: u32,
    /// The newest window it held in.
    pub last_window: Option<i64>,
    /// The value at the last evaluation where the series existed.
    pub value: f64,
}

/// A state change, for the history and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The rule that raised it.
    pub rule: String,
    /// The watched value at the transition.
    pub value: f64,
    /// The state entered; `None` when a pending alert went back to inactive.
    pub to: Option<State>,
}

/// Evaluates `rules` on one observation, updating `alerts` (keyed by fingerprint, this model's and
/// others'). Pending alerts whose condition stops holding are removed; resolved ones are kept for
/// the caller to notify and then drop.
pub fn evaluate(
    rules: &[RuleConfig],
    obs: &Observation,
    dashboard: &str,
    alerts: &mut BTreeMap<String, Tracked>,
) -> Vec<Transition> {
    let mut transitions = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rule in rules.iter().filter(|r| r.applies_to(&obs.model)) {
        for sample in obs.samples.iter().filter(|s| rule.watches(s)) {
            let labels = rule.alert_labels(&obs.model, sample);
            let fp = fingerprint(&labels);
            seen.insert(fp.clone());
            let holds = rule.op.holds(sample.value, rule.threshold);
            let previous = alerts.get(&fp).filter(|a| a.state != State::Resolved).cloned();
            let next = step(rule, obs, previous, holds, sample.value, dashboard, || Tracked {
                rule: rule.name.clone(),
                model: obs.model.clone(),
                annotations: annotations(rule, &labels, sample.value, &obs.model, dashboard),
                labels: labels.clone(),
                state: State::Pending,
                active_since: obs.at,
                fired_at: None,
                resolved_at: None,
                last_held: obs.at,
                windows: 0,
                last_window: None,
                value: sample.value,
            });
            apply(alerts, &fp, next, &mut transitions);
        }
    }
    // Series missing from this observation (realized accuracy before any label of the window
    // arrived, a metric not computed this time) leave their alerts as they are: no data is not
    // good news. Only alerts of rules removed from the config are resolved.
    let orphaned: Vec<String> = alerts
        .iter()
        .filter(|(fp, a)| a.model == obs.model && a.state != State::Resolved && !seen.contains(*fp))
        .filter(|(_, a)| !rules.iter().any(|r| r.name == a.rule))
        .map(|(fp, _)| fp.clone())
        .collect();
    for fp in orphaned {
        let a = alerts[&fp].clone();
        let next = (a.state == State::Firing).then(|| resolve(a, obs.at));
        apply(alerts, &fp, next, &mut transitions);
    }
    transitions
}

fn resolve(mut a: Tracked, at: i64) -> Tracked {
    a.state = State::Resolved;
    a.resolved_at = Some(at);
    a
}

fn apply(alerts: &mut BTreeMap<String, Tracked>, fp: &str, next: Option<Tracked>, out: &mut Vec<Transition>) {
    let before = alerts.get(fp).map(|a| a.state);
    let after = next.as_ref().map(|a| a.state);
    let changed = match (before, after) {
        (Some(State::Resolved), None) | (None, None) => false,
        (b, a) => b != a,
    };
    if let (true, Some(a)) = (changed, next.as_ref().or(alerts.get(fp))) {
        out.push(Transition { fingerprint: fp.into(), rule: a.rule.clone(), value: a.value, to: after });
    }
    match next {
        Some(a) => {
            alerts.insert(fp.into(), a);
        }
        None => {
            if before != Some(State::Resolved) {
                alerts.remove(fp);
            }
        }
    }
}

/// One alert's next state; `None` is inactive.
fn step(
    rule: &RuleConfig,
    obs: &Observation,
    previous: Option<Tracked>,
    holds: bool,
    value: f64,
    dashboard: &str,
    new: impl FnOnce() -> Tracked,
) -> Option<Tracked> {
    if holds {
        let mut a = previous.unwrap_or_else(new);
        if a.windows == 0 || obs.window != a.last_window {
            a.windows += 1;
            a.last_window = obs.window;
        }
        a.last_held = obs.at;
        a.value = value;
        a.annotations = annotations(rule, &a.labels, value, &obs.model, dashboard);
        let due = match rule.for_ {
            For::Windows(n) => a.windows >= n,
            For::Duration(d) => obs.at - a.active_since >= d.as_micros() as i64,
        };
        if a.state == State::Pending && due {
            a.state = State::Firing;
            a.fired_at = Some(obs.at);
        }
        return Some(a);
    }
    let mut a = previous?;
    a.value = value;
    match a.state {
        State::Pending => None,
        State::Firing if obs.at - a.last_held < rule.keep_firing_for.as_micros() as i64 => {
            // Kept firing; the consecutive-window count restarts when the condition returns.
            a.windows = 0;
            Some(a)
        }
        State::Firing => Some(resolve(a, obs.at)),
        State::Resolved => Some(a),
    }
}

fn annotations(
    rule: &RuleConfig,
    labels: &BTreeMap<String, String>,
    value: f64,
    model: &str,
    dashboard: &str,
) -> BTreeMap<String, String> {
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    values.insert("model", model.into());
    values.insert("value", format_value(value));
    values.insert("threshold", format_value(rule.threshold));
    values.insert("dashboard", dashboard.into());
    for key in ["feature", "metric", "kind", "check"] {
        values.insert(key, labels.get(key).cloned().unwrap_or_default());
    }
    rule.annotations.iter().map(|(k, t)| (k.clone(), render(t, &values))).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Op;

    fn rule(for_: For, keep: u64) -> RuleConfig {
        RuleConfig {
            name: "Drift".into(),
            models: Vec::new(),
            watch: Watch::DatasetDriftShare,
            feature: "*".into(),
            metric: "*".into(),
            kind: "*".into(),
            check: "*".into(),
            op: Op::Ge,
            threshold: 0.5,
            for_,
            keep_firing_for: Duration::from_secs(keep),
            labels: [("severity".to_string(), "page".to_string())].into_iter().collect(),
            annotations: [("summary".to_string(), "{{ model }} at {{ value }} (>= {{ threshold }})".to_string())]
                .into_iter()
                .collect(),
            receivers: Vec::new(),
        }
    }

    fn obs(at_s: i64, window: i64, share: f64) -> Observation {
        Observation {
            model: "m".into(),
            at: at_s * 1_000_000,
            window: Some(window),
            samples: vec![Sample::new(Watch::DatasetDriftShare, &[], share)],
        }
    }

    fn states(alerts: &BTreeMap<String, Tracked>) -> Vec<State> {
        alerts.values().map(|a| a.state).collect()
    }

    #[test]
    fn windows_count_distinct_windows_only() {
        let rules = [rule(For::Windows(2), 0)];
        let mut alerts = BTreeMap::new();
        evaluate(&rules, &obs(0, 0, 0.1), "", &mut alerts);
        assert!(alerts.is_empty());
        let t = evaluate(&rules, &obs(1, 0, 0.6), "", &mut alerts);
        assert_eq!(t.len(), 1);
        assert_eq!(states(&alerts), [State::Pending]);
        // The same window again does not count as a second one.
        assert!(evaluate(&rules, &obs(2, 0, 0.7), "", &mut alerts).is_empty());
        assert_eq!(states(&alerts), [State::Pending]);
        evaluate(&rules, &obs(3, 1, 0.7), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Firing]);
        let a = alerts.values().next().unwrap();
        assert_eq!(a.annotations["summary"], "m at 0.7 (>= 0.5)");
        assert_eq!(a.labels["alertname"], "Drift");
        assert_eq!(a.labels["severity"], "page");
        assert_eq!(a.fired_at, Some(3_000_000));
        evaluate(&rules, &obs(4, 2, 0.1), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Resolved]);
        assert_eq!(alerts.values().next().unwrap().resolved_at, Some(4_000_000));
    }

    #[test]
    fn pending_that_stops_holding_goes_inactive() {
        let rules = [rule(For::Windows(3), 0)];
        let mut alerts = BTreeMap::new();
        evaluate(&rules, &obs(0, 0, 0.9), "", &mut alerts);
        evaluate(&rules, &obs(1, 1, 0.9), "", &mut alerts);
        let t = evaluate(&rules, &obs(2, 2, 0.2), "", &mut alerts);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].rule.as_str(), t[0].to), ("Drift", None));
        assert!(alerts.is_empty());
        // A new streak starts from one.
        evaluate(&rules, &obs(3, 3, 0.9), "", &mut alerts);
        assert_eq!(alerts.values().next().unwrap().windows, 1);
    }

    #[test]
    fn duration_for_and_keep_firing_for() {
        let rules = [rule(For::Duration(Duration::from_secs(60)), 30)];
        let mut alerts = BTreeMap::new();
        evaluate(&rules, &obs(0, 0, 0.9), "", &mut alerts);
        evaluate(&rules, &obs(59, 0, 0.9), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Pending]);
        evaluate(&rules, &obs(60, 0, 0.9), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Firing]);
        // Within keep_firing_for of the last time it held, it keeps firing.
        evaluate(&rules, &obs(80, 0, 0.1), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Firing]);
        evaluate(&rules, &obs(90, 0, 0.1), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Resolved]);
    }

    #[test]
    fn selectors_pick_series_and_label_alerts() {
        let mut r = rule(For::Windows(1), 0);
        r.watch = Watch::FeatureDrifted;
        r.op = Op::Eq;
        r.threshold = 1.0;
        r.feature = "a|b".into();
        r.annotations.insert("summary".into(), "{{ feature }} drifted on {{ model }}".into());
        let o = Observation {
            model: "m".into(),
            at: 0,
            window: Some(0),
            samples: ["a", "b", "c"]
                .iter()
                .map(|f| Sample::new(Watch::FeatureDrifted, &[("feature", f)], 1.0))
                .collect(),
        };
        let mut alerts = BTreeMap::new();
        evaluate(&[r], &o, "", &mut alerts);
        let mut features: Vec<&str> = alerts.values().map(|a| a.labels["feature"].as_str()).collect();
        features.sort();
        assert_eq!(features, ["a", "b"]);
        assert!(alerts.values().all(|a| a.state == State::Firing));
        assert!(alerts.values().any(|a| a.annotations["summary"] == "a drifted on m"));
    }

    #[test]
    fn a_missing_series_leaves_the_alert_as_it_is() {
        let rules = [rule(For::Windows(1), 0)];
        let mut alerts = BTreeMap::new();
        evaluate(&rules, &obs(0, 0, 0.9), "", &mut alerts);
        assert_eq!(states(&alerts), [State::Firing]);
        let empty = Observation { samples: Vec::new(), ..obs(1, 1, 0.0) };
        assert!(evaluate(&rules, &empty, "", &mut alerts).is_empty());
        assert_eq!(states(&alerts), [State::Firing]);
        // A rule removed from the config resolves what it raised.
        let t = evaluate(&[], &empty, "", &mut alerts);
        assert_eq!(t.len(), 1);
        assert_eq!(states(&alerts), [State::Resolved]);
    }

    #[test]
    fn templates_and_values() {
        let values: BTreeMap<&str, String> = [("model", "churn".to_string())].into_iter().collect();
        assert_eq!(render("{{model}} / {{ model }} / {{ other }} / {{", &values), "churn / churn / {{ other }} / {{");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(0.123456), "0.1235");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(1e-7), "1.000e-7");
        let a: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into_iter().collect();
        let b: BTreeMap<String, String> = [("a".to_string(), "2".to_string())].into_iter().collect();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 16);
    }
}
