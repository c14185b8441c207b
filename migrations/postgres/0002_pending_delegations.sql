-- Delegations waiting for their signer's first metadata. Keep in step with
-- migrations/sqlite/0002_pending_delegations.sql.
--
-- A delegation to a role that has no metadata yet would make standard TUF clients refuse
-- every lookup that reaches it, so the owner's next targets (signed, and delegating the
-- role) waits here, one row per waiting role, until the signer uploads its first version of
-- the role together with these targets. The update that publishes a role deletes its row.
CREATE TABLE pending_delegations (
    gun        TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    targets    BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (gun, role)
);
