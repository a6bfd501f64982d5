-- Reconciliation after a takeover (docs/design.md): a rotation closed when the
-- lease came from another holder ends in phase 'handed_over', and the cached
-- Vault view keeps the secret's rotation_id (a promotion writes it only after
-- the key was verified, so it proves the current key's provenance).
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.

CREATE TABLE rotations_new (
    rotation_id   TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL,
    key_name      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    old_key_id    TEXT,
    new_key_id    TEXT,
    phase         TEXT NOT NULL CHECK (phase IN ('creating', 'created', 'storing', 'stored',
                      'activating', 'active', 'promoting', 'verified', 'rolling_back',
                      'rolled_back', 'abandoned', 'handed_over')),
    cas           INTEGER NOT NULL,
    vault_version INTEGER,
    started_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    stored_at     TEXT,
    finished_at   TEXT,
    last_error    TEXT
);

INSERT INTO rotations_new
    SELECT rotation_id, team_id, key_name, reason, old_key_id, new_key_id, phase, cas,
           vault_version, started_at, updated_at, stored_at, finished_at, last_error
    FROM rotations;

DROP TABLE rotations;
ALTER TABLE rotations_new RENAME TO rotations;

-- Invariant 4: at most one rotation per lineage in flight, enforced by the database.
CREATE UNIQUE INDEX rotations_one_open_per_lineage
    ON rotations (team_id, key_name)
    WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned', 'handed_over');
CREATE INDEX rotations_by_team ON rotations (team_id, key_name);

ALTER TABLE lineages ADD COLUMN vault_rotation_id TEXT;
