-- Claim indexes narrow enough to fill their pages (issue 21, item 4: enqueue flat as the table
-- grows).
--
-- jobs_claim_idx (priority DESC, ready time, id) and jobs_claim_type_idx (job_type, priority
-- DESC, ready time, id), pending jobs only, were each about 55% full: at 1M pending jobs 78 MB
-- apiece, a third of what jobs writes with its indexes. A new job's entry goes to the end of
-- its priority's range, which is the end of the index only for the lowest priority present;
-- everywhere else a full page is split in the middle and its left half is never written
-- again. PostgreSQL splits such a page after the new entry instead, leaving it full (the
-- optimization for ascending keys under a common prefix, nbtsplitloc.c), only for entries no
-- wider than two int8 keys: these were 40 bytes (a smallint, a timestamptz and a 16-byte uuid,
-- aligned), so every split was a middle one. Shown on a bare table, 300,000 rows in batches
-- of 10,000 over five priorities: (priority DESC, ready, id) 55% full, 23 MB; (priority DESC,
-- ready) 90% full, 9 MB; (job_type, priority DESC, ready) for 'audio' 90%, 9 MB.
--
-- So the id leaves both keys, and with it the claim's order: pending jobs are taken by
-- priority, then by the time each became runnable (coalesce(run_after, created_at)), as
-- before. What changes is the order among jobs runnable at the same microsecond: index order
-- (their row's place in the table) rather than id order. Jobs created without run_after do
-- not tie (create_many gives each job of a batch its own microsecond, in input order, and
-- created_at defaults to clock_timestamp()); jobs given one run_after do. Those used to be
-- claimed in id order, which for create_many's time-ordered ids is creation order; now they go
-- in the order their rows sit in the table, which is creation order for rows written to new
-- pages but not once inserts reuse the free space vacuum left (fillfactor 80, purges). Their
-- order among themselves is not promised any more (docs/queue.md). The claim's plans are the
-- same range scans of the same indexes (tests/repositories/test_claim_plan.py), still stopped
-- after how_many rows without a sort: the ORDER BY lists exactly the index's keys. A
-- jobs_claim_type_idx entry of a 5-letter type (audio, video) is 24 bytes and gets the same
-- split; a 'document' entry is 32, and is split as before (still 8 bytes narrower).
--
-- The indexes are rebuilt in the migration's transaction. DROP INDEX locks jobs against reads
-- and writes alike until the migration commits, so every statement on jobs waits while both
-- are built (measured on this machine, system PostgreSQL 15: 0.45 s for jobs_claim_idx and
-- 0.87 s for jobs_claim_type_idx per million pending jobs).
--
-- depends: 0018_search_pending_list

DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx
    ON jobs (priority DESC, (coalesce(run_after, created_at)))
    WHERE status = 'pending';

DROP INDEX jobs_claim_type_idx;
CREATE INDEX jobs_claim_type_idx
    ON jobs (job_type, priority DESC, (coalesce(run_after, created_at)))
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
                 ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at)
                 LIMIT 1)
                UNION ALL
                SELECT below.priority, below.first_at
                FROM levels AS l
                CROSS JOIN LATERAL (
                    SELECT j.priority, coalesce(j.run_after, j.created_at) AS first_at
                    FROM jobs AS j
                    WHERE j.status = 'pending' AND j.job_type = any(job_types)
                      AND j.priority < l.priority
                    ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at)
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
                ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at)
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
                 ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at)
                 LIMIT 1)
                UNION ALL
                SELECT below.priority, below.first_at
                FROM levels AS l
                CROSS JOIN LATERAL (
                    SELECT j.priority, coalesce(j.run_after, j.created_at) AS first_at
                    FROM jobs AS j
                    WHERE j.status = 'pending' AND j.priority < l.priority
                    ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at)
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
                ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at)
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
