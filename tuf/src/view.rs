//! What a person is shown of a repository, in Docker's terms: the signed tags with the
//! role that vouches for each and its signers, the signers with their keys, and the
//! administrative keys. `notar trust inspect` prints it and the server's web view renders
//! it, from the same verified walk, so the two always agree.
//!
//! - A tag is shown with the digest a verifying pull resolves it to: the first role of
//!   the updater's walk order that is trusted for the tag and lists it (with
//!   [`SearchOrder::Docker`](crate::client::SearchOrder::Docker), `targets/releases` and
//!   its subtree, then `targets`, then the other delegations).
//! - Its signers are the delegated roles (`targets/<name>`, shown as `<name>`) trusted for
//!   the tag that sign the same digest, but `targets/releases`; with none, the tag is the
//!   repository owner's ([`REPO_ADMIN`]).
//! - Signers are every delegated role but `targets/releases`, descending by name.
//! - Tags are in natural order (`v2` before `v10`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::client::{Fetch, Updater};
use crate::{RoleName, RoleType};

/// Docker's name for a tag signed through the targets role (or `targets/releases` alone).
pub const REPO_ADMIN: &str = "Repo Admin";

/// One signed tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTag {
    pub tag: String,
    /// Lower-case hex sha256 of the manifest.
    pub digest: String,
    /// The manifest's length in bytes.
    pub length: u64,
    /// The role that vouches for the tag: the one a verifying pull takes it from.
    pub role: RoleName,
    /// Signer names, sorted; empty means [`REPO_ADMIN`].
    pub signers: Vec<String>,
}

/// A repository as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustView {
    pub tags: Vec<SignedTag>,
    /// (signer name, key IDs), descending by name.
    pub signers: Vec<(String, Vec<String>)>,
    pub root_keys: Vec<String>,
    pub repository_keys: Vec<String>,
}

/// Builds the view from the verified roles `updater` holds, after
/// [`Updater::load_all_targets`] (whose walk order `roles` is).
pub fn trust_view<F: Fetch>(updater: &Updater<F>, roles: &[RoleName]) -> TrustView {
    let is_admin = |role: &RoleName| *role == RoleName::targets() || *role == RoleName::releases();
    // One search per tag: the first voucher is what a pull resolves (as
    // `trusted_targets` would give), the rest are the other signers.
    let mut tags: Vec<SignedTag> = updater
        .listed_target_names()
        .into_iter()
        .filter_map(|tag| {
            let mut vouchers = updater.vouchers(tag.as_str()).into_iter();
            let found = vouchers.next()?;
            let digest = found.target.sha256_digest()?;
            let signers: BTreeSet<String> = std::iter::once(&found)
                .chain(vouchers.as_slice())
                .filter(|v| !is_admin(&v.role) && v.target.sha256_digest() == Some(digest))
                .map(|v| signer_name(&v.role))
                .collect();
            Some(SignedTag {
                tag: tag.to_string(),
                digest: hex::encode(digest),
                length: found.target.length,
                role: found.role,
                signers: signers.into_iter().collect(),
            })
        })
        .collect();
    tags.sort_by(|a, b| natural_cmp(&a.tag, &b.tag).then_with(|| a.digest.cmp(&b.digest)));

    let mut signers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for role in roles {
        let Some(delegations) = updater.targets(role).and_then(|t| t.delegations.as_ref()) else {
            continue;
        };
        for entry in &delegations.roles {
            if entry.name == RoleName::releases() {
                continue;
            }
            signers
                .entry(signer_name(&entry.name))
                .or_insert_with(|| entry.keyids.iter().map(|k| k.to_string()).collect());
        }
    }
    let root = updater.root();
    let keys_of = |role: RoleType| -> Vec<String> {
        root.role_keys(role)
            .map(|r| r.keyids.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    };
    TrustView {
        tags,
        signers: signers.into_iter().rev().collect(),
        root_keys: keys_of(RoleType::Root),
        repository_keys: keys_of(RoleType::Targets),
    }
}

/// `targets/alice` is the signer `alice`.
pub fn signer_name(role: &RoleName) -> String {
    role.as_str()
        .strip_prefix("targets/")
        .unwrap_or(role.as_str())
        .to_owned()
}

/// Natural order, as Docker sorts tags (`sortorder.NaturalLess`): runs of digits compare
/// by value, so `v2` < `v10`; digits sort before other characters.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (start_a, start_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (na, nb) = (&a[start_a..i], &b[start_b..j]);
        let by_value = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
        if by_value != Ordering::Equal {
            return by_value;
        }
        // Equal values: fewer leading zeros first.
        if start_a != start_b {
            return start_a.cmp(&start_b);
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut tags = vec!["v10", "v2", "latest", "v1.10", "v1.9", "1", "v02", "a"];
        tags.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            tags,
            ["1", "a", "latest", "v1.9", "v1.10", "v2", "v02", "v10"]
        );
        assert_eq!(natural_cmp("abc", "abc"), Ordering::Equal);
        assert_eq!(natural_cmp("ab", "abc"), Ordering::Less);
    }
}
