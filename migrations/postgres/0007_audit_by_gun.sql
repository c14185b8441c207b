-- The web view reads a repository's newest audit records. Keep in step with
-- migrations/sqlite/0007_audit_by_gun.sql.
CREATE INDEX audit_log_gun ON audit_log (gun, id);
