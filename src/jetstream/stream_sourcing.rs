//! How a stream takes in its sources' messages and keeps where each has got to (see
//! `stream_sources` for the config and `server::jetstream::source_pump` for the reading).

use std::collections::HashMap;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::api_types::PubAck;
use super::error::ApiError;
use super::stream::{store_error, Stream};
use super::stream_origin::OriginSpec;
use super::stream_sources::{Source, STREAM_SOURCE};
use crate::protocol::headers::{extend_block, header_value};
use crate::protocol::Publish;
use crate::store::StoredMessage;

/// Where each source has got to, beside the log (see `SavedPositions`).
const STATE_FILE: &str = "sources.state";
/// Messages read per step while the positions are looked for in the headers.
const SCAN_BATCH: usize = 1024;
/// How long a source whose message the stream refused (a discard-new limit) waits before it
/// tries again, as nats-server's retry does.
const REFUSED_RETRY_NS: u64 = 2_000_000_000;

/// Where a source with no known position starts, given the sourcing stream's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStart {
    /// At this origin sequence.
    At(u64),
    /// By the start options, no earlier than this time (the stream's last message) when one
    /// is given.
    Fresh { not_before_ns: Option<u64> },
}

/// An origin's identity as nats-server gives it: a hash of its creation time, so that a
/// stream deleted and created again under the same name is told apart.
pub fn origin_ident(created_ns: i64) -> String {
    crate::raft::types::peer_id(&super::time::format_rfc3339(Some(created_ns)))
}

impl Stream {
    /// Whether the stream takes in other streams (the timer then pumps it).
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// The sources' specs, by index name, for the pump.
    pub fn source_specs(&self) -> Vec<(String, OriginSpec)> {
        self.sources.specs()
    }

    /// Where the source `iname` reads next, and the origin identity it last saw; `None`
    /// while it waits after a refusal.
    pub fn source_start(&self, iname: &str, now_ns: u64) -> Option<(SourceStart, Option<String>)> {
        let source = self.sources.get(iname)?;
        if source.retry_at_ns.is_some_and(|at| now_ns < at) {
            return None;
        }
        let start = match source.next {
            Some(next) => SourceStart::At(next),
            None => {
                let state = self.log.state(false).ok();
                // A purged stream still knows its last message's time.
                let last_ts = state
                    .as_ref()
                    .filter(|s| s.last_seq > 0)
                    .map(|s| s.last_ts_ns);
                let purged = state.as_ref().is_some_and(|s| s.first_seq > 1);
                let by_time = source.spec.opt_start_time.is_some();
                let not_before_ns = match (source.spec.opt_start_seq > 0, by_time, purged) {
                    _ if source.recreated => None,
                    (true, _, _) => None,
                    (false, true, _) | (false, false, true) => last_ts,
                    (false, false, false) => None,
                };
                SourceStart::Fresh { not_before_ns }
            }
        };
        Some((start, source.ident.clone()))
    }

    /// The origin of `iname` cannot be read: it does not exist, or is not one jetlog can copy.
    pub fn source_origin_unreadable(&mut self, iname: &str, why: ApiError) {
        if let Some(source) = self.sources.get_mut(iname) {
            source.error = Some(why);
        }
    }

    /// Stores `msgs`, read from the origin (identity `ident`) at `from` on, at new sequences
    /// with their `Nats-Stream-Source` header. Stops at a message the stream refuses (a
    /// discard-new limit): it is read again on a later tick. A sourced duplicate is skipped.
    /// A changed identity means the origin was created anew: it is read from its start.
    /// Whether everything given was taken (not after a refusal).
    #[allow(clippy::too_many_arguments)]
    pub fn source_store(
        &mut self,
        iname: &str,
        from: u64,
        msgs: &[StoredMessage],
        lag: u64,
        ident: &str,
        now_ns: u64,
    ) -> Result<bool, ApiError> {
        let Some(source) = self.sources.get_mut(iname) else {
            return Ok(false);
        };
        source.error = None;
        source.last_contact_ns = Some(now_ns);
        if source.ident.as_deref().is_some_and(|seen| seen != ident) {
            tracing::info!(source = %iname, "source stream was created anew: reading it from its start");
            source.next = None;
            source.recreated = true;
            source.ident = Some(ident.to_string());
            source.last_taken = None;
            self.save_source_positions()?;
            return Ok(false);
        }
        let changed = source.ident.as_deref() != Some(ident) || source.next != Some(from);
        source.ident = Some(ident.to_string());
        if source.next.is_some_and(|next| next != from) {
            return Ok(false); // read before the position moved: read again
        }
        source.next = Some(from);
        source.recreated = false;
        let publishes: Vec<Publish> = msgs.iter().map(|m| source.sourced(m, ident)).collect();
        self.producing = true;
        self.sourcing = true;
        let acks = self.process(&publishes, now_ns);
        self.producing = false;
        self.sourcing = false;
        let mut next = from;
        let mut refused = None;
        for ((msg, publish), ack) in msgs.iter().zip(&publishes).zip(acks) {
            match ack {
                PubAck::Duplicate { .. } => {}
                PubAck::Failed(err) => {
                    refused = Some(err);
                    break;
                }
                ack => {
                    if let Some(seq) = ack.stored_seq() {
                        let subject = self.stored_subject(&publish.subject);
                        let subject = String::from_utf8_lossy(&subject).into_owned();
                        self.upkeep_stored.push((seq, subject));
                    }
                }
            }
            next = msg.seq + 1;
        }
        self.sync(std::time::Instant::now())?;
        let Some(source) = self.sources.get_mut(iname) else {
            return Ok(false);
        };
        source.next = Some(next);
        if next > from {
            source.last_taken = Some(next - 1);
        }
        match &refused {
            Some(err) => {
                tracing::debug!(source = %iname, error = %err, "sourced message refused; retried later");
                source.retry_at_ns = Some(now_ns.saturating_add(REFUSED_RETRY_NS));
            }
            None => {
                source.retry_at_ns = None;
                source.lag = lag;
            }
        }
        if changed || next > from {
            self.save_source_positions()?;
        }
        Ok(refused.is_none())
    }

    /// The `sources` block of `STREAM.INFO`, in config order.
    pub fn sources_info(&self, now_ns: u64) -> Option<Value> {
        if self.sources.is_empty() {
            return None;
        }
        let entries = self.sources.entries().iter().map(|s| s.info(now_ns));
        Some(Value::Array(entries.collect()))
    }

    /// Sources change with an update: those kept keep their positions, added ones find theirs.
    pub(super) fn update_sources(&mut self) -> Result<(), ApiError> {
        let old = std::mem::take(&mut self.sources);
        self.sources = old.reconciled(self.config());
        self.recover_source_positions()?;
        self.save_source_positions()
    }

    /// Finds where each source without a position has got to. The state file counts when the
    /// log still reaches the sequence it was written at: its positions stand, brought up to
    /// date by the headers of the messages after that. Sources it does not name (or a file
    /// the log falls short of, after a power loss under a lazy sync) are found by their last
    /// header, walking the log backwards, as nats-server does without its `sources.db`.
    pub(super) fn recover_source_positions(&mut self) -> Result<(), ApiError> {
        if self.sources.is_empty() {
            return Ok(());
        }
        let saved = read_state(self.dir());
        let last_seq = self.log.last_seq();
        let trusted = saved.valid_to > 0 && saved.valid_to <= last_seq;
        let mut from_file = Vec::new();
        let mut scan_back = Vec::new();
        for source in self.sources.entries_mut() {
            if source.next.is_some() {
                continue;
            }
            match saved.sources.get(&source.iname).filter(|_| trusted) {
                Some((next, ident)) => {
                    source.next = Some(*next);
                    source.ident = Some(ident.clone()).filter(|i| !i.is_empty());
                    from_file.push(source.iname.clone());
                }
                None => scan_back.push(source.iname.clone()),
            }
        }
        // The tail since the file was written: each header there is newer than the file.
        let mut at = saved.valid_to.saturating_add(1);
        while !from_file.is_empty() && trusted && at <= last_seq {
            let batch = self.log.scan(at, &[], SCAN_BATCH).map_err(store_error)?;
            let Some(last) = batch.last() else {
                break;
            };
            at = last.seq.saturating_add(1);
            for msg in &batch {
                let Some((iname, seq, ident)) = parse_source_header(&msg.headers) else {
                    continue;
                };
                if !from_file.contains(&iname) {
                    continue;
                }
                if let Some(source) = self.sources.get_mut(&iname) {
                    source.next = Some(seq.saturating_add(1));
                    if ident.is_some() {
                        source.ident = ident;
                    }
                }
            }
        }
        let found = self.scan_source_headers(scan_back)?;
        for (iname, (next, ident)) in found {
            if let Some(source) = self.sources.get_mut(&iname) {
                source.next = Some(next);
                source.ident = ident;
            }
        }
        for source in self.sources.entries_mut() {
            if source.last_taken.is_none() {
                source.last_taken = source.next.filter(|n| *n > 1).map(|n| n - 1);
            }
        }
        Ok(())
    }

    /// The last header of each wanted index name, walking the log backwards.
    fn scan_source_headers(
        &self,
        mut wanted: Vec<String>,
    ) -> Result<HashMap<String, (u64, Option<String>)>, ApiError> {
        let mut found = HashMap::new();
        let state = self.log.state(false).map_err(store_error)?;
        let mut hi = state.last_seq;
        while !wanted.is_empty() && hi >= state.first_seq.max(1) && state.msgs > 0 {
            let lo = hi.saturating_sub(SCAN_BATCH as u64 - 1).max(1);
            let batch = self.log.scan(lo, &[], SCAN_BATCH).map_err(store_error)?;
            for msg in batch.iter().rev().filter(|m| m.seq <= hi) {
                let Some((iname, seq, ident)) = parse_source_header(&msg.headers) else {
                    continue;
                };
                if let Some(at) = wanted.iter().position(|w| *w == iname) {
                    wanted.swap_remove(at);
                    found.insert(iname, (seq.saturating_add(1), ident));
                }
            }
            if lo <= state.first_seq.max(1) {
                break;
            }
            hi = lo - 1;
        }
        Ok(found)
    }

    /// Writes the positions beside the log (file storage only): a temporary file, synced,
    /// then renamed over the old one.
    fn save_source_positions(&self) -> Result<(), ApiError> {
        if self.config().storage != super::stream_config::Storage::File {
            return Ok(());
        }
        if self.sources.is_empty() {
            // No sources, no positions: a source added again later finds its own in the headers.
            return match std::fs::remove_file(self.dir().join(STATE_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(ApiError::store_failed(e))
                }
                _ => Ok(()),
            };
        }
        let sources = self
            .sources
            .entries()
            .iter()
            .filter_map(|s| {
                let ident = s.ident.clone().unwrap_or_default();
                Some((s.iname.clone(), (s.next?, ident)))
            })
            .collect();
        let state = SavedPositions {
            valid_to: self.log.last_seq(),
            sources,
        };
        let body = serde_json::to_vec(&state).map_err(ApiError::store_failed)?;
        let tmp = self.dir().join(format!("{STATE_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&body)?;
            file.sync_data()?;
            std::fs::rename(&tmp, self.dir().join(STATE_FILE))
        };
        write().map_err(ApiError::store_failed)
    }
}

/// What `sources.state` holds: each source's next origin sequence and origin identity, and
/// the stream's last sequence when it was written.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SavedPositions {
    valid_to: u64,
    sources: HashMap<String, (u64, String)>,
}

/// The saved positions, or none when the file is missing or unreadable (the headers then
/// tell).
fn read_state(dir: &Path) -> SavedPositions {
    std::fs::read(dir.join(STATE_FILE))
        .ok()
        .and_then(|body| serde_json::from_slice(&body).ok())
        .unwrap_or_default()
}

/// `(index name, origin sequence, identity)` of a `Nats-Stream-Source` header in nats-server's
/// 2.10+ form: `<stream> <seq> <filters> <dests> <subject>[ <ident>]`.
pub fn parse_source_header(headers: &[u8]) -> Option<(String, u64, Option<String>)> {
    let value = std::str::from_utf8(header_value(headers, STREAM_SOURCE)?).ok()?;
    let fields: Vec<&str> = value.split(' ').collect();
    if fields.len() < 4 {
        return None;
    }
    let seq = fields[1].parse().ok()?;
    let iname = format!("{} {} {}", fields[0], fields[2], fields[3]);
    Some((iname, seq, fields.get(5).map(|s| s.to_string())))
}

impl Source {
    /// The message as the sourcing stream stores it: the origin's headers less expectations,
    /// batch headers and an earlier `Nats-Stream-Source`, then this source's header last.
    fn sourced(&self, msg: &StoredMessage, ident: &str) -> Publish {
        // The index name's first part: the origin's name, and for a source in another
        // account `:<hash8(api)>`, as nats-server writes it.
        let origin = self.iname.split(' ').next().unwrap_or(&self.spec.name);
        let value = format!(
            "{origin} {} {} {} {ident}",
            msg.seq, self.header_mid, msg.subject
        );
        let mut kept = BytesMut::with_capacity(msg.headers.len() + value.len() + 32);
        for (i, line) in msg.headers.split_inclusive(|b| *b == b'\n').enumerate() {
            let name = line.split(|b| *b == b':').next().unwrap_or(line);
            let dropped = name == STREAM_SOURCE
                || name.starts_with(b"Nats-Expected-")
                || name.starts_with(b"Nats-Batch-");
            if i == 0 || !dropped {
                kept.put_slice(line);
            }
        }
        let mut block = BytesMut::with_capacity(kept.len() + value.len() + 32);
        extend_block(
            &mut block,
            &kept,
            &[("Nats-Stream-Source", value.as_bytes())],
        );
        Publish {
            subject: Bytes::from(self.stored_subject(&msg.subject)),
            reply: None,
            headers: Some(block.freeze()),
            payload: msg.payload.clone(),
        }
    }

    /// The entry of `STREAM.INFO`'s `sources` for this source.
    fn info(&self, now_ns: u64) -> Value {
        let active = self
            .last_contact_ns
            .map_or(-1, |at| now_ns.saturating_sub(at) as i64);
        let mut info = json!({"name": self.spec.name});
        if let Some((api, deliver)) = self.spec.external_prefixes() {
            info["external"] = json!({"api": api, "deliver": deliver});
        }
        info["lag"] = json!(self.lag);
        if let Some(taken) = self.last_taken.filter(|t| *t > 0) {
            info["seq"] = json!(taken);
        }
        info["active"] = json!(active);
        if let Some(error) = &self.error {
            info["error"] = json!(error);
        }
        if !self.spec.filter_subject.is_empty() {
            info["filter_subject"] = json!(self.spec.filter_subject);
        }
        if !self.spec.subject_transforms.is_empty() {
            info["subject_transforms"] = json!(self.spec.subject_transforms);
        }
        info
    }
}
