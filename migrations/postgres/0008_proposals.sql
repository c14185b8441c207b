-- Co-signing proposals. Keep in step with migrations/sqlite/0008_proposals.sql.
--
-- A proposal is an upload that does not yet carry a threshold of signatures for every role
-- in it: kept here, never served as current, until co-signers add the signatures it lacks
-- and the server publishes it as an update. `roles` lists its roles, space-separated; a
-- newer proposal of any of them replaces it, and the update that stores any of them drops
-- it. `files` is a JSON object, role name to metadata text with the signatures so far;
-- `revision` counts its changes, so two co-signers adding at once never lose one.
CREATE TABLE proposals (
    gun         TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    roles       TEXT    NOT NULL,
    files       BYTEA    NOT NULL,
    revision    BIGINT  NOT NULL,
    proposed_by TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    PRIMARY KEY (gun, id)
);
