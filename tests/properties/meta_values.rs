//! Metadata values as sled hands them back: any bytes decode (version byte, prost body, name
//! and invariant checks) or give `Corrupt` / `UnsupportedVersion`, never a panic; what decodes
//! encodes to a canonical value that decodes to the same message.

use jetlog::meta::values::{decode_consumer, decode_consumer_state, decode_stream, encode};
use jetlog::meta::{pb, MetaError, FORMAT_VERSION};
use jetlog::meta::{CONSUMERS_TREE, CONSUMER_STATES_TREE, STREAMS_TREE};

/// Input layout: `[tree][name length][name][value]`.
pub fn meta_value(data: &[u8]) {
    let [tree, name_len, rest @ ..] = data else {
        return;
    };
    let name_len = usize::from(*name_len).min(rest.len());
    let (name, value) = rest.split_at(name_len);
    let mut consumer_key = b"S\0".to_vec();
    consumer_key.extend_from_slice(name);

    match tree % 3 {
        0 => {
            let decoded = decode_stream(name, value);
            check_error(&decoded, value);
            if let Ok(config) = decoded {
                assert_eq!(config.name.as_bytes(), name);
                let again = encode(STREAMS_TREE, &config).expect("encodes");
                assert_eq!(decode_stream(name, &again).expect("decodes"), config);
            }
        }
        1 => {
            let decoded = decode_consumer(&consumer_key, name, value);
            check_error(&decoded, value);
            if let Ok(config) = decoded {
                assert_eq!(jetlog::meta::consumer_name(&config).as_bytes(), name);
                let again = encode(CONSUMERS_TREE, &config).expect("encodes");
                let back = decode_consumer(&consumer_key, name, &again).expect("decodes");
                assert_eq!(back, config);
            }
        }
        _ => {
            let decoded = decode_consumer_state(&consumer_key, value);
            check_error(&decoded, value);
            if let Ok(state) = decoded {
                check_state(&state);
                let again = encode(CONSUMER_STATES_TREE, &state).expect("encodes");
                let back = decode_consumer_state(&consumer_key, &again).expect("decodes");
                assert_eq!(back, state);
            }
        }
    }
}

/// The version byte decides the kind of error: newer is unsupported, anything else that fails
/// is corrupt.
fn check_error<T>(decoded: &Result<T, MetaError>, value: &[u8]) {
    match (decoded, value.first()) {
        (Err(MetaError::UnsupportedVersion { version, .. }), Some(first)) => {
            assert!(*version > FORMAT_VERSION && version == first);
        }
        (Err(MetaError::Corrupt { .. }), _) => {}
        (Err(other), _) => panic!("unexpected error {other:?}"),
        (Ok(_), first) => assert_eq!(first, Some(&FORMAT_VERSION)),
    }
    if value.first().is_some_and(|v| *v > FORMAT_VERSION) {
        assert!(matches!(decoded, Err(MetaError::UnsupportedVersion { .. })));
    }
}

/// What a consumer restored from this state may rely on.
fn check_state(state: &pb::ConsumerState) {
    let floor = state.ack_floor.unwrap_or_default();
    let delivered = state.delivered.unwrap_or_default();
    assert!(floor.stream_seq <= delivered.stream_seq);
    assert!(floor.consumer_seq <= delivered.consumer_seq);
    let mut previous = floor.stream_seq;
    for pending in &state.pending {
        assert!(pending.stream_seq > previous && pending.stream_seq <= delivered.stream_seq);
        previous = pending.stream_seq;
    }
}
