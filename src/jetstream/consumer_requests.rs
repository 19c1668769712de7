//! Request and reply shapes around consumers: the create request and its subject checks,
//! `ConsumerInfo`, and pull requests.

use super::*;
use rules::durable_and_name_mismatch;

/// The body of `CONSUMER.CREATE` and `CONSUMER.DURABLE.CREATE`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConsumerRequest {
    pub stream_name: String,
    pub config: ConsumerConfig,
    /// `""` (create or update), `"create"` or `"update"`.
    pub action: String,
    pub pedantic: bool,
}

/// Base 62 digits, as in the names nats-server generates.
const NAME_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 8-character `[0-9A-Za-z]` name from `random` (62^8 < 2^64, so every digit is used).
pub(super) fn generated_name(mut random: u64) -> String {
    (0..GENERATED_NAME_LEN)
        .map(|_| {
            let digit = NAME_ALPHABET[(random % 62) as usize];
            random /= 62;
            char::from(digit)
        })
        .collect()
}

/// Validates a create request against the API subject it arrived on, per §2.3 / §5.2:
/// subject_tokens are the tokens after `$JS.API.` e.g. ["CONSUMER","CREATE","S","C","f","x"] or
/// ["CONSUMER","DURABLE","CREATE","S","D"].
/// Returns the consumer name to use (generating an 8-char [0-9A-Za-z] name for a legacy
/// ephemeral with none, from a caller-supplied random u64) or the nats-server error.
///
/// On success `req.config.name` holds the name for the new-style and generated-name forms, as
/// nats-server stamps it into the config it stores.
pub fn check_create_subject(
    subject_tokens: &[&str],
    req: &mut CreateConsumerRequest,
    random: u64,
) -> Result<String, ApiError> {
    // Go decodes `action` while unmarshalling, so a bad one is an invalid-JSON error.
    if !matches!(req.action.as_str(), "" | "create" | "update") {
        return Err(ApiError::invalid_json(format!(
            "unknown consumer action: {:?}",
            req.action
        )));
    }
    let (stream, form) = match subject_tokens {
        ["CONSUMER", "DURABLE", "CREATE", stream, rest @ ..] => {
            if rest.len() != 1 {
                return Err(ApiError::new(
                    400,
                    10016,
                    "consumer expected to be durable but no durable name set in subject",
                ));
            }
            (*stream, CreateForm::LegacyDurable(rest[0]))
        }
        ["CONSUMER", "CREATE", stream] => (*stream, CreateForm::LegacyEphemeral),
        ["CONSUMER", "CREATE", stream, name, filter @ ..] => (
            *stream,
            CreateForm::Named {
                name,
                filter: filter.join("."),
            },
        ),
        _ => return Err(ApiError::bad_request(None)),
    };
    if stream != req.stream_name {
        return Err(ApiError::stream_name_mismatch());
    }
    let config = &mut req.config;
    drop_empty(&mut config.durable_name);
    drop_empty(&mut config.name);
    drop_empty(&mut config.filter_subject);
    let name = match form {
        CreateForm::LegacyDurable(durable) => {
            check_no_path_separators(durable)?;
            let Some(requested) = config.durable_name.as_deref() else {
                return Err(ApiError::new(
                    400,
                    10018,
                    "consumer expected to be durable but a durable name was not set",
                ));
            };
            if requested != durable {
                return Err(ApiError::new(
                    400,
                    10017,
                    "consumer name in subject does not match durable name in request",
                ));
            }
            if config.name.as_deref().is_some_and(|n| n != durable) {
                return Err(durable_and_name_mismatch());
            }
            durable.to_string()
        }
        CreateForm::LegacyEphemeral => {
            if config.durable_name.is_some() {
                return Err(ApiError::new(
                    400,
                    10020,
                    "consumer expected to be ephemeral but a durable name was set in request",
                ));
            }
            match &config.name {
                Some(name) => name.clone(),
                None => {
                    let name = generated_name(random);
                    config.name = Some(name.clone());
                    name
                }
            }
        }
        CreateForm::Named { name, filter } => {
            check_no_path_separators(name)?;
            if config.durable_name.as_deref().is_some_and(|d| d != name) {
                return Err(ApiError::new(
                    400,
                    10017,
                    "consumer name in subject does not match durable name in request",
                ));
            }
            // The subject names the consumer; nats-server stamps it into the config.
            config.name = Some(name.to_string());
            if !filter.is_empty() {
                if !config.filter_subjects.is_empty() {
                    return Err(ApiError::new(
                        400,
                        10137,
                        "consumer with multiple subject filters cannot use subject based API",
                    ));
                }
                if config.filter_subject.as_deref() != Some(filter.as_str()) {
                    return Err(ApiError::new(
                        400,
                        10131,
                        concat!(
                            "Consumer create request did not match filtered subject ",
                            "from create subject"
                        ),
                    ));
                }
            }
            name.to_string()
        }
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::new(
            400,
            10102,
            format!("consumer name is too long, maximum allowed is {MAX_NAME_BYTES}"),
        ));
    }
    if !is_valid_name(&name) {
        return Err(invalid_config(
            "consumer name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    Ok(name)
}

/// The create subject's shapes.
enum CreateForm<'a> {
    /// `CONSUMER.DURABLE.CREATE.<stream>.<durable>` (nats-py, old nats.go).
    LegacyDurable(&'a str),
    /// `CONSUMER.CREATE.<stream>`: the server names the consumer if the config does not.
    LegacyEphemeral,
    /// `CONSUMER.CREATE.<stream>.<name>[.<filter>]`.
    Named { name: &'a str, filter: String },
}

fn check_no_path_separators(name: &str) -> Result<(), ApiError> {
    if name.contains(['\\', '/']) {
        return Err(ApiError::new(
            400,
            10127,
            "Consumer name can not contain path separators",
        ));
    }
    Ok(())
}

/// A consumer's position: the consumer and stream sequences and when it last moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    /// RFC 3339; omitted until the consumer has been active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

/// `CONSUMER.INFO` / `CONSUMER.CREATE` bodies (less `type`). `created` and `ts` are always
/// present (async-nats requires `created`).
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    pub created: String,
    pub config: ConsumerConfig,
    pub delivered: SequenceInfo,
    pub ack_floor: SequenceInfo,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub num_pending: u64,
    pub cluster: ClusterInfo,
    #[serde(skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Present (true) only while paused, with the time left in ns.
    #[serde(skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub pause_remaining: u64,
    /// The first configured group's pin state, as nats-server reports it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupState>,
    pub ts: String,
}

/// One priority group in `ConsumerInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriorityGroupState {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_client_id: Option<String>,
    /// RFC 3339; Go's zero time while nothing is pinned.
    pub pinned_ts: String,
}

/// A parsed pull request (`$JS.API.CONSUMER.MSG.NEXT`): empty body = batch 1; a bare integer =
/// batch N; else JSON {batch, expires (ns), max_bytes, no_wait, idle_heartbeat (ns)} and the
/// priority-group terms {group, min_pending, min_ack_pending, id, priority}.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullRequest {
    pub batch: u64,
    /// 0 = no expiry.
    pub expires_ns: u64,
    /// 0 = no byte limit.
    pub max_bytes: u64,
    pub no_wait: bool,
    pub idle_heartbeat_ns: u64,
    pub priority: crate::jetstream::consumer::RequestPriority,
}

/// The JSON form of a pull request. Fields nats-server does not know either are ignored, as
/// there (its pull requests are never decoded strictly).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PullRequestJson {
    batch: i64,
    expires: i64,
    max_bytes: i64,
    no_wait: bool,
    idle_heartbeat: i64,
    group: String,
    min_pending: i64,
    min_ack_pending: i64,
    id: String,
    priority: i64,
}

/// The most a `prioritized` request's `priority` may be (0 is served first).
pub const MAX_REQUEST_PRIORITY: i64 = 9;

/// Parse and check against the consumer config. Errors are (status code, description) as sent
/// in the status header, e.g. (400, "Bad Request - heartbeat value too large"),
/// (409, "Exceeded MaxRequestBatch of 10"), (409, "Exceeded MaxRequestExpires of 1s"),
/// (409, "Exceeded MaxRequestMaxBytes of 100"), (409, "Consumer is push based").
///
/// "Exceeded MaxWaiting" and a pin id that is not the current one need the consumer's state
/// and are the caller's checks.
pub fn parse_pull_request(
    payload: &[u8],
    config: &ConsumerConfig,
) -> Result<PullRequest, (u16, String)> {
    if !config.is_pull() {
        return Err((409, "Consumer is push based".to_string()));
    }
    let body = payload.trim_ascii();
    let req = if body.is_empty() {
        PullRequestJson {
            batch: 1,
            ..PullRequestJson::default()
        }
    } else if body[0] == b'{' {
        let req: PullRequestJson = crate::jetstream::api_types::from_go_json(body)
            .map_err(|err| (400, format!("Bad Request - {err}")))?;
        // The heartbeat must fit twice into the request's life, or the client would see it
        // expire between heartbeats (`nextReqFromMsg`).
        if req.idle_heartbeat > 0 && req.idle_heartbeat.saturating_mul(2) > req.expires {
            return Err((400, "Bad Request - heartbeat value too large".to_string()));
        }
        req
    } else {
        // nats-server takes a bare integer as the batch and anything else as a batch of 1.
        let batch = std::str::from_utf8(body)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .unwrap_or(1);
        PullRequestJson {
            batch,
            ..PullRequestJson::default()
        }
    };
    check_priority_terms(&req, config)?;
    if config.max_batch > 0 && req.batch > config.max_batch {
        return Err((
            409,
            format!("Exceeded MaxRequestBatch of {}", config.max_batch),
        ));
    }
    if req.expires > 0 && config.max_expires > 0 && req.expires > config.max_expires {
        return Err((
            409,
            format!(
                "Exceeded MaxRequestExpires of {}",
                format_go_duration(config.max_expires)
            ),
        ));
    }
    if req.max_bytes > 0 && config.max_bytes > 0 && req.max_bytes > config.max_bytes {
        return Err((
            409,
            format!("Exceeded MaxRequestMaxBytes of {}", config.max_bytes),
        ));
    }
    let positive = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(PullRequest {
        // A batch of 0 or less still asks for one message.
        batch: positive(req.batch).max(1),
        // A negative expiry is already in the past in nats-server: the request times out at
        // once, which the smallest expiry reproduces.
        expires_ns: if req.expires < 0 {
            1
        } else {
            positive(req.expires)
        },
        max_bytes: positive(req.max_bytes),
        no_wait: req.no_wait,
        idle_heartbeat_ns: positive(req.idle_heartbeat),
        priority: crate::jetstream::consumer::RequestPriority {
            min_pending: positive(req.min_pending),
            min_ack_pending: positive(req.min_ack_pending),
            pin_id: (!req.id.is_empty()).then(|| bytes::Bytes::from(req.id)),
            priority: u8::try_from(req.priority).unwrap_or(0),
        },
    })
}

/// nats-server's checks of a request's priority-group terms, in its order. One difference: a
/// body that is not JSON (empty, or a bare batch size) cannot name a group, and nats-server
/// serves it past every group rule (a pinned consumer then delivers to a client it never
/// pinned); jetlog answers it as a request without a group.
fn check_priority_terms(
    req: &PullRequestJson,
    config: &ConsumerConfig,
) -> Result<(), (u16, String)> {
    let bad = |text: &str| Err((400, format!("Bad Request - {text}")));
    let policy = config.priority_policy;
    if (req.min_pending != 0 || req.min_ack_pending != 0) && policy != PriorityPolicy::Overflow {
        return bad("Not a Overflow Priority consumer");
    }
    if !req.id.is_empty() && policy != PriorityPolicy::PinnedClient {
        return bad("Not a Pinned Client Priority consumer");
    }
    if !(0..=MAX_REQUEST_PRIORITY).contains(&req.priority) {
        return bad("Priority must be between 0 and 9");
    }
    if policy == PriorityPolicy::None {
        return Ok(());
    }
    if req.group.is_empty() {
        return bad("Priority Group missing");
    }
    if !config.priority_groups.contains(&req.group) {
        return bad("Invalid Priority Group");
    }
    Ok(())
}
