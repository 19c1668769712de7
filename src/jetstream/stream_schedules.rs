//! Message schedules (ADR-51): a message with `Nats-Schedule` on a stream with
//! `allow_msg_schedules` is stored on its own subject (rolling up the schedule it replaces)
//! and, when due, makes the stream store a new message on its `Nats-Schedule-Target`.
//! Facts: `docs/msg-schedules-facts.md`.
//!
//! The schedule message itself is the state: the index here (subject → schedule message and
//! next firing) is rebuilt from the stored messages when the stream opens, so schedules
//! survive restarts. As nats-server after a crash, a past `@at` then fires at once and a
//! repeating schedule does not catch up on firings it missed while the server was down.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ApiError;
use super::msg_ttl::parse_ttl;
use super::schedule_pattern::{parse_pattern, Pattern};
use super::stream::{store_error, Stream};
use super::time::format_rfc3339;
use crate::protocol::headers::header_value;
use crate::protocol::subject::{is_literal, is_valid_literal_subject, subject_matches};
use crate::protocol::Publish;
use crate::store::PurgeRequest;

pub const SCHEDULE: &[u8] = b"Nats-Schedule";
pub const TARGET: &[u8] = b"Nats-Schedule-Target";
pub const SCHEDULE_TTL: &[u8] = b"Nats-Schedule-TTL";
pub const SOURCE: &[u8] = b"Nats-Schedule-Source";
pub const SCHEDULE_ROLLUP: &[u8] = b"Nats-Schedule-Rollup";
pub const TIME_ZONE: &[u8] = b"Nats-Schedule-Time-Zone";
pub const SCHEDULER: &[u8] = b"Nats-Scheduler";
pub const NEXT: &[u8] = b"Nats-Schedule-Next";

/// Time zones a cron schedule may name: jetlog computes cron times in UTC only.
const UTC_NAMES: [&str; 3] = ["UTC", "Etc/UTC", "Zulu"];

/// One schedule the stream holds.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the schedule message is stored.
    seq: u64,
    /// When it fires next (Unix ns).
    next_ns: i64,
}

/// The stream's schedules, by the subject of their schedule message.
#[derive(Debug, Default)]
pub struct Schedules {
    by_subject: HashMap<String, Entry>,
}

impl Schedules {
    pub fn next_due_ns(&self) -> Option<u64> {
        let soonest = self.by_subject.values().map(|e| e.next_ns).min()?;
        Some(soonest.max(0) as u64)
    }
}

/// What a publish's schedule headers make of it.
#[derive(Debug, PartialEq, Eq)]
pub enum ScheduleHeaders {
    /// Nothing to do with schedules.
    Plain,
    /// A valid schedule; `add_rollup` when the publisher sent no `Nats-Rollup` (the schedule
    /// replaces any earlier message on its subject).
    Schedule { add_rollup: bool },
}

fn err(err_code: u16, text: &str) -> ApiError {
    ApiError::new(400, err_code, text)
}

fn text(headers: &[u8], name: &[u8]) -> Option<String> {
    header_value(headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

impl Stream {
    /// Checks a publish's schedule headers in nats-server's order (facts §4).
    pub(super) fn check_schedule_headers(
        &self,
        subject: &[u8],
        headers: &[u8],
    ) -> Result<ScheduleHeaders, ApiError> {
        // Every header this looks at starts so: one pass over the block, instead of a lookup
        // per header, on each publish that carries headers.
        if !headers.windows(SCHEDULE.len()).any(|w| w == SCHEDULE) {
            return Ok(ScheduleHeaders::Plain);
        }
        let allowed = self.config().allow_msg_schedules;
        let disabled = || err(10188, "message schedules is disabled");
        let zone = text(headers, TIME_ZONE);
        if let Some(zone) = &zone {
            if zone.is_empty() {
                return Err(err(10223, "message schedules time zone is invalid"));
            }
            if !UTC_NAMES.contains(&zone.as_str()) {
                return Err(err(
                    10223,
                    &format!(
                        "message schedules time zone {zone:?} is not supported by jetlog: cron schedules run in UTC"
                    ),
                ));
            }
        }
        let pattern = match text(headers, SCHEDULE).map(|p| parse_pattern(&p)) {
            None | Some(Ok(None)) => {
                if zone.is_some() && !allowed {
                    return Err(disabled());
                }
                self.check_manual_purge(subject, headers)?;
                return Ok(ScheduleHeaders::Plain);
            }
            Some(Err(_)) => return Err(err(10189, "message schedules pattern is invalid")),
            Some(Ok(Some(pattern))) => pattern,
        };
        if zone.is_some() && !matches!(pattern, Pattern::Cron(_)) {
            return Err(err(10189, "message schedules pattern is invalid"));
        }
        if !allowed {
            return Err(disabled());
        }
        let ttl = header_value(headers, SCHEDULE_TTL);
        if ttl.is_some_and(|t| parse_ttl(t).is_none()) {
            return Err(err(10191, "message schedules invalid per-message TTL"));
        }
        if header_value(headers, SCHEDULE_ROLLUP).is_some_and(|r| r != b"sub") {
            return Err(err(10192, "message schedules invalid rollup"));
        }
        if ttl.is_some() && !self.config().allow_msg_ttl {
            return Err(err(10166, "per-message TTL is disabled"));
        }
        let bad_target = || err(10190, "message schedules target is invalid");
        let bad_source = || err(10203, "message schedules source is invalid");
        let target = text(headers, TARGET).ok_or_else(bad_target)?;
        if !is_valid_literal_subject(&target) || target.as_bytes() == subject {
            return Err(bad_target());
        }
        let source = text(headers, SOURCE);
        if let Some(source) = &source {
            if !is_valid_literal_subject(source)
                || *source == target
                || source.as_bytes() == subject
            {
                return Err(bad_source());
            }
        }
        if !self.captures(&target) {
            return Err(bad_target());
        }
        if source.as_deref().is_some_and(|s| !self.captures(s)) {
            return Err(bad_source());
        }
        match header_value(headers, super::stream::header::ROLLUP) {
            None => Ok(ScheduleHeaders::Schedule { add_rollup: true }),
            Some(b"sub") => Ok(ScheduleHeaders::Schedule { add_rollup: false }),
            Some(_) => Err(err(10192, "message schedules invalid rollup")),
        }
    }

    /// `Nats-Scheduler` with `Nats-Schedule-Next: purge` from a client fires nothing and
    /// purges the named schedule; any other use of the two headers is nats-server's 10212,
    /// whether the stream allows schedules or not.
    fn check_manual_purge(&self, subject: &[u8], headers: &[u8]) -> Result<(), ApiError> {
        let scheduler = text(headers, SCHEDULER);
        let next = header_value(headers, NEXT);
        if scheduler.is_none() && next.is_none() {
            return Ok(());
        }
        let invalid = || err(10212, "message schedules invalid scheduler");
        let (Some(scheduler), Some(b"purge")) = (scheduler, next) else {
            return Err(invalid());
        };
        if scheduler.is_empty() {
            return Ok(());
        }
        if !is_literal(&scheduler) || scheduler.as_bytes() == subject {
            return Err(invalid());
        }
        let last = self.log.last_for_subject(&scheduler).map_err(store_error)?;
        if last.is_some_and(|m| header_value(&m.headers, SCHEDULE).is_none()) {
            return Err(invalid());
        }
        if !self.config().allow_msg_schedules {
            return Err(err(10188, "message schedules is disabled"));
        }
        Ok(())
    }

    /// Whether a literal subject is one of the stream's.
    fn captures(&self, subject: &str) -> bool {
        self.config()
            .subjects
            .iter()
            .any(|pattern| subject_matches(pattern, subject))
    }

    /// Follows a stored message into the index: a schedule starts (or replaces the subject's),
    /// a client's purge request removes one, and a plain message on a schedule's subject
    /// cancels it. The messages a schedule produces pass through without effect.
    pub(super) fn schedule_stored(
        &mut self,
        seq: u64,
        subject: &str,
        headers: &[u8],
        ts_ns: u64,
        now_ns: u64,
    ) {
        if !self.config().allow_msg_schedules || self.producing {
            return;
        }
        if let Some(Ok(Some(pattern))) = text(headers, SCHEDULE).map(|p| parse_pattern(&p)) {
            if let Some(next_ns) = pattern.first(ts_ns as i64, now_ns as i64) {
                let entry = Entry { seq, next_ns };
                self.schedules.by_subject.insert(subject.to_owned(), entry);
            }
            return;
        }
        match text(headers, SCHEDULER) {
            Some(scheduler) if header_value(headers, NEXT) == Some(b"purge") => {
                if !scheduler.is_empty() {
                    self.schedules.by_subject.remove(&scheduler);
                    self.purge_subject(&scheduler, seq);
                }
            }
            Some(_) => {}
            None => {
                self.schedules.by_subject.remove(subject);
            }
        }
    }

    fn purge_subject(&mut self, subject: &str, up_to_seq: u64) {
        let request = PurgeRequest {
            filter: Some(subject.to_owned()),
            up_to_seq: Some(up_to_seq),
            keep: None,
        };
        if let Err(e) = self.log.purge(&request) {
            tracing::warn!(stream = %self.config().name, subject, "schedule purge failed: {e}");
        }
    }

    /// Stores a message for every schedule that is due, then moves each to its next firing;
    /// an `@at` schedule is purged once it has fired.
    pub(super) fn fire_schedules(&mut self, now_ns: u64) -> Result<(), ApiError> {
        let now = now_ns as i64;
        let mut due: Vec<(String, Entry)> = self
            .schedules
            .by_subject
            .iter()
            .filter(|(_, e)| e.next_ns <= now)
            .map(|(s, e)| (s.clone(), *e))
            .collect();
        due.sort_by_key(|(_, e)| e.seq);
        for (subject, entry) in due {
            self.schedules.by_subject.remove(&subject);
            let Some(msg) = self.log.get(entry.seq).map_err(store_error)? else {
                continue; // deleted, purged or aged out: cancelled
            };
            let pattern = match text(&msg.headers, SCHEDULE).map(|p| parse_pattern(&p)) {
                Some(Ok(Some(pattern))) => pattern,
                _ => continue,
            };
            let Some(target) = text(&msg.headers, TARGET) else {
                continue;
            };
            let next = pattern.after_firing(entry.next_ns, now);
            let (headers, payload) = match text(&msg.headers, SOURCE)
                .map(|s| self.log.last_for_subject(&s))
                .transpose()
                .map_err(store_error)?
                .flatten()
            {
                Some(sample) => (sample.headers, sample.payload),
                None => (msg.headers.clone(), msg.payload.clone()),
            };
            let produced = Publish {
                subject: Bytes::from(target.clone()),
                reply: None,
                headers: Some(produced_headers(&headers, &subject, next, &msg.headers)),
                payload,
            };
            self.producing = true;
            let ack = self.process(&[produced], now_ns).remove(0);
            self.producing = false;
            match ack.stored_seq() {
                Some(seq) => self.upkeep_stored.push((seq, target)),
                None => tracing::warn!(
                    stream = %self.config().name,
                    schedule = %subject,
                    "scheduled message not stored: {ack:?}"
                ),
            }
            match next {
                Some(next_ns) => {
                    let entry = Entry {
                        seq: entry.seq,
                        next_ns,
                    };
                    self.schedules.by_subject.insert(subject, entry);
                }
                None => self.purge_subject(&subject, self.log.last_seq()),
            }
        }
        Ok(())
    }

    /// Reads the schedules back from the stored messages after a restart.
    pub(super) fn rebuild_schedules(&mut self, now_ns: u64) -> Result<(), ApiError> {
        self.schedules = Schedules::default();
        if !self.config().allow_msg_schedules {
            return Ok(());
        }
        self.each_stored_from(1, |stream, msg| {
            stream.schedule_stored(msg.seq, &msg.subject, &msg.headers, msg.ts_ns, now_ns);
        })
    }
}

/// The headers of a produced message: the source's own, without the schedule and batch
/// headers, the expectations, the message id, TTL and rollup; then where it came from, its next firing
/// (`purge` for a one-off), and the schedule's TTL and rollup for it.
fn produced_headers(source: &[u8], schedule: &str, next: Option<i64>, own: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(source.len() + 96);
    out.put_slice(b"NATS/1.0\r\n");
    for line in source.split_inclusive(|b| *b == b'\n').skip(1) {
        let name = line.split(|b| *b == b':').next().unwrap_or(line);
        // The batch headers go too (as nats-server drops them from sourced copies): a
        // produced message stored last with a batch id and no commit would read as a torn
        // batch when the stream next opens.
        let dropped = name.starts_with(b"Nats-Schedule")
            || name.starts_with(b"Nats-Batch-")
            || name.starts_with(b"Nats-Expected-")
            || name == b"Nats-Msg-Id"
            || name == b"Nats-TTL"
            || name == b"Nats-Rollup";
        if !dropped && line != b"\r\n" {
            out.put_slice(line);
        }
    }
    let mut add = |name: &[u8], value: &[u8]| {
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    };
    add(SCHEDULER, schedule.as_bytes());
    match next {
        Some(ns) => add(NEXT, format_rfc3339(Some(ns)).as_bytes()),
        None => add(NEXT, b"purge"),
    }
    if let Some(ttl) = header_value(own, SCHEDULE_TTL) {
        add(b"Nats-TTL", ttl);
    }
    if let Some(rollup) = header_value(own, SCHEDULE_ROLLUP) {
        add(b"Nats-Rollup", rollup);
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
#[path = "stream_schedules_tests.rs"]
mod tests;
