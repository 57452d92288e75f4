//! The HTTP surface: the OpenAPI description matches the routes, probes answer, and bearer tokens
//! with scopes guard the API when configured.

use crate::support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::{Server, client, config};

#[test]
fn openapi_describes_exactly_the_routes_served() {
    let spec: Value = serde_json::from_str(anchorwatch::server::OPENAPI).unwrap();
    let mut described = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> =
        anchorwatch::server::routes().iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(described, routed, "docs/openapi.json and the server's routes disagree");

    // Every described route exists on a live server: no 404 `no_route`, no 405.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), ""));
    for (method, path) in &described {
        let url = server.url(&path.replace("{model}", "credit").replace("{id}", "x"));
        let request = match method.as_str() {
            "GET" => client().get(&url),
            "DELETE" => client().delete(&url),
            "POST" => client().post(&url).header("content-type", "application/json").body("{}"),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert_ne!(body["error"]["code"], "no_route", "{method} {path} is described but not served");
    }
    let response = client().get(server.url("/v1/nothing-here")).send().unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().unwrap()["error"]["code"], "no_route");
    let response = client().get(server.url("/v1/models/credit/predictions")).send().unwrap();
    assert_eq!(response.status(), 405);

    assert_eq!(client().get(server.url("/healthz")).send().unwrap().status(), 200);
    assert_eq!(client().get(server.url("/readyz")).send().unwrap().status(), 200);
    let served: Value = client().get(server.url("/openapi.json")).send().unwrap().json().unwrap();
    assert_eq!(served, spec);
    server.stop();
}

/// docs/api.md's table gives each route's scope; the server's own declarations must say the same,
/// route by route, and a token without that scope must be refused on a live server.
#[test]
fn every_route_needs_the_scope_docs_api_md_gives_it() {
    let guide = std::fs::read_to_string(support::root().join("docs/api.md")).unwrap();
    let mut documented = BTreeSet::new();
    for row in guide.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let route = cells[0].trim_start_matches("| `").trim_end_matches('`');
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.split('?').next().unwrap();
        documented.insert((method.to_string(), path.to_string(), cells[1].to_string()));
    }
    let declared: BTreeSet<(String, String, String)> = anchorwatch::server::routes()
        .iter()
        .map(|r| {
            let scope =
                r.scope.map_or("—".to_string(), |s| serde_json::to_value(s).unwrap().as_str().unwrap().to_string());
            (r.method.to_string(), r.path.to_string(), scope)
        })
        .collect();
    assert_eq!(documented, declared, "docs/api.md's scopes and the server's routes disagree");

    // On a live server with tokens, each scoped route refuses a token of every other scope (403)
    // and no token at all (401); a public route needs none.
    let dir = tempfile::tempdir().unwrap();
    let tokens = r#"
[auth]
tokens = [
  { name = "i", token = "ingest-token-0123456789abcdef", scopes = ["ingest"] },
  { name = "r", token = "read-token-0123456789abcdefgh", scopes = ["read"] },
]
"#;
    let server = Server::start(&config(dir.path(), tokens));
    // A UI page answers a request without credentials with a redirect to /login: not followed.
    let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let token = |scope: &str| match scope {
        "ingest" => "ingest-token-0123456789abcdef",
        _ => "read-token-0123456789abcdefgh",
    };
    for (method, path, scope) in &declared {
        let url = server.url(&path.replace("{model}", "credit").replace("{id}", "x").replace("{version}", "1"));
        let send = |bearer: Option<&str>| {
            let request = match method.as_str() {
                "GET" => client.get(&url),
                "DELETE" => client.delete(&url),
                _ => client.post(&url).header("content-type", "application/json").body("{}"),
            };
            let request = match bearer {
                Some(t) => request.bearer_auth(t),
                None => request,
            };
            request.send().unwrap().status().as_u16()
        };
        if scope == "—" {
            assert!(![401, 403].contains(&send(None)), "{method} {path} is public");
            continue;
        }
        assert!([401, 303].contains(&send(None)), "{method} {path} without a token");
        for other in ["ingest", "read"].into_iter().filter(|o| o != scope) {
            assert_eq!(send(Some(token(other))), 403, "{method} {path} ({scope}) with a {other} token");
        }
    }
}

#[test]
fn tokens_and_scopes_guard_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let auth = "[auth]\ntokens = [\n  { name = \"sidecar\", token_env = \"ANCHORWATCH_TEST_INGEST\", scopes = [\"ingest\"] },\n  { name = \"analyst\", token = \"read-token-0123456789\", scopes = [\"read\"] },\n  { name = \"ops\", token_env = \"ANCHORWATCH_TEST_ADMIN\", scopes = [\"admin\"] },\n]\n";
    let cfg = config(dir.path(), auth);
    let server = Server::start_with_env(
        &cfg,
        &[("ANCHORWATCH_TEST_INGEST", "ingest-token-0123456789"), ("ANCHORWATCH_TEST_ADMIN", "admin-token-0123456789")],
    );
    let record = json!({"features": {"vip": true}, "prediction": "good"});
    let post = |path: &str, token: Option<&str>, body: &Value| {
        let mut r = client().post(server.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null)["error"]["code"].as_str().map(str::to_string))
    };
    let ingest = "/v1/models/credit/predictions";
    let query = json!({"model": "credit", "sql": "SELECT count(*) AS n FROM predictions"});
    assert_eq!(post(ingest, None, &record), (401, Some("unauthorized".into())));
    assert_eq!(post(ingest, Some("wrong-token-0123456789"), &record), (401, Some("unauthorized".into())));
    assert_eq!(post(ingest, Some("read-token-0123456789"), &record), (403, Some("forbidden".into())));
    assert_eq!(post(ingest, Some("ingest-token-0123456789"), &record), (200, None));
    assert_eq!(post("/v1/query", Some("ingest-token-0123456789"), &query), (403, Some("forbidden".into())));
    assert_eq!(post("/v1/flush", Some("read-token-0123456789"), &json!({})), (403, Some("forbidden".into())));
    assert_eq!(post("/v1/flush", Some("admin-token-0123456789"), &json!({})), (200, None));
    assert_eq!(post("/v1/query", Some("read-token-0123456789"), &query), (200, None));
    // Probes and metrics stay open for orchestrators and Prometheus.
    assert_eq!(client().get(server.url("/healthz")).send().unwrap().status(), 200);
    assert_eq!(client().get(server.url("/metrics")).send().unwrap().status(), 200);
    server.stop();
}
