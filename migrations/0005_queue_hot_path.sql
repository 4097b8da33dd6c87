-- The queue's hot path (claim, complete) made cheaper and independent of table statistics.
-- Measured with benchmarks/bench_queue.py and by server CPU per job of a bare drain loop
-- (4 workers, claims of 10, one batch completion each), PostgreSQL 15 on 2 cores:
--
-- * On a jobs table autovacuum has not analyzed yet (a burst into a new deployment, after a
--   bulk load) the planner, guessing a handful of pending rows, ran every claim as a bitmap
--   scan plus a sort of the whole backlog: ~140 us of server CPU a job instead of ~95. The
--   claim is now a function whose plan has no alternative to the ordered index scan (below).
-- * jobs_touch_updated_at ran a PL/pgSQL call for every row of every update (~9 us a job).
--   It now fires only when the statement did not itself set updated_at to the database's
--   time of the statement, which the library's statements do; any other client (or value)
--   still gets the clock, so updated_at stays the database's to maintain.
-- * jobs_lease_expiry_idx took an entry on every claim and made every heartbeat a non-HOT
--   update writing an entry into every index (it indexes locked_until, which heartbeats
--   move). Reclaiming reads the processing jobs through jobs_status_created_at_idx instead:
--   they are as many as the leases held, however large the table (plus, as in the dropped
--   index, entries of jobs processed since the last vacuum).
--
-- Kept, because they earn their cost: jobs_pkey; jobs_claim_idx and jobs_claim_type_idx
-- (written on insert only: a claimed row leaves their predicate); jobs_status_created_at_idx
-- and jobs_created_at_idx (listing by status and by time; one entry each per status change,
-- ~3 us a job apiece; partial indexes per status cannot serve the prepared, generic-plan
-- `status = $1` listing); jobs_status_transition (the lifecycle rule; replacing its call by
-- a WHEN clause measured no cheaper, since the clause is re-planned for every statement);
-- jobs_notify_created (once per INSERT statement, not on the claim path).
--
-- depends: 0003_word_timestamps

-- Claim up to how_many runnable pending jobs, oldest first, of the types job_types (NULL:
-- any) for holder under a lease of lease_s seconds; returns the claimed rows.
--
-- Why a function: a plain statement's plan depends on statistics, and on a never-analyzed
-- table they say the backlog is a handful of rows. The SET clauses below (in force for this
-- function's statements only, restored on return) leave the planner no other way to pick
-- than a range scan of a partial pending index in (created_at, id) order, stopped after
-- how_many rows: sequential scans, bitmap scans and sorts are priced out, whatever the
-- statistics say. force_generic_plan plans each statement once per session instead of once
-- per call (a generic plan's LIMIT $n looks costlier than a custom one, so the default
-- would plan every call again). For one type the order is written (job_type, created_at,
-- id), the same order when job_type has one value, which only jobs_claim_type_idx yields:
-- a worker of a rare type reads that type's backlog, not everyone else's, even though the
-- generic plan does not know which type it will be. Otherwise jobs_claim_idx.
-- A SQL function would not do: it is inlined into the caller's plan, or planned again per
-- call.
--
-- Picked rows are locked FOR UPDATE SKIP LOCKED, so concurrent claimers never wait for or
-- share a row; the update then needs no second look at the status. The RETURNING list is
-- the jobs row type, column for column (a column added to jobs must be added here).
CREATE FUNCTION media_store_claim_jobs(
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

-- A statement that sets updated_at to statement_timestamp() (the database's time of that
-- statement) is trusted with it; for every other update, including one writing any other
-- value, the trigger sets the clock as before. The condition is evaluated without a call.
DROP TRIGGER jobs_touch_updated_at ON jobs;
CREATE TRIGGER jobs_touch_updated_at
    BEFORE UPDATE ON jobs
    FOR EACH ROW
    WHEN (NEW.updated_at IS DISTINCT FROM statement_timestamp())
    EXECUTE FUNCTION media_store_touch_updated_at();

DROP INDEX jobs_lease_expiry_idx;
