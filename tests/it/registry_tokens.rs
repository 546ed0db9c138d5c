//! Tokens are fetched once per repository and scope, and a push token serves the pulls of its
//! repository (issue 11: a no-op apply must not cost a token per request). Against a small fake
//! registry on 127.0.0.1 with a Bearer token service — the test registry asks for no tokens, so
//! only a fake can count them.

use std::sync::{Arc, Mutex};

use cookbook::registry::{CredentialStore, RegistryClient, Repository};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A registry whose every `/v2/` request needs `Bearer token:<scope>` for a scope naming the
/// request's repository, and whose `/token` endpoint issues such tokens. Returns its host and
/// the scopes tokens were issued for, in order.
async fn bearer_registry() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let issued = Arc::new(Mutex::new(Vec::new()));
    let log = issued.clone();
    let realm = format!("http://{host}/token");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (log, realm) = (log.clone(), realm.clone());
            tokio::spawn(async move {
                loop {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buffer).to_string();
                    let mut words = head.split_whitespace();
                    let (method, target) = (
                        words.next().unwrap_or_default().to_owned(),
                        words.next().unwrap_or_default().to_owned(),
                    );
                    let auth = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("authorization")
                                .then(|| value.trim().to_owned())
                        })
                        .unwrap_or_default();
                    let response = if let Some(query) = target.strip_prefix("/token?") {
                        let scope = query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("scope="))
                            .unwrap_or_default()
                            .replace("%3A", ":")
                            .replace("%2F", "/")
                            .replace("%2C", ",");
                        log.lock().unwrap().push(scope.clone());
                        let body = format!("{{\"token\": \"token:{scope}\"}}");
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        // /v2/<repo>/(blobs|manifests)/…
                        let rest = target.trim_start_matches("/v2/");
                        let cut = rest
                            .find("/blobs/")
                            .or_else(|| rest.find("/manifests/"))
                            .unwrap_or(rest.len());
                        let repo = &rest[..cut];
                        let push = method == "POST" || method == "PUT" || method == "DELETE";
                        let needed = if push { "pull,push" } else { "pull" };
                        let granted = auth
                            .strip_prefix("Bearer token:repository:")
                            .and_then(|s| s.rsplit_once(':'))
                            .is_some_and(|(r, actions)| r == repo && actions.contains(needed));
                        if !granted {
                            format!(
                                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:{repo}:{}\"\r\nContent-Length: 0\r\n\r\n",
                                if push { "pull,push" } else { "pull" }
                            )
                        } else if method == "POST" {
                            format!(
                                "HTTP/1.1 202 Accepted\r\nLocation: /v2/{repo}/blobs/uploads/u1\r\nContent-Length: 0\r\n\r\n"
                            )
                        } else if method == "DELETE" {
                            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".to_owned()
                        } else {
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
                        }
                    };
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (host, issued)
}

#[tokio::test]
async fn a_push_token_serves_the_pulls_of_its_repository_and_each_scope_costs_one_token() {
    let (host, issued) = bearer_registry().await;
    let client = RegistryClient::new()
        .unwrap()
        .with_credentials(CredentialStore::Anonymous);
    let a = Repository::parse(&format!("{host}/shop/a")).unwrap();
    let b = Repository::parse(&format!("{host}/shop/b")).unwrap();

    // Push access to `a`, then lookups in `a`: one token, the push one.
    client.check_push_access(&a).await.unwrap();
    for tag in ["t1", "t2", "t3"] {
        assert_eq!(client.manifest_get(&a, tag).await.unwrap(), None);
    }
    assert_eq!(*issued.lock().unwrap(), ["repository:shop/a:pull,push"]);

    // Lookups alone in `b`: one pull token, reused for each.
    for tag in ["t1", "t2"] {
        assert_eq!(client.manifest_head(&b, tag).await.unwrap(), None);
    }
    client.check_push_access(&a).await.unwrap();
    assert_eq!(
        *issued.lock().unwrap(),
        ["repository:shop/a:pull,push", "repository:shop/b:pull"]
    );
}
