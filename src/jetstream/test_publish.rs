//! Publishes as the stream tests write them: a subject, `(name, value)` headers (none when
//! the list is empty) and a text payload.

use bytes::Bytes;

use crate::protocol::Publish;

pub fn msg(subject: &str, headers: &[(&str, &str)], payload: &str) -> Publish {
    let headers = (!headers.is_empty()).then(|| {
        let mut block = String::from("NATS/1.0\r\n");
        for (k, v) in headers {
            block.push_str(&format!("{k}: {v}\r\n"));
        }
        block.push_str("\r\n");
        Bytes::from(block)
    });
    Publish {
        subject: Bytes::copy_from_slice(subject.as_bytes()),
        reply: None,
        headers,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}
