//! `jetlog object …` run as a process against a real jetlog server: files in and out with
//! their digest, listings, and refusals.

mod cli_support;
mod common;

use cli_support::{block_on, jetlog_at, jetlog_with_stdin, js};
use common::TestServer;
use sha2::{Digest, Sha256};

/// Bytes that differ at every offset, so a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7) ^ (i >> 11)) as u8)
        .collect()
}

/// The object's info as async-nats reads it, behind the CLI's back.
fn object_size(url: &str, bucket: &str, name: &str) -> Option<usize> {
    let (bucket, name) = (bucket.to_string(), name.to_string());
    block_on(async move {
        let store = js(url)
            .await
            .get_object_store(bucket)
            .await
            .expect("bucket");
        store
            .info(name)
            .await
            .ok()
            .filter(|i| !i.deleted)
            .map(|i| i.size)
    })
}

#[test]
fn files_go_in_and_come_out_with_their_digest() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let dir = tempfile::tempdir().expect("dir");
    let data = pattern(3 * 1024 * 1024 + 17);
    let source = dir.path().join("disk.img");
    std::fs::write(&source, &data).expect("write");
    let source_arg = source.to_str().expect("utf8 path");

    let added = jetlog_at(&url, &["object", "add", "FILES", "--description", "docs"]);
    assert!(added
        .ok()
        .starts_with("object store bucket FILES created\n"));
    let put = jetlog_at(
        &url,
        &[
            "object",
            "put",
            "FILES",
            source_arg,
            "--name",
            "images/disk.img",
            "--json",
        ],
    )
    .json();
    assert_eq!(put["size"], data.len());
    assert_eq!(put["chunks"], 25);
    let expected = format!(
        "SHA-256={}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE,
            Sha256::digest(&data)
        )
    );
    assert_eq!(put["digest"], expected);
    assert_eq!(
        object_size(&url, "FILES", "images/disk.img"),
        Some(data.len())
    );

    // Into a chosen file: written as a .partial file and renamed once the digest matched.
    let out_dir = tempfile::tempdir().expect("dir");
    let mut cmd_args = vec!["object", "get", "FILES", "images/disk.img"];
    let target = out_dir.path().join("disk.img");
    let target_arg = target.to_str().expect("utf8 path");
    cmd_args.extend(["-O", target_arg]);
    let got = jetlog_at(&url, &cmd_args);
    assert!(got.ok().starts_with("wrote FILES > images/disk.img to "));
    assert!(
        std::fs::read(&target).expect("read") == data,
        "content differs"
    );
    assert!(!out_dir.path().join("disk.img.partial").exists());

    // An existing file is not overwritten without -f.
    jetlog_at(&url, &cmd_args).fails_with("refusing without -f/--force");
    cmd_args.push("-f");
    jetlog_at(&url, &cmd_args).ok();

    let info = jetlog_at(&url, &["object", "info", "FILES", "images/disk.img"])
        .ok()
        .to_string();
    assert!(info.contains(&expected), "{info}");
    let bucket = jetlog_at(&url, &["object", "info", "FILES"])
        .ok()
        .to_string();
    assert!(bucket.contains("Description:     docs"), "{bucket}");
}

#[test]
fn stdin_objects_listing_and_removal() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["object", "add", "NOTES"]).ok();
    jetlog_at(&url, &["object", "add", "ARCHIVE"]).ok();

    jetlog_with_stdin(&url, &["object", "put", "NOTES"], b"hello").fails_with("--name is required");
    jetlog_with_stdin(
        &url,
        &["object", "put", "NOTES", "--name", "a.txt"],
        b"hello",
    )
    .ok();
    jetlog_with_stdin(&url, &["object", "put", "NOTES", "--name", "b.txt"], b"bye").ok();
    // Replacing an object needs -f, as deleting does.
    jetlog_with_stdin(
        &url,
        &["object", "put", "NOTES", "--name", "a.txt"],
        b"again",
    )
    .fails_with("refusing without -f/--force");
    jetlog_with_stdin(
        &url,
        &["object", "put", "NOTES", "--name", "a.txt", "-f"],
        b"hello again",
    )
    .ok();

    let body = jetlog_at(&url, &["object", "get", "NOTES", "a.txt", "-O", "-"]);
    assert_eq!(body.ok(), "hello again");
    assert_eq!(
        jetlog_at(&url, &["object", "ls", "NOTES", "-n"]).ok(),
        "a.txt\nb.txt\n"
    );
    let listed = jetlog_at(&url, &["object", "ls", "NOTES", "--json"]).json();
    assert_eq!(listed[0]["size"], 11);
    assert_eq!(
        jetlog_at(&url, &["object", "ls", "-n"]).ok(),
        "ARCHIVE\nNOTES\n"
    );

    jetlog_at(&url, &["object", "rm", "NOTES", "a.txt"]).fails_with("refusing without -f");
    jetlog_at(&url, &["object", "rm", "NOTES", "a.txt", "-f"]).ok();
    assert_eq!(object_size(&url, "NOTES", "a.txt"), None);
    jetlog_at(&url, &["object", "get", "NOTES", "a.txt", "-O", "-"])
        .fails_with("NOTES > a.txt was deleted");
    jetlog_at(&url, &["object", "info", "NOTES", "zzz"]).fails_with("NOTES > zzz not found");
    assert_eq!(
        jetlog_at(&url, &["object", "ls", "NOTES", "-n"]).ok(),
        "b.txt\n"
    );

    jetlog_at(&url, &["object", "rm", "ARCHIVE", "-f"]).ok();
    assert_eq!(jetlog_at(&url, &["object", "ls", "-n"]).ok(), "NOTES\n");
    jetlog_at(&url, &["object", "ls", "ARCHIVE"]).fails_with("object store bucket ARCHIVE");
}

#[test]
fn a_missing_object_leaves_no_file_behind() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["object", "add", "EMPTY"]).ok();
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("x.bin");
    let target_arg = target.to_str().expect("utf8 path");
    jetlog_at(&url, &["object", "get", "EMPTY", "x.bin", "-O", target_arg])
        .fails_with("EMPTY > x.bin not found");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    jetlog_at(&url, &["object", "put", "EMPTY", "/no/such/file"]).fails_with("cannot open");
}

#[test]
fn watch_prints_each_store_and_delete() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["object", "add", "W"]).ok();
    let watch = cli_support::Listening::start(&url, &["object", "watch", "W", "--count", "2"]);
    jetlog_with_stdin(&url, &["object", "put", "W", "--name", "a.txt"], b"hello").ok();
    jetlog_at(&url, &["object", "rm", "W", "a.txt", "-f"]).ok();
    let out = watch.finish();
    assert_eq!(out.ok(), "W > a.txt PUT 5 bytes\nW > a.txt DEL\n");
}

/// What `jetlog ARGS -s URL` writes to a terminal: run under `script`, which gives it a
/// pseudo-terminal, bounded by `timeout`.
fn on_a_terminal(url: &str, args: &[&str]) -> String {
    let mut line = vec![env!("CARGO_BIN_EXE_jetlog").to_string()];
    line.extend(args.iter().map(|a| a.to_string()));
    line.extend(["-s".to_string(), url.to_string()]);
    let output = std::process::Command::new("timeout")
        .args(["20", "script", "-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn transfers_draw_a_progress_line_on_a_terminal() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("f.bin");
    std::fs::write(&file, pattern(1 << 20)).expect("write");
    let file = file.to_str().expect("path");
    jetlog_at(&url, &["object", "add", "B"]).ok();
    let shown = on_a_terminal(&url, &["object", "put", "B", file, "--name", "f"]);
    assert!(shown.contains("put B > f (bytes): "), "{shown:?}");
    assert!(shown.contains("/1048576 ("), "{shown:?}");
    let out = dir.path().join("out.bin");
    let out = out.to_str().expect("path");
    let shown = on_a_terminal(&url, &["object", "get", "B", "f", "-O", out]);
    assert!(shown.contains("get B > f (bytes): "), "{shown:?}");
    assert_eq!(std::fs::read(out).expect("read"), pattern(1 << 20));
    let quiet = ["object", "get", "B", "f", "-O", out, "-f", "--no-progress"];
    let shown = on_a_terminal(&url, &quiet);
    assert!(!shown.contains("(bytes)"), "{shown:?}");
    // Not a terminal: no progress line at all.
    let run = jetlog_at(&url, &["object", "put", "B", file, "--name", "g"]);
    assert!(!run.stderr.contains("(bytes)"), "{run:?}");
}

#[test]
fn add_and_put_take_natscli_flags() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(
        &url,
        &["object", "add", "OC", "--compress", "--tags", "ssd"],
    )
    .ok();
    let config = jetlog_at(&url, &["stream", "info", "OBJ_OC", "--json"]).json()["config"].clone();
    assert_eq!(config["compression"], "s2");
    assert_eq!(config["placement"]["tags"], serde_json::json!(["ssd"]));
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("c.bin");
    std::fs::write(&file, pattern(100_000)).expect("write");
    let file = file.to_str().expect("path");
    let put = [
        "object",
        "put",
        "OC",
        file,
        "--name",
        "c",
        "--chunk-size",
        "10KB",
        "--json",
    ];
    let info = jetlog_at(&url, &put).json();
    assert_eq!(info["chunks"], 10, "{info}");
    jetlog_at(
        &url,
        &[
            "object",
            "put",
            "OC",
            file,
            "--name",
            "d",
            "--chunk-size",
            "0",
        ],
    )
    .fails_with("--chunk-size must be above 0");
}
