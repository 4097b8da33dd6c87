-- The jobs table under sustained load (issue 22, item 4: benchmarks/bench_soak.py).
--
-- The soak (jobs enqueued at 70% of the drain capacity for minutes, from an empty table, as a
-- new deployment starts) found the completions running a sequential scan of jobs each: 4,116
-- in its first 30 s, 20-50 ms each as the table grew, and the queue fell behind (1,400
-- completions a second against 3,300 enqueued, then 350). The cause is the plan cache, not the
-- statement: asyncpg prepares each statement once per connection, and after five executions
-- PostgreSQL keeps a generic plan if it is no dearer than the custom ones. The workers' first
-- completions run while jobs is a few pages: there a sequential scan is the cheapest plan,
-- and the generic plan made then is kept until something invalidates it (an ANALYZE or VACUUM
-- of jobs). Autovacuum comes round once a naptime at best (a minute by default, later on a
-- busy server: no run at all in the soak's first 90 s), and a table analyzed while empty
-- keeps making the same choice. No shape of the statement is safe by itself: with the table
-- empty and analyzed, even a LATERAL lookup by primary key is planned as a sequential scan.
--
-- So the workers' writes on a holder's jobs by id (heartbeat, batch completion, release) are
-- PL/pgSQL functions whose SET clauses leave the planner index paths only, planned once per
-- session (force_generic_plan), as media_store_claim_jobs (0005) and media_store_finished_jobs
-- (0008) are: the same statements, the same locking order (rows locked in id order), the same
-- results. A single job's completion or failure (WHERE id = $1 AND status = 'processing' AND
-- locked_by = $2) is planned on jobs_status_created_at_idx, an index at every size.
--
-- depends: 0014_job_trace_context

CREATE FUNCTION media_store_heartbeat_jobs(holder text, job_ids uuid[], lease_s double precision)
RETURNS TABLE (id uuid, cancelled boolean)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        SELECT j.id
        FROM jobs AS j
        WHERE j.id = any(job_ids)
          AND j.status IS NOT DISTINCT FROM 'processing'
          AND j.locked_by = holder
        ORDER BY j.id
        FOR UPDATE
    ),
    extended AS (
        UPDATE jobs AS j
        SET locked_until = clock.at + lease_s * interval '1 second',
            updated_at = statement_timestamp(),
            heartbeat_at = clock.at
        FROM held, (SELECT clock_timestamp() AS at) AS clock
        WHERE j.id = held.id
        RETURNING j.id
    ),
    told AS (
        UPDATE job_cancel_requests AS r
        SET acknowledged_at = coalesce(r.acknowledged_at, clock_timestamp())
        WHERE r.job_id = any(job_ids) AND r.holder = media_store_heartbeat_jobs.holder
        RETURNING r.job_id
    )
    SELECT e.id, false FROM extended AS e
    UNION ALL
    SELECT t.job_id, true FROM told AS t;
END;
$$;

CREATE FUNCTION media_store_complete_jobs(holder text, job_ids uuid[], results jsonb[])
RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        SELECT j.id
        FROM jobs AS j
        WHERE j.id = any(job_ids)
          AND j.status IS NOT DISTINCT FROM 'processing'
          AND j.locked_by = holder
        ORDER BY j.id
        FOR UPDATE
    )
    UPDATE jobs AS j
    SET status = 'completed',
        updated_at = statement_timestamp(),
        result = done.result,
        error = NULL,
        completed_at = clock.at,
        processing_time_ms = floor(extract(epoch FROM clock.at - j.started_at) * 1000)::int,
        locked_until = NULL
    FROM held
    JOIN unnest(job_ids, results) AS done (id, result) ON done.id = held.id,
         (SELECT clock_timestamp() AS at) AS clock
    WHERE j.id = held.id
    RETURNING j.id;
END;
$$;

CREATE FUNCTION media_store_release_jobs(holder text, job_ids uuid[])
RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        SELECT j.id
        FROM jobs AS j
        WHERE j.id = any(job_ids)
          AND j.status IS NOT DISTINCT FROM 'processing'
          AND j.locked_by = holder
        ORDER BY j.id
        FOR UPDATE
    )
    UPDATE jobs AS j
    SET status = 'pending',
        updated_at = statement_timestamp(),
        started_at = NULL,
        attempts = greatest(j.attempts - 1, 0),
        locked_by = NULL,
        locked_until = NULL,
        heartbeat_at = NULL,
        run_after = NULL
    FROM held
    WHERE j.id = held.id
    RETURNING j.id;
END;
$$;

-- Storage: jobs is a queue table. Every job is inserted, updated at least twice (claim,
-- completion: neither HOT, status is indexed) and deleted by the purge, so most of its pages
-- hold dead row versions until a vacuum; the defaults (vacuum at 20% of the table dead, cost
-- delay 2 ms) let them pile up between vacuums. Vacuumed at 2% (and analyzed at 2%, so that
-- the claim's level walk and the stats keep true statistics), without the cost delay (a
-- vacuum of the queue table is short and should not be stretched), and pages filled to 80%
-- on insert, so that a job's next version (a heartbeat's is HOT: no indexed column changes)
-- finds room on its page.
ALTER TABLE jobs SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
