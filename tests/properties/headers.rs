//! Header blocks: lookups on any bytes never panic, and the blocks the server builds read back
//! as built: the status code, and for every pair the value the server meant readers to see.

use bytes::BytesMut;
use jetlog::protocol::headers::{
    build_block, extend_block, header_value, replace_in_block, status_code, HEADER_VERSION,
};

/// Keys the server looks up or sets, and a few near misses, so that lookups find something.
const KEYS: [&str; 8] = [
    "Nats-Msg-Id",
    "Nats-Expected-Last-Sequence",
    "Nats-Stream",
    "Nats-Sequence",
    "nats-stream",
    "X",
    "Nats-Rollup",
    "Status",
];

/// Input layout: `[selector][pair count][block]`. The block is arbitrary bytes, looked up as it
/// is and used as the stored block that a direct get extends or replaces into. The pairs the
/// server adds are made from the block's bytes too, cleaned of what a header value cannot hold
/// (the server only adds values it formats itself).
pub fn header_block(data: &[u8]) {
    let [selector, count, block @ ..] = data else {
        return;
    };
    for key in KEYS {
        if let Some(value) = header_value(block, key.as_bytes()) {
            assert!(!value.contains(&b'\n'), "a value spans lines");
        }
    }
    if let Some(code) = status_code(block) {
        assert!(code <= 999);
    }

    let pairs: Vec<(&str, Vec<u8>)> = (0..usize::from(count % 4))
        .map(|i| {
            let key = KEYS[(usize::from(*selector) + i * 3) % KEYS.len()];
            let value: Vec<u8> = block
                .iter()
                .skip(i * 7)
                .take(12)
                .copied()
                .filter(|b| b.is_ascii_graphic())
                .collect();
            (key, value)
        })
        .collect();
    let pair_refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (*k, &v[..])).collect();

    // A built block: the status line and every pair read back.
    let mut built = BytesMut::new();
    let status = (selector & 1 == 1).then_some((100 + u16::from(*selector), "Status Text"));
    build_block(&mut built, status, &pair_refs);
    assert!(built.starts_with(HEADER_VERSION) && built.ends_with(b"\r\n\r\n"));
    assert_eq!(status_code(&built), status.map(|(code, _)| code));
    for (key, _) in &pair_refs {
        let first = pair_refs.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        assert_eq!(header_value(&built, key.as_bytes()), first);
    }

    // Extending any stored block ends in a complete block that has the stored lines first.
    let mut extended = BytesMut::new();
    extend_block(&mut extended, block, &pair_refs);
    assert!(extended.ends_with(b"\r\n\r\n"), "{extended:?}");
    let complete = block.len() >= 4 && block.ends_with(b"\r\n\r\n");
    if complete {
        assert!(extended.starts_with(&block[..block.len() - 2]));
    } else {
        assert!(extended.starts_with(HEADER_VERSION));
    }

    // Replacing: every server-set pair is the only header of its name, whatever the stored
    // block held, so the first value a reader finds is the server's.
    let mut replaced = BytesMut::new();
    replace_in_block(&mut replaced, block, &pair_refs);
    assert!(replaced.ends_with(b"\r\n\r\n"), "{replaced:?}");
    for (key, _) in &pair_refs {
        let first = pair_refs.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        assert_eq!(
            header_value(&replaced, key.as_bytes()),
            first,
            "{key} in {replaced:?}"
        );
        // No other line of the block names the same header in any case (a line names a
        // header by what comes before its first colon; one without a colon names none).
        let named = replaced[..]
            .split(|b| *b == b'\n')
            .skip(1)
            .filter_map(|line| line.iter().position(|b| *b == b':').map(|i| &line[..i]))
            .filter(|name| name.eq_ignore_ascii_case(key.as_bytes()))
            .count();
        let expected = pair_refs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .count();
        assert_eq!(named, expected, "{key} in {replaced:?}");
    }
}
