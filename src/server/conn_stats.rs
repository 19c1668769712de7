//! What monitoring needs to know about one connection: who it is, when it started, when it was
//! last active and how much it has published.
//!
//! The counters are written by the connection's own reading task only, once per socket read
//! (not per message), and read by the monitor on request. Each connection has its own, so no
//! cache line is shared between publishers; the server's totals are sums taken on request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// What the client said about itself in CONNECT (nats-server's connz `name`, `lang`, `version`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    /// The account the connection belongs to; empty until CONNECT.
    pub account: String,
    /// The user it authenticated as, where users are configured.
    pub user: Option<String>,
}

/// Messages and bytes (headers plus payload, as nats-server counts them) in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

impl Traffic {
    pub fn add(&mut self, other: Traffic) {
        self.in_msgs += other.in_msgs;
        self.in_bytes += other.in_bytes;
        self.out_msgs += other.out_msgs;
        self.out_bytes += other.out_bytes;
    }
}

/// Identity, start time, activity and inbound counters of one connection.
pub struct ConnectionStats {
    pub peer: SocketAddr,
    /// Wall-clock start, for reports; `started_at` is the same moment on the monotonic clock.
    pub started: SystemTime,
    started_at: Instant,
    /// Nanoseconds from `started_at` to the last read that carried PUB, SUB, UNSUB or PING.
    /// Stored as an offset so the reader reuses the clock reading it already takes per read.
    last_activity_ns: AtomicU64,
    /// Running totals kept by the reading task, which is their only writer.
    in_msgs: AtomicU64,
    in_bytes: AtomicU64,
    /// Written once at CONNECT; a std mutex because nothing awaits while it is held.
    meta: Mutex<ClientMeta>,
    /// Nanoseconds from accept to CONNECT: nats-server's first round-trip estimate, the
    /// `rtt` of the client info in API audits (jetlog does not refresh it by PING).
    rtt_ns: AtomicU64,
}

impl ConnectionStats {
    pub fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            started: SystemTime::now(),
            started_at: Instant::now(),
            last_activity_ns: AtomicU64::new(0),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            meta: Mutex::new(ClientMeta::default()),
            rtt_ns: AtomicU64::new(0),
        }
    }

    /// Records a read with activity at `at`, and the reader's running inbound totals.
    pub fn note_activity(&self, at: Instant, in_msgs: u64, in_bytes: u64) {
        let offset = at.saturating_duration_since(self.started_at).as_nanos();
        self.last_activity_ns
            .store(u64::try_from(offset).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.in_msgs.store(in_msgs, Ordering::Relaxed);
        self.in_bytes.store(in_bytes, Ordering::Relaxed);
    }

    /// When the client was last active; its start time until it has done anything.
    pub fn last_activity(&self) -> SystemTime {
        let offset = Duration::from_nanos(self.last_activity_ns.load(Ordering::Relaxed));
        self.started + offset
    }

    /// (messages, bytes) the client has published.
    pub fn inbound(&self) -> (u64, u64) {
        (
            self.in_msgs.load(Ordering::Relaxed),
            self.in_bytes.load(Ordering::Relaxed),
        )
    }

    pub fn set_meta(&self, meta: ClientMeta) {
        let rtt = self.started_at.elapsed().as_nanos().max(1);
        self.rtt_ns
            .store(u64::try_from(rtt).unwrap_or(u64::MAX), Ordering::Relaxed);
        *self.meta.lock().unwrap_or_else(|p| p.into_inner()) = meta;
    }

    pub fn rtt_ns(&self) -> u64 {
        self.rtt_ns.load(Ordering::Relaxed)
    }

    pub fn meta(&self) -> ClientMeta {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
