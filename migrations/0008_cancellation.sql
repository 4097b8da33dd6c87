-- Operating the queue: cancellation, retention and cheap stats (issue 12, deliverables 5-7).
--
-- 1. A new final status, 'cancelled': a pending job may be cancelled, and so may a processing
--    one. Both move to 'cancelled' at once, under the row lock of one UPDATE, so a cancel and
--    the holder's completion are serialised on the row: whichever commits first wins, and the
--    loser's statement, re-checked against the new row version, changes nothing (the worker's
--    completion is guarded by status = 'processing'). A processing job's holder is told at
--    its next heartbeat through job_cancel_requests (below), and stops the handler.
--    Why not a "cancel requested" state the holder turns into 'cancelled' later: without a
--    column on jobs, the request would live in another table, and a completion racing a
--    cancel cannot see a request committed after its snapshot (a READ COMMITTED re-check
--    re-reads only the updated row), so a cancel acknowledged to its caller could still end
--    completed; every completion would also pay a look-up in that table.
-- 2. jobs_finished_idx: finished jobs by (status, completed_at). Purging by age walks it in
--    keyset batches, and the stats count failures of the last hour and completions of the
--    last minute from it (index-only: job_type is included). Partial, so pending and
--    processing jobs (inserted, claimed, heartbeaten) never write to it: one entry per job,
--    written when it finishes (the finishing update is not HOT anyway: status is indexed).
--    media_store_finished_jobs (below) walks it for a purge in a plan that does not depend on
--    the table's statistics.
-- 3. jobs_delayed_idx: pending jobs that may not run yet (a retry's backoff). The stats count
--    "claimable now" as pending minus these, without reading the backlog's rows; written
--    only when a failed job is put back with a delay.
--
-- depends: 0007_queue_keys_and_priority

-- The lifecycle of 0001 plus: pending -> cancelled, processing -> cancelled. Cancelled is final.
CREATE OR REPLACE FUNCTION media_store_job_transition_allowed(from_status text, to_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (from_status = 'pending'    AND to_status IN ('processing', 'cancelled'))
        OR (from_status = 'processing' AND to_status IN ('completed', 'failed', 'pending',
                                                         'cancelled'))
        OR (from_status = 'failed'     AND to_status = 'pending')
$$;

ALTER TABLE jobs
    DROP CONSTRAINT jobs_status_check,
    ADD CONSTRAINT jobs_status_check
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    -- A job has completed_at exactly when it is finished (completed, failed or cancelled).
    DROP CONSTRAINT jobs_completed_at_check,
    ADD CONSTRAINT jobs_completed_at_check CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)
    );

-- A processing job that was cancelled, for its holder to learn at its next heartbeat: who held
-- it (the job's locked_by keeps the holder too), when it was cancelled, and when the holder
-- was told. Rows go with their job (purge, delete).
CREATE TABLE job_cancel_requests (
    job_id          uuid          PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    holder          varchar(200)  NOT NULL,
    requested_at    timestamptz   NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at timestamptz,
    CONSTRAINT job_cancel_requests_requested_at_readable
        CHECK (media_store_time_readable(requested_at)),
    CONSTRAINT job_cancel_requests_acknowledged_at_readable
        CHECK (media_store_time_readable(acknowledged_at))
);
COMMENT ON TABLE job_cancel_requests IS
    'Processing jobs cancelled while held: the holder learns it at its next heartbeat';

CREATE INDEX jobs_finished_idx ON jobs (status, completed_at, id) INCLUDE (job_type)
    WHERE completed_at IS NOT NULL;

CREATE INDEX jobs_delayed_idx ON jobs (job_type, run_after)
    WHERE status = 'pending' AND run_after IS NOT NULL;

-- A job cancelled while processing is left out until its holder was told (the request's
-- acknowledged_at, set by its next heartbeat): deleting it earlier would delete the request
-- with it, and the holder would learn "lease lost" instead of "cancelled". A request nobody
-- acknowledged for 7 days (MAX_LEASE: any lease its holder had is over) no longer holds it.
-- Up to how_many jobs in status wanted_status that finished before finished_before, after the
-- keyset position (after_at, after_id), oldest first; locked FOR UPDATE SKIP LOCKED when
-- lock is true (a purge), not at all otherwise (a dry run). A function for the reason
-- media_store_claim_jobs (0005) is one: on a table autovacuum has not analyzed yet, a plain
-- statement planned a bitmap scan of every finished job before the cut-off and a sort of
-- them, for every batch; the SET clauses leave the planner only the ordered range scan of
-- jobs_finished_idx, stopped after how_many rows.
CREATE FUNCTION media_store_finished_jobs(
    wanted_status text, finished_before timestamptz, after_at timestamptz, after_id uuid,
    how_many integer, lock boolean
) RETURNS TABLE (id uuid, completed_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
ROWS 1000
AS $$
BEGIN
    IF lock THEN
        RETURN QUERY
        SELECT j.id, j.completed_at
        FROM jobs AS j
        WHERE j.status = wanted_status
          AND j.completed_at < finished_before
          AND (j.completed_at, j.id) > (after_at, after_id)
          AND NOT EXISTS (  -- its holder not told yet: purged once told (or long gone)
              SELECT FROM job_cancel_requests AS r
              WHERE r.job_id = j.id AND r.acknowledged_at IS NULL
                AND r.requested_at > clock_timestamp() - interval '7 days')
        ORDER BY j.status, j.completed_at, j.id
        LIMIT how_many
        FOR UPDATE SKIP LOCKED;
    ELSE
        RETURN QUERY
        SELECT j.id, j.completed_at
        FROM jobs AS j
        WHERE j.status = wanted_status
          AND j.completed_at < finished_before
          AND (j.completed_at, j.id) > (after_at, after_id)
          AND NOT EXISTS (  -- its holder not told yet: purged once told (or long gone)
              SELECT FROM job_cancel_requests AS r
              WHERE r.job_id = j.id AND r.acknowledged_at IS NULL
                AND r.requested_at > clock_timestamp() - interval '7 days')
        ORDER BY j.status, j.completed_at, j.id
        LIMIT how_many;
    END IF;
END;
$$;
