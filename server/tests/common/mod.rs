//! Running the `notar-server` binary in tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    let mut child = command
        .args(args)
        .current_dir(dir)
        .env("NOTAR_SERVER_SECRET", secret)
        .env("NOTAR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("notar-server starts");
    let stderr = child.stderr.take().expect("stderr");
    // Read the log on a thread, so that a server that never gets ready fails the test
    // instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Only the ready line: warnings before it name the address too.
            if !line.contains("notar-server ready") {
                continue;
            }
            if let Some(rest) = line.split("listen=").nth(1) {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address within 30 s");
    (child, addr)
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
