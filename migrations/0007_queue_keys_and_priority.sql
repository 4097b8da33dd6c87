-- The jobs table as an operator's queue (issue 12, items 1-4): priorities, scheduled starts and
-- idempotency keys. Additive: three new columns with their CHECKs, one unique index, the two
-- claim indexes re-made under their names for the new claim order, and the claim function
-- re-defined for that order. No existing row changes (every job gets priority 0, no key).
--
-- Claim order: priority, highest first; within a priority, first in first out by the time a
-- job became runnable, coalesce(run_after, created_at): its creation, or the start it was
-- scheduled for (or, after a retry with a backoff, the end of the backoff), as River and Oban
-- order by scheduled_at. A job scheduled for later so sits at its start time in the pending
-- index, not at its creation time: a claim stops after the due jobs it takes and never walks
-- over the jobs scheduled for later (with the filter on run_after that 0005 applied after an
-- index order on created_at, a backlog of jobs scheduled for tomorrow was read, row by row
-- from the heap, by every claim). The due test is an index condition on the same expression.
--
-- depends: 0006_segment_speakers_and_windows

ALTER TABLE jobs
    ADD COLUMN priority          smallint     NOT NULL DEFAULT 0,
    ADD COLUMN idempotency_key   varchar(200),
    ADD COLUMN idempotency_scope varchar(10);

COMMENT ON COLUMN jobs.priority IS
    'Claimed before jobs of lower priority (-100 to 100, default 0); first in first out within one';
COMMENT ON COLUMN jobs.idempotency_key IS
    'A creation with a key another job holds creates nothing (see idempotency_scope)';
COMMENT ON COLUMN jobs.idempotency_scope IS
    'How long the job holds its key: active (while pending or processing) or forever';

ALTER TABLE jobs
    ADD CONSTRAINT jobs_priority_check CHECK (priority BETWEEN -100 AND 100),
    ADD CONSTRAINT jobs_idempotency_key_check CHECK (idempotency_key <> ''),
    -- A key has one of the two scopes; no key, no scope. (Both NULL: true AND NULL, which a
    -- CHECK passes.)
    ADD CONSTRAINT jobs_idempotency_scope_check CHECK (
        (idempotency_key IS NULL) = (idempotency_scope IS NULL)
        AND idempotency_scope IN ('active', 'forever')
    );

-- At most one job holds a key: one with scope forever, whatever its status, or one with scope
-- active while it is pending or processing. One namespace for both scopes (a key held for ever
-- is not taken by an "active" creation, nor the other way round), one index for the race: of
-- concurrent inserts with one key, the index lets one in and the others conflict (INSERT ... ON
-- CONFLICT DO NOTHING in sql/jobs.sql), whatever the clients do. Only keyed jobs holding their
-- key have an entry: a finished job with an active-scope key leaves it (its update writes no
-- entry), and then a new job may take the key.
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'));

-- The claim indexes of 0002 in the new order, under the same names (a job's ready time is
-- coalesce(run_after, created_at)); pending jobs only, as before.
DROP INDEX jobs_claim_idx;
CREATE INDEX jobs_claim_idx
    ON jobs (priority DESC, (coalesce(run_after, created_at)), id)
    WHERE status = 'pending';

DROP INDEX jobs_claim_type_idx;
CREATE INDEX jobs_claim_type_idx
    ON jobs (job_type, priority DESC, (coalesce(run_after, created_at)), id)
    WHERE status = 'pending';

-- 0005's claim, in the new order, as independent of statistics as before: the SET clauses
-- price out sequential scans, bitmap scans and sorts, so the only plan is a range scan of a
-- pending index in claim order stopped after how_many rows. "Due" is a variable (the clock
-- read once), not clock_timestamp() in the WHERE: a volatile call cannot be an index
-- condition, a parameter can; the ready time is tested in the index, so the jobs scheduled
-- for later at the end of a priority's range cost no heap visit. For one type, as before, the
-- order leads with job_type (one value: the same order), which only jobs_claim_type_idx
-- yields. The RETURNING list is the jobs row type, column for column (a column added to jobs
-- must be added here).
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
