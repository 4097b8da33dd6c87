-- Reverts 0013: the claim is 0007's single range scan again.
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
    due timestamptz := clock_timestamp();
BEGIN
    IF cardinality(job_types) = 1 THEN
        picked := ARRAY(
            SELECT id
            FROM jobs
            WHERE status = 'pending'
              AND job_type = any(job_types)
              AND coalesce(run_after, created_at) <= due
            ORDER BY job_type, priority DESC, coalesce(run_after, created_at), id  -- one type
            LIMIT how_many
            FOR UPDATE SKIP LOCKED
        );
    ELSE
        picked := ARRAY(
            SELECT id
            FROM jobs
            WHERE status = 'pending'
              AND (job_types IS NULL OR job_type = any(job_types))
              AND coalesce(run_after, created_at) <= due
            ORDER BY priority DESC, coalesce(run_after, created_at), id
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
              j.heartbeat_at, j.run_after, j.priority, j.idempotency_key, j.idempotency_scope;
END;
$$;
