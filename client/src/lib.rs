//! notar: the command-line client of Notar.
//!
//! The binary (`src/main.rs`) parses [`cli::Cli`], sets up tracing and calls [`run`]. The
//! library does the work:
//!
//! - [`reference`] parses `<gun>[:<tag>]` with Docker's normalisation.
//! - [`http`] talks to the trust server: size-capped downloads behind the TUF workflow's
//!   `Fetch` trait, the server-managed keys, atomic multipart uploads.
//! - [`cache`] keeps each repository's verified metadata in `<trust-dir>/tuf/<gun>/`.
//! - [`repo`] brings a repository up to date through `notar_tuf::client::Updater`, with
//!   trust on first use, root key pins and expiry warnings.
//! - [`keyring`] finds, unlocks and creates private keys in `<trust-dir>/private/`.
//! - [`registry`] speaks the OCI distribution API to the registry a GUN names (`pull`,
//!   `push`, `trust sign` without `--digest`).
//! - [`commands`] holds one module per command; [`output`] prints results on stdout.
//!
//! Results go to stdout, diagnostics to stderr; exit codes are in [`error`].

pub mod auth;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod error;
pub mod http;
pub mod keyring;
pub mod output;
pub mod reference;
pub mod registry;
pub mod repo;

use std::path::PathBuf;

use notar_keys::KdfParams;
use time::OffsetDateTime;

pub use error::Error;

use crate::cli::{Cli, Command, KeyCommand, TrustCommand};
use crate::http::Server;

/// Test-only: `NOTAR_KDF=test` encrypts new keys with `KdfParams::for_tests()` (8 MiB, one
/// pass), so end-to-end tests do not spend seconds in argon2id. Never set it otherwise.
pub const KDF_ENV: &str = "NOTAR_KDF";

/// What every command needs: where the server and the trust directory are, and when the
/// command started.
#[derive(Debug)]
pub struct Context {
    pub server: Server,
    pub trust_dir: PathBuf,
    /// `--json`: results as JSON.
    pub json: bool,
    /// The cost of key derivation for new key files.
    pub kdf: KdfParams,
    /// The time the command started; every expiry is judged against it.
    pub now: OffsetDateTime,
    /// `--ca-cert` or `NOTAR_CA_CERT`, for servers other than the trust server (login).
    pub ca_cert: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl Context {
    /// Resolves flags and environment: `--server`, then `NOTAR_SERVER`, then
    /// `DOCKER_CONTENT_TRUST_SERVER`, then the default; `--trust-dir`, then
    /// `NOTAR_TRUST_DIR`, then `~/.notar`.
    pub fn from_cli(cli: &Cli) -> Result<Self, Error> {
        let server = cli
            .server
            .clone()
            .or_else(|| env_nonempty("NOTAR_SERVER"))
            .or_else(|| env_nonempty("DOCKER_CONTENT_TRUST_SERVER"))
            .unwrap_or_else(|| cli::DEFAULT_SERVER.to_owned());
        let trust_dir = match cli.trust_dir.clone() {
            Some(dir) => dir,
            None => match env_nonempty("NOTAR_TRUST_DIR") {
                Some(dir) => PathBuf::from(dir),
                None => default_trust_dir()?,
            },
        };
        let kdf = match env_nonempty(KDF_ENV).as_deref() {
            None | Some("default") => KdfParams::default(),
            Some("test") => KdfParams::for_tests(),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "{KDF_ENV}={other:?}: expected \"test\" (test suites only) or \"default\""
                )));
            }
        };
        let ca_cert = cli
            .ca_cert
            .clone()
            .or_else(|| env_nonempty("NOTAR_CA_CERT").map(PathBuf::from));
        let home = env_nonempty("HOME").map(PathBuf::from);
        Ok(Context {
            server: Server::with_ca(&server, ca_cert.as_deref(), home.as_deref())?,
            trust_dir,
            json: cli.json,
            kdf,
            now: OffsetDateTime::now_utc(),
            ca_cert,
            home,
        })
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn default_trust_dir() -> Result<PathBuf, Error> {
    env_nonempty("HOME")
        .map(|home| PathBuf::from(home).join(".notar"))
        .ok_or_else(|| {
            Error::Usage(
                "HOME is not set: give the trust directory with --trust-dir or NOTAR_TRUST_DIR"
                    .into(),
            )
        })
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let ctx = Context::from_cli(&cli)?;
    tracing::debug!(server = ctx.server.url(), trust_dir = %ctx.trust_dir.display(), "starting");
    match cli.command {
        Command::Trust(trust) => {
            let pin = trust
                .root_key
                .as_deref()
                .map(commands::parse_key_id)
                .transpose()?;
            match trust.command {
                TrustCommand::Sign(args) => commands::sign::run(&ctx, args, pin.as_ref()).await,
                TrustCommand::Inspect(args) => {
                    commands::inspect::run(&ctx, args, pin.as_ref()).await
                }
                TrustCommand::Revoke(args) => commands::revoke::run(&ctx, args, pin.as_ref()).await,
                TrustCommand::Resolve(args) => {
                    commands::resolve::run(&ctx, args, pin.as_ref()).await
                }
                TrustCommand::Pin(args) => {
                    if pin.is_some() {
                        return Err(Error::Usage(
                            "trust pin takes the key ID as an argument, not --root-key".into(),
                        ));
                    }
                    commands::pin::run(&ctx, args).await
                }
                TrustCommand::Unpin(args) => commands::pin::unpin(&ctx, &args.gun),
                TrustCommand::Reset(args) => commands::pin::reset(&ctx, &args.gun),
                TrustCommand::Key(command) => commands::signer::key(&ctx, command).await,
                TrustCommand::Signer(command) => {
                    commands::signer::signer(&ctx, command, pin.as_ref()).await
                }
            }
        }
        Command::Key(KeyCommand::List) => commands::key::list(&ctx),
        Command::Key(KeyCommand::Rotate(args)) => commands::rotate::run(&ctx, args, None).await,
        Command::Key(KeyCommand::Backup(args)) => commands::backup::backup(&ctx, args),
        Command::Key(KeyCommand::Restore(args)) => commands::backup::restore(&ctx, args),
        Command::Key(KeyCommand::Export(args)) => commands::backup::export(&ctx, args),
        Command::Key(KeyCommand::Import(args)) => commands::backup::import(&ctx, args).await,
        Command::Key(KeyCommand::Passwd(args)) => commands::backup::passwd(&ctx, args).await,
        Command::Pull(args) => commands::pull::run(&ctx, args).await,
        Command::Login(args) => commands::login::login(&ctx, args).await,
        Command::Logout(args) => commands::login::logout(&ctx, args),
        Command::Push(args) => commands::push::run(&ctx, args).await,
    }
}
