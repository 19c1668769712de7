//! Configuration shared between services through a jetlog key-value bucket and a watch.
//!
//! Operators (or a deploy script) write settings into the bucket `config`; every service
//! instance keeps a live copy of the whole bucket by watching it. On start a watch delivers
//! the latest value of every key, so a new instance is configured before it serves, and then
//! every change as it is stored, so running instances follow without a restart or a poll.
//! Deleting a key removes the setting everywhere. Each copy is published on a
//! `tokio::sync::watch` channel: the service reads the current snapshot when it needs it, or
//! waits for the next change.
//!
//! ```sh
//! cargo run --release -- server &
//! cargo run --example shared_config -- follow &           # prints the config on each change
//! cargo run --example shared_config -- set greeting hello # the follower prints it
//! cargo run --example shared_config -- set pool.size 8
//! cargo run --example shared_config -- unset greeting
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream::{
    self,
    kv::{self, Entry, Operation},
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

/// The bucket the example shares settings in.
pub const BUCKET: &str = "config";
/// Revisions kept per setting: enough to see what a setting was before a bad change.
const HISTORY: i64 = 5;

/// What can go wrong while following the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot open the config bucket: {0}")]
    Bucket(String),
    #[error("the config watch: {0}")]
    Watch(String),
    #[error("the config watch ended (the connection was closed)")]
    WatchEnded,
}

/// One service's copy of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every setting that has a value.
    pub settings: BTreeMap<String, Bytes>,
    /// The bucket revision this copy reflects: equal copies have equal revisions.
    pub revision: u64,
    /// Whether the copy has caught up with the values that existed when the watch began; a
    /// service should not serve with a copy that has not.
    pub ready: bool,
}

impl Snapshot {
    /// The setting `key` as text, if it is set and is UTF-8.
    pub fn text(&self, key: &str) -> Option<&str> {
        std::str::from_utf8(self.settings.get(key)?).ok()
    }

    /// Applies one change from the watch.
    pub fn apply(&mut self, entry: &Entry) {
        match entry.operation {
            Operation::Put => {
                self.settings.insert(entry.key.clone(), entry.value.clone());
            }
            Operation::Delete | Operation::Purge => {
                self.settings.remove(&entry.key);
            }
        }
        self.revision = self.revision.max(entry.revision);
        self.ready |= entry.seen_current;
    }
}

/// Opens (or creates) the config bucket.
pub async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, ConfigError> {
    js.create_key_value(kv::Config {
        bucket: bucket.to_string(),
        history: HISTORY,
        description: "settings shared by every service".into(),
        ..Default::default()
    })
    .await
    .map_err(|err| ConfigError::Bucket(err.to_string()))
}

/// Keeps `copy` equal to the bucket until the watch ends or every receiver is gone.
pub async fn follow(
    store: kv::Store,
    copy: watch::Sender<Arc<Snapshot>>,
) -> Result<(), ConfigError> {
    let mut changes = store
        .watch_with_history(">")
        .await
        .map_err(|err| ConfigError::Watch(err.to_string()))?;
    // The watch now exists: a bucket that is empty at this point has no initial values to
    // wait for, and anything written later arrives as a change.
    let empty = store
        .stream
        .clone()
        .info()
        .await
        .map_err(|err| ConfigError::Watch(err.to_string()))?
        .state
        .messages
        == 0;
    if empty {
        copy.send_modify(|snapshot| Arc::make_mut(snapshot).ready = true);
    }
    while let Some(entry) = changes.next().await {
        let entry = entry.map_err(|err| ConfigError::Watch(err.to_string()))?;
        copy.send_modify(|snapshot| Arc::make_mut(snapshot).apply(&entry));
        if copy.is_closed() {
            return Ok(());
        }
    }
    Err(ConfigError::WatchEnded)
}

/// Starts following the bucket in a task and returns the live copy.
pub fn spawn_follower(
    store: kv::Store,
) -> (
    watch::Receiver<Arc<Snapshot>>,
    tokio::task::JoinHandle<Result<(), ConfigError>>,
) {
    let (copy, receiver) = watch::channel(Arc::new(Snapshot::default()));
    (receiver, tokio::spawn(follow(store, copy)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = jetstream::new(async_nats::connect(&url).await?);
    let store = open_bucket(&js, BUCKET).await?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["set", key, value] => {
            let revision = store.put(key, Bytes::from(value.to_string())).await?;
            println!("{key} = {value} (revision {revision})");
        }
        ["unset", key] => {
            store.delete(key).await?;
            println!("{key} unset");
        }
        ["follow"] | [] => {
            let (mut copy, follower) = spawn_follower(store);
            while copy.changed().await.is_ok() {
                let snapshot = copy.borrow_and_update().clone();
                if snapshot.ready {
                    let shown: BTreeMap<&str, &str> = snapshot
                        .settings
                        .iter()
                        .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap_or("<binary>")))
                        .collect();
                    println!("config at revision {}: {shown:?}", snapshot.revision);
                }
            }
            follower.await??;
        }
        _ => return Err("usage: shared_config [follow | set KEY VALUE | unset KEY]".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, revision: u64, operation: Operation) -> Entry {
        Entry {
            bucket: BUCKET.into(),
            key: key.into(),
            value: Bytes::from(value.to_string()),
            revision,
            delta: 0,
            created: async_nats::datetime::now(),
            operation,
            seen_current: false,
        }
    }

    #[test]
    fn changes_fold_into_the_snapshot() {
        let mut snapshot = Snapshot::default();
        snapshot.apply(&entry("a", "1", 1, Operation::Put));
        snapshot.apply(&entry("b", "2", 2, Operation::Put));
        snapshot.apply(&entry("a", "", 3, Operation::Delete));
        assert_eq!(snapshot.text("a"), None);
        assert_eq!(snapshot.text("b"), Some("2"));
        assert_eq!(snapshot.revision, 3);
        assert!(!snapshot.ready);
    }
}
