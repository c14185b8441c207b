-- The audit trail. Keep in step with migrations/postgres/0004_audit.sql.
--
-- One record per accepted write, appended in the write's own transaction. IDs are given
-- by the writer (the previous ID + 1) and each record holds the previous record's hash;
-- `hash` covers every other column (see server/src/audit.rs), so an edited, removed or
-- reordered record breaks the chain where it happened.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    actor      TEXT,
    gun        TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    remote     TEXT,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
