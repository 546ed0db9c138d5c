//! The house's import graph, read from the source: which top-level module names which other
//! through a `crate::` path in code (comment lines are not imports). The edges (`engine`,
//! `registry`), the retry policy they share, and the exit-code mapping (`error`) must sit in no
//! import cycle: `error` imports the edges to map their failures, so the edges never import it,
//! and the engine uses the registry's reference and credential types, so the registry never
//! imports the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level module → the top-level modules its code names through `crate::`.
fn import_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let targets = graph.entry(module.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    targets.insert(name);
                }
            }
        }
    }
    graph
}

/// Whether `to` is reachable from `from`.
fn reaches(graph: &Graph, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn the_edges_and_the_exit_code_mapping_are_in_no_import_cycle() {
    let graph = import_graph();
    for module in ["engine", "registry", "retry", "error"] {
        assert!(
            graph.contains_key(module),
            "src/{module} not found: {graph:?}"
        );
        let cycle: Vec<&String> = graph[module]
            .iter()
            .filter(|next| reaches(&graph, next, module))
            .collect();
        assert!(
            cycle.is_empty(),
            "{module} is in an import cycle through {cycle:?}\n{graph:#?}"
        );
    }
    // The directions the module headers promise.
    assert!(!graph["registry"].contains("engine"), "{graph:#?}");
    assert!(graph["engine"].contains("registry"), "{graph:#?}");
    for edge in ["engine", "registry", "retry", "sync", "context"] {
        assert!(
            !graph[edge].contains("error"),
            "{edge} imports error.rs: {graph:#?}"
        );
    }
    assert_eq!(graph["retry"], BTreeSet::new(), "retry.rs imports nothing");
}

/// Issue 10's rule for the whole house: no top-level module is in an import cycle.
#[test]
fn no_top_level_module_is_in_an_import_cycle() {
    let graph = import_graph();
    let cycles: Vec<&String> = graph
        .keys()
        .filter(|module| reaches(&graph, module, module))
        .collect();
    assert!(
        cycles.is_empty(),
        "modules in an import cycle: {cycles:?}\n{graph:#?}"
    );
}

/// The pure core (the format, the model, the plan, hashing, the context listing) imports no edge,
/// no orchestration and no CLI (ARCHITECTURE.md, "What may import what").
#[test]
fn the_core_imports_no_edge() {
    let graph = import_graph();
    let core = [
        "diagnostic",
        "schema",
        "model",
        "graph",
        "hash",
        "context",
        "oci",
        "attest",
    ];
    let edges = [
        "engine", "registry", "sync", "state", "cli", "apply", "build", "verify", "git", "load",
        "init", "image", "error", "deploy", "ops",
    ];
    for module in core {
        let bad: Vec<&String> = graph
            .get(module)
            .into_iter()
            .flatten()
            .filter(|target| edges.contains(&target.as_str()))
            .collect();
        assert!(bad.is_empty(), "the core module {module} imports {bad:?}");
    }
    // And the model knows neither the schema nor the plan: `load::parse` composes them.
    assert!(!graph["model"].contains("schema") && !graph["model"].contains("graph"));
}

/// Building one image is `build`'s (issue 21): `apply` and `verify --rebuild` both go through it,
/// so verify never reaches into apply's internals, and `build` knows neither of its callers.
#[test]
fn verify_builds_through_build_not_apply() {
    let graph = import_graph();
    assert!(
        !graph["verify"].contains("apply"),
        "verify imports apply: {:?}",
        graph["verify"]
    );
    assert!(graph["verify"].contains("build"), "{graph:#?}");
    assert!(graph["apply"].contains("build"), "{graph:#?}");
    for caller in ["apply", "verify", "ops", "cli"] {
        assert!(
            !graph["build"].contains(caller),
            "build imports {caller}: {:?}",
            graph["build"]
        );
    }
}

/// The top-level modules `text` names through `crate::`, grouped imports included
/// (`use crate::{error::Error, ops};`). Comment lines are not imports.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.insert(ident(rest));
            continue;
        };
        // The group's top-level items, up to its closing brace.
        let (mut depth, mut item_start) = (0, true);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    names.insert(ident(&group[j..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    names.remove("");
    names
}

/// Issue 21: the command line holds no flow. It reaches the library through `ops` (the flows,
/// their options and reports), and names only the error type and its exit codes (`error`) and
/// the diagnostics it renders (`diagnostic`) besides.
#[test]
fn the_command_line_imports_only_ops() {
    const ALLOWED: [&str; 3] = ["ops", "error", "diagnostic"];
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let mut checked = 0;
    let mut bad = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&cli) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path
            .strip_prefix(&cli)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        checked += 1;
        let text = std::fs::read_to_string(path).unwrap();
        let others: Vec<String> = crate_paths(&text)
            .into_iter()
            .filter(|m| !ALLOWED.contains(&m.as_str()))
            .collect();
        if !others.is_empty() {
            bad.insert(rel, others);
        }
    }
    assert!(checked >= 8, "only {checked} files checked under {cli:?}");
    assert!(
        bad.is_empty(),
        "src/cli/ files that import more than {ALLOWED:?}: {bad:#?}"
    );
}

#[test]
fn grouped_crate_imports_are_seen() {
    let text = "use crate::{error::Error, ops::{self, Workspace},\n    hash};\n// crate::graph\nlet x = crate::load::y;";
    assert_eq!(
        crate_paths(text),
        ["error", "hash", "load", "ops"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
}

/// Issue 23: one `sync → apply → deploy` round is a library value. `ops::pipeline` composes the
/// three stages; neither the command line nor `ops::sync` (what a state directory is) does.
#[test]
fn the_pipeline_composes_sync_apply_and_deploy_and_nothing_else_does() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let read = |rel: &str| std::fs::read_to_string(src.join(rel)).unwrap();
    let pipeline = read("ops/pipeline.rs");
    let names = crate_paths(&pipeline);
    let names_stage = |stage: &str| {
        names.contains(stage)
            || pipeline.contains(&format!("super::{stage}::"))
            || pipeline.contains(&format!("use super::{stage}"))
    };
    for stage in ["sync", "apply", "deploy"] {
        assert!(names_stage(stage), "ops/pipeline.rs does not use {stage}");
    }
    let sync_ops = crate_paths(&read("ops/sync.rs"));
    for stage in ["apply", "deploy"] {
        assert!(!sync_ops.contains(stage), "ops/sync.rs composes {stage}");
    }
    for cli in ["cli/sync.rs", "cli/deploy.rs"] {
        let text = read(cli);
        for flow_step in ["sync_once", "block_on", "session::", "Applier for"] {
            assert!(
                !text.contains(flow_step),
                "{cli} runs a flow step: {flow_step}"
            );
        }
    }
}
