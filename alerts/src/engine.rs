//! The alert engine: evaluates rules on each observation, mutes what silences and inhibition
//! rules say, groups alerts per model and receiver, and delivers through a persisted outbox.
//!
//! Everything that must survive a restart (alert states, what each receiver was last told, the
//! outbox, silences, the history) is one JSON document in the store, `_alerts/state.json`,
//! replaced atomically after every change and before anything is sent. A notification leaves
//! the outbox only after its receiver accepted it, so a crash can at worst repeat the one message
//! in flight (receivers can deduplicate on `X-Anchorwatch-Notification-Id`), never lose one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anchorwatch_collector::store::Store;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify, watch};

use crate::config::{AlertsConfig, RuleConfig};
use crate::model::{Alert, Notification, State};
use crate::notify::{Notifier, RetrainHook};
use crate::rules::{self, Observation, Tracked, selects};

const STATE_PATH: &str = "_alerts/state.json";

/// Why the engine could not start or persist.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the store failed.
    #[error("alerts store: {0}")]
    Store(String),
    /// The saved state could not be read.
    #[error("alerts state: {0}")]
    State(#[from] serde_json::Error),
    /// A receiver could not be set up (e.g. a secret's variable is not set).
    #[error("{0}")]
    Receiver(String),
    /// A Prometheus metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A silence: alerts whose labels match every matcher are not notified until `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Label → value (or `a|b`) that an alert must all have.
    pub matchers: BTreeMap<String, String>,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// When it ends, RFC 3339.
    pub ends_at: String,
    /// End, µs since the epoch.
    #[serde(skip_serializing)]
    #[serde(default)]
    ends_at_us: i64,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
}

impl Silence {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|(k, v)| selects(v, labels.get(k)))
    }

    fn active(&self, now: i64) -> bool {
        now < self.ends_at_us
    }
}

/// Body of `POST /v1/silences`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// Label → value (or `a|b`); at least one.
    pub matchers: BTreeMap<String, String>,
    /// End time, RFC 3339; or give `duration`.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Length, e.g. `"2h"`; or give `ends_at`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Who.
    #[serde(default)]
    pub created_by: String,
}

/// One entry of the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, RFC 3339.
    pub at: String,
    /// `pending`, `firing`, `resolved`, `inactive` (a pending alert whose condition stopped),
    /// `queued`, `delivered`, `delivery_failed` (will be retried) or `dropped` (given up).
    pub event: String,
    /// The model.
    pub model: String,
    /// The alert's name, for alert events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    /// The alert's fingerprint, for alert events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The value at the time, for alert events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The receiver, for notification events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// The notification's id, for notification events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
    /// The receiver's answer on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An alert as `GET /v1/alerts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// Fingerprint of the labels.
    pub fingerprint: String,
    /// `pending` or `firing`.
    pub state: State,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The watched value at the last evaluation.
    pub value: f64,
    /// When the condition started to hold, RFC 3339.
    pub active_since: String,
    /// When it started firing, RFC 3339.
    pub fired_at: Option<String>,
    /// Silences muting it.
    pub silenced_by: Vec<String>,
    /// Whether an inhibition rule mutes it.
    pub inhibited: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Group {
    /// Fingerprints of the firing alerts the receiver was last told about.
    notified: BTreeSet<String>,
    /// When the group was last notified (µs).
    last_sent: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    notification: Notification,
    attempts: u32,
    next_attempt: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    alerts: BTreeMap<String, Tracked>,
    /// `<receiver>\u{1f}<model>` → what it was told.
    groups: BTreeMap<String, Group>,
    silences: Vec<Silence>,
    outbox: Vec<Queued>,
    history: VecDeque<Event>,
}

/// The engine's Prometheus series.
#[derive(Clone)]
struct Metrics {
    alerts: IntGaugeVec,
    notifications: IntCounterVec,
    outbox: IntGauge,
}

impl Metrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let alerts = IntGaugeVec::new(
            Opts::new("anchorwatch_alerts", "Alerts by state (pending, firing) per model and alert name"),
            &["model", "alertname", "state"],
        )?;
        let notifications = IntCounterVec::new(
            Opts::new(
                "anchorwatch_notifications_total",
                "Notification attempts by receiver and outcome (delivered, failed, dropped)",
            ),
            &["receiver", "outcome"],
        )?;
        let outbox = IntGauge::new("anchorwatch_notification_outbox", "Notifications waiting for delivery")?;
        registry.register(Box::new(alerts.clone()))?;
        registry.register(Box::new(notifications.clone()))?;
        registry.register(Box::new(outbox.clone()))?;
        Ok(Self { alerts, notifications, outbox })
    }
}

/// The alert engine of the whole service.
pub struct Engine {
    config: AlertsConfig,
    rules: Vec<RuleConfig>,
    notifiers: BTreeMap<String, Arc<Notifier>>,
    store: Store,
    state: Mutex<Persisted>,
    wake: Notify,
    metrics: Metrics,
    evaluations: std::sync::Mutex<BTreeMap<String, Evaluations>>,
}

/// When a model's rules were last evaluated, and how often since the start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluations {
    /// Evaluations since the process started.
    pub count: u64,
    /// The last one's time, RFC 3339.
    pub last: String,
    /// The newest analysis window it looked at (start, RFC 3339).
    pub window: Option<String>,
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn group_key(receiver: &str, model: &str) -> String {
    format!("{receiver}\u{1f}{model}")
}

impl Engine {
    /// Builds the receivers, reads the saved state and registers the metrics.
    pub async fn open(
        config: AlertsConfig,
        store: Store,
        registry: &Registry,
        retrain: Arc<dyn RetrainHook>,
    ) -> Result<Arc<Self>, Error> {
        let notifiers = config
            .receivers
            .iter()
            .map(|r| Ok((r.name.clone(), Arc::new(Notifier::new(r, retrain.clone()).map_err(Error::Receiver)?))))
            .collect::<Result<_, Error>>()?;
        let mut state: Persisted = match store.object_store().get(&Path::from(STATE_PATH)).await {
            Ok(r) => serde_json::from_slice(&r.bytes().await.map_err(|e| Error::Store(e.to_string()))?)?,
            Err(object_store::Error::NotFound { .. }) => Persisted::default(),
            Err(e) => return Err(Error::Store(e.to_string())),
        };
        for s in &mut state.silences {
            s.ends_at_us = parse_time(&s.ends_at).unwrap_or(0);
        }
        let engine = Arc::new(Self {
            rules: config.effective_rules(),
            config,
            notifiers,
            store,
            state: Mutex::new(state),
            wake: Notify::new(),
            metrics: Metrics::register(registry)?,
            evaluations: std::sync::Mutex::default(),
        });
        let state = engine.state.lock().await;
        engine.export(&state);
        if !state.outbox.is_empty() {
            tracing::info!(waiting = state.outbox.len(), "notifications from before the restart will be delivered");
        }
        drop(state);
        Ok(engine)
    }

    /// The rules in force (configured and default).
    pub fn rules(&self) -> &[RuleConfig] {
        &self.rules
    }

    fn dashboard(&self, model: &str) -> String {
        format!("{}/models/{model}", self.config.external_url.trim_end_matches('/'))
    }

    fn rule(&self, name: &str) -> Option<&RuleConfig> {
        self.rules.iter().find(|r| r.name == name)
    }

    async fn persist(&self, state: &Persisted) -> Result<(), Error> {
        let data = serde_json::to_vec(state)?;
        self.store.put(&Path::from(STATE_PATH), data.into()).await.map_err(|e| Error::Store(e.to_string()))
    }

    fn record(&self, state: &mut Persisted, event: Event) {
        state.history.push_back(event);
        while state.history.len() > self.config.history_limit {
            state.history.pop_front();
        }
    }

    /// Evaluates the rules on one observation; queues the notifications it calls for and
    /// persists before returning.
    pub async fn observe(&self, obs: &Observation) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        let dashboard = self.dashboard(&obs.model);
        let transitions = rules::evaluate(&self.rules, obs, &dashboard, &mut state.alerts);
        for t in &transitions {
            let event = Event {
                at: rfc3339(obs.at),
                event: t.to.map_or("inactive", State::as_str).into(),
                model: obs.model.clone(),
                alertname: Some(t.rule.clone()),
                fingerprint: Some(t.fingerprint.clone()),
                value: Some(t.value),
                receiver: None,
                notification_id: None,
                message: None,
            };
            tracing::info!(model = %obs.model, alert = ?event.alertname, state = %event.event, "alert state changed");
            self.record(&mut state, event);
        }
        let muted = self.muted(&state, obs.at);
        for notifier in self.notifiers.values() {
            self.plan(&mut state, notifier, obs, &muted);
        }
        state.alerts.retain(|_, a| !(a.model == obs.model && a.state == State::Resolved));
        state.silences.retain(|s| s.active(obs.at) || obs.at - s.ends_at_us < 7 * 24 * 3_600_000_000);
        self.persist(&state).await?;
        self.export(&state);
        if !state.outbox.is_empty() {
            self.wake.notify_one();
        }
        let mut evaluations = self.evaluations.lock().expect("not poisoned");
        let e = evaluations.entry(obs.model.clone()).or_default();
        e.count += 1;
        e.last = rfc3339(obs.at);
        e.window = obs.window.map(rfc3339);
        Ok(())
    }

    /// Per model: how often and when its rules were evaluated.
    pub fn evaluations(&self) -> BTreeMap<String, Evaluations> {
        self.evaluations.lock().expect("not poisoned").clone()
    }

    /// Fingerprints muted by an active silence or an inhibition rule.
    fn muted(&self, state: &Persisted, now: i64) -> BTreeSet<String> {
        state
            .alerts
            .iter()
            .filter(|(fp, a)| !self.silenced_by(state, a, now).is_empty() || self.inhibited(state, fp, a))
            .map(|(fp, _)| fp.clone())
            .collect()
    }

    fn silenced_by(&self, state: &Persisted, a: &Tracked, now: i64) -> Vec<String> {
        state.silences.iter().filter(|s| s.active(now) && s.matches(&a.labels)).map(|s| s.id.clone()).collect()
    }

    fn inhibited(&self, state: &Persisted, fp: &str, target: &Tracked) -> bool {
        let matches = |m: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
            m.iter().all(|(k, v)| selects(v, labels.get(k)))
        };
        self.config.inhibit_rules.iter().filter(|r| matches(&r.target, &target.labels)).any(|r| {
            state.alerts.iter().any(|(sfp, source)| {
                sfp != fp
                    && source.state == State::Firing
                    && matches(&r.source, &source.labels)
                    && r.equal.iter().all(|l| source.labels.get(l) == target.labels.get(l))
            })
        })
    }

    /// Decides whether `notifier` must hear about `obs.model`'s group now, and queues it.
    fn plan(&self, state: &mut Persisted, notifier: &Notifier, obs: &Observation, muted: &BTreeSet<String>) {
        let routed = |a: &Tracked| {
            a.model == obs.model
                && self
                    .rule(&a.rule)
                    .is_none_or(|r| r.receivers.is_empty() || r.receivers.iter().any(|n| n == notifier.name()))
        };
        let firing: BTreeSet<String> = state
            .alerts
            .iter()
            .filter(|(fp, a)| routed(a) && a.state == State::Firing && !muted.contains(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        let key = group_key(notifier.name(), &obs.model);
        let group = state.groups.get(&key).cloned().unwrap_or_default();
        let resolved: Vec<String> = state
            .alerts
            .iter()
            .filter(|(fp, a)| a.state == State::Resolved && routed(a) && group.notified.contains(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        let new = firing.iter().any(|fp| !group.notified.contains(fp));
        let reminder = !firing.is_empty() && obs.at - group.last_sent >= self.config.repeat_interval.as_micros() as i64;
        let tell_resolved = !resolved.is_empty() && notifier.send_resolved();
        let mut group = Group { notified: firing.clone(), last_sent: group.last_sent };
        if new || reminder || tell_resolved {
            let mut alerts: Vec<Alert> = firing.iter().map(|fp| self.alert(fp, &state.alerts[fp])).collect();
            if notifier.send_resolved() {
                alerts.extend(resolved.iter().map(|fp| self.alert(fp, &state.alerts[fp])));
            }
            let notification = Notification {
                id: uuid::Uuid::now_v7().to_string(),
                receiver: notifier.name().into(),
                model: obs.model.clone(),
                group_key: format!("{{}}:{{model=\"{}\"}}", obs.model),
                status: if firing.is_empty() { State::Resolved } else { State::Firing },
                alerts,
                external_url: self.config.external_url.clone(),
                dashboard_url: self.dashboard(&obs.model),
            };
            let event = Event {
                at: rfc3339(obs.at),
                event: "queued".into(),
                model: obs.model.clone(),
                alertname: None,
                fingerprint: None,
                value: None,
                receiver: Some(notifier.name().into()),
                notification_id: Some(notification.id.clone()),
                message: Some(format!("{} with {} alerts", notification.status.as_str(), notification.alerts.len())),
            };
            self.record(state, event);
            state.outbox.push(Queued { notification, attempts: 0, next_attempt: 0 });
            group.last_sent = obs.at;
        }
        if group.notified.is_empty() {
            state.groups.remove(&key);
        } else {
            state.groups.insert(key, group);
        }
    }

    fn alert(&self, fp: &str, a: &Tracked) -> Alert {
        Alert {
            fingerprint: fp.into(),
            status: if a.state == State::Resolved { State::Resolved } else { State::Firing },
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: rfc3339(a.fired_at.unwrap_or(a.active_since)),
            ends_at: a.resolved_at.map(rfc3339),
            value: a.value,
            generator_url: self.dashboard(&a.model),
        }
    }

    fn export(&self, state: &Persisted) {
        self.metrics.alerts.reset();
        for a in state.alerts.values().filter(|a| a.state != State::Resolved) {
            self.metrics.alerts.with_label_values(&[a.model.as_str(), a.rule.as_str(), a.state.as_str()]).inc();
        }
        self.metrics.outbox.set(state.outbox.len() as i64);
    }

    /// The current alerts (pending and firing), each with what mutes it.
    pub async fn alerts(&self) -> Vec<AlertView> {
        let state = self.state.lock().await;
        let now = now_us();
        state
            .alerts
            .iter()
            .filter(|(_, a)| a.state != State::Resolved)
            .map(|(fp, a)| AlertView {
                fingerprint: fp.clone(),
                state: a.state,
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                value: a.value,
                active_since: rfc3339(a.active_since),
                fired_at: a.fired_at.map(rfc3339),
                silenced_by: self.silenced_by(&state, a, now),
                inhibited: self.inhibited(&state, fp, a),
            })
            .collect()
    }

    /// The newest `limit` history events, oldest first.
    pub async fn history(&self, limit: usize) -> Vec<Event> {
        let state = self.state.lock().await;
        let skip = state.history.len().saturating_sub(limit);
        state.history.iter().skip(skip).cloned().collect()
    }

    /// Notifications waiting for delivery.
    pub async fn outbox_len(&self) -> usize {
        self.state.lock().await.outbox.len()
    }

    /// Adds a silence; the error says which field is wrong.
    pub async fn silence(&self, req: SilenceRequest) -> Result<Silence, String> {
        if req.matchers.is_empty() {
            return Err("matchers: give at least one label, e.g. {\"model\": \"churn\"}".into());
        }
        let now = now_us();
        let ends_at_us = match (&req.ends_at, &req.duration) {
            (Some(t), None) => parse_time(t)
                .ok_or_else(|| format!("ends_at: `{t}` is not an RFC 3339 time like 2026-01-01T00:00:00Z"))?,
            (None, Some(d)) => {
                now + anchorwatch_collector::config::units::parse_duration(d)
                    .map_err(|e| format!("duration: {e}"))?
                    .as_micros() as i64
            }
            _ => return Err("give one of ends_at (RFC 3339) or duration (e.g. \"2h\")".into()),
        };
        if ends_at_us <= now {
            return Err("ends_at: the silence would end in the past".into());
        }
        let silence = Silence {
            id: uuid::Uuid::now_v7().to_string(),
            matchers: req.matchers,
            created_at: rfc3339(now),
            ends_at: rfc3339(ends_at_us),
            ends_at_us,
            comment: req.comment,
            created_by: req.created_by,
        };
        let mut state = self.state.lock().await;
        state.silences.push(silence.clone());
        self.persist(&state).await.map_err(|e| e.to_string())?;
        Ok(silence)
    }

    /// The silences, active first.
    pub async fn silences(&self) -> Vec<(Silence, bool)> {
        let state = self.state.lock().await;
        let now = now_us();
        let mut out: Vec<(Silence, bool)> = state.silences.iter().map(|s| (s.clone(), s.active(now))).collect();
        out.sort_by_key(|(s, active)| (!active, s.ends_at_us));
        out
    }

    /// Ends a silence now; false when there is no such silence.
    pub async fn expire_silence(&self, id: &str) -> Result<bool, String> {
        let mut state = self.state.lock().await;
        let now = now_us();
        let Some(s) = state.silences.iter_mut().find(|s| s.id == id) else { return Ok(false) };
        if s.active(now) {
            s.ends_at_us = now;
            s.ends_at = rfc3339(now);
        }
        self.persist(&state).await.map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Delivers the outbox until `stop` turns true: due notifications are sent, together; a
    /// failure is retried with exponential backoff up to `retry.max_attempts`.
    pub async fn deliver(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let (due, next) = {
                let state = self.state.lock().await;
                let now = now_us();
                let due: Vec<Notification> =
                    state.outbox.iter().filter(|q| q.next_attempt <= now).map(|q| q.notification.clone()).collect();
                let next = state.outbox.iter().map(|q| q.next_attempt).filter(|t| *t > now).min();
                (due, next)
            };
            if !due.is_empty() {
                let sends = due.iter().map(|n| {
                    let notifier = self.notifiers.get(&n.receiver).cloned();
                    async move {
                        match notifier {
                            Some(notifier) => notifier.send(n).await.map_err(|e| (e.message, e.retryable)),
                            None => Err(("the receiver is no longer configured".to_string(), false)),
                        }
                    }
                });
                let results = futures::future::join_all(sends).await;
                if let Err(e) = self.settle(&due, results).await {
                    tracing::error!(error = %e, "could not save the outbox; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
            let wait = next.map_or(Duration::from_secs(3600), |t| Duration::from_micros((t - now_us()).max(0) as u64));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn settle(&self, sent: &[Notification], results: Vec<Result<(), (String, bool)>>) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        let now = now_us();
        for (n, result) in sent.iter().zip(results) {
            let Some(i) = state.outbox.iter().position(|q| q.notification.id == n.id) else { continue };
            let attempts = state.outbox[i].attempts + 1;
            let (event, message) = match result {
                Ok(()) => {
                    state.outbox.remove(i);
                    tracing::info!(receiver = %n.receiver, model = %n.model, id = %n.id, status = n.status.as_str(), "notification delivered");
                    ("delivered", None)
                }
                Err((message, retryable)) if retryable && attempts < self.config.retry.max_attempts => {
                    let backoff = self
                        .config
                        .retry
                        .initial_backoff
                        .saturating_mul(1u32 << (attempts - 1).min(20))
                        .min(self.config.retry.max_backoff);
                    state.outbox[i].attempts = attempts;
                    state.outbox[i].next_attempt = now + backoff.as_micros() as i64;
                    tracing::warn!(receiver = %n.receiver, model = %n.model, id = %n.id, attempts, retry_in = ?backoff, answer = %message, "notification failed; will retry");
                    ("delivery_failed", Some(message))
                }
                Err((message, _)) => {
                    state.outbox.remove(i);
                    tracing::error!(receiver = %n.receiver, model = %n.model, id = %n.id, attempts, answer = %message, "notification dropped");
                    ("dropped", Some(message))
                }
            };
            let outcome = if event == "delivery_failed" { "failed" } else { event };
            self.metrics.notifications.with_label_values(&[n.receiver.as_str(), outcome]).inc();
            if event == "dropped" {
                self.metrics.notifications.with_label_values(&[n.receiver.as_str(), "failed"]).inc();
            }
            let e = Event {
                at: rfc3339(now),
                event: event.into(),
                model: n.model.clone(),
                alertname: None,
                fingerprint: None,
                value: None,
                receiver: Some(n.receiver.clone()),
                notification_id: Some(n.id.clone()),
                message,
            };
            self.record(&mut state, e);
        }
        self.persist(&state).await?;
        self.export(&state);
        Ok(())
    }
}

fn parse_time(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_micros())
}
