//! Running a `notar-server` process, however it is started (the binary, a wrapper such as
//! `prlimit`, a chroot), and waiting until it serves.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a server may take to log that it is ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Spawns `command` with stdin and stdout closed and stderr read on a thread (to the end,
/// so the server never blocks on a full pipe), waits for its `notar-server ready` log line,
/// and returns the child and the `listen=` address of that line. Panics with the log so far
/// when no ready line comes within a minute.
pub fn spawn_ready(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(READY_WITHIN) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no ready line within {READY_WITHIN:?}; the log:\n{}",
                log.join("\n")
            );
        };
        // Only the ready line: warnings before it may name the address too.
        if line.contains("notar-server ready")
            && let Some(rest) = line.split("listen=").nth(1)
        {
            let addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            // Keep draining the pipe for the rest of the child's life.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (child, addr);
        }
        log.push(line);
    }
}
