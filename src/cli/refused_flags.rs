//! nats-server flags that `jetlog server` recognises but cannot honour: syslog,
//! log rotation, profiling, TLS help. A script that passes one must learn at once that it is
//! not in force, with the reason, rather than meet clap's generic "unexpected argument" or,
//! worse, have it dropped. Checked on the normalised arguments (`-ms` has become
//! `--https_port` by then).

/// Flags (long form, as normalised) and why each is refused.
const REFUSED: &[(&[&str], &str)] = &[
    (
        &["--help_tls"],
        "jetlog prints no separate TLS help: the TLS flags are in --help, the tls block in docs/configuration.md",
    ),
    (
        &["-s", "--syslog", "-r", "--remote_syslog"],
        "syslog output is not implemented (use -l FILE or stderr)",
    ),
    (
        &["--log_size_limit"],
        "log file rotation is not implemented",
    ),
    (
        &["--max_traced_msg_len"],
        "trace output does not print message bodies, so there is nothing to shorten",
    ),
    (&["--profile"], "the profiling port is not implemented"),
];

/// The refusal message for the first refused flag among `args` (those after `server`).
pub fn refusal(args: &[String]) -> Option<String> {
    let after_server = args.iter().skip_while(|a| *a != "server").skip(1);
    for arg in after_server.take_while(|a| *a != "--") {
        let name = arg.split_once('=').map_or(arg.as_str(), |(n, _)| n);
        if let Some((_, why)) = REFUSED.iter().find(|(flags, _)| flags.contains(&name)) {
            return Some(format!("{name} is not supported: {why}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn refused_flags_name_the_reason() {
        let message =
            refusal(&args(&["jetlog", "server", "-p", "4222", "--profile", "1"])).unwrap();
        assert_eq!(
            message,
            "--profile is not supported: the profiling port is not implemented"
        );
        assert!(refusal(&args(&["jetlog", "server", "--tls", "--tlscert", "c"])).is_none());
        assert!(refusal(&args(&["jetlog", "server", "--routes=nats://a:6222"])).is_none());
        assert!(refusal(&args(&["jetlog", "server", "-p", "4222", "-js"])).is_none());
        // Values are not flags: a store directory named --tls is the user's business.
        assert!(refusal(&args(&["jetlog", "pub", "--tls"])).is_none());
    }
}
