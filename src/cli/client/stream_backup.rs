//! `jetlog stream backup` and `restore`: a stream, its consumers and messages saved to a
//! directory and created again from it, as natscli's commands do (`stream.tar.s2`, the
//! archive exactly as the server sent it, and `backup.json`, the config and state of the
//! snapshot reply), so a backup made by either tool restores with either.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::Context;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::api;
use super::progress::Progress;

/// The archive and the description, natscli's names.
const ARCHIVE_FILE: &str = "stream.tar.s2";
const DESCRIPTION_FILE: &str = "backup.json";
/// Pieces a restore sends (natscli's size).
const RESTORE_CHUNK: usize = 64 * 1024;
/// How long the final reply of a restore may take: the server builds the stream then.
const RESTORE_FINISH_TIMEOUT: Duration = Duration::from_secs(3600);

/// `stream backup`: what to ask for.
pub struct BackupOptions {
    pub consumers: bool,
    pub chunk_size: Option<i64>,
    pub window_size: Option<i64>,
    pub progress: bool,
}

pub async fn backup(
    js: &Context,
    name: &str,
    dir: &Path,
    options: BackupOptions,
    idle: Duration,
) -> Result<()> {
    if dir.join(DESCRIPTION_FILE).exists() || dir.join(ARCHIVE_FILE).exists() {
        bail!("{} already holds a backup", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let client = js.client();
    let deliver = client.new_inbox();
    let mut chunks = client.subscribe(deliver.clone()).await?;
    let mut request = json!({"deliver_subject": deliver, "no_consumers": !options.consumers});
    if let Some(size) = options.chunk_size {
        request["chunk_size"] = json!(size);
    }
    if let Some(size) = options.window_size {
        request["window_size"] = json!(size);
    }
    let reply = api::request(js, &format!("STREAM.SNAPSHOT.{name}"), &request)
        .await
        .with_context(|| format!("stream {name}"))?;
    let total = reply["state"]["bytes"].as_u64().unwrap_or(0);
    let path = dir.join(ARCHIVE_FILE);
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let progress = Progress::new();
    let (mut received, mut count) = (0u64, 0u64);
    let transfer = async {
        loop {
            let msg = tokio::time::timeout(idle, chunks.next())
                .await
                .map_err(|_| anyhow!("backup timed out after receiving no data for {idle:?}"))?
                .ok_or_else(|| anyhow!("the connection closed during the backup"))?;
            if msg.payload.is_empty() {
                return match msg.status {
                    None => Ok(()),
                    Some(status) if status.as_u16() == 204 => Ok(()),
                    Some(status) => Err(anyhow!(
                        "the server ended the backup: {} {}",
                        status.as_u16(),
                        msg.description.unwrap_or_default()
                    )),
                };
            }
            // Acknowledged before it is written, as natscli does: the server's window then
            // covers the disk write too.
            if let Some(ack) = msg.reply {
                client.publish(ack, Bytes::new()).await?;
            }
            file.write_all(&msg.payload)?;
            received += msg.payload.len() as u64;
            count += 1;
            progress.add(msg.payload.len() as u64);
        }
    };
    let outcome: Result<()> = if options.progress {
        tokio::select! {
            done = transfer => done,
            never = progress.draw("backup (compressed bytes of the stream's)", total) => match never {},
        }
    } else {
        transfer.await
    };
    if options.progress {
        eprintln!();
    }
    outcome?;
    file.sync_all()?;
    let description = json!({"config": reply["config"], "state": reply["state"]});
    std::fs::write(
        dir.join(DESCRIPTION_FILE),
        serde_json::to_vec_pretty(&description)?,
    )?;
    println!(
        "Received {received} bytes of compressed data in {count} chunks for stream {name} ({} messages)",
        reply["state"]["messages"].as_u64().unwrap_or(0)
    );
    Ok(())
}

pub async fn restore(js: &Context, dir: &Path, progress_on: bool) -> Result<()> {
    let description: Value = serde_json::from_slice(
        &std::fs::read(dir.join(DESCRIPTION_FILE))
            .with_context(|| format!("{} holds no backup", dir.display()))?,
    )
    .with_context(|| format!("{} is not a backup description", DESCRIPTION_FILE))?;
    let name = description["config"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{DESCRIPTION_FILE} names no stream"))?
        .to_string();
    super::stream::check_stream_name(&name)?;
    let data = std::fs::read(dir.join(ARCHIVE_FILE))
        .with_context(|| format!("cannot read {}", dir.join(ARCHIVE_FILE).display()))?;
    let reply = api::request(
        js,
        &format!("STREAM.RESTORE.{name}"),
        &json!({"config": description["config"], "state": description["state"]}),
    )
    .await
    .with_context(|| format!("stream {name}"))?;
    let deliver = reply["deliver_subject"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("the server gave no subject to restore to"))?
        .to_string();
    let client = js.client();
    let progress = Progress::new();
    let send = async {
        for piece in data.chunks(RESTORE_CHUNK) {
            let answer = client
                .request(deliver.clone(), Bytes::copy_from_slice(piece))
                .await
                .map_err(|e| anyhow!("restore of stream {name} failed: {e}"))?;
            refused(&answer.payload)?;
            progress.add(piece.len() as u64);
        }
        Ok::<(), anyhow::Error>(())
    };
    let sent: Result<()> = if progress_on {
        tokio::select! {
            done = send => done,
            never = progress.draw("restore (bytes sent)", data.len() as u64) => match never {},
        }
    } else {
        send.await
    };
    if progress_on {
        eprintln!();
    }
    sent?;
    let finish = async_nats::Request::new()
        .payload(Bytes::new())
        .timeout(Some(RESTORE_FINISH_TIMEOUT));
    let answer = client
        .send_request(deliver, finish)
        .await
        .map_err(|e| anyhow!("restore of stream {name} failed: {e}"))?;
    let created = refused(&answer.payload)?;
    println!(
        "Restored stream {name} with {} messages",
        created["state"]["messages"].as_u64().unwrap_or(0)
    );
    Ok(())
}

/// A reply during a restore: empty (a chunk taken), or JSON that may carry the error.
fn refused(payload: &[u8]) -> Result<Value> {
    if payload.is_empty() {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| anyhow!("unexpected reply during the restore: {e}"))?;
    if let Some(error) = value.get("error") {
        let description = error["description"].as_str().unwrap_or("unknown error");
        bail!(
            "{description} (status {}, err_code {})",
            error["code"],
            error["err_code"]
        );
    }
    Ok(value)
}
