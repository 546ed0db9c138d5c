//! A stand-in HTTP server on 127.0.0.1 for a registry or a Docker engine that answers what a test
//! says and records what it was asked (the fault no real service will inject on demand).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use cookbook::registry::Repository;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.1 answer: `status`, `headers`, `body`, and `Connection: close`.
pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

pub type Respond = dyn Fn(usize, &str, &str) -> String + Send + Sync;

/// An HTTP stand-in (for a registry or a Docker engine) that answers each request with what `respond(n, request, host)` says
/// and records the requests (head, lower-cased header names).
pub struct FakeServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    pub async fn start(
        respond: impl Fn(usize, &str) -> String + Send + Sync + 'static,
    ) -> FakeServer {
        FakeServer::start_with_self(move |n, request, _| respond(n, request)).await
    }

    pub async fn start_with_self(
        respond: impl Fn(usize, &str, &str) -> String + Send + Sync + 'static,
    ) -> FakeServer {
        FakeServer::start_on("127.0.0.1", respond).await
    }

    /// A server on another loopback address (`127.0.0.2`…: another host to the client, with no
    /// setup on Linux).
    pub async fn start_on(
        ip: &str,
        respond: impl Fn(usize, &str, &str) -> String + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Respond> = Arc::new(respond);
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then any body its Content-Length announces.
                let head_end = loop {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(i + 4);
                    }
                };
                let Some(head_end) = head_end else { continue };
                let head = normalize_head(&String::from_utf8_lossy(&buffer[..head_end]));
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while buffer.len() < head_end + length {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(head.clone());
                    seen.len() - 1
                };
                let answer = respond(n, &head, &addr.to_string());
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        FakeServer { addr, requests }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn repo(&self) -> Repository {
        Repository::parse(&format!("{}/cookbook/x", self.addr)).unwrap()
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The request line as sent, then `name: value` header lines with lower-cased names.
pub fn normalize_head(head: &str) -> String {
    let mut lines = head.split("\r\n");
    let mut out = lines.next().unwrap_or_default().to_owned();
    for line in lines.filter(|l| !l.is_empty()) {
        out.push('\n');
        match line.split_once(':') {
            Some((name, value)) => {
                out.push_str(&format!("{}: {}", name.to_ascii_lowercase(), value.trim()))
            }
            None => out.push_str(line),
        }
    }
    out
}
