-- Reverts 0012: jobs_created_at_idx as 0001 made it, jobs_key_created_at_idx as 0011 made it.
DROP INDEX IF EXISTS jobs_key_created_at_idx;
CREATE INDEX jobs_key_created_at_idx ON jobs (idempotency_key, created_at, id)
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX IF NOT EXISTS jobs_created_at_idx ON jobs (created_at, id);
