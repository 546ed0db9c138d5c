//! How to run the agent (issue 23): docs/AGENT.md's command blocks run as written (the README's
//! `<!-- readme-test: … -->` directives, `tests/it/readme.rs`); its openssl recipe makes
//! certificates the real agent serves mutual TLS with; its two PromQL alerts load and fire when
//! they should (`promtool test rules`); the systemd unit's command line starts the agent, and the
//! unit verifies and is hardened (`systemd-analyze`, where there is one); the Kubernetes objects
//! pass Kubernetes' own schemas and say what the docs say; the repository's own cookbook for the
//! agent's image is one engine-less container FROM scratch, assembled and pushed with no engine.
//!
//! The image's release build itself (scripts/agent-image.sh) is a full static release build:
//! too slow for the suite, run by hand.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common;
use crate::fleet::{anonymous, get};
use crate::readme::{blocks, Block};

fn doc() -> String {
    fs::read_to_string(common::repo_root().join("docs/AGENT.md")).unwrap()
}

/// Runs a block with bash in `dir`, the built `cookbook` first on PATH; fails the test with the
/// script and both streams when it fails.
fn run_block(block: &Block, dir: &Path) {
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block.script])
        .current_dir(dir)
        .env("PATH", &path)
        .env_remove("COOKBOOK_FILE")
        .env("COOKBOOK_CACHE_DIR", dir.join(".cookbook"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docs/AGENT.md:{} failed: {:?}\n--- script ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        block.line,
        output.status,
        block.script,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn every_command_block_of_the_agent_guide_runs_or_says_why_not() {
    let root = common::repo_root();
    let mut ran = 0;
    for block in blocks(&doc(), "sh") {
        let directive = block.directive.as_deref().unwrap_or_else(|| {
            panic!(
                "docs/AGENT.md:{}: a ```sh block needs a `<!-- readme-test: cwd=DIR -->` or \
                 `<!-- readme-test: skip: REASON -->` line before it",
                block.line
            )
        });
        if let Some(reason) = directive.strip_prefix("skip:") {
            assert!(
                !reason.trim().is_empty(),
                "docs/AGENT.md:{}: say why",
                block.line
            );
            continue;
        }
        let cwd = directive.strip_prefix("cwd=").unwrap_or_else(|| {
            panic!(
                "docs/AGENT.md:{}: unknown directive {directive:?}",
                block.line
            )
        });
        // A scratch copy: blocks write files and must not touch the repository.
        let scratch = tempfile::tempdir().unwrap();
        common::copy_tree(&root.join(cwd), scratch.path());
        run_block(&block, scratch.path());
        ran += 1;
    }
    // The secret, the event log and the certificate recipe.
    assert!(ran >= 3, "only {ran} blocks of docs/AGENT.md ran");
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_log(dir: &Path) -> String {
    format!(
        "--- agent stdout ---\n{}\n--- agent stderr ---\n{}",
        fs::read_to_string(dir.join("agent.out")).unwrap_or_default(),
        fs::read_to_string(dir.join("agent.err")).unwrap_or_default()
    )
}

/// Starts the real agent in `dir` with `args` (and a remote that does not exist: its rounds fail
/// at once, which is all these tests need), its output in `dir/agent.{out,err}`.
fn start_agent(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Running {
    let mut command = Command::new(common::bin());
    command
        .args(args)
        .current_dir(dir)
        .env("COOKBOOK_SYNC_REMOTE", dir.join("no-such-remote"))
        .env_remove("COOKBOOK_WEBHOOK_SECRET")
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("agent.out")).unwrap())
        .stderr(fs::File::create(dir.join("agent.err")).unwrap());
    for (key, value) in envs {
        command.env(key, value);
    }
    Running(command.spawn().unwrap())
}

/// SIGTERM between rounds: the agent stops with exit 0.
fn stop(agent: &mut Running, dir: &Path) {
    common::signal(&agent.0, "-TERM");
    let (code, _) = common::exit_within(&mut agent.0, Duration::from_secs(60), "the agent");
    assert_eq!(code, Some(0), "{}", agent_log(dir));
}

#[test]
fn the_guides_openssl_recipe_makes_certificates_the_agent_serves_mutual_tls_with() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let recipe = blocks(&doc(), "sh")
        .into_iter()
        .find(|b| b.script.contains("openssl req -x509"))
        .expect("docs/AGENT.md has the openssl recipe");
    run_block(&recipe, dir);

    let port = common::deploy::free_port();
    let mut agent = start_agent(
        dir,
        &[
            "agent",
            "--site",
            "paris",
            "--state",
            "state",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            "paris.pem",
            "--tls-key",
            "paris-key.pem",
            "--tls-client-ca",
            "ca.pem",
        ],
        &[],
    );
    let identity = |cert: &str, key: &str| {
        cookbook::tls::client(&cookbook::tls::ClientFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(cert),
            key: dir.join(key),
        })
        .unwrap()
    };
    let client = identity("client.pem", "client-key.pem");
    // By name and by address: both are in the agent's certificate. Ready once the first round
    // (which fails: no remote) has ended.
    for url in [
        format!("https://localhost:{port}/readyz"),
        format!("https://127.0.0.1:{port}/healthz"),
    ] {
        common::wait_until(&url, Duration::from_secs(60), || {
            get(&client, &url) == Ok(200)
        });
    }
    // The agent's own certificate is a client certificate too (what --peers asks with).
    let status = format!("https://127.0.0.1:{port}/api/v1/status");
    assert_eq!(
        get(&identity("paris.pem", "paris-key.pem"), &status),
        Ok(200)
    );
    // Without a certificate: refused in the handshake.
    let refused = get(&anonymous(&dir.join("ca.pem")), &status).unwrap_err();
    assert!(refused.contains("CertificateRequired"), "{refused}");
    stop(&mut agent, dir);
}

/// Runs `promtool ARGS` in `dir`; `None` (skipped, or failed under COOKBOOK_REQUIRE_SERVICES)
/// when promtool is not installed.
fn promtool(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("promtool: {e} (Debian's `prometheus` package; scripts/test.sh installs it)");
            common::skip_or_fail();
            None
        }
    }
}

/// The guide's alerts, over series where one agent never succeeds and another succeeded at
/// 2.5 h, whose container turns unhealthy at 3 min.
const ALERT_TESTS: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'cookbook_agent_start_time_seconds{instance="never"}'
        values: '0x200'
      - series: 'cookbook_agent_last_success_timestamp_seconds{instance="never"}'
        values: '0x200'
      - series: 'cookbook_agent_start_time_seconds{instance="fine"}'
        values: '0x200'
      - series: 'cookbook_agent_last_success_timestamp_seconds{instance="fine"}'
        values: '9000x200'
      - series: 'cookbook_container_healthy{instance="fine",stage="prod",container="web"}'
        values: '1 1 1 0x40'
    alert_rule_test:
      - eval_time: 1h
        alertname: CookbookAgentNoSuccessfulRound
        exp_alerts: []
      - eval_time: 3h
        alertname: CookbookAgentNoSuccessfulRound
        exp_alerts:
          - exp_labels: { instance: never, severity: warning }
            exp_annotations:
              summary: "never: no successful cookbook round for 2 h"
              description: "cookbook events --state DIR --kind sync_round --since 3h says why"
      - eval_time: 10m
        alertname: CookbookContainerUnhealthy
        exp_alerts: []
      - eval_time: 15m
        alertname: CookbookContainerUnhealthy
        exp_alerts:
          - exp_labels: { instance: fine, stage: prod, container: web, severity: critical }
            exp_annotations:
              summary: "fine: prod/web unhealthy for 10 m"
"#;

#[test]
fn the_guides_alerts_load_and_fire_when_they_should() {
    let rules = blocks(&doc(), "yaml")
        .into_iter()
        .find(|b| b.script.contains("CookbookAgentNoSuccessfulRound"))
        .expect("docs/AGENT.md has the alerts");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rules.yml"), &rules.script).unwrap();
    fs::write(dir.path().join("tests.yml"), ALERT_TESTS).unwrap();
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "tests.yml"][..],
    ] {
        let Some(out) = promtool(dir.path(), args) else {
            return;
        };
        assert!(
            out.status.success(),
            "promtool {args:?} (rules from docs/AGENT.md:{}):\n{}{}",
            rules.line,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn unit() -> String {
    fs::read_to_string(common::repo_root().join("contrib/systemd/cookbook-agent.service")).unwrap()
}

/// The unit's `[Service]` settings in order, continuation lines joined, comments left out.
fn settings(unit: &str) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    let mut pending: Option<String> = None;
    for line in unit.lines() {
        let line = line.trim();
        if pending.is_none() && (line.is_empty() || line.starts_with('#') || line.starts_with('['))
        {
            continue;
        }
        let joined = match pending.take() {
            Some(head) => format!("{head} {line}"),
            None => line.to_owned(),
        };
        if let Some(head) = joined.strip_suffix('\\') {
            pending = Some(head.trim_end().to_owned());
            continue;
        }
        let (key, value) = joined.split_once('=').unwrap();
        settings.push((key.to_owned(), value.to_owned()));
    }
    settings
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_systemd_units_command_line_starts_the_agent_with_its_credential_and_state() {
    let settings = settings(&unit());
    let one = |key: &str| {
        let values = setting(&settings, key);
        assert_eq!(values.len(), 1, "{key}: {values:?}");
        values[0].to_owned()
    };
    for (key, value) in [
        ("Type", "simple"),
        ("DynamicUser", "yes"),
        ("SupplementaryGroups", "docker"),
        ("StateDirectory", "cookbook-agent"),
        (
            "LoadCredential",
            "webhook-secret:/etc/cookbook-agent/webhook-secret",
        ),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("KillSignal", "SIGTERM"),
        ("SuccessExitStatus", "143"),
        ("TimeoutStopSec", "5min"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(key), value, "{key}");
    }

    // ExecStart as systemd would run it: its variables given values, on a free port.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let credentials = dir.join("credentials");
    fs::create_dir(&credentials).unwrap();
    let secret = credentials.join("webhook-secret");
    fs::write(&secret, "s3cr3t\n").unwrap();
    // systemd's credentials are mode 0400, the service's user only.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o400)).unwrap();
    let exec = one("ExecStart");
    let mut argv: Vec<String> = exec
        .split_whitespace()
        .map(|word| {
            word.replace("${COOKBOOK_SITE}", "paris")
                .replace(
                    "${STATE_DIRECTORY}",
                    &dir.join("state").display().to_string(),
                )
                .replace(
                    "${CREDENTIALS_DIRECTORY}",
                    &credentials.display().to_string(),
                )
                .replace("127.0.0.1:8750", "127.0.0.1:0")
        })
        .collect();
    assert_eq!(argv.remove(0), "/usr/local/bin/cookbook", "{exec}");
    assert!(!argv.iter().any(|a| a.contains('$')), "{argv:?}");
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut agent = start_agent(dir, &args, &[]);
    common::wait_until("the agent listening", Duration::from_secs(60), || {
        fs::read_to_string(dir.join("agent.out")).is_ok_and(|out| out.contains("listening on"))
            || agent.0.try_wait().unwrap().is_some()
    });
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "the unit's command line did not start the agent: {exec}\n{}",
        agent_log(dir)
    );
    // Stopped between rounds: once its first round (which fails: no remote) has ended. A
    // SIGTERM inside the round is exit 143, which is another test's.
    common::wait_until("the first round to end", Duration::from_secs(60), || {
        fs::read_to_string(dir.join("agent.err")).is_ok_and(|err| err.contains("round failed"))
    });
    stop(&mut agent, dir);
    // Its state went where StateDirectory= points (the round made the mirror there).
    assert!(dir.join("state/mirror.git").is_dir(), "{}", agent_log(dir));
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: no systemd-analyze here (Debian's `systemd` package has it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cookbook-agent.service");
    // verify checks that ExecStart's program exists: the binary under test stands in for it.
    fs::write(
        &file,
        unit().replace("/usr/local/bin/cookbook", common::bin()),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .unwrap();
    // A setting systemd does not understand is a warning ("…, ignoring"), not a failure.
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd's own exposure score, 0 (locked down) to 10 (unprotected): 1.5 when written.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "the unit's exposure rose above 2.0:\n{}{}",
        String::from_utf8_lossy(&security.stdout),
        String::from_utf8_lossy(&security.stderr)
    );
}

/// The objects of contrib/kubernetes/agent.yaml, as JSON values.
fn kubernetes_objects() -> (String, Vec<Value>) {
    let text =
        fs::read_to_string(common::repo_root().join("contrib/kubernetes/agent.yaml")).unwrap();
    let objects = text
        .split("\n---\n")
        .map(|doc| yaml_serde::from_str::<Value>(doc).unwrap())
        .collect();
    (text, objects)
}

fn agent_cookbook() -> Value {
    let path = common::repo_root().join("cookbooks/agent/cookbook.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_kubernetes_objects_pass_kubernetes_schemas_and_run_one_locked_down_agent() {
    crate::kubernetes::kubernetes_validate_file(
        &common::repo_root().join("contrib/kubernetes/agent.yaml"),
        "contrib/kubernetes/agent.yaml",
    );
    let (text, objects) = kubernetes_objects();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "PersistentVolumeClaim",
            "Deployment",
            "Service"
        ]
    );
    // The webhook secret is referred to, never written here.
    assert!(!kinds.contains(&"Secret") && !text.contains("stringData"));
    let object = |kind: &str| objects.iter().find(|o| o["kind"] == kind).unwrap();

    let deployment = object("Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["strategy"]["type"], "Recreate");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let agent = &containers[0];
    let security = &agent["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(agent["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(agent["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(agent["resources"]["requests"].is_object() && agent["resources"]["limits"].is_object());
    let args: Vec<&str> = agent["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--listen=0.0.0.0:8750"), "{args:?}");
    // The state flag names the volume the claim is mounted at.
    let state = args
        .iter()
        .find_map(|a| a.strip_prefix("--state="))
        .unwrap();
    let mounts = agent["volumeMounts"].as_array().unwrap();
    let state_mount = mounts.iter().find(|m| m["mountPath"] == state).unwrap();
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == state_mount["name"])
        .unwrap();
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        object("PersistentVolumeClaim")["metadata"]["name"]
    );
    assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"));
    let secret = agent["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "COOKBOOK_WEBHOOK_SECRET")
        .unwrap();
    assert!(secret["valueFrom"]["secretKeyRef"]["name"].is_string());
    // The image is the one the repository's cookbook publishes.
    let cookbook = agent_cookbook();
    assert_eq!(
        agent["image"],
        format!(
            "{}/agent:latest",
            cookbook["packaging"]["registry"].as_str().unwrap()
        )
    );
    assert_eq!(
        agent["command"],
        serde_json::json!(["/usr/local/bin/cookbook", "agent"])
    );

    let service = object("Service");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["port"], 8750);
    let annotations = &service["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8750");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
}

/// cookbooks/agent copied into `dir`, with `binary` as the binary the script would copy.
fn agent_book(dir: &Path, binary: &[u8]) -> PathBuf {
    common::copy_tree(&common::repo_root().join("cookbooks/agent"), dir);
    let bin = dir.join("bin/cookbook");
    fs::write(&bin, binary).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn json(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.context()))
}

#[test]
fn the_agents_cookbook_is_one_engine_less_container_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    agent_book(dir, b"the static binary\n");
    common::run_in(dir, &["validate"]).assert_code(0);

    let plan = common::run_in(dir, &["plan", "--format", "json"]);
    plan.assert_code(0);
    let plan = json(&plan);
    assert_eq!(plan["waves"], serde_json::json!([["agent"]]));
    assert_eq!(plan["containers"].as_object().unwrap().len(), 1);

    let explain = common::run_in(dir, &["explain", "agent"]);
    explain.assert_code(0);
    let recipe = &json(&explain)["recipe"];
    assert_eq!(recipe["kind"], "generated");
    assert_eq!(recipe["base_image"]["image"], "scratch");
    let apps = recipe["applications"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    // No build commands: assembled without an engine.
    assert_eq!(apps[0]["build_commands"], serde_json::json!([]));
    assert_eq!(apps[0]["image_dir"], "/usr/local/bin");
    assert_eq!(
        apps[0]["run_command"],
        serde_json::json!(["cookbook", "agent"])
    );
    assert_eq!(recipe["ports"], serde_json::json!(["8750/tcp"]));
    assert!(recipe["labels"]["org.opencontainers.image.licenses"].is_string());

    // The context is the binary alone (the tree's .dockerignore keeps everything else out).
    let context = common::run_in(dir, &["context", "agent", "-o", "context.tar"]);
    context.assert_code(0);
    let mut archive = tar::Archive::new(fs::File::open(dir.join("context.tar")).unwrap());
    let entries: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(entries, ["Dockerfile", "bin/cookbook"]);
}

/// The docker CLI against the test engine.
fn docker(args: &[&str]) -> std::process::Output {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn without_an_engine_the_agents_image_is_assembled_and_pushed() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    agent_book(dir, b"#!the static binary\n");
    let repository = format!("{registry}/{}", common::unique("agentimg"));
    common::deploy::edit(dir, |book| {
        book["packaging"]["registry"] = Value::String(repository.clone());
    });
    // No engine: a loopback port nothing listens on.
    let closed = format!("tcp://127.0.0.1:{}", common::deploy::free_port());
    let apply = common::run_in_env(
        dir,
        &["apply", "--format", "json"],
        &[("DOCKER_HOST", closed.as_str()), ("CI", "true")],
    );
    apply.assert_code(0);
    let summary = json(&apply);
    assert_eq!(summary["built"], 1, "{}", apply.context());
    let digest = summary["containers"]["agent"]["digest"].as_str().unwrap();
    let image = format!("{repository}/agent@{digest}");

    docker(&["pull", "-q", &image]);
    let inspect = docker(&["image", "inspect", &image, "--format", "{{json .}}"]);
    let _ = Command::new("docker").args(["rmi", &image]).output();
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let config = &inspect["Config"];
    assert_eq!(config["Cmd"], serde_json::json!(["cookbook", "agent"]));
    assert!(config["Entrypoint"].is_null());
    assert_eq!(config["WorkingDir"], "/usr/local/bin");
    assert_eq!(
        config["ExposedPorts"],
        serde_json::json!({ "8750/tcp": {} })
    );
    // FROM scratch: the engine's default PATH, which finds /usr/local/bin/cookbook.
    let path = config["Env"][0].as_str().unwrap();
    assert!(
        path.starts_with("PATH=") && path.split(':').any(|d| d.ends_with("/usr/local/bin")),
        "{path}"
    );
    assert_eq!(config["Labels"]["org.opencontainers.image.title"], "agent");
    assert_eq!(
        config["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    // One layer, no base layers.
    assert_eq!(inspect["RootFS"]["Layers"].as_array().unwrap().len(), 1);
}
