//! The role a private key is kept for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a private key signs. Recorded in the key file header, so that keys can be listed,
/// found and prompted for without a passphrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// Signs the root metadata: the repository's key set. One per trust directory, shared
    /// by its repositories.
    Root,
    /// Signs a repository's tags.
    Targets,
    /// Pins the versions of the targets roles (usually held by the server).
    Snapshot,
    /// Pins the snapshot (always held by the server).
    Timestamp,
    /// A signer's key in a delegated targets role (`targets/releases`, `targets/<signer>`).
    Delegation,
}

impl KeyRole {
    /// Every role, in the order above.
    pub const ALL: [KeyRole; 5] = [
        KeyRole::Root,
        KeyRole::Targets,
        KeyRole::Snapshot,
        KeyRole::Timestamp,
        KeyRole::Delegation,
    ];

    /// The string form used in key file headers and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Root => "root",
            KeyRole::Targets => "targets",
            KeyRole::Snapshot => "snapshot",
            KeyRole::Timestamp => "timestamp",
            KeyRole::Delegation => "delegation",
        }
    }
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyRole {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        KeyRole::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| Error::UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn string_forms_round_trip_through_display_from_str_and_serde() {
        for role in KeyRole::ALL {
            let text = role.to_string();
            assert_eq!(
                text.parse::<KeyRole>().expect("own string form parses"),
                role
            );
            let json = serde_json::to_string(&role).expect("serialises");
            assert_eq!(json, format!("\"{text}\""));
        }
        assert_eq!(
            KeyRole::ALL.map(KeyRole::as_str),
            ["root", "targets", "snapshot", "timestamp", "delegation"]
        );
    }

    #[test]
    fn unknown_roles_are_rejected_by_name() {
        let err = "Targets".parse::<KeyRole>().expect_err("case matters");
        assert_eq!(
            err.to_string(),
            "unknown key role \"Targets\": expected root, targets, snapshot, timestamp or delegation"
        );
        assert!(serde_json::from_str::<KeyRole>("\"admin\"").is_err());
    }
}
