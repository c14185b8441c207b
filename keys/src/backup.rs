//! Key backup archives: one file holding key files as they are (still encrypted under
//! their passphrases) and a manifest of what they are.
//!
//! Format (`notar-key-backup`, version 1): one JSON document,
//!
//! ```text
//! {"format":"notar-key-backup","version":1,
//!  "keys":[{"key_id":"<hex>","role":"targets","gun":"localhost:5000/app"|null,
//!           "sha256":"<hex sha256 of the key file bytes>",
//!           "file":"<the key file, FORMAT.md, as text>"}, …]}
//! ```
//!
//! Key files are ASCII (a JSON header line and a hex body), so they go in as strings,
//! byte for byte. Unknown fields are refused. [`KeyStore::restore`] checks the whole
//! archive before it writes anything: the format and version, every entry's checksum, that
//! every key file's header parses (the limits of `read_header` included) and agrees with
//! the manifest (key ID, role, GUN), and that no key appears twice. The first problem is
//! reported with the entry it is in. The passphrase is not needed: the body is checked by
//! the AEAD when the key is first unlocked.

use std::fs;

use notar_tuf::{Gun, KeyId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keyfile::{self, MAX_FILE_LEN};
use crate::store::write_atomically;
use crate::{Error, KeyInfo, KeyRole, KeyStore, Result};

/// The `format` field of a backup archive.
pub const FORMAT: &str = "notar-key-backup";
/// The archive version this build writes and reads.
pub const VERSION: u64 = 1;
/// Archives larger than this are refused before parsing.
pub const MAX_ARCHIVE_LEN: usize = 16 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Archive {
    format: String,
    version: u64,
    keys: Vec<Entry>,
}

/// One key in an archive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub key_id: KeyId,
    pub role: KeyRole,
    pub gun: Option<Gun>,
    sha256: String,
    file: String,
}

/// What [`KeyStore::restore`] did with each key.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RestoreReport {
    /// Keys written to the store.
    pub restored: Vec<KeyInfo>,
    /// Keys the store already had, byte for byte: not written.
    pub identical: Vec<Entry>,
    /// Keys the store has under the same ID with other bytes (another passphrase or KDF
    /// cost): the store's file is kept, the archive's is not written.
    pub kept_existing: Vec<Entry>,
}

fn damaged(entry: Option<String>, reason: impl Into<String>) -> Error {
    Error::Backup {
        entry,
        reason: reason.into(),
    }
}

impl KeyStore {
    /// An archive of every key in the store, or, with `gun`, of that repository's keys and
    /// the keys made without a repository (root and delegation keys), which it needs. A
    /// damaged key file is an error: a backup must not silently miss a key.
    pub fn backup(&self, gun: Option<&Gun>) -> Result<(Vec<u8>, Vec<KeyInfo>)> {
        let listing = self.list()?;
        if let Some(d) = listing.damaged.into_iter().next() {
            return Err(damaged(
                Some(d.path.display().to_string()),
                format!("cannot back up a damaged key file: {}", d.error),
            ));
        }
        let infos: Vec<KeyInfo> = listing
            .keys
            .into_iter()
            .filter(|k| gun.is_none() || k.gun.is_none() || k.gun.as_ref() == gun)
            .collect();
        let mut keys = Vec::with_capacity(infos.len());
        for info in &infos {
            let bytes = fs::read(&info.path).map_err(Error::io("reading key file", &info.path))?;
            let file = String::from_utf8(bytes)
                .map_err(|_| Error::corrupt("it is not ASCII text").in_file(&info.path))?;
            keys.push(Entry {
                key_id: info.key_id.clone(),
                role: info.role,
                gun: info.gun.clone(),
                sha256: hex::encode(Sha256::digest(file.as_bytes())),
                file,
            });
        }
        let archive = Archive {
            format: FORMAT.into(),
            version: VERSION,
            keys,
        };
        let mut bytes = serde_json::to_vec_pretty(&archive)
            .map_err(|e| damaged(None, format!("encoding: {e}")))?;
        bytes.push(b'\n');
        Ok((bytes, infos))
    }

    /// Checks all of `archive`, then writes the keys the store does not have. Nothing is
    /// written if any entry is damaged.
    pub fn restore(&self, archive: &[u8]) -> Result<RestoreReport> {
        let entries = check_archive(archive)?;
        let mut report = RestoreReport::default();
        let mut to_write = Vec::new();
        for entry in entries {
            let path = self.path_of(&entry.key_id);
            match fs::read(&path) {
                Ok(existing) if existing == entry.file.as_bytes() => report.identical.push(entry),
                Ok(_) => report.kept_existing.push(entry),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => to_write.push(entry),
                Err(e) => return Err(Error::io("reading key file", &path)(e)),
            }
        }
        for entry in to_write {
            let path = self.path_of(&entry.key_id);
            write_atomically(&path, entry.file.as_bytes())?;
            report.restored.push(KeyInfo {
                key_id: entry.key_id,
                role: entry.role,
                gun: entry.gun,
                path,
            });
        }
        Ok(report)
    }
}

impl KeyStore {
    /// Imports one key file (as `notar key export` writes it) with the checks and the
    /// atomic write of [`KeyStore::restore`]: the report has it restored or skipped.
    pub fn import_key_file(&self, bytes: &[u8]) -> Result<RestoreReport> {
        let header = keyfile::read_header(bytes)?;
        let file = String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::corrupt("it is not ASCII text"))?;
        let archive = Archive {
            format: FORMAT.into(),
            version: VERSION,
            keys: vec![Entry {
                key_id: header.key_id,
                role: header.role,
                gun: header.gun,
                sha256: hex::encode(Sha256::digest(bytes)),
                file,
            }],
        };
        let bytes =
            serde_json::to_vec(&archive).map_err(|e| damaged(None, format!("encoding: {e}")))?;
        self.restore(&bytes)
    }
}

/// Parses `archive` and checks every entry; the first problem names its entry.
pub fn check_archive(archive: &[u8]) -> Result<Vec<Entry>> {
    if archive.len() > MAX_ARCHIVE_LEN {
        return Err(damaged(
            None,
            format!("larger than {MAX_ARCHIVE_LEN} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(archive).map_err(|e| {
        damaged(
            None,
            format!("not a notar key backup (truncated or not JSON): {e}"),
        )
    })?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(damaged(None, format!("its format is not {FORMAT:?}")));
    }
    if let Some(version) = value.get("version").and_then(|v| v.as_u64())
        && version != VERSION
    {
        return Err(damaged(
            None,
            format!("version {version}; this build reads version {VERSION}"),
        ));
    }
    // Entry by entry, so a bad one is named.
    let raw = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| damaged(None, "no keys list"))?;
    let mut entries: Vec<Entry> = Vec::with_capacity(raw.len());
    for (i, item) in raw.iter().enumerate() {
        let label = item
            .get("key_id")
            .and_then(|k| k.as_str())
            .map(|k| format!("{} ({k})", i + 1))
            .unwrap_or_else(|| (i + 1).to_string());
        let entry: Entry = serde_json::from_value(item.clone())
            .map_err(|e| damaged(Some(label.clone()), format!("malformed: {e}")))?;
        check_entry(&entry).map_err(|reason| damaged(Some(label.clone()), reason))?;
        if entries.iter().any(|e| e.key_id == entry.key_id) {
            return Err(damaged(Some(label), "the key appears twice"));
        }
        entries.push(entry);
    }
    let _: Archive =
        serde_json::from_value(value).map_err(|e| damaged(None, format!("malformed: {e}")))?;
    Ok(entries)
}

fn check_entry(entry: &Entry) -> std::result::Result<(), String> {
    if entry.file.len() > MAX_FILE_LEN {
        return Err(format!("the key file is larger than {MAX_FILE_LEN} bytes"));
    }
    if hex::encode(Sha256::digest(entry.file.as_bytes())) != entry.sha256 {
        return Err("the key file does not match its checksum (altered or truncated)".into());
    }
    let header = keyfile::read_header(entry.file.as_bytes()).map_err(|e| e.to_string())?;
    if header.key_id != entry.key_id || header.role != entry.role || header.gun != entry.gun {
        return Err(format!(
            "the manifest says {} key {} for {:?}, the key file's header says {} key {} for {:?}",
            entry.role,
            entry.key_id.short(),
            entry.gun.as_ref().map(Gun::as_str),
            header.role,
            header.key_id.short(),
            header.gun.as_ref().map(Gun::as_str),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::{KdfParams, PrivateKey};

    fn store_with_keys(dir: &std::path::Path, n: usize) -> KeyStore {
        let store = KeyStore::open(dir).expect("opens");
        for _ in 0..n {
            let key = PrivateKey::generate().expect("rng");
            store
                .save(&key, KeyRole::Root, None, "pass", KdfParams::for_tests())
                .expect("saves");
        }
        store
    }

    #[test]
    fn backup_restore_round_trips_and_skips_identical_keys() {
        let from = tempfile::tempdir().expect("dir");
        let store = store_with_keys(from.path(), 2);
        let (archive, infos) = store.backup(None).expect("backs up");
        assert_eq!(infos.len(), 2);
        let to = tempfile::tempdir().expect("dir");
        let target = KeyStore::open(to.path()).expect("opens");
        let report = target.restore(&archive).expect("restores");
        assert_eq!(report.restored.len(), 2);
        let key = target
            .load(&infos[0].key_id, "pass")
            .expect("restored key unlocks");
        assert_eq!(key.key_id(), &infos[0].key_id);
        let again = target.restore(&archive).expect("restores again");
        assert!(again.restored.is_empty());
        assert_eq!(again.identical.len(), 2);
    }

    #[test]
    fn damaged_archives_write_nothing_and_name_the_entry() {
        let from = tempfile::tempdir().expect("dir");
        let store = store_with_keys(from.path(), 2);
        let (archive, infos) = store.backup(None).expect("backs up");
        let text = String::from_utf8(archive.clone()).expect("utf-8");
        // One altered hex digit in the second key's body.
        let second = &infos[1].key_id;
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let file = value["keys"][1]["file"].as_str().expect("file").to_owned();
        let altered = format!("{}0\n", &file[..file.len() - 2]);
        let altered = if altered == file {
            format!("{}1\n", &file[..file.len() - 2])
        } else {
            altered
        };
        value["keys"][1]["file"] = altered.into();
        let to = tempfile::tempdir().expect("dir");
        let target = KeyStore::open(to.path()).expect("opens");
        let err = target
            .restore(&serde_json::to_vec(&value).expect("json"))
            .expect_err("altered");
        assert!(err.to_string().contains(second.as_str()), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(
            target.list().expect("lists").keys.is_empty(),
            "nothing written"
        );
        // Truncated.
        let err = target
            .restore(&archive[..archive.len() / 2])
            .expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(
            target.list().expect("lists").keys.is_empty(),
            "nothing written"
        );
    }
}
