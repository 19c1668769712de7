//! The connection and output flags before the command: `jetlog -s URL stream ls`, as
//! natscli users type them. clap takes these flags anywhere after the command (they are
//! `global` there); written before it they are moved to just after it, unchanged.

use std::ffi::OsString;

/// The flags of `CommonArgs` that take a value (`--flag value`; `--flag=value` is one
/// argument and needs no care).
const WITH_VALUE: &[&str] = &[
    "-s",
    "--server",
    "--user",
    "--password",
    "--token",
    "--creds",
    "--nkey",
    "--tlsca",
    "--tlscert",
    "--tlskey",
    "--timeout",
    "--context",
];

/// The flags of `CommonArgs` that take none.
const WITHOUT_VALUE: &[&str] = &["--tlsfirst", "--json", "-j"];

/// Moves the connection flags found between the program name and the command to just after
/// the command. Anything else before the command (an unknown flag, `--help`, `--version`) is
/// left where it is, for clap to handle or refuse.
pub fn hoist(args: Vec<OsString>) -> Vec<OsString> {
    let mut program_and_flags = Vec::new();
    let mut moved = Vec::new();
    let mut rest = args.into_iter();
    if let Some(program) = rest.next() {
        program_and_flags.push(program);
    }
    let mut rest = rest.peekable();
    while let Some(arg) = rest.peek() {
        let text = arg.to_string_lossy();
        let name = text.split('=').next().unwrap_or("");
        if WITH_VALUE.contains(&name) {
            let has_inline_value = text.contains('=');
            moved.extend(rest.next());
            if !has_inline_value {
                moved.extend(rest.next());
            }
        } else if WITHOUT_VALUE.contains(&name) {
            moved.extend(rest.next());
        } else if text.starts_with('-') {
            program_and_flags.extend(rest.next());
        } else {
            break;
        }
    }
    if moved.is_empty() {
        return program_and_flags.into_iter().chain(rest).collect();
    }
    let command = rest.next();
    program_and_flags
        .into_iter()
        .chain(command)
        .chain(moved)
        .chain(rest)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hoisted(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        hoist(args)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn flags_before_the_command_move_after_it() {
        assert_eq!(
            hoisted(&["jetlog", "-s", "nats://h:4222", "--json", "stream", "ls"]),
            ["jetlog", "stream", "-s", "nats://h:4222", "--json", "ls"]
        );
        assert_eq!(
            hoisted(&["jetlog", "--timeout=2s", "pub", "a", "b"]),
            ["jetlog", "pub", "--timeout=2s", "a", "b"]
        );
        // Nothing to move, or nothing known: untouched.
        assert_eq!(
            hoisted(&["jetlog", "stream", "ls", "-s", "u"]),
            ["jetlog", "stream", "ls", "-s", "u"]
        );
        assert_eq!(hoisted(&["jetlog", "--version"]), ["jetlog", "--version"]);
        assert_eq!(
            hoisted(&["jetlog", "--bogus", "stream"]),
            ["jetlog", "--bogus", "stream"]
        );
    }
}
