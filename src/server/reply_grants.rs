//! `allow_responses`: a user may publish to the reply subject of a message it received, up to
//! `max` times and within `expires`, even where its publish permissions deny that subject.
//! Grants are recorded as messages with a reply subject are delivered, only for connections
//! whose user has the permission, so no one else pays for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;

use super::permissions::ResponsePermission;

/// Open grants a connection may hold; past it, expired ones are dropped, then the rest
/// (nats-server likewise prunes its reply map at a fixed size).
const MAX_REPLY_GRANTS: usize = 10_000;

struct Grant {
    remaining: u64,
    until: Option<Instant>,
}

/// One connection's open grants.
pub struct ReplyGrants {
    rule: ResponsePermission,
    open: Mutex<HashMap<Bytes, Grant>>,
}

impl ReplyGrants {
    pub fn new(rule: ResponsePermission) -> Self {
        Self {
            rule,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Grant>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message with reply subject `reply` was delivered to the connection.
    pub fn grant(&self, reply: &Bytes) {
        let now = Instant::now();
        let mut open = self.lock();
        if open.len() >= MAX_REPLY_GRANTS {
            open.retain(|_, g| g.until.is_none_or(|t| t > now));
            if open.len() >= MAX_REPLY_GRANTS {
                open.clear();
            }
        }
        open.insert(
            reply.clone(),
            Grant {
                remaining: self.rule.max,
                until: self.rule.expires.map(|d| now + d),
            },
        );
    }

    /// Whether a publish to `subject` is a response the connection may still send; uses it up.
    pub fn take(&self, subject: &[u8]) -> bool {
        let mut open = self.lock();
        let Some(grant) = open.get_mut(subject) else {
            return false;
        };
        let live = grant.until.is_none_or(|t| t > Instant::now());
        if live {
            grant.remaining = grant.remaining.saturating_sub(1);
        }
        if !live || grant.remaining == 0 {
            open.remove(subject);
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reply_may_be_answered_max_times_and_only_before_it_expires() {
        let grants = ReplyGrants::new(ResponsePermission {
            max: 2,
            expires: None,
        });
        let reply = Bytes::from_static(b"_INBOX.a");
        assert!(!grants.take(&reply), "nothing was received yet");
        grants.grant(&reply);
        assert!(grants.take(&reply));
        assert!(grants.take(&reply));
        assert!(!grants.take(&reply), "max is 2");

        let expiring = ReplyGrants::new(ResponsePermission {
            max: 5,
            expires: Some(Duration::from_millis(1)),
        });
        expiring.grant(&reply);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!expiring.take(&reply), "expired");
    }
}
