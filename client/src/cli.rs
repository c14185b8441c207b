//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// The server when neither `--server` nor an environment variable names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:4443";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 trust not established (no trust data, metadata that does not \
verify, an unsigned tag, a pin no root matches, a changed root); 2 any other error, \
including an unreachable trust server or registry.

Passphrases: NOTAR_ROOT_PASSPHRASE, NOTAR_TARGETS_PASSPHRASE (or Docker's \
DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE, DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE), else a \
prompt when stdin is a terminal, else an error.";

/// Notar: sign image tags and verify them with TUF trust data.
#[derive(Debug, Parser)]
#[command(name = "notar", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Trust server URL [env: NOTAR_SERVER, then DOCKER_CONTENT_TRUST_SERVER] [default: http://127.0.0.1:4443]
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Extra CA certificate (PEM) for the trust server's TLS, besides the system roots and
    /// ~/.docker/tls/<host:port>/ca.crt [env: NOTAR_CA_CERT]
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// Trust directory: private keys and verified metadata [env: NOTAR_TRUST_DIR] [default: ~/.notar]
    #[arg(long, global = true, value_name = "DIR")]
    pub trust_dir: Option<PathBuf>,

    /// Results as JSON on stdout (`trust inspect` prints JSON unless --pretty)
    #[arg(long, global = true)]
    pub json: bool,

    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign, inspect, revoke and resolve tags
    Trust(TrustArgs),
    /// Manage the private keys in the trust directory
    #[command(subcommand)]
    Key(KeyCommand),
    /// Pull an image whose tag is signed, into an OCI image layout
    Pull(crate::commands::pull::PullArgs),
    /// Upload an OCI image layout to its registry, then sign the tag
    Push(crate::commands::push::PushArgs),
    /// Log in to a trust server or registry; credentials go where `docker login` keeps
    /// them (a credential helper, or ~/.docker/config.json)
    Login(crate::commands::login::LoginArgs),
    /// Forget the credentials of a trust server or registry
    Logout(crate::commands::login::LogoutArgs),
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Refuse any root of the repository that this root key did not sign (overrides a pin
    /// saved with `notar trust pin`)
    #[arg(long, global = true, value_name = "KEYID")]
    pub root_key: Option<String>,

    #[command(subcommand)]
    pub command: TrustCommand,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Sign a tag: <gun>:<tag> is the manifest with this digest and size
    Sign(SignArgs),
    /// Show who signed what (Docker's `trust inspect` output)
    Inspect(InspectArgs),
    /// Remove the signature of one tag, or of every tag
    Revoke(RevokeArgs),
    /// Print the verified digest reference <gun>@sha256:<hex> of a tag
    Resolve(ResolveArgs),
    /// Pin the root key of a repository: its root must descend from a root this key signed
    Pin(PinArgs),
    /// Remove the root key pin of a repository
    Unpin(GunArgs),
    /// Forget the trust data kept for a repository (after it was re-created on purpose)
    Reset(GunArgs),
    /// Signers' keys: generate or load a delegation key
    #[command(subcommand)]
    Key(crate::commands::signer::TrustKeyCommand),
    /// Add or remove a signer (delegated roles targets/<name> and targets/releases)
    #[command(subcommand)]
    Signer(crate::commands::signer::SignerCommand),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The tag to sign: <gun>:<tag>
    #[arg(value_name = "GUN:TAG")]
    pub reference: String,

    /// Manifest digest, sha256:<64 hex> (default: what the tag names in the registry)
    #[arg(long, value_name = "sha256:HEX", requires = "size")]
    pub digest: Option<String>,

    /// Manifest size in bytes
    #[arg(long, value_name = "BYTES", requires = "digest")]
    pub size: Option<u64>,

    /// Reach this registry host over plain HTTP (loopback hosts always are)
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Sign into this role only: `targets`, or a signer's role (`targets/<name>`, or just
    /// `<name>`). Default, as Docker does: every signer role whose paths allow the tag and
    /// whose key this trust directory holds; `targets` only when the repository has no
    /// signers
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,

    /// Lifetime of the new targets metadata, in days
    #[arg(long, value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub targets_lifetime: u32,

    /// Lifetime of root metadata when this signature creates the repository, in days
    #[arg(long, value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub root_lifetime: u32,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Human-readable sections instead of JSON
    #[arg(long)]
    pub pretty: bool,

    /// Repositories or tags: <gun>[:<tag>]
    #[arg(value_name = "GUN[:TAG]", required = true)]
    pub references: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// <gun>:<tag> removes one tag; <gun> removes every tag (after a confirmation)
    #[arg(value_name = "GUN[:TAG]")]
    pub reference: String,

    /// Do not ask for confirmation when revoking every tag
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,

    /// Lifetime of the new targets metadata, in days
    #[arg(long, value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub targets_lifetime: u32,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The tag: <gun>:<tag>
    #[arg(value_name = "GUN:TAG")]
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct GunArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,

    /// The root key ID (64 hex digits, as `notar key list` and `trust inspect` show them)
    #[arg(value_name = "KEYID")]
    pub key_id: String,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the private keys: role, GUN, key ID, file
    List,
    /// Replace the key of a role (root, targets, snapshot, timestamp) in one atomic update
    Rotate(crate::commands::rotate::RotateArgs),
    /// Write one archive of the key files (still encrypted) and a manifest
    Backup(crate::commands::backup::BackupArgs),
    /// Bring the keys of a backup archive into the trust directory
    Restore(crate::commands::backup::RestoreArgs),
    /// Print or write one key file (still encrypted)
    Export(crate::commands::backup::ExportArgs),
    /// Import a key file, or an unencrypted PKCS#8 ed25519 PEM (encrypted on import)
    Import(crate::commands::backup::ImportArgs),
    /// Change the passphrase of a key (new one from NOTAR_NEW_PASSPHRASE, or asked twice)
    Passwd(crate::commands::backup::PasswdArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "notar",
            "trust",
            "inspect",
            "--json",
            "--server",
            "http://x:1",
            "alpine",
            "-vv",
        ])
        .expect("parses");
        assert!(cli.json);
        assert_eq!(cli.verbose, 2);
        assert_eq!(cli.server.as_deref(), Some("http://x:1"));
        let cli =
            Cli::try_parse_from(["notar", "trust", "resolve", "--root-key", "ab", "alpine:1"])
                .expect("parses");
        let Command::Trust(trust) = cli.command else {
            panic!("trust command");
        };
        assert_eq!(trust.root_key.as_deref(), Some("ab"));
    }
}
