-- Which server re-signs a repository's timestamp. Keep in step with
-- migrations/postgres/0005_refresh_claims.sql.
--
-- The freshness task of every server sees the same expiring repositories; the first to
-- claim a repository (no claim, or an expired one) re-signs it, and the others skip it
-- until the claim runs out. Unix seconds.
CREATE TABLE refresh_claims (
    gun   TEXT    PRIMARY KEY,
    claimed_until INTEGER NOT NULL
);
