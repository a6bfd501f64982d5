-- Each sweep reads a team's verified keys by team_id; without an index that was a
-- scan of every team's rows for each team, a cost that grew with the square of the fleet.
CREATE INDEX verified_keys_by_team ON verified_keys (team_id);
