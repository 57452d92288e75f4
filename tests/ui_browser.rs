//! The built-in web UI in a real browser: the real binary is fed drifting traffic and analysed,
//! then headless Chromium opens every UI page. Each page loads with no console output, its charts
//! carry the numbers the results API returns (drift share per window, a feature's score per
//! window), the status says `drifting`, and a screenshot of each page is kept under
//! `target/ui-screenshots/`. With `[auth]` tokens, a browser without a session lands on the
//! sign-in page, signs in through it, and sees the model page; the session cookie reads but
//! cannot change what its token may not, nor be used from another site.
//!
//! Method as in `report_browser.rs`: `--dump-dom` prints the DOM after load and
//! `--enable-logging=stderr --v=0` prints every console message as an `INFO:CONSOLE` line; a
//! negative control proves this Chromium reports a broken page that way. With `CI=true` a missing
//! Chromium fails the test; elsewhere the test is skipped with a notice.

use crate::support;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use support::credit::World;
use support::{Server, chromium, chromium_available, console_lines};

const START: i64 = 1_795_132_800; // 2026-11-20T00:00:00Z
const ROWS_PER_HOUR: usize = 400;

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads a UI page: no console output, a whole DOM, and a screenshot saved as `name`.png.
fn load_page(url: &str, name: &str) -> String {
    let (dom, stderr) = chromium(url, &["--dump-dom"]);
    assert!(console_lines(&stderr).is_empty(), "console output while loading {url}:\n{stderr}");
    assert!(dom.contains("</html>"), "no DOM dumped for {url}; stderr:\n{stderr}");
    let shot = screenshots_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) =
        chromium(url, &["--hide-scrollbars", "--window-size=1440,2400", &format!("--screenshot={}", shot.display())]);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot of {url} at {}; stderr:\n{stderr}", shot.display());
    dom
}

/// The test config: one model `credit` with a reference; `extra` is appended (more sections).
fn config(dir: &Path, extra: &str) -> PathBuf {
    World::Moved.write_reference(dir, 1500);
    let text = r#"[store]
root = "store"
[collector]
flush_interval = "1h"
[[models]]
name = "credit"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [
  { name = "age", kind = "numerical" },
  { name = "region", kind = "categorical" },
  { name = "income", kind = "numerical" },
  { name = "vip", kind = "boolean" },
]
[models.analysis]
reference = "reference.csv"
window = "1h"
interval = "1h"
label_lookback = "3650d"
positive_class = "bad"
"#;
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    path
}

/// Every `data-value` of the elements whose start tag begins with `tag` inside the element
/// with `id`, in document order.
fn values_in(dom: &str, id: &str, tag: &str) -> Vec<String> {
    let from = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element #{id} in the page"));
    let section = &dom[from..];
    let section = &section[..section.find("</svg>").unwrap_or(section.len())];
    section.split(tag).skip(1).map(|el| attr(&el[..el.find('>').unwrap()], "data-value")).collect()
}

fn attr(tag: &str, name: &str) -> String {
    let start = tag.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name} in {tag}")) + name.len() + 2;
    tag[start..start + tag[start..].find('"').unwrap()].to_string()
}

fn same(page: &str, api: &Value) -> bool {
    let (p, a) = (page.parse::<f64>().unwrap(), api.as_f64().unwrap());
    p == a || (p - a).abs() <= 1e-12 * a.abs().max(1.0)
}

#[test]
fn ui_pages_load_without_console_errors_and_chart_the_api_numbers() {
    if !chromium_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Negative control: a broken script must show up in what we check.
    let broken = dir.path().join("broken.html");
    std::fs::write(&broken, "<!DOCTYPE html><html><body><script>undefinedFn();</script></body></html>").unwrap();
    let (_, stderr) = chromium(&format!("file://{}", broken.display()), &["--dump-dom"]);
    assert!(
        console_lines(&stderr).iter().any(|l| l.contains("Uncaught ReferenceError")),
        "this Chromium does not log console errors as expected; the checks below would be blind:\n{stderr}"
    );

    let server = Server::start(&config(dir.path(), ""));
    // Before any traffic the pages already load.
    let dom = load_page(&server.url("/"), "00-empty-overview");
    assert!(dom.contains("data-status=\"healthy\""), "a model without windows is healthy");

    // Three hours; the world changes at hour 2. Labels arrive for the first hour only.
    let mut rng = StdRng::seed_from_u64(2);
    let mut labels = Vec::new();
    for hour in 0..3 {
        let mut records = Vec::new();
        for i in 0..ROWS_PER_HOUR {
            let (mut r, label) = World::Moved.applicant(&mut rng, hour >= 2);
            let id = format!("h{hour}-{i}");
            r["prediction_id"] = json!(id);
            r["timestamp"] = json!(START + hour * 3600 + i as i64 * 5);
            records.push(r);
            if hour == 0 {
                labels.push(json!({"prediction_id": id, "label": label}));
            }
        }
        let (status, answer) = server.post_json("/v1/models/credit/predictions", &json!(records));
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(server.post_json("/v1/models/credit/labels", &json!(labels)).0, 200);
    server.flush();
    let (status, summary) = server.post_json("/v1/models/credit/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");

    let drift: Value = support::client().get(server.url("/v1/models/credit/drift")).send().unwrap().json().unwrap();
    let windows = drift["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3, "{drift}");
    let last_share = windows[2]["dataset_drift_share"].as_f64().unwrap();
    assert!(last_share >= 0.5, "the changed hour drifts: {drift}");

    // The models list: status, drift share and last analysis of the newest window.
    let dom = load_page(&server.url("/"), "01-overview");
    let row = dom.split("<tr data-model=\"credit\"").nth(1).expect("a row for credit");
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-status=\"drifting\""), "{row}");
    assert!(same(&attr(row, "data-value"), &windows[2]["dataset_drift_share"]), "{row}");
    assert!(row.contains("href=\"/models/credit\""), "{row}");

    // The model page: the drift-share line and the heatmap carry the API's numbers.
    let dom = load_page(&server.url("/models/credit"), "02-model");
    assert!(dom.contains("data-status=\"drifting\""));
    let shares = values_in(&dom, "drift-share", "<circle class=\"point\"");
    assert_eq!(shares.len(), windows.len(), "one point per window");
    for (page, api) in shares.iter().zip(windows) {
        assert!(same(page, &api["dataset_drift_share"]), "drift share {page} vs {}", api["dataset_drift_share"]);
    }
    let heatmap = &dom[dom.find("id=\"heatmap-chart\"").expect("heatmap")..];
    for (i, w) in windows.iter().enumerate() {
        for column in w["columns"].as_array().unwrap() {
            let name = column["column"].as_str().unwrap();
            let needle = format!("data-feature=\"{name}\" data-window=\"{i}\" data-value=\"");
            let at = heatmap.find(&needle).unwrap_or_else(|| panic!("no heatmap cell for {name} in window {i}"));
            let value = &heatmap[at + needle.len()..];
            let value = &value[..value.find('"').unwrap()];
            if column["score"].is_null() {
                assert_eq!(value, "", "{name} window {i}");
            } else {
                assert!(same(value, &column["score"]), "{name} window {i}: page {value}, API {}", column["score"]);
            }
        }
    }
    // The distributions of the newest window's drifted feature, reference beside current.
    let dist = &dom[dom.find("id=\"distribution\"").unwrap()..];
    let dist = &dist[..dist.find("</section>").unwrap()];
    assert!(dist.contains("<svg"), "a distribution chart: {dist}");
    assert!(dist.contains(">reference [") || dist.contains(">reference: "), "{dist}");
    // Performance from the labelled hour and the label coverage line.
    assert!(dom.contains("id=\"label-coverage\""), "label coverage is drawn");
    assert!(dom.contains("id=\"performance\""));
    // Alerts: the dataset drift rule waits out its `for` as pending.
    assert!(dom.contains("AnchorwatchDatasetDrift"), "the pending drift alert is listed");

    // A chosen categorical feature in the first window.
    let dom = load_page(&server.url("/models/credit?feature=region&window=0"), "03-model-region-window0");
    let dist = &dom[dom.find("id=\"distribution\"").unwrap()..];
    assert!(dist.contains("aria-label=\"category shares of reference and current\""), "categorical chart");
    assert!(dist.contains("<option value=\"region\" selected"), "the choice is kept");

    // An unknown model is a JSON 404, not a broken page.
    let response = support::client().get(server.url("/models/nope")).send().unwrap();
    assert_eq!(response.status(), 404);
    // Without tokens the UI is open: nothing to sign out of, and the sign-in page sends you on.
    assert!(!dom.contains("/logout"), "no Sign out without a session");
    let response = no_redirects().get(server.url("/login?next=/models/credit")).send().unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/models/credit");
    server.stop();
}

const READ_TOKEN: &str = "read-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const INGEST_TOKEN: &str = "ingest-token-0123456789abcdef";

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Has Chromium post the sign-in form, as a person would: a local page holding the form with
/// `token` and `next` submits it on load. `extra` flags say what to keep of where the browser
/// ends up (`--dump-dom`, `--screenshot`); returns stdout and stderr.
fn sign_in_in_browser(dir: &Path, server: &Server, token: &str, next: &str, extra: &[&str]) -> (String, String) {
    let page = dir.join(format!("sign-in-{}.html", &token[..token.find('-').unwrap()]));
    std::fs::write(
        &page,
        format!(
            r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>sign in</title></head><body><form id="f" method="post" action="{}"><input type="hidden" name="token" value="{token}"><input type="hidden" name="next" value="{next}"></form><script>document.getElementById("f").submit();</script></body></html>"#,
            server.url("/login")
        ),
    )
    .unwrap();
    // The virtual time budget lets the submit, the redirect and the page load finish first.
    let flags: Vec<&str> = ["--virtual-time-budget=10000"].iter().chain(extra).copied().collect();
    chromium(&format!("file://{}", page.display()), &flags)
}

/// Signs in over plain HTTP; the response (303 with the cookie, or back to /login).
fn sign_in(server: &Server, token: &str, next: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut request = no_redirects()
        .post(server.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next={}", next.replace('/', "%2F").replace('?', "%3F")));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().unwrap()
}

/// `anchorwatch_session=<id>` from a sign-in's Set-Cookie.
fn session_of(response: &reqwest::blocking::Response) -> String {
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

fn error_code(response: reqwest::blocking::Response) -> String {
    response.json::<Value>().unwrap()["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn with_tokens_the_ui_signs_in_through_its_login_page() {
    if !chromium_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let auth = format!(
        "[auth]\nsession_ttl = \"1h\"\ntokens = [\n  {{ name = \"viewer\", token = \"{READ_TOKEN}\", scopes = [\"read\"] }},\n  {{ name = \"ops\", token = \"{ADMIN_TOKEN}\", scopes = [\"admin\"] }},\n  {{ name = \"sidecar\", token = \"{INGEST_TOKEN}\", scopes = [\"ingest\"] }},\n]\n"
    );
    let server = Server::start(&config(dir.path(), &auth));

    // Two analysed hours, so the model page has charts to draw.
    let mut rng = StdRng::seed_from_u64(3);
    for hour in 0..2 {
        let records: Vec<Value> = (0..ROWS_PER_HOUR)
            .map(|i| {
                let (mut r, _) = World::Moved.applicant(&mut rng, hour == 1);
                r["timestamp"] = json!(START + hour * 3600 + i as i64 * 5);
                r
            })
            .collect();
        let response = support::client()
            .post(server.url("/v1/models/credit/predictions"))
            .bearer_auth(INGEST_TOKEN)
            .json(&records)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let admin = |path: &str| support::client().post(server.url(path)).bearer_auth(ADMIN_TOKEN).json(&json!({}));
    assert_eq!(admin("/v1/flush").send().unwrap().status(), 200);
    assert_eq!(admin("/v1/models/credit/analyze").send().unwrap().status(), 200);

    // (a) A browser without a session asking for a page gets the sign-in page.
    let dom = load_page(&server.url("/"), "10-login");
    assert!(dom.contains(r#"<form class="login" method="post" action="/login""#), "the sign-in page: {dom}");
    assert!(dom.contains(r#"<label for="token">"#) && dom.contains(r#"id="token" name="token" type="password""#));
    assert!(dom.contains(r#"name="next" value="/""#), "{dom}");
    assert!(!dom.contains("data-model="), "no model data before signing in");
    let dom = load_page(&server.url("/login?error=invalid&next=/models/credit"), "11-login-error");
    assert!(dom.contains(r#"id="login-error""#), "{dom}");

    // (b) Signing in through the form lands on the model page, charts and all.
    let (dom, stderr) = sign_in_in_browser(dir.path(), &server, READ_TOKEN, "/models/credit", &["--dump-dom"]);
    assert!(console_lines(&stderr).is_empty(), "console output while signing in:\n{stderr}");
    assert!(dom.contains(r#"<h2 id="model" data-model="credit">"#), "the model page after signing in: {dom}");
    assert_eq!(values_in(&dom, "drift-share", "<circle class=\"point\"").len(), 2, "one point per window");
    assert!(dom.contains(r#"id="heatmap-chart""#) && dom.contains(r#"id="distribution""#));
    assert!(dom.contains(r#"<strong id="signed-in">viewer</strong>"#) && dom.contains(r#"action="/logout""#));
    assert!(!dom.contains(READ_TOKEN), "the token never comes back");
    let shot = screenshots_dir().join("12-model-signed-in.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = format!("--screenshot={}", shot.display());
    let flags = ["--hide-scrollbars", "--window-size=1440,2400", screenshot.as_str()];
    let (_, stderr) = sign_in_in_browser(dir.path(), &server, READ_TOKEN, "/models/credit", &flags);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot of the signed-in model page at {}; stderr:\n{stderr}", shot.display());

    // (c) A wrong token, or one that may only send data, lands back on the sign-in page.
    let (dom, stderr) =
        sign_in_in_browser(dir.path(), &server, "wrong-token-0123456789abcdef", "/models/credit", &["--dump-dom"]);
    assert!(console_lines(&stderr).is_empty(), "console output:\n{stderr}");
    assert!(dom.contains(r#"id="login-error""#) && dom.contains("was not accepted"), "{dom}");
    assert!(dom.contains(r#"name="next" value="/models/credit""#) && !dom.contains("wrong-token"), "{dom}");
    let (dom, _) = sign_in_in_browser(dir.path(), &server, INGEST_TOKEN, "/", &["--dump-dom"]);
    assert!(dom.contains(r#"id="login-error""#) && dom.contains("may only send data"), "{dom}");

    // (d) Over plain HTTP. Pages without credentials go to the sign-in page; the API says 401.
    let http = no_redirects();
    let response = http.get(server.url("/models/credit?window=1")).send().unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=/models/credit%3Fwindow%3D1");
    let response = http.get(server.url("/v1/models")).send().unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response), "unauthorized");

    // A read token's session reads pages and the API, and cannot promote.
    let response = sign_in(&server, READ_TOKEN, "/models/credit", &[]);
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/models/credit");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["; HttpOnly", "; SameSite=Lax", "; Path=/", "; Max-Age=3600"] {
        assert!(set_cookie.contains(part), "{part} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let viewer = session_of(&response);
    let id = viewer.strip_prefix("anchorwatch_session=").unwrap();
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "32 random bytes in hex: {id}");
    let with =
        |cookie: &str, request: reqwest::blocking::RequestBuilder| request.header("cookie", cookie).send().unwrap();
    let response = with(&viewer, http.get(server.url("/v1/models/credit/drift")));
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().unwrap()["windows"].as_array().unwrap().len(), 2);
    let page = with(&viewer, http.get(server.url("/models/credit"))).text().unwrap();
    assert!(page.contains(r#"action="/logout""#), "Sign out on a page served through a session");
    let page = http.get(server.url("/")).bearer_auth(READ_TOKEN).send().unwrap().text().unwrap();
    assert!(page.contains(r#"data-model="credit""#) && !page.contains("/logout"), "bearer tokens work as before");
    let response =
        with(&viewer, http.post(server.url("/v1/models/credit/versions/1/promote")).header("origin", &server.base));
    assert_eq!(response.status(), 403);
    assert_eq!(error_code(response), "forbidden");

    // An admin session (Secure behind an HTTPS proxy) changes things only from this server's pages.
    let response = sign_in(&server, ADMIN_TOKEN, "/", &[("x-forwarded-proto", "https")]);
    assert_eq!(response.status(), 303);
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
    let ops = session_of(&response);
    let rollback = |origin: &str| {
        http.post(server.url("/v1/models/credit/rollback"))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .body("")
    };
    let response = with(&ops, rollback("http://evil.example"));
    assert_eq!(response.status(), 403);
    assert_eq!(error_code(response), "cross_origin");
    let response = with(&ops, http.post(server.url("/v1/flush")).header("origin", "null"));
    assert_eq!(response.status(), 403, "a file:// or sandboxed page is another origin too");
    assert_eq!(with(&ops, http.post(server.url("/v1/flush")).header("origin", &server.base)).status(), 200);
    // The Roll back button's form post returns to the page, which says what happened.
    let response = with(&ops, rollback(&server.base));
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/models/credit?error=no_previous_champion#versions");
    let page = with(&ops, http.get(server.url(location.split('#').next().unwrap()))).text().unwrap();
    assert!(page.contains(r#"class="flash failed" role="alert">There is no previous champion"#), "{page}");
    // API clients still get JSON.
    let response = http.post(server.url("/v1/models/credit/rollback")).bearer_auth(ADMIN_TOKEN).send().unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(error_code(response), "no_previous_champion");

    // Refused sign-ins go back with the reason; `next` never leaves this server.
    let response = sign_in(&server, "wrong-token-0123456789abcdef", "/models/credit", &[]);
    assert_eq!(response.headers()["location"], "/login?error=invalid&next=/models/credit");
    assert!(response.headers().get("set-cookie").is_none());
    let response = sign_in(&server, INGEST_TOKEN, "/", &[]);
    assert_eq!(response.headers()["location"], "/login?error=scope&next=/");
    for next in ["//evil.example/", "https://evil.example/", "/\\evil.example"] {
        let response = sign_in(&server, READ_TOKEN, next, &[]);
        assert_eq!(response.headers()["location"], "/", "next = {next}");
    }

    // Signing out ends the session; other sessions and bearer tokens go on.
    let response = with(&viewer, http.post(server.url("/logout")));
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let response = with(&viewer, http.get(server.url("/v1/models/credit/drift")));
    assert_eq!(response.status(), 401);
    let response = with(&viewer, http.get(server.url("/models/credit")));
    assert_eq!(response.status(), 303, "back to the sign-in page");
    assert_eq!(with(&ops, http.get(server.url("/v1/models"))).status(), 200);

    let log = server.stop().join("\n");
    assert!(log.contains("UI sign-in refused"), "refusals are logged");
    for secret in [READ_TOKEN, ADMIN_TOKEN, INGEST_TOKEN, "wrong-token", id] {
        assert!(!log.contains(secret), "the log holds a secret ({secret})");
    }
}
