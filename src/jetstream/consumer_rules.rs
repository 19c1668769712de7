//! Defaults, validation and update rules of `ConsumerConfig` (nats-server's
//! `setConsumerConfigDefaults`, `checkConsumerCfg`, `checkNewConsumerConfig`).

use super::*;

impl ConsumerConfig {
    /// Fills nats-server's defaults and validates against the stream, returning the effective
    /// config or the exact ApiError nats-server gives.
    pub fn normalized(mut self, stream: &StreamConfig) -> Result<ConsumerConfig, ApiError> {
        self.drop_unset_values();
        if let Some(time) = &self.opt_start_time {
            // Go fails to decode a bad time while unmarshalling the request.
            parse_rfc3339(time).map_err(ApiError::invalid_json)?;
        }
        self.set_defaults(stream);
        self.normalize_level_1()?;
        // nats-server gives a durable its stream's replicas, and an ephemeral one unless its
        // stream's retention is interest or work queue; the config says which it got. A
        // memory-storage durable of a limits stream stays R1: a replicated consumer's state
        // is written by its group's entries to the catalog.
        if self.num_replicas == 0 {
            let inherits = match stream.retention {
                Retention::Limits => self.is_durable() && !self.mem_storage,
                Retention::Interest | Retention::WorkQueue => true,
            };
            self.num_replicas = if inherits {
                stream.num_replicas.max(1)
            } else {
                1
            };
        }
        self.check(stream)?;
        self.check_work_queue(stream)?;
        if let Some(name) = self.effective_name() {
            if name.len() > MAX_NAME_BYTES {
                return Err(ApiError::new(
                    400,
                    10102,
                    format!("consumer name is too long, maximum allowed is {MAX_NAME_BYTES}"),
                ));
            }
        }
        // `updateInactiveThreshold`: ephemerals always expire; the config shows the default
        // without the server's internal jitter.
        if !self.is_durable() && self.inactive_threshold <= 0 {
            self.inactive_threshold = DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS;
        }
        Ok(self)
    }

    /// Go's zero values mean "not set"; normalise them so that a client sending `""` or `0`
    /// gets the same config as one omitting the field.
    fn drop_unset_values(&mut self) {
        for field in [
            &mut self.durable_name,
            &mut self.name,
            &mut self.description,
            &mut self.filter_subject,
            &mut self.sample_freq,
            &mut self.deliver_subject,
            &mut self.deliver_group,
        ] {
            drop_empty(field);
        }
        if self.opt_start_seq == Some(0) {
            self.opt_start_seq = None;
        }
        crate::jetstream::versioning::strip(&mut self.metadata);
        if self.metadata.as_ref().is_some_and(BTreeMap::is_empty) {
            self.metadata = None;
        }
    }

    /// `setConsumerConfigDefaults` without pedantic mode: negative limits become "unset", then
    /// the defaults that depend on the ack policy and the stream's consumer limits apply.
    fn set_defaults(&mut self, stream: &StreamConfig) {
        if self.max_deliver == 0 || self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        if self.max_ack_pending < -1 {
            self.max_ack_pending = -1;
        }
        for value in [
            &mut self.max_waiting,
            &mut self.max_batch,
            &mut self.max_expires,
            &mut self.max_bytes,
            &mut self.idle_heartbeat,
            &mut self.inactive_threshold,
        ] {
            if *value < 0 {
                *value = 0;
            }
        }
        if self.is_pull() && self.max_waiting == 0 {
            self.max_waiting = DEFAULT_MAX_WAITING;
        }
        if self.ack_wait == 0 && self.ack_policy != AckPolicy::None {
            self.ack_wait = DEFAULT_ACK_WAIT_NS;
        }
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        let limits = &stream.consumer_limits;
        if self.max_ack_pending == 0 {
            self.max_ack_pending = limits.max_ack_pending.unwrap_or(0);
        }
        if self.inactive_threshold == 0 {
            self.inactive_threshold = limits.inactive_threshold.unwrap_or(0);
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
    }

    /// `checkConsumerCfg`, in nats-server's order so that a config with several faults gets the
    /// same (first) error.
    fn check(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        self.check_names()?;
        self.check_replicas(stream)?;
        if self.backoff.iter().any(|b| *b < 0) {
            return Err(ApiError::new(
                400,
                10184,
                "consumer backoff needs to be positive",
            ));
        }
        if self.ack_wait < 0 {
            return Err(ApiError::new(
                400,
                10183,
                "consumer ack wait needs to be positive",
            ));
        }
        let backoff_len = i64::try_from(self.backoff.len()).unwrap_or(i64::MAX);
        if backoff_len > 0 && self.max_deliver != -1 && backoff_len > self.max_deliver {
            return Err(ApiError::consumer_max_deliver_backoff());
        }
        if self.description.as_ref().map_or(0, String::len) > MAX_DESCRIPTION_BYTES {
            return Err(ApiError::new(
                400,
                10107,
                format!(
                    "consumer description is too long, maximum allowed is {MAX_DESCRIPTION_BYTES}"
                ),
            ));
        }
        match &self.deliver_subject {
            Some(deliver) => self.check_push(deliver, stream)?,
            None => self.check_pull(stream)?,
        }
        self.check_limits(stream)?;
        self.check_filters(stream)?;
        self.check_start_position()?;
        if let Some(freq) = &self.sample_freq {
            check_sample_freq(freq)?;
        }
        if self.flow_control && self.idle_heartbeat == 0 {
            return Err(ApiError::new(
                400,
                10108,
                "consumer with flow control also needs heartbeats",
            ));
        }
        if let (Some(durable), Some(name)) = (&self.durable_name, &self.name) {
            if durable != name {
                return Err(durable_and_name_mismatch());
            }
        }
        let metadata_bytes: usize = self
            .metadata
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(ApiError::new(
                400,
                10135,
                format!(
                    "consumer metadata exceeds maximum size of {}KB",
                    MAX_METADATA_BYTES / 1024
                ),
            ));
        }
        Ok(())
    }

    fn check_names(&self) -> Result<(), ApiError> {
        // Over-long names get their own error (10102) after the other checks, as in
        // nats-server; only the characters are checked here.
        let bad_chars = |name: &str| name.len() <= MAX_NAME_BYTES && !is_valid_name(name);
        if self.name.as_deref().is_some_and(bad_chars) {
            return Err(invalid_config(
                "consumer name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.durable_name.as_deref().is_some_and(bad_chars) {
            return Err(invalid_config(
                "consumer durable name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        Ok(())
    }

    fn check_replicas(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        let stream_replicas = stream.num_replicas.max(1);
        if self.num_replicas > stream_replicas {
            return Err(ApiError::new(
                400,
                10126,
                "consumer config replica count exceeds parent stream",
            ));
        }
        if self.num_replicas < 0 {
            return Err(ApiError::new(
                400,
                10133,
                "replicas count cannot be negative",
            ));
        }
        if matches!(stream.retention, Retention::Interest | Retention::WorkQueue)
            && self.num_replicas != 0
            && self.num_replicas != stream_replicas
        {
            return Err(ApiError::new(
                400,
                10134,
                "consumer config replicas must match interest retention stream's replicas",
            ));
        }
        // Only a replicated stream (so, a cluster) gets here. A replicated consumer keeps
        // its state in the stream's group, so it has the stream's replicas or one.
        let unbuilt = if self.num_replicas > 1 && self.num_replicas < stream_replicas {
            Some("a consumer with fewer replicas than its stream, but more than one")
        } else if self.num_replicas > 1 && self.mem_storage {
            Some("a replicated consumer with memory storage")
        } else {
            None
        };
        if let Some(what) = unbuilt {
            return Err(ApiError::new(
                503,
                10010,
                format!("JetStream clustering support required: {what} is not built in a jetlog cluster yet"),
            ));
        }
        Ok(())
    }

    fn check_push(&self, deliver: &str, stream: &StreamConfig) -> Result<(), ApiError> {
        if !is_literal(deliver) {
            return Err(ApiError::new(
                400,
                10079,
                "consumer deliver subject has wildcards",
            ));
        }
        if !is_valid_subject(deliver) {
            return Err(ApiError::new(
                400,
                10112,
                "invalid push consumer deliver subject",
            ));
        }
        // `deliveryFormsCycle`: delivering into the stream's own subjects would store every
        // delivery again.
        if stream_subjects(stream)
            .iter()
            .any(|s| is_subset_match(deliver, s.as_str()))
        {
            return Err(ApiError::new(
                400,
                10081,
                "consumer deliver subject forms a cycle",
            ));
        }
        if self.max_waiting != 0 {
            return Err(ApiError::new(
                400,
                10080,
                "consumer in push mode can not set max waiting",
            ));
        }
        if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
            return Err(ApiError::new(
                400,
                10082,
                "consumer requires ack policy for max ack pending",
            ));
        }
        if self.idle_heartbeat > 0 && self.idle_heartbeat < MIN_IDLE_HEARTBEAT_NS {
            return Err(ApiError::new(
                400,
                10083,
                "consumer idle heartbeat needs to be >= 100ms",
            ));
        }
        Ok(())
    }

    fn check_pull(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if self.ack_policy == AckPolicy::None && stream.retention == Retention::WorkQueue {
            return Err(ApiError::new(
                400,
                10084,
                "consumer in pull mode requires explicit ack policy on workqueue stream",
            ));
        }
        if self.rate_limit_bps > 0 {
            return Err(ApiError::new(
                400,
                10086,
                "consumer in pull mode can not have rate limit set",
            ));
        }
        if self.max_waiting < 0 {
            return Err(ApiError::new(
                400,
                10087,
                "consumer max waiting needs to be positive",
            ));
        }
        if self.idle_heartbeat > 0 {
            return Err(ApiError::new(
                400,
                10088,
                "consumer idle heartbeat requires a push based consumer",
            ));
        }
        if self.flow_control {
            return Err(ApiError::new(
                400,
                10089,
                "consumer flow control requires a push based consumer",
            ));
        }
        if self.max_batch < 0 {
            return Err(ApiError::new(
                400,
                10114,
                "consumer max request batch needs to be > 0",
            ));
        }
        if self.max_expires != 0 && self.max_expires < MIN_MAX_EXPIRES_NS {
            return Err(ApiError::new(
                400,
                10115,
                "consumer max request expires needs to be >= 1ms",
            ));
        }
        Ok(())
    }

    /// The stream's `consumer_limits` cap what a consumer may ask for.
    fn check_limits(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        let limits = &stream.consumer_limits;
        if let Some(limit) = limits.max_ack_pending.filter(|l| *l > 0) {
            if self.max_ack_pending > limit {
                return Err(ApiError::new(
                    400,
                    10121,
                    format!("consumer max ack pending exceeds system limit of {limit}"),
                ));
            }
        }
        if let Some(limit) = limits.inactive_threshold.filter(|l| *l > 0) {
            if self.inactive_threshold > limit {
                return Err(ApiError::new(
                    400,
                    10153,
                    format!(
                        "consumer inactive threshold exceeds system limit of {}",
                        format_go_duration(limit)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_filters(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if self.filter_subject.is_some() && !self.filter_subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ));
        }
        if self
            .filter_subject
            .as_deref()
            .is_some_and(|f| !is_valid_subject(f))
        {
            return Err(invalid_config("invalid subject"));
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(ApiError::new(
                400,
                10139,
                "consumer filter in FilterSubjects cannot be empty",
            ));
        }
        let filters = self.filters();
        for (i, filter) in filters.iter().enumerate() {
            if !is_valid_subject(filter.as_str()) {
                return Err(invalid_config("invalid subject"));
            }
            let overlaps_another = filters
                .iter()
                .enumerate()
                .any(|(j, other)| i != j && is_subset_match(filter.as_str(), other.as_str()));
            if overlaps_another {
                return Err(ApiError::new(
                    400,
                    10138,
                    "consumer subject filters cannot overlap",
                ));
            }
        }
        // nats-server before 2.10 refused a filter that can match nothing the stream stores
        // (`validFilteredSubject`). We keep that check, accepting any overlap, so a typo'd
        // filter is an error rather than a consumer that never delivers. A stream with a
        // subject transform stores subjects its list does not name, so there the check is
        // left out, as nats-server 2.10+ leaves it out everywhere; so is it for a mirror or a
        // stream with sources, which store their origins' subjects.
        if stream
            .subject_transform
            .as_ref()
            .is_some_and(|t| !t.dest.is_empty())
            || stream.mirror.is_some()
            || stream.sources.is_some()
        {
            return Ok(());
        }
        let subjects = stream_subjects(stream);
        for filter in &filters {
            if !subjects
                .iter()
                .any(|s| subjects_overlap(filter.as_str(), s.as_str()))
            {
                return Err(ApiError::new(
                    400,
                    10093,
                    "consumer filter subject is not a valid subset of the interest subjects",
                ));
            }
        }
        Ok(())
    }

    fn check_start_position(&self) -> Result<(), ApiError> {
        let has_seq = self.opt_start_seq.is_some();
        let has_time = self.opt_start_time.is_some();
        let simple = |policy: &str| {
            if has_seq {
                Err(bad_start(policy, "sequence"))
            } else if has_time {
                Err(bad_start(policy, "time"))
            } else {
                Ok(())
            }
        };
        match self.deliver_policy {
            DeliverPolicy::All => simple("all"),
            DeliverPolicy::Last => simple("last"),
            DeliverPolicy::New => simple("new"),
            DeliverPolicy::LastPerSubject => {
                simple("last per subject")?;
                if self.filters().is_empty() {
                    return Err(not_set("last per subject", "filter subject"));
                }
                Ok(())
            }
            DeliverPolicy::ByStartSequence => {
                if !has_seq {
                    return Err(not_set("by start sequence", "start sequence"));
                }
                if has_time {
                    return Err(bad_start("by start sequence", "time"));
                }
                Ok(())
            }
            DeliverPolicy::ByStartTime => {
                if !has_time {
                    return Err(not_set("by start time", "start time"));
                }
                if has_seq {
                    // nats-server's template really does say "start start sequence".
                    return Err(bad_start("by start time", "start sequence"));
                }
                Ok(())
            }
        }
    }

    /// The work-queue rules of `addConsumerWithAssignment` that need only this config; the
    /// uniqueness rules (10099, 10100) need the other consumers and belong to the caller.
    fn check_work_queue(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if stream.retention != Retention::WorkQueue {
            return Ok(());
        }
        if self.ack_policy != AckPolicy::Explicit {
            return Err(ApiError::new(
                400,
                10098,
                "workqueue stream requires explicit ack",
            ));
        }
        if self.deliver_policy != DeliverPolicy::All {
            return Err(ApiError::new(
                400,
                10101,
                "consumer must be deliver all on workqueue stream",
            ));
        }
        Ok(())
    }

    /// The consumer's name: `name`, else `durable_name` (None for an unnamed ephemeral).
    pub fn effective_name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.durable_name.as_deref().filter(|n| !n.is_empty()))
    }

    /// Whether `durable_name` is set.
    pub fn is_durable(&self) -> bool {
        self.durable_name.as_deref().is_some_and(|d| !d.is_empty())
    }

    /// Whether the consumer is pulled from, i.e. has no deliver subject.
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.as_deref().is_none_or(str::is_empty)
    }

    /// The filters as a list (filter_subject or filter_subjects; empty = whole stream).
    pub fn filters(&self) -> Vec<String> {
        match self.filter_subject.as_deref() {
            Some(filter) if !filter.is_empty() => vec![filter.to_string()],
            _ => self.filter_subjects.clone(),
        }
    }

    /// Checks that `new` (normalized) may replace `self`, with nats-server's 10012 texts
    /// (`checkNewConsumerConfig`). A push consumer moving to another deliver subject is
    /// refused by nats-server (10013) only while the old subject still has interest; the caller
    /// knows about interest and must make that check.
    pub fn check_update(&self, new: &ConsumerConfig) -> Result<(), ApiError> {
        if self == new {
            return Ok(());
        }
        let refuse = |what: &str| Err(ApiError::consumer_create(what));
        if self.deliver_policy != new.deliver_policy {
            return refuse("deliver policy can not be updated");
        }
        if self.mem_storage != new.mem_storage {
            return refuse("storage type can not be updated");
        }
        if self.opt_start_seq.unwrap_or(0) != new.opt_start_seq.unwrap_or(0) {
            return refuse("start sequence can not be updated");
        }
        if !same_instant(
            self.opt_start_time.as_deref(),
            new.opt_start_time.as_deref(),
        ) {
            return refuse("start time can not be updated");
        }
        if self.ack_policy != new.ack_policy {
            return refuse("ack policy can not be updated");
        }
        if self.replay_policy != new.replay_policy {
            return refuse("replay policy can not be updated");
        }
        if self.idle_heartbeat != new.idle_heartbeat {
            return refuse("heart beats can not be updated");
        }
        if self.flow_control != new.flow_control {
            return refuse("flow control can not be updated");
        }
        match (self.is_pull(), new.is_pull()) {
            (true, false) => return refuse("can not update pull consumer to push based"),
            (false, true) => return refuse("can not update push consumer to pull based"),
            _ => {}
        }
        if self.max_waiting != new.max_waiting {
            return refuse("max waiting can not be updated");
        }
        let backoff_len = i64::try_from(new.backoff.len()).unwrap_or(i64::MAX);
        if backoff_len > 0 && new.max_deliver != -1 && backoff_len > new.max_deliver {
            return Err(ApiError::consumer_max_deliver_backoff());
        }
        Ok(())
    }
}

/// Whether two optional start times name the same instant (Go compares with `Time.Equal`).
fn same_instant(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a == b || matches!((parse_rfc3339(a), parse_rfc3339(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// The subjects a stream stores: its own list, or its name when the list is empty (as
/// `StreamConfig::normalized` would fill it).
fn stream_subjects(stream: &StreamConfig) -> Vec<String> {
    if stream.subjects.is_empty() {
        vec![stream.name.clone()]
    } else {
        stream.subjects.clone()
    }
}

/// `sample_freq` is an integer percentage, optionally with `%`. Go's `strconv.Atoi` error (or
/// `<nil>` for a negative number) is part of the description.
fn check_sample_freq(freq: &str) -> Result<(), ApiError> {
    let digits = freq.strip_suffix('%').unwrap_or(freq);
    let detail = match digits.parse::<i64>() {
        Ok(n) if n >= 0 => return Ok(()),
        Ok(_) => "<nil>".to_string(),
        Err(_) => format!("strconv.Atoi: parsing {digits:?}: invalid syntax"),
    };
    Err(ApiError::new(
        400,
        10095,
        format!("failed to parse consumer sampling configuration: {detail}"),
    ))
}

pub(super) fn durable_and_name_mismatch() -> ApiError {
    ApiError::new(
        400,
        10132,
        "Consumer Durable and Name have to be equal if both are provided",
    )
}
