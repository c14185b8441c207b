//! The key store: encrypted key files in `<trust_dir>/private/`.
//!
//! Each key lives in `private/<key ID>.key` (the format of `FORMAT.md`). The directory is
//! kept at mode 0700 and files are written 0600, atomically: a hidden temporary file in
//! the same directory is written and synced, renamed over the target, and the directory is
//! synced, so a crash leaves either the old file or the new one, never a partial one.
//!
//! Listing reads headers only, so it needs no passphrase. Files that cannot be read are
//! not skipped silently: [`KeyStore::list`] returns them in [`KeyListing::damaged`] with
//! the reason, beside the keys that could be read, so one bad file neither hides the
//! others nor goes unnoticed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use notar_tuf::{Gun, KeyId};
use zeroize::Zeroizing;

use crate::keyfile::{self, MAX_FILE_LEN};
use crate::private_key::SEED_LEN;
use crate::{Algorithm, Error, KdfParams, KeyHeader, KeyRole, PrivateKey, Result};

/// The subdirectory of a trust directory that holds private keys.
pub const PRIVATE_DIR: &str = "private";
/// The extension of key files.
const EXTENSION: &str = "key";

/// A key in the store, as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    pub key_id: KeyId,
    pub role: KeyRole,
    /// The repository the key was made for; `None` for root and delegation keys.
    pub gun: Option<Gun>,
    /// The key file.
    pub path: PathBuf,
}

/// A key file whose header could not be read, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct DamagedKeyFile {
    pub path: PathBuf,
    pub error: Error,
}

/// What [`KeyStore::list`] and [`KeyStore::find`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct KeyListing {
    /// Readable keys, sorted by key ID.
    pub keys: Vec<KeyInfo>,
    /// `*.key` files that could not be read, sorted by path. Always reported in full, even
    /// by [`KeyStore::find`]: a damaged file might have been the key sought.
    pub damaged: Vec<DamagedKeyFile>,
}

/// The encrypted private keys of one trust directory.
///
/// Cheap to clone. The methods are blocking (file I/O, and argon2id in [`KeyStore::save`]
/// and [`KeyStore::load`]); from async code use [`KeyStore::save_async`] and
/// [`KeyStore::load_async`].
#[derive(Clone, Debug)]
pub struct KeyStore {
    /// `<trust_dir>/private`, which exists with mode 0700.
    private_dir: PathBuf,
}

impl KeyStore {
    /// Opens the key store of `trust_dir`, creating `trust_dir` and `trust_dir/private`
    /// (mode 0700) as needed. An existing `private/` with other permissions is set to 0700.
    pub fn open(trust_dir: impl AsRef<Path>) -> Result<Self> {
        let private_dir = trust_dir.as_ref().join(PRIVATE_DIR);
        create_private_dir(&private_dir)?;
        Ok(KeyStore { private_dir })
    }

    /// `<trust_dir>/private`.
    pub fn private_dir(&self) -> &Path {
        &self.private_dir
    }

    /// Where the file of `key_id` is (whether or not it exists).
    pub fn path_of(&self, key_id: &KeyId) -> PathBuf {
        self.private_dir.join(format!("{key_id}.{EXTENSION}"))
    }

    /// Encrypts `key` under `passphrase` and writes it to the store, replacing any file
    /// for the same key (as changing a passphrase does). Runs argon2id.
    pub fn save(
        &self,
        key: &PrivateKey,
        role: KeyRole,
        gun: Option<&Gun>,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<KeyInfo> {
        let secret = key.secret_bytes();
        let key_id = key.key_id();
        self.save_secret(
            key.algorithm(),
            &secret,
            key_id,
            role,
            gun,
            passphrase,
            params,
        )
    }

    /// [`KeyStore::save`] on a blocking thread.
    pub async fn save_async(
        &self,
        key: &PrivateKey,
        role: KeyRole,
        gun: Option<&Gun>,
        passphrase: Zeroizing<String>,
        params: KdfParams,
    ) -> Result<KeyInfo> {
        let store = self.clone();
        let secret = key.secret_bytes();
        let algorithm = key.algorithm();
        let key_id = key.key_id().clone();
        let gun = gun.cloned();
        tokio::task::spawn_blocking(move || {
            store.save_secret(
                algorithm,
                &secret,
                &key_id,
                role,
                gun.as_ref(),
                &passphrase,
                params,
            )
        })
        .await
        .map_err(Error::Task)?
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one key file, each kept apart from the key so that the \
                  secret can be sealed on a blocking thread"
    )]
    fn save_secret(
        &self,
        algorithm: Algorithm,
        seed: &[u8; SEED_LEN],
        key_id: &KeyId,
        role: KeyRole,
        gun: Option<&Gun>,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<KeyInfo> {
        let bytes = keyfile::seal(algorithm, seed, key_id, role, gun, passphrase, params)?;
        let path = self.path_of(key_id);
        write_atomically(&path, &bytes)?;
        Ok(KeyInfo {
            key_id: key_id.clone(),
            role,
            gun: gun.cloned(),
            path,
        })
    }

    /// Reads and decrypts the key `key_id`. Runs argon2id.
    pub fn load(&self, key_id: &KeyId, passphrase: &str) -> Result<PrivateKey> {
        let path = self.path_of(key_id);
        let bytes = self.read_key_file(key_id, &path)?;
        let key = keyfile::decrypt_key(&bytes, passphrase).map_err(|e| e.in_file(&path))?;
        // The file may have been renamed: the content must be the key the name promises.
        if key.key_id() != key_id {
            return Err(Error::KeyIdMismatch {
                path: Some(path),
                expected: key_id.clone(),
                actual: key.key_id().clone(),
            });
        }
        Ok(key)
    }

    /// [`KeyStore::load`] on a blocking thread.
    pub async fn load_async(
        &self,
        key_id: &KeyId,
        passphrase: Zeroizing<String>,
    ) -> Result<PrivateKey> {
        let store = self.clone();
        let key_id = key_id.clone();
        tokio::task::spawn_blocking(move || store.load(&key_id, &passphrase))
            .await
            .map_err(Error::Task)?
    }

    /// The header of the key `key_id`, without the passphrase: its role and repository,
    /// so the right passphrase can be asked for before [`KeyStore::load`].
    pub fn info(&self, key_id: &KeyId) -> Result<KeyInfo> {
        let path = self.path_of(key_id);
        let bytes = self.read_key_file(key_id, &path)?;
        let header = keyfile::read_header(&bytes).map_err(|e| e.in_file(&path))?;
        key_info(header, key_id, path)
    }

    /// Every key in the store, from headers only, and every `*.key` file that could not
    /// be read. Other entries (hidden temporary files, subdirectories, other extensions)
    /// are not key files and are ignored.
    pub fn list(&self) -> Result<KeyListing> {
        let read_dir = |e| Error::io("listing key directory", &self.private_dir)(e);
        let mut listing = KeyListing::default();
        for entry in fs::read_dir(&self.private_dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let is_key_file = path.extension().is_some_and(|ext| ext == EXTENSION)
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| !name.starts_with('.'))
                && path.is_file();
            if !is_key_file {
                continue;
            }
            match self.read_info(&path) {
                Ok(info) => listing.keys.push(info),
                Err(error) => listing.damaged.push(DamagedKeyFile { path, error }),
            }
        }
        listing.keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        listing.damaged.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    /// The keys for `role` whose repository is exactly `gun` (`None` finds the keys made
    /// without one, such as root keys), with every damaged file, as in [`KeyStore::list`].
    pub fn find(&self, role: KeyRole, gun: Option<&Gun>) -> Result<KeyListing> {
        let mut listing = self.list()?;
        listing
            .keys
            .retain(|info| info.role == role && info.gun.as_ref() == gun);
        Ok(listing)
    }

    fn read_info(&self, path: &Path) -> Result<KeyInfo> {
        let key_id = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| KeyId::new(stem).ok())
            .ok_or_else(|| Error::corrupt("its file name is not <key ID>.key").in_file(path))?;
        let bytes = read_limited(path)?;
        let header = keyfile::read_header(&bytes).map_err(|e| e.in_file(path))?;
        key_info(header, &key_id, path.to_path_buf())
    }

    fn read_key_file(&self, key_id: &KeyId, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
        read_limited(path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Error::KeyNotFound {
                    key_id: key_id.clone(),
                    dir: self.private_dir.clone(),
                }
            }
            other => other,
        })
    }
}

/// The header as a [`KeyInfo`], if it names the key its file is named for.
fn key_info(header: KeyHeader, file_key_id: &KeyId, path: PathBuf) -> Result<KeyInfo> {
    if header.key_id != *file_key_id {
        return Err(Error::corrupt(format!(
            "its header names key {}, but its file name names key {}",
            header.key_id.short(),
            file_key_id.short()
        ))
        .in_file(&path));
    }
    Ok(KeyInfo {
        key_id: header.key_id,
        role: header.role,
        gun: header.gun,
        path,
    })
}

/// Reads a file of at most [`MAX_FILE_LEN`] bytes. The content is not secret (it is
/// encrypted), but it is wiped anyway: it is cheap, and it keeps habits uniform.
fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = File::open(path).map_err(Error::io("reading key file", path))?;
    let mut bytes = Zeroizing::new(Vec::new());
    let limit = u64::try_from(MAX_FILE_LEN + 1).unwrap_or(u64::MAX);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(Error::io("reading key file", path))?;
    if bytes.len() > MAX_FILE_LEN {
        return Err(Error::corrupt(format!(
            "it is larger than {MAX_FILE_LEN} bytes, and key files are a few hundred"
        ))
        .in_file(path));
    }
    Ok(bytes)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(Error::io("creating key directory", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir)
            .map_err(Error::io("inspecting key directory", dir))?
            .permissions()
            .mode();
        if mode & 0o777 != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(Error::io("restricting permissions of key directory", dir))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` so that readers (and a crash) see the old file or the new
/// one: temporary file in the same directory (0600), write, fsync, rename, fsync the
/// directory. The temporary file is removed if any step before the rename fails.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::corrupt("a key file path has no directory").in_file(path))?;
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("key");
    let temp = dir.join(format!(
        ".{file_name}.{}.tmp",
        hex::encode(keyfile::random::<8>()?)
    ));
    let written = write_new_file(&temp, bytes).and_then(|()| {
        fs::rename(&temp, path).map_err(Error::io("renaming temporary key file", &temp))
    });
    if let Err(e) = written {
        // Best effort: the write already failed, and that is the error worth reporting.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(Error::io("creating temporary key file", path))?;
    #[cfg(unix)]
    {
        // The mode above is filtered by the umask; set it exactly.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(Error::io(
                "restricting permissions of temporary key file",
                path,
            ))?;
    }
    file.write_all(bytes)
        .map_err(Error::io("writing temporary key file", path))?;
    file.sync_all()
        .map_err(Error::io("syncing temporary key file", path))
}

/// Makes a rename in `dir` durable. Directories cannot be opened as files on Windows, and
/// there NTFS journals the rename itself.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing key directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use crate::keyfile::tests::{PASS, gun};

    fn store() -> (tempfile::TempDir, KeyStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = KeyStore::open(dir.path().join("trust")).expect("opens");
        (dir, store)
    }

    fn saved(store: &KeyStore, role: KeyRole, gun: Option<&Gun>) -> (PrivateKey, KeyInfo) {
        let key = PrivateKey::generate().expect("rng");
        let info = store
            .save(&key, role, gun, PASS, KdfParams::for_tests())
            .expect("saves");
        (key, info)
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn save_then_load_round_trips_under_the_key_id_file_name() {
        let (_dir, store) = store();
        let gun = gun();
        let (key, info) = saved(&store, KeyRole::Targets, Some(&gun));
        assert_eq!(
            info.path,
            store.private_dir().join(format!("{}.key", key.key_id()))
        );
        assert_eq!(info.role, KeyRole::Targets);
        assert_eq!(info.gun.as_ref(), Some(&gun));
        let loaded = store.load(key.key_id(), PASS).expect("loads");
        assert_eq!(loaded.key_id(), key.key_id());
        assert_eq!(store.info(key.key_id()).expect("header"), info);
    }

    #[cfg(unix)]
    #[test]
    fn directory_is_0700_and_key_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let trust = dir.path().join("trust");
        fs::create_dir_all(trust.join(PRIVATE_DIR)).expect("mkdir");
        fs::set_permissions(trust.join(PRIVATE_DIR), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let store = KeyStore::open(&trust).expect("opens");
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(store.private_dir()), 0o700);

        let fresh = KeyStore::open(dir.path().join("fresh")).expect("opens");
        assert_eq!(mode(fresh.private_dir()), 0o700);
        let (_, info) = saved(&fresh, KeyRole::Root, None);
        assert_eq!(mode(&info.path), 0o600);
    }

    #[test]
    fn writes_leave_no_temporary_file_and_replace_atomically() {
        let (_dir, store) = store();
        let (key, info) = saved(&store, KeyRole::Root, None);
        store
            .save(
                &key,
                KeyRole::Root,
                None,
                "a new passphrase",
                KdfParams::for_tests(),
            )
            .expect("re-saves");
        assert_eq!(
            dir_entries(store.private_dir()),
            vec![format!("{}.key", key.key_id())]
        );
        assert!(matches!(
            store.load(key.key_id(), PASS),
            Err(Error::WrongPassphrase { .. })
        ));
        store
            .load(key.key_id(), "a new passphrase")
            .expect("new passphrase");
        assert!(info.path.exists());
    }

    #[test]
    fn a_failed_write_leaves_neither_key_nor_temporary_file() {
        let (_dir, store) = store();
        let key = PrivateKey::generate().expect("rng");
        // A directory where the key file should go makes the rename fail.
        fs::create_dir(store.path_of(key.key_id())).expect("mkdir");
        let err = store
            .save(&key, KeyRole::Root, None, PASS, KdfParams::for_tests())
            .expect_err("rename onto a directory");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(
            dir_entries(store.private_dir()),
            vec![format!("{}.key", key.key_id())]
        );
    }

    #[test]
    fn list_and_find_read_role_and_gun_from_headers() {
        let (_dir, store) = store();
        let app = gun();
        let other = Gun::new("localhost:5000/team/other").expect("valid");
        let (root, _) = saved(&store, KeyRole::Root, None);
        let (targets, _) = saved(&store, KeyRole::Targets, Some(&app));
        let (other_targets, _) = saved(&store, KeyRole::Targets, Some(&other));
        let (delegation, _) = saved(&store, KeyRole::Delegation, None);
        // Not key files: ignored.
        fs::write(store.private_dir().join(".abc.key.0011.tmp"), b"partial").expect("write");
        fs::write(store.private_dir().join("README"), b"hello").expect("write");
        fs::create_dir(store.private_dir().join("root_keys")).expect("mkdir");

        let listing = store.list().expect("lists");
        assert!(listing.damaged.is_empty(), "{:?}", listing.damaged);
        let mut expected = vec![
            (root.key_id().clone(), KeyRole::Root, None),
            (
                targets.key_id().clone(),
                KeyRole::Targets,
                Some(app.clone()),
            ),
            (
                other_targets.key_id().clone(),
                KeyRole::Targets,
                Some(other.clone()),
            ),
            (delegation.key_id().clone(), KeyRole::Delegation, None),
        ];
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let listed: Vec<_> = listing
            .keys
            .iter()
            .map(|k| (k.key_id.clone(), k.role, k.gun.clone()))
            .collect();
        assert_eq!(listed, expected);

        let found = store.find(KeyRole::Targets, Some(&app)).expect("finds");
        assert_eq!(found.keys.len(), 1);
        assert_eq!(&found.keys[0].key_id, targets.key_id());
        let roots = store.find(KeyRole::Root, None).expect("finds");
        assert_eq!(roots.keys.len(), 1);
        assert_eq!(&roots.keys[0].key_id, root.key_id());
        assert!(
            store
                .find(KeyRole::Snapshot, None)
                .expect("finds")
                .keys
                .is_empty()
        );
    }

    #[test]
    fn damaged_files_are_listed_with_their_path_and_reason() {
        let (_dir, store) = store();
        let (good, _) = saved(&store, KeyRole::Root, None);
        let (truncated, info) = saved(&store, KeyRole::Targets, Some(&gun()));
        let bytes = fs::read(&info.path).expect("read");
        fs::write(&info.path, &bytes[..bytes.len() / 2]).expect("truncate");
        let bad_name = store.private_dir().join("not-a-key-id.key");
        fs::write(&bad_name, b"{}").expect("write");
        let renamed_id = PrivateKey::generate().expect("rng").key_id().clone();
        fs::copy(store.path_of(good.key_id()), store.path_of(&renamed_id)).expect("copy");

        let listing = store.list().expect("lists");
        assert_eq!(listing.keys.len(), 1);
        assert_eq!(&listing.keys[0].key_id, good.key_id());
        let mut damaged: Vec<_> = listing.damaged.iter().map(|d| d.path.clone()).collect();
        let mut expected = vec![info.path.clone(), bad_name, store.path_of(&renamed_id)];
        damaged.sort();
        expected.sort();
        assert_eq!(damaged, expected);
        for file in &listing.damaged {
            let message = file.error.to_string();
            assert!(
                message.starts_with(&format!("key file {} is corrupt: ", file.path.display())),
                "{message}"
            );
        }
        // find reports damaged files too, whatever it searches for.
        assert_eq!(
            store
                .find(KeyRole::Snapshot, None)
                .expect("finds")
                .damaged
                .len(),
            3
        );

        let err = store.load(truncated.key_id(), PASS).expect_err("truncated");
        assert!(
            err.to_string()
                .starts_with(&format!("key file {} is corrupt: ", info.path.display())),
            "{err}"
        );
        let err = store.load(&renamed_id, PASS).expect_err("renamed");
        assert!(matches!(err, Error::KeyIdMismatch { .. }), "{err:?}");
    }

    #[test]
    fn load_names_missing_keys_and_wrong_passphrases() {
        let (_dir, store) = store();
        let (key, info) = saved(&store, KeyRole::Targets, Some(&gun()));
        let err = store.load(key.key_id(), "not it").expect_err("wrong");
        assert_eq!(
            err.to_string(),
            format!("wrong passphrase for targets key {}", key.key_id().short())
        );

        let mut bytes = fs::read(&info.path).expect("read");
        let last_hex = bytes.len() - 2;
        bytes[last_hex] = if bytes[last_hex] == b'0' { b'1' } else { b'0' };
        fs::write(&info.path, &bytes).expect("write");
        let err = store.load(key.key_id(), PASS).expect_err("flipped");
        assert_eq!(
            err.to_string(),
            format!(
                "key file {} for targets key {} does not authenticate: its header or encrypted key was altered or damaged",
                info.path.display(),
                key.key_id().short()
            )
        );

        let missing = PrivateKey::generate().expect("rng").key_id().clone();
        let err = store.load(&missing, PASS).expect_err("missing");
        assert!(matches!(err, Error::KeyNotFound { .. }), "{err:?}");
        assert!(matches!(
            store.info(&missing),
            Err(Error::KeyNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn async_save_and_load_round_trip() {
        let (_dir, store) = store();
        let key = PrivateKey::generate().expect("rng");
        let gun = gun();
        let info = store
            .save_async(
                &key,
                KeyRole::Snapshot,
                Some(&gun),
                Zeroizing::new(PASS.to_owned()),
                KdfParams::for_tests(),
            )
            .await
            .expect("saves");
        assert_eq!(info.role, KeyRole::Snapshot);
        let loaded = store
            .load_async(key.key_id(), Zeroizing::new(PASS.to_owned()))
            .await
            .expect("loads");
        assert_eq!(loaded.key_id(), key.key_id());
        let err = store
            .load_async(key.key_id(), Zeroizing::new("wrong".to_owned()))
            .await
            .expect_err("wrong passphrase");
        assert!(matches!(err, Error::WrongPassphrase { .. }));
    }
}
