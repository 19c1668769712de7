//! Shell completions and man pages, generated from the same clap definitions the commands
//! are parsed with, so they never disagree with `--help`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;

/// `jetlog completions <shell>`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    // Into memory first: the generator panics on a failed write (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "jetlog", &mut script);
    print(&script)
}

/// Writes `bytes` to stdout; a reader that closed the pipe early is not an error.
fn print(bytes: &[u8]) -> ExitCode {
    match std::io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jetlog: error: {err}");
            ExitCode::from(1)
        }
    }
}

/// `jetlog man [--dir DIR]`: the page of `jetlog` on stdout, or a page for `jetlog` and for
/// every command and subcommand (`jetlog-stream-add.1`, …) written into `DIR`.
pub fn man(dir: Option<&Path>) -> ExitCode {
    let command = Cli::command();
    let outcome = match dir {
        None => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(command).render(&mut page) {
                Ok(()) => return print(&page),
                Err(err) => Err(err),
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jetlog: error: cannot write the man pages: {err}");
            ExitCode::from(1)
        }
    }
}
