//! Arguments and prompts several commands share.

use clap::Args;
use notar_tuf::{Gun, KeyId};

use crate::Error;
use crate::reference::Reference;
use crate::trust::publish::Lifetimes;

/// `--targets-lifetime`.
#[derive(Clone, Copy, Debug, Args)]
pub struct TargetsLifetime {
    /// Lifetime of the new targets metadata, in days
    #[arg(long = "targets-lifetime", value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
}

impl TargetsLifetime {
    pub fn duration(self) -> time::Duration {
        days(self.days)
    }
}

/// `--targets-lifetime` and `--root-lifetime`.
#[derive(Clone, Copy, Debug, Args)]
pub struct LifetimeArgs {
    #[command(flatten)]
    pub targets: TargetsLifetime,

    /// Lifetime of root metadata, when this command signs a root (a new repository, a
    /// rotation), in days
    #[arg(long = "root-lifetime", value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub root_days: u32,
}

impl LifetimeArgs {
    pub fn lifetimes(self) -> Lifetimes {
        Lifetimes {
            targets: self.targets.duration(),
            root: days(self.root_days),
        }
    }
}

/// A repository as given on the command line, refused with a tag.
pub fn gun_only(text: &str) -> Result<Gun, Error> {
    let reference = Reference::parse(text)?;
    if reference.tag.is_some() {
        return Err(Error::Usage(format!(
            "{text}: expected a repository without a tag"
        )));
    }
    Ok(reference.gun)
}

/// A key ID as given on the command line.
pub fn parse_key_id(text: &str) -> Result<KeyId, Error> {
    KeyId::new(text.trim().to_ascii_lowercase())
        .map_err(|e| Error::Usage(format!("invalid key ID {text:?}: {e}")))
}

/// A lifetime in days from the command line.
pub fn days(n: u32) -> time::Duration {
    time::Duration::days(i64::from(n))
}

/// Asks `question` on the terminal before a change that cannot be undone; `action` names
/// the change in errors. Without a terminal it refuses at once (never waits on stdin).
pub async fn confirm(question: String, action: &str) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{action} needs a confirmation, and stdin is not a terminal: pass -y to confirm"
        )));
    }
    let answer = tokio::task::spawn_blocking(move || {
        eprint!("{question}");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(Error::Task)?
    .map_err(|e| Error::Io {
        action: "reading the confirmation from",
        path: "stdin".into(),
        source: e,
    })?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "aborted: {action} was not confirmed; nothing was changed"
        )))
    }
}
