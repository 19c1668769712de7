//! JSON bodies of the stream API's requests and responses, with nats-server's field names.
//! Responses are built as `serde_json::Value`-free structs so the field set is fixed by type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::stream_config::StreamConfig;

/// A stream's state as `STREAM.INFO` reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    /// RFC 3339, the zero time when the stream is empty.
    pub first_ts: String,
    pub last_seq: u64,
    pub last_ts: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub num_subjects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub num_deleted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Vec<u64>>,
    pub consumer_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Cluster information; a single server reports itself as leader.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfo {
    /// The cluster's name, when the server is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub leader: String,
    /// A replicated stream's Raft group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_group: Option<String>,
    /// A replicated stream's other peers, as its leader sees them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<PeerInfo>>,
}

/// One peer of a replicated stream's group, as nats-server's `PeerInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub name: String,
    /// Whether it has every entry the leader has.
    pub current: bool,
    /// Not reachable now (no route to its server); left out when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Nanoseconds since it last answered the leader.
    pub active: u64,
    /// Entries it is behind the leader.
    #[serde(skip_serializing_if = "is_zero")]
    pub lag: u64,
    pub peer: String,
}

/// `STREAM.INFO`, `STREAM.CREATE` and `STREAM.UPDATE` bodies (less `type` and paging).
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub config: StreamConfig,
    pub created: String,
    pub state: StreamState,
    /// Left out of create and update replies, as a single nats-server leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// A mirror's view of its origin: `name`, `lag`, `active`, and `error` when it cannot
    /// read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    /// Each source's `name`, `lag`, `seq`, `active`, and `error` when it cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<serde_json::Value>,
    pub ts: String,
}

/// Options of `STREAM.INFO`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamInfoRequest {
    pub deleted_details: bool,
    pub subjects_filter: Option<String>,
    pub offset: usize,
}

/// Options of `STREAM.NAMES` and `STREAM.LIST`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamListRequest {
    pub offset: usize,
    pub subject: Option<String>,
}

/// Body of `STREAM.PURGE`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PurgeRequestJson {
    pub filter: Option<String>,
    pub seq: Option<u64>,
    pub keep: Option<u64>,
}

/// Body of `STREAM.MSG.GET` and of `DIRECT.GET` with a JSON request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MsgGetRequest {
    pub seq: Option<u64>,
    pub last_by_subj: Option<String>,
    pub next_by_subj: Option<String>,
    pub start_time: Option<String>,
    pub batch: Option<i64>,
    pub max_bytes: Option<i64>,
    pub multi_last: Option<Vec<String>>,
    pub up_to_seq: Option<u64>,
    pub up_to_time: Option<String>,
    pub no_hdr: bool,
}

/// Body of `STREAM.MSG.DELETE`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MsgDeleteRequest {
    pub seq: u64,
    pub no_erase: bool,
}

/// A stored message as `STREAM.MSG.GET` returns it (headers and data in base64).
#[derive(Debug, Clone, Serialize)]
pub struct ApiMessage {
    pub subject: String,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdrs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub time: String,
}

/// The acknowledgement of a stored (or refused) publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubAck {
    Stored {
        seq: u64,
    },
    /// Stored on a counter stream: `val` is the subject's new total.
    Counted {
        seq: u64,
        val: String,
    },
    Duplicate {
        seq: u64,
    },
    /// A message of an atomic batch taken into staging: the reply is empty (nothing is
    /// stored until the commit).
    Staged,
    /// An atomic batch committed: `count` messages stored, the last at `seq`.
    Batch {
        seq: u64,
        batch: String,
        count: u64,
    },
    /// A message of a fast-ingest batch: what the publisher hears on the batch's reply
    /// subject instead of a PubAck (flow acks, gaps, errors, the final PubAck; often
    /// nothing), and where it was stored if it was.
    Fast {
        stored: Option<u64>,
        replies: Vec<bytes::Bytes>,
    },
    Failed(ApiError),
}

impl PubAck {
    /// The sequence the message was stored at, when it was.
    pub fn stored_seq(&self) -> Option<u64> {
        match self {
            Self::Stored { seq } | Self::Counted { seq, .. } => Some(*seq),
            Self::Fast { stored, .. } => *stored,
            _ => None,
        }
    }

    /// The JSON nats-server sends: `{"stream","seq"[,"duplicate":true]}`, or the error with
    /// `stream` and `seq` 0 so that clients which require `stream` still parse it.
    pub fn to_json(&self, stream: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_json(&mut out, &json_string(stream));
        out
    }

    /// Appends the JSON to `out`, with the stream name already encoded as a JSON string (the
    /// stream actor encodes it once per batch: acks are on the publish hot path).
    pub fn write_json(&self, out: &mut impl bytes::BufMut, stream_json: &str) {
        let mut digits = [0u8; 20];
        let counted;
        let batched;
        let (seq, tail): (u64, &[u8]) = match self {
            // Fast-batch replies are sent one by one (`send_pub_acks`).
            Self::Staged | Self::Fast { .. } => return,
            Self::Batch { seq, batch, count } => {
                batched = format!(",\"batch\":{},\"count\":{count}}}", json_string(batch));
                (*seq, batched.as_bytes())
            }
            Self::Stored { seq } => (*seq, b"}"),
            Self::Counted { seq, val } => {
                counted = format!(",\"val\":{}}}", json_string(val));
                (*seq, counted.as_bytes())
            }
            Self::Duplicate { seq } => (*seq, b",\"duplicate\":true}"),
            Self::Failed(err) => {
                out.put_slice(b"{\"error\":");
                out.put_slice(serde_json::to_string(err).unwrap_or_default().as_bytes());
                out.put_slice(b",\"stream\":");
                out.put_slice(stream_json.as_bytes());
                out.put_slice(b",\"seq\":0}");
                return;
            }
        };
        // Written without `fmt`: one of these per publish, on the stream actor.
        out.put_slice(b"{\"stream\":");
        out.put_slice(stream_json.as_bytes());
        out.put_slice(b",\"seq\":");
        out.put_slice(crate::protocol::encode::decimal_digits(seq, &mut digits));
        out.put_slice(tail);
    }
}

/// `text` as a JSON string literal, quotes and escapes included.
pub fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// Standard base64 with padding, as Go's `[]byte` JSON encoding uses.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes a request body the way Go's `encoding/json` does for nats-server: a `null` field
/// means the zero value. Clients send `"consumer_limits":null` and the like, which serde would
/// otherwise refuse for non-`Option` fields.
pub fn from_go_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if value.is_null() {
        // A body of `null` leaves every field at its zero value, as in Go.
        value = serde_json::Value::Object(serde_json::Map::new());
    }
    strip_nulls(&mut value);
    serde_json::from_value(value)
}

/// As [`from_go_json`], but a field the type does not have is an error worded as Go's
/// `DisallowUnknownFields` words it (`json: unknown field "colour"`), which is what
/// nats-server answers under `jetstream { strict: true }`.
pub fn from_go_json_strict<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if value.is_null() {
        value = serde_json::Value::Object(serde_json::Map::new());
    }
    strip_nulls(&mut value);
    let mut unknown = None;
    let decoded: T = serde_ignored::deserialize(value, |path| {
        if unknown.is_none() {
            unknown = Some(last_field(&path));
        }
    })?;
    match unknown {
        Some(field) => Err(serde::de::Error::custom(format!(
            "json: unknown field {field:?}"
        ))),
        None => Ok(decoded),
    }
}

/// The name of the field a path ends in (`config.colour` → `colour`).
fn last_field(path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Map { key, .. } => key.clone(),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => last_field(parent),
        other => other.to_string(),
    }
}

/// The first field of a request body that `T` does not know and that is set to something
/// other than its zero value (`null`, `false`, `0`, `""`, `[]`, `{}`), as a dotted path
/// (`config.direct`). nats-server ignores such fields unless it runs strict; jetlog refuses
/// them, because a setting it accepted but did not honour would mislead the client. Zero
/// values pass: newer clients send some of their fields' defaults.
pub fn first_unhonoured_setting<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    strip_nulls(&mut value);
    let mut ignored: Vec<Vec<String>> = Vec::new();
    let _: T = serde_ignored::deserialize(value.clone(), |path| {
        let mut keys = Vec::new();
        path_keys(&path, &mut keys);
        ignored.push(keys);
    })
    .ok()?;
    ignored.into_iter().find_map(|keys| {
        let mut at = &value;
        for key in &keys {
            at = match at {
                serde_json::Value::Object(map) => map.get(key)?,
                serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!is_zero_value(at)).then(|| keys.join("."))
    })
}

/// The keys (and array indexes) from the root to `path`.
fn path_keys(path: &serde_ignored::Path<'_>, out: &mut Vec<String>) {
    match path {
        serde_ignored::Path::Root => {}
        serde_ignored::Path::Map { parent, key } => {
            path_keys(parent, out);
            out.push(key.clone());
        }
        serde_ignored::Path::Seq { parent, index } => {
            path_keys(parent, out);
            out.push(index.to_string());
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => path_keys(parent, out),
    }
}

fn is_zero_value(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(map) => map.values().all(is_zero_value),
    }
}

fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn nulls_decode_as_zero_values_like_go() {
        let req: StreamInfoRequest = from_go_json(b"null").unwrap();
        assert!(!req.deleted_details);
        let cfg: crate::jetstream::StreamConfig =
            from_go_json(br#"{"name":"S","consumer_limits":null,"subjects":null}"#).unwrap();
        assert!(cfg.subjects.is_empty());
        assert!(from_go_json::<StreamInfoRequest>(b"{bad").is_err());
    }

    #[test]
    fn strict_decoding_names_the_first_unknown_field_as_go_does() {
        let err = from_go_json_strict::<StreamInfoRequest>(br#"{"offset":1,"colour":"blue"}"#)
            .unwrap_err();
        assert_eq!(err.to_string(), r#"json: unknown field "colour""#);
        let err = from_go_json_strict::<StreamConfig>(
            br#"{"name":"S","consumer_limits":{"max_ack_pending":1,"shade":2}}"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), r#"json: unknown field "shade""#);
        let ok: StreamInfoRequest =
            from_go_json_strict(br#"{"offset":3,"subjects_filter":null}"#).unwrap();
        assert_eq!(ok.offset, 3);
    }

    #[test]
    fn unknown_fields_with_values_are_named_and_zero_values_pass() {
        let named = |body: &str| first_unhonoured_setting::<StreamConfig>(body.as_bytes());
        assert_eq!(
            named(r#"{"name":"S","colour":"blue"}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(
            named(r#"{"name":"S","consumer_limits":{"shade":2}}"#).as_deref(),
            Some("consumer_limits.shade")
        );
        for zero in [r#""""#, "0", "false", "null", "[]", "{}", r#"{"a":0}"#] {
            assert_eq!(named(&format!(r#"{{"name":"S","colour":{zero}}}"#)), None);
        }
        assert_eq!(named(r#"{"name":"S","subjects":["a"]}"#), None);
    }

    #[test]
    fn pub_acks_have_nats_shape() {
        assert_eq!(
            PubAck::Stored { seq: 3 }.to_json("S"),
            br#"{"stream":"S","seq":3}"#
        );
        assert_eq!(
            PubAck::Stored { seq: 1 }.to_json("a\"b"),
            br#"{"stream":"a\"b","seq":1}"#
        );
        let dup = String::from_utf8(PubAck::Duplicate { seq: 2 }.to_json("S")).unwrap();
        assert!(dup.contains(r#""duplicate":true"#));
        let err = String::from_utf8(PubAck::Failed(ApiError::wrong_last_sequence(4)).to_json("S"))
            .unwrap();
        assert!(err.contains(r#""err_code":10071"#) && err.contains(r#""stream":"S""#));
    }
}
