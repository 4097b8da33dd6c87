-- Reverts 0007: the claim indexes and the claim function are 0005's again (oldest first, the
-- run_after filter), the key index, the CHECKs and the three columns go. Rows otherwise keep
-- what they hold; priorities, keys and scopes are lost.
DROP INDEX IF EXISTS jobs_idempotency_key_idx;

DROP INDEX IF EXISTS jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobs (created_at, id) WHERE status = 'pending';

DROP INDEX IF EXISTS jobs_claim_type_idx;
CREATE INDEX jobs_claim_type_idx ON jobs (job_type, created_at, id) WHERE status = 'pending';

ALTER TABLE jobs
    DROP CONSTRAINT IF EXISTS jobs_priority_check,
    DROP CONSTRAINT IF EXISTS jobs_idempotency_key_check,
    DROP CONSTRAINT IF EXISTS jobs_idempotency_scope_check,
    DROP COLUMN IF EXISTS priority,
    DROP COLUMN IF EXISTS idempotency_key,
    DROP COLUMN IF EXISTS idempotency_scope;

-- 0005's function, as 0005 created it.
CREATE OR REPLACE FUNCTION media_store_claim_jobs(
    holder text, how_many integer, lease_s double precision, job_types text[]
) RETURNS SETOF jobs
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
DECLARE
    picked uuid[];
BEGIN
    IF cardinality(job_types) = 1 THEN
        picked := ARRAY(
            SELECT id
            FROM jobs
            WHERE status = 'pending'
              AND job_type = any(job_types)
              AND (run_after IS NULL OR run_after <= clock_timestamp())
            ORDER BY job_type, created_at, id  -- one type: see above
            LIMIT how_many
            FOR UPDATE SKIP LOCKED
        );
    ELSE
        picked := ARRAY(
            SELECT id
            FROM jobs
            WHERE status = 'pending'
              AND (job_types IS NULL OR job_type = any(job_types))
              AND (run_after IS NULL OR run_after <= clock_timestamp())
            ORDER BY created_at, id
            LIMIT how_many
            FOR UPDATE SKIP LOCKED
        );
    END IF;
    RETURN QUERY
    UPDATE jobs AS j
    SET status = 'processing',
        updated_at = statement_timestamp(),
        started_at = clock.at,
        attempts = j.attempts + 1,
        locked_by = holder,
        locked_until = clock.at + lease_s * interval '1 second',
        heartbeat_at = clock.at,
        run_after = NULL
    FROM (SELECT clock_timestamp() AS at) AS clock
    WHERE j.id = any(picked)
    RETURNING j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result,
              j.error, j.created_at, j.updated_at, j.started_at, j.completed_at,
              j.processing_time_ms, j.attempts, j.max_attempts, j.locked_by, j.locked_until,
              j.heartbeat_at, j.run_after;
END;
$$;
