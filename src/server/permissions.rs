//! Per-user publish and subscribe permissions, as nats-server's `authorization { users: [...] }`
//! grants them: each direction has an allow list (empty = everything) and a deny list, and a
//! deny always wins.
//!
//! Checks happen where nats-server makes them: a publish is checked before it is routed and a
//! subscription before it is made, each refused with a `-ERR 'Permissions Violation ...'` that
//! leaves the connection open. A wildcard subscription may overlap a denied subject
//! (`SUB secret.*` beside `deny: secret.plans`); it is accepted, and the denied messages are
//! skipped at delivery, which is why the connection's handle carries its permissions.

use crate::protocol::subject::{is_subset_match, subject_matches};

/// The allow and deny lists of one direction (publish or subscribe).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRule {
    /// Patterns allowed; empty allows everything not denied.
    pub allow: Vec<String>,
    /// Patterns denied, whatever `allow` says.
    pub deny: Vec<String>,
}

impl SubjectRule {
    /// Whether the rule restricts anything at all.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether a message may be published to the literal `subject`.
    pub fn permits_publish(&self, subject: &[u8]) -> bool {
        let allowed =
            self.allow.is_empty() || self.allow.iter().any(|p| subject_matches(p, subject));
        allowed && !self.deny.iter().any(|p| subject_matches(p, subject))
    }

    /// Whether a subscription on `subject` (a pattern) may be made: everything it can match
    /// must be allowed, and it must not lie wholly inside a denied pattern. One that only
    /// overlaps a denied pattern is allowed; the overlap is filtered at delivery.
    pub fn permits_subscription(&self, subject: &[u8]) -> bool {
        let allowed =
            self.allow.is_empty() || self.allow.iter().any(|p| is_subset_match(subject, p));
        allowed && !self.deny.iter().any(|p| is_subset_match(subject, p))
    }

    /// Whether a message on the literal `subject` must not be delivered to this client.
    pub fn denies_delivery(&self, subject: &[u8]) -> bool {
        self.deny.iter().any(|p| subject_matches(p, subject))
    }
}

/// A user's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: SubjectRule,
    pub subscribe: SubjectRule,
    /// `allow_responses`: the reply subjects of messages delivered to the user may be
    /// published to, whatever `publish` says.
    pub responses: Option<ResponsePermission>,
}

/// How long `allow_responses: true` lets a reply be answered (nats-server's
/// `DEFAULT_ALLOW_RESPONSE_EXPIRATION`).
pub const DEFAULT_RESPONSE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(120);

/// How far `allow_responses` goes for each message received with a reply subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Responses allowed to one reply subject.
    pub max: u64,
    /// How long after delivery they are allowed; `None` has no limit.
    pub expires: Option<std::time::Duration>,
}

impl Default for ResponsePermission {
    fn default() -> Self {
        Self {
            max: 1,
            expires: Some(DEFAULT_RESPONSE_EXPIRY),
        }
    }
}

/// nats-server's text for a refused publish (sent as `-ERR '<text>'`).
pub fn publish_violation(subject: &[u8]) -> String {
    format!(
        "Permissions Violation for Publish to \"{}\"",
        String::from_utf8_lossy(subject)
    )
}

/// nats-server's text for a refused subscription.
pub fn subscription_violation(subject: &[u8], queue: Option<&[u8]>) -> String {
    let subject = String::from_utf8_lossy(subject);
    match queue {
        Some(q) => format!(
            "Permissions Violation for Subscription to \"{subject}\" using queue \"{}\"",
            String::from_utf8_lossy(q)
        ),
        None => format!("Permissions Violation for Subscription to \"{subject}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: &[&str], deny: &[&str]) -> SubjectRule {
        SubjectRule {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn publish_needs_an_allow_match_and_no_deny_match() {
        let r = rule(&["orders.>", "_INBOX.>"], &["orders.secret"]);
        assert!(r.permits_publish(b"orders.new"));
        assert!(r.permits_publish(b"_INBOX.abc.1"));
        assert!(!r.permits_publish(b"orders.secret"));
        assert!(!r.permits_publish(b"billing.x"));
        let open = rule(&[], &["admin.>"]);
        assert!(open.permits_publish(b"anything"));
        assert!(!open.permits_publish(b"admin.reset"));
    }

    #[test]
    fn subscriptions_must_lie_inside_allow_and_not_inside_deny() {
        let r = rule(&["orders.>"], &["orders.secret.>"]);
        assert!(r.permits_subscription(b"orders.*"));
        assert!(r.permits_subscription(b"orders.>"));
        assert!(!r.permits_subscription(b">"), "wider than allowed");
        assert!(!r.permits_subscription(b"orders.secret.x"));
        assert!(!r.permits_subscription(b"orders.secret.>"));
        // Overlapping a deny is allowed; the denied part is filtered at delivery.
        assert!(r.denies_delivery(b"orders.secret.plan"));
        assert!(!r.denies_delivery(b"orders.new"));
    }

    #[test]
    fn violation_texts_match_nats_server() {
        assert_eq!(
            publish_violation(b"a.b"),
            "Permissions Violation for Publish to \"a.b\""
        );
        assert_eq!(
            subscription_violation(b"a.*", Some(b"q")),
            "Permissions Violation for Subscription to \"a.*\" using queue \"q\""
        );
    }
}
