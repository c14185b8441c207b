//! The verified metadata of one repository in the trust directory: `<trust-dir>/tuf/<gun>/`.
//!
//! It holds what the last update trusted, byte for byte as the server sent it
//! (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, and delegated roles
//! with the role name percent-encoded, `targets%2Freleases.json`): the rollback anchor of
//! the next update. A pinned root key is kept beside them in `_pinned_root_key` (a name no
//! GUN component can have, since components start with a letter or digit).
//!
//! Every write is a temporary file, fsync, rename, fsync of the directory, so a crash
//! leaves the old file or the new one. Files that did not change are not rewritten.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use notar_tuf::{Gun, KeyId};

use crate::Error;

/// The subdirectory of a trust directory that holds metadata.
pub const TUF_DIR: &str = "tuf";
const PIN_FILE: &str = "_pinned_root_key";
/// The pinned key that established the root kept here: the chain from a root it signed
/// was walked to this root, so later updates need only follow the chain on.
const PIN_VERIFIED_FILE: &str = "_pin_verified";
/// The sha256 of each pending delegation this trust directory staged, one per line: only
/// those are re-signed when targets move on, never pending targets the server offers
/// otherwise.
const STAGED_FILE: &str = "_staged_pending";

/// Every repository with a cached `targets.json` in `trust_dir`, with those bytes: the
/// GUN directories under `tuf/`, however deep (a GUN has several path components).
pub fn cached_targets(trust_dir: &Path) -> Vec<(String, Vec<u8>)> {
    cached_files(trust_dir, "targets.json")
}

/// Every repository with a kept `root.json` in `trust_dir`, with those bytes.
pub fn cached_roots(trust_dir: &Path) -> Vec<(String, Vec<u8>)> {
    cached_files(trust_dir, "root.json")
}

fn cached_files(trust_dir: &Path, file: &str) -> Vec<(String, Vec<u8>)> {
    let root = trust_dir.join(TUF_DIR);
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry.file_name() == file
                && let Ok(bytes) = fs::read(&path)
                && let Ok(gun) = dir.strip_prefix(&root)
            {
                found.push((gun.display().to_string(), bytes));
            }
        }
    }
    found.sort();
    found
}

/// The cached metadata of one GUN.
#[derive(Debug)]
pub struct MetadataCache {
    dir: PathBuf,
    /// The `*.json` files as last read or written, so unchanged files are not rewritten.
    files: BTreeMap<String, Vec<u8>>,
}

impl MetadataCache {
    /// Reads what is cached for `gun` (nothing if the directory does not exist yet; it is
    /// created on the first write).
    pub fn load(trust_dir: &Path, gun: &Gun) -> Result<Self, Error> {
        let dir = trust_dir.join(TUF_DIR).join(gun.as_str());
        let mut files = BTreeMap::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("reading the metadata directory", &dir)(e)),
        };
        for entry in entries.into_iter().flatten() {
            let entry = entry.map_err(Error::io("reading the metadata directory", &dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !name.ends_with(".json") || name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(Error::io("reading cached metadata", &path))?;
            files.insert(name, bytes);
        }
        Ok(MetadataCache { dir, files })
    }

    /// `<trust-dir>/tuf/<gun>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached bytes of `file` (`root.json`, `targets.json`, …).
    pub fn get(&self, file: &str) -> Option<&[u8]> {
        self.files.get(file).map(Vec::as_slice)
    }

    /// Makes the cache hold exactly `files`: changed files are written atomically, files no
    /// longer trusted are removed.
    pub fn persist(&mut self, files: &[(String, &[u8])]) -> Result<(), Error> {
        let changed: Vec<&(String, &[u8])> = files
            .iter()
            .filter(|(name, bytes)| self.files.get(name).map(Vec::as_slice) != Some(*bytes))
            .collect();
        let stale: Vec<String> = self
            .files
            .keys()
            .filter(|name| !files.iter().any(|(n, _)| n == *name))
            .cloned()
            .collect();
        if changed.is_empty() && stale.is_empty() {
            return Ok(());
        }
        create_dir(&self.dir)?;
        for (name, bytes) in changed {
            write_atomically(&self.dir.join(name), bytes)?;
            self.files.insert(name.clone(), bytes.to_vec());
        }
        for name in stale {
            let path = self.dir.join(&name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing stale metadata", path)(e)),
            }
            self.files.remove(&name);
        }
        sync_dir(&self.dir)
    }

    /// The root key pinned with `notar trust pin`, if any.
    pub fn pinned_root_key(&self) -> Result<Option<KeyId>, Error> {
        let path = self.dir.join(PIN_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading the pinned root key", path)(e)),
        };
        KeyId::new(text.trim()).map(Some).map_err(|e| Error::Io {
            action: "reading the pinned root key",
            path,
            source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        })
    }

    /// Pins `key`: the root this trust directory trusts must descend, through a chain of
    /// verified rotations, from a root that `key` signed.
    pub fn save_pin(&self, key: &KeyId) -> Result<(), Error> {
        create_dir(&self.dir)?;
        write_atomically(&self.dir.join(PIN_FILE), format!("{key}\n").as_bytes())?;
        sync_dir(&self.dir)
    }

    /// Removes the pin; `Ok(false)` if there was none.
    pub fn remove_pin(&self) -> Result<bool, Error> {
        let mut removed = false;
        for name in [PIN_FILE, PIN_VERIFIED_FILE] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => removed |= name == PIN_FILE,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing the pin", path)(e)),
            }
        }
        Ok(removed)
    }

    /// Whether the kept root was established under the pinned key `key`.
    pub fn pin_verified(&self, key: &KeyId) -> bool {
        fs::read_to_string(self.dir.join(PIN_VERIFIED_FILE))
            .is_ok_and(|text| text.trim() == key.as_str())
    }

    /// Records that the kept root descends from a root `key` signed.
    pub fn save_pin_verified(&self, key: &KeyId) -> Result<(), Error> {
        create_dir(&self.dir)?;
        write_atomically(
            &self.dir.join(PIN_VERIFIED_FILE),
            format!("{key}\n").as_bytes(),
        )?;
        sync_dir(&self.dir)
    }

    /// The sha256 (hex) of every pending delegation this trust directory staged.
    pub fn staged_pending(&self) -> std::collections::BTreeSet<String> {
        fs::read_to_string(self.dir.join(STAGED_FILE))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Records `add` and forgets `remove` among the staged pending delegations.
    pub fn update_staged(&self, add: Option<&str>, remove: Option<&str>) -> Result<(), Error> {
        let mut staged = self.staged_pending();
        if let Some(old) = remove {
            staged.remove(old);
        }
        if let Some(new) = add {
            staged.insert(new.to_owned());
        }
        create_dir(&self.dir)?;
        let text: String = staged.iter().map(|s| format!("{s}\n")).collect();
        write_atomically(&self.dir.join(STAGED_FILE), text.as_bytes())?;
        sync_dir(&self.dir)
    }

    /// Forgets everything kept for this repository: metadata and pin.
    pub fn forget(self) -> Result<bool, Error> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("removing the trust data", self.dir)(e)),
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(Error::io("creating the metadata directory", dir))
}

/// Temporary file in the same directory, write, fsync, rename over `path`. The temporary
/// file is removed if a step before the rename fails.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("writing", path)(e));
    }
    Ok(())
}

/// Makes renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing the metadata directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_writes_changes_and_removes_stale_files() {
        let trust = tempfile::tempdir().expect("temp dir");
        let gun = Gun::new("localhost:5000/team/app").expect("valid");
        let mut cache = MetadataCache::load(trust.path(), &gun).expect("empty");
        assert!(cache.get("root.json").is_none());
        assert!(!cache.dir().exists(), "nothing written before persist");
        cache
            .persist(&[
                ("root.json".into(), b"r1".as_slice()),
                ("targets%2Freleases.json".into(), b"d1".as_slice()),
            ])
            .expect("persist");
        let dir = trust.path().join("tuf/localhost:5000/team/app");
        assert_eq!(fs::read(dir.join("root.json")).expect("root"), b"r1");
        cache
            .persist(&[("root.json".into(), b"r2".as_slice())])
            .expect("persist");
        assert_eq!(fs::read(dir.join("root.json")).expect("root"), b"r2");
        assert!(!dir.join("targets%2Freleases.json").exists());

        let again = MetadataCache::load(trust.path(), &gun).expect("reload");
        assert_eq!(again.get("root.json"), Some(b"r2".as_slice()));
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["root.json"], "no temporary files left behind");
    }

    #[test]
    fn pins_round_trip() {
        let trust = tempfile::tempdir().expect("temp dir");
        let gun = Gun::new("docker.io/library/alpine").expect("valid");
        let cache = MetadataCache::load(trust.path(), &gun).expect("empty");
        assert_eq!(cache.pinned_root_key().expect("none"), None);
        let key = KeyId::new("ab".repeat(32)).expect("valid");
        cache.save_pin(&key).expect("saved");
        assert_eq!(cache.pinned_root_key().expect("read"), Some(key));
    }
}
