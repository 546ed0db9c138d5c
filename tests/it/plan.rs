//! `cookbook plan`: the order is asserted exactly (whole outputs, every format), `--site` keeps a
//! site's containers and what they need, the DOT output renders with Graphviz, and the order of
//! keys and the layout of the file never change the plan or the validation result.

use crate::common;

use std::path::{Path, PathBuf};

use common::{repo_root, run_in, Run};
use proptest::prelude::*;
use serde_json::Value;

/// A copy of the shop example without its state: after the README's main job has applied
/// `cookbooks/shop` in place, its lock pins the base, and `plan` shows the pin.
fn shop() -> PathBuf {
    static COPY: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::copy_example("shop", dir.path());
        dir
    })
    .path()
    .to_path_buf()
}

fn valid_fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/valid")
}

fn assert_stdout(run: &Run, expected: &str) {
    run.assert_code(0);
    assert!(
        run.stdout == expected,
        "plan differs\n--- expected ---\n{expected}--- actual ---\n{}--- end ---\n{}",
        run.stdout,
        run.context()
    );
}

const SHOP_TEXT: &str = "\
wave 1
  db
wave 2
  api     depends_on: db
wave 3
  web     depends_on: api
  worker  FROM: api; depends_on: db
";

const SHOP_JSON: &str = r#"{
  "bases": {
    "cookbook-test/busybox:latest": {
      "containers": [
        "db",
        "api",
        "web"
      ],
      "pinned": null
    }
  },
  "containers": {
    "api": {
      "build_needs": [],
      "runtime_needs": [
        "db"
      ],
      "wave": 2
    },
    "db": {
      "build_needs": [],
      "runtime_needs": [],
      "wave": 1
    },
    "web": {
      "build_needs": [],
      "runtime_needs": [
        "api"
      ],
      "wave": 3
    },
    "worker": {
      "build_needs": [
        "api"
      ],
      "runtime_needs": [
        "db"
      ],
      "wave": 3
    }
  },
  "waves": [
    [
      "db"
    ],
    [
      "api"
    ],
    [
      "web",
      "worker"
    ]
  ]
}
"#;

const SHOP_DOT: &str = r#"digraph cookbook {
  rankdir=BT;
  node [shape=box, fontname="monospace"];
  { rank=same; /* wave 1 */ "db"; }
  { rank=same; /* wave 2 */ "api"; }
  { rank=same; /* wave 3 */ "web"; "worker"; }
  "api" -> "db" [label="depends_on", style=dashed];
  "web" -> "api" [label="depends_on", style=dashed];
  "worker" -> "api" [label="FROM", style=solid];
  "worker" -> "db" [label="depends_on", style=dashed];
}
"#;

#[test]
fn shop_plan_text() {
    assert_stdout(&run_in(&shop(), &["plan"]), SHOP_TEXT);
    assert_stdout(&run_in(&shop(), &["plan", "--format", "text"]), SHOP_TEXT);
    assert_stdout(
        &run_in(
            &repo_root(),
            &["-f", "cookbooks/shop/cookbook.json", "plan"],
        ),
        SHOP_TEXT,
    );
}

#[test]
fn shop_plan_json() {
    let run = run_in(&shop(), &["plan", "--format", "json"]);
    assert_stdout(&run, SHOP_JSON);
    let doc: Value = serde_json::from_str(&run.stdout).expect("plan --format json is JSON");
    assert_eq!(
        doc["waves"],
        serde_json::json!([["db"], ["api"], ["web", "worker"]])
    );
}

#[test]
fn shop_plan_dot() {
    assert_stdout(&run_in(&shop(), &["plan", "--format", "dot"]), SHOP_DOT);
}

/// `central` runs web and worker: they need api, which needs db, so the whole shop is kept.
#[test]
fn shop_site_central() {
    assert_stdout(&run_in(&shop(), &["plan", "--site", "central"]), SHOP_TEXT);
    assert_stdout(
        &run_in(&shop(), &["plan", "--site", "central", "--format", "json"]),
        SHOP_JSON,
    );
    assert_stdout(
        &run_in(&shop(), &["plan", "--format", "dot", "--site", "central"]),
        SHOP_DOT,
    );
}

/// A site's portion holds the members of its containers' pods: gallery's `web` runs its init
/// container `seed` and its sidecar `proxy`, which nothing depends on, so `apply --site local`
/// builds them too.
#[test]
fn a_sites_plan_holds_its_pods_members() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("gallery", dir.path());
    let run = run_in(dir.path(), &["plan", "--site", "local", "--format", "json"]);
    run.assert_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let mut names: Vec<String> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w.as_array().unwrap())
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["api", "proxy", "seed", "web"], "{}", run.stdout);
}

/// `edge` runs api only: api and the db it needs, nothing that needs api.
#[test]
fn shop_site_edge() {
    assert_stdout(
        &run_in(&shop(), &["plan", "--site", "edge"]),
        "\
wave 1
  db
wave 2
  api  depends_on: db
",
    );
    assert_stdout(
        &run_in(&shop(), &["plan", "--site", "edge", "--format", "json"]),
        r#"{
  "bases": {
    "cookbook-test/busybox:latest": {
      "containers": [
        "db",
        "api"
      ],
      "pinned": null
    }
  },
  "containers": {
    "api": {
      "build_needs": [],
      "runtime_needs": [
        "db"
      ],
      "wave": 2
    },
    "db": {
      "build_needs": [],
      "runtime_needs": [],
      "wave": 1
    }
  },
  "waves": [
    [
      "db"
    ],
    [
      "api"
    ]
  ]
}
"#,
    );
    assert_stdout(
        &run_in(&shop(), &["plan", "--site", "edge", "--format", "dot"]),
        r#"digraph cookbook {
  rankdir=BT;
  node [shape=box, fontname="monospace"];
  { rank=same; /* wave 1 */ "db"; }
  { rank=same; /* wave 2 */ "api"; }
  "api" -> "db" [label="depends_on", style=dashed];
}
"#,
    );
}

#[test]
fn unknown_site_lists_the_sites() {
    for format in ["text", "json", "dot"] {
        let run = run_in(&shop(), &["plan", "--site", "west", "--format", format]);
        run.assert_code(2);
        // JSON asked for: the failure is a JSON document on stdout too (README, JSON for CI).
        if format == "json" {
            let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
            assert_eq!(doc["errors"][0]["message"], "unknown site `west`");
        } else {
            assert!(run.stdout.is_empty(), "{}", run.context());
        }
        assert_eq!(
            run.stderr,
            "error: unknown site `west`\n  help: sites in this cookbook: central, edge, local\n",
            "{}",
            run.context()
        );
    }
    // A cookbook without federation says so.
    let run = run_in(
        &repo_root().join("cookbooks/example-api"),
        &["plan", "--site", "central"],
    );
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown site `central`\n  help: this cookbook has no federation sites\n",
        "{}",
        run.context()
    );
}

/// A wider graph: three independent roots, fan-in, both edge kinds, sites with dotted names.
#[test]
fn federated_platform_plan_and_sites() {
    let dir = valid_fixtures();
    let file = "federated-platform.json";
    assert_stdout(
        &run_in(&dir, &["-f", file, "plan"]),
        "\
wave 1
  cache
  postgres
  python-base
wave 2
  jobs         FROM: python-base; depends_on: cache, postgres
  metrics      FROM: python-base
wave 3
  gateway      depends_on: cache, jobs, metrics
",
    );
    assert_stdout(
        &run_in(&dir, &["-f", file, "plan", "--site", "branch-office.eu"]),
        "\
wave 1
  cache
  python-base
wave 2
  metrics      FROM: python-base
",
    );
    assert_stdout(
        &run_in(&dir, &["-f", file, "plan", "--site", "db_only"]),
        "wave 1\n  postgres\n",
    );
    let run = run_in(
        &dir,
        &["-f", file, "plan", "--site", "hq", "--format", "dot"],
    );
    assert_stdout(
        &run,
        r#"digraph cookbook {
  rankdir=BT;
  node [shape=box, fontname="monospace"];
  { rank=same; /* wave 1 */ "cache"; "postgres"; "python-base"; }
  { rank=same; /* wave 2 */ "jobs"; "metrics"; }
  { rank=same; /* wave 3 */ "gateway"; }
  "jobs" -> "cache" [label="depends_on", style=dashed];
  "jobs" -> "postgres" [label="depends_on", style=dashed];
  "jobs" -> "python-base" [label="FROM", style=solid];
  "metrics" -> "python-base" [label="FROM", style=solid];
  "gateway" -> "cache" [label="depends_on", style=dashed];
  "gateway" -> "jobs" [label="depends_on", style=dashed];
  "gateway" -> "metrics" [label="depends_on", style=dashed];
}
"#,
    );
}

/// An edge that is both build-time and runtime is shown as both.
#[test]
fn both_edge_kinds_between_one_pair() {
    assert_stdout(
        &run_in(&valid_fixtures(), &["-f", "media-relay.json", "plan"]),
        "\
wave 1
  base
wave 2
  rtp   FROM: base
wave 3
  sip   FROM: rtp; depends_on: rtp
",
    );
}

fn graphviz() -> Option<&'static str> {
    let found = std::process::Command::new("dot")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    found.then_some("dot")
}

/// Every plan's DOT output is accepted by Graphviz and draws every container.
#[test]
fn dot_renders_with_graphviz() {
    let Some(dot) = graphviz() else {
        println!("note: Graphviz `dot` is not installed; skipping the rendering check");
        return;
    };
    let mut cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (shop(), vec!["plan", "--format", "dot"]),
        (shop(), vec!["plan", "--format", "dot", "--site", "edge"]),
    ];
    for name in [
        "federated-platform.json",
        "media-relay.json",
        "dockerfile-only.json",
        "minimal.json",
        "bom-unicode.json",
    ] {
        cases.push((
            valid_fixtures(),
            vec!["-f", name, "plan", "--format", "dot"],
        ));
    }
    for (dir, args) in cases {
        let run = run_in(&dir, &args);
        run.assert_code(0);
        // Graphviz writes `-` in titles as a character reference.
        let svg = render(dot, &run.stdout, &dir).replace("&#45;", "-");
        let plan = run_in(&dir, &replace_format(&args, "json"));
        let doc: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
        for name in doc["containers"].as_object().expect("containers").keys() {
            assert!(
                svg.contains(&format!("<title>{name}</title>")),
                "the SVG has no node {name}\n{}",
                run.context()
            );
        }
    }
}

fn replace_format<'a>(args: &[&'a str], format: &'a str) -> Vec<&'a str> {
    let mut out = args.to_vec();
    let i = out.iter().position(|a| *a == "--format").expect("--format") + 1;
    out[i] = format;
    out
}

fn render(dot: &str, source: &str, cwd: &Path) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(dot)
        .arg("-Tsvg")
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start dot");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(source.as_bytes())
        .expect("write DOT");
    let out = child.wait_with_output().expect("dot finishes");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "dot refused the plan ({}):\n{}\n--- DOT ---\n{source}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("SVG is UTF-8")
}

// --- Key order and layout never matter ----------------------------------------------------------

/// How to lay a document out: the order of each object's members and the white space around it.
#[derive(Debug, Clone)]
struct Layout {
    /// Seeds the member permutation of every object (a different one per object).
    seed: u64,
    /// `None` writes everything on one line.
    indent: Option<&'static str>,
    newline: &'static str,
    after_colon: &'static str,
    before_comma: &'static str,
}

fn layouts() -> impl Strategy<Value = Layout> {
    (
        any::<u64>(),
        prop::sample::select(vec![
            None,
            Some(""),
            Some(" "),
            Some("  "),
            Some("    "),
            Some("\t"),
        ]),
        prop::sample::select(vec!["\n", "\r\n"]),
        prop::sample::select(vec!["", " ", "  ", "\t"]),
        prop::sample::select(vec!["", " ", "\n"]),
    )
        .prop_map(
            |(seed, indent, newline, after_colon, before_comma)| Layout {
                seed,
                indent,
                newline,
                after_colon,
                before_comma,
            },
        )
}

/// A tiny deterministic generator (SplitMix64), so a failing case reproduces from its seed.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Writes `value` as JSON with every object's members in a permuted order and the layout's white
/// space. Strings and numbers are written by serde_json, so escapes stay correct.
fn write_permuted(value: &Value, layout: &Layout, mix: &mut Mix, depth: usize, out: &mut String) {
    let line = |out: &mut String, depth: usize| {
        if let Some(indent) = layout.indent {
            out.push_str(layout.newline);
            out.push_str(&indent.repeat(depth));
        }
    };
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            mix.shuffle(&mut members);
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(layout.before_comma);
                    out.push(',');
                }
                line(out, depth + 1);
                out.push_str(&serde_json::to_string(k).expect("key"));
                out.push(':');
                out.push_str(layout.after_colon);
                write_permuted(v, layout, mix, depth + 1, out);
            }
            if !members.is_empty() {
                line(out, depth);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(layout.before_comma);
                    out.push(',');
                }
                line(out, depth + 1);
                write_permuted(v, layout, mix, depth + 1, out);
            }
            if !items.is_empty() {
                line(out, depth);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).expect("scalar")),
    }
}

fn relayout(text: &str, layout: &Layout) -> String {
    let value: Value =
        serde_json::from_str(text.trim_start_matches('\u{feff}')).expect("fixture is JSON");
    let mut out = String::new();
    write_permuted(&value, layout, &mut Mix(layout.seed), 0, &mut out);
    out.push_str(layout.newline);
    out
}

/// Cookbooks whose plan and validation must not depend on layout: both examples, every valid
/// fixture, and invalid ones whose problems are not about layout (syntax, duplicate keys).
fn order_cases() -> Vec<PathBuf> {
    let mut cases = vec![
        shop().join("cookbook.json"),
        repo_root().join("cookbooks/example-api/cookbook.json"),
    ];
    for kind in ["valid", "invalid"] {
        let dir = repo_root().join("tests/fixtures").join(kind);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("list fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter(|p| {
                std::fs::read(p)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|t| {
                        serde_json::from_str::<Value>(t.trim_start_matches('\u{feff}')).ok()
                    })
                    .is_some_and(|v| v.is_object())
            })
            .filter(|p| !p.ends_with("duplicate-keys.json"))
            .collect();
        names.sort();
        cases.extend(names);
    }
    cases
}

/// Validation's result without its locations (which move with the layout), in a stable order.
fn problems(run: &Run) -> Vec<String> {
    let mut lines: Vec<String> = run
        .stderr
        .lines()
        .map(|l| match l.strip_prefix("cookbook.json:") {
            // `LINE:COL: error[...]` → `error[...]`
            Some(rest) => rest
                .splitn(3, ':')
                .nth(2)
                .unwrap_or(rest)
                .trim_start()
                .to_owned(),
            None => l.to_owned(),
        })
        .collect();
    lines.sort();
    lines
}

/// Validates and plans `text` as `cookbook.json` in a temp copy of `case`'s directory (so the
/// paths it names exist, and the plan is a real one rather than a path error).
fn validate_and_plan(case: &std::path::Path, text: &str) -> (Run, Run) {
    let dir = tempfile::tempdir().expect("temp dir");
    let from = case.parent().expect("a file");
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk");
        let rel = entry.path().strip_prefix(from).expect("inside");
        if rel.components().any(|c| c.as_os_str() == ".cookbook") {
            continue;
        }
        let dest = dir.path().join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
    std::fs::write(dir.path().join("cookbook.json"), text).expect("write");
    (
        run_in(dir.path(), &["validate"]),
        run_in(dir.path(), &["plan", "--format", "json"]),
    )
}

/// `plan --format json`'s stdout; for a failure, its error document without the locations (which
/// move with the layout), errors sorted.
fn plan_output(run: &Run) -> String {
    if run.code == Some(0) {
        return run.stdout.clone();
    }
    let mut doc: Value = serde_json::from_str(&run.stdout).expect("a JSON error document");
    let errors = doc["errors"].as_array_mut().expect("errors");
    for e in errors.iter_mut() {
        let e = e.as_object_mut().expect("an error");
        e.remove("line");
        e.remove("column");
    }
    errors.sort_by_key(|e| e.to_string());
    doc.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn key_order_and_layout_never_change_plan_or_validation(
        case in prop::sample::select(order_cases()),
        layout in layouts(),
    ) {
        let original = std::fs::read_to_string(&case).expect("read case");
        let shuffled = relayout(&original, &layout);
        let (validate_0, plan_0) = validate_and_plan(&case, &original);
        let (validate_1, plan_1) = validate_and_plan(&case, &shuffled);
        prop_assert_eq!(validate_0.code, validate_1.code, "validate exit code\n{}\n{}", validate_1.context(), shuffled);
        prop_assert_eq!(problems(&validate_0), problems(&validate_1), "validate result\n{}", shuffled);
        prop_assert_eq!(plan_0.code, plan_1.code, "plan exit code\n{}", plan_1.context());
        prop_assert_eq!(plan_output(&plan_0), plan_output(&plan_1), "plan output\n{}", shuffled);
    }
}

/// The relayout helper really permutes: with enough seeds, a cookbook's top-level keys come out
/// in more than one order (otherwise the property above would prove nothing).
#[test]
fn relayout_permutes_keys() {
    let original = std::fs::read_to_string(shop().join("cookbook.json")).expect("read");
    let mut firsts = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let layout = Layout {
            seed,
            indent: None,
            newline: "\n",
            after_colon: "",
            before_comma: "",
        };
        let text = relayout(&original, &layout);
        firsts.insert(text[..12].to_owned());
        let a: Value = serde_json::from_str(&text).expect("relayout writes JSON");
        let b: Value = serde_json::from_str(&original).expect("JSON");
        assert_eq!(a, b, "relayout changed the document");
    }
    assert!(firsts.len() > 3, "keys were not permuted: {firsts:?}");
}

#[test]
fn a_pool_of_builders_is_listed_by_plan_which_assigns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cookbook.json"),
        r#"{
          "manifest_version": "1.1",
          "project": { "name": "pooled" },
          "packaging": { "registry": "127.0.0.1:5000/pooled", "builders": [
            { "name": "big", "host": "ssh://ci@127.0.0.1:2222" },
            { "context": "gpu-box" }
          ] },
          "applications": { "a": { "source": "." } },
          "containers": { "c": { "base_image": "scratch", "applications": ["a"] } }
        }"#,
    )
    .unwrap();
    let text = run_in(dir.path(), &["plan"]);
    text.assert_code(0);
    assert!(
        text.stderr.contains(
            "builders: big (ssh://ci@127.0.0.1:2222), gpu-box (context gpu-box): each build goes to the least busy one"
        ),
        "{}",
        text.context()
    );
    let json = run_in(dir.path(), &["plan", "--format", "json"]);
    json.assert_code(0);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["builders"],
        serde_json::json!([
            { "name": "big", "engine": "ssh://ci@127.0.0.1:2222" },
            { "name": "gpu-box", "engine": "context gpu-box" }
        ])
    );
    // Without a pool the document is as it was.
    let plain = run_in(&shop(), &["plan", "--format", "json"]);
    let v: Value = serde_json::from_str(&plain.stdout).unwrap();
    assert!(v.get("builders").is_none(), "{}", plain.stdout);
}
