use super::*;
use proptest::prelude::*;

fn parse_all(parser: &mut RouteParser, input: &[u8]) -> Result<Vec<RouteOp>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut ops = Vec::new();
    while let Some(op) = parser.next_op(&mut buf)? {
        ops.push(op);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(ops)
}

fn parse(input: &[u8]) -> Vec<RouteOp> {
    parse_all(&mut RouteParser::default(), input).expect("parses")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn message(account: &str, subject: &str, reply: Option<&str>, queues: &[&str]) -> RoutedMessage {
    RoutedMessage {
        account: b(account),
        subject: b(subject),
        reply: reply.map(b),
        queues: queues.iter().map(|q| b(q)).collect(),
        headers: None,
        payload: Bytes::new(),
    }
}

/// What nats-server 2.9.10 sends on a route (captured on the wire).
#[test]
fn parses_what_nats_server_sends() {
    let ops = parse(
        b"RS+ $G foo.>\r\nRS+ $G bar q1 2\r\nRS- $G bar q1\r\nRS- $G foo.>\r\n\
          RMSG $G foo.x rep.1 5\r\nhello\r\n\
          HMSG $G foo.y 12 17\r\nNATS/1.0\r\n\r\nhello\r\n\
          RMSG $G zed | qz 2\r\nhi\r\nRMSG $G zed + rr qz qy 2\r\nhi\r\nPING\r\nPONG\r\n",
    );
    let hello = |mut m: RoutedMessage, payload: &str| {
        m.payload = b(payload);
        RouteOp::Message(m)
    };
    let mut with_headers = message("$G", "foo.y", None, &[]);
    with_headers.headers = Some(b("NATS/1.0\r\n\r\n"));
    assert_eq!(
        ops,
        vec![
            RouteOp::Interest {
                account: b("$G"),
                subject: b("foo.>"),
                queue: None
            },
            RouteOp::Interest {
                account: b("$G"),
                subject: b("bar"),
                queue: Some((b("q1"), 2))
            },
            RouteOp::NoInterest {
                account: b("$G"),
                subject: b("bar"),
                queue: Some(b("q1"))
            },
            RouteOp::NoInterest {
                account: b("$G"),
                subject: b("foo.>"),
                queue: None
            },
            hello(message("$G", "foo.x", Some("rep.1"), &[]), "hello"),
            hello(with_headers, "hello"),
            hello(message("$G", "zed", None, &["qz"]), "hi"),
            hello(message("$G", "zed", Some("rr"), &["qz", "qy"]), "hi"),
            RouteOp::Ping,
            RouteOp::Pong,
        ]
    );
}

#[test]
fn info_connect_and_err_keep_their_text() {
    let ops = parse(
        b"INFO {\"server_id\":\"A\"}\r\nCONNECT {\"cluster\":\"c\"}\r\n-ERR 'Authorization Violation'\r\n",
    );
    assert_eq!(
        ops,
        vec![
            RouteOp::Info(b("{\"server_id\":\"A\"}")),
            RouteOp::Connect(b("{\"cluster\":\"c\"}")),
            RouteOp::Err(b("Authorization Violation")),
        ]
    );
}

#[test]
fn a_pinned_connection_names_no_account() {
    let mut parser = RouteParser::new(ParserLimits::default(), Some(b("ACC")));
    let ops = parse_all(&mut parser, b"RS+ foo q 1\r\nRMSG foo + r q 2\r\nhi\r\n").expect("ok");
    let mut msg = message("ACC", "foo", Some("r"), &["q"]);
    msg.payload = b("hi");
    assert_eq!(
        ops,
        vec![
            RouteOp::Interest {
                account: b("ACC"),
                subject: b("foo"),
                queue: Some((b("q"), 1))
            },
            RouteOp::Message(msg),
        ]
    );
}

#[test]
fn bad_lines_are_errors_not_panics() {
    for bad in [
        &b"RS+ $G\r\n"[..],
        b"RS+ $G foo q\r\n",
        b"RS+ $G foo q notanumber\r\n",
        b"RS+ $G foo q 99999999999\r\n",
        b"RS- $G foo q extra\r\n",
        b"RMSG $G foo\r\n",
        b"RMSG $G foo reply extra 2\r\n",
        b"HMSG $G foo 9 5\r\nhello\r\n",
        b"RMSG $G foo 2\r\nhiX\r\n",
        b"SUB foo 1\r\n",
        b"INFO\r\n",
        b"\r\n",
    ] {
        let got = parse_all(&mut RouteParser::default(), bad);
        assert!(
            got.is_err(),
            "{:?} gave {got:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn limits_hold_on_routes_too() {
    let limits = ParserLimits {
        max_control_line_bytes: 32,
        max_payload_bytes: 4,
    };
    let mut parser = RouteParser::new(limits, None);
    assert_eq!(
        parse_all(&mut parser, b"RMSG $G foo 5\r\nhello\r\n"),
        Err(ProtocolError::MaxPayloadExceeded)
    );
    let long = format!("RS+ $G {}\r\n", "a".repeat(40));
    assert_eq!(
        parse_all(&mut RouteParser::new(limits, None), long.as_bytes()),
        Err(ProtocolError::MaxControlLineExceeded)
    );
}

fn token() -> impl Strategy<Value = String> {
    "[a-z$_][a-z0-9_]{0,6}"
}

fn routed() -> impl Strategy<Value = RoutedMessage> {
    (
        token(),
        prop::collection::vec(token(), 1..4).prop_map(|t| t.join(".")),
        prop::option::of(token()),
        prop::collection::vec(token(), 0..3),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(
            |(account, subject, reply, queues, headers, payload)| RoutedMessage {
                account: b(&account),
                subject: b(&subject),
                reply: reply.map(|r| b(&r)),
                queues: queues.iter().map(|q| b(q)).collect(),
                headers: headers.map(Bytes::from),
                payload: Bytes::from(payload),
            },
        )
}

proptest! {
    /// Whatever the encoder writes, the parser reads back the same, however the bytes are
    /// split into reads.
    #[test]
    fn encoded_messages_parse_back_across_any_split(
        msgs in prop::collection::vec(routed(), 1..4),
        pinned in any::<bool>(),
        split in 1usize..17,
    ) {
        let account = msgs[0].account.clone();
        let msgs: Vec<RoutedMessage> = msgs
            .into_iter()
            .map(|mut m| {
                if pinned {
                    m.account = account.clone();
                }
                m
            })
            .collect();
        let mut wire = BytesMut::new();
        for m in &msgs {
            encode_message(&mut wire, m, pinned);
            encode_interest(&mut wire, (!pinned).then_some(&m.account[..]), &m.subject, Some((b"q", 3)));
            encode_no_interest(&mut wire, (!pinned).then_some(&m.account[..]), &m.subject, None);
        }
        let mut parser = RouteParser::new(ParserLimits::default(), pinned.then(|| account.clone()));
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(split) {
            buf.extend_from_slice(chunk);
            while let Some(op) = parser.next_op(&mut buf).expect("parses") {
                got.push(op);
            }
        }
        prop_assert!(buf.is_empty());
        let mut want = Vec::new();
        for m in msgs {
            want.push(RouteOp::Message(m.clone()));
            want.push(RouteOp::Interest { account: m.account.clone(), subject: m.subject.clone(), queue: Some((b("q"), 3)) });
            want.push(RouteOp::NoInterest { account: m.account, subject: m.subject, queue: None });
        }
        prop_assert_eq!(got, want);
    }

    /// Random bytes never panic the parser.
    #[test]
    fn garbage_never_panics(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut parser = RouteParser::default();
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = parser.next_op(&mut buf) {}
    }
}
