//! The agent's HTTP(S) server: the routes, and the accept loop that serves them over plain TCP
//! or TLS (mutual when a client CA is given).
//!
//! axum routes the requests; the connections are accepted here rather than by `axum::serve`,
//! which serves plain TCP only: each accepted stream goes through the rustls handshake (bounded
//! in time) and is then served by hyper's HTTP/1 connection under a graceful-shutdown watcher,
//! as axum's own TLS example does. Everything served is read-only but the webhook, which only
//! asks for a round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::metrics::{Metrics, WebhookResult};
use super::webhook::{self, Rejected, Verdict};
use super::{lock, Shared, Trigger};
use crate::error::Error;

/// At most this many connections at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A TLS handshake, or a request's headers, that take longer are dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it is doing: a client that sends or reads
/// slowly cannot hold one of the connections for ever.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// At most this many status documents are built at once (each asks the engine or cluster);
/// more requests meanwhile are answered 503.
pub(super) const STATUS_BUILDS: usize = 2;
/// How many events the dashboard's timeline shows.
const TIMELINE: usize = 50;

pub(super) struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Server {
    pub(super) async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| Error::Usage {
            message: format!("cannot listen on {addr}: {e}"),
            help: Some("pass another --listen address (another agent may run there)".to_owned()),
        })?;
        Ok(Server {
            listener,
            tls: tls.map(TlsAcceptor::from),
        })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub(super) fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown`, then lets the connections in flight finish.
    pub(super) async fn serve(self, shared: Arc<Shared>, shutdown: CancellationToken) {
        let app = router(shared);
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // A connection reset before it was accepted, out of descriptors for a moment.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let tls = self.tls.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _permit = permit;
                let http = {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(HANDSHAKE_TIMEOUT);
                    builder
                };
                let served = async {
                    match tls {
                        None => {
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                        Some(acceptor) => {
                            // A peer without a certificate the client CA signed fails here.
                            let handshake =
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                    .await;
                            let Ok(Ok(stream)) = handshake else {
                                return;
                            };
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                    }
                };
                // Dropping the connection's future closes it.
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, served).await;
            });
        }
        graceful.shutdown().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/api/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/fleet", get(fleet_page))
        .route("/api/v1/fleet", get(fleet_json))
        .route("/hooks/git", post(hook))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(shared)
}

/// Every answer: not cached, not framed, not sniffed, no referrer; the pages' own script and
/// styles only.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CACHE_CONTROL, "no-store");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CONTENT_SECURITY_POLICY, &super::dashboard::csp());
    response
}

/// Runs blocking work (the status asks the engine) off the runtime's workers.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Result<T, Response> {
    let Ok(permit) = Arc::clone(&shared.status_builds).try_acquire_owned() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: the status is being built for other requests; retry\n",
        )
            .into_response());
    };
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work(&shared)
    })
    .await
    .map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the status could not be built",
        )
            .into_response()
    })
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    match blocking(&shared, Shared::status).await {
        Ok(status) => Json(status).into_response(),
        Err(response) => response,
    }
}

async fn dashboard(State(shared): State<Arc<Shared>>) -> Response {
    let page = blocking(&shared, |shared| {
        let status = shared.status();
        // The timeline is the audit trail's tail; a log that cannot be read shows no events.
        let timeline = shared
            .events
            .tail(TIMELINE)
            .map(|events| events.events)
            .unwrap_or_default();
        super::dashboard::render(&status, &timeline, SystemTime::now())
    })
    .await;
    match page {
        Ok(page) => Html(page).into_response(),
        Err(response) => response,
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the first round has ended: the agent then knows what its site runs.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first round is running\n",
        )
            .into_response()
    }
}

async fn fleet_report(shared: &Shared) -> Option<crate::ops::fleet::FleetReport> {
    let peers = shared.peers.as_ref()?;
    Some(crate::ops::fleet::ask(&peers.client, &peers.peers).await)
}

async fn fleet_json(State(shared): State<Arc<Shared>>) -> Response {
    match fleet_report(&shared).await {
        Some(report) => {
            let rows = report.rows();
            Json(serde_json::json!({
                "master": report.master,
                "sites": report.sites,
                "rows": rows,
            }))
            .into_response()
        }
        None => no_peers(),
    }
}

async fn fleet_page(State(shared): State<Arc<Shared>>) -> Response {
    match fleet_report(&shared).await {
        Some(report) => {
            let rows = report.rows();
            Html(super::dashboard::render_fleet(
                &report,
                &rows,
                SystemTime::now(),
            ))
            .into_response()
        }
        None => no_peers(),
    }
}

fn no_peers() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no fleet view: start the agent with --peers FILE\n",
    )
        .into_response()
}

/// `POST /hooks/git`: authenticated before anything is read from it; a push to the followed
/// branch asks for a round (coalesced with one already asked for); a delivery seen before
/// starts nothing.
async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let Some(secret) = &shared.secret else {
        return (
            StatusCode::NOT_FOUND,
            "no webhook: start the agent with --webhook-secret-file\n",
        )
            .into_response();
    };
    let body = match read_body(&shared, &headers, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let delivery = match webhook::check(&headers, &body, secret) {
        Ok(delivery) => delivery,
        Err(rejected) => {
            let (code, result) = match &rejected {
                Rejected::Unauthorized(_) => {
                    (StatusCode::UNAUTHORIZED, WebhookResult::Unauthorized)
                }
                Rejected::BadRequest(_) => (StatusCode::BAD_REQUEST, WebhookResult::BadRequest),
                Rejected::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, WebhookResult::TooLarge),
            };
            shared
                .metrics
                .webhook(webhook::provider_label(&headers), result);
            return answer(code, "rejected", &rejected.to_string(), None);
        }
    };
    let provider = delivery.provider.to_string();
    let id = delivery.id.clone();
    if !lock(&shared.replays).first_time(&delivery) {
        shared.metrics.webhook(&provider, WebhookResult::Replayed);
        return answer(
            StatusCode::CONFLICT,
            "replayed",
            "this delivery was seen before: nothing started",
            id,
        );
    }
    match delivery.verdict(shared.branch()) {
        Verdict::Start => {
            let trigger = Trigger::Webhook {
                provider: provider.clone(),
                delivery: id.clone(),
            };
            let coalesced = shared.trigger(trigger);
            let (result, message) = if coalesced {
                (
                    WebhookResult::Coalesced,
                    "a round was already asked for: it takes this push",
                )
            } else {
                (WebhookResult::Accepted, "a round starts")
            };
            shared.metrics.webhook(&provider, result);
            answer(StatusCode::ACCEPTED, "accepted", message, id)
        }
        Verdict::Ping => {
            shared.metrics.webhook(&provider, WebhookResult::Ignored);
            answer(StatusCode::OK, "pong", "the webhook is set up", id)
        }
        Verdict::Ignored(why) => {
            shared.metrics.webhook(&provider, WebhookResult::Ignored);
            answer(StatusCode::OK, "ignored", &why, id)
        }
    }
}

/// A webhook's body, read up to the cap and no further (a larger one is refused while it is
/// being sent, 413), within the handshake's time (408); one that breaks off is 400.
async fn read_body(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let provider = webhook::provider_label(headers);
    let read = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        axum::body::to_bytes(body, webhook::MAX_BODY),
    )
    .await;
    let refused = |code, result, message: &str| {
        shared.metrics.webhook(provider, result);
        answer(code, "rejected", message, None)
    };
    match read {
        Ok(Ok(body)) => Ok(body),
        Err(_) => Err(refused(
            StatusCode::REQUEST_TIMEOUT,
            WebhookResult::BadRequest,
            "the body was not sent in time",
        )),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.into_inner().is::<http_body_util::LengthLimitError>();
            Err(if too_large {
                refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    WebhookResult::TooLarge,
                    &Rejected::TooLarge.to_string(),
                )
            } else {
                refused(
                    StatusCode::BAD_REQUEST,
                    WebhookResult::BadRequest,
                    "the body broke off",
                )
            })
        }
    }
}

fn answer(code: StatusCode, result: &str, message: &str, delivery: Option<String>) -> Response {
    (
        code,
        Json(serde_json::json!({
            "result": result,
            "message": message,
            "delivery": delivery,
        })),
    )
        .into_response()
}
