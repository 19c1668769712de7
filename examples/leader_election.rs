//! Leader election on a jetlog key-value bucket: the pattern Redis users know as a lock with
//! an expiry (`SET key me NX PX ttl`), with compare-and-set renewals instead of a script.
//!
//! Every candidate tries to `create` the key `leader` in a bucket whose TTL (`max_age`) is the
//! lease. `create` succeeds only while the key has no value, so exactly one candidate wins; the
//! winner keeps the lease alive by `update`-ing the key on the revision it holds, every third
//! of the TTL. A leader that stops cleanly deletes the key (on its own revision) and a follower
//! takes over at once; a leader that dies stops renewing, the server expires the key one TTL
//! after the last renewal, and a follower takes over then.
//!
//! Followers watch the key. Each value they see starts a local timer of one TTL (local, so the
//! clocks of server and candidate need not agree); when it runs out, or when they see the key
//! deleted, they try `create`. A leader whose renewal fails for any reason steps down at once:
//! it may be partitioned, and a lease it cannot prove is not one it may act on.
//!
//! ```sh
//! cargo run --release -- server &
//! cargo run --example leader_election -- alpha &   # "alpha is the leader"
//! cargo run --example leader_election -- beta      # "beta follows alpha"
//! kill %2                                          # beta: "beta is the leader" within the TTL
//! ```

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, Operation, UpdateErrorKind},
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

/// The bucket the example elects in, and its key.
pub const BUCKET: &str = "election";
pub const LEADER_KEY: &str = "leader";
/// The lease: how long a leader that stops renewing stays leader.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);
/// The server refuses a `max_age` below 100 ms, and the upkeep tick that expires keys runs
/// every 50 ms; a shorter lease would be mostly tick.
pub const MIN_TTL: Duration = Duration::from_millis(500);
/// Renewals per TTL: three, so two can be lost (or late) before the lease runs out.
const RENEWALS_PER_TTL: u32 = 3;
/// After a failed takeover (the key had not expired yet, by at most one upkeep tick), how
/// long a follower waits before trying again, as a fraction of the TTL.
const RETRIES_PER_TTL: u32 = 10;

/// What can go wrong in an election.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("the TTL must be at least {MIN_TTL:?}, not {0:?}")]
    TtlTooShort(Duration),
    #[error("cannot open the election bucket: {0}")]
    Bucket(String),
    #[error("the election key: {0}")]
    Key(String),
    #[error("the watch on the election key ended")]
    WatchEnded,
}

/// A candidate's view of the election, published on a `watch` channel as it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not yet known (before the first attempt).
    Starting,
    /// This candidate holds the key, at this revision.
    Leader { revision: u64 },
    /// Another candidate holds it (its id, when the key's value is known).
    Follower { leader: Option<String> },
}

/// Opens (or creates) the election bucket: one value per key, the TTL as its `max_age`.
pub async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    ttl: Duration,
) -> Result<kv::Store, ElectionError> {
    if ttl < MIN_TTL {
        return Err(ElectionError::TtlTooShort(ttl));
    }
    js.create_key_value(kv::Config {
        bucket: bucket.to_string(),
        history: 1,
        max_age: ttl,
        description: "leader election leases".into(),
        ..Default::default()
    })
    .await
    .map_err(|err| ElectionError::Bucket(err.to_string()))
}

/// One candidate in one election.
pub struct Candidate {
    store: kv::Store,
    id: String,
    ttl: Duration,
    /// The revision of the key while this candidate holds it.
    held: Option<u64>,
}

impl Candidate {
    pub fn new(store: kv::Store, id: impl Into<String>, ttl: Duration) -> Self {
        Self {
            store,
            id: id.into(),
            ttl,
            held: None,
        }
    }

    /// Tries to take the key; `Ok(true)` when this candidate is now the leader.
    pub async fn try_acquire(&mut self) -> Result<bool, ElectionError> {
        match self
            .store
            .create(LEADER_KEY, Bytes::from(self.id.clone()))
            .await
        {
            Ok(revision) => {
                self.held = Some(revision);
                Ok(true)
            }
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(ElectionError::Key(err.to_string())),
        }
    }

    /// Extends the lease; `Ok(false)` when the key moved on without us (the lease ran out
    /// and someone else took it, or it expired and nobody has it).
    pub async fn renew(&mut self) -> Result<bool, ElectionError> {
        let Some(revision) = self.held else {
            return Ok(false);
        };
        let renewed = self
            .store
            .update(LEADER_KEY, Bytes::from(self.id.clone()), revision)
            .await;
        match renewed {
            Ok(next) => {
                self.held = Some(next);
                Ok(true)
            }
            Err(err) => {
                // Whatever the failure, the lease can no longer be proven: step down.
                self.held = None;
                if err.kind() == UpdateErrorKind::WrongLastRevision {
                    Ok(false)
                } else {
                    Err(ElectionError::Key(err.to_string()))
                }
            }
        }
    }

    /// Gives the lease up: deletes the key, but only on our own revision, so a leader that
    /// lost its lease without noticing never deletes its successor's.
    pub async fn resign(&mut self) -> Result<(), ElectionError> {
        if let Some(revision) = self.held.take() {
            self.store
                .delete_expect_revision(LEADER_KEY, Some(revision))
                .await
                .map_err(|err| ElectionError::Key(err.to_string()))?;
        }
        Ok(())
    }

    /// Who holds the key now, if anyone (for reporting only: it may change at any time).
    async fn current_leader(&self) -> Option<String> {
        let value = self.store.get(LEADER_KEY).await.ok()??;
        Some(String::from_utf8_lossy(&value).into_owned())
    }

    fn role(&self, leader: Option<String>) -> Role {
        match self.held {
            Some(revision) => Role::Leader { revision },
            None => Role::Follower { leader },
        }
    }

    /// Campaigns until `stop` turns true, publishing every role change on `roles`; resigns
    /// on the way out. Dropping the future instead (a crash) leaves the key to expire.
    ///
    /// A failed attempt or renewal (the server unreachable for a moment) makes the candidate
    /// a follower that tries again later; only the end of the watch ends the campaign.
    pub async fn run(
        mut self,
        roles: watch::Sender<Role>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ElectionError> {
        // Last values first, so a follower learns the current leader and starts its timer.
        let mut changes = self
            .store
            .watch_with_history(LEADER_KEY)
            .await
            .map_err(|err| ElectionError::Key(err.to_string()))?;
        let renew_every = self.ttl / RENEWALS_PER_TTL;
        let retry_every = self.ttl / RETRIES_PER_TTL;
        let mut leader = None;
        // When to act next: renew as leader, try to take the key as follower. The first
        // attempt is immediate, so an empty key is taken at once.
        let mut due = Instant::now();
        loop {
            if Instant::now() >= due {
                let holding = if self.held.is_some() {
                    self.renew().await
                } else {
                    self.try_acquire().await
                };
                due = match holding {
                    Ok(true) => {
                        leader = Some(self.id.clone());
                        Instant::now() + renew_every
                    }
                    Ok(false) => {
                        leader = self.current_leader().await;
                        Instant::now() + retry_every
                    }
                    Err(err) => {
                        eprintln!("{}: {err}; trying again", self.id);
                        Instant::now() + retry_every
                    }
                };
            }
            roles.send_if_modified(|role| {
                let now = self.role(leader.clone());
                let changed = *role != now;
                *role = now;
                changed
            });
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return self.resign().await;
                    }
                }
                entry = changes.next() => {
                    let entry = entry
                        .ok_or(ElectionError::WatchEnded)?
                        .map_err(|err| ElectionError::Key(err.to_string()))?;
                    if self.held.is_some() {
                        // Our own renewals; losing the lease shows when renewing.
                        continue;
                    }
                    if entry.operation == Operation::Put {
                        leader = Some(String::from_utf8_lossy(&entry.value).into_owned());
                        // Someone holds a fresh lease: it cannot run out before one TTL
                        // from now, by our own clock.
                        due = Instant::now() + self.ttl;
                    } else {
                        // Deleted by a leader that resigned: free now.
                        leader = None;
                        due = Instant::now();
                    }
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("candidate-{}", std::process::id()));
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = jetstream::new(async_nats::connect(&url).await?);
    let store = open_bucket(&js, BUCKET, DEFAULT_TTL).await?;
    let (roles, mut role_changes) = watch::channel(Role::Starting);
    let (stop, stop_rx) = watch::channel(false);
    let election = tokio::spawn(Candidate::new(store, id.clone(), DEFAULT_TTL).run(roles, stop_rx));
    // Renewals change the revision in the role; only a change of leader is news.
    let mut last_said = String::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = role_changes.changed() => {
                if changed.is_err() {
                    break;
                }
                let news = match &*role_changes.borrow() {
                    Role::Starting => continue,
                    Role::Leader { .. } => format!("{id} is the leader"),
                    Role::Follower { leader: Some(leader) } => format!("{id} follows {leader}"),
                    Role::Follower { leader: None } => format!("{id} waits for a leader"),
                };
                if news != last_said {
                    println!("{news}");
                    last_said = news;
                }
            }
        }
    }
    // A clean stop hands over at once instead of after the TTL.
    let _ = stop.send(true);
    election.await??;
    println!("{id} resigned");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_several_times_before_it_runs_out() {
        let renew_every = DEFAULT_TTL / RENEWALS_PER_TTL;
        assert!(renew_every * 2 < DEFAULT_TTL);
        assert!(MIN_TTL / RETRIES_PER_TTL >= Duration::from_millis(50));
    }
}
