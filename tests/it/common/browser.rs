//! A real browser for tests: Debian's headless Chromium driven through chromedriver's W3C
//! WebDriver endpoints.
//!
//! Spoken by hand over reqwest (already a dependency, already built) rather than with the
//! `fantoccini` crate: fantoccini defaults to native-tls (OpenSSL), and even with its rustls
//! feature it brings hyper-rustls and the `webdriver` crate's tree to compile, for the eight
//! endpoints of plain HTTP on 127.0.0.1 used here. Every call is bounded by a timeout; the
//! driver (and through it the browser) is stopped on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A laptop's window and a phone's (CSS pixels).
pub const LAPTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

/// One WebDriver request: a loaded machine, a cold browser start.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// chromedriver listening, from its start.
const DRIVER_READY: Duration = Duration::from_secs(30);

/// Whether a session runs the page's scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripts {
    Enabled,
    Disabled,
}

/// A chromedriver with one Chromium session.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (through
    /// `common::skip_or_fail`) when the machine has none.
    pub fn start(scripts: Scripts) -> Option<Browser> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            eprintln!(
                "{CHROMEDRIVER} or {CHROMIUM} missing: apt-get install chromium chromium-driver"
            );
            super::skip_or_fail();
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let profile = tempfile::tempdir().expect("a profile directory");
        // Until the session exists, dropping `browser` still stops the driver.
        let mut browser = Browser {
            runtime,
            client,
            session: String::new(),
            driver,
            _profile: profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        browser.wait_ready(&base);
        browser.session = browser.new_session(&base, scripts);
        browser.post(
            "timeouts",
            json!({ "pageLoad": 30_000, "script": 10_000, "implicit": 0 }),
        );
        Some(browser)
    }

    fn wait_ready(&mut self, base: &str) {
        let started = Instant::now();
        loop {
            let answer = self.runtime.block_on(async {
                let r = self
                    .client
                    .get(format!("{base}/status"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                r.json::<Value>().await.ok()
            });
            if answer.is_some_and(|v| v["value"]["ready"] == json!(true)) {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at start: {status}");
            }
            assert!(
                started.elapsed() < DRIVER_READY,
                "{CHROMEDRIVER} not ready after {DRIVER_READY:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn new_session(&self, base: &str, scripts: Scripts) -> String {
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            // Without these Chromium reaches out at start, and outbound connections are refused
            // here: the session would wait on them.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            // No crash reporter: it outlives the browser and writes outside the profile.
            "--disable-crash-reporter".to_owned(),
            "--disable-breakpad".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", self._profile.path().display()),
        ];
        let mut prefs = json!({});
        if scripts == Scripts::Disabled {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
            prefs = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": prefs },
            }}
        });
        let value = self.request(
            reqwest::Method::POST,
            &format!("{base}/session"),
            Some(capabilities),
        );
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"));
        format!("{base}/session/{id}")
    }

    /// One WebDriver call: its `value`, or a panic naming the endpoint and the driver's error.
    fn request(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
        let result = self.runtime.block_on(async {
            let mut request = self.client.request(method.clone(), url);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await?;
            let status = response.status();
            let value: Value = response.json().await?;
            Ok::<_, reqwest::Error>((status, value))
        });
        match result {
            Ok((status, value)) if status.is_success() => value["value"].clone(),
            Ok((status, value)) => panic!("WebDriver {method} {url}: {status}: {value}"),
            Err(e) => panic!("WebDriver {method} {url}: {e}"),
        }
    }

    fn post(&self, endpoint: &str, body: Value) -> Value {
        self.request(
            reqwest::Method::POST,
            &format!("{}/{endpoint}", self.session),
            Some(body),
        )
    }

    fn get(&self, endpoint: &str) -> Value {
        self.request(
            reqwest::Method::GET,
            &format!("{}/{endpoint}", self.session),
            None,
        )
    }

    /// Loads `url` and waits for it (the page-load timeout bounds it).
    pub fn goto(&self, url: &str) {
        self.post("url", json!({ "url": url }));
    }

    /// Loads a file from the disk.
    pub fn open_file(&self, path: &Path) {
        let path = path.canonicalize().expect("an existing file");
        self.goto(&format!("file://{}", path.display()));
    }

    /// Runs `script` (a function body: `return …`) in the page; its JSON result. Chromium runs
    /// it through DevTools, so it works in a session whose page scripts are disabled.
    pub fn execute(&self, script: &str) -> Value {
        self.post("execute/sync", json!({ "script": script, "args": [] }))
    }

    /// What a reader sees: the body's rendered text.
    pub fn text(&self) -> String {
        let value = self.execute("return document.body.innerText;");
        value.as_str().expect("text").to_owned()
    }

    /// The document as the browser holds it now (serialized DOM).
    pub fn source(&self) -> String {
        self.get("source").as_str().expect("source").to_owned()
    }

    /// Sets the window's outer size; the page's viewport is what `window.innerWidth` says.
    pub fn set_window_size(&self, (width, height): (u32, u32)) {
        self.post("window/rect", json!({ "width": width, "height": height }));
    }

    /// A phone: the viewport set to its CSS size through DevTools' device metrics (a window
    /// cannot be made that narrow on every platform), touch-sized, honouring `<meta viewport>`.
    pub fn emulate_phone(&self, (width, height): (u32, u32)) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 2, "mobile": true }),
        );
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
    }

    /// The viewport as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        decode_png(&self.get("screenshot"))
    }

    /// The whole page, beyond the viewport, as a PNG.
    pub fn screenshot_full_page(&self) -> Vec<u8> {
        let value = self.cdp(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        decode_png(&value["data"])
    }
}

fn decode_png(value: &Value) -> Vec<u8> {
    let text = value.as_str().expect("base64 PNG");
    let png = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    png
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends Chromium; bounded, and a failure here must not hide the test's own.
            // The request is built inside the runtime: its timeout needs the runtime's timer.
            let _ = self.runtime.block_on(async {
                self.client
                    .delete(&self.session)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A port free now on 127.0.0.1 (the driver binds it right after).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("an address").port()
}

/// `target/test-artifacts/`, created: `CARGO_TARGET_DIR`, or the directory above the test
/// binary's profile directory (`target/debug/deps/it-…`).
pub fn artifacts_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("the test binary's path");
            exe.ancestors()
                .find(|dir| dir.file_name().is_some_and(|name| name == "deps"))
                .and_then(|deps| deps.parent()?.parent())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| super::repo_root().join("target"))
        }
    };
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// Writes a test artifact (`NAME` under [`artifacts_dir`]); its path.
pub fn save_artifact(name: &str, bytes: &[u8]) -> PathBuf {
    let path = artifacts_dir().join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!("artifact: {}", path.display());
    path
}
