//! The route protocol, sans-io: what two servers of a cluster say to each other on the
//! cluster port (see `docs/route-protocol.md` for the facts it follows).
//!
//! The same framing as the client protocol (control lines, payloads after them, the same
//! limits), other operations: `RS+`/`RS-` carry interest of an account's subject (a queue
//! group with its weight, the number of members on the sending server), `RMSG`/`HMSG` carry
//! a message with the queue groups the receiver must serve. A connection pinned to one account
//! (nats-server 2.10+ route pooling) leaves the account out of every operation; the parser is
//! told so and fills it in, so callers always see the account.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtocolError;
use super::parser::{size_arg, take_line, take_payload, Args, ParserLimits};

/// One operation received on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// `INFO {json}`: the peer's identity and what it supports.
    Info(Bytes),
    /// `CONNECT {json}`: the dialling server's credentials and cluster name.
    Connect(Bytes),
    /// `RS+`: the peer has interest in `subject` (for `queue`, with that many members).
    Interest {
        account: Bytes,
        subject: Bytes,
        queue: Option<(Bytes, u32)>,
    },
    /// `RS-`: the peer's interest in `subject` (or its queue group) is gone.
    NoInterest {
        account: Bytes,
        subject: Bytes,
        queue: Option<Bytes>,
    },
    /// `RMSG` or `HMSG`.
    Message(RoutedMessage),
    Ping,
    Pong,
    /// `-ERR '<text>'`, the text without its quotes: the peer gives up on the connection.
    Err(Bytes),
}

/// A message forwarded by another server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutedMessage {
    pub account: Bytes,
    pub subject: Bytes,
    pub reply: Option<Bytes>,
    /// Queue groups the receiving server must deliver to (one member each); empty for plain
    /// subscribers only.
    pub queues: Vec<Bytes>,
    /// The header block for `HMSG`, `None` for `RMSG`.
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

/// An RMSG/HMSG whose control line is parsed while its payload is still arriving.
#[derive(Debug)]
struct Pending {
    message: RoutedMessage,
    header_len: Option<usize>,
    total_len: usize,
}

/// The route parser: the client parser's framing with route operations.
#[derive(Debug, Default)]
pub struct RouteParser {
    limits: ParserLimits,
    /// The account of a connection pinned to one; its operations then name none.
    pinned: Option<Bytes>,
    pending: Option<Pending>,
}

impl RouteParser {
    pub fn new(limits: ParserLimits, pinned: Option<Bytes>) -> Self {
        Self {
            limits,
            pinned,
            pending: None,
        }
    }

    /// Takes the next complete operation off the front of `buf`; `Ok(None)` means more bytes
    /// are needed. Errors are fatal for the route.
    pub fn next_op(&mut self, buf: &mut BytesMut) -> Result<Option<RouteOp>, ProtocolError> {
        if let Some(pending) = self.pending.take() {
            return self.finish_payload(pending, buf);
        }
        let Some(line) = take_line(buf, self.limits.max_control_line_bytes)? else {
            return Ok(None);
        };
        match self.parse_line(&line)? {
            Some(op) => Ok(Some(op)),
            None => match self.pending.take() {
                Some(pending) => self.finish_payload(pending, buf),
                None => Ok(None),
            },
        }
    }

    fn finish_payload(
        &mut self,
        mut pending: Pending,
        buf: &mut BytesMut,
    ) -> Result<Option<RouteOp>, ProtocolError> {
        let Some((headers, payload)) = take_payload(buf, pending.total_len, pending.header_len)?
        else {
            self.pending = Some(pending);
            return Ok(None);
        };
        pending.message.headers = headers;
        pending.message.payload = payload;
        Ok(Some(RouteOp::Message(pending.message)))
    }

    /// Parses one control line; RMSG/HMSG set `self.pending` and return `Ok(None)`.
    fn parse_line(&mut self, line: &Bytes) -> Result<Option<RouteOp>, ProtocolError> {
        let mut args = Args::new(line);
        let Some(op) = args.next() else {
            return Err(ProtocolError::UnknownOperation);
        };
        let name = &line[op.0..op.1];
        let is = |expected: &[u8]| name.eq_ignore_ascii_case(expected);
        let json = |mut args: Args| {
            let rest = args.rest().ok_or(ProtocolError::UnknownOperation)?;
            Ok(line.slice(rest..))
        };
        if is(b"RS+") {
            self.parse_interest(line, args, true).map(Some)
        } else if is(b"RS-") {
            self.parse_interest(line, args, false).map(Some)
        } else if is(b"RMSG") {
            self.parse_message(line, args, false).map(|()| None)
        } else if is(b"HMSG") {
            self.parse_message(line, args, true).map(|()| None)
        } else if is(b"PING") && args.next().is_none() {
            Ok(Some(RouteOp::Ping))
        } else if is(b"PONG") && args.next().is_none() {
            Ok(Some(RouteOp::Pong))
        } else if is(b"INFO") {
            json(args).map(|j| Some(RouteOp::Info(j)))
        } else if is(b"CONNECT") {
            json(args).map(|j| Some(RouteOp::Connect(j)))
        } else if is(b"-ERR") {
            let text = json(args)?;
            let unquoted = text
                .strip_prefix(b"'")
                .and_then(|t| t.strip_suffix(b"'"))
                .map_or(text.clone(), |t| text.slice_ref(t));
            Ok(Some(RouteOp::Err(unquoted)))
        } else {
            Err(ProtocolError::UnknownOperation)
        }
    }

    /// The account: the first argument, or the pinned one.
    fn account(&self, line: &Bytes, args: &[(usize, usize)]) -> Option<(Bytes, usize)> {
        match &self.pinned {
            Some(account) => Some((account.clone(), 0)),
            None => args.first().map(|a| (line.slice(a.0..a.1), 1)),
        }
    }

    fn parse_interest(
        &self,
        line: &Bytes,
        args: Args,
        added: bool,
    ) -> Result<RouteOp, ProtocolError> {
        let mut parts = [(0, 0); 4];
        let count = args.collect_into(&mut parts)?;
        let (account, used) = self
            .account(line, &parts[..count])
            .ok_or(ProtocolError::UnknownOperation)?;
        let rest = &parts[used..count];
        let slice = |a: &(usize, usize)| line.slice(a.0..a.1);
        match (added, rest) {
            (_, [subject]) if added => Ok(RouteOp::Interest {
                account,
                subject: slice(subject),
                queue: None,
            }),
            (_, [subject, queue, weight]) if added => {
                let weight = u32::try_from(size_arg(line, *weight)?)
                    .map_err(|_| ProtocolError::UnknownOperation)?;
                Ok(RouteOp::Interest {
                    account,
                    subject: slice(subject),
                    queue: Some((slice(queue), weight)),
                })
            }
            (_, [subject]) => Ok(RouteOp::NoInterest {
                account,
                subject: slice(subject),
                queue: None,
            }),
            (_, [subject, queue]) if !added => Ok(RouteOp::NoInterest {
                account,
                subject: slice(subject),
                queue: Some(slice(queue)),
            }),
            _ => Err(ProtocolError::UnknownOperation),
        }
    }

    fn parse_message(
        &mut self,
        line: &Bytes,
        args: Args,
        headers: bool,
    ) -> Result<(), ProtocolError> {
        let parts: Vec<(usize, usize)> = args.collect();
        let (account, used) = self
            .account(line, &parts)
            .ok_or(ProtocolError::UnknownOperation)?;
        let sizes = if headers { 2 } else { 1 };
        // The subject, then whatever sits between it and the sizes.
        if parts.len() < used + 1 + sizes {
            return Err(ProtocolError::UnknownOperation);
        }
        let (head, size_parts) = parts.split_at(parts.len() - sizes);
        let subject = head[used];
        let middle = &head[used + 1..];
        let slice = |a: &(usize, usize)| line.slice(a.0..a.1);
        let (reply, queues) = match middle {
            [] => (None, &[][..]),
            [marker, reply, queues @ ..] if &line[marker.0..marker.1] == b"+" => {
                (Some(slice(reply)), queues)
            }
            [marker, queues @ ..] if &line[marker.0..marker.1] == b"|" => (None, queues),
            [reply] => (Some(slice(reply)), &[][..]),
            _ => return Err(ProtocolError::UnknownOperation),
        };
        let total_len = size_arg(line, size_parts[sizes - 1])?;
        let header_len = match headers {
            true => Some(size_arg(line, size_parts[0])?),
            false => None,
        };
        if header_len.is_some_and(|h| h > total_len) {
            return Err(ProtocolError::UnknownOperation);
        }
        if total_len > self.limits.max_payload_bytes {
            return Err(ProtocolError::MaxPayloadExceeded);
        }
        self.pending = Some(Pending {
            message: RoutedMessage {
                account,
                subject: slice(&subject),
                reply,
                queues: queues.iter().map(slice).collect(),
                headers: None,
                payload: Bytes::new(),
            },
            header_len,
            total_len,
        });
        Ok(())
    }
}

/// Writes `RS+` for an account's subject, or for its queue group with `weight` members.
/// `account` is `None` on a connection pinned to the account.
pub fn encode_interest(
    out: &mut BytesMut,
    account: Option<&[u8]>,
    subject: &[u8],
    queue: Option<(&[u8], u32)>,
) {
    out.put_slice(b"RS+ ");
    put_account(out, account);
    out.put_slice(subject);
    if let Some((queue, weight)) = queue {
        out.put_u8(b' ');
        out.put_slice(queue);
        out.put_u8(b' ');
        out.put_slice(weight.to_string().as_bytes());
    }
    out.put_slice(b"\r\n");
}

/// Writes `RS-` for an account's subject or queue group.
pub fn encode_no_interest(
    out: &mut BytesMut,
    account: Option<&[u8]>,
    subject: &[u8],
    queue: Option<&[u8]>,
) {
    out.put_slice(b"RS- ");
    put_account(out, account);
    out.put_slice(subject);
    if let Some(queue) = queue {
        out.put_u8(b' ');
        out.put_slice(queue);
    }
    out.put_slice(b"\r\n");
}

/// Writes a message as `RMSG` (no headers) or `HMSG`, with the queue groups the receiver is
/// to serve. `msg.account` is left out when `pinned`.
pub fn encode_message(out: &mut BytesMut, msg: &RoutedMessage, pinned: bool) {
    encode_message_parts(
        out,
        (!pinned).then_some(&msg.account[..]),
        &msg.subject,
        msg.reply.as_deref(),
        &msg.queues,
        msg.headers.as_deref(),
        &msg.payload,
    );
}

/// [`encode_message`] from borrowed parts, so a server forwarding a client's message encodes
/// it without building a [`RoutedMessage`]. `account` is `None` on a pinned connection.
pub fn encode_message_parts(
    out: &mut BytesMut,
    account: Option<&[u8]>,
    subject: &[u8],
    reply: Option<&[u8]>,
    queues: &[Bytes],
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    out.put_slice(match headers {
        Some(_) => b"HMSG ",
        None => b"RMSG ",
    });
    put_account(out, account);
    out.put_slice(subject);
    match (reply, queues.is_empty()) {
        (Some(reply), true) => {
            out.put_u8(b' ');
            out.put_slice(reply);
        }
        (Some(reply), false) => {
            out.put_slice(b" + ");
            out.put_slice(reply);
        }
        (None, false) => out.put_slice(b" |"),
        (None, true) => {}
    }
    for queue in queues {
        out.put_u8(b' ');
        out.put_slice(queue);
    }
    let headers_len = headers.map(<[u8]>::len);
    let total = headers_len.unwrap_or(0) + payload.len();
    if let Some(len) = headers_len {
        out.put_u8(b' ');
        super::encode::write_decimal(out, len as u64);
    }
    out.put_u8(b' ');
    super::encode::write_decimal(out, total as u64);
    out.put_slice(b"\r\n");
    if let Some(headers) = headers {
        out.put_slice(headers);
    }
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

fn put_account(out: &mut BytesMut, account: Option<&[u8]>) {
    if let Some(account) = account {
        out.put_slice(account);
        out.put_u8(b' ');
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
