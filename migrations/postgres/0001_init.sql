-- Notar server schema, PostgreSQL dialect. Keep in step with migrations/sqlite/0001_init.sql.
-- Only BIGINT, TEXT and BYTEA columns: the sqlx Any driver maps nothing richer. Times are
-- unix seconds.

-- Every stored version of every role's metadata. The unique key is what makes one of two
-- racing updates of the same (gun, role, version) fail.
CREATE TABLE tuf_files (
    id         BIGSERIAL PRIMARY KEY,
    gun        TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    sha256     TEXT   NOT NULL,
    data       BYTEA  NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_checksum ON tuf_files (gun, role, sha256);

-- The change log: one row per timestamp written (`update`) and per deletion (`deletion`).
CREATE TABLE changes (
    id         BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    gun        TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    sha256     TEXT   NOT NULL,
    category   TEXT   NOT NULL
);
CREATE INDEX changes_gun ON changes (gun, id);

-- Server-managed private keys (timestamp, snapshot), encrypted at rest.
CREATE TABLE server_keys (
    id         BIGSERIAL PRIMARY KEY,
    gun        TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    key_id     TEXT   NOT NULL,
    encrypted  BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (gun, role, key_id)
);
