//! The shipped Grafana dashboards (`grafana/dashboards/*.json`) hold together and show real data.
//!
//! 1. Structure, without Grafana: stable unique uids, unique panel ids, grid positions inside 24
//!    columns that do not overlap, every datasource reference is the `${datasource}` variable,
//!    every variable used is defined, every panel has a description.
//! 2. Data: the real `anchorwatch serve` fed with drifting traffic, bad input and labels, serving
//!    an ONNX model with its built-in predictor, and a real `anchorwatch proxy` in front of a small
//!    upstream predictor, both scraped every second by a real Prometheus (Debian's package).
//!    Every query of every panel, with its variables filled in as Grafana fills them on first load
//!    (the variables' own queries run against Prometheus too), must return at least one series
//!    with a finite value through Prometheus' HTTP API.
//!
//! Prometheus is found on PATH or at `/usr/bin/prometheus` (`make setup-system` installs it); the
//! ONNX model is made by the project's `.venv` (`make setup-python`), as for tests/predictor.rs.
//! Without either the data test is skipped with a message, except under `CI=true`, where it fails.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use support::credit::World;
use support::{RemoteProxy, Server, client, wait_until};

/// Each dashboard file and its uid. Links, bookmarks and the other dashboards' data links use the
/// uids, so they never change; a new dashboard adds a line here.
const DASHBOARDS: &[(&str, &str)] = &[
    ("anchorwatch-health.json", "anchorwatch-health"),
    ("anchorwatch-model.json", "anchorwatch-model"),
    ("anchorwatch-overview.json", "anchorwatch-overview"),
    ("anchorwatch-performance.json", "anchorwatch-performance"),
];

/// Queries whose series cannot exist in this test, each with the reason: (dashboard uid, panel
/// title, refId, why). They still run, and must still be valid PromQL.
const NO_DATA_HERE: &[(&str, &str, &str, &str)] = &[
    (
        "anchorwatch-health",
        "Parquet files and flush errors / s",
        "B",
        "anchorwatch_flush_errors_total{model} appears with a model's first failed flush, and nothing in this \
         test makes the store fail (the test runs as root, so file permissions cannot)",
    ),
    (
        "anchorwatch-health",
        "Predicted rows not captured / s",
        "A",
        "anchorwatch_predictor_capture_dropped_total{model,reason} appears with the first row the predictor \
         cannot hand to an overloaded or stopped collector; tests/overload.rs is where overload is made",
    ),
];

/// Grafana's own variables that may appear in queries and links.
const BUILTIN_VARIABLES: &[&str] =
    &["__rate_interval", "__interval", "__range", "__data", "__field", "__url_time_range", "__all"];

/// What `$__rate_interval` becomes here: Grafana's value for the provisioned datasource
/// (`timeInterval: 15s`, so at least 4 × 15 s).
const RATE_INTERVAL: &str = "1m";

const DATASOURCE_REF: &str = "${datasource}";
const DEFAULT_PROMETHEUS: &str = "/usr/bin/prometheus";

// ---------------------------------------------------------------------------------------------
// The dashboards.
// ---------------------------------------------------------------------------------------------

fn grafana_dir() -> PathBuf {
    support::root().join("grafana")
}

/// Every dashboard file, parsed, by file name.
fn dashboards() -> Vec<(String, Value)> {
    let dir = grafana_dir().join("dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every panel, including those nested in rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push(p);
        out.extend(p["panels"].as_array().map(Vec::as_slice).unwrap_or_default());
    }
    out
}

fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Names of the variables a text refers to: `$name`, `${name}`, `${name:format}`, `[[name]]`.
fn referenced_variables(text: &str) -> BTreeSet<String> {
    let word = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices('$') {
        let rest = &text[i + 1..];
        let name = match rest.strip_prefix('{') {
            Some(inner) => word(inner),
            None => word(rest),
        };
        if !name.is_empty() {
            out.insert(name);
        }
    }
    for (i, _) in text.match_indices("[[") {
        let name = word(&text[i + 2..]);
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Every string in a JSON value, with its path (for messages).
fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| strings(x, format!("{path}[{i}]"), out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| strings(x, format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// Every value under a key named `datasource`, with its path.
fn datasource_refs<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| datasource_refs(x, format!("{path}[{i}]"), out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k == "datasource" {
                    out.push((format!("{path}.{k}"), x));
                }
                datasource_refs(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Problems of one dashboard's structure (empty when it is sound).
fn structural_problems(file: &str, d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |m: String| problems.push(format!("{file}: {m}"));

    // Identity.
    let uid = d["uid"].as_str().unwrap_or_default();
    match DASHBOARDS.iter().find(|(f, _)| *f == file) {
        Some((_, want)) if *want != uid => bad(format!("uid is {uid:?}, must stay {want:?}")),
        None => bad("not listed in DASHBOARDS (add it with its uid)".into()),
        _ => {}
    }
    if uid.is_empty() || uid.len() > 40 || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bad(format!("uid {uid:?} must be 1-40 characters of [A-Za-z0-9_-]"));
    }
    if !d["id"].is_null() {
        bad("`id` must be null: Grafana assigns it per instance".into());
    }
    if d["title"].as_str().unwrap_or_default().is_empty() {
        bad("no title".into());
    }
    if !d["schemaVersion"].is_u64() {
        bad("no schemaVersion".into());
    }

    // Variables: unique names, a datasource variable for Prometheus, queries through it.
    let vars = variables(d);
    let mut names = BTreeSet::new();
    for v in vars {
        let name = v["name"].as_str().unwrap_or_default();
        if !names.insert(name.to_string()) {
            bad(format!("variable {name:?} defined twice"));
        }
        match v["type"].as_str() {
            Some("datasource") => {
                if v["query"] != "prometheus" {
                    bad(format!("datasource variable {name:?} must list Prometheus datasources"));
                }
            }
            Some("query") => {
                if v["datasource"]["uid"] != DATASOURCE_REF {
                    bad(format!("variable {name:?} must query through ${{datasource}}"));
                }
                if label_values_query(v).is_none() {
                    bad(format!("variable {name:?}: query must be label_values(selector, label)"));
                }
            }
            other => bad(format!("variable {name:?} has unexpected type {other:?}")),
        }
    }
    if !vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource") {
        bad("no `datasource` variable".into());
    }

    // Every datasource reference anywhere is the variable (or Grafana's built-in annotations).
    let mut refs = Vec::new();
    datasource_refs(d, String::new(), &mut refs);
    for (path, r) in refs {
        let builtin = r["type"] == "grafana" && r["uid"] == "-- Grafana --" && path.starts_with(".annotations");
        if !(builtin || r["type"] == "prometheus" && r["uid"] == DATASOURCE_REF) {
            bad(format!("{path} is {r}, expected {{\"type\": \"prometheus\", \"uid\": \"{DATASOURCE_REF}\"}}"));
        }
    }

    // Every variable used is defined.
    let mut texts = Vec::new();
    strings(d, String::new(), &mut texts);
    for (path, text) in &texts {
        for name in referenced_variables(text) {
            if !names.contains(&name) && !BUILTIN_VARIABLES.contains(&name.as_str()) {
                bad(format!("{path} uses ${name}, which is not defined"));
            }
        }
    }
    // Links to other dashboards name dashboards that exist.
    for (path, text) in &texts {
        for (i, _) in text.match_indices("/d/") {
            let target: String = text[i + 3..].chars().take_while(|c| *c != '/' && *c != '?').collect();
            if !DASHBOARDS.iter().any(|(_, u)| *u == target) {
                bad(format!("{path} links to dashboard uid {target:?}, which is not shipped"));
            }
        }
    }

    // Panels: unique ids, descriptions, queries through the variable, a grid without overlaps.
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or_default();
        let what = format!("panel {} {title:?}", p["id"]);
        match p["id"].as_u64() {
            Some(id) if !ids.insert(id) => bad(format!("{what}: id {id} used twice")),
            None => bad(format!("{what}: no integer id")),
            _ => {}
        }
        if title.is_empty() {
            bad(format!("{what}: no title"));
        }
        let kind = p["type"].as_str().unwrap_or_default();
        if kind == "row" {
            if p["collapsed"] == true {
                bad(format!("{what}: collapsed rows hide their panels from this check; keep rows open"));
            }
        } else {
            if p["description"].as_str().is_none_or(|s| s.trim().is_empty()) {
                bad(format!("{what}: no description"));
            }
            let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            if targets.is_empty() && kind != "text" {
                bad(format!("{what}: a {kind} panel without queries"));
            }
            if !targets.is_empty() {
                if p["datasource"]["uid"] != DATASOURCE_REF {
                    bad(format!("{what}: panel datasource must be ${{datasource}}"));
                }
                if matches!(kind, "timeseries" | "stat") && !p["fieldConfig"]["defaults"]["unit"].is_string() {
                    bad(format!("{what}: no unit"));
                }
            }
            let mut refs = BTreeSet::new();
            for t in targets {
                let r = t["refId"].as_str().unwrap_or_default();
                if r.is_empty() || !refs.insert(r) {
                    bad(format!("{what}: missing or repeated refId {r:?}"));
                }
                if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                    bad(format!("{what} {r}: no expr"));
                }
                if t["datasource"]["uid"] != DATASOURCE_REF {
                    bad(format!("{what} {r}: query datasource must be ${{datasource}}"));
                }
            }
        }
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap_or(-1));
        if x < 0 || y < 0 || w < 1 || h < 1 || x + w > 24 {
            bad(format!("{what}: gridPos {g} must have x, y ≥ 0, w, h ≥ 1 and x + w ≤ 24"));
            continue;
        }
        for (other, [ox, oy, ow, oh]) in &boxes {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                bad(format!("{what}: gridPos {g} overlaps {other}"));
            }
        }
        boxes.push((what, [x, y, w, h]));
    }
    problems
}

#[test]
fn dashboards_are_well_formed() {
    let all = dashboards();
    let files: Vec<&str> = all.iter().map(|(f, _)| f.as_str()).collect();
    let shipped: Vec<&str> = DASHBOARDS.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, shipped, "grafana/dashboards/ must hold exactly the dashboards listed in DASHBOARDS");
    let mut problems: Vec<String> = all.iter().flat_map(|(f, d)| structural_problems(f, d)).collect();
    let mut titles = BTreeSet::new();
    for (f, d) in &all {
        if !titles.insert(d["title"].as_str().unwrap_or_default()) {
            problems.push(format!("{f}: title {} used by another dashboard", d["title"]));
        }
    }
    assert!(problems.is_empty(), "dashboard problems:\n{}", problems.join("\n"));
}

/// The checks above do catch what they claim to: each broken copy of a real dashboard fails.
#[test]
fn structural_check_catches_broken_dashboards() {
    let (file, good) = dashboards().into_iter().find(|(f, _)| f == "anchorwatch-model.json").unwrap();
    assert!(structural_problems(&file, &good).is_empty());
    let breakages: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        ("id 1 used twice", Box::new(|d| d["panels"][1]["id"] = json!(1))),
        ("overlaps", Box::new(|d| d["panels"][1]["gridPos"] = d["panels"][0]["gridPos"].clone())),
        ("x + w ≤ 24", Box::new(|d| d["panels"][0]["gridPos"]["x"] = json!(22))),
        (
            "must be ${datasource}",
            Box::new(|d| d["panels"][0]["targets"][0]["datasource"]["uid"] = json!("P1809F7CD0C75ACF3")),
        ),
        ("expected {", Box::new(|d| d["panels"][0]["datasource"] = json!({"type": "prometheus", "uid": "abc"}))),
        (
            "uses $modle",
            Box::new(|d| d["panels"][0]["targets"][0]["expr"] = json!("anchorwatch_window_rows{model=\"$modle\"}")),
        ),
        ("must stay", Box::new(|d| d["uid"] = json!("renamed"))),
        ("no description", Box::new(|d| d["panels"][0]["description"] = json!(""))),
        ("not shipped", Box::new(|d| d["links"] = json!([{"url": "/d/nope/x"}]))),
    ];
    for (expect, breaks) in breakages {
        let mut broken = good.clone();
        breaks(&mut broken);
        let problems = structural_problems(&file, &broken);
        assert!(problems.iter().any(|p| p.contains(expect)), "expected a problem with {expect:?}, got {problems:?}");
    }
}

/// The provisioning files point Grafana at the dashboards where the guide mounts them.
#[test]
fn provisioning_matches_the_guide() {
    let provider = std::fs::read_to_string(grafana_dir().join("provisioning/dashboards/anchorwatch.yml")).unwrap();
    let datasource = std::fs::read_to_string(grafana_dir().join("provisioning/datasources/anchorwatch.yml")).unwrap();
    let guide = std::fs::read_to_string(support::root().join("docs/grafana.md")).unwrap();
    let path = provider
        .lines()
        .find_map(|l| l.trim().strip_prefix("path:"))
        .expect("the dashboard provider has an options.path")
        .trim();
    assert!(provider.contains("type: file"), "the dashboard provider must read files");
    assert!(
        guide.contains(&format!("grafana/dashboards:{path}")),
        "docs/grafana.md must mount the dashboards at {path}"
    );
    assert!(
        guide.contains("grafana/provisioning:/etc/grafana/provisioning"),
        "docs/grafana.md must mount provisioning"
    );
    assert!(datasource.contains("type: prometheus"), "the provisioned datasource must be Prometheus");
}

// ---------------------------------------------------------------------------------------------
// Variables and queries, filled in as Grafana does.
// ---------------------------------------------------------------------------------------------

/// `label_values(selector, label)` of a query variable, as (selector, label).
fn label_values_query(v: &Value) -> Option<(String, String)> {
    let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str())?;
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

/// Replaces variables in a query by their values, longest names first so `$model` never eats
/// the start of a longer name.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_string();
    for name in names {
        out = out.replace(&format!("${{{name}}}"), &values[name]).replace(&format!("${name}"), &values[name]);
    }
    out
}

/// A value regex-escaped the way Grafana's Prometheus datasource escapes variable values.
fn regex_escape(value: &str) -> String {
    value.chars().fold(String::new(), |mut s, c| {
        if "\\^$*+?.()|{}[]".contains(c) {
            s.push_str("\\\\");
        }
        s.push(c);
        s
    })
}

/// A running Prometheus on loopback; killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(binary: &Path, dir: &Path, targets: &[String]) -> Self {
        let list = targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: anchorwatch\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        // A free port can be taken between our probe and Prometheus' bind: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
            let mut p = Self { child, base: format!("http://127.0.0.1:{port}"), log: log.clone() };
            let end = Instant::now() + Duration::from_secs(60);
            while Instant::now() < end {
                if p.child.try_wait().unwrap().is_some() {
                    break;
                }
                if client().get(format!("{}/-/ready", p.base)).send().is_ok_and(|r| r.status().is_success()) {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
        }
        panic!("Prometheus did not become ready; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let r = client().get(format!("{}{path}", self.base)).query(params).send().expect("Prometheus API");
        let body: Value = r.json().expect("Prometheus answers JSON");
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's series, as (labels, value).
    fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let data = self.api("/api/v1/query", &[("query", expr)]);
        let value = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
        match data["resultType"].as_str() {
            Some("vector") => {
                data["result"].as_array().unwrap().iter().map(|s| (s["metric"].clone(), value(&s["value"]))).collect()
            }
            Some("scalar") => vec![(Value::Null, value(&data["result"]))],
            other => panic!("{expr}: unexpected result type {other:?}"),
        }
    }

    /// The values of `label` over the series `selector` matches: Grafana's `label_values`.
    fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let data = self.api("/api/v1/series", &[("match[]", selector)]);
        let set: BTreeSet<String> =
            data.as_array().unwrap().iter().filter_map(|s| s[label].as_str().map(String::from)).collect();
        set.into_iter().collect()
    }

    fn has_data(&self, expr: &str) -> bool {
        self.query(expr).iter().any(|(_, v)| v.is_finite())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- prometheus log ---\n{}\n--- end of log ---",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// The variables of a dashboard as Grafana fills them on first load: each query variable's
/// options come from Prometheus (its query must return some); the saved `current` value when it
/// is among them, "All" when saved so (every option, as Grafana's regex), else the first option.
fn fill_variables(prom: &Prometheus, uid: &str, d: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::from([
        ("__rate_interval".to_string(), RATE_INTERVAL.to_string()),
        ("__interval".to_string(), "15s".to_string()),
        ("__range".to_string(), "6h".to_string()),
    ]);
    for v in variables(d) {
        let name = v["name"].as_str().unwrap().to_string();
        let Some((selector, label)) = label_values_query(v) else { continue };
        let selector = substitute(&selector, &values);
        let options = prom.label_values(&selector, &label);
        if options.is_empty() {
            return Err(format!("{uid}: variable {name} has no values yet: label_values({selector}, {label})"));
        }
        let current = &v["current"]["value"];
        let wants_all = current == "$__all" || current.as_array().is_some_and(|a| a.iter().any(|x| x == "$__all"));
        let value = if wants_all {
            assert_eq!(v["includeAll"], true, "{uid}: variable {name} defaults to All without includeAll");
            match v["allValue"].as_str() {
                Some(all) if !all.is_empty() => all.to_string(),
                _ if options.len() == 1 => regex_escape(&options[0]),
                _ => format!("({})", options.iter().map(|o| regex_escape(o)).collect::<Vec<_>>().join("|")),
            }
        } else {
            match current.as_str() {
                Some(c) if options.iter().any(|o| o == c) => c.to_string(),
                _ => options[0].clone(),
            }
        };
        values.insert(name, value);
    }
    Ok(values)
}

/// One panel query of one dashboard, variables filled in.
struct PanelQuery {
    uid: String,
    panel: String,
    ref_id: String,
    expr: String,
}

/// Every panel query of every dashboard, or why the variables cannot be filled in (yet).
fn panel_queries(prom: &Prometheus) -> Result<Vec<PanelQuery>, String> {
    let mut out = Vec::new();
    for (_, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap().to_string();
        let values = fill_variables(prom, &uid, &d)?;
        for p in panels(&d) {
            for t in p["targets"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let expr = substitute(t["expr"].as_str().unwrap(), &values);
                assert!(!expr.contains('$'), "{uid} {}: unfilled variable in {expr}", p["title"]);
                out.push(PanelQuery {
                    uid: uid.clone(),
                    panel: p["title"].as_str().unwrap_or_default().to_string(),
                    ref_id: t["refId"].as_str().unwrap_or_default().to_string(),
                    expr,
                });
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The system under observation.
// ---------------------------------------------------------------------------------------------

/// A tiny HTTP/1.1 server standing in for the predictor behind the proxy and for the alert
/// receivers: `/predict` answers a prediction, `/broken` a 500, anything else 200. It counts
/// requests per path.
struct Tiny {
    addr: SocketAddr,
    hits: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

impl Tiny {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let counted = counted.clone();
                std::thread::spawn(move || Self::serve(stream, &counted));
            }
        });
        Self { addr, hits }
    }

    /// One request per connection (`Connection: close`), which every client here handles.
    fn serve(stream: TcpStream, hits: &std::sync::Mutex<BTreeMap<String, usize>>) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let (status, answer) = match path.as_str() {
            "/predict" => {
                let age = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["features"]["age"].as_f64());
                let bad = if age.unwrap_or(0.0) < 40.0 { 0.75 } else { 0.25 };
                let label = if bad >= 0.5 { "bad" } else { "good" };
                ("200 OK", json!({"prediction": label, "scores": {"good": 1.0 - bad, "bad": bad}}).to_string())
            }
            "/broken" => ("500 Internal Server Error", r#"{"error": "broken on purpose"}"#.to_string()),
            _ => ("200 OK", "{}".to_string()),
        };
        let mut stream = &stream;
        let head = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n");
        let _ = write!(stream, "{head}content-length: {}\r\n\r\n{answer}", answer.len());
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Posts `body` as JSON through the proxy; the status it answers.
fn post(proxy: &RemoteProxy, path: &str, body: &str) -> u16 {
    client()
        .post(format!("{}{path}", proxy.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .expect("request through the proxy")
        .status()
        .as_u16()
}

const START: i64 = 1_795_132_800; // 2026-11-20T00:00:00Z
const ROWS_PER_HOUR: usize = 600;

/// `credit`, analysed against a reference file with labels and calibrated thresholds; `served`,
/// an ONNX model the built-in predictor serves; `sidecar`, fed by the proxy; two alert rules on
/// dataset drift (one fires at once, one stays pending) and two receivers (one accepts, one
/// answers 500 until anchorwatch gives up).
fn write_config(dir: &Path, receivers: SocketAddr) -> PathBuf {
    World::Uncertain.write_reference(dir, 1000);
    let text = format!(
        r#"[store]
root = "store"
[collector]
flush_interval = "1h"

[[models]]
name = "credit"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [
  {{ name = "age", kind = "numerical" }},
  {{ name = "region", kind = "categorical" }},
  {{ name = "income", kind = "numerical" }},
  {{ name = "vip", kind = "boolean" }},
]
[models.analysis]
reference = "reference.csv"
window = "1h"
interval = "1h"
label_lookback = "3650d"
positive_class = "bad"
thresholds.accuracy = {{ calibrate = true }}
thresholds.label_coverage = {{ lower = 0.5 }}

[[models]]
name = "served"
[models.schema]
prediction = "categorical"
scores = ["bad", "good"]
features = [
  {{ name = "age", kind = "numerical" }},
  {{ name = "region", kind = "categorical" }},
  {{ name = "vip", kind = "boolean" }},
]
[models.analysis]
enabled = false

[[models]]
name = "sidecar"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [{{ name = "age", kind = "numerical" }}]
[models.analysis]
enabled = false

[alerts]
default_rules = false
retry = {{ initial_backoff = "100ms", max_backoff = "200ms", max_attempts = 2 }}

[[alerts.rules]]
name = "Drift"
watch = "dataset_drift_share"
op = ">="
threshold = 0.5

[[alerts.rules]]
name = "DriftSustained"
watch = "dataset_drift_share"
op = ">="
threshold = 0.5
for = "3 windows"

[[alerts.receivers]]
name = "hook"
type = "webhook"
url = "http://{receivers}/hook"

[[alerts.receivers]]
name = "broken"
type = "webhook"
url = "http://{receivers}/broken"
"#
    );
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One hour of `credit` traffic with its labels, a rejected request, and proxied predictions
/// (plus one body the proxy cannot read).
fn feed(server: &Server, proxy: &RemoteProxy, rng: &mut StdRng, hour: i64) {
    let mut records = Vec::new();
    let mut labels = Vec::new();
    for i in 0..ROWS_PER_HOUR {
        let (mut r, label) = World::Uncertain.applicant(rng, hour >= 1);
        let id = format!("h{hour}-{i}");
        r["prediction_id"] = json!(id);
        r["timestamp"] = json!(START + hour * 3600 + i as i64 * 5);
        records.push(r);
        labels.push(json!({"prediction_id": id, "label": label}));
    }
    let (status, answer) = server.post_json("/v1/models/credit/predictions", &json!(records));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = server.post_json("/v1/models/credit/labels", &json!(labels));
    assert_eq!(status, 200, "{answer}");
    let (status, _) = server.post_json("/v1/models/credit/predictions", &json!({"features": {"age": "old"}}));
    assert_eq!(status, 400, "a wrong type must be rejected");
    for age in [25, 35, 45, 55] {
        assert_eq!(post(proxy, "/predict", &json!({"features": {"age": age}}).to_string()), 200);
    }
    assert_eq!(post(proxy, "/predict", "not json"), 200, "the proxy forwards what it cannot capture");
    let applicants: Vec<Value> = (0..8)
        .map(|i| {
            let region = ["north", "south"][i % 2];
            json!({"features": {"age": 20 + 5 * i, "region": region, "vip": i % 3 == 0}})
        })
        .collect();
    let (status, answer) = server.post_json("/v1/models/served/predict", &json!(applicants));
    assert_eq!(status, 200, "{answer}");
    let (status, _) = server.post_json("/v1/models/served/predict", &json!({"features": {"age": "old"}}));
    assert_eq!(status, 400, "the predictor must refuse a wrong type");
}

fn find_prometheus() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"));
    on_path.chain([PathBuf::from(DEFAULT_PROMETHEUS)]).find(|p| p.is_file())
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    let Some(prometheus) = find_prometheus() else {
        let why = format!(
            "prometheus not found on PATH or at {DEFAULT_PROMETHEUS}; install Debian's `prometheus` package \
             (`make setup-system`, or `apt-get install --no-install-recommends prometheus`)"
        );
        support::skip(&why);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(models) = support::make_models(dir.path()) else { return };
    let model = std::fs::read(models.join("credit_v1.onnx")).unwrap();
    let tiny = Tiny::start();
    let server = Server::start(&write_config(dir.path(), tiny.addr));
    let (status, answer) = server.post("/v1/models/served/versions", "application/octet-stream", model);
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = server.post_json("/v1/models/served/versions/1/promote", &json!({}));
    assert_eq!(status, 200, "{answer}");
    let proxy =
        RemoteProxy::start(&format!("http://{}", tiny.addr), "sidecar", &server.base, &dir.path().join("spool"), &[]);
    let server_addr = server.base.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&prometheus, dir.path(), &[server_addr, proxy.metrics_addr.clone()]);

    // Both targets are scraped before any traffic, so rates and quantiles see it arrive.
    wait_until(Duration::from_secs(60), "both targets up in Prometheus", || {
        let targets = prom.api("/api/v1/targets", &[]);
        let active = targets["activeTargets"].as_array().cloned().unwrap_or_default();
        active.len() == 2 && active.iter().all(|t| t["health"] == "up")
    });

    // Hour 0 as the reference looks, flushed; then hour 1 drifted, flushed again and analysed.
    // Two flushes a scrape apart give the per-model flush histogram a rate.
    let mut rng = StdRng::seed_from_u64(2);
    feed(&server, &proxy, &mut rng, 0);
    server.flush();
    wait_until(Duration::from_secs(60), "the first flush and captured rows scraped", || {
        prom.has_data(r#"anchorwatch_flush_duration_seconds_count{model="credit"}"#)
            && prom.has_data("anchorwatch_capture_rows_total > 0")
    });
    feed(&server, &proxy, &mut rng, 1);
    server.flush();
    let (status, summary) = server.post_json("/v1/models/credit/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");
    let drift: Value = client().get(server.url("/v1/models/credit/drift")).send().unwrap().json().unwrap();
    let newest = drift["windows"].as_array().and_then(|w| w.last()).cloned().unwrap_or_default();
    assert!(newest["dataset_drift_share"].as_f64() >= Some(0.5), "the traffic must drift: {newest}");
    wait_until(Duration::from_secs(60), "notifications to both receivers", || {
        tiny.hits("/hook") >= 1 && tiny.hits("/broken") >= 2
    });

    // Every panel query, until all have data (scrapes are a second apart) or the deadline.
    // Every panel query, variables filled in, until all have data (scrapes are a second apart)
    // or the deadline. The variables are filled in again each time, as their series appear.
    let exempt =
        |q: &PanelQuery| NO_DATA_HERE.iter().any(|(u, p, r, _)| *u == q.uid && *p == q.panel && *r == q.ref_id);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut polls = 0;
    let queries = loop {
        polls += 1;
        let problems = match panel_queries(&prom) {
            Ok(queries) => {
                let missing: Vec<String> = queries
                    .iter()
                    .filter(|q| !exempt(q))
                    .filter_map(|q| {
                        let series = prom.query(&q.expr);
                        let has_data = series.iter().any(|(_, v)| v.is_finite());
                        (!has_data)
                            .then(|| format!("{} / {} / {}: {}  →  {series:?}", q.uid, q.panel, q.ref_id, q.expr))
                    })
                    .collect();
                if missing.is_empty() {
                    break queries;
                }
                format!(
                    "{} of {} panel queries returned no finite value:\n{}",
                    missing.len(),
                    queries.len(),
                    missing.join("\n")
                )
            }
            Err(why) => why,
        };
        assert!(Instant::now() < deadline, "after {polls} polls over 90 s: {problems}");
        std::thread::sleep(Duration::from_millis(500));
    };
    for (u, p, r, why) in NO_DATA_HERE {
        assert!(
            queries.iter().any(|q| q.uid == *u && q.panel == *p && q.ref_id == *r),
            "NO_DATA_HERE names {u} / {p} / {r}, which no dashboard has any more: remove it"
        );
        eprintln!("not required to have data here: {u} / {p} / {r}: {why}");
    }
    eprintln!("{} panel queries over {} dashboards returned data", queries.len(), DASHBOARDS.len());
}
