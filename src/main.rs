//! The `jetlog` binary: all logic lives in the library; this only hands over the arguments.

fn main() -> std::process::ExitCode {
    jetlog::cli::main()
}
