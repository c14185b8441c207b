//! `notar trust inspect [--pretty] <gun>[:<tag>]...`: who signed what, in Docker's shape.
//!
//! JSON (the default) is Docker's `docker trust inspect` document, a 4-space indented array
//! with one element per reference:
//!
//! ```text
//! [{"Name": <reference as typed>,
//!   "SignedTags": [{"SignedTag": <tag>, "Digest": <sha256 hex>, "Signers": [<name>…]}],
//!   "Signers": [{"Name": <signer>, "Keys": [{"ID": <key ID>}]}],
//!   "AdministrativeKeys": [{"Name": "Root", "Keys": […]}, {"Name": "Repository", "Keys": […]}]}]
//! ```
//!
//! Docker's rules, kept as they are so that scripts written for Docker work:
//!
//! - A tag is shown when it is *released*: signed in `targets` or in `targets/releases`.
//! - Its signers are the other delegated roles (`targets/<name>`, shown as `<name>`) that
//!   sign the same tag with the same digest; with none, the signer is `"Repo Admin"`.
//!   A tag signed only in `targets/<name>` (not released) is not shown, as in Docker.
//! - `Signers` lists every delegated role except `targets/releases`, by name, descending.
//! - Tags are in natural order (`v2` before `v10`); a reference with a tag shows only it.
//!
//! Only verified metadata is shown: every targets role is loaded through the TUF workflow,
//! and a target counts only if every delegation on the way to its role allows its name.
//! A repository without trust data prints `[]` and an error on stderr (exit 1); a tag that
//! is not signed prints the repository with no `SignedTags` and an error (exit 1).

use std::collections::{BTreeMap, BTreeSet};

use notar_tuf::client::Fetch;
use notar_tuf::client::{Limits, Updater};
use notar_tuf::{DelegatedRole, KeyId, RoleName, RoleType};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::error::render;
use crate::output::{json_pretty, natural_cmp, print, table};
use crate::reference::Reference;
use crate::repo::{Repository, Warnings};
use crate::{Context, Error};

/// Docker's name for a tag signed through the targets role (or `targets/releases` alone).
pub const REPO_ADMIN: &str = "Repo Admin";
/// Docker's role for released tags besides `targets`.
const RELEASES: &str = "targets/releases";

/// What one reference shows, before it is printed either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The reference as typed.
    pub name: String,
    /// (tag, sha256 hex, signers sorted; empty means Repo Admin), in natural tag order.
    pub tags: Vec<(String, String, Vec<String>)>,
    /// (signer name, key IDs), descending by name.
    pub signers: Vec<(String, Vec<String>)>,
    pub root_keys: Vec<String>,
    pub repository_keys: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RepoJson<'a> {
    name: &'a str,
    signed_tags: Vec<TagJson<'a>>,
    signers: Vec<SignerJson<'a>>,
    administrative_keys: Vec<SignerJson<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagJson<'a> {
    signed_tag: &'a str,
    digest: &'a str,
    signers: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignerJson<'a> {
    name: &'a str,
    keys: Vec<KeyJson<'a>>,
}

#[derive(Debug, Serialize)]
struct KeyJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
}

pub async fn run(ctx: &Context, args: InspectArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    if args.pretty && ctx.json {
        return Err(Error::Usage(
            "--pretty and --json exclude each other".into(),
        ));
    }
    let mut views = Vec::new();
    let mut failed = 0;
    let mut exit_code = 0;
    let mut fail = |error: Error| {
        eprint!("{}", render(&error));
        failed += 1;
        exit_code = exit_code.max(error.exit_code());
    };
    for input in &args.references {
        match inspect_one(ctx, input, pin).await {
            Ok((view, reference)) => {
                if let (Some(tag), true) = (&reference.tag, view.tags.is_empty()) {
                    fail(Error::Unsigned {
                        gun: reference.gun.clone(),
                        tag: tag.to_string(),
                    });
                }
                views.push(view);
            }
            Err(e) => fail(e),
        }
    }
    let text = if args.pretty {
        views.iter().map(pretty).collect::<Vec<_>>().join("\n\n")
    } else {
        json_pretty(&views.iter().map(to_json).collect::<Vec<_>>())
    };
    print(&text)?;
    if failed > 0 {
        return Err(Error::Reported {
            count: failed,
            exit_code,
        });
    }
    Ok(())
}

async fn inspect_one(
    ctx: &Context,
    input: &str,
    pin: Option<&KeyId>,
) -> Result<(View, Reference), Error> {
    let reference = Reference::parse(input)?;
    let mut repo = Repository::open(ctx, &reference.gun, pin, Warnings::RootAndTargets).await?;
    repo.load_all_targets().await?;
    let view = view(
        &repo.updater,
        input,
        reference.tag.as_ref().map(|t| t.as_str()),
    );
    Ok((view, reference))
}

/// Builds what Docker shows from the verified roles `updater` holds.
pub fn view<F: Fetch>(updater: &Updater<F>, name: &str, only_tag: Option<&str>) -> View {
    let walk = walk(updater);
    let admitted: BTreeMap<&RoleName, &Option<(RoleName, DelegatedRole)>> =
        walk.iter().map(|(role, edge)| (role, edge)).collect();
    // A target counts only if each delegation from `targets` down to its role allows it.
    let trusted = |role: &RoleName, target: &str| {
        let mut current = role;
        let mut hops = 0;
        while let Some(Some((parent, entry))) = admitted.get(current) {
            if !entry.matches(target) || hops > walk.len() {
                return false;
            }
            current = parent;
            hops += 1;
        }
        true
    };
    let is_released = |role: &RoleName| role.as_str() == "targets" || role.as_str() == RELEASES;
    let signed = |role: &RoleName| -> Vec<(String, String)> {
        let Some(targets) = updater.targets(role) else {
            return Vec::new();
        };
        targets
            .targets
            .iter()
            .filter(|(target, _)| only_tag.is_none_or(|tag| tag == target.as_str()))
            .filter(|(target, _)| trusted(role, target.as_str()))
            .filter_map(|(target, file)| {
                Some((target.to_string(), hex::encode(file.sha256_digest()?)))
            })
            .collect()
    };

    let mut rows: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (role, _) in walk.iter().filter(|(r, _)| is_released(r)) {
        for key in signed(role) {
            rows.entry(key).or_default();
        }
    }
    for (role, _) in walk.iter().filter(|(r, _)| !is_released(r)) {
        for key in signed(role) {
            if let Some(signers) = rows.get_mut(&key) {
                signers.insert(signer_name(role));
            }
        }
    }
    let mut tags: Vec<(String, String, Vec<String>)> = rows
        .into_iter()
        .map(|((tag, digest), signers)| (tag, digest, signers.into_iter().collect()))
        .collect();
    tags.sort_by(|a, b| natural_cmp(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));

    let mut signers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (role, _) in &walk {
        let Some(delegations) = updater.targets(role).and_then(|t| t.delegations.as_ref()) else {
            continue;
        };
        for entry in &delegations.roles {
            if entry.name.as_str() == RELEASES {
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
    View {
        name: name.to_owned(),
        tags,
        signers: signers.into_iter().rev().collect(),
        root_keys: keys_of(RoleType::Root),
        repository_keys: keys_of(RoleType::Targets),
    }
}

/// Every loaded targets role with the delegation that admitted it (`None` for `targets`),
/// found by the same depth-first walk, in the same order, as `Updater::load_all_targets`.
fn walk<F: Fetch>(updater: &Updater<F>) -> Vec<(RoleName, Option<(RoleName, DelegatedRole)>)> {
    let mut out = Vec::new();
    let mut stack: Vec<(RoleName, Option<RoleName>)> = vec![(RoleName::targets(), None)];
    let mut seen = BTreeSet::new();
    while let Some((role, delegator)) = stack.pop() {
        if seen.len() >= Limits::default().max_delegations || !seen.insert(role.clone()) {
            continue;
        }
        let edge = match delegator {
            Some(parent) => {
                let entry = updater
                    .targets(&parent)
                    .and_then(|p| p.delegations.as_ref())
                    .and_then(|d| d.role(role.as_str()))
                    .cloned();
                match entry {
                    Some(entry) => Some((parent, entry)),
                    None => continue,
                }
            }
            None => None,
        };
        let Some(current) = updater.targets(&role) else {
            continue;
        };
        if let Some(delegations) = &current.delegations {
            stack.extend(
                delegations
                    .roles
                    .iter()
                    .rev()
                    .map(|c| (c.name.clone(), Some(role.clone()))),
            );
        }
        out.push((role, edge));
    }
    out
}

/// `targets/alice` is the signer `alice`.
fn signer_name(role: &RoleName) -> String {
    role.as_str()
        .strip_prefix("targets/")
        .unwrap_or(role.as_str())
        .to_owned()
}

fn keys(ids: &[String]) -> Vec<KeyJson<'_>> {
    ids.iter().map(|id| KeyJson { id }).collect()
}

fn to_json(view: &View) -> RepoJson<'_> {
    RepoJson {
        name: &view.name,
        signed_tags: view
            .tags
            .iter()
            .map(|(tag, digest, signers)| TagJson {
                signed_tag: tag,
                digest,
                signers: if signers.is_empty() {
                    vec![REPO_ADMIN]
                } else {
                    signers.iter().map(String::as_str).collect()
                },
            })
            .collect(),
        signers: view
            .signers
            .iter()
            .map(|(name, ids)| SignerJson {
                name,
                keys: keys(ids),
            })
            .collect(),
        administrative_keys: vec![
            SignerJson {
                name: "Root",
                keys: keys(&view.root_keys),
            },
            SignerJson {
                name: "Repository",
                keys: keys(&view.repository_keys),
            },
        ],
    }
}

/// Docker's `--pretty` sections.
fn pretty(view: &View) -> String {
    let name = &view.name;
    let mut out = String::new();
    if view.tags.is_empty() {
        out.push_str(&format!("\nNo signatures for {name}\n\n"));
    } else {
        out.push_str(&format!("\nSignatures for {name}\n\n"));
        let mut rows = vec![vec![
            "SIGNED TAG".to_owned(),
            "DIGEST".to_owned(),
            "SIGNERS".to_owned(),
        ]];
        for (tag, digest, signers) in &view.tags {
            let signers = if signers.is_empty() {
                format!("({REPO_ADMIN})")
            } else {
                signers.join(", ")
            };
            rows.push(vec![tag.clone(), digest.clone(), signers]);
        }
        out.push_str(&table(&rows));
    }
    if !view.signers.is_empty() {
        out.push_str(&format!("\nList of signers and their keys for {name}\n\n"));
        let mut signers: Vec<&(String, Vec<String>)> = view.signers.iter().collect();
        signers.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        let mut rows = vec![vec!["SIGNER".to_owned(), "KEYS".to_owned()]];
        for (signer, ids) in signers {
            rows.push(vec![signer.clone(), short_ids(ids)]);
        }
        out.push_str(&table(&rows));
    }
    out.push_str(&format!("\nAdministrative keys for {name}\n\n"));
    out.push_str(&format!(
        "  Repository Key:\t{}\n",
        sorted(&view.repository_keys).join(", ")
    ));
    out.push_str(&format!(
        "  Root Key:\t{}\n",
        sorted(&view.root_keys).join(", ")
    ));
    out
}

/// Key IDs cut to 12 characters, sorted, as Docker lists signer keys.
fn short_ids(ids: &[String]) -> String {
    let mut short: Vec<&str> = ids.iter().map(|id| id.get(..12).unwrap_or(id)).collect();
    short.sort_unstable();
    short.join(", ")
}

fn sorted(ids: &[String]) -> Vec<&str> {
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    use notar_tuf::client::FetchError;
    use notar_tuf::{
        Delegations, Expiry, MetaFile, Root, Signed, Snapshot, TargetFile, TargetName, Targets,
        Timestamp, Version,
    };
    use sha2::Digest as _;

    /// A repository in memory.
    struct Files(BTreeMap<String, Vec<u8>>);

    impl Fetch for Files {
        fn fetch(
            &self,
            name: &str,
            _max_len: u64,
        ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
            let found = self.0.get(name).cloned();
            async move { Ok(found) }
        }
    }

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn target(content: &str) -> TargetFile {
        TargetFile::sha256(content.len() as u64, sha2::Sha256::digest(content).into())
    }

    fn with_targets(names: &[&str]) -> Targets {
        let expires = Expiry::after(time::OffsetDateTime::now_utc(), time::Duration::days(30));
        let mut role = Targets::new(Version::ONE, expires);
        for name in names {
            role.targets
                .insert(TargetName::new(*name).expect("name"), target(name));
        }
        role
    }

    /// A server other than Notar's may serve a delegated role that signs names outside its
    /// paths; those names must not show up as signed.
    #[tokio::test]
    async fn only_targets_inside_the_delegated_paths_are_shown() {
        use notar_tuf::{RoleType, Signer};
        let now = time::OffsetDateTime::now_utc();
        let expires = Expiry::after(now, time::Duration::days(30));
        let (root_key, targets_key, snapshot_key, timestamp_key, releases_key) =
            (key(1), key(2), key(3), key(4), key(5));
        let mut root = Root::new(Version::ONE, expires);
        root.add_key(RoleType::Root, root_key.public_key());
        root.add_key(RoleType::Targets, targets_key.public_key());
        root.add_key(RoleType::Snapshot, snapshot_key.public_key());
        root.add_key(RoleType::Timestamp, timestamp_key.public_key());
        let root = Signed::sign(root, &[&root_key]).expect("root");

        let mut targets = with_targets(&["admin"]);
        let mut delegations = Delegations::new();
        delegations.add_role(
            RoleName::new(RELEASES).expect("name"),
            &[releases_key.public_key()],
            std::num::NonZeroU32::MIN,
            vec!["rel-*".into()],
        );
        targets.delegations = Some(delegations);
        let targets = Signed::sign(targets, &[&targets_key]).expect("targets");
        let releases =
            Signed::sign(with_targets(&["rel-1", "outside"]), &[&releases_key]).expect("releases");
        let mut snapshot = Snapshot::new(Version::ONE, expires);
        for (name, bytes) in [
            ("targets", targets.as_bytes()),
            (RELEASES, releases.as_bytes()),
        ] {
            snapshot.meta.insert(
                format!("{name}.json"),
                MetaFile::new(Version::ONE, Some(bytes)),
            );
        }
        let snapshot = Signed::sign(snapshot, &[&snapshot_key]).expect("snapshot");
        let timestamp = Timestamp::new(
            Version::ONE,
            expires,
            MetaFile::new(Version::ONE, Some(snapshot.as_bytes())),
        );
        let timestamp = Signed::sign(timestamp, &[&timestamp_key]).expect("timestamp");
        let files = Files(BTreeMap::from([
            ("timestamp.json".to_owned(), timestamp.as_bytes().to_vec()),
            ("1.snapshot.json".to_owned(), snapshot.as_bytes().to_vec()),
            ("1.targets.json".to_owned(), targets.as_bytes().to_vec()),
            (
                "1.targets%2Freleases.json".to_owned(),
                releases.as_bytes().to_vec(),
            ),
        ]));
        let mut updater =
            Updater::new(root.as_bytes().to_vec(), files, now, Limits::default()).expect("root");
        updater.refresh().await.expect("refresh");
        updater.load_all_targets().await.expect("delegations");

        let digest = |name: &str| hex::encode(sha2::Sha256::digest(name));
        let shown = view(&updater, "example/app", None);
        assert_eq!(
            shown.tags,
            vec![
                ("admin".to_owned(), digest("admin"), vec![]),
                ("rel-1".to_owned(), digest("rel-1"), vec![]),
            ]
        );
        assert!(shown.signers.is_empty(), "targets/releases is not a signer");
        let one = view(&updater, "example/app:outside", Some("outside"));
        assert!(one.tags.is_empty());
    }

    fn sample() -> View {
        View {
            name: "localhost:5000/app".into(),
            tags: vec![
                ("v2".into(), "aa".repeat(32), vec![]),
                (
                    "v10".into(),
                    "bb".repeat(32),
                    vec!["alice".into(), "bob".into()],
                ),
            ],
            signers: vec![
                ("bob".into(), vec!["12".repeat(32)]),
                ("alice".into(), vec!["34".repeat(32)]),
            ],
            root_keys: vec!["56".repeat(32)],
            repository_keys: vec!["78".repeat(32)],
        }
    }

    #[test]
    fn json_has_dockers_shape() {
        let text = json_pretty(&vec![to_json(&sample())]);
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let expected = serde_json::json!([{
            "Name": "localhost:5000/app",
            "SignedTags": [
                {"SignedTag": "v2", "Digest": "aa".repeat(32), "Signers": ["Repo Admin"]},
                {"SignedTag": "v10", "Digest": "bb".repeat(32), "Signers": ["alice", "bob"]},
            ],
            "Signers": [
                {"Name": "bob", "Keys": [{"ID": "12".repeat(32)}]},
                {"Name": "alice", "Keys": [{"ID": "34".repeat(32)}]},
            ],
            "AdministrativeKeys": [
                {"Name": "Root", "Keys": [{"ID": "56".repeat(32)}]},
                {"Name": "Repository", "Keys": [{"ID": "78".repeat(32)}]},
            ],
        }]);
        assert_eq!(value, expected);
        assert!(text.starts_with(
            "[\n    {\n        \"Name\": \"localhost:5000/app\",\n        \"SignedTags\": ["
        ));
    }

    #[test]
    fn pretty_has_dockers_three_sections() {
        let text = pretty(&sample());
        let digest_a = "aa".repeat(32);
        let digest_b = "bb".repeat(32);
        let expected = format!(
            "\nSignatures for localhost:5000/app\n\n\
             SIGNED TAG   DIGEST{pad}SIGNERS\n\
             v2           {digest_a}   (Repo Admin)\n\
             v10          {digest_b}   alice, bob\n\
             \nList of signers and their keys for localhost:5000/app\n\n\
             SIGNER    KEYS\n\
             alice     {alice}\n\
             bob       {bob}\n\
             \nAdministrative keys for localhost:5000/app\n\n  \
             Repository Key:\t{repo}\n  \
             Root Key:\t{root}\n",
            pad = " ".repeat(64 + 3 - 6),
            alice = "34".repeat(6),
            bob = "12".repeat(6),
            repo = "78".repeat(32),
            root = "56".repeat(32),
        );
        assert_eq!(text, expected);
        let empty = View {
            tags: vec![],
            signers: vec![],
            ..sample()
        };
        assert!(
            pretty(&empty)
                .starts_with("\nNo signatures for localhost:5000/app\n\n\nAdministrative keys")
        );
    }
}
