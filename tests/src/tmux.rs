//! A command in a real terminal: a detached tmux session of its own (Debian's `tmux`), typed
//! into with `send-keys` and read with `capture-pane`, as a person at a terminal would
//! meet it.
//!
//! Each [`Pane`] has its own tmux server (`-S` a socket in a temporary directory, no
//! configuration file but the one written here), so tests run side by side; the server is
//! killed when the pane is dropped. The pane stays after the command ends
//! (`remain-on-exit`), so its last screen and its exit status can still be read.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What the pane prints after the command, before its exit status.
const EXIT_MARK: &str = "[tmux pane: exit status ";

/// How long [`Pane::wait_for`] waits for text before the test fails.
const WAIT: Duration = Duration::from_secs(60);

/// One command running in a terminal 160 columns wide.
#[derive(Debug)]
pub struct Pane {
    dir: tempfile::TempDir,
}

impl Pane {
    /// Starts `program args` in a new terminal with exactly `env` (and `PATH`) as its
    /// environment; the working directory is `cwd`.
    pub fn start(program: &str, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Pane {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("tmux.conf");
        std::fs::write(
            &config,
            "set -g remain-on-exit on\nset -g history-limit 50000\nset -g status off\n",
        )
        .expect("tmux.conf");
        let pane = Pane { dir };
        let mut command = Command::new("tmux");
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .current_dir(cwd)
            .arg("-S")
            .arg(pane.socket())
            .arg("-f")
            .arg(&config)
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "50",
                "--",
            ])
            // The shell prints the exit status: tmux's own (#{pane_dead_status}) is not
            // always filled in once the pane is dead.
            .args([
                "sh",
                "-c",
                &format!("\"$@\"; echo \"{EXIT_MARK}$?.\""),
                "sh",
            ])
            .arg(program)
            .args(args);
        let status = command
            .status()
            .expect("running tmux (apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed: {status}");
        pane
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("socket")
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("running tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Everything the terminal has shown, its scrollback included, wrapped lines joined.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"])
    }

    /// Waits until `text` has been shown `times` times in all; returns the screen then.
    pub fn wait_for(&self, text: &str, times: usize) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= times {
                return screen;
            }
            assert!(
                start.elapsed() < WAIT,
                "{text:?} was not shown {times} times within {WAIT:?}; the terminal shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", "--", text]);
        self.tmux(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Waits for the command to end; returns its exit status and the screen without the
    /// line that gave the status.
    pub fn finish(&self) -> (i32, String) {
        let screen = self.wait_for(EXIT_MARK, 1);
        let at = screen.rfind(EXIT_MARK).expect("shown");
        let code = screen[at + EXIT_MARK.len()..]
            .split('.')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        (code, screen[..at].to_owned())
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .arg("kill-server")
            .output();
    }
}
