//! The JetStream timer: one thread that sends stream actors their ticks. Every stream that
//! needs upkeep (max_age, an interval sync policy, consumers' redeliveries) gets a regular
//! tick; between those, a stream is ticked at the moment one of its consumers has a deadline
//! (a pull request's expiry or heartbeat, a paced message), so `expires: 100ms` ends after
//! 100 ms and not at the next regular tick.
//!
//! A deadline can appear while the timer sleeps (a pull request arrives): the actor then
//! rings the [`Alarm`], which cuts the sleep short when the new deadline is sooner.
//!
//! The timer visits only the streams on the alarm's list of those that want ticks: a stream
//! puts itself there after a round that leaves it needing them, and the timer takes it off
//! once it needs none, both under the stream's lock, so neither can miss the other. With
//! 100,000 idle streams the timer does nothing rather than lock each twenty times a second.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{actor, lock, now_ns, JetStream};
use crate::protocol::Publish;
use crate::server::outbound::InternalDelivery;

/// How often streams with max_age, an interval sync policy or consumers get their tick.
const TICK_INTERVAL: Duration = Duration::from_millis(50);
/// The timer's shortest sleep, which bounds how often a stream with a due deadline is ticked
/// while its actor is still busy with the last tick.
const MIN_TIMER_SLEEP: Duration = Duration::from_millis(1);

/// The timer's planned wake-up (Unix ns), and the condition it sleeps on. While the timer is
/// awake the plan is `u64::MAX`, so a deadline scheduled then is kept and seen before the
/// next sleep begins.
pub struct Alarm {
    planned_ns: Mutex<u64>,
    ring: Condvar,
    /// The streams that want ticks (regular ones, or at a deadline), by name.
    ticking: Mutex<HashSet<Arc<str>>>,
}

impl Default for Alarm {
    fn default() -> Self {
        Self {
            planned_ns: Mutex::new(u64::MAX),
            ring: Condvar::new(),
            ticking: Mutex::new(HashSet::new()),
        }
    }
}

impl Alarm {
    /// Puts a stream on the list of those the timer visits. Called under the stream's lock.
    pub fn want_ticks(&self, name: &Arc<str>) {
        lock(&self.ticking).insert(name.clone());
    }

    /// Takes a stream off the list. Called under the stream's lock (or for a stream gone).
    fn forget(&self, name: &str) {
        lock(&self.ticking).remove(name);
    }

    fn ticking(&self) -> Vec<Arc<str>> {
        lock(&self.ticking).iter().cloned().collect()
    }

    /// A stream has a deadline at `at_ns`: wakes the timer if it planned to sleep past it.
    pub fn schedule(&self, at_ns: u64) {
        let mut planned = lock(&self.planned_ns);
        if at_ns < *planned {
            *planned = at_ns;
            self.ring.notify_one();
        }
    }

    /// Sleeps for `pause` (planned to end at `until_ns`), or less if a sooner deadline is
    /// scheduled meanwhile; not at all if one was scheduled while the timer was awake.
    fn sleep(&self, pause: Duration, until_ns: u64) {
        let mut planned = lock(&self.planned_ns);
        if *planned <= until_ns {
            *planned = u64::MAX;
            return;
        }
        *planned = until_ns;
        let (mut planned, _) = self
            .ring
            .wait_timeout(planned, pause)
            .unwrap_or_else(|p| p.into_inner());
        *planned = u64::MAX;
    }
}

/// Runs until JetStream stops.
pub fn run(js: &JetStream) {
    let mut next_regular = Instant::now() + TICK_INTERVAL;
    // Mirrors and streams with sources that stopped copying with more to copy: they are
    // pumped again on the next pass, which comes at once, rather than at the next tick.
    let mut behind: HashSet<Arc<str>> = HashSet::new();
    while !js.stopping.load(Ordering::Relaxed) {
        let now = Instant::now();
        let now_ns = now_ns();
        let regular = now >= next_regular;
        if regular {
            next_regular = now + TICK_INTERVAL;
        }
        let mut wake = next_regular;
        let was_behind = std::mem::take(&mut behind);
        for name in js.alarm.ticking() {
            let Some(entry) = js.stream_if_open(&name) else {
                js.alarm.forget(&name);
                // A stream of the same name created meanwhile may have found its name still
                // on the list: put it back if so (its flag is set under its lock).
                if let Some(entry) = js.stream_if_open(&name) {
                    let _stream = entry.lock();
                    if entry.ticking.load(Ordering::Relaxed) {
                        js.alarm.want_ticks(&entry.tick_name);
                    }
                }
                continue;
            };
            let (needs_ticks, deadline, mirror, sourced) = {
                let stream = entry.lock();
                let wants = (stream.needs_ticks(), stream.next_wake_ns());
                if !wants.0 && wants.1.is_none() {
                    entry.ticking.store(false, Ordering::Relaxed);
                    js.alarm.forget(&name);
                }
                let sourced = stream.has_sources();
                (wants.0, wants.1, stream.mirror_spec().cloned(), sourced)
            };
            let pump_now = regular || was_behind.contains(&name);
            let mut more = false;
            if pump_now && sourced {
                more |= super::source_pump::pump(js, &entry);
            }
            if let (true, Some(spec)) = (pump_now, &mirror) {
                // The tick sent below hands what this copies to the stream's consumers.
                more |= super::mirror_pump::pump(js, &entry, spec);
            }
            if more {
                behind.insert(name.clone());
                wake = now;
            }
            let due = deadline.is_some_and(|at| at <= now_ns);
            let copied = pump_now && (sourced || mirror.is_some());
            if (regular && needs_ticks) || due || copied {
                let tick = InternalDelivery {
                    tag: actor::TAG_TICK,
                    msg: Publish::default(),
                    origin: None,
                };
                // A full queue means the actor is busy, and its round does the same work.
                let _ = entry.tx.try_send(tick);
            }
            if let Some(at) = deadline.filter(|at| *at > now_ns) {
                wake = wake.min(now + Duration::from_nanos(at - now_ns));
            }
        }
        let pause = wake
            .saturating_duration_since(Instant::now())
            .max(MIN_TIMER_SLEEP);
        js.alarm
            .sleep(pause, now_ns.saturating_add(pause.as_nanos() as u64));
    }
}
