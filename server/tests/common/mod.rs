//! Running the `notar-server` binary in tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_notar-server");

/// Starts the binary in `dir` with `args` (through `prefix`, such as `prlimit …`, when not
/// empty), waits for its "ready" log line, and returns the child and the address it
/// listens on.
pub fn start(dir: &Path, prefix: &[&str], args: &[&str], secret: &str) -> (Child, String) {
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    command
        .args(args)
        .current_dir(dir)
        .env("NOTAR_SERVER_SECRET", secret)
        .env("NOTAR_LOG", "info");
    notar_tests::process::spawn_ready(&mut command)
}

/// Runs the binary in `dir` with `args` and `secret`, expecting it to refuse to start:
/// asserts exit code 2 and returns stderr.
pub fn refused_start(dir: &Path, args: &[&str], secret: &str) -> String {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NOTAR_SERVER_SECRET", secret)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "exit code");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
