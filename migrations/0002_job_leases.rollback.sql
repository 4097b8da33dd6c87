-- Reverts 0002: drops only what it added (trigger, function, indexes, constraints, columns).
-- Every row stays; the lease columns' values are lost, which 0001 has no place for.
DROP TRIGGER IF EXISTS jobs_notify_created ON jobs;
DROP FUNCTION IF EXISTS media_store_notify_jobs_created();
DROP INDEX IF EXISTS jobs_lease_expiry_idx;
DROP INDEX IF EXISTS jobs_claim_type_idx;
DROP INDEX IF EXISTS jobs_claim_idx;
ALTER TABLE jobs
    DROP CONSTRAINT IF EXISTS jobs_completed_at_check,
    DROP CONSTRAINT IF EXISTS jobs_unleased_check,
    DROP CONSTRAINT IF EXISTS jobs_processing_lease_check,
    DROP CONSTRAINT IF EXISTS jobs_locked_by_check,
    DROP CONSTRAINT IF EXISTS jobs_max_attempts_check,
    DROP CONSTRAINT IF EXISTS jobs_attempts_check,
    DROP COLUMN IF EXISTS run_after,
    DROP COLUMN IF EXISTS heartbeat_at,
    DROP COLUMN IF EXISTS locked_until,
    DROP COLUMN IF EXISTS locked_by,
    DROP COLUMN IF EXISTS max_attempts,
    DROP COLUMN IF EXISTS attempts;
