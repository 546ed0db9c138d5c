//! The plan as text, JSON and Graphviz DOT. Pure: each returns a `String` for the CLI to print.

use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::{EdgeKinds, Plan};
use crate::model::Name;

fn split(needs: &[(&Name, EdgeKinds)]) -> (Vec<String>, Vec<String>) {
    let build = needs
        .iter()
        .filter(|(_, k)| k.build)
        .map(|(n, _)| n.to_string())
        .collect();
    let runtime = needs
        .iter()
        .filter(|(_, k)| k.runtime)
        .map(|(n, _)| n.to_string())
        .collect();
    (build, runtime)
}

/// ```text
/// wave 1
///   db
/// wave 2
///   api     depends_on: db
///   worker  FROM: api
/// ```
pub fn render_text(plan: &Plan) -> String {
    let width = plan.order().map(|n| n.as_str().len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, wave) in plan.waves().iter().enumerate() {
        let _ = writeln!(out, "wave {}", i + 1);
        for name in wave {
            let (build, runtime) = split(&plan.needs(name.as_str()));
            let mut edges = Vec::new();
            if !build.is_empty() {
                edges.push(format!("FROM: {}", build.join(", ")));
            }
            if !runtime.is_empty() {
                edges.push(format!("depends_on: {}", runtime.join(", ")));
            }
            let line = format!("  {name:width$}  {}", edges.join("; "));
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

/// `{"waves": [[..]], "containers": {name: {"wave", "build_needs", "runtime_needs"}}}`, waves 1-based.
pub fn render_json(plan: &Plan) -> String {
    let mut containers = Map::new();
    for (i, wave) in plan.waves().iter().enumerate() {
        for name in wave {
            let (build, runtime) = split(&plan.needs(name.as_str()));
            containers.insert(
                name.to_string(),
                json!({ "wave": i + 1, "build_needs": build, "runtime_needs": runtime }),
            );
        }
    }
    let doc = json!({ "waves": plan.waves(), "containers": Value::Object(containers) });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
    s.push('\n');
    s
}

/// Graphviz: solid edges for build-time needs (FROM), dashed for runtime ones (depends_on);
/// containers of a wave share a rank, wave 1 at the bottom.
pub fn render_dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph cookbook {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for (i, wave) in plan.waves().iter().enumerate() {
        let names: Vec<String> = wave.iter().map(|n| format!("\"{n}\";")).collect();
        let _ = writeln!(
            out,
            "  {{ rank=same; /* wave {} */ {} }}",
            i + 1,
            names.join(" ")
        );
    }
    for name in plan.order() {
        for (dep, kinds) in plan.needs(name.as_str()) {
            if kinds.build {
                let _ = writeln!(
                    out,
                    "  \"{name}\" -> \"{dep}\" [label=\"FROM\", style=solid];"
                );
            }
            if kinds.runtime {
                let _ = writeln!(
                    out,
                    "  \"{name}\" -> \"{dep}\" [label=\"depends_on\", style=dashed];"
                );
            }
        }
    }
    out.push_str("}\n");
    out
}
