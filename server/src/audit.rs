//! The audit trail: one record per accepted write, in a hash chain.
//!
//! Every write transaction (an update, a re-signing by the server, a deletion, a new
//! managed key, a staged delegation) appends a record in the same transaction: the time,
//! the action, the actor (the token subject, `server` for re-signing), the GUN, what was
//! written (roles with versions and sha256, or key IDs) and the remote address. Record
//! `n` holds the hash of record `n - 1`, and its own hash covers all of its fields and that
//! link, so [`verify`] finds the first record that was edited, removed or reordered.
//!
//! Records are appended one at a time across every server sharing a database (an
//! advisory lock on PostgreSQL; SQLite has one writer), and the changefeed's rows are
//! inserted under the same lock, so change IDs become visible in the order they were
//! given out and a reader paging by `change_id` never skips one.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The actor of writes the server makes on its own (re-signing before expiry).
pub const SERVER_ACTOR: &str = "server";

/// Who made a write, and from where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The token subject; `None` without authentication.
    pub actor: Option<String>,
    /// The peer address of the request.
    pub remote: Option<String>,
}

impl Origin {
    /// The server itself.
    pub fn server() -> Self {
        Origin {
            actor: Some(SERVER_ACTOR.to_owned()),
            remote: None,
        }
    }

    pub fn is_server(&self) -> bool {
        self.remote.is_none() && self.actor.as_deref() == Some(SERVER_ACTOR)
    }
}

/// One record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    /// Unix seconds.
    pub created: i64,
    /// `update`, `resign`, `delete`, `key`, `stage`, or of co-signing proposals `propose`,
    /// `cosign` and `drop_proposal`.
    pub action: String,
    pub actor: Option<String>,
    pub gun: String,
    /// What was written, as JSON text (an array).
    pub details: String,
    pub remote: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record should have: of every field but `hash`, `prev_hash` (the link)
    /// included.
    pub fn expected_hash(&self) -> String {
        // A JSON array: every field delimited and escaped, whatever it holds.
        let fields: Value = json!([
            "notar-audit-1",
            self.id,
            self.created,
            self.action,
            self.actor,
            self.gun,
            self.details,
            self.remote,
            self.prev_hash
        ]);
        hex::encode(Sha256::digest(fields.to_string().as_bytes()))
    }
}

/// The first place the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit record {id}: {reason}")]
pub struct ChainBreak {
    pub id: i64,
    pub reason: String,
}

/// Walks records in ID order, starting after `(last_id, last_hash)` (`(0, GENESIS)` for
/// the start). Returns the new position, or where the chain breaks.
pub fn verify(
    records: &[AuditRecord],
    mut last: (i64, String),
) -> Result<(i64, String), ChainBreak> {
    for record in records {
        let broken = |reason: String| ChainBreak {
            id: record.id,
            reason,
        };
        if record.id != last.0 + 1 {
            return Err(broken(format!(
                "follows record {}: records {} to {} were removed, or the order changed",
                last.0,
                last.0 + 1,
                record.id - 1
            )));
        }
        if record.prev_hash != last.1 {
            return Err(broken(
                "does not link to the record before it: that one, or this one, was replaced".into(),
            ));
        }
        if record.expected_hash() != record.hash {
            return Err(broken(
                "its contents do not match its hash: it was edited".into(),
            ));
        }
        last = (record.id, record.hash.clone());
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|id| {
                let mut r = AuditRecord {
                    id,
                    created: 1_700_000_000 + id,
                    action: "update".into(),
                    actor: Some("alice".into()),
                    gun: "example.com/app".into(),
                    details: "[]".into(),
                    remote: Some("127.0.0.1:5".into()),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.expected_hash();
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn the_first_edited_removed_or_reordered_record_is_named() {
        let start = (0, GENESIS.to_owned());
        assert_eq!(verify(&chain(4), start.clone()).unwrap().0, 4);
        let mut edited = chain(4);
        edited[2].actor = Some("mallory".into());
        assert_eq!(verify(&edited, start.clone()).unwrap_err().id, 3);
        let mut removed = chain(4);
        removed.remove(1);
        assert_eq!(verify(&removed, start.clone()).unwrap_err().id, 3);
        let mut reordered = chain(4);
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered, start.clone()).unwrap_err().id, 3);
        // Renumbered to hide a removal: the link breaks.
        let mut renumbered = chain(4);
        renumbered.remove(1);
        for (i, r) in renumbered.iter_mut().enumerate() {
            r.id = i64::try_from(i).unwrap() + 1;
        }
        assert_eq!(verify(&renumbered, start).unwrap_err().id, 2);
    }
}
