//! A second (third, …) Docker engine for one test: `dockerd` started with a data root, exec root
//! and managed containerd of its own under a short directory in /tmp, listening on a unix socket
//! and, when asked, on a loopback TCP port (plain, or `--tlsverify` with certificates the test
//! made). Stopped (SIGTERM, then SIGKILL) and removed when dropped; `stop` stops it earlier (an
//! engine that goes away in the middle of a run).
//!
//! Like the services' engine: no bridge, no iptables, the test registry insecure, the storage
//! driver the services' engine uses. It holds no image at first: [`ExtraEngine::load_from_main`]
//! copies one from the services' engine (`docker save | docker load`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server side of `--tlsverify`: the CA that client certificates must chain to, and the
/// engine's own certificate and key.
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Default)]
pub struct Options {
    /// Also listen on 127.0.0.1 at a free port (plain HTTP unless `tls`).
    pub tcp: bool,
    /// `--tlsverify` on the TCP port (implies `tcp`).
    pub tls: Option<ServerTls>,
}

pub struct ExtraEngine {
    dir: PathBuf,
    child: Option<Child>,
    /// `unix:///tmp/…/d.sock`.
    pub unix: String,
    /// `tcp://127.0.0.1:PORT` when asked.
    pub tcp: Option<String>,
}

/// The services' engine's storage driver (overlay2 where it works, else vfs).
fn storage_driver() -> String {
    let out = main_cli()
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .expect("docker info");
    assert!(out.status.success(), "docker info: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The docker CLI on the services' engine (DOCKER_HOST of the test environment).
pub fn main_cli() -> Command {
    let mut cmd = Command::new("docker");
    cmd.env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env("DOCKER_CLI_HINTS", "false");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ExtraEngine {
    /// Starts one and waits until it answers (at most 60 s).
    pub fn start(options: Options) -> ExtraEngine {
        // Short: unix socket paths hold at most 108 bytes, and containerd's sit under exec-root.
        let dir = PathBuf::from(format!("/tmp/cbe-{}", super::unique("")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("exec")).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let unix = format!("unix://{}/d.sock", dir.display());
        let registry =
            std::env::var("COOKBOOK_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
        let mut cmd = Command::new("dockerd");
        cmd.arg(format!("--host={unix}"))
            .arg(format!("--data-root={}/data", dir.display()))
            .arg(format!("--exec-root={}/exec", dir.display()))
            .arg(format!("--pidfile={}/dockerd.pid", dir.display()))
            .arg(format!("--config-file={}/daemon.json", dir.display()))
            .arg(format!("--storage-driver={}", storage_driver()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--log-level=warn",
            ])
            .arg(format!("--insecure-registry={registry}"));
        let mut tcp = None;
        if options.tcp || options.tls.is_some() {
            let host = format!("tcp://127.0.0.1:{}", free_port());
            cmd.arg(format!("--host={host}"));
            tcp = Some(host);
        }
        if let Some(tls) = &options.tls {
            cmd.arg("--tlsverify")
                .arg(format!("--tlscacert={}", tls.ca.display()))
                .arg(format!("--tlscert={}", tls.cert.display()))
                .arg(format!("--tlskey={}", tls.key.display()));
        }
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let engine = ExtraEngine {
            dir,
            child: Some(child),
            unix,
            tcp,
        };
        engine.wait_until_it_answers();
        engine
    }

    /// The docker CLI on this engine (over its unix socket).
    pub fn cli(&self) -> Command {
        let mut cmd = main_cli();
        cmd.env("DOCKER_HOST", &self.unix);
        cmd
    }

    fn wait_until_it_answers(&self) {
        let start = Instant::now();
        loop {
            let ok = self
                .cli()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the extra dockerd did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// The directory it keeps its state in (certificates may go beside it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copies `image` from the services' engine into this one.
    pub fn load_from_main(&self, image: &str) {
        let mut save = main_cli()
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = self
            .cli()
            .args(["load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load");
        assert!(save.wait().unwrap().success(), "docker save {image}");
        assert!(load.status.success(), "docker load {image}: {load:?}");
    }

    /// The lines the docker CLI prints for `args` on this engine (which must succeed).
    pub fn lines<const N: usize>(&self, args: [&str; N]) -> Vec<String> {
        let out = self.cli().args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The ids of the images it holds, `docker images -q --no-trunc`.
    pub fn image_ids(&self) -> Vec<String> {
        self.lines(["images", "-q", "--no-trunc"])
    }

    /// The ids of its images labelled as project `name`'s (each once).
    pub fn project_images(&self, name: &str) -> Vec<String> {
        let label = format!("label=dev.cookbook.project={name}");
        let mut ids = self.lines(["images", "-q", "--no-trunc", "--filter", &label]);
        ids.dedup();
        ids
    }

    /// The names of its running containers.
    pub fn running(&self) -> Vec<String> {
        self.lines(["ps", "--format", "{{.Names}}"])
    }

    /// Stops it now (SIGTERM; SIGKILL after 20 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ExtraEngine {
    fn drop(&mut self) {
        self.stop();
        // Its overlay mounts are gone with it; what a killed one left mounted is unmounted first.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let prefix = self.dir.display().to_string();
            let mut ours: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .filter(|m| m.starts_with(&prefix))
                .collect();
            ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in ours {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
