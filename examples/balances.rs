//! Event sourcing on jetlog: rebuild account balances from a stream, then follow new events.
//!
//! Events are messages on `ledger.<account>.<kind>` with the amount (whole units) as the
//! payload, `kind` being `deposited` or `withdrawn`. On start the service replays the `LEDGER`
//! stream from the first message with an ordered consumer (deliver all, replay instant, no
//! acks: the stream is the source of truth, the service keeps no state of its own), reports
//! the balances once it has caught up with the last sequence that existed at start, and then
//! keeps applying new events as they are stored.
//!
//! ```sh
//! cargo run --release -- server &                            # the server
//! cargo run --example balances -- seed                       # publish some events
//! cargo run --example balances                               # rebuild, then follow
//! ```

use std::collections::BTreeMap;
use std::error::Error;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

/// Applies one event to the balances; returns the account it changed.
pub fn apply(
    balances: &mut BTreeMap<String, i64>,
    subject: &str,
    payload: &[u8],
) -> Option<String> {
    let mut tokens = subject.split('.');
    let (Some("ledger"), Some(account), Some(kind)) = (tokens.next(), tokens.next(), tokens.next())
    else {
        return None;
    };
    let amount: i64 = std::str::from_utf8(payload).ok()?.trim().parse().ok()?;
    let delta = match kind {
        "deposited" => amount,
        "withdrawn" => -amount,
        _ => return None,
    };
    *balances.entry(account.to_string()).or_insert(0) += delta;
    Some(account.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client.clone());
    let ledger = js
        .get_or_create_stream(stream::Config {
            name: "LEDGER".into(),
            subjects: vec!["ledger.>".into()],
            ..Default::default()
        })
        .await?;

    if std::env::args().nth(1).as_deref() == Some("seed") {
        for (subject, amount) in [
            ("ledger.alice.deposited", 100),
            ("ledger.bob.deposited", 50),
            ("ledger.alice.withdrawn", 30),
        ] {
            js.publish(subject, amount.to_string().into())
                .await?
                .await?;
        }
        println!("seeded 3 events");
        return Ok(());
    }

    // The last sequence at start marks the end of the replay.
    let caught_up_at = ledger.get_info().await?.state.last_sequence;
    let replay = ledger
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: "ledger.>".into(),
            ..Default::default()
        })
        .await?;
    let mut events = replay.messages().await?;
    let mut balances = BTreeMap::new();
    if caught_up_at == 0 {
        println!("no events yet; following");
    }
    while let Some(event) = events.next().await {
        let event = event?;
        let seq = event.info().map_err(|e| e.to_string())?.stream_sequence;
        let changed = apply(&mut balances, event.subject.as_str(), &event.payload);
        if seq == caught_up_at {
            println!("rebuilt from {seq} events: {balances:?}");
        } else if seq > caught_up_at {
            if let Some(account) = changed {
                println!("seq {seq}: {account} = {}", balances[&account]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fold_into_balances() {
        let mut balances = BTreeMap::new();
        apply(&mut balances, "ledger.alice.deposited", b"100");
        apply(&mut balances, "ledger.alice.withdrawn", b"30");
        assert_eq!(
            apply(&mut balances, "ledger.bob.deposited", b"5"),
            Some("bob".into())
        );
        assert_eq!(apply(&mut balances, "ledger.bob.stolen", b"5"), None);
        assert_eq!(apply(&mut balances, "other", b"5"), None);
        assert_eq!(
            balances,
            BTreeMap::from([("alice".into(), 70), ("bob".into(), 5)])
        );
    }
}
