//! The kill loop's checker: compares what the clients were told with what the stream holds
//! after the last restart. Pure, so its own tests can feed it broken histories.
//!
//! The kinds of failure follow Jepsen's NATS and Redpanda checkers: an acknowledged id that is
//! missing (and whether later ids of the same publisher survived it, the "lost middle"), an id
//! stored twice, a stored message nobody sent, and holes in the stream's sequence numbers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::workload::{parse_id, payload, PublisherRecord};

/// One message as the drain read it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub id: String,
    pub payload: Vec<u8>,
}

/// The figures of one run; every field but the totals must be 0.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub attempted: u64,
    pub acked: u64,
    pub stored: u64,
    /// Acknowledged ids not in the stream.
    pub acked_lost: u64,
    /// Of those, ids with a later id of the same publisher stored: loss from the middle.
    pub lost_middle: u64,
    /// Extra copies of acknowledged ids.
    pub acked_duplicates: u64,
    /// Extra copies of any id (the dedup window covers the whole run, so also 0).
    pub duplicates: u64,
    /// Stored messages whose id was never sent.
    pub unexpected: u64,
    /// Stored messages whose payload is not the one sent with their id.
    pub payload_mismatches: u64,
    /// Acknowledged ids stored at another sequence than their PubAck named.
    pub ack_seq_mismatches: u64,
    /// Sequences between the first and last stored one that hold nothing (nothing is ever
    /// deleted from this stream, so each is a lost message, acknowledged or not).
    pub sequence_gaps: u64,
}

impl Verdict {
    /// Judges the publishers' records against the drained stream.
    pub fn judge(records: &[PublisherRecord], stored: &[Stored]) -> Verdict {
        let mut v = Verdict {
            attempted: records.iter().map(|r| r.attempted).sum(),
            acked: records.iter().map(|r| r.acked.len() as u64).sum(),
            stored: stored.len() as u64,
            ..Verdict::default()
        };
        let attempted: HashMap<usize, u64> =
            records.iter().map(|r| (r.publisher, r.attempted)).collect();
        // (publisher, number) -> sequences it is stored at.
        let mut copies: BTreeMap<(usize, u64), Vec<u64>> = BTreeMap::new();
        for m in stored {
            let Some((p, n)) = parse_id(&m.id).filter(|(p, n)| attempted.get(p) > Some(n)) else {
                v.unexpected += 1;
                continue;
            };
            if m.payload != payload(p, n).as_bytes() {
                v.payload_mismatches += 1;
            }
            copies.entry((p, n)).or_default().push(m.seq);
        }
        v.duplicates = copies.values().map(|s| s.len() as u64 - 1).sum();
        for r in records {
            let highest_stored = copies
                .range((r.publisher, 0)..=(r.publisher, u64::MAX))
                .next_back()
                .map(|((_, n), _)| *n);
            for (&n, &acked_seq) in &r.acked {
                match copies.get(&(r.publisher, n)) {
                    None => {
                        v.acked_lost += 1;
                        v.lost_middle += u64::from(highest_stored.is_some_and(|h| h > n));
                    }
                    Some(seqs) => {
                        v.acked_duplicates += seqs.len() as u64 - 1;
                        v.ack_seq_mismatches += u64::from(seqs[0] != acked_seq);
                    }
                }
            }
        }
        let mut seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
        seqs.sort_unstable();
        v.sequence_gaps = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
        v
    }

    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        let totals = Verdict {
            attempted: self.attempted,
            acked: self.acked,
            stored: self.stored,
            ..Verdict::default()
        };
        *self == totals
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attempted={} acked={} stored={} acked_lost={} lost_middle={} acked_duplicates={} \
             duplicates={} unexpected={} payload_mismatches={} ack_seq_mismatches={} \
             sequence_gaps={}",
            self.attempted,
            self.acked,
            self.stored,
            self.acked_lost,
            self.lost_middle,
            self.acked_duplicates,
            self.duplicates,
            self.unexpected,
            self.payload_mismatches,
            self.ack_seq_mismatches,
            self.sequence_gaps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kill_loop_support::workload::msg_id;

    fn stored(seq: u64, p: usize, n: u64) -> Stored {
        Stored {
            seq,
            id: msg_id(p, n),
            payload: payload(p, n).into_bytes(),
        }
    }

    /// Publisher 0 sent ids 0..5 and got acks for 0..4 at sequences 1..4.
    fn record() -> PublisherRecord {
        PublisherRecord {
            publisher: 0,
            attempted: 5,
            acked: (0..4).map(|n| (n, n + 1)).collect(),
            ..PublisherRecord::default()
        }
    }

    #[test]
    fn a_faithful_stream_is_clean() {
        let log: Vec<Stored> = (0..5).map(|n| stored(n + 1, 0, n)).collect();
        let v = Verdict::judge(&[record()], &log);
        assert!(v.is_clean(), "{v}");
        assert_eq!((v.attempted, v.acked, v.stored), (5, 4, 5));
    }

    #[test]
    fn each_kind_of_damage_is_counted() {
        let mut log = vec![stored(1, 0, 0), stored(3, 0, 2), stored(4, 0, 3)];
        log.push(stored(5, 0, 3)); // an acknowledged id twice
        log.push(stored(6, 0, 4)); // unacknowledged, fine
        log.push(stored(7, 0, 4)); // ... but not twice
        log.push(stored(8, 7, 0)); // a publisher that never existed
        let mut bad = stored(10, 0, 0);
        bad.payload[0] ^= 1; // a damaged byte (and a third copy, and a hole at 9)
        log.push(bad);
        let mut rec = record();
        rec.acked.insert(2, 9); // a PubAck that named the wrong sequence
        let v = Verdict::judge(&[rec], &log);
        assert_eq!(v.acked_lost, 1, "id 1 is gone");
        assert_eq!(v.lost_middle, 1, "ids after 1 survived it");
        assert_eq!(v.acked_duplicates, 2, "3 twice, 0 twice");
        assert_eq!(v.duplicates, 3);
        assert_eq!(v.unexpected, 1);
        assert_eq!(v.payload_mismatches, 1);
        assert_eq!(v.ack_seq_mismatches, 1, "id 2 is at 3, not 9");
        assert_eq!(v.sequence_gaps, 2, "2 and 9 hold nothing");
        assert!(!v.is_clean());
    }

    #[test]
    fn a_lost_tail_is_loss_but_not_from_the_middle() {
        let log: Vec<Stored> = (0..2).map(|n| stored(n + 1, 0, n)).collect();
        let v = Verdict::judge(&[record()], &log);
        assert_eq!((v.acked_lost, v.lost_middle), (2, 0));
    }
}
