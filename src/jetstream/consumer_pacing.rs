//! Holding deliveries back on purpose: `replay_policy: original` spaces messages as far apart
//! as they were stored, and `rate_limit_bps` caps what a push consumer sends per second.
//!
//! Both only ever delay. A message that may not go yet is put back where it came from and the
//! consumer notes when it may (`wake_at`); the stream's timer ticks the stream at that moment
//! instead of waiting for its regular 50 ms tick, so the spacing holds to about a millisecond.

use super::consumer_config::{ConsumerConfig, ReplayPolicy};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// What pacing remembers of what was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pacing {
    /// Original replay: the stored timestamp of the last message sent, and when it was sent.
    last: Option<(u64, u64)>,
    /// Rate limit: when the bits sent so far will have been "spent" at the allowed rate.
    free_at_ns: u64,
}

/// Whether a consumer paces its deliveries at all (most do not, and skip all of this).
pub fn is_paced(config: &ConsumerConfig) -> bool {
    config.replay_policy == ReplayPolicy::Original || config.rate_limit_bps > 0
}

impl Pacing {
    /// When a message stored at `ts_ns` may be sent, or `None` if it may go now.
    pub fn hold_until(&self, config: &ConsumerConfig, ts_ns: u64, now_ns: u64) -> Option<u64> {
        let mut at = 0;
        if config.replay_policy == ReplayPolicy::Original {
            if let Some((last_ts, last_sent_ns)) = self.last {
                at = last_sent_ns.saturating_add(ts_ns.saturating_sub(last_ts));
            }
        }
        if config.rate_limit_bps > 0 {
            at = at.max(self.free_at_ns);
        }
        (at > now_ns).then_some(at)
    }

    /// Records that a message stored at `ts_ns`, `bytes` long, was sent at `now_ns`.
    pub fn sent(&mut self, config: &ConsumerConfig, ts_ns: u64, bytes: usize, now_ns: u64) {
        if config.replay_policy == ReplayPolicy::Original {
            self.last = Some((ts_ns, now_ns));
        }
        if config.rate_limit_bps > 0 {
            let bits = bytes as u128 * 8;
            let cost = bits * NANOS_PER_SEC / u128::from(config.rate_limit_bps);
            let cost = u64::try_from(cost).unwrap_or(u64::MAX);
            self.free_at_ns = self.free_at_ns.max(now_ns).saturating_add(cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn config(replay: ReplayPolicy, bps: u64) -> ConsumerConfig {
        ConsumerConfig {
            replay_policy: replay,
            rate_limit_bps: bps,
            ..ConsumerConfig::default()
        }
    }

    #[test]
    fn original_replay_keeps_the_stored_gaps() {
        let c = config(ReplayPolicy::Original, 0);
        let mut p = Pacing::default();
        // The first message goes at once, whenever it was stored.
        assert_eq!(p.hold_until(&c, 1000 * MS, 5 * MS), None);
        p.sent(&c, 1000 * MS, 10, 5 * MS);
        // The next was stored 100 ms later: it may go 100 ms after the first was sent.
        assert_eq!(p.hold_until(&c, 1100 * MS, 50 * MS), Some(105 * MS));
        assert_eq!(p.hold_until(&c, 1100 * MS, 105 * MS), None);
        assert!(is_paced(&c));
        assert!(!is_paced(&config(ReplayPolicy::Instant, 0)));
    }

    #[test]
    fn the_rate_limit_spaces_messages_by_their_size() {
        // 8,000 bits per second: a 100-byte message takes 100 ms of the budget.
        let c = config(ReplayPolicy::Instant, 8000);
        let mut p = Pacing::default();
        assert_eq!(p.hold_until(&c, 0, 0), None);
        p.sent(&c, 0, 100, 0);
        assert_eq!(p.hold_until(&c, 0, 10 * MS), Some(100 * MS));
        p.sent(&c, 0, 100, 100 * MS);
        assert_eq!(p.hold_until(&c, 0, 150 * MS), Some(200 * MS));
        // Idle time is not saved up: after a pause the budget starts from now.
        assert_eq!(p.hold_until(&c, 0, 900 * MS), None);
        p.sent(&c, 0, 100, 900 * MS);
        assert_eq!(p.hold_until(&c, 0, 900 * MS), Some(1000 * MS));
    }
}
