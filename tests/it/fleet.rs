//! `cookbook fleet status` over mutual TLS: certificates made here with rcgen (the fleet's CA, an
//! "other" CA, server certificates for 127.0.0.1 and localhost, client certificates), agents
//! served by HTTPS servers built with `cookbook::tls::server_config` (tokio-rustls + hyper)
//! answering a status document built by hand, and the real binary asking them.
//!
//! What it pins: both sites' rows (text and JSON); a client without a certificate, or with one
//! another CA signed, refused by the server (and the command then exit 3, naming the site and the
//! TLS failure); a server another CA signed refused by the client; a peer answering garbage or too
//! much is that site's error; a bad sites file exit 2 at file:line:column.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cookbook::ops::agent::status::{
    AgentInfo, ContainerView, Health, SiteStatus, StageView, SyncView, SCHEMA,
};
use cookbook::ops::agent::tls::{server_config, ClientFiles, TlsFiles};
use http_body_util::Full;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::common::run_in;

/// The certificates of a test, written as PEM files in its directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    other: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki {
            ca: authority("fleet CA"),
            other: authority("other CA"),
            dir,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        std::fs::write(pki.path("other-ca.pem"), pki.other.pem()).unwrap();
        pki
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A leaf certificate for 127.0.0.1 and localhost, signed by the fleet's CA or the other,
    /// written as NAME.pem and NAME-key.pem.
    pub(crate) fn leaf(
        &self,
        name: &str,
        other_ca: bool,
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let issuer = if other_ca { &self.other } else { &self.ca };
        let cert = params.signed_by(&key, issuer).unwrap();
        let (cert_file, key_file) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// An agent's HTTPS server answering `answer` at /api/v1/status, with mutual TLS against
    /// the fleet's CA; its certificate signed by the fleet's CA or the other.
    fn agent(&self, name: &str, other_ca: bool, answer: Answer) -> SocketAddr {
        let (cert, key) = self.leaf(name, other_ca, ExtendedKeyUsagePurpose::ServerAuth);
        let config = server_config(&TlsFiles {
            cert,
            key,
            client_ca: Some(self.path("ca.pem")),
        })
        .unwrap();
        serve(config, answer)
    }

    /// A client identity signed by the fleet's CA or the other.
    pub(crate) fn client(&self, name: &str, other_ca: bool) -> ClientFiles {
        let (cert, key) = self.leaf(name, other_ca, ExtendedKeyUsagePurpose::ClientAuth);
        ClientFiles {
            ca: self.path("ca.pem"),
            cert,
            key,
        }
    }

    /// A sites file naming these agents, with the client files `client` (relative to the file).
    pub(crate) fn sites(&self, sites: &[(&str, SocketAddr)], client: &str) -> PathBuf {
        let sites: Vec<serde_json::Value> = sites
            .iter()
            .map(|(name, addr)| serde_json::json!({"name": name, "url": format!("https://{addr}")}))
            .collect();
        let file = self.path("sites.json");
        let document = serde_json::json!({
            "sites": sites,
            "ca": "ca.pem",
            "cert": format!("{client}.pem"),
            "key": format!("{client}-key.pem"),
        });
        std::fs::write(&file, serde_json::to_string_pretty(&document).unwrap()).unwrap();
        file
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// What an agent answers at /api/v1/status.
#[derive(Clone)]
enum Answer {
    Status(Box<SiteStatus>),
    Raw(Bytes),
}

/// Serves `answer` over TLS on 127.0.0.1 from a thread of its own, for the rest of the test
/// process. A failed handshake ends that connection only.
fn serve(config: Arc<rustls::ServerConfig>, answer: Answer) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let body = match answer {
        Answer::Status(status) => Bytes::from(serde_json::to_vec(&status).unwrap()),
        Answer::Raw(bytes) => bytes,
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let body = body.clone();
                        async move {
                            let found = request.uri().path() == "/api/v1/status";
                            let mut response = hyper::Response::new(Full::new(if found {
                                body
                            } else {
                                Bytes::new()
                            }));
                            if !found {
                                *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    addr
}

/// A site's status document, as an agent would serve it: `stages` with one container each,
/// healthy or not.
fn status(site: &str, attempt_at: &str, master: &str, behind: u64, healthy: bool) -> Answer {
    let stage = |name: &str| StageView {
        name: name.to_owned(),
        release: Some(format!("{site}-{name}-r1")),
        deployed_at: Some("2025-03-01T09:00:00Z".into()),
        images: [("web".to_owned(), format!("sha256:{}", "a".repeat(64)))].into(),
        containers: vec![ContainerView {
            container: "web".into(),
            name: format!("shop-{site}-{name}-web"),
            state: "running".into(),
            health: if healthy {
                Health::Healthy
            } else {
                Health::Unhealthy
            },
            drift: false,
            restarts: 0,
            services: vec!["tcp/8080 http".into()],
        }],
        in_sync: healthy,
        error: None,
    };
    Answer::Status(Box::new(SiteStatus {
        schema: SCHEMA,
        project: Some("shop".into()),
        site: site.to_owned(),
        agent: AgentInfo {
            version: "0.1.0".into(),
            started_at: "2025-03-01T08:00:00Z".into(),
            interval_seconds: 3600,
            round_running: false,
            next_round_at: None,
        },
        sync: SyncView {
            remote: "git://127.0.0.1/shop.git".into(),
            branch: "main".into(),
            path: "cookbook.json".into(),
            current: Some(format!("{site:0<40}")),
            current_at: None,
            last_applied: None,
            last_applied_at: None,
            last_attempted: Some(master.to_owned()),
            last_attempt_at: Some(attempt_at.to_owned()),
            last_attempt_outcome: Some("taken".into()),
            refused: vec![],
            master: Some(master.to_owned()),
            behind: Some(behind),
        },
        stages: vec![stage("dev"), stage("prod")],
        plan: None,
        rounds: vec![],
    }))
}

fn fleet(pki: &Pki, args: &[&str]) -> crate::common::Run {
    let mut all = vec!["--color", "never", "fleet", "status"];
    all.extend_from_slice(args);
    run_in(pki.dir.path(), &all)
}

const MASTER: &str = "1111111111111111111111111111111111111111";

#[test]
fn fleet_status_prints_every_site_over_mutual_tls() {
    let pki = Pki::new();
    pki.client("client", false);
    let paris = pki.agent(
        "paris",
        false,
        status("paris", "2025-03-01T10:00:00Z", "0000", 3, true),
    );
    let oslo = pki.agent(
        "oslo",
        false,
        status("oslo", "2025-03-01T11:00:00Z", MASTER, 0, false),
    );
    pki.sites(&[("paris", paris), ("oslo", oslo)], "client");

    let run = fleet(&pki, &["--sites", "sites.json"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines.iter().map(|l| words(l)).collect::<Vec<_>>(),
        [
            vec!["SITE", "STAGE", "RELEASE", "HEALTH", "REVISION", "BEHIND"],
            vec![
                "paris",
                "dev",
                "paris-dev-r1",
                "healthy",
                "paris0000000",
                "3"
            ],
            vec![
                "paris",
                "prod",
                "paris-prod-r1",
                "healthy",
                "paris0000000",
                "3"
            ],
            vec![
                "oslo",
                "dev",
                "oslo-dev-r1",
                "degraded",
                "oslo00000000",
                "0"
            ],
            vec![
                "oslo",
                "prod",
                "oslo-prod-r1",
                "degraded",
                "oslo00000000",
                "0"
            ],
            vec!["master:", "111111111111"],
        ]
        .map(|l| l.into_iter().map(str::to_owned).collect::<Vec<_>>()),
        "{}",
        run.context()
    );

    // The flags override the file's client files; JSON has the report and its rows.
    let run = fleet(
        &pki,
        &[
            "--sites",
            "sites.json",
            "--cert",
            "client.pem",
            "--key",
            "client-key.pem",
            "--format",
            "json",
        ],
    );
    run.assert_code(0);
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    // oslo looked at the remote last: its head is the master.
    assert_eq!(document["master"], MASTER, "{}", run.context());
    assert_eq!(document["sites"][0]["url"], format!("https://{paris}"));
    assert_eq!(document["sites"][1]["status"]["site"], "oslo");
    let rows = document["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{}", run.context());
    assert_eq!(
        rows[2],
        serde_json::json!({
            "site": "oslo", "stage": "dev", "release": "oslo-dev-r1", "health": "degraded",
            "revision": format!("{:0<40}", "oslo"), "behind": 0, "error": null
        })
    );
}

/// A request from a client that presents `identity` (none: only the CA) to `addr`.
pub(crate) fn ask_directly(
    pki: &Pki,
    addr: SocketAddr,
    identity: Option<&ClientFiles>,
) -> Result<u16, String> {
    let client = match identity {
        Some(files) => cookbook::tls::client(files).unwrap(),
        None => anonymous(&pki.path("ca.pem")),
    };
    get(&client, &format!("https://{addr}/api/v1/status"))
}

/// A client that trusts `ca` and presents no certificate.
pub(crate) fn anonymous(ca: &Path) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

/// `GET url` with `client`: the status, or the error's debug text (rustls names the alert).
pub(crate) fn get(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    crate::common::block_on(async {
        let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        // With TLS 1.3 the server's verdict on the client certificate can come with the first
        // read: read the body too.
        response.bytes().await.map_err(|e| format!("{e:?}"))?;
        Ok(status)
    })
}

#[test]
fn a_client_without_a_certificate_or_with_another_cas_is_refused() {
    let pki = Pki::new();
    let good = pki.client("client", false);
    let stranger = pki.client("stranger", true);
    let paris = pki.agent(
        "paris",
        false,
        status("paris", "2025-03-01T10:00:00Z", MASTER, 0, true),
    );
    assert_eq!(ask_directly(&pki, paris, Some(&good)), Ok(200));
    let anonymous = ask_directly(&pki, paris, None).unwrap_err();
    assert!(anonymous.contains("CertificateRequired"), "{anonymous}");
    let refused = ask_directly(&pki, paris, Some(&stranger)).unwrap_err();
    assert!(refused.contains("UnknownCA"), "{refused}");

    // The fleet command with the stranger's certificate: that site unreachable, exit 3, and
    // the message says it is the TLS handshake.
    let oslo = pki.agent(
        "oslo",
        false,
        status("oslo", "2025-03-01T10:00:00Z", MASTER, 0, true),
    );
    pki.sites(&[("paris", paris), ("oslo", oslo)], "stranger");
    let run = fleet(&pki, &["--sites", "sites.json"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("paris: ") && run.stderr.contains("fatal alert: UnknownCA"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains("error: 2 of 2 site(s) did not answer: paris, oslo"),
        "{}",
        run.context()
    );
    assert!(run.stdout.contains("unreachable"), "{}", run.context());
}

#[test]
fn a_server_whose_certificate_another_ca_signed_is_refused() {
    let pki = Pki::new();
    pki.client("client", false);
    let paris = pki.agent(
        "paris",
        false,
        status("paris", "2025-03-01T10:00:00Z", MASTER, 0, true),
    );
    let rogue = pki.agent(
        "rogue",
        true,
        status("rogue", "2025-03-01T12:00:00Z", "2222", 0, true),
    );
    pki.sites(&[("paris", paris), ("rogue", rogue)], "client");
    let run = fleet(&pki, &["--sites", "sites.json", "--format", "json"]);
    run.assert_code(3);
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    // The rogue's answer is not read: the master is paris's.
    assert_eq!(document["master"], MASTER, "{}", run.context());
    let rows = document["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{}", run.context());
    assert_eq!(rows[2]["site"], "rogue");
    assert_eq!(rows[2]["health"], "unreachable");
    let error = rows[2]["error"].as_str().unwrap();
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(
        run.stderr.contains("1 of 2 site(s) did not answer: rogue"),
        "{}",
        run.context()
    );
}

#[test]
fn a_peer_answering_garbage_or_too_much_is_that_sites_error() {
    let pki = Pki::new();
    pki.client("client", false);
    let paris = pki.agent(
        "paris",
        false,
        status("paris", "2025-03-01T10:00:00Z", MASTER, 0, true),
    );
    let garbage = pki.agent(
        "garbage",
        false,
        Answer::Raw(Bytes::from_static(b"<html>hi")),
    );
    // A document with a field the schema does not have: strict.
    let Answer::Status(mut extra) = status("extra", "2025-03-01T10:00:00Z", MASTER, 0, true) else {
        unreachable!()
    };
    extra.site = "extra".into();
    let mut value = serde_json::to_value(&extra).unwrap();
    value["secret"] = "x".into();
    let extra = pki.agent(
        "extra",
        false,
        Answer::Raw(Bytes::from(serde_json::to_vec(&value).unwrap())),
    );
    let huge = pki.agent("huge", false, Answer::Raw(Bytes::from(vec![b' '; 2 << 20])));
    pki.sites(
        &[
            ("paris", paris),
            ("garbage", garbage),
            ("extra", extra),
            ("huge", huge),
        ],
        "client",
    );
    let run = fleet(&pki, &["--sites", "sites.json", "--format", "json"]);
    run.assert_code(3);
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = document["rows"].as_array().unwrap();
    let by_site = |site: &str| {
        rows.iter()
            .filter(|r| r["site"] == site)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_site("paris").len(), 2, "{}", run.context());
    assert!(by_site("paris").iter().all(|r| r["health"] == "healthy"));
    let error = |site: &str| by_site(site)[0]["error"].as_str().unwrap().to_owned();
    assert!(
        error("garbage").starts_with("not a status document: "),
        "{}",
        error("garbage")
    );
    assert!(
        error("extra").contains("unknown field `secret`"),
        "{}",
        error("extra")
    );
    assert_eq!(error("huge"), "the status document is larger than 1 MiB");
    assert!(
        run.stderr
            .contains("3 of 4 site(s) did not answer: garbage, extra, huge"),
        "{}",
        run.context()
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_bad_sites_file_exits_2_at_its_line_and_column() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    write(
        dir,
        "unknown.json",
        "{\"sites\": [{\"name\": \"a\", \"url\": \"https://127.0.0.1:1\"}],\n  \"peers\": []}",
    );
    let run = fleet(&pki, &["--sites", "unknown.json"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("unknown.json:2:9: error[sites/syntax]: unknown field `peers`"),
        "{}",
        run.context()
    );
    write(
        dir,
        "bad.json",
        r#"{"sites": [
  {"name": "paris", "url": "http://127.0.0.1:8751"},
  {"name": "paris", "url": "https://127.0.0.1:8752"}
]}"#,
    );
    let run = fleet(&pki, &["--sites", "bad.json", "--format", "json"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "bad.json:2:28: error[sites/url]: /sites/0/url: \"http://127.0.0.1:8751\" is not https://"
        ) && run.stderr.contains(
            "bad.json:3:12: error[sites/duplicate-name]: /sites/1/name: site \"paris\" is listed twice"
        ),
        "{}",
        run.context()
    );
    // JSON asked: the error is a document too.
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(document.is_object(), "{}", run.context());

    // No client files anywhere: usage, naming what is missing.
    write(
        dir,
        "bare.json",
        r#"{"sites": [{"name": "a", "url": "https://127.0.0.1:1"}]}"#,
    );
    let run = fleet(&pki, &["--sites", "bare.json", "--ca", "ca.pem"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no --cert, --key given"),
        "{}",
        run.context()
    );
    // A key that is not one: the file named, exit 2.
    let run = fleet(
        &pki,
        &[
            "--sites",
            "bare.json",
            "--ca",
            "ca.pem",
            "--cert",
            "ca.pem",
            "--key",
            "ca.pem",
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("ca.pem: no private key in it"),
        "{}",
        run.context()
    );
    let run = fleet(&pki, &["--sites", "none.json"]);
    run.assert_code(2);
}
