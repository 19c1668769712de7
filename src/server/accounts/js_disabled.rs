//! `$JS.API` in an account without JetStream on a server with it: every request is answered
//! "JetStream not enabled for account" (503, 10039), as nats-server answers it, instead of
//! no responders, so a client learns why. Answered on the requester's own task: the reply is
//! routed straight back into the same account.

use bytes::Bytes;

use super::imports::Target;
use crate::protocol::Publish;
use crate::server::outbound::Forward;
use crate::server::router::{Deliveries, Reach};

/// The subjects the responder covers; direct gets and pull requests stay unanswered (no
/// responders), as with JetStream on and nothing serving them.
pub const JS_API_ALL: &str = "$JS.API.>";
const NOT_ANSWERED: &[&[u8]] = &[b"$JS.API.DIRECT.GET.", b"$JS.API.CONSUMER.MSG.NEXT."];

pub(super) struct JetStreamDisabled {
    pub(super) account: Target,
}

/// The reply's `type`: that of the request's response where it is known.
fn response_type(subject: &[u8]) -> &'static str {
    let tokens: Vec<&[u8]> = subject.split(|b| *b == b'.').skip(2).collect();
    match tokens.as_slice() {
        [b"INFO"] => "account_info_response",
        [b"STREAM", b"CREATE", ..] => "stream_create_response",
        [b"STREAM", b"UPDATE", ..] => "stream_update_response",
        [b"STREAM", b"DELETE", ..] => "stream_delete_response",
        [b"STREAM", b"INFO", ..] => "stream_info_response",
        [b"STREAM", b"NAMES", ..] => "stream_names_response",
        [b"STREAM", b"LIST", ..] => "stream_list_response",
        [b"CONSUMER", b"CREATE" | b"DURABLE", ..] => "consumer_create_response",
        [b"CONSUMER", b"INFO", ..] => "consumer_info_response",
        _ => "error_response",
    }
}

impl Forward for JetStreamDisabled {
    fn forward(&self, subject: &[u8], msg: &Publish, _: Reach<'_>, out: &mut Deliveries) -> bool {
        if NOT_ANSWERED.iter().any(|p| subject.starts_with(p)) {
            return false;
        }
        let Some(reply) = msg.reply.clone() else {
            return true;
        };
        let body = format!(
            "{{\"type\":\"io.nats.jetstream.api.v1.{}\",\"error\":{{\"code\":503,\"err_code\":10039,\"description\":\"JetStream not enabled for account\"}}}}",
            response_type(subject)
        );
        let answer = Publish {
            subject: reply.clone(),
            reply: None,
            headers: None,
            payload: Bytes::from(body),
        };
        self.account.route(&reply, &answer, Reach::Local, out);
        true
    }

    fn has_interest(&self, subject: &[u8]) -> bool {
        !NOT_ANSWERED.iter().any(|p| subject.starts_with(p))
    }

    /// Each server answers its own clients.
    fn cluster_wide(&self) -> bool {
        false
    }
}
