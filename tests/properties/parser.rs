//! The protocol parser gives the same ops and the same error whatever pieces its input
//! arrives in, and never more than its limits allow.

use bytes::BytesMut;
use jetlog::protocol::{ClientOp, Parser, ParserLimits, ProtocolError};

/// What one parser made of a byte stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    ops: Vec<ClientOp>,
    /// The error that ended the connection, if one did.
    error: Option<ProtocolError>,
    /// Bytes left in the buffer at the end (only compared when there was no error: after an
    /// error the connection is closed and what was buffered is thrown away).
    rest: Vec<u8>,
    /// What `bytes_wanted` said at the end.
    wanted: usize,
}

/// Feeds `pieces` one after the other, taking every complete op after each, as the server's
/// read loop does, and stopping at the first error, which closes the connection.
fn feed<'a>(limits: ParserLimits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::new(limits);
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match parser.next_op(&mut buf) {
                Ok(Some(op)) => {
                    check_within_limits(&op, limits);
                    ops.push(op);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        ops,
                        error: Some(error),
                        rest: Vec::new(),
                        wanted: 0,
                    }
                }
            }
        }
    }
    let wanted = parser.bytes_wanted(buf.len());
    Outcome {
        ops,
        error: None,
        rest: buf.to_vec(),
        wanted,
    }
}

fn check_within_limits(op: &ClientOp, limits: ParserLimits) {
    if let ClientOp::Publish(msg) = op {
        assert!(
            msg.size() <= limits.max_payload_bytes,
            "a publish of {} bytes passed a max_payload of {}",
            msg.size(),
            limits.max_payload_bytes
        );
        assert!(!msg.subject.is_empty(), "a publish without a subject");
    }
}

/// Limits from one byte: 255 is the default, anything else that many bytes, so that a fuzzer
/// reaches the limit checks with short inputs.
fn limit(byte: u8, default: usize) -> usize {
    if byte == u8::MAX {
        default
    } else {
        usize::from(byte)
    }
}

/// Input layout: `[control line limit][payload limit][cut count][cut count × u16 LE][stream]`.
/// The stream is fed whole, cut at the given points (taken modulo its length), and, when short,
/// one byte at a time; all three must give the same outcome.
pub fn split_equivalence(data: &[u8]) {
    let [control, payload, cuts, rest @ ..] = data else {
        return;
    };
    let defaults = ParserLimits::default();
    let limits = ParserLimits {
        max_control_line_bytes: limit(*control, defaults.max_control_line_bytes),
        max_payload_bytes: limit(*payload, defaults.max_payload_bytes),
    };
    let cut_bytes = usize::from(cuts % 16) * 2;
    if rest.len() < cut_bytes {
        return;
    }
    let (cut_bytes, stream) = rest.split_at(cut_bytes);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    cuts.push(stream.len());

    let whole = feed(limits, [stream]);
    let mut start = 0;
    let pieces = cuts.iter().map(|&cut| {
        let piece = &stream[start..cut];
        start = cut;
        piece
    });
    let split = feed(limits, pieces);
    assert_eq!(whole, split, "cut at {cuts:?}");
    // Byte by byte costs a scan of the buffer per byte; keep it to inputs where that is cheap.
    if stream.len() <= 2048 {
        let bytewise = feed(limits, stream.chunks(1));
        assert_eq!(whole, bytewise, "fed one byte at a time");
    }
}
