//! One module per command, and what several of them share: argument parsing beyond clap,
//! and publishing a new version of the targets role.

pub mod backup;
pub mod inspect;
pub mod key;
pub mod login;
pub mod pending;
pub mod pin;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod revoke;
pub mod rotate;
pub mod sign;
pub mod signer;

use notar_keys::{KeyRole, PrivateKey};
use notar_tuf::{Expiry, Gun, KeyId, RoleName, RoleType, Signed, Signer, Targets, Version};

use crate::keyring::Keyring;
use crate::repo::Repository;
use crate::{Context, Error};

/// A key ID as given on the command line.
pub fn parse_key_id(text: &str) -> Result<KeyId, Error> {
    KeyId::new(text.trim().to_ascii_lowercase())
        .map_err(|e| Error::Usage(format!("invalid key ID {text:?}: {e}")))
}

/// `sha256:<64 lower-case hex>`, the only digest algorithm TUF targets carry here.
pub fn parse_digest(text: &str) -> Result<[u8; 32], Error> {
    let bad = |reason: &str| Error::Usage(format!("invalid digest {text:?}: {reason}"));
    let hex_part = text
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("expected sha256:<64 hex digits>"))?;
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("expected 64 lower-case hex digits after sha256:"));
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut digest).map_err(|_| bad("not hex"))?;
    Ok(digest)
}

/// A lifetime in days from the command line.
pub fn days(n: u32) -> time::Duration {
    time::Duration::days(i64::from(n))
}

/// Unlocks this trust directory's targets key for `gun`, if it has one. Commands call it
/// before anything else touches a file, so a wrong passphrase changes nothing.
pub async fn unlock_targets_key(ctx: &Context, gun: &Gun) -> Result<Option<PrivateKey>, Error> {
    let keyring = Keyring::open(&ctx.trust_dir, ctx.kdf)?;
    match keyring.find(KeyRole::Targets, Some(gun))? {
        Some(info) => Ok(Some(keyring.unlock(KeyRole::Targets, &info.key_id).await?)),
        None => Ok(None),
    }
}

/// The targets key to sign `repo` with: `key` (from [`unlock_targets_key`]), which the
/// verified root must list for the targets role.
pub fn targets_signer<'k>(
    ctx: &Context,
    repo: &Repository,
    key: Option<&'k PrivateKey>,
) -> Result<&'k PrivateKey, Error> {
    let listed: Vec<KeyId> = repo
        .updater
        .root()
        .role_keys(RoleType::Targets)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    match key {
        Some(key) if listed.contains(key.key_id()) => Ok(key),
        _ => Err(Error::MissingKey(format!(
            "no private key for the targets role of {} in {} (root lists {}{}); sign from the trust directory that holds it",
            repo.gun,
            ctx.trust_dir.join(notar_keys::PRIVATE_DIR).display(),
            listed
                .iter()
                .map(KeyId::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            key.map(|k| format!(", this trust directory has {}", k.key_id()))
                .unwrap_or_default()
        ))),
    }
}

/// The next version of top-level targets: the current one changed by `edit`, renewed for
/// `lifetime`, signed with `key`.
pub fn next_targets(
    ctx: &Context,
    repo: &Repository,
    key: &PrivateKey,
    lifetime: time::Duration,
    edit: impl Fn(&mut Targets) -> Result<(), Error>,
) -> Result<(Version, Signed<Targets>), Error> {
    let current = repo.targets()?;
    let mut next: Targets = (**current).clone();
    next.version = current.version.next();
    next.expires = Expiry::after(ctx.now, lifetime);
    edit(&mut next)?;
    let version = next.version;
    let signers: [&dyn Signer; 1] = [key];
    let signed = Signed::sign(next, &signers).map_err(Error::metadata(format!(
        "signing targets version {version}"
    )))?;
    Ok((version, signed))
}

/// Makes the next version of top-level targets with `edit`, signs it with `key`, and
/// uploads it; the server signs snapshot and timestamp. If another update was stored first
/// (409 `VERSION`), refreshes and tries once more on top of it. Returns the version stored.
pub async fn publish_targets(
    ctx: &Context,
    repo: &mut Repository,
    key: &PrivateKey,
    lifetime: time::Duration,
    edit: impl Fn(&mut Targets) -> Result<(), Error>,
) -> Result<Version, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (version, signed) = next_targets(ctx, repo, key, lifetime, &edit)?;
        let upload = ctx
            .server
            .upload(
                &repo.gun,
                vec![(RoleName::targets(), signed.as_bytes().to_vec())],
            )
            .await;
        match upload {
            Ok(()) => {
                repo.refresh().await?;
                // Signers added but not yet signed: their pending targets follow this version.
                // The publish itself succeeded, so a failure here is only a warning.
                if let Err(e) = pending::rebase(ctx, repo, key, lifetime).await {
                    eprintln!(
                        "notar: warning: targets version {version} is published, but re-signing the pending delegations of {} failed: {}",
                        repo.gun,
                        crate::error::one_line(&e)
                    );
                }
                return Ok(version);
            }
            Err(e) if e.is_conflict() && attempt < MAX_PUBLISH_ATTEMPTS => {
                eprintln!(
                    "notar: another update of {} was stored first; refreshing and trying again",
                    repo.gun
                );
                conflict_pause(attempt).await;
                ctx.server.insist_on_fresh_reads();
                repo.refresh().await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Tries at publishing one change while other writers keep winning the race (`VERSION`):
/// parallel CI jobs signing their own tags into one repository all get through.
pub(crate) const MAX_PUBLISH_ATTEMPTS: u32 = 12;

/// A short random pause after the `attempt`th lost race, growing with each, so that
/// writers that lost together do not collide again in step.
pub(crate) async fn conflict_pause(attempt: u32) {
    use rand_core::RngCore;
    let spread = u64::from(rand_core::OsRng.next_u32() % 40);
    let millis = u64::from(attempt.min(8)) * (20 + spread);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// Asks `question` on the terminal before a change that cannot be undone; `action` names
/// the change in errors. Without a terminal it refuses at once (never waits on stdin).
pub(crate) async fn confirm(question: String, action: &str) -> Result<(), Error> {
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

    #[test]
    fn digests() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse_digest(&format!("sha256:{hex}")).expect("valid"),
            [0xab; 32]
        );
        for bad in [
            hex.clone(),
            format!("sha512:{hex}"),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            "sha256:".into(),
        ] {
            assert!(parse_digest(&bad).is_err(), "{bad}");
        }
    }
}
