//! A full disk (issue 8, item 4): the store on a small tmpfs. Publishes past the space get
//! nats-server's insufficient-resources error, nothing acknowledged is lost or damaged, reads
//! keep working, and publishing resumes once space is freed. Mounting needs root; where the
//! test cannot mount, it says so and passes without running.

mod common;

use std::future::IntoFuture;
use std::process::Command;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::{within, TestServer};

/// Size of the filesystem the store lives on.
const FS_SIZE: &str = "6m";
const PAYLOAD: usize = 4096;
/// What the other file takes of the filesystem, leaving the store about 2 MiB.
const BALLAST_BYTES: usize = 4 << 20;

/// A tmpfs mounted for the test's life.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallFs { dir })
    }

    /// A file taking `bytes` of the filesystem: what an operator deletes to free space.
    fn ballast(&self, bytes: usize) -> std::path::PathBuf {
        let path = self.dir.path().join("ballast");
        std::fs::write(&path, vec![0u8; bytes]).expect("ballast");
        path
    }

    /// A store directory on the small filesystem.
    fn store(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(self.dir.path()).expect("store on the tmpfs")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_publishes_keeps_data_and_recovers() {
    let Some(fs) = SmallFs::mount() else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let server = TestServer::start_in(fs.store(), &[]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .unwrap();
    let js = jetstream::new(client);
    let mut s = within(
        "create",
        js.create_stream(stream::Config {
            name: "FULL".into(),
            subjects: vec!["full.>".into()],
            ..Default::default()
        }),
    )
    .await
    .expect("create stream");
    // Something else fills most of the disk; the stream gets what is left.
    let ballast = fs.ballast(BALLAST_BYTES);

    let mut acked = Vec::new();
    let refusal = loop {
        let payload = Bytes::from(vec![b'a' + (acked.len() % 26) as u8; PAYLOAD]);
        let ack = js.publish("full.x", payload).await.expect("publish");
        match within("ack", ack.into_future()).await {
            Ok(ack) => acked.push(ack.sequence),
            Err(err) => break err,
        }
        assert!(acked.len() < 10_000, "the disk never filled");
    };
    let text = refusal.to_string();
    assert!(text.contains("insufficient resources"), "{text}");
    assert!(acked.len() > 20, "only {} messages fit", acked.len());

    // Everything acknowledged is there and intact; reads work on the full disk.
    let info = within("info", s.info()).await.expect("info").state.clone();
    assert_eq!(info.messages, acked.len() as u64);
    for seq in [acked[0], acked[acked.len() / 2], acked[acked.len() - 1]] {
        let msg = within("get", s.get_raw_message(seq)).await.expect("get");
        let want = b'a' + ((seq - 1) % 26) as u8;
        assert!(
            msg.payload.iter().all(|b| *b == want),
            "message {seq} damaged"
        );
    }

    // Freeing space (the operator removes the other file) lets publishing resume.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let ack = js
        .publish("full.x", Bytes::from(vec![b'z'; PAYLOAD]))
        .await
        .unwrap();
    let ack = within("ack after freeing space", ack.into_future())
        .await
        .expect("stored once space is free");
    assert_eq!(ack.sequence, acked[acked.len() - 1] + 1);

    // And it all survives a restart on the same store.
    let store = server.store_handoff();
    let server = TestServer::start_in(store, &[]);
    let client = within("reconnect", async_nats::connect(server.url()))
        .await
        .unwrap();
    let js = jetstream::new(client);
    let mut s = within("stream", js.get_stream("FULL"))
        .await
        .expect("stream");
    let info = within("info", s.info()).await.expect("info").state.clone();
    assert_eq!(info.last_sequence, ack.sequence);
    let msg = within("get last", s.get_raw_message(ack.sequence))
        .await
        .expect("get");
    assert!(msg.payload.iter().all(|b| *b == b'z'));
}
