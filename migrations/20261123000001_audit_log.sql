-- The audit log (SPEC §6): append-only and tamper-evident.
-- hash = sha256(prev_hash || canonical row content); the first row chains from 64 zeros.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    team_id     TEXT,
    key_id      TEXT,
    key_name    TEXT,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    detail      TEXT NOT NULL,
    rotation_id TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);

CREATE INDEX audit_log_by_key ON audit_log (key_id);
CREATE INDEX audit_log_by_rotation ON audit_log (rotation_id);
CREATE INDEX audit_log_by_at ON audit_log (at);

-- The database itself refuses to rewrite history.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
