-- The tables a sweep reads team by team (key snapshots, retirements, verified
-- keys) are stored in team order: a team's rows sit together, so reading them is
-- one range scan instead of an index entry and a table seek per row, and a
-- written row updates two b-trees instead of three. Key ids stay unique on their
-- own, so every lookup, upsert and delete by key id works as before.

CREATE TABLE key_snapshots_new (
    key_id          TEXT NOT NULL,
    team_id         TEXT NOT NULL,
    key_name        TEXT NOT NULL,
    description     TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      TEXT,
    expiry          TEXT,
    last_request_at TEXT,
    seen_at         TEXT NOT NULL,
    PRIMARY KEY (team_id, key_id)
) WITHOUT ROWID;
INSERT INTO key_snapshots_new
    SELECT key_id, team_id, key_name, description, state, created_at, expiry,
           last_request_at, seen_at
    FROM key_snapshots;
DROP TABLE key_snapshots;
ALTER TABLE key_snapshots_new RENAME TO key_snapshots;
CREATE UNIQUE INDEX key_snapshots_by_key ON key_snapshots (key_id);

CREATE TABLE retirements_new (
    key_id         TEXT NOT NULL,
    team_id        TEXT NOT NULL,
    key_name       TEXT NOT NULL,
    rotation_id    TEXT,
    replaced_at    TEXT NOT NULL,
    phase          TEXT NOT NULL CHECK (phase IN ('waiting', 'deactivating', 'inactive',
                       'deleting', 'deleted')),
    deactivated_at TEXT,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (team_id, key_id)
) WITHOUT ROWID;
INSERT INTO retirements_new
    SELECT key_id, team_id, key_name, rotation_id, replaced_at, phase, deactivated_at,
           updated_at
    FROM retirements;
DROP TABLE retirements;
ALTER TABLE retirements_new RENAME TO retirements;
CREATE UNIQUE INDEX retirements_by_key ON retirements (key_id);

CREATE TABLE verified_keys_new (
    key_id      TEXT NOT NULL,
    team_id     TEXT NOT NULL,
    key_name    TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    PRIMARY KEY (team_id, key_id)
) WITHOUT ROWID;
INSERT INTO verified_keys_new
    SELECT key_id, team_id, key_name, verified_at
    FROM verified_keys;
DROP TABLE verified_keys;
ALTER TABLE verified_keys_new RENAME TO verified_keys;
CREATE UNIQUE INDEX verified_keys_by_key ON verified_keys (key_id);

-- A sweep looks up the finished rotations that a team's listed keys name, by
-- rotation id. The rotations are kept for history, so without this index the
-- lookup read each of the team's rotations ever made from the table; with it,
-- it reads only the team's range of this index (which holds every column the
-- lookup needs), and a rotation enters it once, when it finishes.
CREATE INDEX rotations_finished_by_team
    ON rotations (team_id, rotation_id, key_name, phase)
    WHERE phase IN ('verified', 'rolled_back', 'abandoned');
