//! The consumer config fields of API level 1 (nats-server 2.11, 2.12): `pause_until` and the
//! priority-group settings, with nats-server's defaults and error texts
//! (`docs/consumer-2.14-facts.md` §1.3, §2.1).

use super::*;

/// nats-server's default `priority_timeout` for a `pinned_client` consumer.
pub const DEFAULT_PRIORITY_TIMEOUT_NS: i64 = 120 * NANOS_PER_SEC;
/// Longest priority group name.
pub const MAX_GROUP_NAME_BYTES: usize = 16;

impl ConsumerConfig {
    /// `pause_until` as Unix ns; `None` when not set (or Go's zero time).
    pub fn pause_until_ns(&self) -> Option<u64> {
        let ns = parse_rfc3339(self.pause_until.as_deref()?).ok().flatten()?;
        u64::try_from(ns).ok()
    }

    /// Defaults and checks of `pause_until` and the priority settings; the effective values
    /// are written back.
    pub(super) fn normalize_level_1(&mut self) -> Result<(), ApiError> {
        if let Some(time) = &self.pause_until {
            // Go fails to decode a bad time while unmarshalling the request.
            match parse_rfc3339(time).map_err(ApiError::invalid_json)? {
                Some(ns) => self.pause_until = Some(super::super::time::format_rfc3339(Some(ns))),
                None => self.pause_until = None,
            }
        }
        self.priority_timeout = self.priority_timeout.max(0);
        let policy = self.priority_policy;
        if policy != PriorityPolicy::None && self.priority_groups.is_empty() {
            return Err(ApiError::new(
                400,
                10159,
                "Setting PriorityPolicy requires at least one PriorityGroup to be set",
            ));
        }
        if policy == PriorityPolicy::None {
            if !self.priority_groups.is_empty() {
                return Err(ApiError::new(
                    400,
                    10196,
                    "consumer can not have priority groups when policy is none",
                ));
            }
            if self.priority_timeout > 0 {
                return Err(ApiError::new(
                    400,
                    10197,
                    "PinnedTTL cannot be set when PriorityPolicy is none",
                ));
            }
            return Ok(());
        }
        for group in &self.priority_groups {
            if group.is_empty() {
                return Err(ApiError::new(
                    400,
                    10161,
                    "Group name cannot be an empty string",
                ));
            }
            if !is_valid_group_name(group) {
                return Err(invalid_group_name());
            }
        }
        if !self.is_pull() {
            return Err(ApiError::new(
                400,
                10178,
                "priority groups can not be used with push consumers",
            ));
        }
        if policy == PriorityPolicy::PinnedClient && self.priority_timeout == 0 {
            self.priority_timeout = DEFAULT_PRIORITY_TIMEOUT_NS;
        }
        Ok(())
    }
}

/// `^[a-zA-Z0-9/_=-]{1,16}$`, nats-server's rule for group names.
pub fn is_valid_group_name(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= MAX_GROUP_NAME_BYTES
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

/// nats-server's error for a group name outside the rule (its text, typo included).
pub fn invalid_group_name() -> ApiError {
    ApiError::new(
        400,
        10162,
        "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
    )
}
