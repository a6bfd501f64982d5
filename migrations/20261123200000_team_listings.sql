-- When each team's keys were last listed. Kept apart from key_snapshots so a
-- sweep in which no key changed writes one row per team, not one per key.
CREATE TABLE team_listings (
    team_id   TEXT PRIMARY KEY,
    listed_at TEXT NOT NULL
);

INSERT INTO team_listings (team_id, listed_at)
    SELECT team_id, MAX(seen_at) FROM key_snapshots GROUP BY team_id;
