//! One repository's trust data, brought up to date through the TUF client workflow.
//!
//! [`Repository::open`] starts from the root kept in `<trust-dir>/tuf/<gun>/root.json`. On
//! first contact there is none: the client fetches `1.root.json`, checks that it is signed
//! by its own root keys, and trusts it (trust on first use), saying so on stderr, unless a
//! root key is pinned (`--root-key`, or `notar trust pin`), in which case a root not signed
//! by that key is refused before anything is saved. Then [`Updater::refresh`] walks the
//! root chain, timestamp, snapshot and targets, and whatever it trusts afterwards, success
//! or not, is written back to the trust directory as the anchor of the next update.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use notar_tuf::client::{
    FoundTarget, Limits, SearchOrder, UnlistedDelegation, UpdateError, Updater,
};
use notar_tuf::metadata::Authority;
use notar_tuf::{Gun, KeyId, RoleName, RoleType, Root, Signed, Targets, Verified};

use crate::trust::cache::MetadataCache;
use crate::trust::server::HttpFetch;
use crate::{Context, Error};

/// Expiry closer than this draws a warning.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(30);

/// Which expiry warnings a command wants: `sign` renews targets, so it warns about root only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warnings {
    RootAndTargets,
    RootOnly,
}

/// A repository whose metadata verified.
#[derive(Debug)]
pub struct Repository {
    pub gun: Gun,
    pub updater: Updater<HttpFetch>,
    cache: MetadataCache,
    /// The root key every root must be signed by, if one is pinned.
    pin: Option<KeyId>,
}

impl Repository {
    /// Brings the trust data of `gun` up to date. [`Error::NoTrustData`] when the server has
    /// none and the trust directory has none either.
    pub async fn open(
        ctx: &Context,
        gun: &Gun,
        pin: Option<&KeyId>,
        warnings: Warnings,
    ) -> Result<Self, Error> {
        let cache = MetadataCache::load(&ctx.trust_dir, gun)?;
        let pin = match pin {
            Some(key) => Some(key.clone()),
            None => cache.pinned_root_key()?,
        };
        let fetch = ctx.server.fetcher(gun);
        let cached_root = cache.get("root.json").map(<[u8]>::to_vec);
        let first_contact = cached_root.is_none();
        // A pinned key must have signed a root from which the chain of rotations reaches the
        // root this directory ends up trusting. Once that was shown, the kept root is the
        // anchor and updates follow the chain on. The kept root stays the anchor during the
        // check too, so a pin check can never take the client back to an older root.
        let needs_pin_check = pin.as_ref().is_some_and(|p| !cache.pin_verified(p));
        let pinned_chain = match &pin {
            Some(pin) if needs_pin_check => Some(pinned_chain(ctx, gun, &fetch, pin).await?),
            _ => None,
        };
        let root = match (cached_root, &pinned_chain) {
            (Some(bytes), _) => bytes,
            (None, Some(chain)) => {
                chain
                    .first()
                    .map(|r| r.as_bytes().to_vec())
                    .ok_or_else(|| Error::NoTrustData {
                        gun: gun.clone(),
                        server: ctx.server.url().to_owned(),
                    })?
            }
            (None, None) => fetch_first_root(ctx, gun, &fetch).await?,
        };
        let updater = Updater::new(root, fetch, ctx.now, Limits::default())
            .map(docker_client)
            .map(|u| u.with_repository(gun.as_str()))
            .map_err(|source| {
                if first_contact || needs_pin_check {
                    Error::untrusted(gun, source)
                } else {
                    Error::BadTrustedRoot {
                        gun: gun.clone(),
                        path: cache.dir().join("root.json"),
                        source: Box::new(source),
                    }
                }
            })?;
        let mut repo = Repository {
            gun: gun.clone(),
            updater,
            cache,
            pin,
        };
        repo.load_cached();
        let cached_root = repo.cache.get("root.json").map(<[u8]>::to_vec);
        if let Err(e) = repo.refresh().await {
            return Err(repo.explain_root_change(cached_root, e).await);
        }
        if let (Some(pin), Some(chain)) = (repo.pin.clone(), &pinned_chain) {
            // The root now trusted must be one of the chain that starts at a root the pinned
            // key signed, byte for byte.
            let trusted = repo.updater.root();
            let in_chain = chain.iter().any(|r| {
                r.untrusted().version == trusted.version && r.as_bytes() == trusted.as_bytes()
            });
            if !in_chain {
                return Err(Error::PinMismatch {
                    gun: gun.clone(),
                    key: pin,
                    checked: chain.last().map_or(0, |r| r.untrusted().version.get()),
                });
            }
            repo.cache.save_pin_verified(&pin)?;
        }
        if first_contact && repo.pin.is_none() {
            eprintln!(
                "notar: first contact with {gun}: trusting the root the server sent (trust on first use; root version {}, root key {}). \
                 To refuse any other root, pin it: notar trust pin {gun} <root key ID>",
                repo.updater.root().version,
                root_keys(repo.updater.root())
            );
        }
        repo.warn_expiry(ctx, warnings);
        Ok(repo)
    }

    /// After a failed update: when the server's current root is not the one this trust
    /// directory trusts nor a successor of it (the repository was deleted and made again
    /// with another root), says so in words instead of the signature error it caused.
    async fn explain_root_change(&self, trusted: Option<Vec<u8>>, error: Error) -> Error {
        use notar_tuf::client::Fetch;
        if !matches!(error, Error::Untrusted { .. }) {
            return error;
        }
        let Some(trusted) = trusted.and_then(|b| parse_root(b).ok()) else {
            return error;
        };
        let limit = Limits::default().root_max_bytes;
        let ours = trusted.untrusted();
        // The server still has our root at its version: the same history, another failure.
        let name = format!("{}.root.json", ours.version);
        match self.updater.fetcher().fetch(&name, limit).await {
            Ok(Some(bytes)) if bytes == trusted.as_bytes() => return error,
            Ok(_) => {}
            Err(_) => return error,
        }
        let Ok(Some(first)) = self.updater.fetcher().fetch("1.root.json", limit).await else {
            return error;
        };
        let Ok(first) = parse_root(first) else {
            return error;
        };
        let server_v1_keys = root_keys(first.untrusted());
        Error::RootChanged {
            gun: self.gun.clone(),
            trusted_version: ours.version.get(),
            trusted_keys: root_keys(ours),
            server_keys: server_v1_keys,
        }
    }

    /// Starts from a root this client just made and uploaded (the first publish), so the
    /// trust directory holds it without a trust-on-first-use step.
    pub async fn open_with_root(
        ctx: &Context,
        gun: &Gun,
        root: Vec<u8>,
        pin: Option<&KeyId>,
    ) -> Result<Self, Error> {
        let cache = MetadataCache::load(&ctx.trust_dir, gun)?;
        let fetch = ctx.server.fetcher(gun);
        let updater = Updater::new(root, fetch, ctx.now, Limits::default())
            .map(docker_client)
            .map(|u| u.with_repository(gun.as_str()))
            .map_err(|source| Error::untrusted(gun, source))?;
        let mut repo = Repository {
            gun: gun.clone(),
            updater,
            cache,
            pin: pin.cloned(),
        };
        repo.refresh().await?;
        if let Some(pin) = pin {
            repo.cache.save_pin_verified(pin)?;
        }
        Ok(repo)
    }

    /// Offers the cached timestamp, snapshot and targets as rollback references. A file that
    /// no longer verifies (after a key rotation) is dropped, as the workflow says.
    fn load_cached(&mut self) {
        for role in [
            RoleName::timestamp(),
            RoleName::snapshot(),
            RoleName::targets(),
        ] {
            let Some(bytes) = self.cache.get(&format!("{role}.json")) else {
                continue;
            };
            if let Err(e) = self.updater.load_trusted(&role, bytes.to_vec()) {
                tracing::info!(gun = %self.gun, role = %role, error = %e, "cached metadata dropped");
            }
        }
    }

    /// The dialect the repository is written in, which its new metadata must be signed in.
    pub fn dialect(&self) -> notar_tuf::notary::Dialect {
        self.updater.dialect()
    }

    /// Refuses `what` (a change of keys or signers) on a Notary-dialect repository: notar
    /// signs and revokes tags there, but Notary's delegations (prefix paths, `targets/releases`
    /// kept by Docker) and X.509 root keys are changed with Docker's or Notary's tools.
    pub fn refuse_notary(&self, what: &str) -> Result<(), Error> {
        if self.dialect() == notar_tuf::notary::Dialect::Notary {
            return Err(Error::Usage(format!(
                "{} is a Notary repository (made by docker trust or notary): notar signs and revokes its tags, \
                 but {what} there is done with `docker trust` or `notary`",
                self.gun
            )));
        }
        Ok(())
    }

    /// Runs the update workflow again (after an upload, or to retry after a conflict).
    pub async fn refresh(&mut self) -> Result<(), Error> {
        let result = self.updater.refresh().await;
        self.persist()?;
        result.map_err(|source| self.untrusted(source))
    }

    /// Finds `tag` through the delegation search, then saves any role it loaded.
    pub async fn find_target(&mut self, tag: &str) -> Result<Option<FoundTarget>, Error> {
        let result = self.updater.find_target(tag).await;
        self.persist()?;
        result.map_err(|source| self.untrusted(source))
    }

    /// Loads every reachable targets role, then saves them.
    pub async fn load_all_targets(&mut self) -> Result<Vec<RoleName>, Error> {
        let result = self.updater.load_all_targets().await;
        self.persist()?;
        result.map_err(|source| self.untrusted(source))
    }

    /// The verified top-level targets.
    pub fn targets(&self) -> Result<&Verified<Targets>, Error> {
        self.updater.targets(&RoleName::targets()).ok_or_else(|| {
            Error::untrusted(
                &self.gun,
                UpdateError::Missing {
                    role: "targets".into(),
                    reason: "not loaded".into(),
                },
            )
        })
    }

    /// The cache of this repository's trust data in the trust directory.
    pub fn cache(&self) -> &MetadataCache {
        &self.cache
    }

    fn persist(&mut self) -> Result<(), Error> {
        let files = self.updater.trusted_files();
        self.cache.persist(&files)
    }

    fn untrusted(&self, source: UpdateError) -> Error {
        Error::untrusted(&self.gun, source)
    }

    fn warn_expiry(&self, ctx: &Context, warnings: Warnings) {
        let soon = ctx.now + EXPIRY_WARNING;
        let mut roles = vec![("root", self.updater.root().expires)];
        if warnings == Warnings::RootAndTargets
            && let Some(targets) = self.updater.targets(&RoleName::targets())
        {
            roles.push(("targets", targets.expires));
        }
        for (role, expires) in roles {
            if expires.datetime() <= soon {
                let days = (expires.datetime() - ctx.now).whole_days();
                let hint = if role == "targets" {
                    "signing a tag renews it"
                } else {
                    "renew it with a new root version before then"
                };
                eprintln!(
                    "notar: warning: the {role} metadata of {} expires at {expires} (in {days} days); {hint}",
                    self.gun
                );
            }
        }
    }
}

/// The notar client reads repositories as Docker does: delegated roles the snapshot does
/// not list yet read as empty, and tags are found in Docker's walk order.
fn docker_client(updater: Updater<HttpFetch>) -> Updater<HttpFetch> {
    updater
        .with_unlisted_delegations(UnlistedDelegation::Empty)
        .with_search_order(SearchOrder::Docker)
}

/// Root version `version` as the server has it, `None` if it has none.
async fn fetch_root(gun: &Gun, fetch: &HttpFetch, version: u64) -> Result<Option<Vec<u8>>, Error> {
    use notar_tuf::client::Fetch;
    fetch
        .fetch(
            &format!("{version}.root.json"),
            Limits::default().root_max_bytes,
        )
        .await
        .map_err(|source| {
            Error::untrusted(
                gun,
                UpdateError::Fetch {
                    role: "root".into(),
                    source,
                },
            )
        })
}

/// The root to trust on first use: version 1, or, for a Notary repository whose first
/// publish was already a root rotation (`notary key rotate … snapshot -r` before the first
/// publish uploads root version 2, which notary-server accepts as a first root), version 2.
async fn fetch_first_root(ctx: &Context, gun: &Gun, fetch: &HttpFetch) -> Result<Vec<u8>, Error> {
    for version in [1, 2] {
        if let Some(root) = fetch_root(gun, fetch, version).await? {
            return Ok(root);
        }
    }
    Err(Error::NoTrustData {
        gun: gun.clone(),
        server: ctx.server.url().to_owned(),
    })
}

/// The chain of roots on the server that starts at the oldest root listing `pin` as a root
/// key and carrying its valid signature, each later root accepted by the rulebook's
/// next-root rule: what a pinned trust directory may trust. Refused when no root on the
/// server was signed by `pin`.
async fn pinned_chain(
    ctx: &Context,
    gun: &Gun,
    fetch: &HttpFetch,
    pin: &KeyId,
) -> Result<Vec<Signed<Root>>, Error> {
    let mut chain: Vec<Signed<Root>> = Vec::new();
    let mut checked = 0;
    for version in 1..=Limits::default().max_root_rotations {
        let Some(bytes) = fetch_root(gun, fetch, version).await? else {
            // A Notary repository may start at root version 2 (see fetch_first_root).
            if version == 1 {
                continue;
            }
            break;
        };
        checked = version;
        let Ok(root) = parse_root(bytes) else {
            if chain.is_empty() {
                continue;
            }
            break;
        };
        match chain.last() {
            None => {
                if signed_by_root_key(&root, pin) && root.check_self().is_ok() {
                    chain.push(root);
                }
            }
            Some(previous) => match notar_tuf::rules::next_root(previous.untrusted(), root) {
                Ok(next) => chain.push(next.into_signed()),
                Err(source) => return Err(Error::untrusted(gun, source.into())),
            },
        }
    }
    if checked == 0 {
        return Err(Error::NoTrustData {
            gun: gun.clone(),
            server: ctx.server.url().to_owned(),
        });
    }
    if chain.is_empty() {
        return Err(Error::PinMismatch {
            gun: gun.clone(),
            key: pin.clone(),
            checked,
        });
    }
    Ok(chain)
}

/// The root keys of `root`, comma-separated.
fn root_keys(root: &Root) -> String {
    root.role_keys(RoleType::Root)
        .map(|r| {
            r.keyids
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Whether `key` is listed for the root role of `root` and made a valid signature over it.
pub fn signed_by_root_key(root: &Signed<Root>, key: &KeyId) -> bool {
    let content = root.untrusted();
    let listed = content
        .role_keys(RoleType::Root)
        .is_some_and(|r| r.keyids.contains(key));
    let Some(public) = content.keys.get(key) else {
        return false;
    };
    if !listed {
        return false;
    }
    let keys = BTreeMap::from([(key.clone(), public.clone())]);
    let authority = Authority {
        role: RoleName::root(),
        keys: &keys,
        keyids: std::slice::from_ref(key),
        threshold: NonZeroU32::MIN,
    };
    root.check(&authority).is_ok()
}

/// A root in whichever dialect it is written (TUF 1.0, or Notary's for repositories the
/// stock clients made).
fn parse_root(bytes: Vec<u8>) -> Result<Signed<Root>, notar_tuf::Error> {
    notar_tuf::notary::parse_either::<Root>(bytes).map(|(_, root)| root)
}
