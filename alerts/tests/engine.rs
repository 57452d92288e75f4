//! The engine with real receivers on loopback: repeat_interval, silences, inhibition, and a
//! receiver that fails and then recovers, across a restart of the engine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anchorwatch_alerts::config::{AlertsConfig, InhibitRule, ReceiverConfig, ReceiverKind, RuleConfig};
use anchorwatch_alerts::config::{For, Op, Watch};
use anchorwatch_alerts::engine::{Engine, SilenceRequest};
use anchorwatch_alerts::notify::RetrainHook;
use anchorwatch_alerts::{Notification, Observation, Sample};
use anchorwatch_collector::store::Store;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;

/// A webhook receiver that answers with the given statuses in turn (then 200), recording bodies.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
}

async fn receiver(statuses: Vec<u16>) -> Receiver {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = bodies.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (recorded, calls, statuses) = (recorded.clone(), calls.clone(), statuses.clone());
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(n).copied().unwrap_or(200);
            if status == 200 {
                recorded.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            }
            (axum::http::StatusCode::from_u16(status).unwrap(), format!("answer {n}: status {status}"))
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { addr, bodies }
}

impl Receiver {
    fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

struct NoRetrain;

impl RetrainHook for NoRetrain {
    fn request(&self, _: &str, _: &Notification) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Err("no retraining in this test".to_string()) })
    }
}

fn rule(name: &str, watch: Watch, op: Op, threshold: f64) -> RuleConfig {
    let mut r = anchorwatch_alerts::config::default_rules().remove(0);
    r.name = name.into();
    r.watch = watch;
    r.op = op;
    r.threshold = threshold;
    r.for_ = For::Windows(1);
    r.labels = [("severity".to_string(), "page".to_string())].into_iter().collect();
    r.annotations =
        [("summary".to_string(), "{{ model }} {{ feature }} at {{ value }}".to_string())].into_iter().collect();
    r
}

fn webhook(name: &str, addr: SocketAddr) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        kind: ReceiverKind::Webhook,
        url: Some(format!("http://{addr}/hook")),
        url_env: None,
        secret_env: None,
        timeout: Duration::from_secs(5),
        send_resolved: true,
        smtp_host: None,
        smtp_port: None,
        tls: Default::default(),
        ca_file: None,
        username: None,
        password_env: None,
        from: None,
        to: Vec::new(),
    }
}

fn config(rules: Vec<RuleConfig>, receivers: Vec<ReceiverConfig>) -> AlertsConfig {
    let mut c = AlertsConfig { default_rules: false, rules, receivers, ..Default::default() };
    c.retry.initial_backoff = Duration::from_millis(50);
    c.retry.max_backoff = Duration::from_millis(200);
    c
}

struct Running {
    engine: Arc<Engine>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    registry: prometheus::Registry,
}

async fn start(config: AlertsConfig, store: &Store) -> Running {
    let registry = prometheus::Registry::new();
    let engine = Engine::open(config, store.clone(), &registry, Arc::new(NoRetrain)).await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(engine.clone().deliver(stopped));
    Running { engine, stop, task, registry }
}

impl Running {
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }

    fn counter(&self, receiver: &str, outcome: &str) -> u64 {
        let text = {
            let mut out = String::new();
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out).unwrap();
            out
        };
        let line = format!("anchorwatch_notifications_total{{outcome=\"{outcome}\",receiver=\"{receiver}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |v| v.parse().unwrap())
    }

    async fn queued(&self) -> usize {
        self.engine.history(10_000).await.iter().filter(|e| e.event == "queued").count()
    }
}

const MIN: i64 = 60_000_000;

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn drift(model: &str, at: i64, window: i64, share: f64) -> Observation {
    Observation {
        model: model.into(),
        at,
        window: Some(window),
        samples: vec![Sample::new(Watch::DatasetDriftShare, &[], share)],
    }
}

async fn wait_for(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !ready().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn repeat_interval_reminds_a_still_firing_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let hook = receiver(vec![]).await;
    let mut c = config(vec![rule("Drift", Watch::DatasetDriftShare, Op::Ge, 0.5)], vec![webhook("hook", hook.addr)]);
    c.repeat_interval = Duration::from_secs(3600);
    let run = start(c, &store).await;
    let t0 = now();
    run.engine.observe(&drift("m", t0, 0, 0.8)).await.unwrap();
    assert_eq!(run.queued().await, 1);
    // Still firing, within the repeat interval, in later windows: nothing new to say.
    for (i, minutes) in [10, 30, 59].iter().enumerate() {
        run.engine.observe(&drift("m", t0 + minutes * MIN, i as i64 + 1, 0.8)).await.unwrap();
    }
    assert_eq!(run.queued().await, 1);
    // An hour after the last message: a reminder.
    run.engine.observe(&drift("m", t0 + 61 * MIN, 5, 0.8)).await.unwrap();
    assert_eq!(run.queued().await, 2);
    run.engine.observe(&drift("m", t0 + 90 * MIN, 6, 0.8)).await.unwrap();
    assert_eq!(run.queued().await, 2);
    wait_for("two deliveries", async || hook.received().len() == 2).await;
    let bodies = hook.received();
    assert!(bodies.iter().all(|b| b["status"] == "firing" && b["alerts"].as_array().unwrap().len() == 1));
    assert_eq!(bodies[0]["alerts"][0]["fingerprint"], bodies[1]["alerts"][0]["fingerprint"]);
    run.shutdown().await;
}

#[tokio::test]
async fn silences_mute_until_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let hook = receiver(vec![]).await;
    let run = start(
        config(vec![rule("Drift", Watch::DatasetDriftShare, Op::Ge, 0.5)], vec![webhook("hook", hook.addr)]),
        &store,
    )
    .await;
    let silence = run
        .engine
        .silence(SilenceRequest {
            matchers: [("alertname".to_string(), "Drift".to_string()), ("model".to_string(), "m|n".to_string())]
                .into_iter()
                .collect(),
            ends_at: None,
            duration: Some("1h".into()),
            comment: "known data migration".into(),
            created_by: "test".into(),
        })
        .await
        .unwrap();
    let t0 = now();
    run.engine.observe(&drift("m", t0, 0, 0.9)).await.unwrap();
    run.engine.observe(&drift("other", t0, 0, 0.9)).await.unwrap();
    // The silenced model's alert fires, shows its silence, and is not sent; the other one is.
    let alerts = run.engine.alerts().await;
    let m = alerts.iter().find(|a| a.labels["model"] == "m").unwrap();
    assert_eq!(m.silenced_by, [silence.id.clone()]);
    assert_eq!(run.queued().await, 1);
    wait_for("the unsilenced model's notification", async || hook.received().len() == 1).await;
    assert_eq!(hook.received()[0]["groupLabels"]["model"], "other");
    // The silence ends while the alert still fires: now it is sent.
    assert!(run.engine.expire_silence(&silence.id).await.unwrap());
    run.engine.observe(&drift("m", now(), 1, 0.9)).await.unwrap();
    assert_eq!(run.queued().await, 2);
    wait_for("the notification after the silence", async || hook.received().len() == 2).await;
    assert_eq!(hook.received()[1]["groupLabels"]["model"], "m");
    // Silences survive a restart.
    run.shutdown().await;
    let run = start(config(vec![], vec![]), &store).await;
    let silences = run.engine.silences().await;
    assert_eq!(silences.len(), 1);
    assert!(!silences[0].1, "the expired silence stays listed as inactive");
    run.shutdown().await;
}

#[tokio::test]
async fn a_performance_alert_inhibits_the_drift_alerts_of_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let hook = receiver(vec![]).await;
    let mut accuracy = rule("AccuracyDrop", Watch::ModelPerformance, Op::Lt, 0.7);
    accuracy.metric = "accuracy".into();
    accuracy.kind = "realized".into();
    let feature = rule("FeatureDrift", Watch::FeatureDrifted, Op::Eq, 1.0);
    let mut c = config(vec![accuracy, feature], vec![webhook("hook", hook.addr)]);
    c.inhibit_rules.push(InhibitRule {
        source: [("alertname".to_string(), "AccuracyDrop".to_string())].into_iter().collect(),
        target: [("alertname".to_string(), "FeatureDrift".to_string())].into_iter().collect(),
        equal: vec!["model".into()],
    });
    let run = start(c, &store).await;
    let obs = |model: &str, accuracy: f64| Observation {
        model: model.into(),
        at: now(),
        window: Some(0),
        samples: vec![
            Sample::new(Watch::ModelPerformance, &[("metric", "accuracy"), ("kind", "realized")], accuracy),
            Sample::new(Watch::FeatureDrifted, &[("feature", "age")], 1.0),
            Sample::new(Watch::FeatureDrifted, &[("feature", "income")], 0.0),
        ],
    };
    run.engine.observe(&obs("m", 0.55)).await.unwrap();
    run.engine.observe(&obs("n", 0.95)).await.unwrap();
    wait_for("two notifications", async || hook.received().len() == 2).await;
    let by_model: BTreeMap<String, Vec<String>> = hook
        .received()
        .iter()
        .map(|b| {
            let names =
                b["alerts"].as_array().unwrap().iter().map(|a| a["labels"]["alertname"].as_str().unwrap().to_string());
            (b["groupLabels"]["model"].as_str().unwrap().to_string(), names.collect())
        })
        .collect();
    assert_eq!(by_model["m"], ["AccuracyDrop"], "the drift alert of m is inhibited");
    assert_eq!(by_model["n"], ["FeatureDrift"], "n has no performance alert, so its drift alert goes out");
    let alerts = run.engine.alerts().await;
    let inhibited: Vec<(&str, &str)> = alerts
        .iter()
        .filter(|a| a.inhibited)
        .map(|a| (a.labels["model"].as_str(), a.labels["alertname"].as_str()))
        .collect();
    assert_eq!(inhibited, [("m", "FeatureDrift")]);
    assert_eq!(
        alerts.iter().find(|a| a.labels["alertname"] == "FeatureDrift" && a.labels["model"] == "m").unwrap().labels["feature"],
        "age"
    );
    run.shutdown().await;
}

#[tokio::test]
async fn a_failing_receiver_is_retried_across_a_restart_and_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    // Three failures: two before the restart (at most), the rest after.
    let hook = receiver(vec![500, 503, 502]).await;
    let rules = vec![rule("Drift", Watch::DatasetDriftShare, Op::Ge, 0.5)];
    let run = start(config(rules.clone(), vec![webhook("hook", hook.addr)]), &store).await;
    run.engine.observe(&drift("m", now(), 0, 0.9)).await.unwrap();
    wait_for("a failed attempt", async || run.counter("hook", "failed") >= 1).await;
    let history = run.engine.history(100).await;
    let failed = history.iter().find(|e| e.event == "delivery_failed").unwrap();
    let message = failed.message.as_deref().unwrap();
    assert!(message.contains("500") && message.contains("answer 0"), "the receiver's answer is kept: {message}");
    run.shutdown().await;

    // After the restart the queued notification is still there, and goes out once.
    let run = start(config(rules, vec![webhook("hook", hook.addr)]), &store).await;
    wait_for("the delivery", async || hook.received().len() == 1 && run.engine.outbox_len().await == 0).await;
    assert_eq!(hook.received()[0]["status"], "firing");
    let events: Vec<String> = run.engine.history(100).await.iter().map(|e| e.event.clone()).collect();
    assert_eq!(events.iter().filter(|e| *e == "delivered").count(), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "delivery_failed").count(), 3, "{events:?}");
    assert_eq!(run.counter("hook", "delivered"), 1);
    run.shutdown().await;
    assert_eq!(hook.received().len(), 1, "delivered exactly once");
}

#[tokio::test]
async fn a_rejecting_receiver_is_given_up_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let hook = receiver(vec![400]).await;
    let run = start(
        config(vec![rule("Drift", Watch::DatasetDriftShare, Op::Ge, 0.5)], vec![webhook("hook", hook.addr)]),
        &store,
    )
    .await;
    run.engine.observe(&drift("m", now(), 0, 0.9)).await.unwrap();
    wait_for("the drop", async || run.counter("hook", "dropped") == 1).await;
    assert_eq!(run.engine.outbox_len().await, 0);
    assert!(hook.received().is_empty());
    run.shutdown().await;
}
