//! The command line, as clap parses it, and [`run`], which hands each command to its
//! module. The top layer: it imports the commands, nothing imports it but the binary.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::Error;
use crate::commands;
use crate::commands::args::{ServerArgs, TrustDataArgs};
use crate::commands::inspect::InspectArgs;
use crate::commands::pin::root_pin;
use crate::commands::pin::{GunArgs, PinArgs};
use crate::commands::resolve::ResolveArgs;
use crate::commands::revoke::RevokeArgs;
use crate::commands::sign::SignArgs;
use crate::commands::signer::SignerCommand;
use crate::trust::context::{Context, Flags};

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
    /// Trust directory: private keys and verified metadata [env: NOTAR_TRUST_DIR] [default: ~/.notar]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub trust_dir: Option<PathBuf>,

    /// Results as JSON on stdout (`trust inspect` prints JSON unless --pretty)
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, help_heading = "Global options", action = ArgAction::Count)]
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
    /// Keep unlocked keys in memory for a while, so that many signatures need one
    /// passphrase each (like ssh-agent); --stop wipes them
    Agent(crate::commands::agent::AgentArgs),
    /// The root key, kept offline: make it and write its public key, or sign a root file
    #[command(subcommand)]
    Root(crate::commands::offline_root::RootCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(CompletionArgs),
    /// Print the manual page, notar(1), as roff (`notar man | man -l -`), or write one
    /// page per command into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write notar.1 and a page per command (notar-trust-sign.1, …) here instead
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script of `command` for `shell` to stdout; a broken pipe is not
/// an error.
pub fn print_completion(
    mut command: clap::Command,
    shell: clap_complete::Shell,
) -> Result<(), Error> {
    let name = command.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut out);
    crate::output::print(&String::from_utf8_lossy(&out))
}

/// Writes the page of `command` and of each of its subcommands, however deep, into `dir`
/// (`notar.1`, `notar-trust.1`, `notar-trust-sign.1`, …).
pub fn write_man_pages(command: clap::Command, dir: &std::path::Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let mut command = command;
    command.build();
    let mut pending = vec![(command.get_name().to_owned(), command)];
    let mut written = 0;
    while let Some((name, command)) = pending.pop() {
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let sub_name = format!("{name}-{}", sub.get_name());
            pending.push((sub_name.clone(), sub.clone().display_name(sub_name)));
        }
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(|e| Error::Usage(format!("rendering {name}(1): {e}")))?;
        std::fs::write(&path, page).map_err(Error::io("writing", &path))?;
        written += 1;
    }
    eprintln!("notar: wrote {written} manual pages to {}", dir.display());
    Ok(())
}

/// Writes the manual page of `command` (roff) to stdout.
pub fn print_man(command: clap::Command) -> Result<(), Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|e| Error::Usage(format!("rendering the manual page: {e}")))?;
    crate::output::print(&String::from_utf8_lossy(&out))
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Sign a tag: <gun>:<tag> is the manifest with this digest and size
    Sign(SignArgs),
    /// Create a repository whose root key stays offline: prepare root version 1 for it
    /// (--root-pub, --out), then upload it signed (--signed-root)
    Init(crate::commands::offline_root::InitArgs),
    /// The next root of a repository whose root key is offline: prepare it (--out), then
    /// upload it signed (--signed-root)
    RootUpdate(crate::commands::offline_root::RootUpdateArgs),
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
    /// Import a key file, or Docker's and Notary's keys: a trust directory, a .key file, a
    /// PKCS#8 PEM (encrypted under a notar passphrase on import)
    Import(crate::commands::backup::ImportArgs),
    /// Change the passphrase of a key (new one from NOTAR_NEW_PASSPHRASE, or asked twice)
    Passwd(crate::commands::backup::PasswdArgs),
}

/// What a command that talks to the trust server was told about it.
#[derive(Clone, Copy, Debug)]
struct Remote<'a> {
    server: &'a ServerArgs,
    /// `--root-key`, on the commands that read a repository's trust data.
    root_key: Option<&'a str>,
}

impl Command {
    /// The server options of a command that talks to the trust server; `None` for the
    /// offline ones, which do not offer them.
    fn remote(&self) -> Option<Remote<'_>> {
        fn reads(args: &TrustDataArgs) -> Remote<'_> {
            Remote {
                server: &args.server,
                root_key: args.root_key.as_deref(),
            }
        }
        fn talks(server: &ServerArgs) -> Remote<'_> {
            Remote {
                server,
                root_key: None,
            }
        }
        Some(match self {
            Command::Trust(trust) => match &trust.command {
                TrustCommand::Sign(args) => reads(&args.trust),
                TrustCommand::Init(args) => talks(&args.server),
                TrustCommand::RootUpdate(args) => reads(&args.trust),
                TrustCommand::Inspect(args) => reads(&args.trust),
                TrustCommand::Revoke(args) => reads(&args.trust),
                TrustCommand::Resolve(args) => reads(&args.trust),
                TrustCommand::Pin(args) => talks(&args.server),
                TrustCommand::Signer(SignerCommand::Add(args)) => reads(&args.trust),
                TrustCommand::Signer(SignerCommand::Remove(args)) => reads(&args.trust),
                TrustCommand::Unpin(_) | TrustCommand::Reset(_) | TrustCommand::Key(_) => {
                    return None;
                }
            },
            Command::Key(KeyCommand::Rotate(args)) => reads(&args.trust),
            Command::Key(_) => return None,
            Command::Pull(args) => reads(&args.trust),
            Command::Push(args) => reads(&args.trust),
            Command::Login(args) => talks(&args.server),
            Command::Logout(args) => talks(&args.server),
            Command::Agent(_) | Command::Root(_) | Command::Completion(_) | Command::Man(_) => {
                return None;
            }
        })
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), Error> {
    use clap::CommandFactory;
    // These need no trust directory and no server.
    match &cli.command {
        Command::Completion(args) => return print_completion(Cli::command(), args.shell),
        Command::Man(args) => {
            return match &args.out_dir {
                Some(dir) => write_man_pages(Cli::command(), dir),
                None => print_man(Cli::command()),
            };
        }
        _ => {}
    }
    let remote = cli.command.remote();
    let ctx = Context::new(Flags {
        server: remote.and_then(|r| r.server.server.clone()),
        ca_cert: remote.and_then(|r| r.server.ca_cert.clone()),
        trust_dir: cli.trust_dir,
        json: cli.json,
    })?;
    tracing::debug!(server = ctx.server.url(), trust_dir = %ctx.trust_dir.display(), "starting");
    let pin = remote
        .and_then(|r| r.root_key)
        .map(|key| root_pin(&ctx, key))
        .transpose()?;
    let pin = pin.as_ref();
    match cli.command {
        Command::Trust(trust) => match trust.command {
            TrustCommand::Sign(args) => commands::sign::run(&ctx, args, pin).await,
            TrustCommand::Init(args) => commands::offline_root::init(&ctx, args).await,
            TrustCommand::RootUpdate(args) => commands::offline_root::update(&ctx, args, pin).await,
            TrustCommand::Inspect(args) => commands::inspect::run(&ctx, args, pin).await,
            TrustCommand::Revoke(args) => commands::revoke::run(&ctx, args, pin).await,
            TrustCommand::Resolve(args) => commands::resolve::run(&ctx, args, pin).await,
            TrustCommand::Pin(args) => commands::pin::run(&ctx, args).await,
            TrustCommand::Unpin(args) => commands::pin::unpin(&ctx, &args.gun),
            TrustCommand::Reset(args) => commands::pin::reset(&ctx, &args.gun),
            TrustCommand::Key(command) => commands::signer::key(&ctx, command).await,
            TrustCommand::Signer(command) => commands::signer::signer(&ctx, command, pin).await,
        },
        Command::Key(KeyCommand::List) => commands::key::list(&ctx),
        Command::Key(KeyCommand::Rotate(args)) => commands::rotate::run(&ctx, args, pin).await,
        Command::Key(KeyCommand::Backup(args)) => commands::backup::backup(&ctx, args),
        Command::Key(KeyCommand::Restore(args)) => commands::backup::restore(&ctx, args),
        Command::Key(KeyCommand::Export(args)) => commands::backup::export(&ctx, args),
        Command::Key(KeyCommand::Import(args)) => commands::backup::import(&ctx, args).await,
        Command::Key(KeyCommand::Passwd(args)) => commands::backup::passwd(&ctx, args).await,
        Command::Pull(args) => commands::pull::run(&ctx, args, pin).await,
        Command::Login(args) => commands::login::login(&ctx, args).await,
        Command::Logout(args) => commands::login::logout(&ctx, args),
        Command::Push(args) => commands::push::run(&ctx, args, pin).await,
        Command::Agent(args) => commands::agent::run(&ctx, args).await,
        Command::Root(command) => commands::offline_root::root(&ctx, command).await,
        Command::Completion(_) | Command::Man(_) => Ok(()),
    }
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
        let remote = cli.command.remote().expect("inspect talks to the server");
        assert_eq!(remote.server.server.as_deref(), Some("http://x:1"));
        let cli = Cli::try_parse_from(["notar", "--json", "key", "list", "-v"]).expect("parses");
        assert!(cli.json && cli.verbose == 1);
        assert!(cli.command.remote().is_none(), "key list is offline");
    }

    /// Every command that reads trust data takes --root-key; offline commands offer no
    /// server options at all.
    #[test]
    fn server_options_are_on_the_commands_that_use_them() {
        let key = "ab".repeat(32);
        for line in [
            vec!["trust", "resolve", "alpine:1"],
            vec!["trust", "inspect", "alpine"],
            vec!["trust", "sign", "alpine:1"],
            vec!["trust", "revoke", "alpine:1"],
            vec!["trust", "signer", "add", "a", "alpine", "--key", "a.pub"],
            vec!["trust", "signer", "remove", "a", "alpine"],
            vec!["trust", "root-update", "alpine", "--out", "x"],
            vec!["pull", "alpine:1"],
            vec!["push", "dir", "alpine:1"],
            vec!["key", "rotate", "alpine", "targets"],
        ] {
            let mut args = vec!["notar"];
            args.extend(&line);
            args.extend(["--root-key", &key, "--server", "http://x:1"]);
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let remote = cli.command.remote().expect("talks to the server");
            assert_eq!(remote.root_key, Some(key.as_str()), "{line:?}");
            assert_eq!(remote.server.server.as_deref(), Some("http://x:1"));
        }
        for line in [
            vec!["key", "list"],
            vec!["key", "backup", "x.tar"],
            vec!["trust", "unpin", "alpine"],
            vec!["trust", "reset", "alpine"],
            vec!["trust", "key", "generate", "alice"],
            vec!["root", "key", "--pub-out", "x"],
            vec!["agent"],
        ] {
            for flag in [["--server", "http://x:1"], ["--ca-cert", "ca.pem"]] {
                let mut args = vec!["notar"];
                args.extend(&line);
                args.extend(flag);
                let refused = Cli::try_parse_from(&args).expect_err("offline");
                assert_eq!(
                    refused.kind(),
                    clap::error::ErrorKind::UnknownArgument,
                    "{args:?}"
                );
            }
        }
        let refused = Cli::try_parse_from(["notar", "trust", "unpin", "a", "--root-key", &key])
            .expect_err("unpin reads no trust data");
        assert_eq!(refused.kind(), clap::error::ErrorKind::UnknownArgument);
        let refused = Cli::try_parse_from([
            "notar",
            "pull",
            "a:1",
            "--root-key",
            &key,
            "--disable-content-trust",
        ])
        .expect_err("no pin without trust");
        assert_eq!(refused.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}

#[cfg(test)]
mod discoverability {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn completions_and_the_manual_name_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "notar", &mut out);
            let script = String::from_utf8(out).expect("utf-8");
            for word in ["trust", "pull", "push", "passwd", "completion"] {
                assert!(script.contains(word), "{shell}: {word}");
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .expect("renders");
        let page = String::from_utf8(page).expect("utf-8");
        assert!(page.contains(".TH"), "roff");
        assert!(page.contains("notar") && page.contains("trust"), "{page}");
    }
}
