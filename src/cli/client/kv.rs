//! `jetlog kv …`: key-value buckets through async-nats' `kv` API, with the `nats` CLI's
//! command and argument names (`add`, `put`, `get`, `create`, `update`, `del`/`rm`, `purge`,
//! `history`, `keys`, `watch`, `ls`, `info`).
//!
//! Every operation is the client library's own, so what this CLI does to a bucket is exactly
//! what an application using async-nats does; the CLI adds argument checks, confirmations
//! for destructive steps, and output.

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::Context;
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};

use super::buckets::{self, check_bucket_name, BucketKind};
use super::connect::{self, CommonArgs};
use super::kv_config::BucketArgs;
use super::kv_view;
use super::output;
use super::pubsub::read_body;
use super::stream::confirm;

/// The most revisions a bucket may keep per key (nats-server and the clients agree on 64).

#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(subcommand)]
    action: KvAction,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum KvAction {
    /// Create a bucket.
    #[command(visible_alias = "new")]
    Add {
        /// Bucket name.
        bucket: String,
        #[command(flatten)]
        config: Box<BucketArgs>,
    },
    /// Store a value under a key.
    Put {
        bucket: String,
        key: String,
        /// The value; read from stdin when omitted and stdin is not a terminal.
        value: Option<String>,
    },
    /// Show the value of a key.
    Get {
        bucket: String,
        key: String,
        /// A specific revision instead of the latest.
        #[arg(long)]
        revision: Option<u64>,
        /// Print only the value's bytes.
        #[arg(long)]
        raw: bool,
    },
    /// Store a value only if the key has none (it is new, deleted or purged).
    Create {
        bucket: String,
        key: String,
        /// The value; read from stdin when omitted and stdin is not a terminal.
        value: Option<String>,
    },
    /// Store a value only if the key's latest revision is REVISION.
    Update {
        bucket: String,
        key: String,
        value: String,
        /// The revision the key must still be at.
        revision: u64,
    },
    /// Delete a key (a delete marker keeps its history), or the whole bucket without KEY.
    #[command(visible_alias = "rm")]
    Del {
        bucket: String,
        key: Option<String>,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Delete a key and all its history, leaving one purge marker.
    Purge {
        bucket: String,
        key: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show every revision of a key that the bucket keeps.
    History { bucket: String, key: String },
    /// Store an earlier revision's value again, as the key's newest.
    Revert {
        bucket: String,
        key: String,
        /// The revision whose value comes back.
        revision: u64,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List the keys that have a value.
    Keys { bucket: String },
    /// Print changes to a key (wildcards allowed) as they happen.
    Watch {
        bucket: String,
        /// Key or pattern, e.g. `config.*` or `>` for every key.
        #[arg(default_value = ">")]
        key: String,
        /// Skip the current values and show only changes made from now on.
        #[arg(long, conflicts_with = "include_history")]
        updates_only: bool,
        /// Start with every revision the bucket keeps, not only the latest ones.
        #[arg(long)]
        include_history: bool,
        /// Exit after this many entries (default: run until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// List buckets, or the keys of BUCKET.
    #[command(visible_alias = "list")]
    Ls {
        bucket: Option<String>,
        /// Only the bucket names, one per line.
        #[arg(short = 'n', long)]
        names: bool,
    },
    /// Show a bucket's configuration and state.
    #[command(visible_aliases = ["status", "view"])]
    Info { bucket: String },
}

impl KvAction {
    fn bucket(&self) -> Option<&str> {
        match self {
            Self::Add { bucket, .. }
            | Self::Put { bucket, .. }
            | Self::Get { bucket, .. }
            | Self::Create { bucket, .. }
            | Self::Update { bucket, .. }
            | Self::Del { bucket, .. }
            | Self::Purge { bucket, .. }
            | Self::History { bucket, .. }
            | Self::Revert { bucket, .. }
            | Self::Keys { bucket }
            | Self::Watch { bucket, .. }
            | Self::Info { bucket } => Some(bucket),
            Self::Ls { bucket, .. } => bucket.as_deref(),
        }
    }
}

/// `jetlog kv …`.
pub async fn run(args: KvArgs) -> Result<()> {
    let common = &args.common;
    if let Some(bucket) = args.action.bucket() {
        check_bucket_name(bucket)?;
    }
    let client = connect::connect(common).await?;
    let max_payload = client.server_info().max_payload;
    let js = connect::jetstream(client, common);
    match args.action {
        KvAction::Add { bucket, config } => add(&js, common, &bucket, &config).await,
        KvAction::Revert {
            bucket,
            key,
            revision,
            force,
        } => {
            let store = open(&js, &bucket).await?;
            let old = store
                .entry_for_revision(&key, revision)
                .await
                .with_context(|| format!("cannot read {bucket} > {key}"))?
                .filter(|e| e.operation == kv::Operation::Put)
                .ok_or_else(|| anyhow!("{bucket} > {key} has no value at revision {revision}"))?;
            confirm(
                &format!("store revision {revision}'s value of {bucket} > {key} as its newest"),
                force,
            )?;
            let written = store
                .put(&key, old.value)
                .await
                .with_context(|| format!("cannot put {bucket} > {key}"))?;
            kv_view::show_written(&bucket, &key, written, common.json)
        }
        KvAction::Put { bucket, key, value } => {
            let value = read_body(value, max_payload)?;
            let store = open(&js, &bucket).await?;
            let revision = store
                .put(&key, value)
                .await
                .with_context(|| format!("cannot put {bucket} > {key}"))?;
            kv_view::show_written(&bucket, &key, revision, common.json)
        }
        KvAction::Get {
            bucket,
            key,
            revision,
            raw,
        } => get(&js, common, &bucket, &key, revision, raw).await,
        KvAction::Create { bucket, key, value } => {
            let value = read_body(value, max_payload)?;
            let store = open(&js, &bucket).await?;
            let revision = store.create(&key, value).await.map_err(|err| {
                if err.kind() == CreateErrorKind::AlreadyExists {
                    anyhow!("{bucket} > {key} already has a value")
                } else {
                    anyhow!("cannot create {bucket} > {key}: {err}")
                }
            })?;
            kv_view::show_written(&bucket, &key, revision, common.json)
        }
        KvAction::Update {
            bucket,
            key,
            value,
            revision,
        } => {
            let store = open(&js, &bucket).await?;
            let written = store
                .update(&key, value.into(), revision)
                .await
                .map_err(|err| {
                    if err.kind() == UpdateErrorKind::WrongLastRevision {
                        anyhow!("{bucket} > {key} is not at revision {revision}: {err}")
                    } else {
                        anyhow!("cannot update {bucket} > {key}: {err}")
                    }
                })?;
            kv_view::show_written(&bucket, &key, written, common.json)
        }
        KvAction::Del { bucket, key, force } => match key {
            Some(key) => delete_key(&js, common, &bucket, &key, force).await,
            None => delete_bucket(&js, common, &bucket, force).await,
        },
        KvAction::Purge { bucket, key, force } => {
            let store = open(&js, &bucket).await?;
            confirm(
                &format!("purge {bucket} > {key} and all its history"),
                force,
            )?;
            store
                .purge(&key)
                .await
                .with_context(|| format!("cannot purge {bucket} > {key}"))?;
            kv_view::show_done("purged", &bucket, &key, common.json)
        }
        KvAction::History { bucket, key } => {
            let store = open(&js, &bucket).await?;
            let history = store
                .history(&key)
                .await
                .with_context(|| format!("cannot read the history of {bucket} > {key}"))?;
            let entries = bounded(common, "the history", history.try_collect::<Vec<_>>()).await?;
            kv_view::show_history(&entries, common.json)
        }
        KvAction::Keys { bucket } => keys(&js, common, &bucket).await,
        KvAction::Watch {
            bucket,
            key,
            updates_only,
            include_history,
            count,
        } => {
            let store = open(&js, &bucket).await?;
            let start = match (updates_only, include_history) {
                (true, _) => WatchStart::UpdatesOnly,
                (false, true) => WatchStart::AllHistory,
                (false, false) => WatchStart::LatestValues,
            };
            watch(&store, common, &key, start, count).await
        }
        KvAction::Ls { bucket, names } => match bucket {
            Some(bucket) => keys(&js, common, &bucket).await,
            None => {
                let infos = buckets::list_infos(&js, BucketKind::KeyValue).await?;
                kv_view::show_buckets(&infos, names, common.json)
            }
        },
        KvAction::Info { bucket } => {
            let info = buckets::info_json(&js, BucketKind::KeyValue, &bucket).await?;
            kv_view::show_status(info, common.json)
        }
    }
}

/// Binds a bucket, with an error that says which one is missing.
async fn open(js: &Context, bucket: &str) -> Result<kv::Store> {
    js.get_key_value(bucket)
        .await
        .map_err(|err| anyhow!("key-value bucket {bucket}: {err}"))
}

/// Bounds a wait that the user did not ask to be open-ended by `--timeout`.
async fn bounded<T, E: std::fmt::Display>(
    common: &CommonArgs,
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T> {
    tokio::time::timeout(common.timeout, future)
        .await
        .map_err(|_| anyhow!("{what} did not arrive within the timeout"))?
        .map_err(|err| anyhow!("reading {what}: {err}"))
}

async fn add(js: &Context, common: &CommonArgs, bucket: &str, args: &BucketArgs) -> Result<()> {
    let config = args.config(bucket)?;
    js.create_key_value(config)
        .await
        .map_err(|err| anyhow!("cannot create key-value bucket {bucket}: {err}"))?;
    if !common.json {
        output::line(format!("key-value bucket {bucket} created"))?;
    }
    let info = buckets::info_json(js, BucketKind::KeyValue, bucket).await?;
    kv_view::show_status(info, common.json)
}

async fn get(
    js: &Context,
    common: &CommonArgs,
    bucket: &str,
    key: &str,
    revision: Option<u64>,
    raw: bool,
) -> Result<()> {
    let store = open(js, bucket).await?;
    let entry = match revision {
        Some(revision) => store.entry_for_revision(key, revision).await,
        None => store.entry(key).await,
    }
    .with_context(|| format!("cannot read {bucket} > {key}"))?;
    let entry = match (entry, revision) {
        (Some(entry), _) if entry.operation == kv::Operation::Put => entry,
        (Some(entry), _) => bail!(
            "{bucket} > {key} was {} at revision {}",
            kv_view::operation_past_tense(entry.operation),
            entry.revision
        ),
        (None, Some(revision)) => bail!("{bucket} > {key} has no revision {revision}"),
        (None, None) => bail!("{bucket} > {key} not found"),
    };
    kv_view::show_entry(&entry, raw, common.json)
}

async fn delete_key(
    js: &Context,
    common: &CommonArgs,
    bucket: &str,
    key: &str,
    force: bool,
) -> Result<()> {
    let store = open(js, bucket).await?;
    confirm(&format!("delete {bucket} > {key}"), force)?;
    store
        .delete(key)
        .await
        .with_context(|| format!("cannot delete {bucket} > {key}"))?;
    kv_view::show_done("deleted", bucket, key, common.json)
}

async fn delete_bucket(js: &Context, common: &CommonArgs, bucket: &str, force: bool) -> Result<()> {
    // Look first, so a missing bucket is reported before anyone is asked about it.
    let info = buckets::info_json(js, BucketKind::KeyValue, bucket).await?;
    let values = info["state"]["messages"].as_u64().unwrap_or(0);
    confirm(
        &format!("delete key-value bucket {bucket} and its {values} values"),
        force,
    )?;
    js.delete_key_value(bucket)
        .await
        .map_err(|err| anyhow!("cannot delete key-value bucket {bucket}: {err}"))?;
    if common.json {
        output::json_pretty(&serde_json::json!({ "bucket": bucket, "deleted": true }))
    } else {
        output::line(format!("key-value bucket {bucket} deleted"))
    }
}

async fn keys(js: &Context, common: &CommonArgs, bucket: &str) -> Result<()> {
    let store = open(js, bucket).await?;
    let keys = store
        .keys()
        .await
        .with_context(|| format!("cannot list the keys of {bucket}"))?;
    let mut keys = bounded(common, "the keys", keys.try_collect::<Vec<String>>()).await?;
    keys.sort();
    kv_view::show_keys(&keys, common.json)
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchStart {
    /// The latest value of every matching key, then changes (what `nats kv watch` shows).
    LatestValues,
    /// Every revision the bucket keeps, then changes.
    AllHistory,
    /// Only changes made after the watch started.
    UpdatesOnly,
}

async fn watch(
    store: &kv::Store,
    common: &CommonArgs,
    key: &str,
    start: WatchStart,
    count: Option<u64>,
) -> Result<()> {
    let bucket = &store.name;
    let watched = match start {
        WatchStart::LatestValues => store.watch_with_history(key).await,
        // Revision 1 is the first a bucket can have: from there, everything it keeps.
        WatchStart::AllHistory => store.watch_from_revision(key, 1).await,
        WatchStart::UpdatesOnly => store.watch(key).await,
    };
    let mut entries = watched.with_context(|| format!("cannot watch {bucket} > {key}"))?;
    // The watch's consumer exists once the call returns; scripts and tests wait for this line
    // before they write.
    eprintln!("listening on {bucket} > {key}");
    let mut shown = 0u64;
    while count.is_none_or(|count| shown < count) {
        let Some(entry) = entries.next().await else {
            bail!("the watch ended: the connection to the server was closed");
        };
        let entry = entry.with_context(|| format!("watching {bucket} > {key}"))?;
        kv_view::show_change(&entry, common.json)?;
        shown += 1;
    }
    Ok(())
}
