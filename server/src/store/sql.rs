//! [`Store`] on SQLite or PostgreSQL through sqlx's `Any` driver: one set of queries (with
//! `$N` placeholders, which both accept) serves both databases; [`Dialect`] marks the few
//! places where they must differ (connection set-up, migrations, one lock).
//!
//! Only `i64`, text and bytes cross the `Any` driver, so times are stored as unix seconds
//! and versions as `i64`.

use async_trait::async_trait;
use bytes::Bytes;
use notar_tuf::{Gun, RoleName, Version};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, Row};
use time::OffsetDateTime;

use crate::audit::{AuditRecord, Origin};

use super::{
    Change, ChangeCategory, ChangeQuery, MetaHead, NewMeta, SealedIssuerKey, Store, StoreError,
    StoredKey, StoredMeta, StoredProposal,
};

/// Pool size for SQLite when none is given: one writer at a time anyway, a few readers.
pub const DEFAULT_SQLITE_CONNECTIONS: u32 = 8;
/// Pool size for PostgreSQL when none is given, per server process.
pub const DEFAULT_POSTGRES_CONNECTIONS: u32 = 16;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// The columns [`meta_from_row`] reads.
const META_COLUMNS: &str = "role, version, sha256, data, expires_at, created_at";
/// The columns [`key_from_row`] reads.
const KEY_COLUMNS: &str = "gun, role, key_id, encrypted, created_at";
/// The columns [`change_from_row`] reads.
const CHANGE_COLUMNS: &str = "id, created_at, gun, version, sha256, category, actor";

/// Which database is behind the pool, where the SQL must differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(config_error(
                "database URL must start with sqlite:// or postgres://",
            ))
        }
    }
}

/// The SQL store: a connection pool and the dialect behind it. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Connections to the database, through the `Any` driver.
    pool: AnyPool,
    /// Which database that is.
    dialect: Dialect,
}

impl SqlStore {
    /// The newest version of each role of `gun`: role, version, expiry and time stored,
    /// with `more` columns (`t.`-prefixed, each followed by `, `) before them.
    async fn newest_of_each_role(&self, gun: &Gun, more: &str) -> Result<Vec<AnyRow>, StoreError> {
        let sql = format!(
            "SELECT {more}t.role, t.version, t.expires_at, t.created_at FROM tuf_files t \
             JOIN (SELECT role, MAX(version) AS newest FROM tuf_files WHERE gun = $1 \
                   GROUP BY role) n \
               ON t.role = n.role AND t.version = n.newest \
             WHERE t.gun = $1 ORDER BY t.role"
        );
        Ok(sqlx::query(&sql)
            .bind(gun.as_str())
            .fetch_all(&self.pool)
            .await?)
    }

    /// Connects to `sqlite://PATH` (the file is created if missing) or `postgres://…` with
    /// the default pool size, and applies the schema's migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let max_connections = match Dialect::of(url)? {
            Dialect::Sqlite => DEFAULT_SQLITE_CONNECTIONS,
            Dialect::Postgres => DEFAULT_POSTGRES_CONNECTIONS,
        };
        Self::connect_with(url, max_connections).await
    }

    /// [`SqlStore::connect`] with at most `max_connections` connections in the pool.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url)?;
        let url = match dialect {
            Dialect::Sqlite => sqlite_url(url)?,
            Dialect::Postgres => url.to_owned(),
        };
        let options: AnyConnectOptions = url.parse()?;

        let pool_options = AnyPoolOptions::new().max_connections(max_connections.max(1));
        let pool = match dialect {
            Dialect::Sqlite => {
                // WAL is a property of the database file, and switching to it takes an
                // exclusive lock that the busy timeout does not wait for: do it once, on
                // one connection, before the pool opens several.
                let mut conn = options.connect().await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.close().await?;
                pool_options
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // sqlx-sqlite sets the busy timeout and foreign keys already;
                            // restated here because the store's correctness rests on them.
                            conn.execute(SQLITE_SESSION_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Dialect::Postgres => pool_options.connect_with(options).await?,
        };
        match dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(SqlStore { pool, dialect })
    }

    /// Writes a consistent copy of a SQLite database to `path` while it serves (`VACUUM
    /// INTO`). PostgreSQL is backed up with its own tools (`pg_dump`).
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Err(StoreError::Unsupported(
                "back PostgreSQL up with pg_dump (see the README); this copies SQLite only".into(),
            ));
        }
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Unsupported("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes every connection of the pool, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes repositories imported from another server, every version of every role as
    /// it was stored there, with their change logs, in one transaction: all or nothing. A
    /// repository that has trust data here already makes the whole import fail.
    pub async fn import_as(
        &self,
        repos: &[ImportedRepo],
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for repo in repos {
            let gun = &repo.gun;
            let existing = sqlx::query("SELECT id FROM tuf_files WHERE gun = $1 LIMIT 1")
                .bind(gun.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if existing.is_some() {
                return Err(StoreError::Unsupported(format!(
                    "{gun} has trust data on this server already: nothing was imported"
                )));
            }
            for file in &repo.files {
                sqlx::query(
                    "INSERT INTO tuf_files \
                     (gun, role, version, sha256, data, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(gun.as_str())
                .bind(file.role.as_str())
                .bind(to_i64(file.version.get(), "version")?)
                .bind(hex::encode(Sha256::digest(&file.data)))
                .bind(&file.data[..])
                .bind(file.expires.unix_timestamp())
                .bind(file.created)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(gun, e))?;
            }
            for change in &repo.changes {
                sqlx::query(
                    "INSERT INTO changes (created_at, gun, version, sha256, category, actor) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(change.created)
                .bind(gun.as_str())
                .bind(change.version)
                .bind(change.sha256.as_str())
                .bind(change.category.as_str())
                .bind(origin.actor.as_deref())
                .execute(&mut *tx)
                .await?;
            }
            let details = vec![serde_json::json!({
                "files": repo.files.len(),
                "changes": repo.changes.len(),
            })];
            self.append_audit(&mut tx, gun, "import", details, origin, &[])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A repository as another server stored it, for [`SqlStore::import_as`].
#[derive(Debug)]
pub struct ImportedRepo {
    pub gun: Gun,
    /// Every version of every role, oldest first.
    pub files: Vec<ImportedFile>,
    /// Its change log, oldest first.
    pub changes: Vec<ImportedChange>,
}

/// One stored version of one role: the exact bytes, and when it was stored (unix seconds).
#[derive(Debug)]
pub struct ImportedFile {
    pub role: RoleName,
    pub version: Version,
    pub data: Bytes,
    pub expires: OffsetDateTime,
    pub created: i64,
}

/// One change log entry (unix seconds).
#[derive(Debug)]
pub struct ImportedChange {
    pub created: i64,
    pub version: i64,
    pub sha256: String,
    pub category: ChangeCategory,
}

/// Per-connection SQLite settings: wait up to 5 s for another writer instead of failing
/// with `SQLITE_BUSY`; enforce foreign keys; with WAL, `NORMAL` is durable against crashes
/// of the process and loses at most the last commits on power loss.
const SQLITE_SESSION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// `url` with `mode=rwc` (create the file if missing) unless it names a mode. In-memory
/// databases are refused: the `Any` driver re-parses the URL for every connection of the
/// pool, so each would get a database of its own.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    if path.ends_with(":memory:") || params.contains(&("mode", "memory")) {
        return Err(config_error(
            "in-memory SQLite is not supported: every pooled connection would see its own database",
        ));
    }
    if params.iter().any(|(k, _)| *k == "mode") {
        Ok(url.to_owned())
    } else if query.is_empty() {
        Ok(format!("{path}?mode=rwc"))
    } else {
        Ok(format!("{path}?{query}&mode=rwc"))
    }
}

fn config_error(message: &'static str) -> StoreError {
    StoreError::Database(sqlx::Error::Configuration(message.into()))
}

/// A unique violation while writing `gun` is a concurrent writer's win; anything else is a
/// database error.
fn conflict_or(gun: &Gun, error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::VersionConflict {
            gun: gun.to_string(),
        },
        _ => StoreError::Database(error),
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{what} {value} does not fit the database")))
}

fn time_from(secs: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| StoreError::Corrupt(format!("{column} {secs}: {e}")))
}

fn role_from(name: String) -> Result<RoleName, StoreError> {
    RoleName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn gun_from(name: String) -> Result<Gun, StoreError> {
    Gun::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Deletes, inside `tx`, every proposal of `gun` that carries one of `roles`: an update of a
/// role, or a newer proposal of it, leaves the old proposal nothing to stand on.
async fn drop_proposals_of_roles(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gun: &Gun,
    roles: &[&str],
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT id, roles FROM proposals WHERE gun = $1")
        .bind(gun.as_str())
        .fetch_all(&mut **tx)
        .await?;
    for row in rows {
        let theirs: String = row.try_get("roles")?;
        if theirs.split_whitespace().any(|r| roles.contains(&r)) {
            let id: String = row.try_get("id")?;
            sqlx::query("DELETE FROM proposals WHERE gun = $1 AND id = $2")
                .bind(gun.as_str())
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        created: row.try_get("created_at")?,
        action: row.try_get("action")?,
        actor: row.try_get("actor")?,
        gun: row.try_get("gun")?,
        details: row.try_get("details")?,
        remote: row.try_get("remote")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn head_from_row(row: &AnyRow) -> Result<MetaHead, StoreError> {
    let version: i64 = row.try_get("version")?;
    let version = u64::try_from(version)
        .ok()
        .and_then(|v| Version::new(v).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("version {version}")))?;
    Ok(MetaHead {
        role: role_from(row.try_get("role")?)?,
        version,
        expires: time_from(row.try_get("expires_at")?, "expires_at")?,
        created: time_from(row.try_get("created_at")?, "created_at")?,
    })
}

fn meta_from_row(row: &AnyRow) -> Result<StoredMeta, StoreError> {
    let head = head_from_row(row)?;
    Ok(StoredMeta {
        role: head.role,
        version: head.version,
        sha256: row.try_get("sha256")?,
        data: Bytes::from(row.try_get::<Vec<u8>, _>("data")?),
        expires: head.expires,
        created: head.created,
    })
}

fn key_from_row(row: &AnyRow) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        gun: gun_from(row.try_get("gun")?)?,
        role: role_from(row.try_get("role")?)?,
        key_id: row.try_get("key_id")?,
        encrypted: row.try_get("encrypted")?,
        created: time_from(row.try_get("created_at")?, "created_at")?,
    })
}

fn change_from_row(row: &AnyRow) -> Result<Change, StoreError> {
    let version: i64 = row.try_get("version")?;
    let category: String = row.try_get("category")?;
    Ok(Change {
        id: row.try_get("id")?,
        created: time_from(row.try_get("created_at")?, "created_at")?,
        gun: row.try_get("gun")?,
        version: u64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("change version {version}")))?,
        sha256: row.try_get("sha256")?,
        category: match category.as_str() {
            "update" => ChangeCategory::Update,
            "deletion" => ChangeCategory::Deletion,
            other => return Err(StoreError::Corrupt(format!("change category {other:?}"))),
        },
        actor: row.try_get("actor")?,
    })
}

impl SqlStore {
    /// The first (`ASC`) or last (`DESC`) server key written.
    async fn edge_key(&self, order: &'static str) -> Result<Option<StoredKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM server_keys ORDER BY id {order} LIMIT 1");
        sqlx::query(&sql)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    /// Appends the audit record of a write, and its changefeed rows, at the end of the
    /// write's transaction. On PostgreSQL an advisory lock makes appends (and the change
    /// IDs given out with them) one at a time across servers until the transaction ends,
    /// so IDs become visible in order; SQLite's one writer already does.
    async fn append_audit(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        gun: &Gun,
        action: &str,
        details: Vec<serde_json::Value>,
        origin: &Origin,
        changes: &[(i64, String, ChangeCategory)],
    ) -> Result<(), StoreError> {
        if self.dialect == Dialect::Postgres {
            sqlx::query(
                "SELECT COUNT(*) AS locked FROM pg_advisory_xact_lock(hashtextextended($1, 0))",
            )
            .bind("notar audit log")
            .fetch_one(&mut **tx)
            .await?;
        }
        let created = now();
        for (version, sha256, category) in changes {
            sqlx::query(
                "INSERT INTO changes (created_at, gun, version, sha256, category, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(created)
            .bind(gun.as_str())
            .bind(*version)
            .bind(sha256.as_str())
            .bind(category.as_str())
            .bind(origin.actor.as_deref())
            .execute(&mut **tx)
            .await?;
        }
        let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
        let (prev_id, prev_hash) = match last {
            Some(row) => (
                row.try_get::<i64, _>("id")?,
                row.try_get::<String, _>("hash")?,
            ),
            None => (0, crate::audit::GENESIS.to_owned()),
        };
        let mut record = AuditRecord {
            id: prev_id + 1,
            created,
            action: action.to_owned(),
            actor: origin.actor.clone(),
            gun: gun.to_string(),
            details: serde_json::Value::Array(details).to_string(),
            remote: origin.remote.clone(),
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.expected_hash();
        sqlx::query(
            "INSERT INTO audit_log \
             (id, created_at, action, actor, gun, details, remote, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.id)
        .bind(record.created)
        .bind(record.action.as_str())
        .bind(record.actor.as_deref())
        .bind(record.gun.as_str())
        .bind(record.details.as_str())
        .bind(record.remote.as_deref())
        .bind(record.prev_hash.as_str())
        .bind(record.hash.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn current(&self, gun: &Gun, role: &RoleName) -> Result<Option<StoredMeta>, StoreError> {
        let sql = format!(
            "SELECT {META_COLUMNS} FROM tuf_files WHERE gun = $1 AND role = $2 \
             ORDER BY version DESC LIMIT 1"
        );
        sqlx::query(&sql)
            .bind(gun.as_str())
            .bind(role.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(meta_from_row)
            .transpose()
    }

    async fn current_all(&self, gun: &Gun) -> Result<Vec<StoredMeta>, StoreError> {
        self.newest_of_each_role(gun, "t.sha256, t.data, ")
            .await?
            .iter()
            .map(meta_from_row)
            .collect()
    }

    async fn current_heads(&self, gun: &Gun) -> Result<Vec<MetaHead>, StoreError> {
        self.newest_of_each_role(gun, "")
            .await?
            .iter()
            .map(head_from_row)
            .collect()
    }

    async fn by_version(
        &self,
        gun: &Gun,
        role: &RoleName,
        version: Version,
    ) -> Result<Option<StoredMeta>, StoreError> {
        let sql = format!(
            "SELECT {META_COLUMNS} FROM tuf_files WHERE gun = $1 AND role = $2 AND version = $3"
        );
        sqlx::query(&sql)
            .bind(gun.as_str())
            .bind(role.as_str())
            .bind(to_i64(version.get(), "version")?)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(meta_from_row)
            .transpose()
    }

    async fn by_checksum(
        &self,
        gun: &Gun,
        role: &RoleName,
        sha256: &str,
    ) -> Result<Option<StoredMeta>, StoreError> {
        let sql = format!(
            "SELECT {META_COLUMNS} FROM tuf_files WHERE gun = $1 AND role = $2 AND sha256 = $3 \
             ORDER BY version DESC LIMIT 1"
        );
        sqlx::query(&sql)
            .bind(gun.as_str())
            .bind(role.as_str())
            .bind(sha256.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(meta_from_row)
            .transpose()
    }

    async fn commit_as(
        &self,
        gun: &Gun,
        files: &[NewMeta],
        origin: &Origin,
    ) -> Result<(), StoreError> {
        // Insert in one order, so two PostgreSQL transactions racing on the same rows wait
        // for each other instead of deadlocking, and the loser sees a unique violation.
        let mut files: Vec<&NewMeta> = files.iter().collect();
        files.sort_by(|a, b| (&a.role, a.version).cmp(&(&b.role, b.version)));
        let created = now();

        let mut tx = self.pool.begin().await?;
        let mut changes = Vec::new();
        let mut written = Vec::new();
        let written_roles: Vec<RoleName> = files
            .iter()
            .filter(|f| f.role != RoleName::timestamp())
            .map(|f| f.role.clone())
            .collect();
        for file in files {
            let version = to_i64(file.version.get(), "version")?;
            let sha256 = hex::encode(Sha256::digest(&file.data));
            sqlx::query(
                "INSERT INTO tuf_files \
                 (gun, role, version, sha256, data, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(gun.as_str())
            .bind(file.role.as_str())
            .bind(version)
            .bind(&sha256)
            .bind(&file.data[..])
            .bind(file.expires.unix_timestamp())
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(gun, e))?;
            if file.role.is_delegated() {
                sqlx::query("DELETE FROM pending_delegations WHERE gun = $1 AND role = $2")
                    .bind(gun.as_str())
                    .bind(file.role.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            if file.role == RoleName::timestamp() {
                changes.push((version, sha256.clone(), ChangeCategory::Update));
            }
            written.push(serde_json::json!({
                "role": file.role.as_str(),
                "version": file.version.get(),
                "sha256": sha256,
            }));
        }
        let stored: Vec<&str> = written_roles.iter().map(RoleName::as_str).collect();
        drop_proposals_of_roles(&mut tx, gun, &stored).await?;
        let action = if origin.is_server() {
            "resign"
        } else {
            "update"
        };
        self.append_audit(&mut tx, gun, action, written, origin, &changes)
            .await
            .map_err(|e| match e {
                StoreError::Database(e) => conflict_or(gun, e),
                other => other,
            })?;
        tx.commit().await.map_err(|e| conflict_or(gun, e))?;
        Ok(())
    }

    async fn delete_as(&self, gun: &Gun, origin: &Origin) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let files = sqlx::query("DELETE FROM tuf_files WHERE gun = $1")
            .bind(gun.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM server_keys WHERE gun = $1")
            .bind(gun.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pending_delegations WHERE gun = $1")
            .bind(gun.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM proposals WHERE gun = $1")
            .bind(gun.as_str())
            .execute(&mut *tx)
            .await?;
        if files > 0 {
            let deletion = [(0, String::new(), ChangeCategory::Deletion)];
            self.append_audit(&mut tx, gun, "delete", Vec::new(), origin, &deletion)
                .await?;
        }
        tx.commit().await?;
        Ok(files > 0)
    }

    async fn changes(
        &self,
        gun: Option<&Gun>,
        query: ChangeQuery,
    ) -> Result<Vec<Change>, StoreError> {
        let (bound, order, limit) = match query {
            ChangeQuery::After { after, limit } => (Some((">", after)), "ASC", limit),
            ChangeQuery::Before { before, limit } => (before.map(|b| ("<", b)), "DESC", limit),
        };
        let mut conditions = Vec::new();
        let mut n = 0;
        if gun.is_some() {
            n += 1;
            conditions.push(format!("gun = ${n}"));
        }
        if let Some((op, _)) = bound {
            n += 1;
            conditions.push(format!("id {op} ${n}"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM changes {filter} ORDER BY id {order} LIMIT ${}",
            n + 1
        );

        let mut q = sqlx::query(&sql);
        if let Some(gun) = gun {
            q = q.bind(gun.as_str());
        }
        if let Some((_, id)) = bound {
            q = q.bind(id);
        }
        let mut changes = q
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(change_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if order == "DESC" {
            changes.reverse();
        }
        Ok(changes)
    }

    async fn prune(&self, gun: &Gun, keep: u64, origin: &Origin) -> Result<u64, StoreError> {
        let keep = to_i64(keep.max(1), "keep")?;
        let mut tx = self.pool.begin().await?;
        // The current version of every role is the newest, and the current snapshot and
        // timestamp pin only current versions: keeping the newest `keep` (at least one)
        // keeps everything a client can still be sent.
        let removed = sqlx::query(
            "DELETE FROM tuf_files WHERE gun = $1 AND role <> 'root' AND version <= \
             (SELECT MAX(n.version) FROM tuf_files n \
              WHERE n.gun = tuf_files.gun AND n.role = tuf_files.role) - $2",
        )
        .bind(gun.as_str())
        .bind(keep)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed > 0 {
            let details = vec![serde_json::json!({ "kept_per_role": keep, "removed": removed })];
            self.append_audit(&mut tx, gun, "prune", details, origin, &[])
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn guns(&self) -> Result<Vec<Gun>, StoreError> {
        sqlx::query("SELECT DISTINCT gun FROM tuf_files ORDER BY gun")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| gun_from(row.try_get("gun")?))
            .collect()
    }

    async fn expiring(&self, before: OffsetDateTime) -> Result<Vec<Gun>, StoreError> {
        let sql = "SELECT DISTINCT t.gun FROM tuf_files t \
             JOIN (SELECT gun, MAX(version) AS newest FROM tuf_files WHERE role = 'timestamp' \
                   GROUP BY gun) n \
               ON t.gun = n.gun AND t.version = n.newest \
             WHERE t.role = 'timestamp' AND t.expires_at < $1 ORDER BY t.gun";
        sqlx::query(sql)
            .bind(before.unix_timestamp())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| gun_from(row.try_get("gun")?))
            .collect()
    }

    async fn put_pending_as(
        &self,
        gun: &Gun,
        roles: &[RoleName],
        targets: &Bytes,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for role in roles {
            sqlx::query(
                "INSERT INTO pending_delegations (gun, role, targets, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (gun, role) DO UPDATE SET targets = $3, created_at = $4",
            )
            .bind(gun.as_str())
            .bind(role.as_str())
            .bind(&targets[..])
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        let sha256 = hex::encode(Sha256::digest(targets));
        let staged = roles
            .iter()
            .map(|r| serde_json::json!({ "role": r.as_str(), "targets_sha256": sha256 }))
            .collect();
        self.append_audit(&mut tx, gun, "stage", staged, origin, &[])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_proposal_as(
        &self,
        gun: &Gun,
        proposal: &StoredProposal,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let roles: Vec<&str> = proposal.roles.iter().map(RoleName::as_str).collect();
        drop_proposals_of_roles(&mut tx, gun, &roles).await?;
        sqlx::query(
            "INSERT INTO proposals \
             (gun, id, roles, files, revision, proposed_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(gun.as_str())
        .bind(&proposal.id)
        .bind(roles.join(" "))
        .bind(&proposal.files[..])
        .bind(proposal.revision)
        .bind(&proposal.proposed_by)
        .bind(proposal.created.unix_timestamp())
        .bind(proposal.expires.unix_timestamp())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(gun, e))?;
        let detail = serde_json::json!({ "proposal": proposal.id, "roles": roles });
        self.append_audit(&mut tx, gun, "propose", vec![detail], origin, &[])
            .await?;
        tx.commit().await.map_err(|e| conflict_or(gun, e))?;
        Ok(())
    }

    async fn proposals(&self, gun: &Gun) -> Result<Vec<StoredProposal>, StoreError> {
        sqlx::query(
            "SELECT id, roles, files, revision, proposed_by, created_at, expires_at \
             FROM proposals WHERE gun = $1 ORDER BY created_at, id",
        )
        .bind(gun.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let roles: String = row.try_get("roles")?;
            let files: Vec<u8> = row.try_get("files")?;
            Ok(StoredProposal {
                id: row.try_get("id")?,
                roles: roles
                    .split_whitespace()
                    .map(|r| role_from(r.to_owned()))
                    .collect::<Result<_, _>>()?,
                files: Bytes::from(files),
                revision: row.try_get("revision")?,
                proposed_by: row.try_get("proposed_by")?,
                created: time_from(row.try_get("created_at")?, "created_at")?,
                expires: time_from(row.try_get("expires_at")?, "expires_at")?,
            })
        })
        .collect()
    }

    async fn cosign_proposal_as(
        &self,
        gun: &Gun,
        id: &str,
        revision: i64,
        files: &Bytes,
        signers: &[String],
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE proposals SET files = $1, revision = revision + 1 \
             WHERE gun = $2 AND id = $3 AND revision = $4",
        )
        .bind(&files[..])
        .bind(gun.as_str())
        .bind(id)
        .bind(revision)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        let detail = serde_json::json!({ "proposal": id, "signers": signers });
        self.append_audit(&mut tx, gun, "cosign", vec![detail], origin, &[])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn drop_proposal_as(
        &self,
        gun: &Gun,
        id: &str,
        reason: &str,
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let dropped = sqlx::query("DELETE FROM proposals WHERE gun = $1 AND id = $2")
            .bind(gun.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if dropped == 0 {
            return Ok(false);
        }
        let detail = serde_json::json!({ "proposal": id, "reason": reason });
        self.append_audit(&mut tx, gun, "drop_proposal", vec![detail], origin, &[])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn pending(&self, gun: &Gun) -> Result<Vec<(RoleName, Bytes)>, StoreError> {
        sqlx::query("SELECT role, targets FROM pending_delegations WHERE gun = $1 ORDER BY role")
            .bind(gun.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let targets: Vec<u8> = row.try_get("targets")?;
                Ok((role_from(row.try_get("role")?)?, Bytes::from(targets)))
            })
            .collect()
    }

    async fn keys(&self, gun: &Gun, role: &RoleName) -> Result<Vec<StoredKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM server_keys WHERE gun = $1 AND role = $2 ORDER BY id"
        );
        sqlx::query(&sql)
            .bind(gun.as_str())
            .bind(role.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn add_key_as(
        &self,
        key: &StoredKey,
        only_if_none: bool,
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        let created = key.created.unix_timestamp();
        let mut tx = self.pool.begin().await?;
        let added = if only_if_none {
            if self.dialect == Dialect::Postgres {
                // Under READ COMMITTED two racing inserts would both see no key; serialise
                // them per (gun, role). SQLite has one writer at a time and needs no lock.
                // The function sits in FROM, and the query returns a count, because `Any`
                // cannot decode PostgreSQL's `void`.
                sqlx::query(
                    "SELECT COUNT(*) AS locked FROM pg_advisory_xact_lock(hashtextextended($1, 0))",
                )
                .bind(format!("notar server_keys {} {}", key.gun, key.role))
                .fetch_one(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO server_keys (gun, role, key_id, encrypted, created_at) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE NOT EXISTS (SELECT 1 FROM server_keys WHERE gun = $1 AND role = $2)",
            )
        } else {
            // The same key ID again is the same key: nothing to add.
            sqlx::query(
                "INSERT INTO server_keys (gun, role, key_id, encrypted, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gun, role, key_id) DO NOTHING",
            )
        }
        .bind(key.gun.as_str())
        .bind(key.role.as_str())
        .bind(key.key_id.as_str())
        .bind(&key.encrypted[..])
        .bind(created)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if added {
            let made = vec![serde_json::json!({ "role": key.role.as_str(), "key_id": key.key_id })];
            self.append_audit(&mut tx, &key.gun, "key", made, origin, &[])
                .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn any_key(&self) -> Result<Option<StoredKey>, StoreError> {
        self.edge_key("ASC").await
    }

    async fn newest_key(&self) -> Result<Option<StoredKey>, StoreError> {
        self.edge_key("DESC").await
    }

    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        sqlx::query(
            "SELECT id, created_at, action, actor, gun, details, remote, prev_hash, hash \
             FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
    }

    async fn audit_of(&self, gun: &Gun, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        sqlx::query(
            "SELECT id, created_at, action, actor, gun, details, remote, prev_hash, hash \
             FROM audit_log WHERE gun = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(gun.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
    }

    async fn expiring_roles(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(String, String, OffsetDateTime)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.gun AS gun, t.role AS role, t.expires_at AS expires_at FROM tuf_files t \
             JOIN (SELECT gun, role, MAX(version) AS newest FROM tuf_files GROUP BY gun, role) c \
               ON t.gun = c.gun AND t.role = c.role AND t.version = c.newest \
             WHERE t.expires_at < $1 AND t.role <> 'timestamp' AND t.role <> 'snapshot' \
             ORDER BY t.expires_at, t.gun, t.role LIMIT $2",
        )
        .bind(before.unix_timestamp())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let expires: i64 = row.try_get("expires_at")?;
                Ok((
                    row.try_get("gun")?,
                    row.try_get("role")?,
                    time_from(expires, "expires_at")?,
                ))
            })
            .collect()
    }

    async fn expiry_horizon(
        &self,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StoreError> {
        // The current version of every (gun, role), then the earliest expiry per role name.
        let rows = sqlx::query(
            "SELECT t.role AS role, MIN(t.expires_at) AS earliest FROM tuf_files t \
             JOIN (SELECT gun, role, MAX(version) AS newest FROM tuf_files GROUP BY gun, role) c \
               ON t.gun = c.gun AND t.role = c.role AND t.version = c.newest \
             GROUP BY t.role",
        )
        .fetch_all(&self.pool)
        .await?;
        let (mut server, mut client): (Option<i64>, Option<i64>) = (None, None);
        for row in &rows {
            let role: String = row.try_get("role")?;
            let earliest: i64 = row.try_get("earliest")?;
            let slot = if role == "timestamp" || role == "snapshot" {
                &mut server
            } else {
                &mut client
            };
            *slot = Some(slot.map_or(earliest, |e| e.min(earliest)));
        }
        let at = |secs: Option<i64>| secs.map(|s| time_from(s, "expires_at")).transpose();
        Ok((at(server)?, at(client)?))
    }

    async fn claim_refresh(&self, gun: &Gun, until: OffsetDateTime) -> Result<bool, StoreError> {
        // One statement: the row is taken only when it is missing or its claim ran out,
        // and the database decides which of several servers that is.
        let claimed = sqlx::query(
            "INSERT INTO refresh_claims (gun, claimed_until) VALUES ($1, $2) \
             ON CONFLICT (gun) DO UPDATE SET claimed_until = excluded.claimed_until \
             WHERE refresh_claims.claimed_until < $3",
        )
        .bind(gun.as_str())
        .bind(until.unix_timestamp())
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    fn pool_use(&self) -> (u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size(), idle)
    }

    async fn issuer_key(&self) -> Result<Option<SealedIssuerKey>, StoreError> {
        let row = sqlx::query("SELECT sealed, certificate FROM issuer_key WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(SealedIssuerKey {
                sealed: row.try_get("sealed")?,
                certificate: row.try_get("certificate")?,
            })
        })
        .transpose()
    }

    async fn add_issuer_key(&self, key: &SealedIssuerKey) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO issuer_key (id, sealed, certificate, created_at) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&key.sealed[..])
        .bind(key.certificate.as_str())
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    async fn kek_salt(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT kdf FROM server_kek WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("kdf")).transpose()?)
    }

    async fn add_kek_salt(&self, kdf: &str) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO server_kek (id, kdf, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(kdf)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    async fn rewrap_key(&self, key_id: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE server_keys SET encrypted = $1 WHERE key_id = $2 AND encrypted = $3",
        )
        .bind(new)
        .bind(key_id)
        .bind(old)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_told_otherwise() {
        let url = |u| sqlite_url(u).ok();
        assert_eq!(
            url("sqlite:///d/x.db").as_deref(),
            Some("sqlite:///d/x.db?mode=rwc")
        );
        assert_eq!(
            url("sqlite://x.db?cache=private").as_deref(),
            Some("sqlite://x.db?cache=private&mode=rwc")
        );
        assert_eq!(
            url("sqlite://x.db?mode=ro").as_deref(),
            Some("sqlite://x.db?mode=ro")
        );
        assert!(url("sqlite::memory:").is_none());
        assert!(url("sqlite://x?mode=memory").is_none());
    }

    #[test]
    fn dialect_follows_the_scheme() {
        assert_eq!(Dialect::of("sqlite://a").ok(), Some(Dialect::Sqlite));
        assert_eq!(Dialect::of("postgres://h/db").ok(), Some(Dialect::Postgres));
        assert_eq!(
            Dialect::of("postgresql://h/db").ok(),
            Some(Dialect::Postgres)
        );
        assert!(Dialect::of("mysql://h/db").is_err());
    }
}
