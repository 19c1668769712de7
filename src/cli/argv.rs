//! Rewrites nats-server style arguments into the shape clap parses.
//!
//! nats-server parses flags with Go's `flag` package, where `-port 4222` and `--port 4222` mean
//! the same and two-letter short names (`-js`, `-sd`, `-DV`) exist. Scripts written for it
//! must work unchanged, so before clap sees the arguments: a single-dash word of two or more
//! letters becomes a double-dash long flag, the nats-server short aliases map to their long
//! names, and `-DV` splits into `-D -V`. Values (anything not starting with a dash and a
//! letter, such as `-1`) are left alone.

/// nats-server's multi-letter short flags and the long flags they stand for.
const ALIASES: &[(&str, &str)] = &[
    ("js", "--jetstream"),
    ("sd", "--store_dir"),
    ("DV", "-D -V"),
    ("VD", "-D -V"),
    ("DVV", "-D -V"),
    ("VV", "-V"),
    ("ms", "--https_port"),
    ("sl", "--signal"),
];

/// Normalises the arguments that follow the `server` subcommand.
pub fn normalize_server_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_server = false;
    let mut expect_value = false;
    for arg in args {
        if !after_server || expect_value || arg == "--" {
            after_server |= arg == "server";
            expect_value = false;
            out.push(arg);
            continue;
        }
        let Some(word) = arg.strip_prefix('-').filter(|w| !w.starts_with('-')) else {
            expect_value = takes_value(&arg);
            out.push(arg);
            continue;
        };
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (word, None),
        };
        let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if !starts_with_letter || name.len() < 2 {
            expect_value = value.is_none() && takes_value(&arg);
            out.push(arg);
            continue;
        }
        let long = match ALIASES.iter().find(|(short, _)| *short == name) {
            Some((_, long)) => long.to_string(),
            None => format!("--{name}"),
        };
        expect_value = value.is_none() && takes_value(&long);
        let mut parts: Vec<String> = long.split(' ').map(str::to_string).collect();
        if let (Some(value), Some(last)) = (value, parts.last_mut()) {
            last.push('=');
            last.push_str(value);
        }
        out.extend(parts);
    }
    out
}

/// Flags whose next argument is their value, so a value like `-1` is never rewritten.
fn takes_value(flag: &str) -> bool {
    matches!(
        flag,
        "-p" | "--port"
            | "-c"
            | "--config"
            | "-P"
            | "--pid"
            | "-l"
            | "--log"
            | "--ports_file_dir"
            | "-a"
            | "--addr"
            | "--net"
            | "-n"
            | "--name"
            | "--server_name"
            | "--store_dir"
            | "-m"
            | "--http_port"
            | "--user"
            | "--pass"
            | "--auth"
            | "--sync"
            | "--max_payload"
            | "--max_pending"
            | "--max_connections"
            | "--ping_interval"
            | "--ping_max"
            | "--auth_timeout"
            | "--write_deadline"
            | "--signal"
            | "--https_port"
            | "-r"
            | "--remote_syslog"
            | "--log_size_limit"
            | "--max_traced_msg_len"
            | "--profile"
            | "--routes"
            | "--cluster"
            | "--cluster_name"
            | "--cluster_advertise"
            | "--client_advertise"
            | "--connect_retries"
            | "--cluster_listen"
            | "--tlscert"
            | "--tlskey"
            | "--tlscacert"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_server_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn nats_server_short_flags_become_long_ones() {
        assert_eq!(
            norm(&["jetlog", "server", "-js", "-sd", "/tmp/x", "-DV"]),
            [
                "jetlog",
                "server",
                "--jetstream",
                "--store_dir",
                "/tmp/x",
                "-D",
                "-V"
            ]
        );
    }

    #[test]
    fn go_style_single_dash_long_flags_are_accepted() {
        assert_eq!(
            norm(&[
                "jetlog",
                "server",
                "-port",
                "4333",
                "-store_dir=/d",
                "-jetstream"
            ]),
            [
                "jetlog",
                "server",
                "--port",
                "4333",
                "--store_dir=/d",
                "--jetstream"
            ]
        );
    }

    #[test]
    fn values_and_single_letter_flags_are_left_alone() {
        assert_eq!(
            norm(&[
                "jetlog",
                "server",
                "-p",
                "-1",
                "-D",
                "--pass",
                "-secret",
                "-a",
                "127.0.0.1"
            ]),
            [
                "jetlog",
                "server",
                "-p",
                "-1",
                "-D",
                "--pass",
                "-secret",
                "-a",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn other_subcommands_are_untouched() {
        assert_eq!(norm(&["jetlog", "pub", "-js"]), ["jetlog", "pub", "-js"]);
    }
}
