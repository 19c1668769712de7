//! Log lines in nats-server's shape: `[<pid>] <date> <time> [INF] <message>`, so scripts,
//! harnesses and dashboards that read nats-server's log read ours unchanged.
//!
//! nats-server writes through Go's `log` package with a `[pid] ` prefix, the date and time
//! with microseconds (unless `-T=false`), and a level label. Labels are coloured only on a
//! terminal, as there. The time is UTC (nats-server uses the local zone, the same thing on a
//! server whose zone is UTC). Structured fields of an event follow its message as `key=value`.

use std::fmt;
use std::path::Path;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::jetstream::time::format_log_time;

/// The event formatter.
pub struct NatsLogFormat {
    /// `[<pid>] `, computed once.
    prefix: String,
    /// `-T`/`logtime`: whether lines carry the date and time.
    with_time: bool,
    /// Whether the output is a terminal (coloured labels).
    colors: bool,
}

impl NatsLogFormat {
    pub fn new(with_time: bool, colors: bool) -> Self {
        NatsLogFormat {
            prefix: format!("[{}] ", std::process::id()),
            with_time,
            colors,
        }
    }

    /// nats-server's label for a level: `[INF] ` plain, or with the label coloured.
    fn label(&self, level: &Level) -> String {
        let (text, color) = match *level {
            Level::ERROR => ("ERR", 31),
            Level::WARN => ("WRN", 33),
            Level::INFO => ("INF", 32),
            Level::DEBUG => ("DBG", 36),
            Level::TRACE => ("TRC", 33),
        };
        if self.colors {
            format!("[\x1b[{color}m{text}\x1b[0m] ")
        } else {
            format!("[{text}] ")
        }
    }
}

impl<S, N> FormatEvent<S, N> for NatsLogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&self.prefix)?;
        if self.with_time {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            writer.write_str(&format_log_time(now))?;
            writer.write_char(' ')?;
        }
        writer.write_str(&self.label(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
/// Sets up the server's log: nats-server's line format, to stderr or `log_file`, at the
/// level -D/-V ask for.
pub fn init_logging(
    debug: bool,
    trace: bool,
    logtime: bool,
    log_file: Option<&Path>,
) -> Result<(), String> {
    let level = if trace {
        "trace"
    } else if debug {
        "debug"
    } else {
        "info"
    };
    // The storage and TLS libraries' own chatter (sled logs its page cache at debug and
    // trace) is not the server's log: only their warnings get through, whatever -D/-V say.
    // openraft reports every unreachable peer as an error while a cluster restarts, and its
    // state dumps at info; what matters of it reaches the server's own log lines (RUST_LOG
    // shows it when wanted).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},sled=warn,rustls=warn,openraft=off"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            // An unbuffered file behind a mutex: each line is written whole, at once.
            builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .event_format(NatsLogFormat::new(logtime, false))
                .init();
        }
        None => {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder
                .with_writer(std::io::stderr)
                .with_ansi(terminal)
                .event_format(NatsLogFormat::new(logtime, terminal))
                .init()
        }
    }
    Ok(())
}
