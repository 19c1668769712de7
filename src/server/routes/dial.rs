//! The tasks that open route connections: the route port's accept loop, the diallers that
//! keep configured (and gossiped) routes up, and the TLS handshake that opens a route.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::conn::{serve, Ended, Side};
use super::Cluster;
use crate::cluster::config::{route_retry_delay, RouteUrl, ROUTE_DIAL_TIMEOUT, ROUTE_RETRY_DELAY};
use crate::server::outbound::{ClientHandle, WriteSink};
use crate::server::ServerState;

/// Accepts route connections until the server stops.
pub async fn accept_routes(state: Arc<ServerState>, cluster: Arc<Cluster>, listener: TcpListener) {
    let mut stopping = cluster.stopping();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    tokio::spawn(serve(state.clone(), cluster.clone(), socket, peer, Side::Accepted));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "route accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = stopping.changed() => return,
        }
    }
}

/// Starts a dialler for every configured route.
pub fn dial_configured_routes(state: &Arc<ServerState>, cluster: &Arc<Cluster>) {
    for url in &cluster.config.routes {
        tokio::spawn(keep_dialling(
            state.clone(),
            cluster.clone(),
            url.clone(),
            true,
            None,
        ));
    }
}

/// Keeps a route up: an explicit one for as long as the server runs; one learned by gossip
/// until `connect_retries` + 1 dials in a row have failed. While a route to the same server
/// stands (the peer dialled us, or won a race of simultaneous dials), the dialler waits, and
/// takes over if that route goes.
pub(super) async fn keep_dialling(
    state: Arc<ServerState>,
    cluster: Arc<Cluster>,
    url: RouteUrl,
    explicit: bool,
    mut remote: Option<String>,
) {
    let address = url.address();
    if !cluster.begin_dial(&address) {
        return;
    }
    let mut stopping = cluster.stopping();
    let mut failures: u32 = 0;
    // After a route is lost every failed attempt is logged, as nats-server logs reconnects.
    let mut reconnecting = false;
    loop {
        if let Some(id) = &remote {
            while cluster.has_route_to(id) && !*stopping.borrow() {
                pause(&mut stopping, ROUTE_RETRY_DELAY).await;
            }
        }
        if *stopping.borrow() {
            break;
        }
        match tokio::time::timeout(ROUTE_DIAL_TIMEOUT, TcpStream::connect(&address)).await {
            Ok(Ok(socket)) => {
                failures = 0;
                let peer = socket.peer_addr().unwrap_or_else(|_| unspecified());
                let side = Side::Dialled {
                    explicit,
                    url: url.clone(),
                };
                match serve(state.clone(), cluster.clone(), socket, peer, side).await {
                    Ended::ToSelf | Ended::Stopping => break,
                    Ended::Duplicate(id) | Ended::Closed(Some(id)) => {
                        remote = Some(id);
                        reconnecting = true;
                    }
                    Ended::Closed(None) => {}
                }
            }
            Ok(Err(err)) => {
                failures = dial_failed(&address, &err.to_string(), failures, reconnecting)
            }
            Err(_) => failures = dial_failed(&address, "timed out", failures, reconnecting),
        }
        if !explicit && failures > cluster.config.connect_retries {
            tracing::debug!("giving up on route {address} after {failures} attempts");
            break;
        }
        pause(&mut stopping, route_retry_delay(failures) + jitter()).await;
    }
    cluster.end_dial(&address);
}

/// Counts a failed dial and logs it as nats-server does: every one when reconnecting a lost
/// route, else the first and then every 3600th.
fn dial_failed(address: &str, why: &str, failures: u32, reconnecting: bool) -> u32 {
    let failures = failures.saturating_add(1);
    if reconnecting || failures == 1 || failures.is_multiple_of(3600) {
        tracing::info!(
            "Error trying to connect to route (attempt {failures}): dial tcp {address}: {why}"
        );
    }
    failures
}

async fn pause(stopping: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stopping.changed() => {}
    }
}

/// Up to 100 ms, so two servers that lost each other do not redial in lockstep.
fn jitter() -> Duration {
    let mut seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos().into());
    Duration::from_millis(crate::server::router::next_random(&mut seed) % 100)
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// A route's halves: plaintext, or after the TLS handshake that opens every route of a
/// cluster with TLS (before INFO, as nats-server does it).
pub(super) async fn transport(
    cluster: &Cluster,
    socket: TcpStream,
    side: &Side,
    handle: &ClientHandle,
) -> Option<(ReadSide, WriteSink)> {
    let Some(tls) = &cluster.tls else {
        let (read_half, write_half) = socket.into_split();
        let write_half = Arc::new(write_half);
        handle.attach_socket(write_half.clone());
        return Some((Box::pin(read_half), WriteSink::Plain(write_half)));
    };
    let peer = handle.stats.peer;
    let split = match side {
        Side::Accepted => tls.accept(socket).await.map(|s| {
            let (r, w) = tokio::io::split(s);
            (Box::pin(r) as ReadSide, WriteSink::Tls(Box::pin(w)))
        }),
        Side::Dialled { url, .. } => tls.connect(socket, &url.host).await.map(|s| {
            let (r, w) = tokio::io::split(s);
            (Box::pin(r) as ReadSide, WriteSink::Tls(Box::pin(w)))
        }),
    };
    match split {
        Ok(halves) => Some(halves),
        Err(err) => {
            tracing::error!(
                "{peer} - rid:{} - TLS route handshake error: {err}",
                handle.id
            );
            None
        }
    }
}

/// The reading side of a route, plaintext or TLS.
pub(super) type ReadSide = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;
