//! The pool of threads that runs every stream's actor. A stream costs a queue and a little
//! state, not a thread: its actor runs on one of a fixed number of workers when something
//! arrives on its channel, and gives the worker back when the channel is empty, when it has
//! run a slice of rounds (so a busy stream cannot starve the others), or when a channel it
//! delivers to is full (its client never blocks; see `InternalClient::deferred`).
//!
//! Scheduling works like a small executor: each actor is a task whose waker is the channel's
//! (tokio's `mpsc` wakes it on a send), and a task is queued at most once: a wake while it
//! runs marks it to run again instead of queueing a second copy, so one stream is never in
//! two workers at once and its rounds keep their order. Workers are threads, not async
//! tasks, because a round ends in an fsync.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::mpsc;

use super::actor;
use super::StreamEntry;
use crate::server::outbound::InternalDelivery;

/// Workers per core. A round may wait for an fsync, so more workers than cores keep the
/// disks busy for several streams at once; the count never depends on how many streams exist.
const WORKERS_PER_CORE: usize = 4;
/// Workers at the least, on machines with few cores.
const MIN_WORKERS: usize = 4;
/// Rounds a stream runs before its worker goes to another stream that is waiting.
const ROUNDS_PER_SLICE: usize = 8;

/// A task's states: waiting for input, queued for a worker, on a worker, on a worker and
/// woken again meanwhile, or finished.
const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// The workers and their run queue.
pub struct ActorPool {
    shared: Mutex<Shared>,
    /// One per worker, so a new task wakes the worker that went idle last: its caches are
    /// warm, and a lone stream keeps running on the same thread as it did with a thread of
    /// its own (waking an arbitrary worker measurably slowed one-at-a-time publishes).
    wakeups: Vec<Condvar>,
}

/// The run queue and the idle workers, most recently idle last.
struct Shared {
    queue: VecDeque<Arc<ActorTask>>,
    idle: Vec<usize>,
}

/// One stream's actor, as the pool runs it.
pub struct ActorTask {
    entry: Arc<StreamEntry>,
    inbox: Mutex<Inbox>,
    state: AtomicU8,
    pool: Arc<ActorPool>,
    finished: Mutex<bool>,
    finished_signal: Condvar,
}

/// What only the worker running the task touches.
struct Inbox {
    /// Dropped when the actor finishes, which also drops the waker the channel holds.
    rx: Option<mpsc::Receiver<InternalDelivery>>,
    batch: Vec<InternalDelivery>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ActorPool {
    /// Starts the workers: `WORKERS_PER_CORE` per core, at least `MIN_WORKERS`.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = (cores * WORKERS_PER_CORE).max(MIN_WORKERS);
        let pool = Arc::new(Self {
            shared: Mutex::new(Shared {
                queue: VecDeque::new(),
                idle: Vec::with_capacity(workers),
            }),
            wakeups: (0..workers).map(|_| Condvar::new()).collect(),
        });
        for n in 0..workers {
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("stream-worker-{n}"))
                .spawn(move || pool.work(n))?;
        }
        Ok(pool)
    }

    /// Worker `me` runs queued tasks, forever: workers live as long as the process.
    fn work(&self, me: usize) {
        let mut shared = lock(&self.shared);
        loop {
            if let Some(task) = shared.queue.pop_front() {
                drop(shared);
                task.run();
                shared = lock(&self.shared);
                continue;
            }
            if !shared.idle.contains(&me) {
                shared.idle.push(me);
            }
            shared = self.wakeups[me]
                .wait(shared)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn push(&self, task: Arc<ActorTask>) {
        let mut shared = lock(&self.shared);
        shared.queue.push_back(task);
        if let Some(worker) = shared.idle.pop() {
            self.wakeups[worker].notify_one();
        }
    }

    /// Makes `entry`'s actor a task of the pool, fed by `rx`, and runs it once (it may have
    /// work queued already).
    pub fn spawn(
        self: &Arc<Self>,
        entry: Arc<StreamEntry>,
        rx: mpsc::Receiver<InternalDelivery>,
    ) -> Arc<ActorTask> {
        let task = Arc::new(ActorTask {
            entry,
            inbox: Mutex::new(Inbox {
                rx: Some(rx),
                batch: Vec::with_capacity(256),
            }),
            state: AtomicU8::new(IDLE),
            pool: self.clone(),
            finished: Mutex::new(false),
            finished_signal: Condvar::new(),
        });
        task.schedule();
        task
    }
}

impl ActorTask {
    /// Queues the task unless it is queued already; marks it to run again if it is running.
    fn schedule(self: &Arc<Self>) {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let next = match current {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self
                .state
                .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == QUEUED => return self.pool.push(self.clone()),
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// One turn on a worker: at most a slice of rounds, then back to idle (or to the end of
    /// the queue, if there is more to do or it was woken meanwhile).
    fn run(self: Arc<Self>) {
        self.state.store(RUNNING, Ordering::Release);
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let finished = {
            let mut inbox = lock(&self.inbox);
            let finished = self.slice(&mut inbox, &mut cx);
            if finished {
                inbox.rx = None;
                inbox.batch.clear();
            }
            finished
        };
        if finished {
            self.state.store(DONE, Ordering::Release);
            *lock(&self.finished) = true;
            self.finished_signal.notify_all();
            return;
        }
        if self
            .state
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Woken while running: there may be more, so back in the queue (at its end).
            self.state.store(QUEUED, Ordering::Release);
            let pool = self.pool.clone();
            pool.push(self);
        }
    }

    /// Runs rounds while input is there, up to the slice; true when the actor has finished.
    fn slice(self: &Arc<Self>, inbox: &mut Inbox, cx: &mut Context<'_>) -> bool {
        let entry = &self.entry;
        for _ in 0..ROUNDS_PER_SLICE {
            let mut state = entry.actor_state();
            // What the last round could not hand over goes first, in order.
            if state.client.poll_outbox(cx).is_pending() {
                return false;
            }
            let Inbox { rx, batch } = inbox;
            let Some(rx) = rx.as_mut() else {
                return true;
            };
            match rx.poll_recv_many(cx, batch, actor::MAX_BATCH_MSGS) {
                Poll::Pending => return false,
                Poll::Ready(0) => {
                    drop(state);
                    actor::persist_consumers(entry);
                    return true;
                }
                Poll::Ready(_) => {
                    if actor::round(entry, batch, &mut state, None) {
                        return true;
                    }
                }
            }
        }
        // A full slice: let the others run, and come back.
        self.state.store(NOTIFIED, Ordering::Release);
        false
    }

    /// Waits until the actor has finished (after a stop, or when its channel closed).
    pub fn join(&self) {
        let mut finished = lock(&self.finished);
        while !*finished {
            finished = self
                .finished_signal
                .wait(finished)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Wake for ActorTask {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.schedule();
    }
}
