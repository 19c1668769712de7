//! Direct get with `batch` and `multi_last` (ADR-31), byte for byte: the stream and the
//! requests are the ones probed on nats-server 2.15.1 in docs/stream-2.11-facts.md §3, and
//! each answer's header blocks are compared with what it sent (timestamps aside).

mod common;

use std::time::{Duration, Instant};

use common::raw_js::{create_stream, raw_client};
use common::{RawClient, TestServer};
use serde_json::json;

/// One message of an answer: its header block without the timestamp line, and its payload.
type Frame = (String, String);

/// Reads `MSG`/`HMSG` frames from `bytes` for as long as they are whole.
fn frames(bytes: &[u8]) -> (Vec<Frame>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(line_len) = bytes[at..].windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&bytes[at..at + line_len]).into_owned();
        let tokens: Vec<&str> = line.split(' ').collect();
        let (hdr_len, total): (usize, usize) = match tokens[0] {
            "HMSG" => (
                tokens[tokens.len() - 2].parse().unwrap(),
                tokens[tokens.len() - 1].parse().unwrap(),
            ),
            "MSG" => (0usize, tokens[tokens.len() - 1].parse().unwrap()),
            _ => {
                at += line_len + 2;
                continue;
            }
        };
        let body = at + line_len + 2;
        if bytes.len() < body + total + 2 {
            break;
        }
        let headers = String::from_utf8_lossy(&bytes[body..body + hdr_len]);
        let headers: String = headers
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("Nats-Time-Stamp: "))
            .collect();
        let payload = String::from_utf8_lossy(&bytes[body + hdr_len..body + total]).into_owned();
        out.push((headers, payload));
        at = body + total + 2;
    }
    (out, at)
}

/// Sends a direct get and collects its answer: up to an EOB or an error status, or (for a
/// single message) whatever came within a short wait.
fn direct(raw: &mut RawClient, subject: &str, body: &str) -> Vec<Frame> {
    raw.send(format!("PUB {subject} dg {}\r\n{body}\r\n", body.len()).as_bytes());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut bytes = Vec::new();
    loop {
        bytes.extend(raw.read_until_contains(b"\r\n", Duration::from_millis(200)));
        let (got, _) = frames(&bytes);
        let ended = got.last().is_some_and(|(h, _)| h.starts_with("NATS/1.0 "));
        if ended || (!got.is_empty() && Instant::now() + Duration::from_millis(4700) > deadline) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no answer to {body}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

fn setup() -> (TestServer, RawClient) {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    raw.send(b"SUB dg 9\r\n");
    create_stream(
        &mut raw,
        json!({"name": "DG", "subjects": ["dg.>"], "allow_direct": true}),
    );
    for subject in ["dg.a", "dg.b", "dg.a", "dg.c", "dg.b", "dg.a", "dg.d"] {
        let payload = format!("m-{subject}");
        let pub_line = if subject == "dg.b" {
            let hdr = "NATS/1.0\r\nX-Foo: bar\r\n\r\n";
            format!(
                "HPUB {subject} r {} {}\r\n{hdr}{payload}\r\n",
                hdr.len(),
                hdr.len() + payload.len()
            )
        } else {
            format!("PUB {subject} r {}\r\n{payload}\r\n", payload.len())
        };
        raw.send(pub_line.as_bytes());
        raw.read_until_contains(b"\"seq\"", Duration::from_secs(5));
    }
    (server, raw)
}

fn msg(subject: &str, seq: u64, extra: &str) -> String {
    let stored = if subject == "dg.b" {
        "X-Foo: bar\r\n"
    } else {
        ""
    };
    format!("NATS/1.0\r\n{stored}Nats-Stream: DG\r\nNats-Subject: {subject}\r\nNats-Sequence: {seq}\r\n{extra}\r\n")
}

fn batched(subject: &str, seq: u64, pending: u64, last: u64) -> String {
    msg(
        subject,
        seq,
        &format!("Nats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n"),
    )
}

fn eob(pending: u64, last: u64, up_to: Option<u64>) -> String {
    let up_to = up_to
        .map(|u| format!("Nats-UpTo-Sequence: {u}\r\n"))
        .unwrap_or_default();
    format!("NATS/1.0 204 EOB\r\nNats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n{up_to}\r\n")
}

fn headers(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(|(h, _)| h.clone()).collect()
}

const DG: &str = "$JS.API.DIRECT.GET.DG";

#[test]
fn batches_count_down_and_end_in_an_eob() {
    let (_server, mut raw) = setup();
    let got = direct(&mut raw, DG, r#"{"seq":1,"batch":3}"#);
    assert_eq!(
        headers(&got),
        [
            batched("dg.a", 1, 6, 0),
            batched("dg.b", 2, 5, 1),
            batched("dg.a", 3, 4, 2),
            eob(4, 3, None)
        ]
    );
    assert_eq!(got[1].1, "m-dg.b");
    let got = direct(
        &mut raw,
        DG,
        r#"{"seq":3,"next_by_subj":"dg.>","batch":10}"#,
    );
    assert_eq!(got.len(), 6);
    assert_eq!(got[4].0, batched("dg.d", 7, 0, 6));
    assert_eq!(got[5].0, eob(0, 7, None));
    // max_bytes: at least one message, then the EOB says what is left.
    let got = direct(&mut raw, DG, r#"{"seq":1,"batch":5,"max_bytes":10}"#);
    assert_eq!(headers(&got), [batched("dg.a", 1, 6, 0), eob(6, 1, None)]);
    // no_hdr sends bare messages and, as nats-server does, does not count down.
    let got = direct(&mut raw, DG, r#"{"seq":1,"batch":2,"no_hdr":true}"#);
    assert_eq!(headers(&got), ["", "", &eob(7, 2, None)]);
    let got = direct(&mut raw, DG, r#"{"seq":1,"batch":-1}"#);
    assert_eq!(headers(&got), [eob(7, 0, None)]);
    // A batch whose first lookup fails is a 404 with no EOB.
    let got = direct(&mut raw, DG, r#"{"seq":100,"batch":3}"#);
    assert_eq!(headers(&got), ["NATS/1.0 404 Message Not Found\r\n\r\n"]);
    // batch 0 is a single get.
    let got = direct(&mut raw, DG, r#"{"seq":2,"batch":0}"#);
    assert_eq!(headers(&got), [msg("dg.b", 2, "")]);
}

#[test]
fn multi_last_answers_in_stream_order_up_to_a_ceiling() {
    let (_server, mut raw) = setup();
    let got = direct(
        &mut raw,
        DG,
        r#"{"multi_last":["dg.a","dg.b"],"up_to_seq":3}"#,
    );
    assert_eq!(
        headers(&got),
        [
            batched("dg.b", 2, 1, 0),
            batched("dg.a", 3, 0, 2),
            eob(0, 3, Some(3))
        ]
    );
    let got = direct(&mut raw, DG, r#"{"multi_last":["dg.>"],"batch":2}"#);
    assert_eq!(
        headers(&got),
        [
            batched("dg.c", 4, 3, 0),
            batched("dg.b", 5, 2, 4),
            eob(2, 5, Some(7))
        ]
    );
    let got = direct(
        &mut raw,
        DG,
        r#"{"multi_last":["dg.>"],"batch":2,"seq":5,"up_to_seq":6}"#,
    );
    assert_eq!(
        headers(&got),
        [
            batched("dg.b", 5, 1, 0),
            batched("dg.a", 6, 0, 5),
            eob(0, 6, Some(6))
        ]
    );
    let got = direct(&mut raw, DG, r#"{"multi_last":["nope.>"]}"#);
    assert_eq!(headers(&got), ["NATS/1.0 404 No Results\r\n\r\n"]);
}

#[test]
fn bad_requests_get_nats_server_statuses() {
    let (_server, mut raw) = setup();
    let cases = [
        (DG, "", "NATS/1.0 408 Empty Request\r\n\r\n"),
        (DG, "{}", "NATS/1.0 408 Empty Request\r\n\r\n"),
        (DG, "{", "NATS/1.0 408 Malformed Request\r\n\r\n"),
        (
            DG,
            r#"{"seq":1,"last_by_subj":"dg.a"}"#,
            "NATS/1.0 408 Bad Request\r\n\r\n",
        ),
        (
            DG,
            r#"{"last_by_subj":"dg.a","batch":2}"#,
            "NATS/1.0 408 Bad Request\r\n\r\n",
        ),
        (
            DG,
            r#"{"next_by_subj":"dg.a","multi_last":["dg.a"]}"#,
            "NATS/1.0 408 Bad Request\r\n\r\n",
        ),
        (
            DG,
            r#"{"multi_last":["dg.a"],"up_to_seq":2,"up_to_time":"2020-01-01T00:00:00Z"}"#,
            "NATS/1.0 408 Bad Request\r\n\r\n",
        ),
        (
            "$JS.API.DIRECT.GET.DG.dg.a",
            r#"{"seq":1}"#,
            "NATS/1.0 408 Bad Request\r\n\r\n",
        ),
    ];
    for (subject, body, want) in cases {
        assert_eq!(
            headers(&direct(&mut raw, subject, body)),
            [want],
            "{subject} {body}"
        );
    }
    // The subject form: the last message on a subject, wildcards included; the body may
    // only say no_hdr.
    let got = direct(&mut raw, "$JS.API.DIRECT.GET.DG.dg.*", "");
    assert_eq!(headers(&got), [msg("dg.d", 7, "")]);
    let got = direct(&mut raw, "$JS.API.DIRECT.GET.DG.dg.b", r#"{"no_hdr":true}"#);
    assert_eq!(got, [(String::new(), "m-dg.b".to_string())]);
}

#[test]
fn more_than_1024_subjects_is_too_many_for_multi_last() {
    let (_server, mut raw) = setup();
    let mut batch = String::new();
    for i in 0..1025 {
        batch.push_str(&format!("PUB dg.many.{i} 1\r\nx\r\n"));
    }
    batch.push_str("PUB dg.many.last r 1\r\nx\r\n");
    raw.send(batch.as_bytes());
    raw.read_until_contains(b"\"seq\":1033", Duration::from_secs(10));
    let got = direct(&mut raw, DG, r#"{"multi_last":["dg.many.>"],"batch":5}"#);
    assert_eq!(headers(&got), ["NATS/1.0 413 Too Many Results\r\n\r\n"]);
    // Below the ceiling only 1024 subjects remain: allowed.
    let got = direct(
        &mut raw,
        DG,
        r#"{"multi_last":["dg.many.>"],"batch":1,"up_to_seq":1031}"#,
    );
    assert_eq!(got.len(), 2, "{got:?}");
}
