//! natscli contexts: `jetlog context` writes and reads the files natscli keeps in
//! `$XDG_CONFIG_HOME/nats`, and the commands take their connection settings from the named or
//! selected context where no flag gives them.

mod cli_support;
mod common;

use cli_support::jetlog_with_env;
use common::TestServer;

#[test]
fn a_saved_and_selected_context_is_used_by_the_commands() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let config = tempfile::tempdir().expect("config dir");
    let home = config.path().display().to_string();
    let env = [("XDG_CONFIG_HOME", home.as_str())];
    let run = |args: &[&str]| jetlog_with_env(args, &env);

    run(&[
        "context",
        "add",
        "local",
        "-s",
        &url,
        "--description",
        "the test server",
        "--select",
    ])
    .ok();
    let file = config.path().join("nats/context/local.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("context file")).expect("json");
    assert_eq!(saved["url"], url.as_str());
    assert_eq!(saved["description"], "the test server");
    // Every key natscli writes is there, set or not.
    for key in [
        "token",
        "creds",
        "nkey",
        "ca",
        "nsc",
        "jetstream_domain",
        "tls_first",
    ] {
        assert!(saved.get(key).is_some(), "{key} missing: {saved}");
    }
    assert_eq!(
        std::fs::read_to_string(config.path().join("nats/context.txt")).expect("selected"),
        "local"
    );
    assert!(run(&["context", "ls"]).ok().contains("local*"));

    // No -s: the selected context says where the server is.
    run(&["stream", "add", "CTX", "--subjects", "ctx.>"]).ok();
    assert!(run(&["stream", "ls", "--names"]).ok().contains("CTX"));
    // A flag still wins over the context.
    let elsewhere = run(&["stream", "ls", "-s", "nats://127.0.0.1:1"]);
    elsewhere.fails_with("cannot connect to nats://127.0.0.1:1");

    // A context natscli wrote, with a setting jetlog cannot honour, is refused by name.
    let hub = config.path().join("nats/context/hub.json");
    let text =
        format!(r#"{{"description":"","url":"{url}","jetstream_domain":"hub","tls_first":false}}"#);
    std::fs::write(&hub, text).expect("write");
    run(&["--context", "hub", "stream", "ls"]).fails_with("sets jetstream_domain");
    run(&["context", "select", "nope"]).fails_with("unknown context \"nope\"");
    run(&["context", "rm", "local"]).fails_with("refusing without -f/--force");
    run(&["context", "rm", "local", "-f"]).ok();
    assert!(
        !config.path().join("nats/context.txt").exists(),
        "no longer selected"
    );
    run(&["stream", "ls", "--names", "-s", "nats://127.0.0.1:1"])
        .fails_with("cannot connect to nats://127.0.0.1:1");
}
