//! What the end-to-end tests of the real `notar` binary share: the environment variables
//! every run removes, [`Run`], and [`run_notar`], which runs the binary with a clean
//! environment, stdin from /dev/null (never a terminal) and a timeout, so a command that
//! would wait for input fails the test instead of hanging it.

// Each test binary (`tests/*.rs`) compiles its own copy of this module and none uses
// every item in it, so an item unused by one of them is not dead code.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_notar");

/// Variables a caller's environment might hold that would change what notar does.
pub const CLEARED: &[&str] = &[
    "NOTAR_SERVER",
    "NOTAR_TRUST_DIR",
    "NOTAR_ROOT_PASSPHRASE",
    "NOTAR_TARGETS_PASSPHRASE",
    "NOTAR_DELEGATION_PASSPHRASE",
    "DOCKER_CONTENT_TRUST_SERVER",
    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
    "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
    "NOTAR_KDF",
    "NOTAR_LOG",
    "NOTAR_CONTENT_TRUST",
    "DOCKER_CONTENT_TRUST",
    "DOCKER_CONFIG",
    "NOTAR_AUTH",
    "NOTAR_CA_CERT",
    "NOTAR_AGENT_SOCK",
];

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// `bin args` with [`CLEARED`] removed from the environment, then `env` set (a later
/// entry wins over an earlier one with the same name), stdin from /dev/null, stdout and
/// stderr piped, and the process killed when the command's future or child is dropped.
pub fn command(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    for name in CLEARED {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs [`command`] for `bin` to the end; panics if it takes longer than `timeout`.
pub async fn run_bin(bin: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Run {
    let output = tokio::time::timeout(timeout, command(bin, args, env).output())
        .await
        .unwrap_or_else(|_| panic!("notar {args:?} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("running notar {args:?}: {e}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the `notar` under test (see [`run_bin`]).
pub async fn run_notar(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Run {
    run_bin(Path::new(BIN), args, env, timeout).await
}

/// The hex sha256 and length of a manifest: what `trust sign` signs for it.
pub fn digest_of(manifest: &[u8]) -> (String, u64) {
    use sha2::{Digest, Sha256};
    (hex::encode(Sha256::digest(manifest)), manifest.len() as u64)
}

/// The arguments of `notar trust sign <reference>` for `manifest`.
pub fn sign_args(reference: &str, manifest: &[u8]) -> Vec<String> {
    let (digest, size) = digest_of(manifest);
    [
        "trust",
        "sign",
        reference,
        "--digest",
        &format!("sha256:{digest}"),
        "--size",
        &size.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Copies the trust directory `from` to `to` with its modes (`cp -a`), as a CI runner gets
/// its own copy.
pub fn copy_trust_dir(from: &Path, to: &Path) {
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        copied.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// The keys of a `key import --json` report as (role, GUN or `-`, outcome), sorted.
pub fn import_outcomes(report: &Value) -> Vec<(String, String, String)> {
    let mut outcomes: Vec<(String, String, String)> = report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["role"].as_str().expect("role").to_owned(),
                k["gun"].as_str().unwrap_or("-").to_owned(),
                k["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    outcomes
}
