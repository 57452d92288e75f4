//! Alerts end to end: the real binary, a real webhook receiver (also standing in for Slack's and
//! Alertmanager's HTTP endpoints) and a real SMTP server (aiosmtpd) on loopback. Drift is injected
//! hour by hour: one pending alert, then exactly one firing notification per receiver, a SIGKILL
//! and restart that repeats nothing, and one resolved notification per receiver when the drift
//! goes away.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{Receiver, Server, wait_until};

const START: i64 = 1_795_132_800; // 2026-11-20T00:00:00Z
const ROWS: usize = 400;
const SECRET: &str = "s3cret-for-the-hmac-test";

/// A real SMTP server (Python's aiosmtpd) writing each message into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    /// Starts aiosmtpd from the workspace's `.venv`; `None` (with a notice) when it is not
    /// installed, except under CI where that fails the test.
    fn start(dir: &Path) -> Option<Self> {
        let python = support::venv_bin("python");
        let available = python.exists()
            && Command::new(&python).args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
        if !available {
            support::skip("the email part needs aiosmtpd in .venv (make test installs tests/requirements.txt)");
            return None;
        }
        let port = support::free_port();
        let maildir = dir.join("maildir");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(30), "the SMTP server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(Self { child, port, maildir })
    }

    /// Every delivered message, raw.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        out
    }
}

/// Four numerical features around 0; from the drift on, `a` and `b` move by two units.
fn rows(rng: &mut StdRng, hour: i64, drifted: bool) -> Vec<Value> {
    (0..ROWS)
        .map(|i| {
            let mut f = || (0..4).map(|_| rng.random_range(-1.0..1.0_f64)).sum::<f64>();
            let shift = if drifted { 2.0 } else { 0.0 };
            let (a, b, c, d) = (f() + shift, f() + shift, f(), f());
            let ts = START + hour * 3600 + (i as i64 * 3600 / ROWS as i64);
            json!({"timestamp": ts, "features": {"a": a, "b": b, "c": c, "d": d}, "prediction": a + c})
        })
        .collect()
}

fn write_config(dir: &Path, hooks: SocketAddr, smtp: Option<u16>) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(7);
    let mut csv = String::from("a,b,c,d,prediction\n");
    for r in rows(&mut rng, 0, false).into_iter().chain(rows(&mut rng, 0, false)) {
        let f = &r["features"];
        csv += &format!("{},{},{},{},{}\n", f["a"], f["b"], f["c"], f["d"], r["prediction"]);
    }
    std::fs::write(dir.join("reference.csv"), csv).unwrap();
    let email = match smtp {
        Some(port) => format!(
            r#"[[alerts.receivers]]
name = "mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "anchorwatch@example.com"
to = ["oncall@example.com"]
"#
        ),
        None => String::new(),
    };
    let text = format!(
        r#"[store]
root = "store"
[collector]
flush_interval = "1h"
[[models]]
name = "churn"
[models.schema]
prediction = "numerical"
features = [
  {{ name = "a", kind = "numerical" }},
  {{ name = "b", kind = "numerical" }},
  {{ name = "c", kind = "numerical" }},
  {{ name = "d", kind = "numerical" }},
]
[models.analysis]
reference = "reference.csv"
window = "1h"
interval = "1h"

[alerts]
default_rules = false
external_url = "http://anchorwatch.example:8080"
retry = {{ initial_backoff = "100ms", max_backoff = "1s" }}

[[alerts.rules]]
name = "ChurnDrift"
watch = "dataset_drift_share"
op = ">="
threshold = 0.5
for = "2 windows"
labels = {{ severity = "page", team = "ml" }}
annotations = {{ summary = "{{{{ model }}}}: {{{{ value }}}} of the features drifted" }}

[[alerts.receivers]]
name = "hook"
type = "webhook"
url = "http://{hooks}/hook"
secret_env = "ANCHORWATCH_TEST_HOOK_SECRET"

[[alerts.receivers]]
name = "slack"
type = "slack"
url = "http://{hooks}/slack"

[[alerts.receivers]]
name = "am"
type = "alertmanager"
url = "http://{hooks}/am"

[[alerts.receivers]]
name = "retrain"
type = "retrain"

{email}"#
    );
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn get(server: &Server, path: &str) -> Value {
    support::client().get(server.url(path)).send().unwrap().json().unwrap()
}

fn evaluations(server: &Server) -> u64 {
    get(server, "/v1/alerts")["evaluations"]["churn"]["count"].as_u64().unwrap_or(0)
}

/// Streams one hour of rows, flushes, analyses, and waits until the rules saw the result.
fn hour(server: &Server, rng: &mut StdRng, h: i64, drifted: bool) {
    let (status, body) = server.post_json("/v1/models/churn/predictions", &Value::Array(rows(rng, h, drifted)));
    assert_eq!(status, 200, "{body}");
    server.flush();
    let before = evaluations(server);
    let (status, summary) = server.post_json("/v1/models/churn/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");
    wait_until(Duration::from_secs(60), "the rules to see the analysis", || evaluations(server) > before);
}

fn alerts(server: &Server) -> Vec<Value> {
    get(server, "/v1/alerts")["alerts"].as_array().unwrap().clone()
}

fn outbox_empty(server: &Server) -> bool {
    server.metrics().lines().any(|l| l == "anchorwatch_notification_outbox 0")
}

fn retrain_requests(dir: &Path) -> Vec<Value> {
    let folder = dir.join("store/churn/retrain/requests");
    let Ok(entries) = std::fs::read_dir(&folder) else { return Vec::new() };
    entries.flatten().map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap()).collect()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The email has the right headers, and a text and an HTML part that name the alert, show the
/// value and link to the dashboard.
fn check_mail(raw: &str, status: &str) {
    use mailparse::MailHeaderMap;
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
    assert_eq!(header("To"), "oncall@example.com", "{raw}");
    assert!(header("From").contains("anchorwatch@example.com"), "{raw}");
    assert!(header("Subject").contains(status) && header("Subject").contains("churn"), "{raw}");
    assert!(!header("X-Anchorwatch-Notification-Id").is_empty(), "{raw}");
    let mut parts = Vec::new();
    fn walk(p: &mailparse::ParsedMail, out: &mut Vec<(String, String)>) {
        if p.subparts.is_empty() {
            out.push((p.ctype.mimetype.clone(), p.get_body().unwrap()));
        }
        for s in &p.subparts {
            walk(s, out);
        }
    }
    walk(&mail, &mut parts);
    for kind in ["text/plain", "text/html"] {
        let (_, body) = parts.iter().find(|(t, _)| t == kind).unwrap_or_else(|| panic!("no {kind} part: {raw}"));
        assert!(body.contains("ChurnDrift"), "{kind}: {body}");
        assert!(body.contains("http://anchorwatch.example:8080/models/churn"), "{kind}: {body}");
        assert!(body.contains("0."), "{kind} shows the value: {body}");
    }
}

#[test]
fn drift_pends_fires_survives_a_crash_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let smtp = Smtp::start(dir.path());
    let config = write_config(dir.path(), hooks.addr, smtp.as_ref().map(|s| s.port));
    let env = [("ANCHORWATCH_TEST_HOOK_SECRET", SECRET)];
    let mut rng = StdRng::seed_from_u64(42);
    let counts = |smtp: &Option<Smtp>| {
        (
            hooks.at("/hook").len(),
            hooks.at("/slack").len(),
            hooks.at("/am/api/v2/alerts").len(),
            smtp.as_ref().map_or(0, |s| s.messages().len()),
        )
    };

    let server = Server::start_with_env(&config, &env);
    hour(&server, &mut rng, 0, false);
    assert!(alerts(&server).is_empty(), "no drift yet: {:?}", alerts(&server));

    // First drifted window: pending, nothing sent.
    hour(&server, &mut rng, 1, true);
    let pending = alerts(&server);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["state"], "pending");
    assert_eq!(pending[0]["labels"]["alertname"], "ChurnDrift");
    assert!(server.metrics().contains(r#"anchorwatch_alerts{alertname="ChurnDrift",model="churn",state="pending"} 1"#));
    assert_eq!(counts(&smtp), (0, 0, 0, 0));

    // Second drifted window: firing, one notification per receiver.
    hour(&server, &mut rng, 2, true);
    let firing = alerts(&server);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["state"], "firing");
    let expect_mail = usize::from(smtp.is_some());
    wait_until(Duration::from_secs(60), "one firing notification per receiver", || {
        counts(&smtp) == (1, 1, 1, expect_mail) && outbox_empty(&server)
    });

    let hook = &hooks.at("/hook")[0];
    let payload = hook.json();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(payload["groupLabels"]["model"], "churn");
    assert_eq!(payload["externalURL"], "http://anchorwatch.example:8080");
    let alert = &payload["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "ChurnDrift");
    assert_eq!(alert["labels"]["model"], "churn");
    assert_eq!(alert["labels"]["severity"], "page");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("churn: 0.") && summary.ends_with(" of the features drifted"), "{summary}");
    assert_eq!(alert["generatorURL"], "http://anchorwatch.example:8080/models/churn");
    assert_eq!(
        hook.headers["x-anchorwatch-signature"],
        format!("sha256={}", hmac_sha256(SECRET.as_bytes(), &hook.body)),
        "the signature is an HMAC-SHA256 of the exact body"
    );
    assert!(!hook.headers["x-anchorwatch-notification-id"].is_empty());

    let slack = hooks.at("/slack")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(text.contains("FIRING") && text.contains("churn"), "{slack}");
    let am = hooks.at("/am/api/v2/alerts")[0].json();
    assert_eq!(am[0]["labels"]["alertname"], "ChurnDrift");
    assert!(am[0].get("endsAt").is_none() || am[0]["endsAt"].is_null(), "{am}");
    if let Some(smtp) = &smtp {
        check_mail(&smtp.messages()[0], "FIRING");
    }

    // The retrain action queued one request for the retraining loop.
    let requests = retrain_requests(dir.path());
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["model"], "churn");
    assert_eq!(requests[0]["reason"], json!(["ChurnDrift"]));

    // A crash and a restart in the middle: the alert is still firing and nothing is repeated.
    server.kill();
    let server = Server::start_with_env(&config, &env);
    let firing = alerts(&server);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["state"], "firing");
    hour(&server, &mut rng, 3, true);
    assert!(outbox_empty(&server));
    assert_eq!(counts(&smtp), (1, 1, 1, expect_mail), "a restart must not repeat notifications");

    // The drift goes away: resolved, one notification per receiver.
    hour(&server, &mut rng, 4, false);
    assert!(alerts(&server).is_empty(), "{:?}", alerts(&server));
    wait_until(Duration::from_secs(60), "one resolved notification per receiver", || {
        counts(&smtp) == (2, 2, 2, 2 * expect_mail) && outbox_empty(&server)
    });
    let resolved = hooks.at("/hook")[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let am = hooks.at("/am/api/v2/alerts")[1].json();
    assert!(am[0]["endsAt"].is_string(), "a resolved alert has its end time: {am}");
    assert_eq!(retrain_requests(dir.path()).len(), 1, "resolving asks for no retraining");
    if let Some(smtp) = &smtp {
        let messages = smtp.messages();
        let resolved = messages.iter().find(|m| m.contains("RESOLVED")).expect("a resolved email");
        check_mail(resolved, "RESOLVED");
    }

    // The history tells the same story.
    let history = get(&server, "/v1/alerts?history=100")["history"].as_array().unwrap().clone();
    let states: Vec<&str> =
        history.iter().filter(|e| e["alertname"] == "ChurnDrift").map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "firing", "resolved"], "{history:?}");
    let delivered = history.iter().filter(|e| e["event"] == "delivered").count();
    assert_eq!(delivered, 2 * (4 + expect_mail), "{history:?}");
    assert!(server.metrics().contains(r#"anchorwatch_notifications_total{outcome="delivered",receiver="hook"} 1"#));
    server.stop();
}

#[test]
fn silences_are_validated_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let config = write_config(dir.path(), hooks.addr, None);
    let server = Server::start_with_env(&config, &[("ANCHORWATCH_TEST_HOOK_SECRET", SECRET)]);
    let (status, body) = server.post_json("/v1/silences", &json!({"matchers": {}, "duration": "1h"}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "matchers");
    let (status, body) = server.post_json("/v1/silences", &json!({"matchers": {"model": "churn"}, "duration": "soon"}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "duration");
    let (status, body) = server.post_json(
        "/v1/silences",
        &json!({"matchers": {"model": "churn"}, "ends_at": "2001-01-01T00:00:00Z", "comment": "x"}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, created) = server.post_json(
        "/v1/silences",
        &json!({"matchers": {"model": "churn"}, "duration": "2h", "comment": "deploy", "created_by": "ana"}),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let list = get(&server, "/v1/silences");
    assert_eq!(list["silences"][0]["id"], id.as_str());
    assert_eq!(list["silences"][0]["active"], true);
    let response = support::client().delete(server.url(&format!("/v1/silences/{id}"))).send().unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(get(&server, "/v1/silences")["silences"][0]["active"], false);
    let response = support::client().delete(server.url("/v1/silences/nope")).send().unwrap();
    assert_eq!(response.status().as_u16(), 404);
    server.stop();
}
