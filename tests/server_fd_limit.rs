//! The server raises its open-file soft limit to the hard limit (`cli::fd_limit`): with the
//! common soft limit of 1024 it would otherwise run out of descriptors at about 8 GiB of
//! stream segments. One test in its own binary, since it changes the process's limit.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let before = getrlimit(Resource::Nofile);
    let Some(hard) = before.maximum else {
        eprintln!("hard limit unlimited here; the raise is to 2^20, not checked");
        return;
    };
    if hard <= 64 {
        eprintln!("hard limit {hard} leaves no room to lower the soft one; skipped");
        return;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: Some(hard),
        },
    )
    .expect("lower the soft limit");
    assert_eq!(jetlog::cli::fd_limit::raise_open_files_limit(), Some(hard));
    assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
    // A second call finds nothing to do.
    assert_eq!(jetlog::cli::fd_limit::raise_open_files_limit(), Some(hard));
}
