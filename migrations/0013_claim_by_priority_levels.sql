-- The claim no longer reads the jobs scheduled for later (issue 20, item 5).
--
-- jobs_claim_idx orders pending jobs by (priority DESC, coalesce(run_after, created_at), id).
-- 0007's claim read it as one range scan with the due test as an index condition, but that
-- condition sits behind priority: it cannot bound a scan that crosses priorities, only filter
-- it. So every job scheduled for later was read by every claim that got past it: by a claim
-- that found nothing due (it read the whole index: 50,000 jobs a day ahead cost an empty
-- claim 304 buffers against 18 with none), and by a claim of lower-priority work (50,000
-- scheduled at priority 50 ahead of due priority-0 jobs: 559). Every idle poll of every
-- worker paid it.
--
-- The claim now walks the index one priority at a time (the skip scan PostgreSQL 18 does by
-- itself): a recursive CTE finds each priority present among pending jobs, highest first, by
-- one index descent (the first entry below the previous priority), and that first entry is
-- also the level's earliest due time; a level whose earliest job is not due yet is passed over
-- without another read. In a due level, (priority = p, due time <= now) bounds the range at
-- both ends, so the scan stops at the first job scheduled for later. A claim costs one descent
-- per priority present among pending jobs down to the ones it takes from (at most 201, the
-- CHECK's range; a handful in practice), whatever the number of jobs scheduled for later.
--
-- Why not another design:
-- * Taking scheduled jobs out of the claim index (partial on run_after IS NULL) and promoting
--   them when due (run_after := NULL) would lose their place: the order within a priority is
--   the time a job became runnable, and a retried job queues at the end of its backoff, not
--   at its creation (0007). Keeping the place needs another column or a 'scheduled' status,
--   and promotion is a write (a non-HOT update, an index entry) per job, by a periodic step or
--   inside claims that would contend for the same rows.
-- * A 'scheduled' status (River's) changes what every caller sees (statuses, transitions,
--   the key scope "active" = pending or processing, the stats) for a cost the skip scan
--   removes without any of it.
-- * An index led by the due time bounds due-ness but not priority: every claim would sort
--   the whole due backlog.
-- Nothing changes on disk: the same index, the same rows; only the picking statements.
-- Ordering, SKIP LOCKED, the exact due test on the database clock, retries and cancels are
-- as before (tests/repositories/test_claim_plan.py, tests/worker/test_queue.py).
--
-- depends: 0012_jobs_index_diet

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
