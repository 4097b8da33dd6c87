-- Reverts 0019: the claim indexes end with the id again, and the claim orders by it.
DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx
    ON jobs (priority DESC, (coalesce(run_after, created_at)), id)
    WHERE status = 'pending';

DROP INDEX jobs_claim_type_idx;
CREATE INDEX jobs_claim_type_idx
    ON jobs (job_type, priority DESC, (coalesce(run_after, created_at)), id)
    WHERE status = 'pending';

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
            WITH RECURSIVE levels (priority, first_at) AS (
                (SELECT j.priority, coalesce(j.run_after, j.created_at)
                 FROM jobs AS j
                 WHERE j.status = 'pending' AND j.job_type = any(job_types)
                 ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at), j.id
                 LIMIT 1)
                UNION ALL
                SELECT below.priority, below.first_at
                FROM levels AS l
                CROSS JOIN LATERAL (
                    SELECT j.priority, coalesce(j.run_after, j.created_at) AS first_at
                    FROM jobs AS j
                    WHERE j.status = 'pending' AND j.job_type = any(job_types)
                      AND j.priority < l.priority
                    ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at),
                             j.id
                    LIMIT 1
                ) AS below
            )
            SELECT c.id
            FROM levels AS l
            CROSS JOIN LATERAL (
                SELECT j.id
                FROM jobs AS j
                WHERE j.status = 'pending' AND j.job_type = any(job_types)
                  AND j.priority = l.priority
                  AND coalesce(j.run_after, j.created_at) <= due
                ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at), j.id
                LIMIT how_many
                FOR UPDATE SKIP LOCKED
            ) AS c
            WHERE l.first_at <= due
            LIMIT how_many
        );
    ELSE
        picked := ARRAY(
            WITH RECURSIVE levels (priority, first_at) AS (
                (SELECT j.priority, coalesce(j.run_after, j.created_at)
                 FROM jobs AS j
                 WHERE j.status = 'pending'
                 ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at), j.id
                 LIMIT 1)
                UNION ALL
                SELECT below.priority, below.first_at
                FROM levels AS l
                CROSS JOIN LATERAL (
                    SELECT j.priority, coalesce(j.run_after, j.created_at) AS first_at
                    FROM jobs AS j
                    WHERE j.status = 'pending' AND j.priority < l.priority
                    ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at), j.id
                    LIMIT 1
                ) AS below
            )
            SELECT c.id
            FROM levels AS l
            CROSS JOIN LATERAL (
                SELECT j.id
                FROM jobs AS j
                WHERE j.status = 'pending'
                  AND (job_types IS NULL OR j.job_type = any(job_types))
                  AND j.priority = l.priority
                  AND coalesce(j.run_after, j.created_at) <= due
                ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at), j.id
                LIMIT how_many
                FOR UPDATE SKIP LOCKED
            ) AS c
            WHERE l.first_at <= due
            LIMIT how_many
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
