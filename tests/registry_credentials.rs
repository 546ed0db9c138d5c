//! Credentials from the Docker config (`DOCKER_CONFIG`): an `auths` entry and a credential
//! helper, answering a fake registry's Basic challenge. One test in its own binary, because it
//! sets process environment variables (DOCKER_CONFIG, PATH) that other tests must not see.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use cookbook::registry::{Credential, RegistryClient, RegistryError, Repository};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A registry that lists tags only for `Authorization: Basic <accepted>`, else challenges.
async fn basic_registry(accepted: &'static [&'static str]) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buffer).to_string();
            let auth = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            log.lock().unwrap().push(auth.clone());
            let answer = if accepted.iter().any(|a| auth == format!("Basic {a}")) {
                let body = r#"{"name":"cookbook/x","tags":["ok"]}"#;
                format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\nWWW-Authenticate: Basic realm=\"fake\"\r\n\r\n".to_owned()
            };
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (host, seen)
}

#[tokio::test]
async fn docker_config_auths_and_credential_helpers_are_used() {
    // base64("alice:s3cret") and base64("bob:from-helper")
    const ALICE: &str = "YWxpY2U6czNjcmV0";
    const BOB: &str = "Ym9iOmZyb20taGVscGVy";
    let (auths_host, auths_seen) = basic_registry(&[ALICE]).await;
    let (helper_host, helper_seen) = basic_registry(&[BOB]).await;
    let (none_host, _) = basic_registry(&[ALICE]).await;

    let config = tempfile::tempdir().unwrap();
    let config_json = serde_json::json!({
        "auths": { auths_host.clone(): { "auth": ALICE } },
        "credHelpers": { helper_host.clone(): "cookbooktest" },
    });
    std::fs::write(config.path().join("config.json"), config_json.to_string()).unwrap();
    // A credential helper speaks the docker-credential-helpers protocol: the server on stdin,
    // JSON on stdout.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-cookbooktest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{helper_host}\" ] || exit 1\n\
             echo '{{\"ServerURL\":\"{helper_host}\",\"Username\":\"bob\",\"Secret\":\"from-helper\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: the only test in this binary, set before any thread reads the environment.
    unsafe {
        std::env::set_var("DOCKER_CONFIG", config.path());
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", bin.path().display()));
    }

    let client = RegistryClient::new().unwrap();
    let repo = |host: &str| Repository::parse(&format!("{host}/cookbook/x")).unwrap();
    assert_eq!(client.tags_list(&repo(&auths_host)).await.unwrap(), ["ok"]);
    assert_eq!(*auths_seen.lock().unwrap(), ["", &format!("Basic {ALICE}")]);
    assert_eq!(client.tags_list(&repo(&helper_host)).await.unwrap(), ["ok"]);
    assert_eq!(*helper_seen.lock().unwrap(), ["", &format!("Basic {BOB}")]);
    // The same credential, for the engine's push.
    assert_eq!(
        client.credential_for(&repo(&helper_host)).await.unwrap(),
        Some(Credential::Basic {
            username: "bob".into(),
            password: "from-helper".into()
        })
    );
    // No entry for this registry: anonymous, and the Basic challenge cannot be answered.
    let error = client.tags_list(&repo(&none_host)).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
}
