//! The NATS header block: `NATS/1.0[ <status>[ <description>]]\r\n`, `Key: Value\r\n` lines,
//! and a blank line. Lookups follow nats-server (`server/client.go` getHeader): keys match
//! case-sensitively, the first occurrence wins, spaces after the colon are skipped.

use bytes::{BufMut, Bytes, BytesMut};

/// The version line every header block starts with.
pub const HEADER_VERSION: &[u8] = b"NATS/1.0";

/// The value of the first header named exactly `key`, if any.
pub fn header_value<'a>(block: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut lines = block.split(|b| *b == b'\n').skip(1);
    lines.find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let rest = line.strip_prefix(key)?.strip_prefix(b":")?;
        let start = rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(rest.len());
        Some(&rest[start..])
    })
}

/// The status code of a header block's version line (`NATS/1.0 503` gives 503).
pub fn status_code(block: &[u8]) -> Option<u16> {
    let first = block.split(|b| *b == b'\r').next()?;
    let code = first.strip_prefix(HEADER_VERSION)?.strip_prefix(b" ")?;
    let code = code.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Builds a header block from a status line and key/value pairs.
pub fn build_block(out: &mut BytesMut, status: Option<(u16, &str)>, pairs: &[(&str, &[u8])]) {
    out.put_slice(HEADER_VERSION);
    if let Some((code, description)) = status {
        out.put_u8(b' ');
        out.put_slice(code.to_string().as_bytes());
        if !description.is_empty() {
            out.put_u8(b' ');
            out.put_slice(description.as_bytes());
        }
    }
    out.put_slice(b"\r\n");
    for (key, value) in pairs {
        out.put_slice(key.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Appends a header block made of `stored` (a complete block, or empty) with `pairs` added
/// at its end: how a stored message gets the extra headers of a direct get or a headers-only
/// delivery. A `stored` that is not a complete block is replaced by a fresh version line.
pub fn extend_block(out: &mut BytesMut, stored: &[u8], pairs: &[(&str, &[u8])]) {
    match stored
        .strip_suffix(b"\r\n")
        .filter(|h| h.ends_with(b"\r\n"))
    {
        Some(head) => out.put_slice(head),
        None => {
            out.put_slice(HEADER_VERSION);
            out.put_slice(b"\r\n");
        }
    }
    for (key, value) in pairs {
        out.put_slice(key.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Like [`extend_block`], but first drops every stored header named like one of `pairs`
/// (ASCII case-insensitively, as clients that canonicalise names would read them), so each
/// pair's value is the only one. For headers only the server may set: nats-server appends its
/// values after any a client stored (nats-server issue #4573), and a client that reads the
/// first value then takes the publisher's word for the message's stream or sequence.
pub fn replace_in_block(out: &mut BytesMut, stored: &[u8], pairs: &[(&str, &[u8])]) {
    let Some(body) = stored
        .strip_suffix(b"\r\n")
        .filter(|h| h.ends_with(b"\r\n"))
    else {
        extend_block(out, b"", pairs);
        return;
    };
    let mut kept = BytesMut::with_capacity(body.len() + 2);
    for (i, line) in body.split_inclusive(|b| *b == b'\n').enumerate() {
        let name = line.split(|b| *b == b':').next().unwrap_or(line);
        let server_only = pairs
            .iter()
            .any(|(key, _)| name.eq_ignore_ascii_case(key.as_bytes()));
        // The version line (i == 0) has no colon and is always kept.
        if i == 0 || !server_only {
            kept.put_slice(line);
        }
    }
    kept.put_slice(b"\r\n");
    extend_block(out, &kept, pairs);
}

/// `block` without its headers named exactly `name` (case-sensitive, as nats-server matches
/// the `Nats-*` headers it consumes). A block left with no header at all stays a valid empty
/// block (`NATS/1.0` and the blank line).
pub fn without_header(block: &[u8], name: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(block.len());
    for line in block.split_inclusive(|b| *b == b'\n') {
        let key = line.split(|b| *b == b':').next().unwrap_or(line);
        if key != name {
            out.put_slice(line);
        }
    }
    out.freeze()
}

/// The header block nats-server sends for a request nobody answered: `NATS/1.0 503` with the
/// original subject in `Nats-Subject` (server/client.go, sendNoResponders... in processMsgResults).
pub fn no_responders_block(out: &mut BytesMut, subject: &[u8]) {
    build_block(out, Some((503, "")), &[("Nats-Subject", subject)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: abc\r\nX:  y \r\nNats-Msg-Id: second\r\n\r\n";

    #[test]
    fn replace_in_block_leaves_one_value_per_server_header() {
        let stored = b"NATS/1.0\r\nnats-sequence: 999\r\nX: 1\r\nNats-Stream: FAKE\r\n\r\n";
        let mut out = BytesMut::new();
        replace_in_block(
            &mut out,
            stored,
            &[("Nats-Stream", b"S"), ("Nats-Sequence", b"7")],
        );
        assert_eq!(
            &out[..],
            &b"NATS/1.0\r\nX: 1\r\nNats-Stream: S\r\nNats-Sequence: 7\r\n\r\n"[..]
        );
        let mut fresh = BytesMut::new();
        replace_in_block(&mut fresh, b"", &[("Nats-Stream", b"S")]);
        assert_eq!(&fresh[..], &b"NATS/1.0\r\nNats-Stream: S\r\n\r\n"[..]);
    }

    #[test]
    fn first_occurrence_wins_and_spaces_after_colon_are_skipped() {
        assert_eq!(header_value(BLOCK, b"Nats-Msg-Id"), Some(&b"abc"[..]));
        assert_eq!(header_value(BLOCK, b"X"), Some(&b"y "[..]));
        assert_eq!(header_value(BLOCK, b"nats-msg-id"), None);
        assert_eq!(header_value(BLOCK, b"Nats-Msg"), None);
    }

    #[test]
    fn no_responders_block_has_the_length_clients_expect() {
        let mut out = BytesMut::new();
        no_responders_block(&mut out, b"svc.x");
        assert_eq!(&out[..], b"NATS/1.0 503\r\nNats-Subject: svc.x\r\n\r\n");
        assert_eq!(out.len(), 32 + 5);
        assert_eq!(status_code(&out), Some(503));
    }

    #[test]
    fn extended_blocks_keep_stored_headers_and_add_pairs() {
        let mut out = BytesMut::new();
        extend_block(&mut out, b"NATS/1.0\r\nA: 1\r\n\r\n", &[("B", b"2")]);
        assert_eq!(&out[..], b"NATS/1.0\r\nA: 1\r\nB: 2\r\n\r\n");
        let mut out = BytesMut::new();
        extend_block(&mut out, b"", &[("B", b"2")]);
        assert_eq!(&out[..], b"NATS/1.0\r\nB: 2\r\n\r\n");
    }

    #[test]
    fn status_with_description() {
        let mut out = BytesMut::new();
        build_block(&mut out, Some((404, "No Messages")), &[]);
        assert_eq!(&out[..], b"NATS/1.0 404 No Messages\r\n\r\n");
        assert_eq!(status_code(b"NATS/1.0\r\n\r\n"), None);
    }
}
