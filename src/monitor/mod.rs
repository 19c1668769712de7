//! The HTTP monitoring endpoints of nats-server (`-m`/`http_port`): `/healthz`, `/varz`,
//! `/connz`, `/subsz`, `/jsz`, and `/metrics` for Prometheus. Field names follow nats-server's
//! `server/monitor.go`; what differs is in `docs/monitoring.md`.
//!
//! Handlers read a [`ServerView`] and run on the blocking pool: some take stream locks that a
//! stream's actor may hold across an fsync, which must not stall the async runtime. The
//! listener and every open monitoring connection end when the server shuts down.

mod accountz;
mod clock;
mod connz;
mod health;
mod jsz;
mod metrics;
mod process;
mod query;
mod routez;
mod subsz;
pub mod system;
mod varz;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::server::tls::Tls;
use tokio::task::JoinSet;

use crate::server::ServerView;
use query::Query;

/// Monitoring connections served at once; more are closed on accept, so a scraper storm
/// cannot take memory from the message path.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers (nats-server's monitor uses a 2 s
/// read timeout).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head accepted.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why the monitor cannot start or a request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("can't listen to the monitor port {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    BadRequest(String),
    /// `leader_only` asked of a server that does not lead the meta group: over HTTP a
    /// 400, to a system request no answer (the leader answers).
    #[error("not leader")]
    NotLeader,
}

/// What every handler reads.
pub struct MonitorState {
    view: ServerView,
    /// The monitor's own address, reported in `/varz` as `http_host`/`http_port`.
    listen: Option<SocketAddr>,
    cpu: process::CpuSampler,
}

/// A bound, not yet serving monitor.
pub struct Monitor {
    listener: TcpListener,
    state: Arc<MonitorState>,
    /// HTTPS with the client port's certificates (`https_port`); plain HTTP when `None`.
    tls: Option<Arc<Tls>>,
}

impl Monitor {
    /// Binds `addr` (port 0 picks a free one).
    pub async fn bind(
        addr: SocketAddr,
        view: ServerView,
        tls: Option<Arc<Tls>>,
    ) -> Result<Self, MonitorError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MonitorError::Bind { addr, source })?;
        let local = listener.local_addr().ok();
        let started = view.server().started;
        let uptime = clock::since(started, std::time::SystemTime::now());
        let started_at = std::time::Instant::now()
            .checked_sub(uptime)
            .unwrap_or_else(std::time::Instant::now);
        Ok(Self {
            listener,
            tls,
            state: Arc::new(MonitorState {
                view,
                listen: local,
                cpu: process::CpuSampler::new(started_at),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves requests until `shutdown` resolves, then closes the port and every open
    /// monitoring connection (the requests are reads; none is worth waiting for).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) if connections.len() < MAX_CONNECTIONS => {
                        let state = self.state.clone();
                        match self.tls.clone() {
                            None => connections.spawn(serve_connection(state, socket)),
                            Some(tls) => connections.spawn(async move {
                                match tls.accept(socket).await {
                                    Ok(stream) => serve_connection(state, stream).await,
                                    Err(err) => tracing::error!(
                                        "{peer} - monitoring TLS handshake error: {err}"
                                    ),
                                }
                            }),
                        };
                    }
                    Ok(_) => tracing::debug!("monitoring connection refused: too many open"),
                    Err(err) => {
                        tracing::warn!(error = %err, "monitor accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = &mut shutdown => break,
            }
        }
        drop(self.listener);
        connections.shutdown().await;
    }
}

async fn serve_connection(
    state: Arc<MonitorState>,
    socket: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
) {
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(state, request).await) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(socket), service)
        .await;
    if let Err(err) = result {
        tracing::debug!(error = %err, "monitoring connection ended");
    }
}

/// Routes one request to its endpoint on the blocking pool.
async fn respond(state: Arc<MonitorState>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
    }
    let path = request.uri().path().to_string();
    let raw_query = request.uri().query().map(str::to_string);
    let answered =
        tokio::task::spawn_blocking(move || endpoint(&state, &path, raw_query.as_deref())).await;
    match answered {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(error = %err, "monitoring handler failed");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "internal error\n".into(),
            )
        }
    }
}

fn endpoint(state: &MonitorState, path: &str, raw_query: Option<&str>) -> Response<Full<Bytes>> {
    let query = match Query::parse(raw_query) {
        Ok(query) => query,
        Err(err) => return bad_request(&err),
    };
    let outcome = match path.trim_end_matches('/') {
        "/healthz" => {
            let (status, health) = health::healthz(state, &query);
            return json(status, &health);
        }
        "/varz" => Ok(json(StatusCode::OK, &varz::varz(state))),
        "/connz" => connz::connz(state, &query).map(|r| json(StatusCode::OK, &r)),
        "/subsz" | "/subscriptionsz" => {
            subsz::subsz(state, &query).map(|r| json(StatusCode::OK, &r))
        }
        "/jsz" => jsz::jsz(state, &query).map(|r| json(StatusCode::OK, &r)),
        "/routez" => routez::routez(state, &query).map(|r| json(StatusCode::OK, &r)),
        "/accountz" => accountz::accountz(state, &query).map(|r| json(StatusCode::OK, &r)),
        "/accstatz" => accountz::accstatz(state, &query).map(|r| json(StatusCode::OK, &r)),
        "/metrics" => Ok(reply(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::metrics(state).into(),
        )),
        _ => Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".into(),
        )),
    };
    outcome.unwrap_or_else(|err| bad_request(&err))
}

fn bad_request(err: &MonitorError) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        "text/plain",
        format!("{err}\n").into(),
    )
}

/// Indented JSON, as nats-server serves it.
fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => reply(status, "application/json", body.into()),
        Err(err) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{err}\n").into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
