//! Which changes a stream update may make, with nats-server's refusals
//! (`configUpdateCheckLocked`).

use super::error::ApiError;
use super::stream_config::{invalid, Retention, StreamConfig};

impl StreamConfig {
    /// Checks that `new` (already normalized) may replace `self`, with nats-server's rules.
    pub fn check_update(&self, new: &StreamConfig) -> Result<(), ApiError> {
        if new.name != self.name {
            return Err(ApiError::stream_name_mismatch());
        }
        // Removing the mirror promotes the stream; any other change to it is refused.
        if new.mirror != self.mirror && new.mirror.is_some() {
            return Err(ApiError::new(
                400,
                10055,
                "stream mirror configuration can not be updated",
            ));
        }
        if new.storage != self.storage {
            return Err(ApiError::stream_update("storage type"));
        }
        let workqueue_change =
            (self.retention == Retention::WorkQueue) != (new.retention == Retention::WorkQueue);
        if self.retention != new.retention && workqueue_change {
            return Err(ApiError::stream_update(
                "retention policy to/from workqueue",
            ));
        }
        if self.sealed && !new.sealed {
            return Err(invalid(
                "stream configuration update can not unseal a sealed stream",
            ));
        }
        if self.deny_delete && !new.deny_delete {
            return Err(invalid(
                "stream configuration update can not cancel deny message deletes",
            ));
        }
        if self.deny_purge && !new.deny_purge {
            return Err(invalid(
                "stream configuration update can not cancel deny purge",
            ));
        }
        if self.allow_msg_counter != new.allow_msg_counter {
            return Err(invalid(
                "stream configuration update can not change message counter setting",
            ));
        }
        if self.persist_mode != new.persist_mode {
            return Err(invalid(
                "stream configuration update can not change persist mode",
            ));
        }
        if self.allow_msg_schedules && !new.allow_msg_schedules {
            return Err(invalid("message schedules can not be disabled"));
        }
        if self.allow_msg_ttl && !new.allow_msg_ttl {
            return Err(invalid("message TTL status can not be disabled"));
        }
        Ok(())
    }
}
