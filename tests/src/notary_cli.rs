//! The stock `notary` 0.7 CLI (Debian's `notary` package), run against a server.
//!
//! Outputs are compared with what the same commands printed against the real notary-server
//! (`shared/notary/lab/captured/client_workflow.md`), after [`normalise`] has replaced what
//! differs from run to run: key IDs, the server's address, times.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// Passphrases of the lab transcript.
pub const PASSPHRASES: [(&str, &str); 4] = [
    ("NOTARY_ROOT_PASSPHRASE", "rootpass123"),
    ("NOTARY_TARGETS_PASSPHRASE", "targetspass123"),
    ("NOTARY_SNAPSHOT_PASSPHRASE", "snapshotpass123"),
    ("NOTARY_DELEGATION_PASSPHRASE", "delegpass123"),
];

/// Whether the stock client is here; in CI (`CI` set) its absence is a failure.
pub fn available() -> bool {
    let found = std::process::Command::new("notary")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "the stock notary CLI must be installed in CI (Debian package notary)"
    );
    found
}

/// One `notary` trust directory against one server.
#[derive(Clone, Debug)]
pub struct Notary {
    pub server: String,
    pub trust_dir: PathBuf,
    pub ca: PathBuf,
    /// More environment for every command (a passphrase for one more key).
    pub env: Vec<(String, String)>,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics unless the command exited with `code`; returns the output for more checks.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The normalised stdout.
    pub fn out(&self) -> String {
        normalise(&self.stdout)
    }
}

impl Notary {
    pub fn new(server: &str, trust_dir: &Path, ca: &Path) -> Self {
        Notary {
            server: server.to_owned(),
            trust_dir: trust_dir.to_path_buf(),
            ca: ca.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// The same with `name=value` in the environment of every command.
    pub fn with_env(&self, name: &str, value: &str) -> Self {
        let mut with = self.clone();
        with.env.push((name.to_owned(), value.to_owned()));
        with
    }

    /// The same server and CA with another trust directory.
    pub fn with_trust_dir(&self, trust_dir: &Path) -> Self {
        Notary {
            trust_dir: trust_dir.to_path_buf(),
            ..self.clone()
        }
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs `notary -s SERVER -d TRUST_DIR --tlscacert CA ARGS…`, feeding `stdin`.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = tokio::process::Command::new("notary");
        command
            .arg("-s")
            .arg(&self.server)
            .arg("-d")
            .arg(&self.trust_dir)
            .arg("--tlscacert")
            .arg(&self.ca)
            .args(args)
            .envs(PASSPHRASES)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("notary runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            input.write_all(bytes).await.expect("write stdin");
        }
        drop(input);
        let output =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("notary {args:?} did not finish within a minute"))
                .expect("notary output");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `openssl ARGS…` (keys and certificates made as the Notary lab made them).
pub fn openssl(args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// Writes a new P-256 private key to `path` as unencrypted PKCS#8, with openssl, as the
/// Notary lab made its delegation keys (`<path>.ec` holds the SEC1 form on the way).
pub fn p256_pkcs8_key(path: &Path) {
    let sec1 = path.with_extension("ec");
    let (sec1, pkcs8) = (
        sec1.to_str().expect("utf-8 path"),
        path.to_str().expect("utf-8 path"),
    );
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        sec1,
    ]);
    openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", sec1, "-out", pkcs8]);
}

/// Replaces what differs between two runs of the same commands: 64-hex key IDs (not the
/// content digests in `keep`), `host:port` of the server, and times in log lines.
pub fn normalise_keeping(text: &str, keep: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            .count();
        if run == 64 && !keep.contains(&&text[i..i + 64]) {
            out.push_str("<id>");
            i += 64;
        } else if run > 0 {
            out.push_str(&text[i..i + run]);
            i += run;
        } else {
            let c = text[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out.lines()
        .map(|line| {
            let line = match (line.find("time=\""), line.find("\" level")) {
                (Some(start), Some(end)) if start < end => {
                    format!("{}time=<t>{}", &line[..start], &line[end + 1..])
                }
                _ => line.to_owned(),
            };
            mask_host_port(&line)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`normalise_keeping`] with the content digests of the lab transcript kept.
pub fn normalise(text: &str) -> String {
    normalise_keeping(text, &LAB_DIGESTS)
}

/// sha256 of `hello\n`, `world 2\n`, and the 1024 random bytes the lab added by hash.
pub const LAB_DIGESTS: [&str; 3] = [
    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    "408460797278cc6555f7ecf654e4f414c7c28be31bacad47489975dc8356a6a7",
    "aff2997b4b06a36ea7882f36732ad9b9fdb07b4058e97d6ff7156c4120de8148",
];

fn mask_host_port(line: &str) -> String {
    let mut out = line.to_owned();
    // Test servers listen on 127.0.0.1 (the lab's was localhost:4443); registry names such
    // as `localhost:5000/…` in GUNs stay.
    for host in ["127.0.0.1:"] {
        while let Some(start) = out.find(host) {
            let digits = out[start + host.len()..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                break;
            }
            out.replace_range(start..start + host.len() + digits, "<server>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_keeps_digests_and_hides_ids_hosts_and_times() {
        let id = "ab".repeat(32);
        let text = format!(
            "v1 {} {id}\ntime=\"2026-11-28T12:15:22Z\" level=warning msg=\"x\"\n127.0.0.1:4443 does not localhost:5000/a",
            LAB_DIGESTS[0]
        );
        assert_eq!(
            normalise(&text),
            format!(
                "v1 {} <id>\ntime=<t> level=warning msg=\"x\"\n<server> does not localhost:5000/a",
                LAB_DIGESTS[0]
            )
        );
    }
}

/// The Docker CLI's `docker trust` (no engine here), with its own `DOCKER_CONFIG` and the
/// trust server's CA where Docker looks for it (`$DOCKER_CONFIG/tls/<host:port>/ca.crt`).
#[derive(Clone, Debug)]
pub struct DockerTrust {
    pub server: String,
    pub config: PathBuf,
}

/// Whether the Docker CLI is here; in CI its absence is a failure.
pub fn docker_available() -> bool {
    let found = std::process::Command::new("docker")
        .args(["trust", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "the Docker CLI (docker trust) must be installed in CI"
    );
    found
}

impl DockerTrust {
    /// `server` is `https://host:port`; its CA is copied into the config's `tls/`.
    pub fn new(server: &str, config: &Path, ca: &Path) -> Self {
        let host = server.trim_start_matches("https://").trim_end_matches('/');
        let tls = config.join("tls").join(host);
        std::fs::create_dir_all(&tls).expect("tls dir");
        std::fs::copy(ca, tls.join("ca.crt")).expect("copy CA");
        DockerTrust {
            server: server.to_owned(),
            config: config.to_path_buf(),
        }
    }

    /// Runs `docker trust ARGS…` with the root and repository passphrases of the lab.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new("docker");
        command
            .arg("trust")
            .args(args)
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CONTENT_TRUST_SERVER", &self.server)
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", PASSPHRASES[0].1)
            .env(
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                PASSPHRASES[1].1,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
            .await
            .unwrap_or_else(|_| panic!("docker trust {args:?} did not finish within a minute"))
            .expect("docker runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
