//! Static checks of the deployment story: the Dockerfile, `deploy/kubernetes/` and
//! `.github/workflows/` parse and agree with each other and with the binary. Every manifest is
//! validated against the Kubernetes schemas (kubernetes-validate, offline, from `.venv`); every
//! port a Service, probe or ServiceMonitor names is one the container's args or config listen on;
//! every `anchorwatch` subcommand and flag exists in the built binary's `--help`; the configs pass
//! `anchorwatch check-config`; the sidecar proxy and the server start with the manifests' own args
//! and answer their probes; the image the manifests run is the one the release workflow publishes.
//!
//! Nothing here builds the image or talks to a cluster (no Docker engine, no Kubernetes here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, free_port, root};

const BIN: &str = env!("CARGO_BIN_EXE_anchorwatch");

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A program in the project's `.venv` (set up by `make test`); its absence is a failure, not a
/// skip.
fn venv_bin(name: &str) -> PathBuf {
    let path = support::venv_bin(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it installs tests/requirements.txt into .venv)",
        path.display()
    );
    path
}

/// Every YAML document of each file, parsed by PyYAML (`safe_load_all`) and handed over as JSON.
/// PyYAML reads YAML 1.1, as GitHub Actions and Kubernetes do: the key `on` becomes `true`.
fn yaml_files(files: &[PathBuf]) -> Vec<(String, Vec<Value>)> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        print(json.dumps([list(yaml.safe_load_all(open(p))) for p in sys.argv[1:]]))";
    let out = Command::new(venv_bin("python")).arg("-c").arg(SCRIPT).args(files).output().expect("run python");
    assert!(out.status.success(), "YAML does not parse:\n{}", String::from_utf8_lossy(&out.stderr));
    let parsed: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).expect("json from python");
    files
        .iter()
        .zip(parsed)
        .map(|(p, docs)| {
            let name = p.strip_prefix(root()).unwrap_or(p).display().to_string();
            let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
            assert!(!docs.is_empty(), "{name}: no YAML document");
            (name, docs)
        })
        .collect()
}

fn yaml_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir}: no YAML files");
    files
}

/// The Kubernetes objects of `deploy/kubernetes/` (the Kustomization aside), with their file.
fn objects() -> Vec<(String, Value)> {
    yaml_files(&yaml_in("deploy/kubernetes"))
        .into_iter()
        .flat_map(|(file, docs)| docs.into_iter().map(move |d| (file.clone(), d)))
        .filter(|(_, d)| d["kind"] != "Kustomization")
        .collect()
}

fn of_kind<'a>(objects: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|(_, o)| o["kind"] == kind).map(|(_, o)| o).collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().expect("metadata.name")
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in `{addr}`"))
}

/// The value of `--flag` in `args` (`--flag value` or `--flag=value`).
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            Some(args.get(i + 1).unwrap_or_else(|| panic!("{name} without a value")).as_str())
        } else {
            a.strip_prefix(name).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn args_of(container: &Value) -> Vec<String> {
    arr(&container["args"]).iter().map(|a| str_of(a).to_string()).collect()
}

/// The image that runs anchorwatch: the release workflow's `ghcr.io/${{ github.repository }}`,
/// with the repository from Cargo.toml, tagged with the crate's version (the semver tag).
fn published_image() -> String {
    let cargo: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let repo_url = cargo["workspace"]["package"]["repository"].as_str().unwrap();
    let repo = repo_url.strip_prefix("https://github.com/").expect("a GitHub repository URL");
    format!("ghcr.io/{}:{}", repo.to_lowercase(), env!("CARGO_PKG_VERSION"))
}

fn is_anchorwatch(container: &Value) -> bool {
    container["image"].as_str().is_some_and(|i| i.starts_with("ghcr.io/anchorwatch/"))
}

/// Pod templates of the Deployments: (deployment, pod spec, pod labels).
fn pods(objects: &[(String, Value)]) -> Vec<(&str, &Value, &Value)> {
    of_kind(objects, "Deployment")
        .into_iter()
        .map(|d| (name(d), &d["spec"]["template"]["spec"], &d["spec"]["template"]["metadata"]["labels"]))
        .collect()
}

/// The text of the file a container sees at `path`, when a ConfigMap volume provides it.
fn mounted_file<'a>(objects: &'a [(String, Value)], pod: &Value, container: &Value, path: &str) -> &'a str {
    for mount in arr(&container["volumeMounts"]) {
        let dir = str_of(&mount["mountPath"]);
        let Some(key) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else { continue };
        let volume = arr(&pod["volumes"]).iter().find(|v| v["name"] == mount["name"]).expect("mounted volume");
        let map = volume["configMap"]["name"].as_str().unwrap_or_else(|| panic!("{path}: not from a ConfigMap"));
        let cm = of_kind(objects, "ConfigMap").into_iter().find(|c| name(c) == map).expect("ConfigMap exists");
        let text = cm["data"][key].as_str();
        return text.unwrap_or_else(|| panic!("ConfigMap {map} has no key {key} (mounted as {path})"));
    }
    panic!("{path}: no volume of the container provides it")
}

/// What a anchorwatch container listens on, from its args and config: (port, serves probes and /metrics).
fn listens(objects: &[(String, Value)], pod: &Value, container: &Value) -> BTreeMap<u16, bool> {
    let args = args_of(container);
    let config =
        flag(&args, "--config").map(|p| toml::from_str::<toml::Table>(mounted_file(objects, pod, container, p)));
    let config = config.map(|c| c.expect("mounted config is TOML"));
    let from_config = |section: &str, key: &str| {
        config
            .as_ref()
            .and_then(|c| c.get(section))
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let listen = flag(&args, "--listen").map(str::to_owned).or_else(|| from_config("server", "listen"));
            BTreeMap::from([(port_of(&listen.expect("serve: server.listen or --listen")), true)])
        }
        Some("proxy") => {
            let listen = flag(&args, "--listen").map(str::to_owned).or_else(|| from_config("proxy", "listen"));
            let metrics =
                flag(&args, "--metrics-listen").map(str::to_owned).or_else(|| from_config("proxy", "metrics_listen"));
            let metrics = metrics.expect("the sidecar proxy needs --metrics-listen for its probes and /metrics");
            BTreeMap::from([(port_of(&listen.expect("proxy: --listen")), false), (port_of(&metrics), true)])
        }
        other => panic!("{}: unexpected anchorwatch command {other:?}", container["name"]),
    }
}

/// A container port by name or number.
fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    let ports = arr(&container["ports"]);
    match port {
        Value::String(n) => ports.iter().find(|p| p["name"] == n.as_str()).and_then(|p| p["containerPort"].as_u64()),
        Value::Number(n) => {
            ports.iter().find(|p| p["containerPort"].as_u64() == n.as_u64()).and_then(|p| p["containerPort"].as_u64())
        }
        _ => None,
    }
    .map(|p| p as u16)
}

fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("selector labels");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels[k] == *v)
}

/// The Dockerfile as (instruction, arguments), continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (i, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (i.to_uppercase(), rest.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

fn docker_all(instruction: &str) -> Vec<String> {
    dockerfile().into_iter().filter(|(i, _)| i == instruction).map(|(_, a)| a).collect()
}

fn docker_json(instruction: &str) -> Vec<String> {
    let all = docker_all(instruction);
    let [args] = all.as_slice() else { panic!("Dockerfile: expected one {instruction}, found {}", all.len()) };
    serde_json::from_str(args).unwrap_or_else(|_| panic!("Dockerfile: {instruction} must be exec form (JSON)"))
}

/// The Dockerfile's `ENV` settings.
fn docker_env() -> BTreeMap<String, String> {
    docker_all("ENV").iter().filter_map(|a| a.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

fn exposed() -> BTreeSet<u16> {
    docker_all("EXPOSE").iter().flat_map(|a| a.split_whitespace()).map(|p| p.parse().expect("EXPOSE port")).collect()
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let files = yaml_in("deploy/kubernetes");
    let out = Command::new(venv_bin("kubernetes-validate")).arg("--strict").args(&files).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubernetes-validate --strict failed:\n{report}");
    // Only the kinds outside core Kubernetes may lack a schema; those get the structural checks below.
    for line in report.lines().filter(|l| l.contains("Couldn't find schema")) {
        assert!(line.contains("kind Kustomization") || line.contains("kind ServiceMonitor"), "{line}");
    }
    let core = objects().iter().filter(|(_, o)| o["kind"] != "ServiceMonitor").count();
    assert_eq!(report.lines().filter(|l| l.contains(" passed ")).count(), core, "{report}");
}

#[test]
fn kustomization_lists_every_manifest() {
    let docs = yaml_files(&[root().join("deploy/kubernetes/kustomization.yaml")]);
    let listed: BTreeSet<&str> = arr(&docs[0].1[0]["resources"]).iter().map(str_of).collect();
    let present: BTreeSet<String> = yaml_in("deploy/kubernetes")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present.iter().map(String::as_str).collect(), "kustomization.yaml resources");
    let namespace = docs[0].1[0]["namespace"].as_str().unwrap();
    for (file, o) in objects() {
        if o["kind"] != "Namespace" {
            assert_eq!(o["metadata"]["namespace"], namespace, "{file}: {}", name(&o));
        }
    }
}

#[test]
fn container_ports_and_probes_are_what_anchorwatch_listens_on() {
    let objects = objects();
    let mut seen = BTreeSet::new();
    for (deployment, pod, _) in pods(&objects) {
        let containers = arr(&pod["containers"]);
        for c in containers.iter().filter(|c| is_anchorwatch(c)) {
            let at = format!("{deployment}/{}", c["name"]);
            let listening = listens(&objects, pod, c);
            let declared: BTreeSet<u16> =
                arr(&c["ports"]).iter().map(|p| p["containerPort"].as_u64().unwrap() as u16).collect();
            assert_eq!(declared, listening.keys().copied().collect(), "{at}: containerPorts vs listen addresses");
            seen.extend(declared);
            for (probe, path) in
                [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
            {
                let get = &c[probe]["httpGet"];
                if get.is_null() {
                    assert!(probe == "startupProbe", "{at}: no {probe}");
                    continue;
                }
                assert_eq!(get["path"], path, "{at}: {probe}");
                let port =
                    resolve_port(c, &get["port"]).unwrap_or_else(|| panic!("{at}: {probe} port {}", get["port"]));
                assert_eq!(listening.get(&port), Some(&true), "{at}: {probe} on {port}, which serves no probes");
            }
            // The image's user, not root.
            let security = if c["securityContext"]["runAsUser"].is_null() {
                &pod["securityContext"]
            } else {
                &c["securityContext"]
            };
            assert_eq!(security["runAsNonRoot"], true, "{at}");
            let user = docker_all("USER").pop().expect("Dockerfile USER");
            assert_eq!(security["runAsUser"].to_string(), user.split(':').next().unwrap(), "{at}: runAsUser vs USER");
        }
        // A sidecar's upstream is another container of the same Pod.
        for c in containers.iter().filter(|c| is_anchorwatch(c) && args_of(c)[0] == "proxy") {
            let args = args_of(c);
            let upstream = flag(&args, "--upstream").map(str::to_owned).unwrap_or_else(|| {
                let config: toml::Table =
                    toml::from_str(mounted_file(&objects, pod, c, flag(&args, "--config").unwrap())).unwrap();
                config["proxy"]["upstream"].as_str().expect("[proxy] upstream").to_owned()
            });
            let port = port_of(upstream.trim_end_matches('/'));
            assert!(
                upstream.starts_with("http://127.0.0.1:") || upstream.starts_with("http://localhost:"),
                "{upstream}"
            );
            let sibling =
                containers.iter().any(|o| o["name"] != c["name"] && resolve_port(o, &Value::from(port)).is_some());
            assert!(sibling, "{deployment}: the proxy's upstream port {port} is no other container's port");
        }
    }
    assert_eq!(seen, exposed(), "ports anchorwatch containers use vs the Dockerfile's EXPOSE");
}

#[test]
fn services_and_service_monitors_reach_real_ports() {
    let objects = objects();
    let pods = pods(&objects);
    let services = of_kind(&objects, "Service");
    for svc in &services {
        let targets: Vec<_> = pods.iter().filter(|(_, _, labels)| selects(&svc["spec"]["selector"], labels)).collect();
        assert!(!targets.is_empty(), "Service {} selects no Deployment's Pods", name(svc));
        for port in arr(&svc["spec"]["ports"]) {
            let target = if port["targetPort"].is_null() { &port["port"] } else { &port["targetPort"] };
            for (deployment, pod, _) in &targets {
                let found = arr(&pod["containers"]).iter().find_map(|c| resolve_port(c, target).map(|p| (c, p)));
                let (c, p) =
                    found.unwrap_or_else(|| panic!("Service {}: targetPort {target} not in {deployment}", name(svc)));
                if is_anchorwatch(c) {
                    assert!(exposed().contains(&p), "Service {}: port {p} is not EXPOSEd by the Dockerfile", name(svc));
                }
            }
        }
    }
    let monitors = of_kind(&objects, "ServiceMonitor");
    assert!(!monitors.is_empty(), "no ServiceMonitor");
    for m in monitors {
        assert_eq!(m["apiVersion"], "monitoring.coreos.com/v1");
        let selected: Vec<_> = services
            .iter()
            .filter(|s| selects(&m["spec"]["selector"]["matchLabels"], &s["metadata"]["labels"]))
            .collect();
        assert!(!selected.is_empty(), "ServiceMonitor {} selects no Service", name(m));
        let endpoints = arr(&m["spec"]["endpoints"]);
        assert!(!endpoints.is_empty(), "ServiceMonitor {}: no endpoints", name(m));
        for e in endpoints {
            assert_eq!(e["path"], "/metrics", "ServiceMonitor {}", name(m));
            for svc in &selected {
                let port = arr(&svc["spec"]["ports"]).iter().find(|p| p["name"] == e["port"]);
                let port = port.unwrap_or_else(|| {
                    panic!("ServiceMonitor {}: Service {} has no port {}", name(m), name(svc), e["port"])
                });
                // The port must serve /metrics: serve's listen or the proxy's --metrics-listen.
                for (deployment, pod, labels) in &pods {
                    if !selects(&svc["spec"]["selector"], labels) {
                        continue;
                    }
                    for c in arr(&pod["containers"]).iter().filter(|c| is_anchorwatch(c)) {
                        if let Some(p) = resolve_port(c, &port["targetPort"]) {
                            assert_eq!(
                                listens(&objects, pod, c)[&p],
                                true,
                                "{deployment}: port {p} serves no /metrics"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_anchorwatch_command_and_flag_exists() {
    let objects = objects();
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    for (deployment, pod, _) in pods(&objects) {
        for c in arr(&pod["containers"]).iter().filter(|c| is_anchorwatch(c)) {
            assert!(c["command"].is_null(), "{deployment}: keep the image's ENTRYPOINT (anchorwatch); use args");
            commands.push((format!("{deployment}/{}", c["name"]), args_of(c)));
        }
    }
    assert_eq!(docker_json("ENTRYPOINT"), ["anchorwatch"]);
    commands.push(("Dockerfile CMD".into(), docker_json("CMD")));
    assert!(commands.len() >= 3);

    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "anchorwatch {args:?} --help failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&[]);
    for (at, args) in &commands {
        let sub = args.first().unwrap_or_else(|| panic!("{at}: no subcommand"));
        assert!(top.lines().any(|l| l.trim_start().starts_with(&format!("{sub} "))), "{at}: no subcommand `{sub}`");
        let sub_help = help(&[sub]);
        for f in args.iter().filter(|a| a.starts_with("--")) {
            let f = f.split('=').next().unwrap();
            assert!(
                sub_help.contains(&format!("{f} ")) || sub_help.contains(&format!("{f}\n")),
                "{at}: `{sub} {f}` does not exist"
            );
        }
    }
}

/// Writes `text` as `name` in a fresh folder, so relative paths in it resolve there.
fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Token values for every key of the Secret (the committed placeholders are too short on purpose).
fn secret_env(objects: &[(String, Value)]) -> BTreeMap<String, String> {
    let secret = of_kind(objects, "Secret").into_iter().next().expect("a Secret for the tokens");
    let data = secret["stringData"].as_object().expect("Secret stringData");
    data.keys().map(|k| (k.clone(), format!("test-{}-0123456789abcdef", k.to_lowercase()))).collect()
}

fn server_container(objects: &[(String, Value)]) -> (&Value, &Value) {
    pods(objects)
        .into_iter()
        .flat_map(|(_, pod, _)| arr(&pod["containers"]).iter().map(move |c| (pod, c)))
        .find(|(_, c)| is_anchorwatch(c) && args_of(c)[0] == "serve")
        .expect("a Deployment running `anchorwatch serve`")
}

fn check_config(path: &Path, env: &BTreeMap<String, String>) {
    let out = Command::new(BIN).arg("check-config").arg(path).envs(env).output().unwrap();
    assert!(
        out.status.success(),
        "anchorwatch check-config {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn configs_pass_check_config_and_tokens_come_from_the_secret() {
    let objects = objects();
    let (pod, c) = server_container(&objects);
    let args = args_of(c);
    let text = mounted_file(&objects, pod, c, flag(&args, "--config").expect("serve --config"));
    let env = secret_env(&objects);
    let (_dir, path) = temp_file("anchorwatch.toml", text);
    check_config(&path, &env);

    // Each token_env is a key of the Secret, and the Secret reaches the server's environment.
    let config: toml::Table = toml::from_str(text).unwrap();
    let tokens = config["auth"]["tokens"].as_array().expect("[auth] tokens");
    let secret = of_kind(&objects, "Secret")[0];
    let from_secret = arr(&c["envFrom"]).iter().any(|e| e["secretRef"]["name"] == name(secret));
    assert!(from_secret, "the server's envFrom does not name Secret {}", name(secret));
    for t in tokens {
        let var = t["token_env"].as_str().expect("tokens come from the environment (token_env), not the file");
        assert!(env.contains_key(var), "token_env {var} is not a key of Secret {}", name(secret));
    }
    // The sidecars' collector token too.
    for (deployment, pod, _) in pods(&objects) {
        for c in arr(&pod["containers"]).iter().filter(|c| is_anchorwatch(c) && args_of(c)[0] == "proxy") {
            let args = args_of(c);
            let proxy: toml::Table =
                toml::from_str(mounted_file(&objects, pod, c, flag(&args, "--config").unwrap())).unwrap();
            let var = proxy["proxy"]["collector_token_env"].as_str().expect("[proxy] collector_token_env");
            let set =
                arr(&c["env"]).iter().find(|e| e["name"] == var).unwrap_or_else(|| panic!("{deployment}: {var} unset"));
            assert_eq!(set["valueFrom"]["secretKeyRef"]["name"], name(secret), "{deployment}: {var}");
            assert!(env.contains_key(str_of(&set["valueFrom"]["secretKeyRef"]["key"])), "{deployment}: {var}");
        }
    }

    // The image's own default config, and the path CMD gives.
    let (_dir, path) = temp_file("anchorwatch.toml", &read("deploy/docker/anchorwatch.toml"));
    check_config(&path, &BTreeMap::new());
    let docker: toml::Table = toml::from_str(&read("deploy/docker/anchorwatch.toml")).unwrap();
    let listen = port_of(docker["server"]["listen"].as_str().unwrap());
    assert!(exposed().contains(&listen), "deploy/docker/anchorwatch.toml listens on {listen}, not EXPOSEd");
    let health = docker_all("HEALTHCHECK").pop().expect("Dockerfile HEALTHCHECK");
    assert!(health.contains(&format!("http://127.0.0.1:{listen}/healthz")), "HEALTHCHECK: {health}");
    let cmd = docker_json("CMD");
    let copy = format!("deploy/docker/anchorwatch.toml {}", flag(&cmd, "--config").unwrap());
    assert!(docker_all("COPY").contains(&copy), "Dockerfile: CMD's --config is not the copied config");
}

/// A free loopback port (the kernel's pick, released for the child to take).
/// Kills the child when dropped, so a failed assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args` and waits for 200 from every `urls` (the container's probes).
fn start_and_probe(args: &[String], env: &BTreeMap<String, String>, urls: &[String]) {
    let child = Command::new(BIN)
        .args(args)
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start anchorwatch");
    let mut running = Running(child);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            if let Some(status) = running.0.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(running.0.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("anchorwatch {args:?} exited ({status}) before {url} answered:\n{err}");
            }
            if client.get(url).send().is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "{url} did not answer 200 within 60 s ({args:?})");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `args` with the listen addresses moved to free loopback ports; the old → new port map.
fn on_loopback(args: &[String], flags: &[&str]) -> (Vec<String>, BTreeMap<u16, u16>) {
    let mut ports = BTreeMap::new();
    let mut out = args.to_vec();
    for f in flags {
        if let Some(i) = out.iter().position(|a| a == f) {
            let new = free_port();
            ports.insert(port_of(&out[i + 1]), new);
            out[i + 1] = format!("127.0.0.1:{new}");
        }
    }
    (out, ports)
}

fn replace_value(args: &mut [String], name: &str, value: &Path) {
    let i = args.iter().position(|a| a == name).unwrap_or_else(|| panic!("{name} not in {args:?}"));
    args[i + 1] = value.display().to_string();
}

#[test]
fn the_sidecar_proxy_starts_with_its_manifest_args_and_answers_its_probes() {
    let objects = objects();
    let env = secret_env(&objects);
    let mut started = 0;
    for (deployment, pod, _) in pods(&objects) {
        for c in arr(&pod["containers"]).iter().filter(|c| is_anchorwatch(c) && args_of(c)[0] == "proxy") {
            let manifest = args_of(c);
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("proxy.toml");
            std::fs::write(&config, mounted_file(&objects, pod, c, flag(&manifest, "--config").unwrap())).unwrap();
            // Same args, but the addresses on loopback and the paths in a temporary folder.
            let (mut args, ports) = on_loopback(&manifest, &["--listen", "--metrics-listen"]);
            replace_value(&mut args, "--config", &config);
            replace_value(&mut args, "--spool-dir", &dir.path().join("spool"));
            let get = &c["readinessProbe"]["httpGet"];
            let port = ports[&resolve_port(c, &get["port"]).unwrap()];
            let live = &c["livenessProbe"]["httpGet"];
            let urls = [get, live].map(|g| format!("http://127.0.0.1:{port}{}", str_of(&g["path"])));
            start_and_probe(&args, &env, &urls);
            started += 1;
            let _ = deployment;
        }
    }
    assert!(started > 0, "no sidecar proxy in deploy/kubernetes");
}

#[test]
fn the_server_starts_with_the_configmap_and_answers_its_probes() {
    let objects = objects();
    let env = secret_env(&objects);
    let (pod, c) = server_container(&objects);
    let manifest = args_of(c);
    let mut config: toml::Table =
        toml::from_str(mounted_file(&objects, pod, c, flag(&manifest, "--config").unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The store's volume becomes a temporary folder; the rest of the config is as shipped.
    let store = config["store"]["root"].as_str().unwrap().to_owned();
    assert!(
        arr(&c["volumeMounts"]).iter().any(|m| store.starts_with(str_of(&m["mountPath"])) && m["readOnly"] != true),
        "store.root {store} is not on a writable volume of the server container"
    );
    config["store"]["root"] = toml::Value::String(dir.path().join("data").display().to_string());
    let listen = port_of(config["server"]["listen"].as_str().unwrap());
    let new = free_port();
    config["server"]["listen"] = toml::Value::String(format!("127.0.0.1:{new}"));
    let path = dir.path().join("anchorwatch.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let mut args = manifest.clone();
    replace_value(&mut args, "--config", &path);
    let urls: Vec<String> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .filter(|p| !c[**p].is_null())
        .map(|p| {
            assert_eq!(resolve_port(c, &c[*p]["httpGet"]["port"]), Some(listen));
            format!("http://127.0.0.1:{new}{}", str_of(&c[*p]["httpGet"]["path"]))
        })
        .chain([format!("http://127.0.0.1:{new}/metrics")])
        .collect();
    start_and_probe(&args, &env, &urls);
}

#[test]
fn manifests_run_the_image_the_release_workflow_publishes() {
    let image = published_image();
    let objects = objects();
    let mut used = 0;
    for (deployment, pod, _) in pods(&objects) {
        for c in arr(&pod["containers"]) {
            let i = str_of(&c["image"]);
            if is_anchorwatch(c) {
                assert_eq!(
                    i, image,
                    "{deployment}/{}: the published image, tagged with Cargo.toml's version",
                    c["name"]
                );
                used += 1;
            } else {
                assert!(
                    c["args"].is_null() || !args_of(c).iter().any(|a| a == "serve" || a == "proxy"),
                    "{deployment}"
                );
            }
        }
    }
    assert!(used >= 2, "the server and a sidecar run the anchorwatch image");

    let workflows = yaml_files(&yaml_in(".github/workflows"));
    let get = |file: &str| &workflows.iter().find(|(f, _)| f.ends_with(file)).unwrap_or_else(|| panic!("{file}")).1[0];
    // PyYAML (YAML 1.1, like GitHub) reads the `on:` key as `true`.
    let on = |w: &Value| w.get("on").or_else(|| w.get("true")).cloned().expect("on:");
    let steps = |job: &Value| arr(&job["steps"]).to_vec();

    let release = get("release.yml");
    assert!(arr(&on(release)["push"]["tags"]).iter().any(|t| str_of(t).starts_with('v')), "release on v* tags");
    assert_eq!(release["env"]["IMAGE"], "ghcr.io/${{ github.repository }}");
    let repo = image.trim_start_matches("ghcr.io/").split(':').next().unwrap();
    assert_eq!(format!("ghcr.io/{repo}"), image.split(':').next().unwrap());
    let image_job = &release["jobs"]["image"];
    assert_eq!(image_job["permissions"]["packages"], "write");
    let all = steps(image_job);
    let uses = |prefix: &str| all.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix))).cloned();
    let meta = uses("docker/metadata-action@").expect("docker/metadata-action");
    assert_eq!(meta["with"]["images"], "${{ env.IMAGE }}");
    assert!(str_of(&meta["with"]["tags"]).lines().any(|l| l.trim() == "type=semver,pattern={{version}}"));
    let build = uses("docker/build-push-action@").expect("docker/build-push-action");
    assert_eq!(build["with"]["file"], "Dockerfile");
    assert!(root().join(str_of(&build["with"]["file"])).exists());
    assert_eq!(build["with"]["push"], "${{ startsWith(github.ref, 'refs/tags/') }}");
    let login = uses("docker/login-action@").expect("docker/login-action");
    assert_eq!(login["with"]["registry"], "ghcr.io");
    // A release is tested first: the CI workflow, reused.
    assert_eq!(release["jobs"]["test"]["uses"], "./.github/workflows/ci.yml");
    assert!(arr(&image_job["needs"]).iter().any(|n| n == "test"));

    let ci = get("ci.yml");
    let on_ci = on(ci);
    for event in ["push", "pull_request", "workflow_call"] {
        assert!(on_ci.get(event).is_some(), "ci.yml: on {event}");
    }
    let runs_make_test = ci["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|j| steps(j))
        .any(|s| s["run"].as_str().is_some_and(|r| r.lines().any(|l| l.trim() == "make test")));
    assert!(runs_make_test, "ci.yml runs `make test`, as .ci/run does");
    assert!(read(".ci/run").lines().any(|l| l.trim() == "make test"));
}

#[test]
fn dockerfile_builds_release_ships_onnxruntime_and_runs_unprivileged() {
    let from = docker_all("FROM");
    assert!(from.len() >= 2, "multi-stage: {from:?}");
    let run = docker_all("RUN").join("\n");
    assert!(run.contains("cargo build --release --locked --bin anchorwatch"), "a release build");
    // The Rust image is at least the workspace's rust-version.
    let cargo: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let msrv = cargo["workspace"]["package"]["rust-version"].as_str().unwrap();
    let arg = docker_all("ARG").into_iter().find_map(|a| a.strip_prefix("RUST_VERSION=").map(str::to_owned)).unwrap();
    let version = |v: &str| v.split('.').map(|p| p.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(version(&arg) >= version(msrv), "RUST_VERSION {arg} < rust-version {msrv}");

    // ONNX Runtime: the pinned wheel of tests/requirements.txt, found through ORT_DYLIB_PATH.
    assert!(read("tests/requirements.txt").lines().any(|l| l.starts_with("onnxruntime==")));
    assert!(
        run.contains("grep -E '^onnxruntime==' /tmp/requirements.txt"),
        "the pin comes from tests/requirements.txt"
    );
    assert!(docker_all("COPY").contains(&"tests/requirements.txt /tmp/requirements.txt".to_string()));
    let ort = docker_env().remove("ORT_DYLIB_PATH").expect("ENV ORT_DYLIB_PATH");
    let dir = Path::new(&ort).parent().unwrap().display().to_string();
    assert!(docker_all("COPY").contains(&format!("--from=onnxruntime {dir} {dir}")), "the library's folder is copied");
    assert!(run.contains(&format!("{ort}\n")) || run.contains(&format!("{ort} ")), "the stage writes {ort}");

    let user = docker_all("USER").pop().expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "non-root USER, got {user}");
    assert!(user.chars().all(|ch| ch.is_ascii_digit() || ch == ':'), "numeric USER, so runAsNonRoot can verify it");
    assert_eq!(docker_all("HEALTHCHECK").len(), 1, "one HEALTHCHECK");

    // The build context keeps everything the build reads.
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for pattern in &ignored {
        assert!(!pattern.starts_with('!'), ".dockerignore: exceptions are not checked here: {pattern}");
    }
    let members = cargo["workspace"]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned());
    let needed: Vec<String> =
        ["Cargo.toml", "Cargo.lock", "src", "docs", "examples", "grafana", "tests/requirements.txt"]
            .into_iter()
            .map(str::to_owned)
            .chain(members.filter(|m| m != "."))
            .chain(["deploy/docker/anchorwatch.toml".to_owned()])
            .collect();
    for path in &needed {
        assert!(root().join(path).exists(), "{path}");
        for pattern in &ignored {
            let p = pattern.trim_start_matches("**/").trim_end_matches('/');
            let hit = path == p || path.starts_with(&format!("{p}/")) || path.split('/').any(|seg| seg == p);
            assert!(!hit, ".dockerignore `{pattern}` drops {path}, which the build needs");
        }
    }
    assert!(ignored.iter().any(|p| p == "target") && ignored.iter().any(|p| p == ".git"));
}
