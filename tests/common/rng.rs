//! A tiny xorshift generator for tests: seedable, so a failing seed replays exactly, and no
//! dependency needed. Not for anything but spreading test inputs and moments.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// xorshift64; the state must not be zero (callers seed it with `… | 1`).
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock, for tests that want a new spread on every run.
    pub fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration in `low..=high`, to the microsecond.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = (high - low).as_micros() as u64 + 1;
        low + Duration::from_micros(self.next() % span)
    }
}
