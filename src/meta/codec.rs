//! Keys and value framing for the metadata trees.
//!
//! A value is one format-version byte followed by the prost encoding of the message. The
//! version byte lets the encoding change later (a different message, compression, a
//! checksum) while old records stay readable: readers dispatch on it, and refuse versions
//! newer than they know instead of misreading them.
//!
//! Keys: a stream is keyed by its name's bytes; a consumer by `stream NUL name`, so that all
//! consumers of a stream form one contiguous, name-sorted key range (`stream NUL`).

use prost::Message;

use super::error::{MetaError, NameKind};
use super::pb;

/// Format version written in front of every value. Bump it (and keep reading the old one)
/// whenever the bytes after it change meaning.
pub const FORMAT_VERSION: u8 = 1;

/// Longest stream or consumer name accepted, in bytes (nats-server's `JSMaxNameLen`).
pub const MAX_NAME_BYTES: usize = 255;

/// Largest encoded value accepted. Consumer state grows with its pending set (about 24 bytes
/// per unacknowledged message), so this bounds it near 170k pending messages, far above the
/// default `max_ack_pending` of 1000, while keeping one write (rewritten on every durable
/// ack) small enough to be cheap.
pub const MAX_VALUE_BYTES: usize = 4 << 20;

/// Separator between stream and consumer names in consumer keys.
const KEY_SEPARATOR: u8 = 0;

/// Checks that `name` can be stored as a key (or key part) and returns its bytes.
///
/// Only what the key layout needs is checked here (non-empty, bounded, no NUL); the
/// JetStream naming rules (no `.`, `*`, `>`, whitespace) belong to the jetstream layer.
pub(crate) fn validate_name(kind: NameKind, name: &str) -> Result<&[u8], MetaError> {
    let reason = if name.is_empty() {
        "name is empty"
    } else if name.len() > MAX_NAME_BYTES {
        "name is longer than 255 bytes"
    } else if name.as_bytes().contains(&KEY_SEPARATOR) {
        "name contains a NUL byte"
    } else {
        return Ok(name.as_bytes());
    };
    Err(MetaError::InvalidName {
        kind,
        name: name.to_owned(),
        reason,
    })
}

/// The name a consumer is stored under: `name`, or `durable_name` when `name` is empty
/// (legacy durable creates set only the latter).
pub fn consumer_name(config: &pb::ConsumerConfig) -> &str {
    if config.name.is_empty() {
        &config.durable_name
    } else {
        &config.name
    }
}

/// Key of a consumer (config or state): `stream NUL name`.
pub(crate) fn consumer_key(stream: &str, name: &str) -> Result<Vec<u8>, MetaError> {
    let mut key = consumer_prefix(stream)?;
    key.extend_from_slice(validate_name(NameKind::Consumer, name)?);
    Ok(key)
}

/// Prefix shared by the keys of all consumers of `stream`: `stream NUL`.
pub(crate) fn consumer_prefix(stream: &str) -> Result<Vec<u8>, MetaError> {
    let stream = validate_name(NameKind::Stream, stream)?;
    let mut key = Vec::with_capacity(stream.len() + 1 + MAX_NAME_BYTES);
    key.extend_from_slice(stream);
    key.push(KEY_SEPARATOR);
    Ok(key)
}

/// Frames `msg` as `[FORMAT_VERSION][prost bytes]`, refusing values over `MAX_VALUE_BYTES`.
pub fn encode<M: Message>(tree: &'static str, msg: &M) -> Result<Vec<u8>, MetaError> {
    let len_bytes = 1 + msg.encoded_len();
    if len_bytes > MAX_VALUE_BYTES {
        return Err(MetaError::ValueTooLarge {
            tree,
            len_bytes,
            max_bytes: MAX_VALUE_BYTES,
        });
    }
    let mut value = Vec::with_capacity(len_bytes);
    value.push(FORMAT_VERSION);
    msg.encode_raw(&mut value);
    Ok(value)
}

/// Reverses [`encode`]. Never panics: bad bytes become `Corrupt`, a newer format
/// `UnsupportedVersion`.
pub fn decode<M: Message + Default>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<M, MetaError> {
    let corrupt = |reason: String| MetaError::Corrupt {
        tree,
        key: key.to_vec(),
        reason,
    };
    match value.split_first() {
        None => Err(corrupt("empty value".to_owned())),
        Some((&FORMAT_VERSION, body)) => {
            M::decode(body).map_err(|e| corrupt(format!("protobuf decode failed: {e}")))
        }
        Some((&version, _)) if version > FORMAT_VERSION => Err(MetaError::UnsupportedVersion {
            tree,
            key: key.to_vec(),
            version,
            supported: FORMAT_VERSION,
        }),
        Some((&version, _)) => Err(corrupt(format!("unknown format version {version}"))),
    }
}

/// Checks the invariants a consumer state must hold before it is written and after it is
/// read. Only stream sequences are checked for pending entries: a redelivered message gets a
/// new consumer sequence, so pending consumer sequences are not ordered by stream sequence.
pub(crate) fn check_consumer_state(state: &pb::ConsumerState) -> Result<(), &'static str> {
    let zero = pb::SequenceInfo::default();
    let delivered = state.delivered.as_ref().unwrap_or(&zero);
    let floor = state.ack_floor.as_ref().unwrap_or(&zero);
    if floor.stream_seq > delivered.stream_seq {
        return Err("ack floor stream sequence is past the delivered stream sequence");
    }
    if floor.consumer_seq > delivered.consumer_seq {
        return Err("ack floor consumer sequence is past the delivered consumer sequence");
    }
    let mut previous = floor.stream_seq;
    for pending in &state.pending {
        if pending.stream_seq <= previous {
            return Err("pending entries are not strictly increasing above the ack floor");
        }
        previous = pending.stream_seq;
    }
    if previous > delivered.stream_seq {
        return Err("a pending entry is past the delivered stream sequence");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_a_name_is_rejected() {
        let err = consumer_key("orders", "a\0b").unwrap_err();
        assert!(matches!(
            err,
            MetaError::InvalidName {
                kind: NameKind::Consumer,
                ..
            }
        ));
        let err = consumer_key("or\0ders", "a").unwrap_err();
        assert!(matches!(
            err,
            MetaError::InvalidName {
                kind: NameKind::Stream,
                ..
            }
        ));
    }

    #[test]
    fn empty_and_overlong_names_are_rejected() {
        assert!(validate_name(NameKind::Stream, "").is_err());
        assert!(validate_name(NameKind::Stream, &"x".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(validate_name(NameKind::Stream, &"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn consumer_key_is_stream_nul_name() {
        assert_eq!(consumer_key("S", "c").unwrap(), b"S\0c".to_vec());
    }

    #[test]
    fn value_starts_with_format_version() {
        let value = encode("streams", &pb::StreamConfig::default()).unwrap();
        assert_eq!(value, vec![FORMAT_VERSION]);
        let back: pb::StreamConfig = decode("streams", b"k", &value).unwrap();
        assert_eq!(back, pb::StreamConfig::default());
    }

    #[test]
    fn newer_version_is_unsupported_not_corrupt() {
        let err = decode::<pb::StreamConfig>("streams", b"k", &[FORMAT_VERSION + 1]).unwrap_err();
        assert!(matches!(
            err,
            MetaError::UnsupportedVersion { version: 2, .. }
        ));
        let err = decode::<pb::StreamConfig>("streams", b"k", &[0]).unwrap_err();
        assert!(matches!(err, MetaError::Corrupt { .. }));
        let err = decode::<pb::StreamConfig>("streams", b"k", &[]).unwrap_err();
        assert!(matches!(err, MetaError::Corrupt { .. }));
    }

    #[test]
    fn truncated_protobuf_is_corrupt() {
        // Field 1 (string) announcing 100 bytes, followed by 2.
        let err =
            decode::<pb::StreamConfig>("streams", b"k", &[1, 0x0a, 100, b'a', b'b']).unwrap_err();
        assert!(matches!(
            err,
            MetaError::Corrupt {
                tree: "streams",
                ..
            }
        ));
    }

    #[test]
    fn ack_floor_past_delivered_is_refused() {
        let seq = |c, s| {
            Some(pb::SequenceInfo {
                consumer_seq: c,
                stream_seq: s,
                last_active_unix_ns: None,
            })
        };
        let mut state = pb::ConsumerState {
            delivered: seq(5, 10),
            ack_floor: seq(3, 7),
            ..Default::default()
        };
        assert!(check_consumer_state(&state).is_ok());
        state.ack_floor = seq(3, 11);
        assert!(check_consumer_state(&state).is_err());
        state.ack_floor = seq(6, 7);
        assert!(check_consumer_state(&state).is_err());
        state.ack_floor = seq(3, 7);
        let pending = |s| pb::PendingAck {
            stream_seq: s,
            consumer_seq: 4,
            timestamp_unix_ns: 1,
            msg_ts_unix_ns: 0,
        };
        state.pending = vec![pending(8), pending(10)];
        assert!(check_consumer_state(&state).is_ok());
        state.pending = vec![pending(10), pending(8)];
        assert!(check_consumer_state(&state).is_err());
        state.pending = vec![pending(7)];
        assert!(check_consumer_state(&state).is_err());
        state.pending = vec![pending(11)];
        assert!(check_consumer_state(&state).is_err());
    }
}
