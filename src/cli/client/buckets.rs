//! What key-value and object-store buckets have in common on the server: each is a stream
//! named after the bucket with a fixed prefix (`KV_<bucket>`, `OBJ_<bucket>`) whose subjects
//! follow a fixed pattern. Listing and inspecting buckets therefore goes through the stream
//! API, filtered the way the `nats` CLI and nats.go filter it (facts sheet §6).

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::Context;
use serde_json::{json, Map, Value};

use super::api;

/// The two kinds of bucket, with the naming conventions the clients agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    KeyValue,
    Object,
}

impl BucketKind {
    /// The prefix of the stream that holds a bucket.
    fn stream_prefix(self) -> &'static str {
        match self {
            Self::KeyValue => "KV_",
            Self::Object => "OBJ_",
        }
    }

    /// A subject every bucket of this kind captures: the server filters the stream listing
    /// by it, so unrelated streams are not even sent.
    fn listing_subject(self) -> &'static str {
        match self {
            Self::KeyValue => "$KV.*.>",
            Self::Object => "$O.*.M.>",
        }
    }

    /// How the kind reads in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::KeyValue => "key-value bucket",
            Self::Object => "object store bucket",
        }
    }

    /// The name of the stream behind `bucket`.
    pub fn stream_name(self, bucket: &str) -> String {
        format!("{}{bucket}", self.stream_prefix())
    }

    /// The bucket a stream holds, if the stream is one of this kind.
    fn bucket_of(self, stream: &str) -> Option<&str> {
        stream
            .strip_prefix(self.stream_prefix())
            .filter(|b| is_valid_bucket_name(b))
    }
}

/// Bucket names are what both clients accept (`[a-zA-Z0-9_-]+`), so a name the CLI takes is
/// one every client can open.
pub fn is_valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Refuses a bucket name before anything is sent.
pub fn check_bucket_name(name: &str) -> Result<()> {
    if !is_valid_bucket_name(name) {
        bail!("invalid bucket name {name:?}: use letters, digits, '_' and '-' only");
    }
    Ok(())
}

/// The `STREAM.INFO` reply of every bucket of `kind`, sorted by bucket name.
pub async fn list_infos(js: &Context, kind: BucketKind) -> Result<Vec<(String, Value)>> {
    let mut filter = Map::new();
    filter.insert("subject".into(), json!(kind.listing_subject()));
    let infos = api::list_all(js, "STREAM.LIST", "streams", filter).await?;
    let mut buckets: Vec<(String, Value)> = infos
        .into_iter()
        .filter_map(|info| {
            let stream = info["config"]["name"].as_str()?;
            let bucket = kind.bucket_of(stream)?.to_string();
            Some((bucket, info))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(buckets)
}

/// The `STREAM.INFO` reply of one bucket, with an error that names the bucket, not the stream.
pub async fn info_json(js: &Context, kind: BucketKind, bucket: &str) -> Result<Value> {
    check_bucket_name(bucket)?;
    api::request(
        js,
        &format!("STREAM.INFO.{}", kind.stream_name(bucket)),
        &json!({}),
    )
    .await
    .with_context(|| format!("{} {bucket}", kind.noun()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streams_with_the_kind_prefix_are_buckets() {
        assert_eq!(BucketKind::KeyValue.bucket_of("KV_config"), Some("config"));
        assert_eq!(BucketKind::KeyValue.bucket_of("OBJ_config"), None);
        assert_eq!(BucketKind::Object.bucket_of("OBJ_files"), Some("files"));
        // A stream named like a bucket but not a valid bucket name is not one.
        assert_eq!(BucketKind::KeyValue.bucket_of("KV_"), None);
        assert_eq!(BucketKind::KeyValue.bucket_of("KV_a.b"), None);
    }

    #[test]
    fn bucket_names_are_restricted_to_what_clients_accept() {
        assert!(is_valid_bucket_name("app-config_2"));
        for bad in ["", "a.b", "a b", "a*", "a>", "ä"] {
            assert!(!is_valid_bucket_name(bad), "{bad:?}");
        }
    }
}
