//! Arguments and prompts several commands share.

use std::path::PathBuf;

use clap::Args;
use notar_tuf::{Gun, KeyId};

use crate::Error;
use crate::reference::Reference;
use crate::trust::publish::Lifetimes;

/// Where the trust server is, for the commands that talk to it (offline commands do not
/// offer these).
#[derive(Clone, Debug, Default, Args)]
pub struct ServerArgs {
    /// Trust server URL [env: NOTAR_SERVER, then DOCKER_CONTENT_TRUST_SERVER] [default: http://127.0.0.1:4443]
    #[arg(long, help_heading = "Server options", value_name = "URL")]
    pub server: Option<String>,

    /// Extra CA certificate (PEM) for the trust server's TLS, besides the system roots and
    /// ~/.docker/tls/<host:port>/ca.crt [env: NOTAR_CA_CERT]
    #[arg(long, help_heading = "Server options", value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

/// The server options and `--root-key`, for the commands that read a repository's trust
/// data.
#[derive(Clone, Debug, Default, Args)]
pub struct TrustDataArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Refuse any root of the repository that this root key did not sign (overrides a pin
    /// saved with `notar trust pin`); a prefix of 8 or more digits names a root key this
    /// trust directory holds or a root it has trusted lists
    #[arg(long, value_name = "KEYID", help_heading = "Trust options")]
    pub root_key: Option<String>,
}

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

/// The shortest key ID prefix accepted for a key of the trust directory.
pub const MIN_KEY_ID_PREFIX: usize = 8;

/// A key ID from the command line naming a key of the trust directory: all 64 hex digits,
/// or a prefix of at least [`MIN_KEY_ID_PREFIX`] digits (prompts and `key list` show 12)
/// that exactly one of `held` starts with. An ambiguous prefix is refused with the
/// candidates listed.
pub fn held_key_id(text: &str, held: &[KeyId]) -> Result<KeyId, Error> {
    key_id_among(text, held, |wanted| {
        format!(
            "no key of this trust directory has an ID starting with {wanted} (notar key list shows them)"
        )
    })
}

/// [`held_key_id`] over any list of known IDs; `unknown` words the error of a prefix that
/// none of them starts with.
pub fn key_id_among(
    text: &str,
    known: &[KeyId],
    unknown: impl FnOnce(&str) -> String,
) -> Result<KeyId, Error> {
    let wanted = text.trim().to_ascii_lowercase();
    if wanted.len() == 64 {
        return parse_key_id(&wanted);
    }
    if wanted.len() < MIN_KEY_ID_PREFIX
        || wanted.len() > 64
        || !wanted.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Error::Usage(format!(
            "invalid key ID {text:?}: give the 64 hex digits, or the first {MIN_KEY_ID_PREFIX} or more"
        )));
    }
    let mut matching: Vec<&KeyId> = known
        .iter()
        .filter(|id| id.as_str().starts_with(&wanted))
        .collect();
    matching.sort();
    matching.dedup();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Usage(unknown(&wanted))),
        many => Err(Error::Usage(format!(
            "{wanted} is the start of {} key IDs: {}; give more digits",
            many.len(),
            many.iter()
                .map(|id| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The bytes of a file given on the command line, refused (before it is parsed) when it is
/// larger than `limit`.
pub fn read_limited(path: &std::path::Path, limit: usize) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    if bytes.len() > limit {
        return Err(Error::Usage(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: &str) -> KeyId {
        KeyId::new(format!("{prefix}{}", "0".repeat(64 - prefix.len()))).expect("key ID")
    }

    #[test]
    fn a_unique_prefix_of_eight_digits_names_a_key_and_an_ambiguous_one_lists_them() {
        let held = [id("abcdef12aa"), id("abcdef12bb"), id("12345678")];
        assert_eq!(held_key_id("12345678", &held).expect("unique"), held[2]);
        assert_eq!(held_key_id("ABCDEF12AA", &held).expect("case"), held[0]);
        assert_eq!(
            held_key_id(held[1].as_str(), &held).expect("whole"),
            held[1]
        );
        let ambiguous = held_key_id("abcdef12", &held).expect_err("ambiguous");
        let text = ambiguous.to_string();
        assert!(
            text.contains(held[0].as_str()) && text.contains(held[1].as_str()),
            "{text}"
        );
        let short = held_key_id("1234567", &held).expect_err("too short");
        assert!(short.to_string().contains("first 8 or more"), "{short}");
        let none = held_key_id("ffffffff", &held).expect_err("none");
        assert!(
            none.to_string().contains("no key of this trust directory"),
            "{none}"
        );
        assert!(held_key_id("zzzzzzzz", &held).is_err());
    }
}
