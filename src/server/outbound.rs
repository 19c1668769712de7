//! A connection's outbound side: the buffer other tasks encode messages into, and the writer
//! task that flushes it.
//!
//! Publishers route on their own task and append directly into each subscriber's buffer, so a
//! routed message costs one copy into memory that is already allocated. The writer swaps the
//! filled buffer for an empty one and writes it with one `write_all`, so everything queued
//! while the previous write was in flight leaves in a single syscall. The buffer is capped at
//! `max_pending`: a subscriber that cannot keep up is disconnected rather than allowed to grow
//! the server's memory (nats-server's slow consumer rule).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;

/// How long closing a TLS stream may wait for its close_notify to be written.
const TLS_CLOSE_LIMIT: Duration = Duration::from_millis(500);

/// Where a connection's writer task writes: the socket itself, which publishers may also
/// write to directly while the writer is idle, or a TLS stream, which only the writer may
/// touch (its records are built and buffered by the TLS layer).
pub enum WriteSink {
    Plain(Arc<OwnedWriteHalf>),
    Tls(std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>),
}
use tokio::sync::Notify;

use super::conn_stats::ConnectionStats;
use crate::protocol::encode::{write_msg, OutMsg};

/// The writer keeps a spare buffer of up to this capacity between flushes; a larger one (left by
/// a burst) is dropped so an idle connection does not pin a burst's worth of memory.
const MAX_IDLE_BUFFER_BYTES: usize = 1 << 20;
/// A subscriber this far behind holds its publishers back, whatever max_pending is: a larger
/// backlog buys no throughput (the socket drains at its own pace) and costs memory.
const STALL_THRESHOLD_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Starting capacity of each outbound buffer: one page, as most connections receive little;
/// a busy one grows its buffers to what it needs and keeps them (up to
/// `MAX_IDLE_BUFFER_BYTES`).
const INITIAL_BUFFER_BYTES: usize = 4 * 1024;

/// Why a connection is being closed; decides whether queued bytes are still flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client went away or the read side failed.
    ClientClosed,
    /// A protocol error; the queued `-ERR` must still go out.
    ProtocolError,
    /// Outbound bytes exceeded max_pending or a flush missed the write deadline.
    SlowConsumer,
    /// The server is stopping; queued bytes are flushed first.
    ServerShutdown,
}

impl CloseReason {
    /// Whether bytes already queued are still written before the socket closes. A slow
    /// consumer's backlog is discarded, as nats-server does (skipFlushOnClose).
    pub fn flushes(self) -> bool {
        matches!(self, Self::ProtocolError | Self::ServerShutdown)
    }
}

/// What happened to a message offered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Appended; the writer must be woken (the caller batches wake-ups).
    NeedsWake,
    /// Appended; a wake-up is already scheduled.
    Queued,
    /// Appended, a wake-up is scheduled, and the connection is past its stall threshold: the
    /// publisher should slow down for it.
    Lagging,
    /// The connection is closed or was just closed as a slow consumer; nothing was queued.
    Dropped,
}

struct Outbound {
    buf: BytesMut,
    /// Bytes the writer has taken but not yet written; counted against max_pending so that
    /// queued plus in-flight bytes never pass the cap.
    in_flight: usize,
    /// Set once a wake-up is owed for the bytes in `buf`; cleared when the writer takes them.
    wake_scheduled: bool,
    closed: Option<CloseReason>,
    /// The connection's write half, shared with the writer task so that a publisher can write
    /// straight to the socket while the writer is idle. Taken away when the writer ends; the
    /// last reference dropped shuts the write side down.
    socket: Option<Arc<OwnedWriteHalf>>,
    /// Messages (and their header plus payload bytes) queued for this client, counted here
    /// because every publisher already holds this lock to queue them: monitoring costs no
    /// extra synchronisation on the delivery path.
    out_msgs: u64,
    out_bytes: u64,
}

/// Who receives a subscription's messages.
pub enum Owner {
    /// A client connection: messages are encoded into its outbound buffer.
    Client(Arc<ClientHandle>),
    /// A component inside the server (the JetStream API, a stream): messages are handed over
    /// through a bounded channel, whose capacity pushes back on the publisher.
    Internal(InternalSink),
    /// A way into another account (an import, or the replies of one): the message is routed
    /// on into that account's subscriptions on the publisher's own task.
    Forward(Arc<dyn Forward>),
    /// Another server of the cluster has interest: the message is encoded as `RMSG` into the
    /// route's buffer, once per server however many of its subscriptions match.
    Route(Arc<super::routes::RemoteInterest>),
}

/// Carries a message across an account boundary, where an export and an import allow it.
pub trait Forward: Send + Sync {
    /// Routes `msg`, matched here on `subject` (its own subject, or a JetStream delivery's
    /// deliver subject), into the other account; true if anything there took it.
    fn forward(
        &self,
        subject: &[u8],
        msg: &crate::protocol::Publish,
        reach: super::router::Reach<'_>,
        out: &mut super::router::Deliveries,
    ) -> bool;
    /// Whether anything in the other account would take a message on `subject`.
    fn has_interest(&self, subject: &[u8]) -> bool;
    /// Whether the other servers of a cluster send this forwarder their matching messages.
    /// A stream import is (each server delivers to its own importers what its routes bring);
    /// a service import is not (the server the request reaches first crosses the boundary,
    /// and its responders across the cluster are reached from there).
    fn cluster_wide(&self) -> bool;
}

/// Where an internal subscription's messages go.
#[derive(Clone)]
pub struct InternalSink {
    /// Chosen by the subscriber to tell its subscriptions apart on a shared channel.
    pub tag: u64,
    pub tx: tokio::sync::mpsc::Sender<InternalDelivery>,
    /// Subjects this subscription does not take even though its pattern matches them, so that
    /// a catch-all (the JetStream API on `$JS.API.>`) leaves them to their own owners and a
    /// request nobody owns still gets a no-responders status.
    pub exclude: &'static [&'static str],
    /// Set when the subscriber can take a message on the publisher's own thread (see
    /// [`InlineTaker`]); `None` sends everything through `tx`.
    pub inline: Option<Arc<dyn InlineTaker>>,
    /// Set when the subscriber wants to know who published each message (the JetStream API,
    /// for its audit): the router then attaches a snapshot of the publishing client.
    pub origin: bool,
}

/// Internal messages owed to their subscribers: each goes through its sink's channel.
pub type InternalQueue = Vec<(InternalSink, InternalDelivery)>;

/// A subscriber that may handle a message right on the publishing connection's task, saving
/// the hand-over to its thread (two context switches, which dominate a lone request's
/// latency) when that cannot change the order in which it sees messages.
pub trait InlineTaker: Send + Sync {
    /// Called while routing, once for every message bound for this sink, before it is either
    /// taken inline or sent: lets the taker know what is still on its way.
    fn routed(&self);
    /// Takes `delivery` now, or gives it back to be sent through the channel. Messages the
    /// work produces for other internal subscribers are appended to `spill` for the caller
    /// to hand over; nothing here may block on a channel.
    fn try_take(
        &self,
        delivery: InternalDelivery,
        spill: &mut InternalQueue,
    ) -> Option<InternalDelivery>;
}

/// A message for an internal subscriber.
#[derive(Debug)]
pub struct InternalDelivery {
    pub tag: u64,
    pub msg: crate::protocol::Publish,
    /// The publishing client, for a sink that asked (`InternalSink::origin`).
    pub origin: Option<Box<super::requester::Requester>>,
}

/// One subscription, shared with the sublist.
pub struct Subscription {
    pub owner: Owner,
    pub subject: Bytes,
    pub queue: Option<Bytes>,
    pub sid: Bytes,
    /// Deliveries after which the subscription removes itself; 0 means no limit.
    pub max_msgs: AtomicU64,
    pub delivered: AtomicU64,
}

impl Subscription {
    /// The owning connection, if a client owns this subscription.
    pub fn client(&self) -> Option<&Arc<ClientHandle>> {
        match &self.owner {
            Owner::Client(client) => Some(client),
            Owner::Internal(_) | Owner::Forward(_) | Owner::Route(_) => None,
        }
    }

    /// The owning connection's id; 0 (never a client's) for internal subscriptions.
    pub fn owner_id(&self) -> u64 {
        self.client().map_or(0, |c| c.id)
    }
}

/// The parts of a connection other tasks touch: its outbound buffer, its subscriptions and
/// the flags routing needs. The reading task owns everything else.
pub struct ClientHandle {
    pub id: u64,
    max_pending_bytes: usize,
    outbound: Mutex<Outbound>,
    /// Wakes the writer when bytes are queued or the connection closes.
    wake_writer: Notify,
    /// Wakes the reader when someone else closed the connection.
    wake_reader: Notify,
    /// Signalled after every flush, for publishers stalled on this connection.
    drained: Notify,
    /// Aborts a write in progress when the connection is closed without a final flush.
    abort_write: Notify,
    /// Set by a publisher that waited for this connection's writer and saw it move nothing;
    /// cleared by the writer when the socket takes bytes again. While it is set, publishers
    /// do not wait for this connection: a subscriber that has stopped reading would otherwise
    /// cost every publisher read a fruitless wait until the cap or the write deadline cuts
    /// it off (measured: 20 MiB to ten healthy subscribers took 14 s instead of 0.5 s beside
    /// one that never read).
    stuck: AtomicBool,
    /// Whether the client sent `headers:true` in CONNECT (else it gets MSG without headers).
    pub headers: AtomicBool,
    /// Whether the client takes INFO updates (CONNECT `protocol` 1): the cluster's URLs.
    pub async_info: AtomicBool,
    /// Subscriptions by sid; a std mutex because nothing awaits while it is held.
    pub subs: Mutex<HashMap<Bytes, Arc<Subscription>>>,
    /// The subscribe permissions of the authenticated user, set once at CONNECT when they
    /// deny anything: deliveries on denied subjects are skipped (a wildcard subscription may
    /// overlap a denied subject).
    pub deny_deliveries: std::sync::OnceLock<Arc<super::permissions::Permissions>>,
    /// Set when the user has `allow_responses`: the reply subjects it may answer.
    pub reply_grants: std::sync::OnceLock<super::reply_grants::ReplyGrants>,
    /// Identity and inbound counters, for monitoring.
    pub stats: ConnectionStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, never a broken
    // invariant that later users could trip on, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl ClientHandle {
    pub fn new(id: u64, max_pending_bytes: usize, peer: SocketAddr) -> Self {
        Self {
            id,
            max_pending_bytes,
            outbound: Mutex::new(Outbound {
                buf: BytesMut::with_capacity(INITIAL_BUFFER_BYTES),
                in_flight: 0,
                wake_scheduled: false,
                closed: None,
                socket: None,
                out_msgs: 0,
                out_bytes: 0,
            }),
            wake_writer: Notify::new(),
            wake_reader: Notify::new(),
            drained: Notify::new(),
            abort_write: Notify::new(),
            stuck: AtomicBool::new(false),
            headers: AtomicBool::new(false),
            async_info: AtomicBool::new(false),
            subs: Mutex::new(HashMap::new()),
            deny_deliveries: std::sync::OnceLock::new(),
            reply_grants: std::sync::OnceLock::new(),
            stats: ConnectionStats::new(peer),
        }
    }

    /// Encodes a message into the outbound buffer, or closes the connection as a slow
    /// consumer if that would take it past max_pending.
    pub fn enqueue_msg(&self, msg: &OutMsg<'_>) -> Enqueued {
        let size = msg.headers.map_or(0, <[u8]>::len) + msg.payload.len();
        self.enqueue_with(msg.encoded_len(), Some(size), |buf| write_msg(buf, msg))
    }

    /// Appends raw protocol bytes (INFO, PONG, +OK, -ERR).
    pub fn enqueue_raw(&self, bytes: &[u8]) -> Enqueued {
        self.enqueue_with(bytes.len(), None, |buf| buf.extend_from_slice(bytes))
    }

    /// Queues `len` bytes written by `write`; `msg_size` is set for a message, to count it.
    pub fn enqueue_with(
        &self,
        len: usize,
        msg_size: Option<usize>,
        write: impl FnOnce(&mut BytesMut),
    ) -> Enqueued {
        let mut out = lock(&self.outbound);
        if out.closed.is_some() {
            return Enqueued::Dropped;
        }
        if out.buf.len() + out.in_flight + len > self.max_pending_bytes {
            out.closed = Some(CloseReason::SlowConsumer);
            drop(out);
            self.abort_write.notify_one();
            // nats-server's line, with the client's address and connection id.
            tracing::warn!(
                "{} - cid:{} - Slow Consumer Detected: MaxPending of {} Exceeded",
                self.stats.peer,
                self.id,
                self.max_pending_bytes
            );
            self.wake_writer.notify_one();
            self.wake_reader.notify_one();
            return Enqueued::Dropped;
        }
        write(&mut out.buf);
        if let Some(size) = msg_size {
            out.out_msgs += 1;
            out.out_bytes += size as u64;
        }
        if !out.wake_scheduled {
            out.wake_scheduled = true;
            Enqueued::NeedsWake
        } else if out.buf.len() + out.in_flight > self.stall_threshold() {
            Enqueued::Lagging
        } else {
            Enqueued::Queued
        }
    }

    /// Gives the outbound side its socket; called once, before the writer starts, and only for
    /// plaintext connections: a TLS stream is written by the writer task alone.
    pub fn attach_socket(&self, socket: Arc<OwnedWriteHalf>) {
        lock(&self.outbound).socket = Some(socket);
    }

    /// Flushes what is queued. When the writer task is idle, the caller writes the bytes to the
    /// socket itself with one non-blocking write (nats-server flushes from the producer the same
    /// way): a request's reply or a stream's ack then reaches the socket without a task switch.
    /// Whatever the socket does not take right away is left to the writer task.
    pub fn wake(&self) {
        let mut out = lock(&self.outbound);
        if out.in_flight == 0 && out.closed.is_none() && !out.buf.is_empty() {
            if let Some(socket) = out.socket.clone() {
                if let Ok(n) = socket.try_write(&out.buf) {
                    out.buf.advance(n);
                    if n > 0 {
                        self.stuck.store(false, Ordering::Relaxed);
                    }
                    if out.buf.is_empty() {
                        out.wake_scheduled = false;
                        drop(out);
                        self.drained.notify_waiters();
                        return;
                    }
                }
            }
        }
        drop(out);
        self.wake_writer.notify_one();
    }

    /// Bytes queued or in flight, not yet accepted by the socket.
    pub fn pending_bytes(&self) -> usize {
        let out = lock(&self.outbound);
        out.buf.len() + out.in_flight
    }

    /// (messages, bytes) queued for this client so far.
    pub fn outbound_totals(&self) -> (u64, u64) {
        let out = lock(&self.outbound);
        (out.out_msgs, out.out_bytes)
    }

    /// The stall threshold: above it publishers pause to let this writer catch up.
    pub fn stall_threshold(&self) -> usize {
        (self.max_pending_bytes / 4 * 3).min(STALL_THRESHOLD_MAX_BYTES)
    }

    /// Waits until the writer has moved some bytes to the socket (true), or `limit` passes
    /// (false). A wait that sees no progress marks the connection stuck (see
    /// [`ClientHandle::is_stuck`]).
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        let moved = tokio::time::timeout(limit, self.drained.notified())
            .await
            .is_ok();
        if !moved {
            self.stuck.store(true, Ordering::Relaxed);
        }
        moved
    }

    /// Whether the last wait for this connection's writer saw it move nothing, and it has not
    /// moved anything since: publishers do not wait for a stuck connection.
    pub fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::Relaxed)
    }

    /// Marks the connection closed (the first reason wins) and wakes both of its tasks.
    pub fn close(&self, reason: CloseReason) {
        let mut out = lock(&self.outbound);
        if out.closed.is_none() {
            out.closed = Some(reason);
        }
        let discard = !out.closed.is_some_and(CloseReason::flushes);
        drop(out);
        if discard {
            self.abort_write.notify_one();
        }
        self.wake_writer.notify_one();
        self.wake_reader.notify_one();
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.outbound).closed
    }

    /// Resolves when another task closes this connection.
    pub async fn closed_elsewhere(&self) {
        self.wake_reader.notified().await;
    }

    /// The writer task: flushes queued bytes until the connection closes.
    pub async fn run_writer(self: Arc<Self>, mut socket: WriteSink, write_deadline: Duration) {
        // Empty until the first swap hands it the queued bytes' buffer: a connection that is
        // never written to after INFO holds one buffer, not two.
        let mut spare = BytesMut::new();
        'run: loop {
            self.wake_writer.notified().await;
            loop {
                let closed = {
                    let mut out = lock(&self.outbound);
                    std::mem::swap(&mut out.buf, &mut spare);
                    out.in_flight = spare.len();
                    out.wake_scheduled = false;
                    out.closed
                };
                if closed.is_some_and(|reason| !reason.flushes()) {
                    break 'run;
                }
                if spare.is_empty() {
                    if closed.is_some() {
                        break 'run;
                    }
                    break;
                }
                if let Err(reason) = self.write_out(&mut socket, &spare, write_deadline).await {
                    self.close(reason);
                    if !reason.flushes() {
                        break 'run;
                    }
                }
                if spare.capacity() > MAX_IDLE_BUFFER_BYTES {
                    spare = BytesMut::with_capacity(INITIAL_BUFFER_BYTES);
                } else {
                    spare.clear();
                }
            }
        }
        // Dropping the last reference to the write half shuts the write side down; a TLS
        // stream is closed with its close_notify first (bounded: the peer may be gone).
        lock(&self.outbound).socket = None;
        if let WriteSink::Tls(tls) = &mut socket {
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(TLS_CLOSE_LIMIT, tls.shutdown()).await;
        }
        drop(socket);
        self.drained.notify_waiters();
    }

    /// Writes one buffer, recording progress after every partial write so that stalled
    /// publishers see it. Stops early when the connection is closed without a final flush.
    /// A TLS stream takes each step as a write and a flush of the records it built.
    async fn write_out(
        &self,
        socket: &mut WriteSink,
        data: &[u8],
        write_deadline: Duration,
    ) -> Result<(), CloseReason> {
        use tokio::io::AsyncWriteExt;
        let mut written = 0;
        while written < data.len() {
            let rest = &data[written..];
            let step = async {
                match socket {
                    WriteSink::Plain(plain) => loop {
                        plain.writable().await?;
                        match plain.try_write(rest) {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            other => return other,
                        }
                    },
                    WriteSink::Tls(tls) => {
                        let n = tls.write(rest).await?;
                        tls.flush().await?;
                        Ok(n)
                    }
                }
            };
            let write = tokio::time::timeout(write_deadline, step);
            let result = tokio::select! {
                result = write => result,
                _ = self.abort_write.notified() => return Err(CloseReason::ClientClosed),
            };
            match result {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(CloseReason::ClientClosed),
                Ok(Ok(n)) => written += n,
                Err(_) => {
                    tracing::warn!(
                        "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {write_deadline:?} exceeded",
                        self.stats.peer,
                        self.id
                    );
                    return Err(CloseReason::SlowConsumer);
                }
            }
            lock(&self.outbound).in_flight = data.len() - written;
            self.stuck.store(false, Ordering::Relaxed);
            self.drained.notify_waiters();
        }
        Ok(())
    }
}
