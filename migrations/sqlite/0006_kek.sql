-- The key-encryption key (KEK). Keep in step with migrations/postgres/0006_kek.sql.
--
-- Every server sharing the database derives the same KEK from the server secret once, at
-- start-up (argon2id with the parameters and salt in `kdf`, JSON), and wraps each new
-- managed key under it (XChaCha20-Poly1305, GUN, role and key ID as associated data).
-- Keys written before this table existed are key files under the secret itself; each is
-- rewritten in the wrapped form the first time it is unlocked. One row.
CREATE TABLE server_kek (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    kdf        TEXT    NOT NULL,
    created_at INTEGER  NOT NULL
);
