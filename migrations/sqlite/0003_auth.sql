-- Token authentication. Keep in step with migrations/postgres/0003_auth.sql.

-- Who made each change: the subject of the token that authorised the write (NULL when the
-- server runs without authentication).
ALTER TABLE changes ADD COLUMN actor TEXT;

-- The built-in token issuer's signing key (ECDSA P-256, PKCS#8), sealed under the server
-- secret, and its self-signed certificate (PEM) for the bundles of servers and registries
-- that trust it. One row: every server sharing the database issues with the same key.
CREATE TABLE issuer_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sealed      BLOB    NOT NULL,
    certificate TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
