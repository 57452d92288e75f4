//! The root crate's modules form layers: the commands on top, then the server, then the
//! components, then the config types. No module reaches back up, so no two modules import each
//! other through any chain (`crate::x`, or `super::` up to the crate root); a change to a
//! component cannot need a change to the server that wires it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support;

/// Each top-level module of `src/` → the top-level modules it names, with one place each does.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = support::root().join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let module_path = |file: &Path| -> Vec<String> {
        let rel = file.strip_prefix(&src).unwrap().with_extension("");
        rel.iter().map(|p| p.to_string_lossy().into_owned()).filter(|p| p != "mod").collect()
    };
    let tops: Vec<String> =
        files.iter().map(|f| module_path(f)[0].clone()).filter(|m| m != "main" && m != "lib").collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let here = module_path(file);
        if here[0] == "main" || here[0] == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may reach anywhere.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for (line_no, line) in code.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::").or_else(|| rest.find("super::")) {
                let (target, after) = if rest[at..].starts_with("crate::") {
                    let after = &rest[at + "crate::".len()..];
                    (Some(after), after)
                } else {
                    // `super::` repeated k times from a module k deep names the crate root.
                    let mut after = &rest[at..];
                    let mut ups = 0;
                    while let Some(next) = after.strip_prefix("super::") {
                        after = next;
                        ups += 1;
                    }
                    ((ups == here.len()).then_some(after), after)
                };
                if let Some(target) = target {
                    let name: String = target.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if name != here[0] && tops.contains(&name) {
                        let place =
                            format!("{}:{}", file.strip_prefix(support::root()).unwrap().display(), line_no + 1);
                        graph.entry(here[0].clone()).or_default().entry(name).or_insert(place);
                    }
                }
                rest = &after[after.len().min(1)..];
            }
        }
    }
    graph
}

/// A chain of imports that comes back to where it started, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.iter().any(|n| n == node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(node.to_string());
        None
    }
    let mut done = Vec::new();
    graph.keys().find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_the_root_crate_imports_back_up() {
    let graph = imports();
    assert!(graph.get("server").is_some_and(|e| e.contains_key("config")), "the scan found no imports: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> =
            cycle.windows(2).map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]])).collect();
        panic!("the root crate's modules import each other in a cycle:\n{}", steps.join("\n"));
    }
}
