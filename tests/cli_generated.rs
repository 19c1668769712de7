//! Shell completions and man pages, generated from the command definitions.

mod cli_support;
mod common;

use cli_support::jetlog;

#[test]
fn completions_cover_the_commands_for_each_shell() {
    let bash = jetlog(&["completions", "bash"]);
    let script = bash.ok();
    assert!(script.contains("_jetlog()"), "{script}");
    for word in ["stream", "consumer", "kv", "seal", "subjects"] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completions"
        );
    }
    assert!(jetlog(&["completions", "fish"])
        .ok()
        .contains("complete -c jetlog"));
    assert!(jetlog(&["completions", "zsh"])
        .ok()
        .starts_with("#compdef jetlog"));
    let unknown = jetlog(&["completions", "tcsh"]);
    assert_eq!(unknown.code, Some(1), "{unknown:#?}");
    assert!(
        unknown.stderr.contains("invalid value 'tcsh'"),
        "{unknown:#?}"
    );
}

#[test]
fn man_pages_are_written_for_every_command() {
    let page = jetlog(&["man"]);
    assert!(page.ok().contains(".TH jetlog 1"), "{page:#?}");
    let dir = tempfile::tempdir().expect("dir");
    let out = jetlog(&["man", "--dir", &dir.path().display().to_string()]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    for name in [
        "jetlog.1",
        "jetlog-stream-add.1",
        "jetlog-consumer-pause.1",
        "jetlog-server.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name}: {text}");
    }
}
