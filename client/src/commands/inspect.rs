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
//! What is shown, in Docker's shape:
//!
//! - A tag is shown with the digest a verifying pull resolves it to: the first role of
//!   Docker's walk order (`targets/releases` and its subtree, then `targets`, then the other
//!   delegations) that is trusted for the tag and lists it. The walk is notar-tuf's one
//!   delegation walk, so inspect, `trust resolve` and `pull` always agree.
//! - Its signers are the delegated roles (`targets/<name>`, shown as `<name>`) trusted for
//!   the tag that sign the same digest; with none (the tag is signed in `targets` or only
//!   in `targets/releases`), the signer is `"Repo Admin"`.
//!   Docker shows only tags found in `targets` or `targets/releases`; notar also shows a
//!   tag signed only by a path-restricted signer (`targets/<name>` alone), because a pull
//!   resolves it, and names that signer.
//! - `Signers` lists every delegated role except `targets/releases`, by name, descending.
//! - Tags are in natural order (`v2` before `v10`); a reference with a tag shows only it.
//!
//! A repository without trust data prints `[]` and an error on stderr (exit 1); an
//! unreachable trust server prints `[]` and says so (exit 2); a tag that is not signed in
//! a repository with trust data prints the repository with empty `SignedTags` (exit 0, as
//! Docker does).

use notar_tuf::client::Fetch;
use notar_tuf::client::Updater;
use notar_tuf::{KeyId, RoleName};
use serde::Serialize;

use clap::Args;

use crate::commands::args::TrustDataArgs;
use crate::error::render;
use crate::output::{json_pretty, natural_cmp, print, table};
use crate::reference::Reference;
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Human-readable sections instead of JSON
    #[arg(long)]
    pub pretty: bool,

    /// Repositories or tags: <gun>[:<tag>]
    #[arg(value_name = "GUN[:TAG]", required = true)]
    pub references: Vec<String>,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

pub use notar_tuf::view::REPO_ADMIN;
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
            // An unsigned tag of a repository with trust data shows no signed tags and is
            // no error, as in Docker.
            Ok((view, _)) => views.push(view),
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
    let roles = repo.load_all_targets().await?;
    let view = view(
        &repo.updater,
        &roles,
        input,
        reference.tag.as_ref().map(|t| t.as_str()),
    );
    Ok((view, reference))
}

/// Builds what Docker shows from the verified roles `updater` holds, after
/// `load_all_targets` (whose walk order `roles` is): [`notar_tuf::view`], cut to `only_tag`.
pub fn view<F: Fetch>(
    updater: &Updater<F>,
    roles: &[RoleName],
    name: &str,
    only_tag: Option<&str>,
) -> View {
    let shown = notar_tuf::view::trust_view(updater, roles);
    View {
        name: name.to_owned(),
        tags: shown
            .tags
            .into_iter()
            .filter(|t| only_tag.is_none_or(|only| only == t.tag))
            .map(|t| (t.tag, t.digest, t.signers))
            .collect(),
        signers: shown.signers,
        root_keys: shown.root_keys,
        repository_keys: shown.repository_keys,
    }
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
    use std::collections::BTreeMap;

    use notar_tuf::client::{FetchError, Limits};
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
            RoleName::releases(),
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
            ("targets/releases", releases.as_bytes()),
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
        let mut updater = Updater::new(root.as_bytes().to_vec(), files, now, Limits::default())
            .expect("root")
            .with_search_order(notar_tuf::client::SearchOrder::Docker);
        updater.refresh().await.expect("refresh");
        let roles = updater.load_all_targets().await.expect("delegations");

        let digest = |name: &str| hex::encode(sha2::Sha256::digest(name));
        let shown = view(&updater, &roles, "example/app", None);
        assert_eq!(
            shown.tags,
            vec![
                ("admin".to_owned(), digest("admin"), vec![]),
                ("rel-1".to_owned(), digest("rel-1"), vec![]),
            ]
        );
        assert!(shown.signers.is_empty(), "targets/releases is not a signer");
        let one = view(&updater, &roles, "example/app:outside", Some("outside"));
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
