//! `cookbook agent` end to end: the real binary against a real `git daemon`, the engine and the
//! registry. A push and a signed webhook delivery lead to the new revision deployed (timed from
//! the delivery to the deploy in the event log); deliveries that are forged, replayed or too
//! large start nothing; `/metrics` passes promtool and follows the rounds; the dashboard is read
//! in headless Chromium; two agents answer the fleet view over mutual TLS; SIGTERM mid-round
//! leaves the state as `sync` promises.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common;
use crate::common::browser::{save_artifact, Browser, Scripts};
use crate::sync::{command, Fixture, GitDaemon};

const SECRET: &str = "agent-test-secret-7f3c";

/// A running `cookbook agent`, killed on drop.
struct Agent {
    child: Child,
    addr: String,
    state: PathBuf,
    log: PathBuf,
}

impl Agent {
    /// Starts an agent for `site` of the fixture's remote `url` on a port of its choosing, and
    /// waits until it listens.
    fn start(f: &Fixture, name: &str, url: &str, extra: &[&str]) -> Agent {
        let state = f.path().join(format!("agent-{name}"));
        let log = f.path().join(format!("agent-{name}.log"));
        let state_arg = state.display().to_string();
        let mut args = vec![
            "agent",
            "--remote",
            url,
            "--state",
            &state_arg,
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1h",
            "--health-every",
            "2s",
        ];
        args.extend_from_slice(extra);
        let child = command(f, &args, &[])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        let mut agent = Agent {
            child,
            addr: String::new(),
            state,
            log,
        };
        common::wait_until("the agent to listen", Duration::from_secs(30), || {
            if let Ok(Some(code)) = agent.child.try_wait() {
                let err = std::fs::read_to_string(agent.log.with_extension("err"));
                panic!("the agent exited {code} before it listened:\n{err:?}");
            }
            let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
            let Some(at) = log.find("listening on ") else {
                return false;
            };
            let rest = &log[at + "listening on ".len()..];
            let url = rest.lines().next().unwrap_or_default();
            agent.addr = url
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .to_owned();
            true
        });
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, &[], b"")
    }

    fn status(&self) -> Value {
        let (code, body) = self.get("/api/v1/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn hook(&self, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        http(&self.addr, "POST", "/hooks/git", headers, body)
    }

    /// The event log, parsed.
    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state.join("events.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_ready(&self) {
        common::wait_until("the agent's first round", Duration::from_secs(180), || {
            self.get("/readyz").0 == 200
        });
    }

    /// SIGTERM; the exit code.
    fn stop(&mut self) -> Option<i32> {
        common::signal(&self.child, "-TERM");
        common::exit_within(&mut self.child, Duration::from_secs(60), "the agent").0
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on loopback; the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    // A server that refuses a body may close before it has all been sent.
    let _ = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (code, body)
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        text = &rest[size + 2..];
    }
    out
}

/// GitHub's push delivery for `commit` on main, signed with `secret`.
fn github_push(commit: &str, delivery: &str, secret: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0".repeat(40),
        "after": commit,
        "repository": {"full_name": "example/shop"},
    })
    .to_string()
    .into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let headers = vec![
        ("X-GitHub-Event".to_owned(), "push".to_owned()),
        ("X-GitHub-Delivery".to_owned(), delivery.to_owned()),
        ("X-Hub-Signature-256".to_owned(), signature),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ];
    (headers, body)
}

fn as_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The shop project (a private name) on the test registry, committed to the fixture's work
/// repository and pushed to its bare remote.
fn shop(f: &Fixture, p: &common::deploy::Project, registry: &str, tag: &str) -> (Value, String) {
    let namespace = format!("{registry}/agent-{tag}-{}", std::process::id());
    let text = std::fs::read_to_string(p.path().join("cookbook.json"))
        .unwrap()
        .replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let commit = f.commit(&text, "shop");
    f.push(&f.file_url(), false);
    (doc, commit)
}

fn commit_doc(f: &Fixture, doc: &Value, message: &str) -> String {
    let commit = f.commit(&serde_json::to_string_pretty(doc).unwrap(), message);
    f.push(&f.file_url(), false);
    commit
}

fn secret_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("webhook-secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

fn deploys_of(events: &[Value], commit: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "deploy" && e["stage"] == "dev" && e["revision"] == commit)
        .cloned()
        .collect()
}

/// A stage's view in a status document.
fn stage<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}: {status}"))
}

/// The sample value of a metric line `name{labels} value` (labels as written).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_signed_push_is_deployed_and_forged_replayed_or_oversized_deliveries_start_nothing() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = common::deploy::Project::new("shop", "agent");
    let f = Fixture::new();
    let daemon = GitDaemon::start(&f);
    let (mut doc, first) = shop(&f, &p, &registry, "hook");
    let secret = secret_file(f.path());
    let secret_arg = secret.display().to_string();
    let mut agent = Agent::start(
        &f,
        "hook",
        &daemon.url(),
        &["--site", "local", "--webhook-secret-file", &secret_arg],
    );
    agent.wait_ready();
    assert_eq!(
        deploys_of(&agent.events(), &first).len(),
        1,
        "{}",
        agent.log()
    );
    let rounds = |agent: &Agent| agent.status()["rounds"].as_array().unwrap().len();
    assert_eq!(rounds(&agent), 1);

    // The next revision: the worker's dev settings change (a redeploy, nothing to build).
    doc["lifecycle"]["stage_config"]["dev"]["containers"]["worker"]["env"]["WORKER_INTERVAL"] =
        "7".into();
    let second = commit_doc(&f, &doc, "worker: every 7 s in dev");

    // Forged, unsigned, GitLab with a wrong token, oversized: refused, nothing starts.
    let (mut forged, body) = github_push(&second, "forged-1", "not-the-secret");
    assert_eq!(agent.hook(&as_refs(&forged), &body).0, 401);
    forged.retain(|(n, _)| n != "X-Hub-Signature-256");
    assert_eq!(agent.hook(&as_refs(&forged), &body).0, 401);
    let gitlab = [("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "wrong")];
    assert_eq!(agent.hook(&gitlab, &body).0, 401);
    let (headers, _) = github_push(&second, "big-1", SECRET);
    let big = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(agent.hook(&as_refs(&headers), &big).0, 413);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rounds(&agent), 1, "a refused delivery started a round");
    assert!(deploys_of(&agent.events(), &second).is_empty());

    // The signed delivery: deployed, timed from the delivery to the deploy in the event log.
    let (headers, body) = github_push(&second, "delivery-2", SECRET);
    let delivered = Instant::now();
    let (code, answer) = agent.hook(&as_refs(&headers), &body);
    assert_eq!(code, 202, "{answer}");
    common::wait_until(
        "the pushed revision deployed",
        Duration::from_secs(120),
        || !deploys_of(&agent.events(), &second).is_empty(),
    );
    let latency = delivered.elapsed();
    eprintln!("webhook delivery to `deployed` in the event log: {latency:?}");
    let deploy = &deploys_of(&agent.events(), &second)[0];
    assert_eq!(deploy["outcome"], "ok", "{deploy}");
    assert_eq!(deploy["who"]["delivery"], "delivery-2", "{deploy}");
    assert_eq!(deploy["who"]["via"], "agent:webhook", "{deploy}");
    assert_eq!(deploy["digests"].as_object().unwrap().len(), 4, "{deploy}");

    // The same delivery again: a replay, nothing starts.
    let (code, answer) = agent.hook(&as_refs(&headers), &body);
    assert_eq!(code, 409, "{answer}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rounds(&agent), 2, "a replayed delivery started a round");

    // The status: the new revision, no secret anywhere.
    let status = agent.status();
    assert_eq!(status["sync"]["current"], second.as_str(), "{status}");
    assert_eq!(status["sync"]["behind"], 0, "{status}");
    assert_eq!(status["rounds"][0]["trigger"], "webhook");
    assert_eq!(status["rounds"][0]["delivery"], "delivery-2");
    let dev = stage(&status, "dev");
    assert_eq!(dev["release"], deploy["release"], "{status}");
    assert_eq!(dev["containers"].as_array().unwrap().len(), 4, "{status}");
    assert!(!status.to_string().contains(SECRET));

    // The metrics follow the rounds, and promtool reads them.
    let (code, metrics) = agent.get("/metrics");
    assert_eq!(code, 200);
    assert!(!metrics.contains(SECRET));
    check_with_promtool(f.path(), &metrics);
    let ok_taken = r#"cookbook_agent_rounds_total{result="ok",outcome="taken"}"#;
    assert_eq!(metric(&metrics, ok_taken), Some(2.0), "{metrics}");
    for (result, count) in [
        ("accepted", 1.0),
        ("unauthorized", 3.0),
        ("too_large", 1.0),
        ("replayed", 1.0),
    ] {
        let github_or_gitlab: f64 = ["github", "gitlab", "unknown"]
            .iter()
            .filter_map(|provider| {
                metric(
                    &metrics,
                    &format!(
                        r#"cookbook_webhook_deliveries_total{{provider="{provider}",result="{result}"}}"#
                    ),
                )
            })
            .sum();
        assert_eq!(github_or_gitlab, count, "{result}: {metrics}");
    }
    let revision = format!(r#"cookbook_agent_revision_info{{revision="{second}",branch="main"}}"#);
    assert_eq!(metric(&metrics, &revision), Some(1.0), "{metrics}");
    let deployed = r#"cookbook_deploys_total{stage="dev",result="deployed"}"#;
    assert_eq!(metric(&metrics, deployed), Some(2.0), "{metrics}");
    let healthy = r#"cookbook_container_healthy{stage="dev",container="api"}"#;
    assert_eq!(metric(&metrics, healthy), Some(1.0), "{metrics}");

    // A revision whose web health check fails: its deploy is rolled back, on the timeline.
    doc["containers"]["web"]["health"]["http"]["path"] = "/no-such-page.html".into();
    doc["containers"]["web"]["health"]["retries"] = 2.into();
    let third = commit_doc(&f, &doc, "web: a health check that fails");
    let (headers, body) = github_push(&third, "delivery-3", SECRET);
    assert_eq!(agent.hook(&as_refs(&headers), &body).0, 202);
    common::wait_until(
        "the failing deploy rolled back",
        Duration::from_secs(120),
        || {
            deploys_of(&agent.events(), &third)
                .iter()
                .any(|e| e["outcome"] == "rolled_back")
        },
    );
    // The stage still runs the release before it, and runs it as recorded: no drift, although
    // the lock has moved on to the images that were rolled back.
    let status = agent.status();
    let dev = stage(&status, "dev");
    assert_eq!(dev["release"], deploy["release"], "{status}");
    let containers = dev["containers"].as_array().unwrap();
    assert!(containers.iter().all(|c| c["drift"] == false), "{status}");
    dashboard_in_chromium(&agent, &p.name);

    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    assert!(agent.log().contains("stopping"), "{}", agent.log());
}

fn check_with_promtool(dir: &Path, metrics: &str) {
    let file = dir.join("metrics.txt");
    std::fs::write(&file, metrics).unwrap();
    let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
    else {
        common::skip_or_fail();
        return;
    };
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The agent's own page in a real browser: the site, its stages and containers, and the
/// rollback on the timeline; screenshots kept as artifacts.
fn dashboard_in_chromium(agent: &Agent, project: &str) {
    let Some(browser) = Browser::start(Scripts::Enabled) else {
        return;
    };
    browser.set_window_size((1280, 900));
    browser.goto(&format!("http://{}/", agent.addr));
    let text = browser.text();
    for expected in [
        "local",
        project,
        "dev",
        "prod",
        "db",
        "api",
        "worker",
        "web",
        "rolled back",
        "healthy",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not on the page:\n{text}"
        );
    }
    save_artifact(
        "agent-dashboard-laptop.png",
        &browser.screenshot_full_page(),
    );
    browser.emulate_phone((390, 844));
    browser.goto(&format!("http://{}/", agent.addr));
    let overflow =
        browser.execute("return document.documentElement.scrollWidth <= window.innerWidth;");
    assert_eq!(
        overflow,
        Value::Bool(true),
        "the page scrolls sideways on a phone"
    );
    save_artifact("agent-dashboard-phone.png", &browser.screenshot_full_page());
}

#[test]
fn sigterm_in_the_middle_of_a_round_leaves_the_revision_unapplied_and_exits_143() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = common::deploy::Project::new("shop", "agentterm");
    let f = Fixture::new();
    let marker = common::unique("agent-cancel-marker");
    let namespace = format!("{registry}/agent-term-{}", std::process::id());
    let text = std::fs::read_to_string(p.path().join("cookbook.json"))
        .unwrap()
        .replace("127.0.0.1:5000/shop", &format!("{namespace}/shop"));
    let slow = text.replace(
        "\"chmod 0755 serve.sh cgi-bin/orders\"",
        &format!("\"sleep 120 && echo {marker}\", \"chmod 0755 serve.sh cgi-bin/orders\""),
    );
    assert_ne!(slow, text);
    let commit = f.commit(&slow, "a slow api build");
    f.push(&f.file_url(), false);
    let mut agent = Agent::start(&f, "term", &f.file_url(), &["--site", "local"]);
    common::wait_until("api's slow step to run", Duration::from_secs(120), || {
        !common::engine_containers_with(&marker).is_empty()
    });
    assert_eq!(
        agent.get("/readyz").0,
        503,
        "ready before its first round ended"
    );
    let started = Instant::now();
    assert_eq!(agent.stop(), Some(143), "{}", agent.log());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the apply was cancelled, not waited for: {:?}",
        started.elapsed()
    );
    // As `sync` promises: the revision is taken, not applied; the next start retries it.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(agent.state.join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["current"]["commit"], commit.as_str(), "{state}");
    assert!(state["last_applied"].is_null(), "{state}");
    assert!(
        agent.events().iter().all(|e| e["kind"] != "deploy"),
        "nothing was deployed"
    );
    let out = crate::sync::run(
        &f,
        &[
            "sync",
            "status",
            "--state",
            &agent.state.display().to_string(),
        ],
        &[],
    );
    crate::sync::expect_code(&out, 0, "sync status after the agent stopped");
}

#[test]
fn two_agents_answer_the_fleet_view_over_mutual_tls_and_refuse_other_clients() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let pki = crate::fleet::Pki::new();
    let (paris_cert, paris_key) =
        pki.leaf("paris", false, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (oslo_cert, oslo_key) = pki.leaf("oslo", false, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let ca = pki.path("ca.pem").display().to_string();
    let tls = |cert: &Path, key: &Path| {
        vec![
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
            "--tls-client-ca".to_owned(),
            ca.clone(),
        ]
    };
    let start = |name: &str, cert: &Path, key: &Path, peers: Option<&Path>| {
        let p = common::deploy::Project::new("shop", &format!("fleet{name}"));
        let f = Fixture::new();
        let _ = shop(&f, &p, &registry, &format!("fleet-{name}"));
        let mut args = vec!["--site".to_owned(), "local".to_owned()];
        args.extend(tls(cert, key));
        if let Some(peers) = peers {
            args.extend(["--peers".to_owned(), peers.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let agent = Agent::start(&f, name, &f.file_url(), &args);
        (p, f, agent)
    };
    let (_p1, _f1, paris) = start("paris", &paris_cert, &paris_key, None);
    // Oslo's agent serves the fleet view too: it asks its peers as itself (its certificate
    // is a server's; the CA signs it for both uses through the sites file's client files).
    let addr = |agent: &Agent| agent.addr.parse::<std::net::SocketAddr>().unwrap();
    let operator_files = pki.client("operator", false);
    let peers_of_oslo = pki.sites(&[("paris", addr(&paris))], "operator");
    let (_p2, _f2, oslo) = start("oslo", &oslo_cert, &oslo_key, Some(&peers_of_oslo));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // reqwest's connector needs the runtime's reactor when it is built.
    let _entered = runtime.enter();
    let operator = cookbook::tls::client(&operator_files).unwrap();
    for agent in [&paris, &oslo] {
        let url = format!("https://{}/readyz", agent.addr);
        common::wait_until("the agent's first round", Duration::from_secs(180), || {
            let answer = runtime.block_on(operator.get(&url).send());
            answer.is_ok_and(|a| a.status() == 200)
        });
    }

    // The fleet view from the command line: both sites, each stage a row.
    let sites = pki.sites(
        &[("paris", addr(&paris)), ("oslo", addr(&oslo))],
        "operator",
    );
    let run = common::run_in(
        sites.parent().unwrap(),
        &[
            "fleet",
            "status",
            "--sites",
            &sites.display().to_string(),
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    for site in ["paris", "oslo"] {
        let dev = rows
            .iter()
            .find(|r| r["site"] == site && r["stage"] == "dev")
            .unwrap_or_else(|| panic!("no dev row for {site}: {doc}"));
        assert_eq!(dev["health"], "healthy", "{doc}");
        assert_eq!(dev["behind"], 0, "{doc}");
        assert!(dev["release"].is_string(), "{doc}");
    }

    // Oslo's /api/v1/fleet asks Paris over mutual TLS.
    let fleet: Value = runtime.block_on(async {
        let url = format!("https://{}/api/v1/fleet", oslo.addr);
        let answer = operator.get(url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.json().await.unwrap()
    });
    assert_eq!(fleet["sites"][0]["name"], "paris", "{fleet}");
    assert!(fleet["sites"][0]["status"].is_object(), "{fleet}");

    // No client certificate, or one another CA signed: refused in the handshake.
    let anonymous = crate::fleet::ask_directly(&pki, addr(&paris), None).unwrap_err();
    assert!(anonymous.contains("CertificateRequired"), "{anonymous}");
    let stranger = pki.client("stranger", true);
    let refused = crate::fleet::ask_directly(&pki, addr(&paris), Some(&stranger)).unwrap_err();
    assert!(refused.contains("UnknownCA"), "{refused}");
}

#[test]
fn bad_arguments_exit_2_before_anything_starts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("secret");
    std::fs::write(&open, "s3cret\n").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = open.display().to_string();
    let base = [
        "agent",
        "--site",
        "local",
        "--remote",
        "file:///nowhere.git",
    ];
    let cases: [(&[&str], &str); 5] = [
        (&["--interval", "0s"], "--interval 0s: out of range"),
        (&["--health-every", "0s"], "--health-every 0s: out of range"),
        (&["--webhook-secret-file", &open], "chmod 600"),
        (&["--path", "../cookbook.json"], "--path"),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "missing.pem",
                "--tls-key",
                "k.pem",
            ],
            "missing.pem",
        ),
    ];
    for (extra, expected) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        let run = common::run_in(dir.path(), &args);
        assert_eq!(run.code, Some(2), "{args:?}\n{}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{args:?}: {expected:?}\n{}",
            run.stderr
        );
        assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    }
}

#[test]
fn a_closed_deploy_window_counts_for_each_of_the_sites_stages() {
    let Some(registry) = common::test_registry() else {
        return;
    };
    let p = common::deploy::Project::new("shop", "agentwindow");
    let f = Fixture::new();
    let (mut doc, _) = shop(&f, &p, &registry, "window");
    // The only window opens the day after tomorrow, 12:00-13:00 UTC.
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][((today + 2 + 3) % 7) as usize];
    doc["federation"]["sites"]["local"]["schedule"] =
        serde_json::json!([{ "days": [day], "from": "12:00", "to": "13:00" }]);
    commit_doc(&f, &doc, "deploy on one day only");
    let mut agent = Agent::start(&f, "window", &f.file_url(), &["--site", "local"]);
    agent.wait_ready();
    let (_, metrics) = agent.get("/metrics");
    for stage in ["dev", "test", "pre-deploy", "stage", "prod"] {
        let series =
            format!(r#"cookbook_deploys_total{{stage="{stage}",result="outside_window"}}"#);
        assert_eq!(metric(&metrics, &series), Some(1.0), "{stage}: {metrics}");
    }
    assert!(
        p.engine_state().is_empty(),
        "nothing is deployed outside the window"
    );
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}
