-- Rotation state: what the engine must remember between sweeps and across crashes.
-- Every external mutation is preceded by an intent written here (a phase ending in
-- -ing) and followed by its outcome, so a restart can resume or roll back.

CREATE TABLE rotations (
    rotation_id   TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL,
    key_name      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    old_key_id    TEXT,
    new_key_id    TEXT,
    phase         TEXT NOT NULL CHECK (phase IN ('creating', 'created', 'storing', 'stored',
                      'activating', 'active', 'verified', 'rolling_back', 'rolled_back',
                      'abandoned')),
    cas           INTEGER NOT NULL,
    vault_version INTEGER,
    started_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    stored_at     TEXT,
    finished_at   TEXT,
    last_error    TEXT
);

-- Invariant 4: at most one rotation per lineage in flight, enforced by the database.
CREATE UNIQUE INDEX rotations_one_open_per_lineage
    ON rotations (team_id, key_name)
    WHERE phase NOT IN ('verified', 'rolled_back', 'abandoned');
CREATE INDEX rotations_by_team ON rotations (team_id, key_name);

-- Replaced keys on their way out. deactivated_at is set only when the daemon itself
-- deactivated the key: only such keys are ever deleted.
CREATE TABLE retirements (
    key_id         TEXT PRIMARY KEY,
    team_id        TEXT NOT NULL,
    key_name       TEXT NOT NULL,
    rotation_id    TEXT,
    replaced_at    TEXT NOT NULL,
    phase          TEXT NOT NULL CHECK (phase IN ('waiting', 'deactivating', 'inactive',
                       'deleting', 'deleted')),
    deactivated_at TEXT,
    updated_at     TEXT NOT NULL
);
CREATE INDEX retirements_by_team ON retirements (team_id, key_name);

-- What the daemon last saw (or wrote) in Vault per lineage, so a steady sweep
-- needs no Vault read per lineage. Check-and-set catches a stale view on write.
CREATE TABLE lineages (
    team_id       TEXT NOT NULL,
    key_name      TEXT NOT NULL,
    vault_key_id  TEXT,
    vault_version INTEGER NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (team_id, key_name)
);

-- Keys whose secret the daemon stored in Vault and proved working with a request.
CREATE TABLE verified_keys (
    key_id      TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL,
    key_name    TEXT NOT NULL,
    verified_at TEXT NOT NULL
);

-- The last list of each team's managed keys, for status and report without a network call.
CREATE TABLE key_snapshots (
    key_id          TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL,
    key_name        TEXT NOT NULL,
    description     TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      TEXT,
    expiry          TEXT,
    last_request_at TEXT,
    seen_at         TEXT NOT NULL
);
CREATE INDEX key_snapshots_by_team ON key_snapshots (team_id, key_name);
