//! Where passphrases come from: environment variables, else a no-echo prompt on the
//! terminal, else a clear error. Never a read from a stdin that is not a terminal, which
//! could block forever or swallow piped input.
//!
//! | key role                     | first                         | then                                          |
//! |------------------------------|-------------------------------|-----------------------------------------------|
//! | root                         | `NOTAR_ROOT_PASSPHRASE`       | `DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE`        |
//! | targets, snapshot, timestamp | `NOTAR_TARGETS_PASSPHRASE`    | `DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE`  |
//! | delegation                   | `NOTAR_DELEGATION_PASSPHRASE` | `DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE`  |
//!
//! A variable set to the empty string counts as unset. Prompting blocks: async callers run
//! it in `spawn_blocking` or before starting work. Retrying after a wrong passphrase is the
//! caller's choice.

use std::fmt;
use std::io::{self, IsTerminal};

use notar_tuf::KeyId;
use zeroize::Zeroizing;

use crate::{Error, KeyRole, Result};

/// Looks up an environment variable by name.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;
/// Shows a prompt and returns what was typed, without the line ending.
pub type PromptFn = dyn Fn(&str) -> io::Result<Zeroizing<String>> + Send + Sync;

/// The environment variables consulted for `role`'s passphrase, in order.
pub fn env_vars(role: KeyRole) -> [&'static str; 2] {
    match role {
        KeyRole::Root => [
            "NOTAR_ROOT_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
        ],
        KeyRole::Targets | KeyRole::Snapshot | KeyRole::Timestamp => [
            "NOTAR_TARGETS_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        ],
        KeyRole::Delegation => [
            "NOTAR_DELEGATION_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        ],
    }
}

/// The fewest characters a passphrase typed for a new key may have (Notary asks for 8 too).
pub const MIN_TYPED_LEN: usize = 8;
/// How many times a new key's passphrase is asked for before the command gives up; also
/// the tries a person gets at a wrong passphrase.
pub const CREATE_TRIES: usize = 3;

/// How to ask a person when no environment variable holds the passphrase.
pub enum Prompt {
    /// A no-echo prompt on the terminal, if stdin is a terminal at the time of asking.
    Terminal,
    /// Never ask: no variable means an error.
    Never,
    /// Ask this function (tests, other front ends).
    With(Box<PromptFn>),
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prompt::Terminal => "Terminal",
            Prompt::Never => "Never",
            Prompt::With(_) => "With(..)",
        })
    }
}

/// Finds the passphrase for a key.
pub struct PassphraseSource {
    env: Box<EnvLookup>,
    prompt: Prompt,
}

impl PassphraseSource {
    /// The process environment, then the terminal: what the `notar` CLI uses.
    pub fn from_env() -> Self {
        PassphraseSource::new(|name| std::env::var(name).ok(), Prompt::Terminal)
    }

    /// An explicit environment and prompt, so tests need not touch the process
    /// environment or the terminal.
    pub fn new(
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        prompt: Prompt,
    ) -> Self {
        PassphraseSource {
            env: Box::new(env),
            prompt,
        }
    }

    /// The passphrase to unlock an existing key.
    pub fn unlock(&self, role: KeyRole, key_id: &KeyId) -> Result<Zeroizing<String>> {
        if let Some(passphrase) = self.passphrase_from_env(role) {
            return Ok(passphrase);
        }
        self.ask(
            role,
            key_id,
            &format!("Enter passphrase for {role} key {}: ", key_id.short()),
        )
    }

    /// The passphrase for a new key: from the environment, or typed twice. At the prompt a
    /// passphrase must have [`MIN_TYPED_LEN`] characters, and a short one or a mismatch is
    /// asked again (the reason heads the next prompt), [`CREATE_TRIES`] times in all. The
    /// environment's passphrase is taken as it is: scripts keep working.
    pub fn create(&self, role: KeyRole, key_id: &KeyId) -> Result<Zeroizing<String>> {
        if let Some(passphrase) = self.passphrase_from_env(role) {
            return Ok(passphrase);
        }
        let short = key_id.short();
        let mut reason = String::new();
        let mut last = None;
        for _ in 0..CREATE_TRIES {
            let first = self.ask(
                role,
                key_id,
                &format!("{reason}Enter passphrase for new {role} key {short}: "),
            )?;
            if first.chars().count() < MIN_TYPED_LEN {
                reason = format!(
                    "A passphrase needs at least {MIN_TYPED_LEN} characters: a shorter one is guessed too soon by anyone who copies the key file. "
                );
                last = Some(Error::PassphraseTooShort {
                    role,
                    key_id: key_id.clone(),
                    min: MIN_TYPED_LEN,
                });
                continue;
            }
            let second = self.ask(
                role,
                key_id,
                &format!("Repeat passphrase for new {role} key {short}: "),
            )?;
            if first == second {
                return Ok(first);
            }
            reason = "The passphrases did not match. ".to_owned();
            last = Some(Error::PassphraseMismatch {
                role,
                key_id: key_id.clone(),
            });
        }
        Err(last.unwrap_or(Error::PassphraseMismatch {
            role,
            key_id: key_id.clone(),
        }))
    }

    /// Whether the environment holds `role`'s passphrase, so that nobody is asked (and a
    /// wrong one is not asked again).
    pub fn in_environment(&self, role: KeyRole) -> bool {
        self.passphrase_from_env(role).is_some()
    }

    fn passphrase_from_env(&self, role: KeyRole) -> Option<Zeroizing<String>> {
        env_vars(role)
            .into_iter()
            .filter_map(|name| (self.env)(name).map(Zeroizing::new))
            .find(|value| !value.is_empty())
    }

    fn ask(&self, role: KeyRole, key_id: &KeyId, prompt: &str) -> Result<Zeroizing<String>> {
        let prompt_error = |source| Error::Prompt {
            role,
            key_id: key_id.clone(),
            source,
        };
        let unavailable = || Error::PassphraseUnavailable {
            role,
            key_id: key_id.clone(),
            env_var: env_vars(role)[0],
        };
        let typed = match &self.prompt {
            Prompt::Terminal if io::stdin().is_terminal() => {
                rpassword::prompt_password(prompt).map(Zeroizing::new)
            }
            Prompt::Terminal | Prompt::Never => return Err(unavailable()),
            Prompt::With(ask) => ask(prompt),
        }
        .map_err(prompt_error)?;
        if typed.is_empty() {
            return Err(Error::EmptyPassphrase {
                role,
                key_id: key_id.clone(),
            });
        }
        Ok(typed)
    }
}

impl fmt::Debug for PassphraseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseSource")
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use super::*;

    fn key_id() -> KeyId {
        KeyId::new("1a2b3c4d5e6f".repeat(5) + "abcd").expect("valid")
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    /// A prompt that answers from a script and records the prompts it was shown.
    fn scripted(answers: &[&str]) -> (Prompt, Arc<Mutex<Vec<String>>>) {
        let answers: Mutex<VecDeque<String>> =
            Mutex::new(answers.iter().map(|a| (*a).to_owned()).collect());
        let shown = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&shown);
        let prompt = Prompt::With(Box::new(move |text: &str| {
            record.lock().unwrap().push(text.to_owned());
            answers
                .lock()
                .unwrap()
                .pop_front()
                .map(Zeroizing::new)
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no more answers"))
        }));
        (prompt, shown)
    }

    #[test]
    fn notar_variables_win_over_docker_ones() {
        let source = PassphraseSource::new(
            env(&[
                ("NOTAR_ROOT_PASSPHRASE", "notar root"),
                ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "docker root"),
                ("NOTAR_TARGETS_PASSPHRASE", "notar targets"),
                ("NOTAR_DELEGATION_PASSPHRASE", "notar delegation"),
                ("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "docker repo"),
            ]),
            Prompt::Never,
        );
        let get = |role| {
            source
                .unlock(role, &key_id())
                .expect("from env")
                .to_string()
        };
        assert_eq!(get(KeyRole::Root), "notar root");
        assert_eq!(get(KeyRole::Targets), "notar targets");
        assert_eq!(get(KeyRole::Snapshot), "notar targets");
        assert_eq!(get(KeyRole::Timestamp), "notar targets");
        assert_eq!(get(KeyRole::Delegation), "notar delegation");
        let created = source.create(KeyRole::Root, &key_id()).expect("from env");
        assert_eq!(created.as_str(), "notar root");
    }

    #[test]
    fn docker_variables_are_the_fallback_and_empty_counts_as_unset() {
        let source = PassphraseSource::new(
            env(&[
                ("NOTAR_ROOT_PASSPHRASE", ""),
                ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "docker root"),
                ("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "docker repo"),
            ]),
            Prompt::Never,
        );
        let get = |role| {
            source
                .unlock(role, &key_id())
                .expect("from env")
                .to_string()
        };
        assert_eq!(get(KeyRole::Root), "docker root");
        assert_eq!(get(KeyRole::Targets), "docker repo");
        assert_eq!(get(KeyRole::Snapshot), "docker repo");
        assert_eq!(get(KeyRole::Delegation), "docker repo");
    }

    #[test]
    fn without_variables_or_terminal_the_error_names_the_variable() {
        let source = PassphraseSource::new(
            env(&[("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "root only")]),
            Prompt::Never,
        );
        let err = source
            .unlock(KeyRole::Targets, &key_id())
            .expect_err("none");
        assert_eq!(
            err.to_string(),
            "no passphrase for targets key 1a2b3c4d5e6f: set NOTAR_TARGETS_PASSPHRASE (stdin is not a terminal, so notar cannot ask)"
        );
        let err = source
            .create(KeyRole::Delegation, &key_id())
            .expect_err("none");
        assert!(
            err.to_string().contains("set NOTAR_DELEGATION_PASSPHRASE"),
            "{err}"
        );
    }

    #[test]
    fn terminal_prompt_without_a_terminal_fails_instead_of_blocking() {
        // Under `cargo test` stdin may be a terminal; only check when it is not, which is
        // the case in CI, where a read would otherwise block or consume input.
        if io::stdin().is_terminal() {
            return;
        }
        let source = PassphraseSource::new(env(&[]), Prompt::Terminal);
        let err = source.unlock(KeyRole::Root, &key_id()).expect_err("no tty");
        assert!(matches!(
            err,
            Error::PassphraseUnavailable {
                env_var: "NOTAR_ROOT_PASSPHRASE",
                ..
            }
        ));
    }

    #[test]
    fn unlock_prompts_once_naming_role_and_key() {
        let (prompt, shown) = scripted(&["typed"]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let pass = source.unlock(KeyRole::Targets, &key_id()).expect("typed");
        assert_eq!(pass.as_str(), "typed");
        assert_eq!(
            *shown.lock().unwrap(),
            vec!["Enter passphrase for targets key 1a2b3c4d5e6f: "]
        );
    }

    #[test]
    fn create_asks_twice_and_refuses_mismatch_and_empty() {
        let (prompt, shown) = scripted(&["same secret", "same secret"]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let pass = source.create(KeyRole::Root, &key_id()).expect("matching");
        assert_eq!(pass.as_str(), "same secret");
        assert_eq!(
            *shown.lock().unwrap(),
            vec![
                "Enter passphrase for new root key 1a2b3c4d5e6f: ",
                "Repeat passphrase for new root key 1a2b3c4d5e6f: ",
            ]
        );

        // A mismatch is asked again, with the reason; three in a row give up.
        let (prompt, shown) = scripted(&["one secret", "another secret", "fixed it!", "fixed it!"]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let pass = source.create(KeyRole::Root, &key_id()).expect("second try");
        assert_eq!(pass.as_str(), "fixed it!");
        assert_eq!(
            shown.lock().unwrap()[2],
            "The passphrases did not match. Enter passphrase for new root key 1a2b3c4d5e6f: "
        );
        let (prompt, _) = scripted(&["one secret", "another secret"].repeat(CREATE_TRIES));
        let source = PassphraseSource::new(env(&[]), prompt);
        let err = source
            .create(KeyRole::Root, &key_id())
            .expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "the passphrases entered for new root key 1a2b3c4d5e6f do not match"
        );
        assert!(!format!("{err:?}").contains("secret"));

        // Too short at the prompt: the reason, and another try; not from the environment.
        let (prompt, shown) = scripted(&["short", "long enough", "long enough"]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let pass = source
            .create(KeyRole::Targets, &key_id())
            .expect("long one");
        assert_eq!(pass.as_str(), "long enough");
        assert!(
            shown.lock().unwrap()[1].starts_with("A passphrase needs at least 8 characters"),
            "{:?}",
            shown.lock().unwrap()
        );
        let (prompt, _) = scripted(&["short"; CREATE_TRIES]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let err = source
            .create(KeyRole::Targets, &key_id())
            .expect_err("short");
        assert!(
            matches!(err, Error::PassphraseTooShort { min: 8, .. }),
            "{err:?}"
        );
        let source =
            PassphraseSource::new(env(&[("NOTAR_TARGETS_PASSPHRASE", "ci")]), Prompt::Never);
        assert_eq!(
            source
                .create(KeyRole::Targets, &key_id())
                .expect("env")
                .as_str(),
            "ci"
        );
        assert!(source.in_environment(KeyRole::Targets));
        assert!(!source.in_environment(KeyRole::Root));

        let (prompt, shown) = scripted(&[""]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let err = source
            .create(KeyRole::Targets, &key_id())
            .expect_err("empty");
        assert_eq!(
            err.to_string(),
            "empty passphrase for targets key 1a2b3c4d5e6f"
        );
        assert_eq!(
            shown.lock().unwrap().len(),
            1,
            "no second ask after an empty one"
        );
    }

    #[test]
    fn prompt_failures_are_reported_with_their_cause() {
        let (prompt, _) = scripted(&[]);
        let source = PassphraseSource::new(env(&[]), prompt);
        let err = source.unlock(KeyRole::Root, &key_id()).expect_err("eof");
        assert!(matches!(err, Error::Prompt { .. }), "{err:?}");
        let cause = std::error::Error::source(&err).expect("has a cause");
        assert_eq!(cause.to_string(), "no more answers");
    }
}
