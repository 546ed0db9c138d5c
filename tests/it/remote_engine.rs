//! Remote engines (issue 24), against real ones: a private `dockerd --tlsverify` on a loopback
//! port with certificates made here (rcgen, through `fleet::Pki`), and Debian's `sshd` on a
//! loopback port with keys made here (`ssh-keygen`), in front of a private engine's socket.
//!
//! What it pins: `apply`, `verify --rebuild` and `deploy` through `DOCKER_TLS_VERIFY` and
//! `DOCKER_CERT_PATH`, and through a site whose `docker` target names the host and its TLS files
//! (relative to the cookbook); a wrong CA, no client certificate, a plain-HTTP client, a TLS
//! client to a plain-HTTP server and a closed port each exit 3 naming the cause, a bad TLS file
//! exit 2 naming it, and `DOCKER_TLS` without `DOCKER_TLS_VERIFY` does not check the CA; a
//! context chosen by `DOCKER_CONTEXT`, by config.json's `currentContext` and by `--context`;
//! `ssh://` builds, and an unknown host key, a refused key or a remote side without an engine
//! exit 3 naming it, in ssh's (or the remote docker's) words.
//!
//! Which engine did the work is read from the engine: the project's images are found there by
//! their `dev.cookbook.project` label (and removed between runs, so each run must build again).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose;

use crate::common::dockerd::{ExtraEngine, Options, ServerTls};
use crate::common::{run_in_env, test_registry, unique, Run};
use crate::fleet::Pki;

const BASE: &str = "cookbook-test/busybox:latest";

/// A one-container cookbook FROM the base image with a RUN step, project `name`, publishing to `registry`, with
/// the site `local` (the environment's engine) and, when given, the site `remote` whose target
/// is `remote` (a `docker` target object).
fn cookbook(dir: &Path, name: &str, registry: &str, remote: Option<serde_json::Value>) {
    std::fs::create_dir_all(dir.join("web")).unwrap();
    // The project's name in the content: no other test's build cache stands in for this build.
    std::fs::write(dir.join("web/index.html"), format!("{name}\n")).unwrap();
    let mut sites = serde_json::json!({
        "local": {
            "type": "bare-metal",
            "target": { "docker": { "host": "env" } },
            "stages": ["dev"],
            "containers": ["web"]
        }
    });
    if let Some(target) = remote {
        sites["remote"] = serde_json::json!({
            "type": "bare-metal",
            "target": { "docker": target },
            "stages": ["dev"],
            "containers": ["web"]
        });
    }
    let doc = serde_json::json!({
        "manifest_version": "1.1",
        "project": { "name": name },
        "applications": {
            "web": {
                "source": "web",
                // A RUN step: the image is built by the engine, not assembled without one.
                "build_commands": ["test -f index.html"],
                "run_command": "httpd -f -p 80 -h /srv/web"
            }
        },
        "containers": {
            "web": { "base_image": BASE, "applications": ["web"] }
        },
        "packaging": { "registry": registry, "tagging": "content-hash" },
        "lifecycle": { "stages": ["dev"] },
        "federation": { "sites": sites }
    });
    std::fs::write(
        dir.join("cookbook.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
}

/// Removes project `name`'s images from `engine`, so that the next apply must build there again.
fn remove_project_images(engine: &ExtraEngine, name: &str) {
    for id in engine.project_images(name) {
        let out = engine.cli().args(["rmi", "-f", &id]).output().unwrap();
        assert!(out.status.success(), "docker rmi {id}: {out:?}");
    }
}

/// A CA, an engine certificate for 127.0.0.1 and a client certificate, and a `--tlsverify`
/// engine holding the base image.
pub(crate) struct TlsSetup {
    pki: Pki,
    pub(crate) engine: ExtraEngine,
    /// `tcp://127.0.0.1:PORT`.
    pub(crate) host: String,
}

impl TlsSetup {
    pub(crate) fn start() -> TlsSetup {
        let pki = Pki::new();
        let (cert, key) = pki.leaf("engine", false, ExtendedKeyUsagePurpose::ServerAuth);
        let engine = ExtraEngine::start(Options {
            tcp: true,
            tls: Some(ServerTls {
                ca: pki.path("ca.pem"),
                cert,
                key,
            }),
        });
        engine.load_from_main(BASE);
        let host = engine.tcp.clone().expect("a TCP port");
        TlsSetup { pki, engine, host }
    }

    /// A DOCKER_CERT_PATH-like directory `dir` holding `ca.pem` (the engine's CA, or the other
    /// one), and `cert.pem` and `key.pem` when `client`.
    pub(crate) fn cert_dir(&self, dir: &Path, other_ca: bool, client: bool) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let ca = if other_ca { "other-ca.pem" } else { "ca.pem" };
        std::fs::copy(self.pki.path(ca), dir.join("ca.pem")).unwrap();
        if client {
            let files = self.pki.client(&unique("client"), false);
            std::fs::copy(files.cert, dir.join("cert.pem")).unwrap();
            std::fs::copy(files.key, dir.join("key.pem")).unwrap();
        }
        dir.to_owned()
    }
}

/// `cookbook ARGS` in `dir` with `envs`, DOCKER_CONTEXT and DOCKER_CONFIG cleared unless given
/// (the empty value is "unset" to cookbook as to the docker CLI).
fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut all: Vec<(&str, &str)> = vec![
        ("DOCKER_CONTEXT", ""),
        ("DOCKER_TLS_VERIFY", ""),
        ("DOCKER_TLS", ""),
        ("DOCKER_CERT_PATH", ""),
    ];
    all.extend_from_slice(envs);
    run_in_env(dir, args, &all)
}

#[test]
fn apply_verify_and_deploy_through_a_tls_engine() {
    let Some(registry) = test_registry() else {
        return;
    };
    let tls = TlsSetup::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cookbook");
    let name = unique("tlsremote");
    // The site `remote` names the engine and its TLS files, relative to the cookbook.
    let certs = tls.cert_dir(&dir.join("certs"), false, true);
    cookbook(
        &dir,
        &name,
        &format!("{registry}/{name}"),
        Some(serde_json::json!({
            "host": tls.host,
            "tls": { "ca": "certs/ca.pem", "cert": "certs/cert.pem", "key": "certs/key.pem" }
        })),
    );
    let certs = certs.to_str().unwrap();
    let env = [
        ("DOCKER_HOST", tls.host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs),
    ];

    run(&dir, &["apply"], &env).assert_code(0);
    assert!(
        !tls.engine.project_images(&name).is_empty(),
        "apply built on the TLS engine"
    );
    let verify = run(&dir, &["verify", "--rebuild"], &env);
    verify.assert_code(0);

    run(&dir, &["deploy", "--site", "local", "--stage", "dev"], &env).assert_code(0);
    let local = format!("{name}-local-dev-web-1");
    assert!(
        tls.engine.running().contains(&local),
        "{local} runs on the TLS engine: {:?}",
        tls.engine.running()
    );

    // The site's own target: no TLS variables, and DOCKER_HOST pointing elsewhere.
    let deploy = run(
        &dir,
        &["deploy", "--site", "remote", "--stage", "dev"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    deploy.assert_code(0);
    let remote = format!("{name}-remote-dev-web-1");
    assert!(
        tls.engine.running().contains(&remote),
        "{remote} runs on the TLS engine: {:?}\n{}",
        tls.engine.running(),
        deploy.context()
    );
}

/// A loopback server that answers every connection in plain HTTP: what a TLS client meets at a
/// plain-HTTP engine.
fn plain_http_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    format!("tcp://{address}")
}

#[test]
fn each_failure_to_connect_exits_3_naming_its_cause() {
    if test_registry().is_none() {
        return;
    }
    let tls = TlsSetup::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cookbook");
    let name = unique("tlsfail");
    cookbook(&dir, &name, "127.0.0.1:5000/unused", None);
    let wrong_ca = tls.cert_dir(&work.path().join("wrong-ca"), true, true);
    let no_client = tls.cert_dir(&work.path().join("no-client"), false, false);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://{}", listener.local_addr().unwrap())
    };
    let plain = plain_http_server();
    let good = tls.cert_dir(&work.path().join("good"), false, true);
    let cases: [(&str, &str, Option<&Path>, &str); 5] = [
        (
            "wrong CA",
            &tls.host,
            Some(wrong_ca.as_path()),
            "the engine's certificate is not trusted: it is not signed by a CA trusted here",
        ),
        (
            "no client certificate",
            &tls.host,
            Some(no_client.as_path()),
            "the engine refused the client certificate: the engine answered ",
        ),
        (
            "plain HTTP to a TLS engine",
            &tls.host,
            None,
            "the engine speaks TLS and was spoken to in plain HTTP",
        ),
        (
            "TLS to a plain-HTTP server",
            &plain,
            Some(good.as_path()),
            "the TLS handshake failed",
        ),
        (
            "a closed port",
            &closed,
            Some(good.as_path()),
            "connection refused",
        ),
    ];
    for (what, host, certs, words) in cases {
        let certs = certs.map(|p| p.to_str().unwrap());
        let mut env = vec![("DOCKER_HOST", host)];
        if let Some(certs) = certs {
            env.extend([("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", certs)]);
        }
        let run = run(&dir, &["apply", "--no-push"], &env);
        run.assert_code(3);
        let expected = format!("error: cannot connect to the Docker engine at {host}: {words}");
        assert!(
            run.stderr.contains(&expected),
            "{what}: expected `{expected}`\n{}",
            run.context()
        );
    }

    // DOCKER_TLS without DOCKER_TLS_VERIFY encrypts without checking the engine's certificate
    // (the docker CLI's rule): the CA that did not sign it is not asked, the client pair is
    // still presented.
    let unchecked = run(
        &dir,
        &["apply", "--no-push"],
        &[
            ("DOCKER_HOST", &tls.host),
            ("DOCKER_TLS", "1"),
            ("DOCKER_CERT_PATH", wrong_ca.to_str().unwrap()),
        ],
    );
    unchecked.assert_code(0);
    assert!(
        !tls.engine.project_images(&name).is_empty(),
        "{}",
        unchecked.context()
    );

    // A TLS file that is not one is the configuration's error: exit 2, naming the file.
    let broken = tls.cert_dir(&work.path().join("broken"), false, true);
    std::fs::write(broken.join("key.pem"), "not a key\n").unwrap();
    let run = run(
        &dir,
        &["apply", "--no-push"],
        &[
            ("DOCKER_HOST", &tls.host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", broken.to_str().unwrap()),
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "TLS for the Docker engine at {}: {}: not a PEM file",
            tls.host,
            broken.join("key.pem").display()
        )),
        "{}",
        run.context()
    );
}

#[test]
fn a_context_is_chosen_by_docker_context_config_json_and_the_flag() {
    if test_registry().is_none() {
        return;
    }
    let tls = TlsSetup::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cookbook");
    let name = unique("tlsctx");
    cookbook(&dir, &name, "127.0.0.1:5000/unused", None);
    let certs = tls.cert_dir(&work.path().join("certs"), false, true);
    let config = work.path().join("docker-config");
    let file = |n: &str| certs.join(n).display().to_string();
    // The docker CLI writes the context store itself (meta.json, and the TLS files under
    // contexts/tls/<sha256 of the name>/docker/).
    let out = Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args(["context", "create", "remote", "--docker"])
        .arg(format!(
            "host={},ca={},cert={},key={}",
            tls.host,
            file("ca.pem"),
            file("cert.pem"),
            file("key.pem")
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "docker context create: {out:?}");
    let config = config.to_str().unwrap();
    let services = std::env::var("DOCKER_HOST").unwrap();

    // Each run must build on the context's engine: the image is removed before it.
    let check = |how: &str, args: &[&str], envs: &[(&str, &str)]| {
        remove_project_images(&tls.engine, &name);
        let run = run(&dir, args, envs);
        run.assert_code(0);
        assert!(
            !tls.engine.project_images(&name).is_empty(),
            "{how}: the image is on the context's engine\n{}",
            run.context()
        );
    };
    check(
        "DOCKER_CONTEXT",
        &["apply", "--no-push"],
        &[
            ("DOCKER_CONFIG", config),
            ("DOCKER_HOST", ""),
            ("DOCKER_CONTEXT", "remote"),
        ],
    );
    check(
        "--context",
        &["apply", "--no-push", "--context", "remote"],
        &[("DOCKER_CONFIG", config), ("DOCKER_HOST", &services)],
    );
    std::fs::write(
        Path::new(config).join("config.json"),
        r#"{"currentContext":"remote"}"#,
    )
    .unwrap();
    check(
        "config.json's currentContext",
        &["apply", "--no-push"],
        &[("DOCKER_CONFIG", config), ("DOCKER_HOST", "")],
    );
}

/// Debian's sshd on a free loopback port, for root with one authorized key, in front of an
/// engine's socket (`SetEnv DOCKER_HOST`, so the remote `docker system dial-stdio` reaches it);
/// killed when dropped.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cookbook-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

impl Sshd {
    fn start(docker_host: &str) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile none\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\n\
                 UsePAM no\nSetEnv DOCKER_HOST={docker_host}\n",
                d.join("host_key").display(),
                d.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        // sshd insists on its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let sshd = Sshd { dir, port, child };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not listen within 10 s: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A client setup as a user has it: an ssh config naming the identity and a known_hosts
    /// file (holding this server's host key when `known`), with strict host key checking.
    /// OpenSSH reads `~/.ssh/config` from the password database's home, not from `HOME`, so the
    /// config is given with `-F` by an `ssh` first in PATH that runs the real one: the command
    /// line cookbook builds still reaches /usr/bin/ssh whole. Returns the PATH to use.
    fn client(&self, name: &str, known: bool, identity: &Path) -> String {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let known_hosts = d.join("known_hosts");
        let host_key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        let key = host_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(
            &known_hosts,
            if known {
                format!("[127.0.0.1]:{} {key}\n", self.port)
            } else {
                String::new()
            },
        )
        .unwrap();
        let config = d.join("config");
        std::fs::write(
            &config,
            format!(
                "Host 127.0.0.1\n  Port {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                self.port,
                identity.display(),
                known_hosts.display()
            ),
        )
        .unwrap();
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let shim = bin.join("ssh");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                config.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_builds_and_an_unknown_host_key_or_a_refused_key_exit_3() {
    if test_registry().is_none() {
        return;
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        crate::common::skip_or_fail();
        return;
    }
    let engine = ExtraEngine::start(Options::default());
    engine.load_from_main(BASE);
    let sshd = Sshd::start(&engine.unix);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cookbook");
    let name = unique("sshremote");
    cookbook(&dir, &name, "127.0.0.1:5000/unused", None);
    let host = format!("ssh://root@127.0.0.1:{}", sshd.port);
    let key = sshd.dir.path().join("client_key");

    let path = sshd.client("good", true, &key);
    let built = run(
        &dir,
        &["apply", "--no-push"],
        &[("DOCKER_HOST", &host), ("PATH", &path)],
    );
    assert_eq!(
        (built.code, engine.project_images(&name).is_empty()),
        (Some(0), false),
        "apply through ssh builds on the engine behind sshd\n{}\nsshd: {}",
        built.context(),
        sshd.log()
    );

    let unknown = sshd.client("unknown", false, &key);
    let run_unknown = run(
        &dir,
        &["apply", "--no-push"],
        &[("DOCKER_HOST", &host), ("PATH", &unknown)],
    );
    run_unknown.assert_code(3);
    assert!(
        run_unknown.stderr.contains(&format!(
            "error: cannot connect to the Docker engine at {host}: SSH host key check failed: "
        )) && run_unknown.stderr.contains("Host key verification failed."),
        "{}",
        run_unknown.context()
    );

    let stranger = sshd.dir.path().join("stranger_key");
    keygen(&stranger);
    let refused = sshd.client("refused", true, &stranger);
    let run_refused = run(
        &dir,
        &["apply", "--no-push"],
        &[("DOCKER_HOST", &host), ("PATH", &refused)],
    );
    run_refused.assert_code(3);
    assert!(
        run_refused.stderr.contains(&format!(
            "error: cannot connect to the Docker engine at {host}: SSH login refused: "
        )) && run_refused.stderr.contains("Permission denied (publickey)"),
        "{}",
        run_refused.context()
    );

    // Logged in, but the remote `docker system dial-stdio` reaches no engine: its own words.
    let no_engine = Sshd::start("unix:///nonexistent/docker.sock");
    let host = format!("ssh://root@127.0.0.1:{}", no_engine.port);
    let key = no_engine.dir.path().join("client_key");
    let path = no_engine.client("good", true, &key);
    let run_no_engine = run(
        &dir,
        &["apply", "--no-push"],
        &[("DOCKER_HOST", &host), ("PATH", &path)],
    );
    run_no_engine.assert_code(3);
    assert!(
        run_no_engine.stderr.contains(&format!(
            "error: cannot connect to the Docker engine at {host}: SSH failed: "
        )) && run_no_engine.stderr.contains("/nonexistent/docker.sock"),
        "{}\nsshd: {}",
        run_no_engine.context(),
        no_engine.log()
    );
}
