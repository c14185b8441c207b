-- Notar server schema, SQLite dialect. Keep in step with migrations/postgres/0001_init.sql.
-- Only INTEGER, TEXT and BLOB columns: the sqlx Any driver maps nothing else. Times are
-- unix seconds.

-- Every stored version of every role's metadata. The unique key is what makes one of two
-- racing updates of the same (gun, role, version) fail.
CREATE TABLE tuf_files (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    gun        TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_checksum ON tuf_files (gun, role, sha256);

-- The change log: one row per timestamp written (`update`) and per deletion (`deletion`).
-- AUTOINCREMENT so IDs are never reused, which the changefeed's paging relies on.
CREATE TABLE changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    gun        TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    category   TEXT    NOT NULL
);
CREATE INDEX changes_gun ON changes (gun, id);

-- Server-managed private keys (timestamp, snapshot), encrypted at rest.
CREATE TABLE server_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    gun        TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    encrypted  BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (gun, role, key_id)
);
