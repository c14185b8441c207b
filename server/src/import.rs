//! Importing a Notary server (its PostgreSQL or MySQL database): every repository of its
//! `tuf_files` table, every version of
//! every role byte for byte (so clients' caches and pinned checksums stay valid), and its
//! `changefeed`.
//!
//! Everything is read and checked before anything is written: each row's GUN and role
//! name, its `sha256` column against its bytes, its bytes as metadata of its role (in the
//! Notary dialect or TUF 1.0, one dialect per repository) whose version is the row's. The
//! first damaged row stops the import and is named. Then [`SqlStore::import_as`] writes it
//! all in one transaction.
//!
//! The server-held timestamp and snapshot keys live in notary-signer's database
//! (`private_keys`), each encrypted as a JWE under the passphrase of its alias. Given that
//! database and the passphrases (`NOTARY_SIGNER_<ALIAS>`, as notary-signer reads them),
//! [`plan_keys`] opens every key of an imported repository ([`crate::jwe`]), checks that it
//! is the key its row names, and the server keeps it as its own managed key: repositories
//! go on updating without their owners re-signing anything. Without it, imported
//! repositories are served but not updated until an owner moves the keys here
//! (`notary key rotate <gun> timestamp -r`, and `snapshot -r` where the server held it).

use std::collections::BTreeMap;

use bytes::Bytes;
use notar_tuf::notary::{Dialect, parse_either};
use notar_tuf::{Expiry, Gun, Role, RoleName, RoleType, Root, Snapshot, Targets, Timestamp};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::store::ChangeCategory;
use crate::store::sql::{ImportedChange, ImportedFile, ImportedRepo};

/// One row of Notary's `tuf_files`.
#[derive(Clone, Debug)]
pub struct NotaryFile {
    pub id: i64,
    pub created: i64,
    pub gun: String,
    pub role: String,
    pub version: i64,
    pub data: Vec<u8>,
    pub sha256: Option<String>,
}

/// One row of Notary's `changefeed`.
#[derive(Clone, Debug)]
pub struct NotaryChange {
    pub id: i64,
    pub created: i64,
    pub gun: String,
    pub version: i64,
    pub sha256: String,
    pub category: String,
}

/// Why an import stopped; nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("reading the Notary database: {0}")]
    Source(#[from] sqlx::Error),
    #[error("{table} row {id}: {reason}")]
    Damaged {
        table: &'static str,
        id: i64,
        reason: String,
    },
}

fn damaged(table: &'static str, id: i64, reason: impl Into<String>) -> ImportError {
    ImportError::Damaged {
        table,
        id,
        reason: reason.into(),
    }
}

/// The database engines Notary ran on whose databases can be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Engine {
    /// The engine of a database URL (`postgres://`, `postgresql://`, `mysql://`), if it is
    /// one Notary ran on.
    pub fn of_url(url: &str) -> Option<Engine> {
        let scheme = url.split("://").next()?;
        match scheme {
            "postgres" | "postgresql" => Some(Engine::Postgres),
            "mysql" => Some(Engine::Mysql),
            _ => None,
        }
    }

    /// SQL for `column` as a signed 64-bit integer.
    fn int(self, column: &str) -> String {
        match self {
            Engine::Postgres => format!("CAST({column} AS BIGINT)"),
            Engine::Mysql => format!("CAST({column} AS SIGNED)"),
        }
    }

    /// SQL for a `char(n)` column as text (sqlx's Any driver reads no PostgreSQL `bpchar`).
    fn text(self, column: &str) -> String {
        match self {
            Engine::Postgres => format!("CAST({column} AS TEXT)"),
            Engine::Mysql => column.to_owned(),
        }
    }

    /// SQL for the Unix time of `column`, 0 where it is null.
    fn epoch(self, column: &str) -> String {
        match self {
            Engine::Postgres => {
                format!("COALESCE(CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT), 0)")
            }
            Engine::Mysql => format!("COALESCE(CAST(UNIX_TIMESTAMP({column}) AS SIGNED), 0)"),
        }
    }
}

/// A single connection to a Notary database (through sqlx's Any driver, so one reader
/// serves both engines; only the SQL for integers and times differs).
async fn connect(url: &str) -> Result<(Engine, sqlx::AnyPool), ImportError> {
    let engine = Engine::of_url(url).ok_or_else(|| {
        ImportError::Source(sqlx::Error::Configuration(
            "only PostgreSQL (postgres://) and MySQL (mysql://) databases of Notary can be imported"
                .into(),
        ))
    })?;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    Ok((engine, pool))
}

/// Reads the live rows of a Notary server's database (`deleted_at IS NULL`), PostgreSQL or
/// MySQL, in the order they were written.
pub async fn read_server(url: &str) -> Result<(Vec<NotaryFile>, Vec<NotaryChange>), ImportError> {
    let (engine, pool) = connect(url).await?;
    let files = sqlx::query(&format!(
        "SELECT {} AS id, {} AS created, gun, role, {} AS version, data, {} AS sha256 \
         FROM tuf_files WHERE deleted_at IS NULL ORDER BY id",
        engine.int("id"),
        engine.epoch("created_at"),
        engine.int("version"),
        engine.text("sha256"),
    ))
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|row| {
        Ok(NotaryFile {
            id: row.try_get("id")?,
            created: row.try_get("created")?,
            gun: row.try_get("gun")?,
            role: row.try_get("role")?,
            version: row.try_get("version")?,
            data: row.try_get("data")?,
            sha256: row.try_get("sha256")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let changes = sqlx::query(&format!(
        "SELECT {} AS id, {} AS created, gun, {} AS version, COALESCE({}, '') AS sha256, \
         category FROM changefeed ORDER BY id",
        engine.int("id"),
        engine.epoch("created_at"),
        engine.int("version"),
        engine.text("sha256"),
    ))
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|row| {
        Ok(NotaryChange {
            id: row.try_get("id")?,
            created: row.try_get("created")?,
            gun: row.try_get("gun")?,
            version: row.try_get("version")?,
            sha256: row.try_get("sha256")?,
            category: row.try_get("category")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    pool.close().await;
    Ok((files, changes))
}

/// One row of notary-signer's `private_keys`.
#[derive(Clone)]
pub struct SignerKey {
    pub id: i64,
    pub key_id: String,
    pub algorithm: String,
    pub passphrase_alias: String,
    pub gun: String,
    pub role: String,
    pub private: Vec<u8>,
    pub created: i64,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerKey")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("gun", &self.gun)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Reads the live keys of notary-signer's database, PostgreSQL or MySQL.
pub async fn read_signer(url: &str) -> Result<Vec<SignerKey>, ImportError> {
    let (engine, pool) = connect(url).await?;
    let keys = sqlx::query(&format!(
        "SELECT {} AS id, key_id, algorithm, passphrase_alias, gun, role, private, {} AS created \
         FROM private_keys WHERE deleted_at IS NULL ORDER BY id",
        engine.int("id"),
        engine.epoch("created_at"),
    ))
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|row| {
        Ok(SignerKey {
            id: row.try_get("id")?,
            key_id: row.try_get("key_id")?,
            algorithm: row.try_get("algorithm")?,
            passphrase_alias: row.try_get("passphrase_alias")?,
            gun: row.try_get("gun")?,
            role: row.try_get("role")?,
            private: row.try_get("private")?,
            created: row.try_get("created")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    pool.close().await;
    Ok(keys)
}

/// A server-held key of an imported repository, opened.
#[derive(Debug)]
pub struct ImportedKey {
    pub gun: Gun,
    pub role: crate::path::ManagedRole,
    pub key: notar_keys::PrivateKey,
    pub created: time::OffsetDateTime,
}

/// Opens the timestamp and snapshot keys of the repositories in `plan` with the passphrase
/// `passphrase` gives for each alias. A key that does not open, or opens to another key
/// than its row names, stops the import and is named; keys of other repositories are left.
pub fn plan_keys(
    keys: Vec<SignerKey>,
    passphrase: impl Fn(&str) -> Option<zeroize::Zeroizing<String>>,
    plan: &Plan,
) -> Result<Vec<ImportedKey>, ImportError> {
    let mut out = Vec::new();
    for row in keys {
        let bad = |reason: String| damaged("private_keys", row.id, reason);
        let Some(gun) = plan
            .repos
            .iter()
            .map(|r| &r.gun)
            .find(|g| g.as_str() == row.gun)
        else {
            continue;
        };
        let role = match row.role.as_str() {
            "timestamp" => crate::path::ManagedRole::Timestamp,
            "snapshot" => crate::path::ManagedRole::Snapshot,
            _ => continue,
        };
        let secret = passphrase(&row.passphrase_alias).ok_or_else(|| {
            bad(format!(
                "no passphrase for its alias {:?}: set NOTARY_SIGNER_{}",
                row.passphrase_alias,
                row.passphrase_alias.to_ascii_uppercase()
            ))
        })?;
        let compact = std::str::from_utf8(&row.private)
            .map_err(|_| bad("the private key is not a compact JWE".into()))?;
        let plain = crate::jwe::decrypt(compact, &secret).map_err(|e| bad(e.to_string()))?;
        let key = match row.algorithm.as_str() {
            "ecdsa" => notar_keys::PrivateKey::p256_from_sec1_der(&plain),
            "ed25519" => notar_keys::PrivateKey::ed25519_from_bytes(&plain),
            other => {
                return Err(bad(format!(
                    "a {other} key; ecdsa and ed25519 are imported"
                )));
            }
        }
        .map_err(|e| bad(e.to_string()))?;
        let notary_id = notar_tuf::notary::notary_key(&key.public_key())
            .map(|k| k.key_id())
            .map_err(|e| bad(e.to_string()))?;
        if notary_id.as_str() != row.key_id {
            return Err(bad(format!(
                "it opens to key {notary_id}, not to the key {} its row names",
                row.key_id
            )));
        }
        out.push(ImportedKey {
            gun: gun.clone(),
            role,
            key,
            created: time::OffsetDateTime::from_unix_timestamp(row.created)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        });
    }
    Ok(out)
}

/// What an import brings, per repository, checked.
#[derive(Debug)]
pub struct Plan {
    pub repos: Vec<ImportedRepo>,
    /// The dialect of each repository that has files.
    pub dialects: BTreeMap<Gun, Dialect>,
}

impl Plan {
    pub fn files(&self) -> usize {
        self.repos.iter().map(|r| r.files.len()).sum()
    }

    pub fn changes(&self) -> usize {
        self.repos.iter().map(|r| r.changes.len()).sum()
    }
}

/// Checks every row and groups them by repository, oldest first. The first damaged row
/// is the error.
pub fn plan(files: Vec<NotaryFile>, changes: Vec<NotaryChange>) -> Result<Plan, ImportError> {
    let mut repos: BTreeMap<Gun, ImportedRepo> = BTreeMap::new();
    let mut dialects: BTreeMap<Gun, Dialect> = BTreeMap::new();
    fn repo_of(repos: &mut BTreeMap<Gun, ImportedRepo>, gun: Gun) -> &mut ImportedRepo {
        repos.entry(gun.clone()).or_insert_with(|| ImportedRepo {
            gun,
            files: Vec::new(),
            changes: Vec::new(),
        })
    }
    for row in files {
        let bad = |reason: String| damaged("tuf_files", row.id, reason);
        let gun = Gun::new(&row.gun).map_err(|e| bad(format!("GUN {:?}: {e}", row.gun)))?;
        let role =
            RoleName::new(&row.role).map_err(|e| bad(format!("role {:?}: {e}", row.role)))?;
        let version = u64::try_from(row.version)
            .ok()
            .and_then(|v| notar_tuf::Version::new(v).ok())
            .ok_or_else(|| bad(format!("version {} is not a metadata version", row.version)))?;
        let actual = hex::encode(Sha256::digest(&row.data));
        match row.sha256.as_deref().map(str::trim) {
            Some(stored) if stored.eq_ignore_ascii_case(&actual) => {}
            Some(stored) => {
                return Err(bad(format!(
                    "the sha256 column {stored} is not the hash of its data ({actual})"
                )));
            }
            None => return Err(bad("no sha256".into())),
        }
        let data = Bytes::from(row.data);
        let (dialect, parsed_version, expires) = read_role(&role, data.clone())
            .map_err(|e| bad(format!("{role} does not parse: {e}")))?;
        if parsed_version != version {
            return Err(bad(format!(
                "the version column is {version}, the metadata says {parsed_version}"
            )));
        }
        match dialects.get(&gun) {
            Some(fixed) if *fixed != dialect => {
                return Err(bad(format!(
                    "{role} of {gun} is written in {dialect}, the repository's earlier files in {fixed}"
                )));
            }
            Some(_) => {}
            None => {
                dialects.insert(gun.clone(), dialect);
            }
        }
        repo_of(&mut repos, gun).files.push(ImportedFile {
            role,
            version,
            data,
            expires: expires.datetime(),
            created: row.created,
        });
    }
    for change in changes {
        let bad = |reason: String| damaged("changefeed", change.id, reason);
        let gun = Gun::new(&change.gun).map_err(|e| bad(format!("GUN {:?}: {e}", change.gun)))?;
        let category = match change.category.as_str() {
            "update" => ChangeCategory::Update,
            "deletion" => ChangeCategory::Deletion,
            other => return Err(bad(format!("unknown category {other:?}"))),
        };
        repo_of(&mut repos, gun).changes.push(ImportedChange {
            created: change.created,
            version: change.version,
            sha256: change.sha256.trim().to_owned(),
            category,
        });
    }
    Ok(Plan {
        repos: repos.into_values().collect(),
        dialects,
    })
}

fn read_role(
    role: &RoleName,
    data: Bytes,
) -> Result<(Dialect, notar_tuf::Version, Expiry), notar_tuf::Error> {
    fn facts<T: Role + 'static>(
        data: Bytes,
    ) -> Result<(Dialect, notar_tuf::Version, Expiry), notar_tuf::Error> {
        let (dialect, signed) = parse_either::<T>(data.to_vec())?;
        let role = signed.untrusted();
        Ok((dialect, role.version(), role.expires()))
    }
    match role.top_level() {
        Some(RoleType::Root) => facts::<Root>(data),
        Some(RoleType::Snapshot) => facts::<Snapshot>(data),
        Some(RoleType::Timestamp) => facts::<Timestamp>(data),
        Some(RoleType::Targets) | None => facts::<Targets>(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tuf/tests/fixtures/notary-0.7/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn row(id: i64, role: &str, version: i64, data: Vec<u8>) -> NotaryFile {
        NotaryFile {
            id,
            created: 1_700_000_000 + id,
            gun: "example.com/lab/repo1".into(),
            role: role.into(),
            version,
            sha256: Some(hex::encode(Sha256::digest(&data))),
            data,
        }
    }

    fn rows() -> Vec<NotaryFile> {
        vec![
            row(1, "root", 1, fixture("r1_after_first_publish_root")),
            row(2, "targets", 2, fixture("r1_after_first_publish_targets")),
            row(3, "snapshot", 2, fixture("r1_after_first_publish_snapshot")),
            row(
                4,
                "timestamp",
                1,
                fixture("r1_after_first_publish_timestamp"),
            ),
        ]
    }

    #[test]
    fn a_notary_repository_is_planned_byte_for_byte() {
        let plan = plan(rows(), Vec::new()).expect("plan");
        assert_eq!(plan.files(), 4);
        let repo = &plan.repos[0];
        assert_eq!(repo.gun.as_str(), "example.com/lab/repo1");
        assert_eq!(
            &repo.files[1].data[..],
            &fixture("r1_after_first_publish_targets")[..]
        );
        assert_eq!(plan.dialects[&repo.gun], Dialect::Notary);
    }

    #[test]
    fn each_kind_of_damage_names_its_row() {
        let mut wrong_hash = rows();
        wrong_hash[2].sha256 = Some("0".repeat(64));
        let mut wrong_version = rows();
        wrong_version[1].version = 3;
        let mut garbage = rows();
        garbage[3].data = b"{not json".to_vec();
        garbage[3].sha256 = Some(hex::encode(Sha256::digest(&garbage[3].data)));
        let mut bad_gun = rows();
        bad_gun[0].gun = "UPPER/case".into();
        let mut wrong_role = rows();
        wrong_role[1].role = "timestamp".into();
        for (rows, id, needle) in [
            (wrong_hash, 3, "is not the hash of its data"),
            (wrong_version, 2, "the version column is 3"),
            (garbage, 4, "does not parse"),
            (bad_gun, 1, "GUN"),
            (wrong_role, 2, "does not parse"),
        ] {
            let err = plan(rows, Vec::new()).expect_err("damaged");
            let text = err.to_string();
            assert!(text.starts_with(&format!("tuf_files row {id}: ")), "{text}");
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let change = NotaryChange {
            id: 9,
            created: 0,
            gun: "example.com/lab/repo1".into(),
            version: 1,
            sha256: String::new(),
            category: "rename".into(),
        };
        let err = plan(rows(), vec![change]).expect_err("bad category");
        assert_eq!(
            err.to_string(),
            "changefeed row 9: unknown category \"rename\""
        );
    }
}
