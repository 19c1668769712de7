use super::*;

fn parse_all(input: &[u8]) -> Result<Vec<ClientOp>, ProtocolError> {
    let mut parser = Parser::default();
    let mut buf = BytesMut::from(input);
    let mut ops = Vec::new();
    while let Some(op) = parser.next_op(&mut buf)? {
        ops.push(op);
    }
    Ok(ops)
}

fn publish(subject: &str, reply: Option<&str>, headers: Option<&str>, payload: &str) -> ClientOp {
    ClientOp::Publish(Publish {
        subject: Bytes::copy_from_slice(subject.as_bytes()),
        reply: reply.map(|r| Bytes::copy_from_slice(r.as_bytes())),
        headers: headers.map(|h| Bytes::copy_from_slice(h.as_bytes())),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    })
}

const MIXED: &[u8] = b"CONNECT {\"verbose\":false}\r\nPING\r\nsub foo.* q 1\r\nSUB bar 2\r\n\
PUB foo.x 5\r\nhello\r\nPUB foo.y reply.1 0\r\n\r\nHPUB h r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
UNSUB 1 10\r\nunsub 2\r\nPONG\r\n";

fn mixed_expected() -> Vec<ClientOp> {
    vec![
        ClientOp::Connect(Bytes::from_static(b"{\"verbose\":false}")),
        ClientOp::Ping,
        ClientOp::Subscribe {
            subject: Bytes::from_static(b"foo.*"),
            queue: Some(Bytes::from_static(b"q")),
            sid: Bytes::from_static(b"1"),
        },
        ClientOp::Subscribe {
            subject: Bytes::from_static(b"bar"),
            queue: None,
            sid: Bytes::from_static(b"2"),
        },
        publish("foo.x", None, None, "hello"),
        publish("foo.y", Some("reply.1"), None, ""),
        publish("h", Some("r"), Some("NATS/1.0\r\n\r\n"), "hi"),
        ClientOp::Unsubscribe {
            sid: Bytes::from_static(b"1"),
            max_msgs: Some(10),
        },
        ClientOp::Unsubscribe {
            sid: Bytes::from_static(b"2"),
            max_msgs: None,
        },
        ClientOp::Pong,
    ]
}

#[test]
fn many_ops_in_one_buffer_come_out_in_order() {
    assert_eq!(parse_all(MIXED).unwrap(), mixed_expected());
}

#[test]
fn the_same_ops_come_out_whatever_the_split_points() {
    for split in 0..=MIXED.len() {
        let mut parser = Parser::default();
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for chunk in [&MIXED[..split], &MIXED[split..]] {
            buf.extend_from_slice(chunk);
            while let Some(op) = parser.next_op(&mut buf).unwrap() {
                ops.push(op);
            }
        }
        assert_eq!(ops, mixed_expected(), "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn byte_at_a_time_feeding_yields_the_same_ops() {
    let mut parser = Parser::default();
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for b in MIXED {
        buf.extend_from_slice(&[*b]);
        while let Some(op) = parser.next_op(&mut buf).unwrap() {
            ops.push(op);
        }
    }
    assert_eq!(ops, mixed_expected());
}

#[test]
fn tabs_and_runs_of_spaces_separate_arguments() {
    let ops = parse_all(b"PUB\tfoo   bar\t 2\r\nok\r\n").unwrap();
    assert_eq!(ops, vec![publish("foo", Some("bar"), None, "ok")]);
}

#[test]
fn a_bare_newline_terminates_a_line() {
    assert_eq!(
        parse_all(b"PING\nPONG\n").unwrap(),
        vec![ClientOp::Ping, ClientOp::Pong]
    );
}

#[test]
fn unknown_operations_are_rejected() {
    for bad in [
        &b"FOO\r\n"[..],
        b"\r\n",
        b"PINGX\r\n",
        b"PUBX foo 1\r\n",
        b"CONNECT\r\n",
    ] {
        assert_eq!(
            parse_all(bad),
            Err(ProtocolError::UnknownOperation),
            "{bad:?}"
        );
    }
}

#[test]
fn malformed_pub_arguments_are_rejected() {
    for bad in [
        &b"PUB foo\r\n"[..],
        b"PUB foo bar\r\n",
        b"PUB foo -1\r\n",
        b"PUB a b c 5\r\n",
        b"PUB foo 1234567890\r\n",
        b"HPUB foo 10\r\n",
        b"HPUB foo 10 5\r\n",
        b"SUB foo\r\n",
        b"SUB a b c d\r\n",
        b"UNSUB\r\n",
        b"UNSUB 1 2 3\r\n",
    ] {
        assert_eq!(
            parse_all(bad),
            Err(ProtocolError::UnknownOperation),
            "{bad:?}"
        );
    }
}

#[test]
fn payload_not_followed_by_crlf_is_rejected() {
    assert_eq!(
        parse_all(b"PUB foo 2\r\nabc\r\n"),
        Err(ProtocolError::UnknownOperation)
    );
}

#[test]
fn payload_over_the_limit_is_refused_before_it_is_read() {
    let mut parser = Parser::default();
    let line = format!("PUB foo {}\r\n", MAX_PAYLOAD_BYTES + 1);
    let mut buf = BytesMut::from(line.as_bytes());
    assert_eq!(
        parser.next_op(&mut buf),
        Err(ProtocolError::MaxPayloadExceeded)
    );
    let exact = format!("PUB foo {MAX_PAYLOAD_BYTES}\r\n");
    let mut buf = BytesMut::from(exact.as_bytes());
    assert_eq!(Parser::default().next_op(&mut buf), Ok(None));
}

#[test]
fn hpub_limit_counts_headers_and_payload() {
    let line = format!("HPUB foo 12 {}\r\n", MAX_PAYLOAD_BYTES + 1);
    assert_eq!(
        parse_all(line.as_bytes()),
        Err(ProtocolError::MaxPayloadExceeded)
    );
}

#[test]
fn control_line_over_the_limit_is_refused_even_unterminated() {
    let long = vec![b'A'; MAX_CONTROL_LINE_BYTES + MAX_OP_PREFIX_BYTES + 2];
    assert_eq!(parse_all(&long), Err(ProtocolError::MaxControlLineExceeded));
    assert_eq!(parse_all(&long[..long.len() - 1]), Ok(vec![]));
}

/// A line whose newline is the last byte the parser looks at: `PING`, spaces up to the
/// window, `\n`. Read at once it is a PING; read in pieces it used to be refused as too long
/// when the pieces before the newline filled all but the last byte of the window.
#[test]
fn a_line_ending_at_the_edge_of_the_window_parses_alike_however_it_arrives() {
    let mut line = b"PING".to_vec();
    line.resize(MAX_CONTROL_LINE_BYTES + MAX_OP_PREFIX_BYTES + 1, b' ');
    line.push(b'\n');
    assert_eq!(parse_all(&line), Ok(vec![ClientOp::Ping]));
    for split in 1..line.len() {
        let mut parser = Parser::default();
        let mut buf = BytesMut::from(&line[..split]);
        assert_eq!(parser.next_op(&mut buf), Ok(None), "split at {split}");
        buf.extend_from_slice(&line[split..]);
        assert_eq!(
            parser.next_op(&mut buf),
            Ok(Some(ClientOp::Ping)),
            "split at {split}"
        );
    }
}

/// The limit counts the arguments only, as nats-server does: 4096 argument bytes pass and
/// 4097 fail, whatever the op name.
#[test]
fn control_line_limit_counts_arguments_only() {
    let line = |arg_len: usize| {
        let mut line = b"SUB ".to_vec();
        line.extend(vec![b'a'; arg_len - 2]);
        line.extend_from_slice(b" 1\r\n");
        line
    };
    assert_eq!(parse_all(&line(MAX_CONTROL_LINE_BYTES)).unwrap().len(), 1);
    assert_eq!(
        parse_all(&line(MAX_CONTROL_LINE_BYTES + 1)),
        Err(ProtocolError::MaxControlLineExceeded)
    );
}

#[test]
fn unsub_max_that_does_not_parse_means_now() {
    let ops = parse_all(b"UNSUB 1 x\r\n").unwrap();
    assert_eq!(
        ops,
        vec![ClientOp::Unsubscribe {
            sid: Bytes::from_static(b"1"),
            max_msgs: Some(0)
        }]
    );
}

#[test]
fn bytes_wanted_reports_the_rest_of_a_payload() {
    let mut parser = Parser::default();
    let mut buf = BytesMut::from(&b"PUB foo 100\r\nabc"[..]);
    assert_eq!(parser.next_op(&mut buf), Ok(None));
    assert_eq!(parser.bytes_wanted(buf.len()), 99);
}

proptest::proptest! {
    #[test]
    fn any_split_of_valid_ops_parses_identically(cuts in proptest::collection::vec(0usize..MIXED.len(), 0..8)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut parser = Parser::default();
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        let mut prev = 0;
        for cut in cuts.into_iter().chain([MIXED.len()]) {
            buf.extend_from_slice(&MIXED[prev..cut]);
            prev = cut;
            while let Some(op) = parser.next_op(&mut buf).unwrap() {
                ops.push(op);
            }
        }
        proptest::prop_assert_eq!(ops, mixed_expected());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let mut parser = Parser::default();
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..input.len() + 1 {
            match parser.next_op(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }
}
