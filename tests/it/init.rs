//! `cookbook init` through the real binary: golden cookbooks for the fixture projects (each one
//! validated and planned by the binary itself), `--write`/`--force`, `--base`, ignore files, and
//! hostile trees (symbolic link loops, 100,000 files, unreadable directories, binary junk named
//! `package.json`). The generated files of the fixture projects match golden copies
//! (`tests/fixtures/init/golden/NAME/`, rewritten with `UPDATE_SNAPSHOTS=1`) and hold what an
//! expert ships (dependency layer first, build stages, a non-root user, the `.dockerignore`,
//! compose's settings and secrets carried over). Built for real on the engine: the static site's
//! Dockerfile (applied against the test registry) and a compose project of a static site,
//! deployed to its generated `local` site's `dev` stage — the only bases the engine has here are
//! the test busybox, so the Python, Node, Go, Rust, Java and postgres Dockerfiles are checked by
//! `validate`, `plan` and `hash`, not built.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;

fn projects() -> PathBuf {
    common::repo_root().join("tests/fixtures/init/projects")
}

fn golden(name: &str) -> PathBuf {
    common::repo_root().join(format!("tests/fixtures/init/golden/{name}.json"))
}

/// The golden copy of a file `init --write` writes for fixture `name` (`cookbook.json`, each
/// Dockerfile and `.dockerignore`), compared byte for byte; `UPDATE_SNAPSHOTS=1` rewrites them.
fn golden_file(name: &str, path: &str) -> PathBuf {
    common::repo_root().join(format!("tests/fixtures/init/golden/{name}/{path}"))
}

/// A copy of fixture project `name` at `<tempdir>/<name>` (the directory's name is the project's).
fn copy_project(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join(name);
    let from = projects().join(name);
    for entry in walkdir::WalkDir::new(&from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
    (tmp, to)
}

fn json_of(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", run.context()))
}

/// The fixture projects and the waves their cookbooks must plan to.
const FIXTURES: &[(&str, &[&[&str]])] = &[
    ("compose-monorepo", &[&["db"], &["api"], &["web"]]),
    ("dockerfile-app", &[&["dockerfile-app"]]),
    ("express", &[&["express"]]),
    ("fastapi", &[&["fastapi"]]),
    ("flask", &[&["flask"]]),
    ("go-tools", &[&["api", "worker"]]),
    ("rust-workspace", &[&["api", "jobs"]]),
    ("static-site", &[&["static-site"]]),
];

#[test]
fn fixture_projects_give_their_golden_cookbooks_which_validate_and_plan() {
    let mut failures = Vec::new();
    for (name, waves) in FIXTURES {
        let dir = projects().join(name);
        let run = common::run_in(&dir, &["init", ".", "--format", "json", "--explain"]);
        run.assert_code(0);
        if let Err(e) = common::check_snapshot(&golden(name), &run.stdout, &run) {
            failures.push(e);
        }
        let out = json_of(&run);
        let expected: Vec<Vec<String>> = waves
            .iter()
            .map(|w| w.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(
            out["waves"],
            json!(expected),
            "{name}: waves in init's output"
        );

        // Written, the same cookbook validates and plans through the binary.
        let (_tmp, copy) = copy_project(name);
        common::run_in(&copy, &["init", "--write"]).assert_code(0);
        let written: Value =
            serde_json::from_slice(&fs::read(copy.join("cookbook.json")).unwrap()).unwrap();
        assert_eq!(
            written, out["cookbook"],
            "{name}: --write wrote what --format json printed"
        );
        let mut paths = vec!["cookbook.json".to_owned()];
        for (path, text) in out["files"].as_object().unwrap() {
            assert_eq!(
                fs::read_to_string(copy.join(path)).unwrap(),
                text.as_str().unwrap(),
                "{name}: generated {path}"
            );
            paths.push(path.clone());
        }
        for path in paths {
            let written = fs::read_to_string(copy.join(&path)).unwrap();
            let golden = golden_file(name, &path);
            if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
                fs::create_dir_all(golden.parent().unwrap()).unwrap();
            }
            if let Err(e) = common::check_snapshot(&golden, &written, &run) {
                failures.push(e);
            }
        }
        let validate = common::run_in(&copy, &["validate"]);
        validate.assert_code(0);
        assert!(
            validate.stderr.starts_with("cookbook.json: ok (format 1.1"),
            "{}",
            validate.context()
        );
        let plan = common::run_in(&copy, &["plan", "--format", "json"]);
        plan.assert_code(0);
        assert_eq!(
            json_of(&plan)["waves"],
            json!(expected),
            "{name}: waves of `cookbook plan`"
        );
        // The real hash reads every generated Dockerfile (its stages, its `FROM`s) and context
        // (through the generated `.dockerignore`).
        let hash = common::run_in(&copy, &["hash", "--format", "json"]);
        hash.assert_code(0);
        let hashed = json_of(&hash);
        for container in out["cookbook"]["containers"].as_object().unwrap().keys() {
            assert!(
                hashed["input_hashes"][container].is_string(),
                "{name}: no input hash for {container}\n{}",
                hash.context()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A Dockerfile's stages: each `FROM` line with the instruction lines after it.
fn stages(dockerfile: &str) -> Vec<Vec<&str>> {
    let mut stages: Vec<Vec<&str>> = Vec::new();
    for line in dockerfile
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("FROM first").push(line);
    }
    stages
}

/// The line index of the first line of `stage` that starts with `prefix`.
fn line_of(stage: &[&str], prefix: &str) -> Option<usize> {
    stage.iter().position(|l| l.starts_with(prefix))
}

/// `init`'s generated files and cookbook for fixture `name`.
fn generated(name: &str) -> (Value, Value) {
    let run = common::run_in(&projects().join(name), &["init", "--format", "json"]);
    run.assert_code(0);
    let out = json_of(&run);
    (out["cookbook"].clone(), out)
}

/// Asserts what every generated language Dockerfile holds: the dependency manifests copied and
/// installed before `COPY . .` (the install's line before the sources' line), a numeric non-root
/// `USER` in the final stage and the command last; returns its stages.
fn expert_dockerfile<'a>(
    what: &str,
    text: &'a str,
    manifest_copy: &str,
    install: &str,
) -> Vec<Vec<&'a str>> {
    let stages = stages(text);
    let first = &stages[0];
    let copy = line_of(first, manifest_copy)
        .unwrap_or_else(|| panic!("{what}: no `{manifest_copy}`:\n{text}"));
    let run = line_of(first, install).unwrap_or_else(|| panic!("{what}: no `{install}`:\n{text}"));
    let sources =
        line_of(first, "COPY . .").unwrap_or_else(|| panic!("{what}: no COPY . .:\n{text}"));
    assert!(
        copy < run && run < sources,
        "{what}: the dependency layer comes before the sources:\n{text}"
    );
    let last = stages.last().unwrap();
    let user = last
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_else(|| panic!("{what}: no USER in the final stage:\n{text}"));
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "{what}: USER {user} is not a numeric non-root user"
    );
    assert!(
        last.last().unwrap().starts_with("CMD ["),
        "{what}: the command ends the file:\n{text}"
    );
    stages
}

#[test]
fn generated_dockerfiles_are_what_an_expert_ships() {
    let (_, flask) = generated("flask");
    let text = flask["files"]["Dockerfile"].as_str().unwrap();
    let s = expert_dockerfile(
        "flask",
        text,
        "COPY requirements.txt ./",
        "RUN pip install --no-cache-dir -r requirements.txt",
    );
    assert_eq!(
        s.len(),
        1,
        "one stage: Python needs its interpreter at run time"
    );
    for env in ["ENV PYTHONDONTWRITEBYTECODE=1", "ENV PYTHONUNBUFFERED=1"] {
        assert!(s[0].contains(&env), "flask: {env}");
    }
    assert!(s[0].contains(&"EXPOSE 5000"));
    assert_eq!(
        *s[0].last().unwrap(),
        r#"CMD ["gunicorn","--bind","0.0.0.0:5000","--workers","2","app:app"]"#,
        "gunicorn, a dependency, not the development server"
    );

    let (_, fastapi) = generated("fastapi");
    let text = fastapi["files"]["Dockerfile"].as_str().unwrap();
    let s = expert_dockerfile(
        "fastapi",
        text,
        "COPY requirements.txt ./",
        "RUN pip install",
    );
    assert_eq!(
        *s[0].last().unwrap(),
        r#"CMD ["uvicorn","main:app","--host","0.0.0.0","--port","8000","--workers","2"]"#
    );
    assert!(
        s[0].contains(&"FROM python:3.12-slim"),
        ".python-version picks the line"
    );

    let (_, express) = generated("express");
    let text = express["files"]["Dockerfile"].as_str().unwrap();
    let s = expert_dockerfile(
        "express",
        text,
        "COPY package.json package-lock.json ./",
        "RUN npm ci",
    );
    assert_eq!(
        s.len(),
        2,
        "a build stage (with devDependencies) and a runtime stage:\n{text}"
    );
    assert!(s[0][0].ends_with(" AS build"));
    assert!(
        s[0].contains(&"RUN npm ci")
            && s[0].contains(&"RUN npm run build")
            && s[0].contains(&"RUN npm prune --omit=dev"),
        "{text}"
    );
    assert!(
        s[1].contains(&"ENV NODE_ENV=production") && s[1].contains(&"COPY --from=build /app ./"),
        "{text}"
    );
    assert_eq!(
        *s[1].last().unwrap(),
        r#"CMD ["node","server.js"]"#,
        "node as PID 1, not npm start"
    );

    let (cookbook, go) = generated("go-tools");
    for (name, port) in [("api", Some(8080)), ("worker", None)] {
        let path = format!("{name}.Dockerfile");
        assert_eq!(cookbook["containers"][name]["dockerfile"], path.as_str());
        let text = go["files"][&path].as_str().unwrap();
        let s = expert_dockerfile(name, text, "COPY go.mod ./", "RUN go mod download");
        assert_eq!(s.len(), 2, "{name}: multi-stage:\n{text}");
        assert_eq!(s[0][0], "FROM golang:1.22 AS build");
        assert!(
            s[0].iter()
                .any(|l| l.starts_with("RUN CGO_ENABLED=0 go build")),
            "{text}"
        );
        assert_eq!(
            s[1][0], "FROM gcr.io/distroless/static-debian12:nonroot",
            "the final stage is not the toolchain"
        );
        assert!(
            s[1].iter().all(|l| !l.starts_with("RUN ")),
            "nothing runs in the runtime stage"
        );
        assert_eq!(s[1].contains(&"EXPOSE 8080"), port.is_some());
    }

    // Each language's .dockerignore, and .git in every one.
    for (out, path, ignores) in [
        (
            &flask,
            ".dockerignore",
            &[".venv", "**/__pycache__", "**/*.pyc"][..],
        ),
        (
            &fastapi,
            ".dockerignore",
            &[".venv", "**/__pycache__", "**/*.pyc"][..],
        ),
        (
            &express,
            ".dockerignore",
            &["node_modules", "**/node_modules"][..],
        ),
        (&go, ".dockerignore", &["**/*.test"][..]),
    ] {
        let text = out["files"][path].as_str().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for i in ignores.iter().chain(&[".git", ".env"]) {
            assert!(lines.contains(i), "{path}: no {i}:\n{text}");
        }
    }
}

#[test]
fn compose_volumes_health_commands_ports_and_secrets_are_carried_over() {
    let (cookbook, out) = generated("compose-monorepo");
    let db = &cookbook["containers"]["db"];
    assert_eq!(db["volumes"], json!({"pgdata": {"persistent": true}}));
    assert_eq!(db["mounts"], json!({"pgdata": "/var/lib/postgresql/data"}));
    assert_eq!(
        db["health"],
        json!({"command": ["pg_isready", "-U", "postgres", "-d", "shop"], "interval": "5s", "timeout": "3s", "retries": 10, "grace": "90s"})
    );
    // compose's stop_grace_period: postgres gets its minute to shut down cleanly.
    assert_eq!(db["stop_grace"], "1m");
    let api = &cookbook["containers"]["api"];
    assert_eq!(
        api["dockerfile"], "services/api/Dockerfile",
        "a Dockerfile written for the FastAPI service"
    );
    assert!(api["health"]["command"]
        .as_str()
        .unwrap()
        .starts_with("python -c"));
    // The command overrides: CMD of the Dockerfiles init writes.
    let db_file = out["files"]["docker/db/Dockerfile"].as_str().unwrap();
    assert!(
        db_file.ends_with("CMD [\"postgres\",\"-c\",\"max_connections=200\"]\n"),
        "{db_file}"
    );
    let api_file = out["files"]["services/api/Dockerfile"].as_str().unwrap();
    assert!(api_file.ends_with("CMD [\"uvicorn\",\"main:app\",\"--host\",\"0.0.0.0\",\"--port\",\"8000\",\"--workers\",\"4\"]\n"), "{api_file}");
    expert_dockerfile(
        "api",
        api_file,
        "COPY requirements.txt ./",
        "RUN pip install",
    );

    // A local Docker site serving stage dev, which publishes the ports and holds the env.
    assert_eq!(
        cookbook["federation"]["sites"]["local"],
        json!({"target": {"docker": {"host": "env"}}, "stages": ["dev"], "containers": ["api", "db", "web"]})
    );
    let dev = &cookbook["lifecycle"]["stage_config"]["dev"]["containers"];
    assert_eq!(dev["api"]["ports"], json!(["8000:8000"]));
    assert_eq!(dev["db"]["ports"], json!(["5432:5432"]));
    assert_eq!(dev["web"]["ports"], json!(["127.0.0.1:8080:80"]));
    assert_eq!(dev["db"]["env"]["POSTGRES_DB"], "shop");
    assert_eq!(dev["api"]["env"]["LOG_LEVEL"], "info");

    // Secrets: references, never values, and a note saying how to provide each.
    assert_eq!(
        dev["db"]["env"]["POSTGRES_PASSWORD"],
        json!({"secret": "db/POSTGRES_PASSWORD"})
    );
    assert_eq!(
        dev["api"]["env"]["DATABASE_URL"],
        json!({"secret": "api/DATABASE_URL"})
    );
    let everything = out["cookbook"].to_string() + &out["files"].to_string();
    assert!(
        !everything.contains("example"),
        "the password is in no generated file"
    );
    let notes: Vec<&str> = out["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (var, env) in [
        ("POSTGRES_PASSWORD", "COOKBOOK_SECRET_DB_POSTGRES_PASSWORD"),
        ("DATABASE_URL", "COOKBOOK_SECRET_API_DATABASE_URL"),
    ] {
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&format!("{var} holds a secret")) && n.contains(env)),
            "no note for {var}: {notes:#?}"
        );
    }
    // What the format cannot say is a note.
    for what in [
        "the bind mount ./initdb:/docker-entrypoint-initdb.d",
        "restart: on-failure",
        "service web: labels not carried over",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(what)),
            "no note with {what:?}: {notes:#?}"
        );
    }
}

#[test]
fn text_mode_prints_pure_json_on_stdout_and_comments_on_stderr() {
    let dir = projects().join("go-tools");
    let run = common::run_in(&dir, &["init"]);
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("stdout is the cookbook alone");
    assert_eq!(doc["manifest_version"], "1.1");
    assert!(cookbook::load::parse(run.stdout.as_bytes()).is_ok());
    // The generated files come first, as comments; then the notes and the summary.
    assert!(
        run.stderr.lines().all(|l| l.starts_with('#')),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.starts_with(
            "# generated .dockerignore (written with --write):\n#   # Generated by `cookbook init`"
        ),
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("# generated api.Dockerfile (written with --write):\n#   # Generated by `cookbook init` for container api (go, command).\n#   FROM golang:1.22 AS build\n"));
    let notes = run.stderr.find("# note: ").expect("notes");
    assert_eq!(
        &run.stderr[notes..],
        "# note: go.mod: requires modules but there is no go.sum: `go mod download` cannot check what it fetches; run `go mod tidy` and commit go.sum\n\
         # note: go.mod: api uses the Postgres client github.com/lib/pq, but the project has no Postgres container: add one (e.g. a compose service) or set depends_on by hand\n\
         # note: go.mod: worker uses the Postgres client github.com/lib/pq, but the project has no Postgres container: add one (e.g. a compose service) or set depends_on by hand\n\
         # note: no packaging.registry: set it (or run init with --registry HOST/NAMESPACE) before `cookbook apply`\n\
         # 2 container(s) in 1 wave(s): [api, worker]\n"
    );
}

#[test]
fn explain_names_the_files_behind_each_decision() {
    let dir = projects().join("express");
    let run = common::run_in(&dir, &["init", "--explain"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains(
            "# express:\n\
             #   package.json: language node\n\
             #   package-lock.json: lock file: npm; install with npm ci, before the sources are copied\n\
             #   package.json: scripts.build: a build stage installs all 2 devDependencies too, runs `npm run build`, then `npm prune --omit=dev`; the runtime stage takes the result\n\
             #   package.json: type express (dependency express)\n\
             #   package.json: engines.node \">=20\": Node 20\n\
             #   package.json: run: node server.js (scripts.start: node server.js), node as PID 1, not npm start\n\
             #   server.js: port 3000 (found in the code)\n\
             #   (base image policy): base image node:20-slim (Node 20, from engines.node)\n\
             #   Dockerfile: generated: dependencies before sources, a non-root user, the production command\n\
             #   .dockerignore: generated: node's ignores and .git\n"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn write_never_overwrites_without_force_and_is_whole() {
    let (_tmp, dir) = copy_project("compose-monorepo");
    common::run_in(&dir, &["init", "--write"]).assert_code(0);
    let dockerfile = dir.join("docker/db/Dockerfile");
    assert!(fs::read_to_string(&dockerfile)
        .unwrap()
        .contains("FROM postgres:16.4\n"));

    // Only the Dockerfile is in the way: nothing is written, and the error names it.
    fs::remove_file(dir.join("cookbook.json")).unwrap();
    fs::write(&dockerfile, "FROM mine\n").unwrap();
    let run = common::run_in(&dir, &["init", "--write"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: ./docker/db/Dockerfile already exists: not overwritten (use --force to replace it)\n",
        "{}",
        run.context()
    );
    assert_eq!(fs::read_to_string(&dockerfile).unwrap(), "FROM mine\n");
    assert!(
        !dir.join("cookbook.json").exists(),
        "a refusal writes nothing"
    );

    let run = common::run_in(&dir, &["init", "--write", "--force"]);
    run.assert_code(0);
    assert!(fs::read_to_string(&dockerfile)
        .unwrap()
        .contains("FROM postgres:16.4\n"));
    assert!(
        run.stderr.contains("# wrote ./cookbook.json\n"),
        "{}",
        run.context()
    );
    // No temporary files are left beside the results.
    let leftovers: Vec<_> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".cookbook-init-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn base_overrides_a_language_and_bad_ones_are_usage_errors() {
    let dir = projects().join("flask");
    let run = common::run_in(
        &dir,
        &[
            "init",
            "--base",
            "python=python:3.11-slim",
            "--format",
            "json",
        ],
    );
    run.assert_code(0);
    let dockerfile = json_of(&run)["files"]["Dockerfile"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        dockerfile.contains("\nFROM python:3.11-slim\n"),
        "{dockerfile}"
    );

    let run = common::run_in(&dir, &["init", "--base", "cobol=x:1"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: unknown language `cobol` in --base (known: python, node, go, rust, java, static)\n"
    );
    let run = common::run_in(&dir, &["init", "--base", "python"]);
    run.assert_code(2);
    assert_eq!(run.stderr, "error: `--base python`: expected LANG=IMAGE\n");
}

#[test]
fn gitignore_and_dockerignore_are_respected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    fs::create_dir_all(root.join("generated")).unwrap();
    fs::create_dir_all(root.join("legacy")).unwrap();
    fs::create_dir_all(root.join("node_modules/x")).unwrap();
    fs::write(root.join("index.html"), "<html>").unwrap();
    fs::write(root.join(".gitignore"), "generated/\n").unwrap();
    fs::write(root.join(".dockerignore"), "legacy\n").unwrap();
    fs::write(root.join("generated/package.json"), "{}").unwrap();
    fs::write(root.join("legacy/go.mod"), "module x\n").unwrap();
    fs::write(root.join("legacy/main.go"), "package main\n").unwrap();
    fs::write(root.join("node_modules/x/package.json"), "{}").unwrap();
    let run = common::run_in(&root, &["init", "--format", "json"]);
    run.assert_code(0);
    let out = json_of(&run);
    assert_eq!(
        out["cookbook"]["containers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["site"],
        "{}",
        run.context()
    );
}

#[test]
fn an_empty_project_is_a_usage_error_saying_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("README"), "nothing here").unwrap();
    let run = common::run_in(tmp.path(), &["init"]);
    run.assert_code(2);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .starts_with("error: no service found in .: no Dockerfile, compose file, package.json"),
        "{}",
        run.context()
    );
}

// ---- hostile trees ----

#[test]
fn symlink_loops_and_links_out_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("loops");
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("index.html"), "<html>").unwrap();
    std::os::unix::fs::symlink("..", root.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink("self", root.join("self")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("package.json")).unwrap();
    let run = common::run_in(&root, &["init", "--format", "json"]);
    run.assert_code(0);
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    let out = json_of(&run);
    assert_eq!(
        out["notes"][0],
        "4 symbolic link(s) not followed (init never follows links; a link's target is not part of the project): a/b/up → .., out → /etc, package.json → /etc/passwd, self → self"
    );
    assert_eq!(out["waves"], json!([["loops"]]));
}

/// The walker of the `ignore` crate reads ignore files through links and whole: a `.gitignore`
/// linked to `/dev/zero` ran `init` out of memory, one linked to a FIFO would hang it. Each is
/// now a note, and the walk finishes quickly with everything else applied.
#[test]
fn ignore_files_that_are_links_fifos_or_huge_are_notes_not_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("hostile");
    fs::create_dir_all(root.join("sub/generated")).unwrap();
    fs::create_dir_all(root.join("deep")).unwrap();
    fs::create_dir_all(root.join("big")).unwrap();
    fs::write(root.join("index.html"), "<html>").unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join(".gitignore")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("sub/.ignore")).unwrap();
    // A regular file's rules still apply beside the refused ones.
    fs::write(root.join("sub/.gitignore"), "generated/\n").unwrap();
    fs::write(root.join("sub/generated/package.json"), "{}").unwrap();
    let fifo = root.join("deep/.gitignore");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut huge = "x\n".repeat(3 << 20).into_bytes();
    huge.truncate(5 << 20);
    fs::write(root.join("big/.gitignore"), huge).unwrap();
    let run = common::run_in(&root, &["init", "--format", "json"]);
    run.assert_code(0);
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    let out = json_of(&run);
    let notes: Vec<&str> = out["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for note in [
        ".gitignore → /dev/zero: a symbolic link, not followed (init never follows links): not applied",
        "sub/.ignore → /dev/zero: a symbolic link, not followed (init never follows links): not applied",
        "deep/.gitignore: cannot read it (not a regular file): not applied",
        "big/.gitignore: larger than 4 MiB: not applied",
    ] {
        assert!(notes.contains(&note), "no note {note:?} in {notes:#?}\n{}", run.context());
    }
    // `sub/.gitignore` kept `sub/generated/package.json` out: only the static site is found.
    assert_eq!(out["waves"], json!([["hostile"]]), "{}", run.context());
}

#[test]
fn a_hundred_thousand_files_are_walked_in_bounded_time() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("huge");
    fs::create_dir_all(&root).unwrap();
    fs::write(
        root.join("package.json"),
        r#"{"scripts":{"start":"node index.js"}}"#,
    )
    .unwrap();
    fs::write(root.join("package-lock.json"), "{}").unwrap();
    // Hard links to one file per directory (file systems cap a file's links): one system call
    // per file, so the tree is made in seconds.
    let made = Instant::now();
    for d in 0..400 {
        let dir = root.join(format!("src/m{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        let first = dir.join("f000.js");
        fs::write(&first, "").unwrap();
        for f in 1..250 {
            fs::hard_link(&first, dir.join(format!("f{f:03}.js"))).unwrap();
        }
    }
    eprintln!("made 100,000 files in {:?}", made.elapsed());
    let run = common::run_in(&root, &["init", "--format", "json"]);
    run.assert_code(0);
    eprintln!("init walked them in {:?}", run.elapsed);
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    let out = json_of(&run);
    assert_eq!(out["waves"], json!([["huge"]]));
    assert!(out["notes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| !n.as_str().unwrap().contains("walk stopped")));

    // A limit stops the walk and says so instead of running on.
    let run = common::run_in(&root, &["init", "--format", "json", "--max-files", "1000"]);
    run.assert_code(0);
    let note = json_of(&run)["notes"][0].as_str().unwrap().to_owned();
    assert!(note.starts_with("the walk stopped after "), "{note}");
    assert!(
        note.contains("(limits: 1000 files, 30 s): the tree is only partly examined"),
        "{note}"
    );
}

/// Runs the binary as `nobody`, for whom a mode-000 directory is unreadable (the tests run as
/// root, who reads everything). The binary is run from a copy in `bin_dir` (world-readable), as
/// the checkout it was built in may be in a directory `nobody` cannot enter.
fn run_as_nobody(bin_dir: &Path, cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let bin = bin_dir.join("cookbook");
    fs::copy(common::bin(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(&bin)
        .args(args)
        .current_dir(cwd)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > common::DEADLINE {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.and_then(|s| s.code()), out, err)
}

#[test]
fn an_unreadable_directory_is_a_note_and_the_walk_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("locked");
    fs::create_dir_all(root.join("secret")).unwrap();
    fs::create_dir_all(root.join("web")).unwrap();
    fs::write(root.join("web/index.html"), "<html>").unwrap();
    fs::write(root.join("secret/package.json"), "{}").unwrap();
    fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let (code, out, err) = run_as_nobody(tmp.path(), &root, &["init", "--format", "json"]);
    fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, Some(0), "stderr: {err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        out["notes"][0],
        "skipped secret: cannot read it: Permission denied (os error 13)"
    );
    assert_eq!(out["waves"], json!([["web"]]));
}

#[test]
fn binary_junk_named_package_json_is_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("junk");
    fs::create_dir_all(root.join("api")).unwrap();
    fs::create_dir_all(root.join("site")).unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(root.join("api/package.json"), &junk).unwrap();
    fs::write(root.join("site/index.html"), "<html>").unwrap();
    let run = common::run_in(&root, &["init", "--format", "json"]);
    run.assert_code(0);
    let out = json_of(&run);
    assert_eq!(
        out["notes"][0],
        "api/package.json: a binary file, not text: not used as a Node project"
    );
    assert_eq!(out["waves"], json!([["site"]]));

    // Alone, it is a usage error that still says why the file was not used.
    fs::remove_dir_all(root.join("site")).unwrap();
    let run = common::run_in(&root, &["init"]);
    run.assert_code(2);
    assert!(
        run.stderr.starts_with("# note: api/package.json: a binary file, not text: not used as a Node project\nerror: no service found in ."),
        "{}",
        run.context()
    );
}

// ---- for real ----

#[test]
fn the_static_site_cookbook_applies_against_the_test_registry() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
        .unwrap_or_else(|_| "cookbook-test/busybox:latest".into());
    let (_tmp, dir) = copy_project("static-site");
    let unique = common::unique("init-");
    let repo = format!("{registry}/{unique}");
    let base_arg = format!("static={base}");
    common::run_in(
        &dir,
        &["init", "--write", "--base", &base_arg, "--registry", &repo],
    )
    .assert_code(0);
    let apply = common::run_in(&dir, &["apply", "--format", "json"]);
    apply.assert_code(0);
    let summary = json_of(&apply);
    assert_eq!(summary["result"], "ok", "{}", apply.context());
    assert_eq!(summary["built"], 1, "{}", apply.context());
    let image = summary["containers"]["static-site"]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.starts_with(&format!("{repo}/static-site:")),
        "{image}"
    );
    // The registry has it: a second apply builds nothing.
    let again = common::run_in(&dir, &["apply", "--format", "json"]);
    again.assert_code(0);
    assert_eq!(json_of(&again)["cached"], 1, "{}", again.context());
}

/// Removes, when dropped, what a deploy of project `0` made on the engine: its labelled
/// containers and its `local` site's `dev` network.
struct Deployed(String);

impl Drop for Deployed {
    fn drop(&mut self) {
        let project = self.0.clone();
        common::block_on(async move {
            let Ok(engine) = cookbook::engine::DockerEngine::connect().await else {
                return;
            };
            let docker = engine.client();
            let filters = std::collections::HashMap::from([(
                "label".to_owned(),
                vec![format!("dev.cookbook.project={project}")],
            )]);
            let labelled = docker
                .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                }))
                .await
                .unwrap_or_default();
            for id in labelled.into_iter().filter_map(|c| c.id) {
                let options = bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&id, Some(options)).await;
            }
            let _ = docker.remove_network(&format!("{project}-local-dev")).await;
        });
    }
}

/// A compose project whose one base the engine has (a static site, built on the test busybox
/// through `--base`): what `init` writes builds, deploys to the generated `local` site's `dev`
/// stage, serves on the published port as the non-root user, passes the health check carried
/// from compose, and gets its secret at deploy time, never from the image.
#[test]
fn a_generated_compose_project_builds_deploys_and_serves_as_a_non_root_user() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let base = std::env::var("COOKBOOK_TEST_BASE_IMAGE")
        .unwrap_or_else(|_| "cookbook-test/busybox:latest".into());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shopfront");
    fs::create_dir_all(dir.join("site")).unwrap();
    fs::write(dir.join("site/index.html"), "<p>hello from init</p>\n").unwrap();
    let port = common::deploy::free_port();
    fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:\n  web:\n    build: ./site\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n    environment:\n      API_TOKEN: from-compose\n      GREETING: hello\n    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/\"]\n      interval: 500ms\n      retries: 20\n"
        ),
    )
    .unwrap();
    let project = common::unique("init-compose-");
    let _cleanup = Deployed(project.clone());
    let repo = format!("{registry}/{project}");
    let base_arg = format!("static={base}");
    let init = common::run_in(
        &dir,
        &[
            "init",
            "--write",
            "--base",
            &base_arg,
            "--registry",
            &repo,
            "--name",
            &project,
        ],
    );
    init.assert_code(0);
    assert!(
        init.stderr.contains("API_TOKEN holds a secret"),
        "{}",
        init.context()
    );
    let apply = common::run_in(&dir, &["apply", "--format", "json"]);
    apply.assert_code(0);
    assert_eq!(json_of(&apply)["built"], 1, "{}", apply.context());

    // Without the secret, the deploy stops before anything starts (exit 2).
    let missing = common::run_in(&dir, &["deploy", "--site", "local", "--stage", "dev"]);
    missing.assert_code(2);
    let deploy = common::run_in_env(
        &dir,
        &["deploy", "--site", "local", "--stage", "dev"],
        &[("COOKBOOK_SECRET_WEB_API_TOKEN", "s3cret")],
    );
    deploy.assert_code(0);

    let instance = format!("{project}-local-dev-web-1");
    let exec = |argv: &[&str]| common::deploy::exec(&instance, argv);
    assert_eq!(exec(&["id", "-u"]).trim(), "65534", "the generated USER");
    assert_eq!(
        exec(&["sh", "-c", "echo \"$API_TOKEN $GREETING\""]).trim(),
        "s3cret hello"
    );
    // Served by the non-root httpd; the port published as compose asked (this engine runs
    // without a userland proxy or iptables, so the host side is checked in its configuration).
    assert!(exec(&["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]).contains("hello from init"));
    let bindings = common::deploy::inspect(&instance)
        .host_config
        .unwrap()
        .port_bindings
        .unwrap();
    let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        binding.host_port.as_deref(),
        Some(port.to_string().as_str())
    );
}
