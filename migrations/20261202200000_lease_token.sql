-- The HA lease's fencing token (its KV version in Vault) under which a
-- mutation was made; NULL for rows written without [ha]. Part of the row's hash
-- when present, so it cannot be changed quietly either.
ALTER TABLE audit_log ADD COLUMN lease_token INTEGER;
