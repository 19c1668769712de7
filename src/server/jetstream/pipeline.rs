//! Group commit, pipelined: under `--sync always`, a stream's actor appends the next batch of
//! publishes while the fdatasync of the previous one runs on a syncer thread, instead of
//! waiting for it. A batch's PubAcks still leave only after the fdatasync that covers it
//! returned, so the promise is unchanged; what changes is that the disk's latency no longer
//! stalls parsing and appending, and the next fsync starts as soon as the last one ends.
//!
//! Only while the stream has no consumers and no interest retention: consumers read the log
//! directly and must never see a message before it is durable, so a stream with consumers
//! syncs each batch in place, as before. Anything else the actor does (pull requests, acks,
//! ticks, direct gets) first settles the pipeline: waits for the running fsync and syncs
//! what was appended since.
//!
//! The actor never runs two fsyncs at once. A purge or message delete through the API may
//! sync beside a running ticket, and Linux reports a write-back error once per open file, so
//! only one of the two would see it; whichever does makes the log read-only, and
//! `Log::finish_sync` then fails the ticket too, so no batch is acknowledged on the other's
//! word.

use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use super::actor::TAG_SYNCED;
use crate::jetstream::api_types::PubAck;
use crate::jetstream::{ApiError, Stream};
use crate::protocol::Publish;
use crate::server::outbound::InternalDelivery;
use crate::store::{StoreError, SyncStart, SyncTicket};

/// Publishes appended together, with their PubAcks (empty for a `no_ack` stream).
pub(super) struct Appended {
    pub publishes: Vec<InternalDelivery>,
    pub acks: Vec<PubAck>,
}

impl Appended {
    /// Nothing stored in this batch may be acknowledged: its sync failed.
    fn fail(&mut self, err: &ApiError) {
        for ack in &mut self.acks {
            if matches!(ack, PubAck::Stored { .. }) {
                *ack = PubAck::Failed(err.clone());
            }
        }
    }
}

/// The actor's side of the syncer thread.
pub(super) struct Pipeline {
    /// Wakes the actor when a sync finished (weak: the syncer must not keep the channel open).
    nudge: mpsc::WeakSender<InternalDelivery>,
    syncer: Option<Syncer>,
    /// Covered by the fsync running now; empty when none runs.
    in_flight: Vec<Appended>,
    running: bool,
    /// Appended since that fsync began; the next one covers them.
    waiting: Vec<Appended>,
}

/// A ticket back from the syncer thread, with how its fsync went.
type Synced = (SyncTicket, crate::store::Result<()>);

struct Syncer {
    tickets: std_mpsc::Sender<SyncTicket>,
    results: std_mpsc::Receiver<Synced>,
}

impl Pipeline {
    pub fn new(nudge: mpsc::WeakSender<InternalDelivery>) -> Self {
        Pipeline {
            nudge,
            syncer: None,
            in_flight: Vec::new(),
            running: false,
            waiting: Vec::new(),
        }
    }

    /// Whether publishes appended now may wait for a later sync.
    pub fn accepts(stream: &Stream) -> bool {
        stream.consumers().is_empty()
            && stream.config().retention != crate::jetstream::stream_config::Retention::Interest
    }

    /// Takes a finished fsync, if one finished, and starts the next.
    pub fn poll(&mut self, stream: &mut Stream, done: &mut Vec<Appended>) {
        if !self.running {
            return;
        }
        let Some(syncer) = &self.syncer else { return };
        if let Ok(synced) = syncer.results.try_recv() {
            self.finish(stream, synced, done);
            self.start(stream, done);
        }
    }

    /// Adds a batch appended under the stream lock (still held) and starts its sync unless
    /// one is running.
    pub fn push(&mut self, stream: &mut Stream, batch: Appended, done: &mut Vec<Appended>) {
        self.waiting.push(batch);
        if !self.running {
            self.start(stream, done);
        }
    }

    /// Waits for the running fsync and makes everything appended since durable: afterwards
    /// nothing appended is undurable, and no fsync runs.
    pub fn settle(&mut self, stream: &mut Stream, done: &mut Vec<Appended>) {
        if self.running {
            match self.syncer.as_ref().map(|s| s.results.recv()) {
                Some(Ok(synced)) => self.finish(stream, synced, done),
                // The syncer thread died with our ticket (it does not, short of a panic).
                _ => self.fail_all(&ApiError::store_failed(syncer_gone()), done),
            }
        }
        if self.waiting.is_empty() {
            return;
        }
        let result = stream.sync_now();
        for mut batch in self.waiting.drain(..) {
            if let Err(err) = &result {
                batch.fail(err);
            }
            done.push(batch);
        }
    }

    fn finish(&mut self, stream: &mut Stream, synced: Synced, done: &mut Vec<Appended>) {
        let (ticket, result) = synced;
        match stream.finish_sync(&ticket, result) {
            Ok(()) => {
                self.running = false;
                done.append(&mut self.in_flight);
            }
            // The log is read-only now; what was appended after the fsync began is lost too.
            Err(err) => self.fail_all(&err, done),
        }
    }

    /// Every batch not yet acknowledged fails with `err`.
    fn fail_all(&mut self, err: &ApiError, done: &mut Vec<Appended>) {
        self.running = false;
        for mut batch in self.in_flight.drain(..).chain(self.waiting.drain(..)) {
            batch.fail(err);
            done.push(batch);
        }
    }

    fn start(&mut self, stream: &mut Stream, done: &mut Vec<Appended>) {
        debug_assert!(!self.running, "one fsync at a time");
        if self.waiting.is_empty() {
            return;
        }
        let ticket = match stream.begin_sync() {
            Ok(SyncStart::Ticket(ticket)) => ticket,
            Ok(SyncStart::Clean | SyncStart::NeedsFull) => {
                // Durable already (`begin_sync` runs a full sync itself when one is needed).
                done.append(&mut self.waiting);
                return;
            }
            Err(err) => {
                for mut batch in self.waiting.drain(..) {
                    batch.fail(&err);
                    done.push(batch);
                }
                return;
            }
        };
        let syncer = self
            .syncer
            .get_or_insert_with(|| spawn_syncer(self.nudge.clone(), stream.config().name.clone()));
        self.in_flight.append(&mut self.waiting);
        self.running = true;
        if let Err(std_mpsc::SendError(ticket)) = syncer.tickets.send(ticket) {
            // The syncer thread is gone (it never exits while we hold its sender, short of a
            // panic): sync here instead.
            let result = ticket.run();
            self.finish(stream, (ticket, result), done);
        }
    }
}

fn syncer_gone() -> StoreError {
    StoreError::Io {
        path: std::path::PathBuf::new(),
        source: std::io::Error::other("the stream's syncer thread stopped"),
    }
}

/// In debug builds: every PubAck about to leave names a message a finished sync covered.
pub(super) fn debug_check_durable(stream: &Stream, done: &[Appended]) {
    if cfg!(debug_assertions) {
        for batch in done {
            for ack in &batch.acks {
                if let PubAck::Stored { seq } = ack {
                    debug_assert!(
                        stream.may_acknowledge(*seq),
                        "PubAck for {seq} before a sync covered it"
                    );
                }
            }
        }
    }
}

/// Starts the thread that runs fsync tickets; it ends when the pipeline drops its sender.
fn spawn_syncer(nudge: mpsc::WeakSender<InternalDelivery>, stream: String) -> Syncer {
    let (tickets, ticket_rx) = std_mpsc::channel::<SyncTicket>();
    let (result_tx, results) = std_mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("sync-{stream}"))
        .spawn(move || {
            while let Ok(ticket) = ticket_rx.recv() {
                let result = ticket.run();
                if result_tx.send((ticket, result)).is_err() {
                    return;
                }
                // A full channel needs no nudge: the actor is about to drain it, and it looks
                // for finished syncs in every round.
                if let Some(tx) = nudge.upgrade() {
                    let _ = tx.try_send(InternalDelivery {
                        tag: TAG_SYNCED,
                        msg: Publish {
                            subject: bytes::Bytes::new(),
                            reply: None,
                            headers: None,
                            payload: bytes::Bytes::new(),
                        },
                    });
                }
            }
        });
    if let Err(err) = spawned {
        // Without the thread the tickets' receiver is dropped, so `start` syncs in place.
        tracing::warn!(error = %err, "cannot start a syncer thread; syncing in the actor");
    }
    Syncer { tickets, results }
}
