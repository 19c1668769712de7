//! Model-based test: random appends, deletes, purges, reads, scans, expiry, truncations and
//! reopens against a `BTreeMap` model. After every operation (and every reopen) the log and
//! the model must agree on state, on every `get`, on `next_matching` and on per-subject counts.
//!
//! The same operations also drive a [`MemLog`], which must agree with the model in the same
//! way and with the file log on every result, on `state(true)` and on every stored message.
//! A reopen applies to the file log only: a memory log keeps going as it is.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use jetlog::protocol::subject::subject_matches;
use jetlog::store::{Log, LogConfig, MemLog, NewMessage, PurgeRequest, StreamStore, SyncPolicy};
use proptest::prelude::*;

const SUBJECTS: [&str; 5] = ["a", "b", "c.x", "c.y", "d.e.f"];
const FILTERS: [&str; 7] = ["a", "b", "c.x", "c.*", "d.>", ">", "zzz"];

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(usize, usize)>),
    Delete(u64),
    Purge {
        filter: Option<usize>,
        up_to: Option<u64>,
        keep: Option<u64>,
    },
    Expire(u64),
    Reopen {
        clean: bool,
    },
    /// Take back this many of the newest sequences (a replicated stream's leader dropping
    /// what never committed).
    Truncate(u64),
    /// Record a replicated entry as applied, and sync: from then on the file log unlinks
    /// emptied segments only when it syncs.
    Checkpoint,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0..SUBJECTS.len(), 0..120usize), 1..12).prop_map(Op::Append),
        2 => (0..80u64).prop_map(Op::Delete),
        1 => (prop::option::of(0..FILTERS.len()), prop::option::weighted(0.3, 0..80u64),
              prop::option::weighted(0.3, 0..6u64))
            .prop_map(|(filter, up_to, keep)| Op::Purge {
                filter,
                up_to: if keep.is_some() { None } else { up_to },
                keep,
            }),
        1 => (0..40u64).prop_map(Op::Expire),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0..15u64).prop_map(Op::Truncate),
        1 => Just(Op::Checkpoint),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        prop::option::weighted(0.3, 5..40i64),
        prop::option::weighted(0.2, 600..4000i64),
        prop::option::weighted(0.3, 1..4i64),
        prop::option::weighted(0.2, 10..60u64),
    )
        .prop_map(|(max_msgs, max_bytes, per_subject, max_age)| LogConfig {
            max_msgs: max_msgs.unwrap_or(-1),
            max_bytes: max_bytes.unwrap_or(-1),
            max_msgs_per_subject: per_subject.unwrap_or(-1),
            max_age: Duration::from_nanos(max_age.unwrap_or(0)),
            segment_bytes: 4096,
            sync: SyncPolicy::Never,
            ..LogConfig::default()
        })
}

#[derive(Debug, Default)]
struct Model {
    msgs: BTreeMap<u64, (String, Vec<u8>, u64)>,
    last_seq: u64,
    clock: u64,
}

fn size(subject: &str, payload: &[u8]) -> u64 {
    (30 + subject.len() + payload.len()) as u64
}

impl Model {
    fn bytes(&self) -> u64 {
        self.msgs.values().map(|(s, p, _)| size(s, p)).sum()
    }
    fn remove_oldest_where(&mut self, mut pred: impl FnMut(&str) -> bool, mut n: u64) {
        let victims: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, (s, _, _))| pred(s))
            .map(|(k, _)| *k)
            .take_while(|_| {
                let go = n > 0;
                n = n.saturating_sub(1);
                go
            })
            .collect();
        for v in victims {
            self.msgs.remove(&v);
        }
    }
    fn expire(&mut self, cfg: &LogConfig, now: u64) {
        let age = cfg.max_age.as_nanos() as u64;
        if age == 0 {
            return;
        }
        let cutoff = now.saturating_sub(age);
        while let Some((&seq, (_, _, ts))) = self.msgs.iter().next() {
            if *ts >= cutoff {
                break;
            }
            self.msgs.remove(&seq);
        }
    }
    fn append(&mut self, cfg: &LogConfig, batch: &[(String, Vec<u8>, u64)]) {
        for (s, p, ts) in batch {
            self.last_seq += 1;
            self.msgs.insert(self.last_seq, (s.clone(), p.clone(), *ts));
            self.clock = self.clock.max(*ts);
        }
        if cfg.max_msgs_per_subject > 0 {
            let max = cfg.max_msgs_per_subject as u64;
            let mut touched: Vec<&String> = batch.iter().map(|(s, _, _)| s).collect();
            touched.sort();
            touched.dedup();
            for subject in touched {
                let count = self.msgs.values().filter(|(s, _, _)| s == subject).count() as u64;
                self.remove_oldest_where(|s| s == subject, count.saturating_sub(max));
            }
        }
        if cfg.max_msgs > 0 {
            let excess = (self.msgs.len() as u64).saturating_sub(cfg.max_msgs as u64);
            self.remove_oldest_where(|_| true, excess);
        }
        if cfg.max_bytes > 0 {
            while self.bytes() > cfg.max_bytes as u64 {
                self.remove_oldest_where(|_| true, 1);
            }
        }
        let now = self.clock;
        self.expire(cfg, now);
    }
    fn first_seq(&self) -> u64 {
        match self.msgs.keys().next() {
            Some(k) => *k,
            None if self.last_seq == 0 => 0,
            None => self.last_seq + 1,
        }
    }
}

fn check(log: &StreamStore, model: &Model) -> Result<(), TestCaseError> {
    let st = log
        .state(true)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(st.msgs, model.msgs.len() as u64);
    prop_assert_eq!(st.bytes, model.bytes());
    prop_assert_eq!(st.last_seq, model.last_seq);
    prop_assert_eq!(st.first_seq, model.first_seq());
    let subjects: BTreeMap<String, u64> =
        model
            .msgs
            .values()
            .fold(BTreeMap::new(), |mut m, (s, _, _)| {
                *m.entry(s.clone()).or_insert(0) += 1;
                m
            });
    prop_assert_eq!(st.num_subjects, subjects.len() as u64);
    prop_assert_eq!(log.subject_counts(">"), subjects);
    if let Some((first, _)) = model.msgs.iter().next() {
        let expect: Vec<u64> = (*first..=model.last_seq)
            .filter(|s| !model.msgs.contains_key(s))
            .collect();
        prop_assert_eq!(&st.deleted, &expect);
    }
    for seq in 0..=model.last_seq + 1 {
        let got = log
            .get(seq)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = model.msgs.get(&seq);
        prop_assert_eq!(got.is_some(), want.is_some(), "get({})", seq);
        if let (Some(g), Some((s, p, ts))) = (got, want) {
            prop_assert_eq!(&g.subject, s);
            prop_assert_eq!(&g.payload[..], &p[..]);
            prop_assert_eq!(g.ts_ns, *ts);
        }
    }
    for (i, f) in FILTERS.iter().enumerate() {
        let start = (i as u64 * 7) % (model.last_seq + 2);
        let got = log
            .next_matching(start, &[f])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = model
            .msgs
            .range(start..)
            .find(|(_, (s, _, _))| subject_matches(f, s))
            .map(|(k, _)| *k);
        prop_assert_eq!(got.map(|m| m.seq), want, "next_matching({}, {})", start, f);
        let last = log
            .last_for_subject(f)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want_last = model
            .msgs
            .iter()
            .rev()
            .find(|(_, (s, _, _))| subject_matches(f, s))
            .map(|(k, _)| *k);
        prop_assert_eq!(last.map(|m| m.seq), want_last, "last_for_subject({})", f);
    }
    // Counts from the maps, when the store claims to know them, must be exact.
    for start in [0, 1, model.last_seq / 2, model.last_seq, model.last_seq + 1] {
        for filters in [&[][..], &[">"], &["a", "b"], &FILTERS[..]] {
            if let Some(count) = log.count_from(start, filters) {
                let want = model
                    .msgs
                    .range(start..)
                    .filter(|(_, (s, _, _))| {
                        filters.is_empty() || filters.iter().any(|f| subject_matches(f, s))
                    })
                    .count() as u64;
                prop_assert_eq!(count, want, "count_from({}, {:?})", start, filters);
            }
        }
    }
    let two = log
        .next_matching(0, &["a", "b"])
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want = model
        .msgs
        .iter()
        .find(|(_, (s, _, _))| s == "a" || s == "b")
        .map(|(k, _)| *k);
    prop_assert_eq!(two.map(|m| m.seq), want);
    Ok(())
}

fn fail(e: impl ToString) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The file log and the memory log hold the same messages and report the same state.
fn check_same(file: &StreamStore, mem: &StreamStore) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        file.state(true).map_err(fail)?,
        mem.state(true).map_err(fail)?
    );
    prop_assert_eq!(
        file.scan(0, &[], usize::MAX).map_err(fail)?,
        mem.scan(0, &[], usize::MAX).map_err(fail)?
    );
    prop_assert_eq!(
        file.next_expiry_ns().map_err(fail)?,
        mem.next_expiry_ns().map_err(fail)?
    );
    for ts in [0, 5, 17, 40, u64::MAX] {
        prop_assert_eq!(
            file.seq_at_or_after_time(ts).map_err(fail)?,
            mem.seq_at_or_after_time(ts).map_err(fail)?,
            "seq_at_or_after_time({})",
            ts
        );
    }
    Ok(())
}

fn run(cfg: LogConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let open = |cfg: &LogConfig| Log::open(dir.path(), cfg.clone()).map_err(fail);
    let mut log = StreamStore::File(open(&cfg)?);
    let mut mem = StreamStore::Memory(MemLog::new(cfg.clone()).map_err(fail)?);
    let mut model = Model::default();
    let mut clock = 0u64;
    let mut applied = None;
    for op in ops {
        match op {
            Op::Append(batch) => {
                let batch: Vec<(String, Vec<u8>, u64)> = batch
                    .into_iter()
                    .map(|(s, len)| {
                        clock = clock.max(model.clock) + 1;
                        (
                            SUBJECTS[s].to_owned(),
                            vec![(clock % 251) as u8; len],
                            clock,
                        )
                    })
                    .collect();
                let msgs: Vec<NewMessage> = batch
                    .iter()
                    .map(|(s, p, ts)| NewMessage {
                        subject: s.clone(),
                        headers: Bytes::new(),
                        payload: Bytes::from(p.clone()),
                        ts_ns: *ts,
                    })
                    .collect();
                let res = log.append_batch(&msgs).map_err(fail)?;
                prop_assert!(res.iter().all(|r| r.is_ok()));
                prop_assert_eq!(mem.append_batch(&msgs).map_err(fail)?, res);
                model.append(&cfg, &batch);
            }
            Op::Delete(seq) => {
                let got = log.delete(seq).map_err(fail)?;
                prop_assert_eq!(got, model.msgs.remove(&seq).is_some());
                prop_assert_eq!(mem.delete(seq).map_err(fail)?, got);
            }
            Op::Purge {
                filter,
                up_to,
                keep,
            } => {
                let f = filter.map(|i| FILTERS[i]);
                let req = PurgeRequest {
                    filter: f.map(str::to_owned),
                    up_to_seq: up_to,
                    keep,
                };
                let n = log.purge(&req).map_err(fail)?;
                prop_assert_eq!(mem.purge(&req).map_err(fail)?, n);
                let before = model.msgs.len();
                let matches = |s: &str| f.is_none_or(|f| subject_matches(f, s));
                match keep {
                    Some(k) => {
                        let count =
                            model.msgs.values().filter(|(s, _, _)| matches(s)).count() as u64;
                        model.remove_oldest_where(matches, count.saturating_sub(k));
                    }
                    None => model
                        .msgs
                        .retain(|seq, (s, _, _)| !(matches(s) && up_to.is_none_or(|u| *seq < u))),
                }
                prop_assert_eq!(n, (before - model.msgs.len()) as u64);
            }
            Op::Expire(delta) => {
                let now = model.clock + delta;
                let n = log.expire(now).map_err(fail)?;
                prop_assert_eq!(mem.expire(now).map_err(fail)?, n);
                model.clock = now;
                model.expire(&cfg, now);
            }
            Op::Truncate(back) => {
                let last = model.last_seq.saturating_sub(back);
                log.truncate_after(last).map_err(fail)?;
                mem.truncate_after(last).map_err(fail)?;
                // A checkpoint past the cut no longer describes the log.
                applied = applied.filter(|(_, l)| *l <= last);
                if last < model.last_seq {
                    model.msgs.retain(|seq, _| *seq <= last);
                    model.last_seq = last;
                }
            }
            Op::Checkpoint => {
                let index = applied.map_or(1, |(i, _)| i + 1);
                log.set_applied(index);
                mem.set_applied(index);
                log.sync().map_err(fail)?;
                applied = Some((index, model.last_seq));
                prop_assert_eq!(log.applied().map(|a| (a.index, a.last_seq)), applied);
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().map_err(fail)?;
                } else {
                    log.sync().map_err(fail)?;
                    drop(log);
                }
                let reopened = open(&cfg)?;
                let report = reopened.recovery_report();
                prop_assert!(!report.found_damage(), "{:?}", report);
                prop_assert_eq!(report.used_snapshot, clean);
                prop_assert_eq!(reopened.applied().map(|a| (a.index, a.last_seq)), applied);
                log = StreamStore::File(reopened);
            }
        }
        check(&log, &model)?;
        check(&mem, &model)?;
        prop_assert_eq!(log.applied(), mem.applied());
        check_same(&log, &mem)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn file_and_memory_logs_agree_with_model(
        cfg in config(),
        ops in prop::collection::vec(op(), 1..50),
    ) {
        run(cfg, ops)?;
    }
}
