//! The built-in token issuer's accounts file and access policy.
//!
//! Accounts (`accounts.toml`, 0600) hold argon2id password hashes in PHC form and groups:
//!
//! ```toml
//! [users.alice]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! groups = ["team"]
//! ```
//!
//! The policy (`policy.toml`) grants actions on repository name patterns to users, to
//! `group:<name>`, to `authenticated` (any account) or to `anonymous` (no credentials):
//!
//! ```toml
//! [[grant]]
//! to = ["group:team"]
//! repositories = ["localhost:5000/team/*", "team/*"]
//! actions = ["pull", "push"]
//! ```
//!
//! In a pattern `*` matches within one path segment and `**` across segments. With no
//! policy file every account may do everything and anonymous requests nothing.

use std::collections::BTreeMap;
use std::path::Path;

use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// One account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// argon2id PHC string.
    pub password: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// The accounts file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    #[serde(default)]
    pub users: BTreeMap<String, Account>,
}

/// Why an accounts or policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> AccountsError {
    AccountsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a TOML file; a missing file is `None`.
fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, AccountsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| file_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(path, e)),
    }
}

/// A user name: 1 to 64 of letters, digits, `.`, `_`, `-` and `@`, as registries allow.
pub fn check_name(name: &str) -> Result<(), AccountsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        && !matches!(name, "anonymous" | "authenticated");
    if ok {
        Ok(())
    } else {
        Err(AccountsError::Invalid(format!(
            "{name:?} is not a user name: use 1 to 64 letters, digits, '.', '_', '-' or '@' \
             (and not \"anonymous\" or \"authenticated\")"
        )))
    }
}

/// The argon2id PHC hash of `password` with a fresh salt. Slow by design: blocking context.
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    let mut salt = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Invalid(format!("hashing the password: {e}")))
}

/// A hash no password matches in practice, checked for unknown users so that they take
/// as long to refuse as wrong passwords.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("notar decoy password").unwrap_or_default())
}

impl Accounts {
    /// Reads the accounts file; a missing file is no accounts.
    pub fn load(path: &Path) -> Result<Self, AccountsError> {
        let accounts: Accounts = read_toml(path)?.unwrap_or_default();
        for (name, account) in &accounts.users {
            check_name(name).map_err(|e| file_error(path, e))?;
            PasswordHash::new(&account.password)
                .map_err(|e| file_error(path, format!("user {name}: bad password hash: {e}")))?;
        }
        Ok(accounts)
    }

    /// Writes the file (0600) through a temporary file, so a reader never sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), AccountsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = toml::to_string(self).map_err(|e| file_error(path, e))?;
        let tmp = path.with_extension("toml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| file_error(&tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))
    }

    /// Checks `password` for `user`; the user's groups when it matches. Runs argon2id:
    /// blocking context. Unknown users cost the same time as wrong passwords.
    pub fn check(&self, user: &str, password: &Zeroizing<String>) -> Option<Vec<String>> {
        let account = self.users.get(user);
        let hash = account.map_or(decoy_hash(), |a| a.password.as_str());
        let parsed = PasswordHash::new(hash).ok()?;
        let matches = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match account {
            Some(account) if matches => Some(account.groups.clone()),
            _ => None,
        }
    }
}

/// One grant of the policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// User names, `group:<name>`, `authenticated` or `anonymous`.
    pub to: Vec<String>,
    /// Repository name patterns (GUNs for the trust server, repository paths for a
    /// registry).
    #[serde(default)]
    pub repositories: Vec<String>,
    /// `pull`, `push`, `delete` or `*`.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Also grant `registry:catalog:*` (the global changefeed).
    #[serde(default)]
    pub catalog: bool,
}

/// The access policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub grant: Vec<Grant>,
}

/// Who asks for a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    Anonymous,
    User { name: String, groups: Vec<String> },
}

impl Requester {
    fn is(&self, principal: &str) -> bool {
        match self {
            Requester::Anonymous => principal == "anonymous",
            Requester::User { name, groups } => {
                principal == "authenticated"
                    || principal == name
                    || principal
                        .strip_prefix("group:")
                        .is_some_and(|g| groups.iter().any(|have| have == g))
            }
        }
    }
}

impl Policy {
    /// Reads the policy file. A missing file is the default policy: every account may do
    /// everything, anonymous requests nothing.
    pub fn load(path: &Path) -> Result<Self, AccountsError> {
        let policy = read_toml(path)?.unwrap_or_else(Policy::accounts_are_admins);
        for grant in &policy.grant {
            if let Some(bad) = grant
                .actions
                .iter()
                .find(|a| !matches!(a.as_str(), "pull" | "push" | "delete" | "*"))
            {
                return Err(file_error(
                    path,
                    format!("unknown action {bad:?}: use pull, push, delete or *"),
                ));
            }
        }
        Ok(policy)
    }

    /// The policy without a file.
    pub fn accounts_are_admins() -> Self {
        Policy {
            grant: vec![Grant {
                to: vec!["authenticated".into()],
                repositories: vec!["**".into()],
                actions: vec!["*".into()],
                catalog: true,
            }],
        }
    }

    /// The actions of `wanted` on resource (`kind`, `name`) that the policy allows
    /// `who`. `*` is granted only where the policy grants `*`; a grant of `*` allows any
    /// action asked.
    pub fn allowed(
        &self,
        who: &Requester,
        kind: &str,
        name: &str,
        wanted: &[String],
    ) -> Vec<String> {
        let grants: Vec<&Grant> = self
            .grant
            .iter()
            .filter(|g| g.to.iter().any(|p| who.is(p)))
            .filter(|g| match kind {
                "repository" => g.repositories.iter().any(|p| glob(p, name)),
                "registry" => name == "catalog" && g.catalog,
                _ => false,
            })
            .collect();
        wanted
            .iter()
            .filter(|action| {
                grants.iter().any(|g| {
                    (kind == "registry" && g.catalog)
                        || g.actions.iter().any(|have| have == "*" || have == *action)
                })
            })
            .cloned()
            .collect()
    }
}

impl Policy {
    /// The repository patterns of every grant that lets `who` pull, each once.
    pub fn pull_patterns(&self, who: &Requester) -> Vec<String> {
        let mut patterns: Vec<String> = Vec::new();
        for grant in &self.grant {
            let applies = grant.to.iter().any(|p| who.is(p));
            let pulls = grant.actions.iter().any(|a| a == "pull" || a == "*");
            if applies && pulls {
                for pattern in &grant.repositories {
                    if !patterns.contains(pattern) {
                        patterns.push(pattern.clone());
                    }
                }
            }
        }
        patterns
    }
}

/// Whether `name` matches `pattern`: `**` matches anything, `*` anything but `/`.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p {
            [] => n.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=n.len()).any(|i| go(rest, &n[i..])),
            [b'*', rest @ ..] => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != b'/')
                .any(|i| go(rest, &n[i..])),
            [c, rest @ ..] => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    #[test]
    fn patterns_match_within_and_across_segments() {
        assert!(glob("localhost:5000/team/*", "localhost:5000/team/app"));
        assert!(!glob("localhost:5000/team/*", "localhost:5000/team/a/b"));
        assert!(glob("localhost:5000/team/**", "localhost:5000/team/a/b"));
        assert!(glob("**", "anything/at/all"));
        assert!(!glob("team/*", "localhost:5000/team/app"));
        assert!(glob("*/library/alpine", "docker.io/library/alpine"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn the_policy_grants_only_what_it_names() {
        let policy: Policy = toml::from_str(
            r#"
            [[grant]]
            to = ["group:team"]
            repositories = ["localhost:5000/team/*"]
            actions = ["pull", "push"]
            [[grant]]
            to = ["anonymous"]
            repositories = ["localhost:5000/public/*"]
            actions = ["pull"]
            [[grant]]
            to = ["root"]
            repositories = ["**"]
            actions = ["*"]
            "#,
        )
        .unwrap();
        let all = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let alice = Requester::User {
            name: "alice".into(),
            groups: vec!["team".into()],
        };
        let bob = Requester::User {
            name: "bob".into(),
            groups: vec![],
        };
        let root = Requester::User {
            name: "root".into(),
            groups: vec![],
        };
        let app = "localhost:5000/team/app";
        let want = all(&["pull", "push", "*"]);
        assert_eq!(
            policy.allowed(&alice, "repository", app, &want),
            all(&["pull", "push"])
        );
        assert!(policy.allowed(&bob, "repository", app, &want).is_empty());
        assert_eq!(policy.allowed(&root, "repository", app, &want), want);
        assert!(
            policy
                .allowed(&Requester::Anonymous, "repository", app, &want)
                .is_empty()
        );
        assert_eq!(
            policy.allowed(
                &Requester::Anonymous,
                "repository",
                "localhost:5000/public/x",
                &want
            ),
            all(&["pull"])
        );
        assert!(
            policy
                .allowed(&alice, "registry", "catalog", &all(&["*"]))
                .is_empty()
        );
        let default = Policy::accounts_are_admins();
        assert_eq!(
            default.allowed(&bob, "registry", "catalog", &all(&["*"])),
            all(&["*"])
        );
        assert!(
            default
                .allowed(&Requester::Anonymous, "repository", app, &want)
                .is_empty()
        );
    }

    #[test]
    fn passwords_check_against_their_hash_only() {
        let mut accounts = Accounts::default();
        accounts.users.insert(
            "alice".into(),
            Account {
                password: hash_password("s3cret").unwrap(),
                groups: vec!["team".into()],
            },
        );
        let pw = |s: &str| Zeroizing::new(s.to_owned());
        assert_eq!(
            accounts.check("alice", &pw("s3cret")),
            Some(vec!["team".to_owned()])
        );
        assert_eq!(accounts.check("alice", &pw("S3cret")), None);
        assert_eq!(accounts.check("mallory", &pw("s3cret")), None);
        assert!(check_name("anonymous").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("ci-bot@team").is_ok());
    }
}
