//! `notar key import` of the keys Docker and Notary made: a trust directory
//! (`~/.docker/trust`, `~/.notary`), its `private/`, one of its `<key ID>.key` files, a
//! `notary key export`, or an unencrypted PKCS#8 PEM.
//!
//! Each key keeps what its PEM headers say: `role: root` is a root key, `role: targets`
//! with `gun` the targets key of that repository, and any other role (`targets/releases`,
//! a Docker signer's name) a signer's (delegation) key. Snapshot and timestamp keys are
//! skipped, since the server holds those roles. A key's passphrase comes from Notary's and
//! Docker's variables (`NOTARY_<ROLE>_PASSPHRASE`, `DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE`,
//! `DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE`) or the terminal; the key is then
//! encrypted into a notar key file under a notar passphrase (`NOTAR_*_PASSPHRASE`, the same
//! Docker variables, or the terminal).
//!
//! Every key is decrypted and checked before any is written: a wrong passphrase, a
//! damaged file, or a file whose name is not its key's ID imports nothing.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use notar_keys::notary_key::{MAX_FILE_LEN, NotaryKeyBlock};
use notar_keys::{KeyRole, PrivateKey};
use notar_tuf::Gun;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::commands::args::read_limited;
use crate::trust::keyring::NewKey;
use crate::{Context, Error};

/// What happened to one key: the `--json` entry of `key import`, `backup` and `restore`
/// (format 1).
#[derive(Debug, Serialize)]
pub(crate) struct KeyOutcome {
    pub(crate) key_id: String,
    pub(crate) role: String,
    pub(crate) gun: Option<String>,
    /// `backed-up`, `restored`, `imported`, `skipped-identical`, `skipped-kept-existing`,
    /// `skipped-server-role` (a Notary snapshot or timestamp key).
    pub(crate) outcome: &'static str,
}

/// Wrong passphrases typed at a terminal before the import gives up.
const TRIES: usize = 3;

/// One key found, decrypted, and where it goes.
struct Found {
    file: PathBuf,
    /// Notary's role name, as the file said.
    notary_role: String,
    /// The key's ID in Notary's form (its file name in Notary's and Docker's trust directories).
    notary_id: String,
    key: PrivateKey,
    role: KeyRole,
    gun: Option<Gun>,
}

/// Whether `text` is a PEM file (Notary's, Docker's, or a plain PKCS#8 key), which this
/// module imports, rather than a notar key file.
pub fn is_pem(text: &str) -> bool {
    text.contains("-----BEGIN ")
}

/// Imports every key of `path` (a file or a trust directory). `role` and `gun` fill in
/// what a block's headers leave out.
pub(crate) async fn import(
    ctx: &Context,
    path: &Path,
    role: Option<&str>,
    gun: Option<&Gun>,
) -> Result<Vec<KeyOutcome>, Error> {
    let files = key_files(path)?;
    let keyring = ctx.keyring()?;
    let mut found: Vec<Found> = Vec::new();
    let mut outcomes = Vec::new();
    for file in &files {
        let bytes = read_limited(file, MAX_FILE_LEN)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Usage(format!("{} is not a PEM file", file.display())))?;
        let blocks = NotaryKeyBlock::parse_all(&text)
            .map_err(Error::keys(format!("importing {}", file.display())))?;
        for block in blocks {
            let Some(notary_role) = block.role.clone().or_else(|| role.map(str::to_owned)) else {
                return Err(Error::Usage(format!(
                    "importing a PEM key needs --role (root, targets or delegation): {} names no role",
                    file.display()
                )));
            };
            let key_role = match notary_role.as_str() {
                "root" => KeyRole::Root,
                "targets" => KeyRole::Targets,
                "snapshot" | "timestamp" => {
                    eprintln!(
                        "notar: skipped the {notary_role} key in {}: the server holds that role",
                        file.display()
                    );
                    outcomes.push(KeyOutcome {
                        key_id: block.path.clone().unwrap_or_default(),
                        role: notary_role.clone(),
                        gun: block.gun.clone(),
                        outcome: "skipped-server-role",
                    });
                    continue;
                }
                _ => KeyRole::Delegation,
            };
            let key_gun =
                match key_role {
                    KeyRole::Targets => {
                        let text = block.gun.as_deref().or(gun.map(Gun::as_str));
                        let Some(text) = text else {
                            return Err(Error::Usage(format!(
                                "the targets key in {} names no repository: give --gun",
                                file.display()
                            )));
                        };
                        Some(Gun::new(text).map_err(|e| {
                            Error::Usage(format!("the gun of {}: {e}", file.display()))
                        })?)
                    }
                    _ => None,
                };
            let key = decrypt(&block, &notary_role, file).await?;
            let notary_id = notar_tuf::notary::notary_key(&key.public_key())
                .map(|k| k.key_id().to_string())
                .map_err(|e| Error::Usage(format!("the key in {}: {e}", file.display())))?;
            // Notary names a key file, and an export's `path`, by the key's ID: a key
            // that is not the one its name promises is not imported.
            let named = block.path.clone().or_else(|| {
                let stem = file.file_stem()?.to_str()?;
                (stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| stem.to_owned())
            });
            if let Some(named) = named
                && named != notary_id
                && named != key.key_id().as_str()
            {
                return Err(Error::Usage(format!(
                    "{} is named for the key {named}, but holds the key {notary_id}; nothing was imported",
                    file.display()
                )));
            }
            found.push(Found {
                file: file.clone(),
                notary_role,
                notary_id,
                key,
                role: key_role,
                gun: key_gun,
            });
        }
    }
    // Everything is read: now the new files, each under a notar passphrase.
    let mut new_keys: Vec<(NewKey, String, String)> = Vec::new();
    for f in found {
        if let Ok(info) = keyring.store.info(f.key.key_id()) {
            outcomes.push(KeyOutcome {
                key_id: info.key_id.to_string(),
                role: info.role.to_string(),
                gun: info.gun.map(|g| g.to_string()),
                outcome: "skipped-kept-existing",
            });
            continue;
        }
        if new_keys
            .iter()
            .any(|(n, _, _)| n.key.key_id() == f.key.key_id())
        {
            continue;
        }
        tracing::debug!(file = %f.file.display(), role = %f.notary_role, "importing key");
        let new = keyring.adopt(f.key, f.role, f.gun.as_ref()).await?;
        new_keys.push((new, f.notary_role, f.notary_id));
    }
    for (new, notary_role, notary_id) in &new_keys {
        let info = keyring.save(new).await?;
        eprintln!(
            "notar: imported Notary key {} ({notary_role}) as {} key {}",
            &notary_id[..notary_id.len().min(12)],
            info.role,
            info.key_id
        );
        outcomes.push(KeyOutcome {
            key_id: info.key_id.to_string(),
            role: info.role.to_string(),
            gun: info.gun.map(|g| g.to_string()),
            outcome: "imported",
        });
    }
    Ok(outcomes)
}

/// The key files of `path`: the file itself, or the `*.key` files of a trust directory's
/// `private/` (or of `path`, when it is that directory), in name order.
fn key_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let private = path.join("private");
    let dir = if private.is_dir() {
        private
    } else {
        path.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(Error::io("listing", &dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "key"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "no key files (*.key) in {}: give a Docker or Notary trust directory, its private/, or a key file",
            dir.display()
        )));
    }
    Ok(files)
}

/// The environment variables Notary and Docker read the passphrase of a `role` key from.
fn passphrase_vars(role: &str) -> Vec<String> {
    let alias = role.rsplit('/').next().unwrap_or(role);
    let mut vars = vec![format!(
        "NOTARY_{}_PASSPHRASE",
        alias.to_ascii_uppercase().replace(['-', '.'], "_")
    )];
    match role {
        "root" => vars.push("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE".into()),
        "targets" | "snapshot" => {}
        _ => vars.push("NOTARY_DELEGATION_PASSPHRASE".into()),
    }
    if role != "root" {
        vars.push("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE".into());
    }
    vars.dedup();
    vars
}

/// Decrypts `block` with the passphrase from the environment, or asked at the terminal up
/// to [`TRIES`] times.
pub(crate) async fn decrypt(
    block: &NotaryKeyBlock,
    role: &str,
    file: &Path,
) -> Result<PrivateKey, Error> {
    let doing = || format!("importing the {role} key in {}", file.display());
    if !block.is_encrypted() {
        return block.decrypt("").map_err(Error::keys(doing()));
    }
    let vars = passphrase_vars(role);
    if let Some(passphrase) = vars
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()))
    {
        let passphrase = Zeroizing::new(passphrase);
        return block.decrypt(&passphrase).map_err(Error::keys(doing()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "no passphrase for the {role} key in {}: set {} or run at a terminal",
            file.display(),
            vars.join(" or ")
        )));
    }
    let mut last = None;
    for _ in 0..TRIES {
        let prompt = format!(
            "Enter the Docker/Notary passphrase of the {role} key in {}: ",
            file.display()
        );
        let passphrase = tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
            .await
            .map_err(Error::Task)?
            .map(Zeroizing::new)
            .map_err(Error::io("reading the passphrase for", file))?;
        match block.decrypt(&passphrase) {
            Ok(key) => return Ok(key),
            Err(e @ notar_keys::Error::ForeignWrongPassphrase { .. }) => {
                eprintln!("notar: {e}; try again");
                last = Some(e);
            }
            Err(e) => return Err(Error::keys(doing())(e)),
        }
    }
    Err(Error::keys(doing())(last.unwrap_or(
        notar_keys::Error::ForeignWrongPassphrase { role: role.into() },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_variables_follow_notary_then_docker() {
        assert_eq!(
            passphrase_vars("root"),
            [
                "NOTARY_ROOT_PASSPHRASE",
                "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"
            ]
        );
        assert_eq!(
            passphrase_vars("targets"),
            [
                "NOTARY_TARGETS_PASSPHRASE",
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"
            ]
        );
        assert_eq!(
            passphrase_vars("targets/releases"),
            [
                "NOTARY_RELEASES_PASSPHRASE",
                "NOTARY_DELEGATION_PASSPHRASE",
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"
            ]
        );
        assert_eq!(passphrase_vars("ci-bot")[0], "NOTARY_CI_BOT_PASSPHRASE");
    }
}
