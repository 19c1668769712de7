//! One client connection's reading task: it parses ops, applies them, and routes publishes.
//!
//! The task owns the read half, the parser, the connection's CONNECT options, its match cache
//! and its PING timer; everything other tasks need lives in the shared `ClientHandle`.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::time::{sleep, Instant};

use super::accounts::Account;
use super::outbound::{ClientHandle, CloseReason, Enqueued, Owner, Subscription};
use super::permissions::{self, Permissions};
use super::protocol_trace;
use super::router::{Deliveries, Publisher, Reach};
use super::security_log;
use super::ServerState;
use crate::broker::MatchCache;
use crate::protocol::connect::ConnectOptions;
use crate::protocol::encode::{self, OutMsg};
use crate::protocol::headers::no_responders_block;
use crate::protocol::subject::{is_valid_literal_subject, is_valid_queue_name, is_valid_subject};
use crate::protocol::{ClientOp, Parser, ParserLimits, ProtocolError, Publish};
use connect::sleep_until_expiry;

mod connect;

/// Capacity of the read buffer; one read takes up to this much.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// The read buffer of a connection whose last read did not fill its buffer: a quiet
/// connection keeps one page instead of a busy publisher's 64 KiB.
const QUIET_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Below this much free space the read buffer is grown before the next read.
const MIN_READ_SPACE_BYTES: usize = 4 * 1024;
/// What `$JS.<domain>.API.` is rewritten to when the server has a JetStream domain.
const JS_API_PREFIX: &[u8] = b"$JS.API.";

/// The reading side of one connection.
pub(super) struct Connection {
    state: Arc<ServerState>,
    /// The account the connection's subscriptions and publishes belong to: the global one
    /// until CONNECT names a user of another.
    account: Arc<Account>,
    handle: Arc<ClientHandle>,
    /// The challenge this connection's INFO carried, for an nkey user to sign.
    nonce: Option<String>,
    /// What the client certificate names, under `verify_and_map` (empty otherwise).
    cert_identities: Vec<String>,
    opts: ConnectOptions,
    /// CONNECT has been accepted.
    connected: bool,
    parser: Parser,
    cache: MatchCache<Subscription>,
    /// Writers to wake and internal hand-overs owed after this read.
    out: Deliveries,
    /// Subscribers found far behind after a read; kept to reuse the allocation.
    lagging: Vec<Arc<ClientHandle>>,
    rng: u64,
    pings_out: u32,
    /// When the client last sent PUB, SUB, UNSUB or PING (what nats-server counts as activity).
    last_activity: Instant,
    /// The authenticated user's permissions; `None` allows everything.
    perms: Option<Arc<Permissions>>,
    /// The authenticated user's name, for events and monitoring.
    user: Option<String>,
    /// When the user's JWT expires (operator mode): the connection ends then.
    expires: Option<Instant>,
    /// Subscriptions the user may hold (its JWT's or its account's `subs`).
    max_subs: Option<usize>,
    /// This connection's place in its account's count of open connections.
    account_slot: Option<super::accounts::ConnectionSlot>,
    /// Messages and bytes this client has published, published to `handle.stats` per read.
    in_msgs: u64,
    in_bytes: u64,
}

impl Connection {
    pub(super) fn new(
        state: Arc<ServerState>,
        handle: Arc<ClientHandle>,
        nonce: Option<String>,
        cert_identities: Vec<String>,
    ) -> Self {
        let limits = ParserLimits {
            max_control_line_bytes: state.config.max_control_line_bytes,
            max_payload_bytes: state.config.max_payload_bytes,
        };
        let rng = 0x9E37_79B9_7F4A_7C15 ^ handle.id.wrapping_mul(0xD134_2543_DE82_EF95) | 1;
        Self {
            account: state.accounts.global().clone(),
            state,
            handle,
            nonce,
            cert_identities,
            opts: ConnectOptions::default(),
            connected: false,
            parser: Parser::new(limits),
            cache: MatchCache::default(),
            out: Deliveries::default(),
            lagging: Vec::new(),
            rng,
            pings_out: 0,
            last_activity: Instant::now() - Duration::from_secs(3600),
            perms: None,
            user: None,
            expires: None,
            max_subs: None,
            account_slot: None,
            in_msgs: 0,
            in_bytes: 0,
        }
    }

    /// Reads and applies ops until the connection ends; returns why it ended.
    pub(super) async fn run(
        &mut self,
        mut socket: impl tokio::io::AsyncRead + Unpin,
    ) -> CloseReason {
        let ping_interval = self.state.config.ping_interval;
        let max_pings_out = self.state.config.max_pings_out;
        let auth_required = self.state.auth_required();
        let mut buf = BytesMut::with_capacity(QUIET_READ_BUFFER_BYTES);
        // Whether the last read filled all the room it had: the sign of a busy publisher.
        let mut filled = false;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        let auth_deadline = sleep(self.state.config.auth_timeout);
        tokio::pin!(auth_deadline);
        loop {
            let spare = buf.capacity() - buf.len();
            let wanted = self.parser.bytes_wanted(buf.len());
            if spare < MIN_READ_SPACE_BYTES || spare < wanted {
                let size = if filled {
                    READ_BUFFER_BYTES
                } else {
                    QUIET_READ_BUFFER_BYTES
                };
                buf.reserve(wanted.max(size));
            }
            let room = buf.capacity() - buf.len();
            tokio::select! {
                read = socket.read_buf(&mut buf) => {
                    match read {
                        Ok(0) | Err(_) => return CloseReason::ClientClosed,
                        Ok(n) => filled = n >= room,
                    }
                    let outcome = self.process(&mut buf);
                    self.after_read().await;
                    if let Err(reason) = outcome {
                        return reason;
                    }
                }
                _ = ping.tick() => {
                    // Like nats-server, a client that has been sending us traffic needs no PING
                    // to prove it is alive, and so is never declared stale while it talks.
                    if self.last_activity.elapsed() < ping_interval {
                        continue;
                    }
                    if self.pings_out >= max_pings_out {
                        return self.fail(&ProtocolError::StaleConnection);
                    }
                    self.pings_out += 1;
                    self.send(encode::PING);
                    self.handle.wake();
                }
                _ = &mut auth_deadline, if auth_required && !self.connected => {
                    return self.fail(&ProtocolError::AuthenticationTimeout);
                }
                _ = sleep_until_expiry(self.expires), if self.expires.is_some() => {
                    return self.fail(&ProtocolError::UserAuthenticationExpired);
                }
                _ = self.handle.closed_elsewhere() => {
                    return self.handle.close_reason().unwrap_or(CloseReason::ServerShutdown);
                }
            }
        }
    }

    /// Applies every complete op in `buf`.
    fn process(&mut self, buf: &mut BytesMut) -> Result<(), CloseReason> {
        // The clock is read once per read, not per op: at millions of ops a second the
        // per-op read was a tenth of this task's time.
        let mut active = false;
        let result = self.process_ops(buf, &mut active);
        if active {
            self.last_activity = Instant::now();
            self.handle
                .stats
                .note_activity(self.last_activity, self.in_msgs, self.in_bytes);
        }
        result
    }

    fn process_ops(&mut self, buf: &mut BytesMut, active: &mut bool) -> Result<(), CloseReason> {
        loop {
            let op = match self.parser.next_op(buf) {
                Ok(Some(op)) => op,
                Ok(None) => return Ok(()),
                Err(err) => return Err(self.fail(&err)),
            };
            if !self.connected && self.state.auth_required() && !matches!(op, ClientOp::Connect(_))
            {
                let peer = self.handle.stats.peer;
                security_log::authentication_failed(peer, self.handle.id, &self.opts);
                return Err(self.fail(&ProtocolError::AuthorizationViolation));
            }
            if !matches!(op, ClientOp::Connect(_) | ClientOp::Pong) {
                *active = true;
            }
            if protocol_trace::enabled() {
                protocol_trace::received(self.handle.stats.peer, self.handle.id, &op);
            }
            match op {
                ClientOp::Connect(json) => self.on_connect(&json)?,
                ClientOp::Publish(msg) => self.on_publish(msg),
                ClientOp::Subscribe {
                    subject,
                    queue,
                    sid,
                } => self.on_subscribe(subject, queue, sid),
                ClientOp::Unsubscribe { sid, max_msgs } => self.on_unsubscribe(&sid, max_msgs),
                ClientOp::Ping => self.send(encode::PONG),
                ClientOp::Pong => self.pings_out = 0,
            }
        }
    }

    fn on_publish(&mut self, mut msg: Publish) {
        // Like nats-server: only pedantic clients are told about a publish subject that is not
        // a valid literal, and the message is routed either way, its tokens taken literally.
        // Clients rely on that: async-nats puts a consumer's filter, wildcards included, into
        // the `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>` subject.
        if self.opts.pedantic && !is_valid_literal_subject(&msg.subject) {
            self.error(&ProtocolError::InvalidPublishSubject);
        }
        if let Some(perms) = &self.perms {
            let response = || {
                let grants = self.handle.reply_grants.get();
                grants.is_some_and(|g| g.take(&msg.subject))
            };
            if !perms.publish.permits_publish(&msg.subject) && !response() {
                let (peer, cid) = (self.handle.stats.peer, self.handle.id);
                security_log::publish_violation(peer, cid, &self.opts, &msg.subject);
                let text = permissions::publish_violation(&msg.subject);
                self.error(&ProtocolError::PermissionsViolation(text));
                return;
            }
        }
        self.ok();
        self.in_msgs += 1;
        self.in_bytes += msg.size() as u64;
        if let Some(prefix) = &self.state.js_domain_api_prefix {
            if let Some(rest) = msg.subject.strip_prefix(prefix.as_slice()) {
                // `$JS.<domain>.API.X` is this server's `$JS.API.X`.
                let mut subject = Vec::with_capacity(JS_API_PREFIX.len() + rest.len());
                subject.extend_from_slice(JS_API_PREFIX);
                subject.extend_from_slice(rest);
                msg.subject = Bytes::from(subject);
            }
        }
        let from = Publisher {
            client: Some(&self.handle),
            echo: self.opts.echo,
            reach: Reach::Cluster,
        };
        let delivered =
            self.account
                .router
                .route(&from, &msg, &mut self.cache, &mut self.out, &mut self.rng);
        if delivered == 0 && self.opts.no_responders {
            if let Some(reply) = &msg.reply {
                self.send_no_responders(&msg.subject, reply);
            }
        }
    }

    /// Tells a requester nobody is listening: a 503 status on its own reply subscription.
    fn send_no_responders(&mut self, subject: &[u8], reply: &Bytes) {
        let matches = self.account.router.lookup(reply, &mut self.cache);
        let Some(sub) = matches
            .plain
            .iter()
            .find(|s| s.owner_id() == self.handle.id)
        else {
            return;
        };
        let mut headers = BytesMut::with_capacity(32 + subject.len());
        no_responders_block(&mut headers, subject);
        let out = OutMsg {
            subject: reply,
            sid: &sub.sid,
            reply: None,
            headers: Some(&headers),
            payload: b"",
        };
        if matches!(
            self.handle.enqueue_msg(&out),
            Enqueued::NeedsWake | Enqueued::Lagging
        ) {
            self.out.wake.push(self.handle.clone());
        }
    }

    fn on_subscribe(&mut self, subject: Bytes, queue: Option<Bytes>, sid: Bytes) {
        let queue_ok = queue.as_ref().is_none_or(is_valid_queue_name);
        if !is_valid_subject(&subject) || !queue_ok {
            self.error(&ProtocolError::InvalidSubject);
            return;
        }
        if let Some(perms) = &self.perms {
            if !perms.subscribe.permits_subscription(&subject) {
                let (peer, cid) = (self.handle.stats.peer, self.handle.id);
                let queue_name = queue.as_deref();
                security_log::subscription_violation(
                    peer, cid, &self.opts, &subject, queue_name, &sid,
                );
                let text = permissions::subscription_violation(&subject, queue.as_deref());
                self.error(&ProtocolError::PermissionsViolation(text));
                return;
            }
        }
        if let Some(max) = self.max_subs {
            if self.handle.subs.lock().map_or(0, |s| s.len()) >= max {
                self.error(&ProtocolError::MaxSubscriptionsExceeded);
                return;
            }
        }
        let sub = Arc::new(Subscription {
            owner: Owner::Client(self.handle.clone()),
            subject,
            queue,
            sid: sid.clone(),
            max_msgs: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        let is_new = {
            let mut subs = self.handle.subs.lock().unwrap_or_else(|p| p.into_inner());
            // nats-server ignores a SUB that reuses a live sid.
            match subs.entry(sid) {
                Entry::Occupied(_) => false,
                Entry::Vacant(slot) => {
                    slot.insert(sub.clone());
                    true
                }
            }
        };
        if is_new {
            self.account.router.subscribe(sub);
        }
        self.ok();
    }

    fn on_unsubscribe(&mut self, sid: &Bytes, max_msgs: Option<u64>) {
        let sub = {
            let subs = self.handle.subs.lock().unwrap_or_else(|p| p.into_inner());
            subs.get(sid).cloned()
        };
        if let Some(sub) = sub {
            let delivered = sub.delivered.load(Ordering::Acquire);
            match max_msgs {
                Some(max) if max > delivered => sub.max_msgs.store(max, Ordering::Release),
                _ => self.account.router.remove_subscription(&sub),
            }
        }
        self.ok();
    }

    /// Removes every subscription of this connection; called once it has ended.
    pub(super) fn remove_all_subscriptions(&mut self) {
        let subs: Vec<_> = {
            let mut subs = self.handle.subs.lock().unwrap_or_else(|p| p.into_inner());
            subs.drain().map(|(_, s)| s).collect()
        };
        for sub in subs {
            self.account.router.unsubscribe(&sub);
        }
    }

    /// Queues the INFO this connection starts with.
    pub(super) fn send_info(&mut self, client_ip: String) {
        let json = self
            .state
            .info_json(self.handle.id, client_ip, self.nonce.as_deref());
        let mut line = BytesMut::with_capacity(json.len() + 8);
        encode::write_info(&mut line, &json);
        self.send(&line);
        self.handle.wake();
    }

    fn ok(&mut self) {
        if self.opts.verbose {
            self.send(encode::OK);
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        if matches!(
            self.handle.enqueue_raw(bytes),
            Enqueued::NeedsWake | Enqueued::Lagging
        ) {
            self.out.wake.push(self.handle.clone());
        }
    }

    /// Sends a non-fatal `-ERR`.
    fn error(&mut self, err: &ProtocolError) {
        let mut line = BytesMut::with_capacity(64);
        encode::write_err(&mut line, err);
        self.send(&line);
    }

    /// Sends a fatal `-ERR` and says the connection must close.
    fn fail(&mut self, err: &ProtocolError) -> CloseReason {
        debug_assert!(err.closes_connection());
        self.error(err);
        security_log::connection_failed(self.handle.stats.peer, self.handle.id, err);
        CloseReason::ProtocolError
    }

    /// Hands internal messages over, wakes each writer that has new bytes, then, if one of
    /// them is far behind, holds this publisher back while that writer keeps making progress
    /// (nats-server stalls fast producers the same way). A writer that makes no progress is
    /// not waited for, by this read or any later one, until it moves bytes again.
    async fn after_read(&mut self) {
        self.out.flush_internal().await;
        self.out
            .wake_and_pace(self.handle.id, &mut self.lagging)
            .await;
    }
}
