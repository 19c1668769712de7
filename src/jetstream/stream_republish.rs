//! A stream's subject transform (the subject a message is stored under) and republish (each
//! stored message published again on another subject), as nats-server 2.15.1 does them
//! (docs/stream-transform-facts.md §2–3).

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::stream::{store_error, Stream};
use super::stream_config::StreamConfig;
use super::time::format_rfc3339;
use crate::protocol::transform::SubjectTransform;
use crate::store::NewMessage;

/// A message to publish again after the batch that stored it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Republished {
    pub subject: Bytes,
    pub headers: Bytes,
    pub payload: Bytes,
}

/// The compiled `subject_transform` and `republish` of a configuration (already checked by
/// `StreamConfig::normalized`, so compiling cannot fail).
#[derive(Debug, Default)]
pub(super) struct Transforms {
    store_as: Option<SubjectTransform>,
    republish: Option<(SubjectTransform, bool)>,
}

impl Transforms {
    pub(super) fn of(config: &StreamConfig) -> Self {
        let store_as = config
            .subject_transform
            .as_ref()
            .filter(|t| !t.dest.is_empty())
            .and_then(|t| SubjectTransform::new(&t.src, &t.dest).ok());
        let republish = config
            .republish
            .as_ref()
            .filter(|r| !r.dest.is_empty())
            .and_then(|r| Some((SubjectTransform::new(&r.src, &r.dest).ok()?, r.headers_only)));
        Self {
            store_as,
            republish,
        }
    }
}

/// A subject's tokens are all non-empty: what may be published.
fn is_publishable(subject: &str) -> bool {
    !subject.is_empty() && subject.split('.').all(|t| !t.is_empty())
}

impl Stream {
    /// The subject a publish on `subject` is stored under.
    pub fn stored_subject<'a>(&self, subject: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(transform) = &self.transforms.store_as else {
            return Cow::Borrowed(subject);
        };
        match std::str::from_utf8(subject)
            .ok()
            .and_then(|s| transform.apply(s))
        {
            Some(mapped) => Cow::Owned(mapped.into_bytes()),
            None => Cow::Borrowed(subject),
        }
    }

    /// Before a batch is appended: each republished subject's last sequence, as
    /// `Nats-Last-Sequence` must show it. `None` without republish.
    pub(super) fn republish_lasts(
        &self,
        messages: &[NewMessage],
    ) -> Result<Option<HashMap<String, u64>>, super::error::ApiError> {
        if self.transforms.republish.is_none() {
            return Ok(None);
        }
        let mut lasts = HashMap::new();
        for msg in messages {
            if !lasts.contains_key(&msg.subject) {
                let last = self
                    .log
                    .last_for_subject(&msg.subject)
                    .map_err(store_error)?;
                lasts.insert(msg.subject.clone(), last.map_or(0, |m| m.seq));
            }
        }
        Ok(Some(lasts))
    }

    /// After `msg` was stored at `seq`: queues its republished copy, when it matches.
    pub(super) fn republish_stored(
        &mut self,
        seq: u64,
        msg: &NewMessage,
        lasts: &mut HashMap<String, u64>,
    ) {
        let previous = lasts.insert(msg.subject.clone(), seq).unwrap_or(0);
        let Some((transform, headers_only)) = &self.transforms.republish else {
            return;
        };
        let Some(subject) = transform.apply(&msg.subject).filter(|s| is_publishable(s)) else {
            return;
        };
        let mut headers = BytesMut::with_capacity(msg.headers.len() + 200);
        match msg
            .headers
            .strip_suffix(b"\r\n")
            .filter(|h| h.starts_with(b"NATS/1.0"))
        {
            Some(stored) => headers.extend_from_slice(stored),
            None => headers.extend_from_slice(b"NATS/1.0\r\n"),
        }
        let ts = format_rfc3339(i64::try_from(msg.ts_ns).ok());
        let name = &self.config().name;
        headers.extend_from_slice(
            format!(
                "Nats-Stream: {name}\r\nNats-Subject: {}\r\nNats-Sequence: {seq}\r\nNats-Time-Stamp: {ts}\r\nNats-Last-Sequence: {previous}\r\n",
                msg.subject
            )
            .as_bytes(),
        );
        if *headers_only {
            headers
                .extend_from_slice(format!("Nats-Msg-Size: {}\r\n", msg.payload.len()).as_bytes());
        }
        headers.extend_from_slice(b"\r\n");
        self.republished.push(Republished {
            subject: Bytes::from(subject),
            headers: headers.freeze(),
            payload: if *headers_only {
                Bytes::new()
            } else {
                msg.payload.clone()
            },
        });
    }

    /// The republished copies queued since the last call, to publish once they are durable.
    pub fn take_republished(&mut self) -> Vec<Republished> {
        std::mem::take(&mut self.republished)
    }
}
