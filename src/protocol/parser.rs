//! A streaming parser for the client side of the NATS protocol.
//!
//! Bytes arrive in whatever pieces TCP hands us; the parser takes a `BytesMut` holding what has
//! been read so far and yields one complete operation at a time, leaving partial input in the
//! buffer. Parsing is two-pass in the mini-redis manner: first check that a whole control line
//! (and, for PUB/HPUB, the whole payload) is buffered, then parse it and advance the buffer.
//! Payloads are split off the read buffer and frozen, so a published message is never copied
//! on its way in: subject, reply and payload are all `Bytes` views of the bytes that were read.
//!
//! Every buffer is bounded before it grows: a control line longer than the limit and a payload
//! announced larger than the limit are refused before any of their bytes are kept.

use bytes::{Buf, Bytes, BytesMut};

use super::error::ProtocolError;

/// nats-server's default `max_control_line` (`MAX_CONTROL_LINE_SIZE` in server/const.go).
pub const MAX_CONTROL_LINE_BYTES: usize = 4096;
/// nats-server's default `max_payload` (`MAX_PAYLOAD_SIZE`), headers included for HPUB.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// One operation sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: the JSON is decoded by the caller, which knows the defaults.
    Connect(Bytes),
    /// `PUB` or `HPUB`.
    Publish(Publish),
    /// `SUB <subject> [queue] <sid>`.
    Subscribe {
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    },
    /// `UNSUB <sid> [max_msgs]`; a max of 0 (or one that does not parse) removes at once.
    Unsubscribe {
        sid: Bytes,
        max_msgs: Option<u64>,
    },
    Ping,
    Pong,
}

/// A published message as it came off the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    pub subject: Bytes,
    pub reply: Option<Bytes>,
    /// The header block (`NATS/1.0\r\n…\r\n\r\n`) for HPUB, `None` for PUB.
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

impl Publish {
    /// Header and payload bytes together: what max_payload limits.
    pub fn size(&self) -> usize {
        self.headers.as_ref().map_or(0, Bytes::len) + self.payload.len()
    }
}

/// The limits the parser enforces; the server's configuration fills them in.
#[derive(Debug, Clone, Copy)]
pub struct ParserLimits {
    pub max_control_line_bytes: usize,
    pub max_payload_bytes: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        Self {
            max_control_line_bytes: MAX_CONTROL_LINE_BYTES,
            max_payload_bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

/// nats-server's `parseSize` accepts at most this many digits (`maxParseSizeLen`).
const MAX_SIZE_DIGITS: usize = 9;
/// An unterminated line may hold the op name and its separators on top of the argument limit
/// before we can tell that the arguments alone are too long.
const MAX_OP_PREFIX_BYTES: usize = 16;

/// A PUB/HPUB whose control line has been parsed while its payload is still arriving.
#[derive(Debug)]
struct PendingPayload {
    subject: Bytes,
    reply: Option<Bytes>,
    header_len: Option<usize>,
    total_len: usize,
}

/// The parser's state between calls: only a half-received PUB needs remembering.
#[derive(Debug, Default)]
pub struct Parser {
    limits: ParserLimits,
    pending: Option<PendingPayload>,
}

impl Parser {
    /// Lowers the largest payload accepted from now on (a user's JWT may allow less than the
    /// server does).
    pub fn limit_payload(&mut self, max_payload_bytes: usize) {
        self.limits.max_payload_bytes = self.limits.max_payload_bytes.min(max_payload_bytes);
    }

    pub fn new(limits: ParserLimits) -> Self {
        Self {
            limits,
            pending: None,
        }
    }

    /// How many more bytes the buffer must hold before the next op can complete, when that is
    /// known (a payload is being waited for). Lets the reader reserve once instead of growing
    /// the buffer a read at a time.
    pub fn bytes_wanted(&self, buffered: usize) -> usize {
        self.pending
            .as_ref()
            .map_or(0, |p| (p.total_len + 2).saturating_sub(buffered))
    }

    /// Takes the next complete operation off the front of `buf`. `Ok(None)` means more bytes
    /// are needed; an error is fatal for the connection unless it says otherwise.
    pub fn next_op(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        if let Some(pending) = self.pending.take() {
            return self.finish_payload(pending, buf);
        }
        let Some(line) = take_line(buf, self.limits.max_control_line_bytes)? else {
            return Ok(None);
        };
        let op = self.parse_line(line)?;
        match op {
            Some(op) => Ok(Some(op)),
            // A PUB/HPUB line was parsed; its payload may already be here.
            None => match self.pending.take() {
                Some(pending) => self.finish_payload(pending, buf),
                None => Ok(None),
            },
        }
    }

    fn finish_payload(
        &mut self,
        pending: PendingPayload,
        buf: &mut BytesMut,
    ) -> Result<Option<ClientOp>, ProtocolError> {
        let Some((headers, payload)) = take_payload(buf, pending.total_len, pending.header_len)?
        else {
            self.pending = Some(pending);
            return Ok(None);
        };
        Ok(Some(ClientOp::Publish(Publish {
            subject: pending.subject,
            reply: pending.reply,
            headers,
            payload,
        })))
    }

    /// Parses one control line. PUB/HPUB set `self.pending` and return `Ok(None)`.
    fn parse_line(&mut self, line: Bytes) -> Result<Option<ClientOp>, ProtocolError> {
        let mut args = Args::new(&line);
        let Some(op) = args.next() else {
            return Err(ProtocolError::UnknownOperation);
        };
        let op_name = &line[op.0..op.1];
        let is = |name: &[u8]| op_name.eq_ignore_ascii_case(name);
        if is(b"PUB") {
            self.parse_pub(&line, args, false)?;
            Ok(None)
        } else if is(b"HPUB") {
            self.parse_pub(&line, args, true)?;
            Ok(None)
        } else if is(b"SUB") {
            parse_sub(&line, args).map(Some)
        } else if is(b"UNSUB") {
            parse_unsub(&line, args).map(Some)
        } else if is(b"PING") && args.next().is_none() {
            Ok(Some(ClientOp::Ping))
        } else if is(b"PONG") && args.next().is_none() {
            Ok(Some(ClientOp::Pong))
        } else if is(b"CONNECT") {
            let rest = args.rest().ok_or(ProtocolError::UnknownOperation)?;
            Ok(Some(ClientOp::Connect(line.slice(rest..))))
        } else {
            Err(ProtocolError::UnknownOperation)
        }
    }

    fn parse_pub(&mut self, line: &Bytes, args: Args, headers: bool) -> Result<(), ProtocolError> {
        let mut parts: [(usize, usize); 4] = [(0, 0); 4];
        let count = args.collect_into(&mut parts)?;
        let (subject, reply, header_len, total_len) = match (headers, count) {
            (false, 2) => (parts[0], None, None, size_arg(line, parts[1])?),
            (false, 3) => (parts[0], Some(parts[1]), None, size_arg(line, parts[2])?),
            (true, 3) => {
                let h = size_arg(line, parts[1])?;
                (parts[0], None, Some(h), size_arg(line, parts[2])?)
            }
            (true, 4) => {
                let h = size_arg(line, parts[2])?;
                (parts[0], Some(parts[1]), Some(h), size_arg(line, parts[3])?)
            }
            _ => return Err(ProtocolError::UnknownOperation),
        };
        if header_len.is_some_and(|h| h > total_len) {
            return Err(ProtocolError::UnknownOperation);
        }
        if total_len > self.limits.max_payload_bytes {
            return Err(ProtocolError::MaxPayloadExceeded);
        }
        self.pending = Some(PendingPayload {
            subject: line.slice(subject.0..subject.1),
            reply: reply.map(|r| line.slice(r.0..r.1)),
            header_len,
            total_len,
        });
        Ok(())
    }
}

fn parse_sub(line: &Bytes, args: Args) -> Result<ClientOp, ProtocolError> {
    let mut parts: [(usize, usize); 3] = [(0, 0); 3];
    let (subject, queue, sid) = match args.collect_into(&mut parts)? {
        2 => (parts[0], None, parts[1]),
        3 => (parts[0], Some(parts[1]), parts[2]),
        _ => return Err(ProtocolError::UnknownOperation),
    };
    Ok(ClientOp::Subscribe {
        subject: line.slice(subject.0..subject.1),
        queue: queue.map(|q| line.slice(q.0..q.1)),
        sid: line.slice(sid.0..sid.1),
    })
}

fn parse_unsub(line: &Bytes, args: Args) -> Result<ClientOp, ProtocolError> {
    let mut parts: [(usize, usize); 2] = [(0, 0); 2];
    let (sid, max_msgs) = match args.collect_into(&mut parts)? {
        1 => (parts[0], None),
        // nats-server treats a max it cannot parse as "unsubscribe now" (processUnsub).
        2 => (
            parts[0],
            Some(size_arg(line, parts[1]).map_or(0, |n| n as u64)),
        ),
        _ => return Err(ProtocolError::UnknownOperation),
    };
    Ok(ClientOp::Unsubscribe {
        sid: line.slice(sid.0..sid.1),
        max_msgs,
    })
}

/// Takes one control line (without its line ending) off the front of `buf`; `Ok(None)` until
/// a whole line is buffered. nats-server counts only the arguments against max_control_line:
/// not the op name, the separators after it, or the line ending (parser.go
/// overMaxControlLineLimit). Shared by the client and the route protocol.
pub(super) fn take_line(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, ProtocolError> {
    // The longest line that can pass: op name and separators, the arguments, CR LF.
    let window = limit.saturating_add(MAX_OP_PREFIX_BYTES + 2);
    let search = &buf[..buf.len().min(window)];
    let Some(newline) = search.iter().position(|b| *b == b'\n') else {
        // Refused only once the whole window is here without a newline, so that the verdict
        // rests on the same bytes however the input was split into reads. Refusing earlier
        // made a line that ends in the window's last bytes fail when it arrived in pieces and
        // parse when it arrived at once (found by the `parser_split` fuzzer).
        if buf.len() >= window {
            return Err(ProtocolError::MaxControlLineExceeded);
        }
        return Ok(None);
    };
    let line_len = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let mut args = Args::new(&buf[..line_len]);
    args.next();
    if args.rest().is_some_and(|start| line_len - start > limit) {
        return Err(ProtocolError::MaxControlLineExceeded);
    }
    let mut line = buf.split_to(newline + 1).freeze();
    line.truncate(line_len);
    Ok(Some(line))
}

/// Takes a payload of `total_len` bytes and its CR LF off the front of `buf`, split into the
/// header block (`header_len` bytes, for HPUB/HMSG) and the body; `Ok(None)` until all of it
/// is buffered. A payload not followed by CR LF is a framing error.
pub(super) fn take_payload(
    buf: &mut BytesMut,
    total_len: usize,
    header_len: Option<usize>,
) -> Result<Option<(Option<Bytes>, Bytes)>, ProtocolError> {
    if buf.len() < total_len + 2 {
        return Ok(None);
    }
    if &buf[total_len..total_len + 2] != b"\r\n" {
        return Err(ProtocolError::UnknownOperation);
    }
    let mut payload = buf.split_to(total_len).freeze();
    buf.advance(2);
    let headers = header_len.map(|len| payload.split_to(len));
    Ok(Some((headers, payload)))
}

/// Parses a decimal size argument. Only ASCII digits are accepted; overflow is an error.
pub(super) fn size_arg(line: &[u8], (start, end): (usize, usize)) -> Result<usize, ProtocolError> {
    let digits = &line[start..end];
    if digits.is_empty() || digits.len() > MAX_SIZE_DIGITS {
        return Err(ProtocolError::UnknownOperation);
    }
    digits.iter().try_fold(0usize, |acc, b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + usize::from(b - b'0'))
        } else {
            Err(ProtocolError::UnknownOperation)
        }
    })
}

/// Splits a control line into arguments separated by runs of spaces and tabs, as byte ranges.
pub(super) struct Args<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Args<'a> {
    pub(super) fn new(line: &'a [u8]) -> Self {
        Self { line, pos: 0 }
    }

    fn skip_space(&mut self) {
        while self.pos < self.line.len() && matches!(self.line[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
    }

    /// Everything after the current position, minus leading whitespace; `None` if empty.
    pub(super) fn rest(&mut self) -> Option<usize> {
        self.skip_space();
        (self.pos < self.line.len()).then_some(self.pos)
    }

    /// Fills `out` with the remaining arguments; more than fit is an error.
    pub(super) fn collect_into(self, out: &mut [(usize, usize)]) -> Result<usize, ProtocolError> {
        let mut n = 0;
        for arg in self {
            if n == out.len() {
                return Err(ProtocolError::UnknownOperation);
            }
            out[n] = arg;
            n += 1;
        }
        Ok(n)
    }
}

impl Iterator for Args<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        self.skip_space();
        let start = self.pos;
        while self.pos < self.line.len() && !matches!(self.line[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
        (self.pos > start).then_some((start, self.pos))
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
