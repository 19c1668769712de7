//! The flags of `kv add`, named as natscli's `kv add` names them, turned into async-nats'
//! bucket configuration (which makes the `KV_<bucket>` stream).

use std::time::Duration;

use anyhow::{bail, Result};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{Placement, Republish, Source, StorageType, SubjectTransform};
use clap::{Args, ValueEnum};

use super::units::{parse_limit_duration, parse_size, parse_size_i32};
use crate::cli::parse_duration;

/// The most revisions a bucket keeps per key.
const MAX_HISTORY: i64 = 64;

/// Where a bucket's data lives.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StorageArg {
    File,
    Memory,
}

impl From<StorageArg> for StorageType {
    fn from(arg: StorageArg) -> Self {
        match arg {
            StorageArg::File => StorageType::File,
            StorageArg::Memory => StorageType::Memory,
        }
    }
}

/// The flags `kv add` and `object add` share, named as natscli's.
#[derive(Debug, Args)]
pub struct SharedBucketArgs {
    /// Replicas of the data (1 on a single server).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Largest the bucket may grow, e.g. 1GB (-1 = unlimited).
    #[arg(long, value_parser = parse_size)]
    pub max_bucket_size: Option<i64>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Where the data lives.
    #[arg(long, value_enum, default_value = "file")]
    pub storage: StorageArg,
    /// Place the bucket on servers with these tags (repeatable).
    #[arg(long)]
    tags: Vec<String>,
    /// Place the bucket in this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Compress the bucket's data (s2).
    #[arg(long)]
    pub compress: bool,
}

impl SharedBucketArgs {
    /// `--tags` and `--cluster` as a placement, when either was given.
    pub fn placement(&self) -> Option<Placement> {
        (!self.tags.is_empty() || self.cluster.is_some()).then(|| Placement {
            tags: self.tags.clone(),
            cluster: self.cluster.clone(),
        })
    }
}

/// The flags of `kv add`, named as in `nats kv add`.
#[derive(Debug, Args)]
pub struct BucketArgs {
    /// How many revisions to keep per key (1 to 64).
    #[arg(long, default_value_t = 1)]
    history: i64,
    /// How long values live, e.g. 10s or 24h (0 = forever).
    #[arg(long, value_parser = parse_limit_duration)]
    ttl: Option<Duration>,
    /// Largest value accepted, e.g. 1MB (-1 = the server's limit).
    #[arg(long, value_parser = parse_size_i32)]
    max_value_size: Option<i32>,
    /// Per-key TTLs, and markers for keys removed by limits that stay this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    marker_ttl: Option<Duration>,
    /// Republish values written on keys matching this subject (with --republish-destination).
    #[arg(long, requires = "republish_destination", value_name = "SRC")]
    republish_source: Option<String>,
    /// Where values are republished.
    #[arg(long, requires = "republish_source", value_name = "DEST")]
    republish_destination: Option<String>,
    /// Republish the headers only.
    #[arg(long, requires = "republish_source")]
    republish_headers: bool,
    /// A read replica of this bucket (its `KV_` stream mirrored, with direct gets).
    #[arg(long, conflicts_with = "source", value_name = "BUCKET")]
    mirror: Option<String>,
    /// With --mirror: the JetStream domain the bucket is in.
    #[arg(long, requires = "mirror", value_name = "DOMAIN")]
    mirror_domain: Option<String>,
    /// Take in the values of these buckets (repeatable), under this bucket's keys.
    #[arg(long, value_name = "BUCKET")]
    source: Vec<String>,
    #[command(flatten)]
    shared: SharedBucketArgs,
}

impl BucketArgs {
    pub fn config(&self, bucket: &str) -> Result<kv::Config> {
        if !(1..=MAX_HISTORY).contains(&self.history) {
            bail!(
                "--history must be between 1 and {MAX_HISTORY}, not {}",
                self.history
            );
        }
        Ok(kv::Config {
            bucket: bucket.to_string(),
            description: self.shared.description.clone().unwrap_or_default(),
            history: self.history,
            max_age: self.ttl.unwrap_or(Duration::ZERO),
            max_value_size: self.max_value_size.unwrap_or(-1),
            max_bytes: self.shared.max_bucket_size.unwrap_or(-1),
            storage: self.shared.storage.into(),
            num_replicas: self.shared.replicas,
            limit_markers: self.marker_ttl,
            compression: self.shared.compress,
            placement: self.shared.placement(),
            republish: self.republish(),
            mirror: self.mirror.as_ref().map(|origin| Source {
                name: origin.clone(),
                domain: self.mirror_domain.clone(),
                ..Default::default()
            }),
            sources: (!self.source.is_empty()).then(|| self.sources(bucket)),
            ..Default::default()
        })
    }

    fn republish(&self) -> Option<Republish> {
        let (source, destination) = (
            self.republish_source.as_ref()?,
            self.republish_destination.as_ref()?,
        );
        Some(Republish {
            source: source.clone(),
            destination: destination.clone(),
            headers_only: self.republish_headers,
        })
    }

    /// Each origin bucket's keys moved into this bucket's, as nats.go sources buckets.
    fn sources(&self, bucket: &str) -> Vec<Source> {
        self.source
            .iter()
            .map(|origin| Source {
                name: origin.clone(),
                subject_transforms: vec![SubjectTransform {
                    source: format!("$KV.{origin}.>"),
                    destination: format!("$KV.{bucket}.>"),
                }],
                ..Default::default()
            })
            .collect()
    }
}
