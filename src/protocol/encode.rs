//! Encoding of server-to-client operations into an outbound buffer.
//!
//! Each function appends to a `BytesMut` that the connection's writer flushes in one write, so
//! encoding a message for a subscriber costs a copy into an already-allocated buffer and no
//! allocation of its own.

use bytes::{BufMut, BytesMut};

use super::error::ProtocolError;

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";
pub const OK: &[u8] = b"+OK\r\n";
const CRLF: &[u8] = b"\r\n";

/// A message as it goes to one subscription.
#[derive(Debug, Clone, Copy)]
pub struct OutMsg<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// `None` or an empty slice sends MSG; a header block sends HMSG.
    pub headers: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl OutMsg<'_> {
    /// The number of bytes `write_msg` will append, used to check outbound limits first.
    pub fn encoded_len(&self) -> usize {
        // "HMSG " + 3 spaces + 2 numbers + 2 CRLFs, rounded up generously for the numbers.
        let fixed = 5 + 4 + 2 * 20 + 4;
        fixed
            + self.subject.len()
            + self.sid.len()
            + self.reply.map_or(0, |r| r.len() + 1)
            + self.headers.map_or(0, <[u8]>::len)
            + self.payload.len()
    }
}

/// Appends `MSG <subject> <sid> [reply] <len>\r\n<payload>\r\n`, or the HMSG form when the
/// message carries headers.
pub fn write_msg(out: &mut BytesMut, msg: &OutMsg<'_>) {
    let headers = msg.headers.filter(|h| !h.is_empty());
    out.reserve(msg.encoded_len());
    out.put_slice(if headers.is_some() { b"HMSG " } else { b"MSG " });
    out.put_slice(msg.subject);
    out.put_u8(b' ');
    out.put_slice(msg.sid);
    out.put_u8(b' ');
    if let Some(reply) = msg.reply {
        out.put_slice(reply);
        out.put_u8(b' ');
    }
    if let Some(h) = headers {
        write_decimal(out, h.len() as u64);
        out.put_u8(b' ');
        write_decimal(out, (h.len() + msg.payload.len()) as u64);
        out.put_slice(CRLF);
        out.put_slice(h);
    } else {
        write_decimal(out, msg.payload.len() as u64);
        out.put_slice(CRLF);
    }
    out.put_slice(msg.payload);
    out.put_slice(CRLF);
}

/// Appends `-ERR '<text>'\r\n`.
pub fn write_err(out: &mut BytesMut, err: &ProtocolError) {
    out.put_slice(b"-ERR '");
    out.put_slice(err.to_string().as_bytes());
    out.put_slice(b"'\r\n");
}

/// Appends `INFO <json> \r\n`: nats-server puts a space before the line end, and harnesses
/// that match the line byte for byte expect it.
pub fn write_info(out: &mut BytesMut, json: &[u8]) {
    out.put_slice(b"INFO ");
    out.put_slice(json);
    out.put_slice(b" \r\n");
}

/// Appends a number in decimal without going through `fmt` (no allocation, no formatter).
pub fn write_decimal(out: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    out.put_slice(decimal_digits(n, &mut digits));
}

/// The decimal digits of `n`, written into the end of `digits` (20 bytes hold any `u64`).
pub fn decimal_digits(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(msg: OutMsg<'_>) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_msg(&mut out, &msg);
        assert!(out.len() <= msg.encoded_len());
        out.to_vec()
    }

    #[test]
    fn msg_without_reply_or_headers() {
        let msg = OutMsg {
            subject: b"foo",
            sid: b"1",
            reply: None,
            headers: None,
            payload: b"hi",
        };
        assert_eq!(encode(msg), b"MSG foo 1 2\r\nhi\r\n");
    }

    #[test]
    fn msg_with_reply() {
        let msg = OutMsg {
            subject: b"foo",
            sid: b"12",
            reply: Some(b"r.1"),
            headers: None,
            payload: b"",
        };
        assert_eq!(encode(msg), b"MSG foo 12 r.1 0\r\n\r\n");
    }

    #[test]
    fn hmsg_counts_header_and_total_bytes() {
        let h = b"NATS/1.0\r\nA: b\r\n\r\n";
        let msg = OutMsg {
            subject: b"s",
            sid: b"9",
            reply: Some(b"r"),
            headers: Some(h),
            payload: b"xyz",
        };
        let mut expected = b"HMSG s 9 r 18 21\r\n".to_vec();
        expected.extend_from_slice(h);
        expected.extend_from_slice(b"xyz\r\n");
        assert_eq!(encode(msg), expected);
    }

    #[test]
    fn err_is_quoted() {
        let mut out = BytesMut::new();
        write_err(&mut out, &ProtocolError::MaxPayloadExceeded);
        assert_eq!(&out[..], b"-ERR 'Maximum Payload Violation'\r\n");
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut out = BytesMut::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
