//! The notifiers against real receivers on loopback: an HTTP server that records every request
//! (webhook, Alertmanager, Slack, retrain), and aiosmtpd as the SMTP server (plain, STARTTLS and
//! implicit TLS, with a certificate made at test time).
//!
//! The SMTP tests need `.venv/bin/python` with aiosmtpd (`make test` installs it from
//! `tests/requirements.txt`). Without it they fail when `CI=true`, and are skipped otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use anchorwatch_alerts::config::ReceiverConfig;
use anchorwatch_alerts::model::{Alert, Notification, State};
use anchorwatch_alerts::notify::{Notifier, RetrainHook};
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-for-tests";
const DASHBOARD: &str = "http://127.0.0.1:8080/models/churn?window=1h&view=<drift>";

/// Every environment variable the tests read, set once before any test reads one (setting
/// variables while other threads read them is not safe).
fn env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs before any test thread reads the environment (every test calls this first).
        unsafe {
            std::env::set_var("ANCHORWATCH_TEST_NOTIFY_SECRET", SECRET);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn alert(name: &str, status: State, value: f64, extra: &[(&str, &str)], summary: &str) -> Alert {
    let mut labels: std::collections::BTreeMap<String, String> =
        [("alertname", name), ("model", "churn"), ("severity", "warning")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Alert {
        fingerprint: format!("{:016x}", name.len()),
        status,
        labels,
        annotations: [("summary".to_string(), summary.to_string())].into_iter().collect(),
        starts_at: "2026-11-25T10:00:00Z".into(),
        ends_at: (status == State::Resolved).then(|| "2026-11-25T11:00:00Z".to_string()),
        value,
        generator_url: "http://127.0.0.1:8080/models/churn".into(),
    }
}

fn notification(status: State) -> Notification {
    Notification {
        id: format!(
            "0193a1b2-c3d4-7e5f-8a9b-{}",
            if status == State::Firing { "000000000001" } else { "000000000002" }
        ),
        receiver: "test".into(),
        model: "churn".into(),
        group_key: "{}:{model=\"churn\"}".into(),
        status,
        alerts: vec![
            alert("AnchorwatchDatasetDrift", status, 0.75, &[], "churn: 0.75 of the features drifted"),
            alert("AnchorwatchFeatureDrift", status, 1.0, &[("feature", "age")], "churn: feature age drifted <&>"),
        ],
        external_url: "http://127.0.0.1:8080".into(),
        dashboard_url: DASHBOARD.into(),
    }
}

/// A receiver config from JSON (the same serde path as the TOML config).
fn receiver(config: Value) -> ReceiverConfig {
    serde_json::from_value(config).expect("valid receiver config")
}

fn notifier(config: Value) -> Notifier {
    env();
    Notifier::new(&receiver(config), Arc::new(RecordingHook::default())).expect("notifier builds")
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// A recording HTTP receiver

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: StatusCode,
    answer: &'static str,
}

struct HttpReceiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpReceiver {
    /// Listens on a free loopback port and answers every request with `status` and `answer`.
    async fn start(status: u16, answer: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared { requests: Arc::default(), status: StatusCode::from_u16(status).unwrap(), answer };
        let requests = shared.requests.clone();
        let app = axum::Router::new().fallback(record).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:?}");
        requests.into_iter().next().unwrap()
    }
}

async fn record(
    AxumState(shared): AxumState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    shared.requests.lock().unwrap().push(Recorded { method, path: uri.path().to_string(), headers, body });
    (shared.status, shared.answer)
}

/// A retrain hook that records its calls, or refuses them.
#[derive(Default)]
struct RecordingHook {
    calls: Mutex<Vec<(String, String)>>,
    refuse: bool,
}

impl RetrainHook for RecordingHook {
    fn request(&self, model: &str, notification: &Notification) -> BoxFuture<'static, Result<(), String>> {
        self.calls.lock().unwrap().push((model.to_string(), notification.id.clone()));
        let result = if self.refuse { Err("the trainer is busy".to_string()) } else { Ok(()) };
        async move { result }.boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP receivers

#[tokio::test]
async fn webhook_posts_the_signed_alertmanager_payload() {
    let server = HttpReceiver::start(200, "").await;
    let n = notifier(json!({
        "name": "hook", "type": "webhook", "url": server.url("/hooks/anchorwatch"),
        "secret_env": "ANCHORWATCH_TEST_NOTIFY_SECRET", "timeout": "5s",
    }));
    assert_eq!(n.name(), "hook");
    assert!(n.send_resolved());
    let sent = notification(State::Firing);
    n.send(&sent).await.expect("delivered");

    let r = server.only_request();
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/hooks/anchorwatch");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("x-anchorwatch-notification-id"), sent.id);
    assert_eq!(r.header("x-anchorwatch-signature"), format!("sha256={}", hmac_hex(SECRET, &r.body)));
    let body = r.json();
    assert_eq!(body, sent.webhook_payload());
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["groupKey"], "{}:{model=\"churn\"}");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "AnchorwatchDatasetDrift");
    assert_eq!(body["commonLabels"]["model"], "churn");
}

#[tokio::test]
async fn webhook_without_secret_is_unsigned() {
    let server = HttpReceiver::start(204, "").await;
    let n = notifier(json!({ "name": "hook", "type": "webhook", "url": server.url("/"), "timeout": "5s" }));
    n.send(&notification(State::Resolved)).await.expect("delivered");
    let r = server.only_request();
    assert!(r.headers.get("x-anchorwatch-signature").is_none());
    assert_eq!(r.json()["status"], "resolved");
}

#[test]
fn missing_environment_variables_are_named() {
    env();
    let hook: Arc<dyn RetrainHook> = Arc::new(RecordingHook::default());
    let build = |config: Value| Notifier::new(&receiver(config), hook.clone()).err().expect("refused");

    let e = build(json!({ "name": "team-slack", "type": "slack", "url_env": "ANCHORWATCH_TEST_NOTIFY_UNSET_URL" }));
    assert!(e.contains("team-slack") && e.contains("ANCHORWATCH_TEST_NOTIFY_UNSET_URL"), "{e}");

    let e = build(json!({
        "name": "signed", "type": "webhook", "url": "http://127.0.0.1:9/", "secret_env": "ANCHORWATCH_TEST_NOTIFY_UNSET_SECRET",
    }));
    assert!(e.contains("signed") && e.contains("ANCHORWATCH_TEST_NOTIFY_UNSET_SECRET"), "{e}");

    let e = build(json!({
        "name": "mail", "type": "email", "smtp_host": "127.0.0.1", "from": "a@example.com", "to": ["b@example.com"],
        "username": "u", "password_env": "ANCHORWATCH_TEST_NOTIFY_UNSET_PASSWORD",
    }));
    assert!(e.contains("mail") && e.contains("ANCHORWATCH_TEST_NOTIFY_UNSET_PASSWORD"), "{e}");
}

#[tokio::test]
async fn alertmanager_gets_api_v2_postable_alerts() {
    let server = HttpReceiver::start(200, "").await;
    // A base URL with a trailing slash, and one with a path prefix and none.
    let root = notifier(json!({ "name": "am", "type": "alertmanager", "url": server.url("/"), "timeout": "5s" }));
    let prefixed =
        notifier(json!({ "name": "am2", "type": "alertmanager", "url": server.url("/am"), "timeout": "5s" }));
    root.send(&notification(State::Firing)).await.expect("delivered");
    prefixed.send(&notification(State::Resolved)).await.expect("delivered");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, Method::POST);
    assert_eq!(requests[0].path, "/api/v2/alerts");
    assert_eq!(requests[1].path, "/am/api/v2/alerts");

    let firing = requests[0].json();
    let alerts = firing.as_array().expect("a JSON array");
    assert_eq!(alerts.len(), 2);
    let a = alerts[1].as_object().unwrap();
    let mut keys: Vec<&str> = a.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["annotations", "generatorURL", "labels", "startsAt"], "firing alerts carry no endsAt");
    assert_eq!(a["labels"]["feature"], "age");
    assert_eq!(a["annotations"]["summary"], "churn: feature age drifted <&>");
    assert_eq!(a["startsAt"], "2026-11-25T10:00:00Z");
    assert_eq!(a["generatorURL"], "http://127.0.0.1:8080/models/churn");

    let resolved = requests[1].json();
    assert_eq!(resolved[0]["endsAt"], "2026-11-25T11:00:00Z");
    assert_eq!(resolved[0]["labels"]["alertname"], "AnchorwatchDatasetDrift");
}

#[tokio::test]
async fn slack_gets_a_block_kit_message() {
    let server = HttpReceiver::start(200, "ok").await;
    let n =
        notifier(json!({ "name": "slack", "type": "slack", "url": server.url("/services/T0/B0/X"), "timeout": "5s" }));
    n.send(&notification(State::Firing)).await.expect("delivered");

    let r = server.only_request();
    assert_eq!(r.path, "/services/T0/B0/X");
    let body = r.json();
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("[FIRING:2] model churn"), "{text}");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "[FIRING:2] model churn");
    let sections: Vec<&str> = blocks[1..].iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
    assert_eq!(sections.len(), 3, "two alerts and the link: {sections:?}");
    assert!(sections[0].contains("AnchorwatchDatasetDrift"), "{}", sections[0]);
    assert!(sections[0].contains("churn: 0.75 of the features drifted"));
    assert!(sections[0].contains("*value* 0.75"));
    assert!(sections[1].contains("AnchorwatchFeatureDrift") && sections[1].contains("*feature* age"));
    assert!(sections[1].contains("drifted &lt;&amp;&gt;"), "mrkdwn is escaped: {}", sections[1]);
    assert!(
        sections[2].contains("http://127.0.0.1:8080/models/churn?window=1h&amp;view=&lt;drift&gt;"),
        "{}",
        sections[2]
    );

    n.send(&notification(State::Resolved)).await.expect("delivered");
    let resolved = server.requests()[1].json();
    assert!(resolved["text"].as_str().unwrap().starts_with("[RESOLVED] model churn"));
}

#[tokio::test]
async fn retrain_posts_to_the_pipeline_when_firing_only() {
    let server = HttpReceiver::start(202, "").await;
    let n = notifier(json!({
        "name": "retrain", "type": "retrain", "url": server.url("/retrain"),
        "secret_env": "ANCHORWATCH_TEST_NOTIFY_SECRET", "timeout": "5s",
    }));
    let firing = notification(State::Firing);
    n.send(&firing).await.expect("delivered");
    n.send(&notification(State::Resolved)).await.expect("a resolved notification is a no-op");

    let r = server.only_request();
    assert_eq!(r.path, "/retrain");
    assert_eq!(r.header("x-anchorwatch-notification-id"), firing.id);
    assert_eq!(r.header("x-anchorwatch-signature"), format!("sha256={}", hmac_hex(SECRET, &r.body)));
    let body = r.json();
    assert_eq!(body["model"], "churn");
    assert_eq!(body["notification_id"], firing.id.as_str());
    assert_eq!(body["reason"], "AnchorwatchDatasetDrift, AnchorwatchFeatureDrift");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(body["alerts"][1]["labels"]["feature"], "age");
}

#[tokio::test]
async fn retrain_without_url_calls_the_hook() {
    env();
    let config = receiver(json!({ "name": "retrain", "type": "retrain" }));
    let hook = Arc::new(RecordingHook::default());
    let n = Notifier::new(&config, hook.clone()).unwrap();
    let firing = notification(State::Firing);
    n.send(&firing).await.expect("handed over");
    n.send(&notification(State::Resolved)).await.expect("a resolved notification is a no-op");
    assert_eq!(*hook.calls.lock().unwrap(), [("churn".to_string(), firing.id.clone())]);

    let refusing = Arc::new(RecordingHook { refuse: true, ..Default::default() });
    let n = Notifier::new(&config, refusing).unwrap();
    let e = n.send(&firing).await.expect_err("the hook refused");
    assert!(e.retryable);
    assert!(e.to_string().contains("the trainer is busy"), "{e}");
}

#[tokio::test]
async fn server_errors_are_retryable_and_quoted() {
    let server = HttpReceiver::start(500, "database is locked").await;
    let n = notifier(json!({ "name": "hook", "type": "webhook", "url": server.url("/"), "timeout": "5s" }));
    let e = n.send(&notification(State::Firing)).await.expect_err("refused");
    assert!(e.retryable);
    assert!(e.message.contains("500") && e.message.contains("database is locked"), "{e}");

    let server = HttpReceiver::start(429, "slow down").await;
    let n = notifier(json!({ "name": "slack", "type": "slack", "url": server.url("/"), "timeout": "5s" }));
    let e = n.send(&notification(State::Firing)).await.expect_err("refused");
    assert!(e.retryable && e.message.contains("429") && e.message.contains("slow down"), "{e}");
}

#[tokio::test]
async fn client_errors_are_not_retryable() {
    let server = HttpReceiver::start(400, "invalid_payload").await;
    let n = notifier(json!({ "name": "slack", "type": "slack", "url": server.url("/"), "timeout": "5s" }));
    let e = n.send(&notification(State::Firing)).await.expect_err("refused");
    assert!(!e.retryable);
    assert!(e.message.contains("400") && e.message.contains("invalid_payload"), "{e}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    // Accepts connections and reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let n =
        notifier(json!({ "name": "hook", "type": "webhook", "url": format!("http://{addr}/"), "timeout": "300ms" }));
    let e = n.send(&notification(State::Firing)).await.expect_err("no answer");
    assert!(e.retryable, "{e}");
}

#[tokio::test]
async fn a_closed_port_is_retryable() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let n = notifier(json!({ "name": "hook", "type": "webhook", "url": format!("http://{addr}/"), "timeout": "5s" }));
    let e = n.send(&notification(State::Firing)).await.expect_err("nobody listens");
    assert!(e.retryable, "{e}");
    assert!(!e.message.contains(&addr.to_string()), "errors never carry the URL: {e}");
}

// ---------------------------------------------------------------------------------------------
// Email, against aiosmtpd

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `.venv/bin/python` when it can import aiosmtpd; `None` means skip (or fail under CI).
fn smtp_python() -> Option<PathBuf> {
    env();
    let python = workspace_root().join(".venv/bin/python");
    let usable = python.exists()
        && Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if usable {
        return Some(python);
    }
    let why = format!(
        "{} cannot import aiosmtpd; run `make test` (or `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`)",
        python.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("SMTP tests need a real SMTP server: {why}");
    }
    eprintln!("skipping the SMTP test: {why}");
    None
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Starttls,
    Smtps,
}

/// aiosmtpd delivering into a maildir; killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start(python: &Path, mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(python);
        command.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"]);
        if mode != Mode::Plain {
            let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("self-signed certificate");
            std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
            let (cert_flag, key_flag) =
                if mode == Mode::Smtps { ("--smtpscert", "--smtpskey") } else { ("--tlscert", "--tlskey") };
            command.arg(cert_flag).arg(dir.path().join("cert.pem")).arg(key_flag).arg(dir.path().join("key.pem"));
        }
        command.arg(dir.path().join("maildir"));
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let child = command.spawn().expect("start aiosmtpd");
        let mut server = Self { child, port, dir };
        server.wait_listening();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("aiosmtpd exited ({status}) before listening:\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on {} within 30s:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cert_path(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }

    /// The one delivered message, waiting for it with a deadline.
    fn delivered(&self) -> Vec<u8> {
        let new = self.dir.path().join("maildir/new");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(&new)
                .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            if let Some(file) = files.first() {
                assert_eq!(files.len(), 1, "expected one message, got {files:?}");
                return std::fs::read(file).unwrap();
            }
            assert!(Instant::now() < deadline, "no message delivered within 10s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn email_roundtrip(mode: Mode) {
    let Some(python) = smtp_python() else { return };
    let server = SmtpServer::start(&python, mode);
    let tls = match mode {
        Mode::Plain => "none",
        Mode::Starttls => "starttls",
        Mode::Smtps => "tls",
    };
    let mut config = json!({
        "name": "oncall-mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": server.port, "tls": tls,
        "from": "anchorwatch <alerts@example.com>", "to": ["oncall@example.com", "ml-team@example.com"],
        "timeout": "10s",
    });
    if mode != Mode::Plain {
        config["ca_file"] = json!(server.cert_path());
    }
    let n = notifier(config);
    let sent = notification(State::Firing);
    n.send(&sent).await.unwrap_or_else(|e| panic!("delivered over {tls}: {e}\nserver log:\n{}", server.log()));

    let raw = server.delivered();
    let mail = mailparse::parse_mail(&raw).expect("a MIME message");
    let header =
        |name: &str| mail.headers.iter().find(|h| h.get_key().eq_ignore_ascii_case(name)).map(|h| h.get_value());
    assert_eq!(header("From").as_deref(), Some("anchorwatch <alerts@example.com>"));
    let to = header("To").unwrap();
    assert!(to.contains("oncall@example.com") && to.contains("ml-team@example.com"), "{to}");
    assert_eq!(
        header("Subject").as_deref(),
        Some("[FIRING:2] churn: AnchorwatchDatasetDrift, AnchorwatchFeatureDrift")
    );
    assert_eq!(header("X-Anchorwatch-Notification-Id").as_deref(), Some(sent.id.as_str()));
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");

    let part = |mime: &str| {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .unwrap_or_else(|| panic!("no {mime} part"))
            .get_body()
            .unwrap()
    };
    let text = part("text/plain");
    let html = part("text/html");
    for body in [&text, &html] {
        assert!(body.contains("AnchorwatchDatasetDrift") && body.contains("AnchorwatchFeatureDrift"), "{body}");
        assert!(body.contains("0.75"), "{body}");
        assert!(body.contains("firing"), "{body}");
        assert!(body.contains("age"), "{body}");
    }
    assert!(text.contains(DASHBOARD), "{text}");
    assert!(text.contains("churn: feature age drifted <&>"), "{text}");
    assert!(
        html.contains("href=\"http://127.0.0.1:8080/models/churn?window=1h&amp;view=&lt;drift&gt;\""),
        "the link is escaped: {html}"
    );
    assert!(html.contains("churn: feature age drifted &lt;&amp;&gt;"), "{html}");
    assert!(!html.contains("<&>"), "{html}");
}

#[tokio::test]
async fn email_over_plain_smtp() {
    email_roundtrip(Mode::Plain).await;
}

#[tokio::test]
async fn email_over_starttls() {
    email_roundtrip(Mode::Starttls).await;
}

#[tokio::test]
async fn email_over_implicit_tls() {
    email_roundtrip(Mode::Smtps).await;
}

#[tokio::test]
async fn email_refuses_an_unknown_certificate() {
    let Some(python) = smtp_python() else { return };
    let server = SmtpServer::start(&python, Mode::Smtps);
    // No ca_file: the self-signed certificate is not trusted, and nothing is delivered.
    let n = notifier(json!({
        "name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": server.port, "tls": "tls",
        "from": "alerts@example.com", "to": ["oncall@example.com"], "timeout": "10s",
    }));
    let e = n.send(&notification(State::Firing)).await.expect_err("untrusted certificate");
    assert!(e.message.contains("SMTP"), "{e}");
    let new = server.dir.path().join("maildir/new");
    assert_eq!(std::fs::read_dir(new).map(|d| d.count()).unwrap_or(0), 0);
}

#[tokio::test]
async fn email_to_a_closed_port_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let n = notifier(json!({
        "name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "tls": "none",
        "from": "alerts@example.com", "to": ["oncall@example.com"], "timeout": "5s",
    }));
    let e = n.send(&notification(State::Firing)).await.expect_err("nobody listens");
    assert!(e.retryable, "{e}");
}
