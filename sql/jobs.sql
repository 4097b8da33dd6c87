-- Jobs: the plan's JobRepository operations, in the order of media_store/repositories/jobs.py.
-- Columns are listed in the order of media_store.models.Job.
-- Every UPDATE sets updated_at = statement_timestamp(), the database's time of the statement:
-- jobs_touch_updated_at (migrations/0005) then has nothing to do for the row, and skips the
-- PL/pgSQL call it makes for any other update.

-- name: create_job
-- Insert a pending job without an idempotency key; id, status and timestamps come from the
-- database defaults. run_after NULL: claimable at once.
INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after)
VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::int, $6::smallint, $7::timestamptz)
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: enqueue_job
-- Insert a pending job with idempotency key $8 (scope $9) unless another job holds the key;
-- returns the new job (created) or the holder (not created). The unique index decides the race
-- (ON CONFLICT ... DO NOTHING); the holder is read in the statement's snapshot, which misses a
-- holder committed after the statement began: then no row comes back and the caller runs the
-- statement again (a new snapshot), which finds it, or inserts if it has meanwhile let go.
WITH created AS (
    INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after,
                      idempotency_key, idempotency_scope)
    VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::int, $6::smallint, $7::timestamptz,
            $8::text, $9::text)
    ON CONFLICT (idempotency_key)
        WHERE idempotency_key IS NOT NULL
          AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
        DO NOTHING
    RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
              created_at, updated_at, started_at, completed_at, processing_time_ms,
              attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
              priority, idempotency_key, idempotency_scope
)
SELECT true AS created, id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM created
UNION ALL
SELECT false, id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE idempotency_key = $8::text
  AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
  AND NOT EXISTS (SELECT FROM created);

-- name: get_clock
-- The database's clock: create_many stamps a batch it COPYs with it (a COPY returns nothing;
-- its jobs' created_at is this less one microsecond per later item, its updated_at this).
SELECT clock_timestamp() AS now;

-- name: create_keyed_jobs
-- Insert many pending jobs from parallel arrays, all or nothing, skipping items whose
-- idempotency key another job holds: create_many's statement when its probe found a key held,
-- or when a key was taken during its COPY. The parameters come as one JSON array ($4), not a
-- jsonb[]: one document to encode and parse instead of one per job (1.1 vs 3.0 us a job of
-- 10,000, measured). updated_at is the statement's clock, created_at that minus one
-- microsecond per later item: the batch is first in first out in input order whatever the
-- clock's resolution, no job of it is created in the future, and each returned row tells its
-- item, counted from the end (updated_at - created_at in microseconds), whatever order rows
-- come back in. Returns what the database chose (id, created_at, updated_at) for the created
-- jobs only. The unique index decides races, as in enqueue_job; the caller reads the holders
-- of the items without a row with get_key_holders, in the same transaction (only when there
-- are any). Inserted in key order (bytewise): concurrent batches sharing keys then wait for
-- each other's keys in one order and cannot deadlock (measured: in input order, 16 batches
-- of 20 shared keys in rotated orders deadlocked at once); created_at keeps the input order.
INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after,
                  idempotency_key, idempotency_scope, created_at, updated_at)
SELECT g.job_type, g.media_url, g.prompt, g.parameters, g.max_attempts, g.priority,
       g.run_after, g.idempotency_key, g.idempotency_scope,
       clock.at - (cardinality($1::text[]) - g.ord) * interval '1 microsecond', clock.at
FROM ROWS FROM (unnest($1::text[]), unnest($2::text[]), unnest($3::text[]),
               jsonb_array_elements($4::jsonb), unnest($5::int[]), unnest($6::smallint[]),
               unnest($7::timestamptz[]), unnest($8::text[]), unnest($9::text[]))
     WITH ORDINALITY AS g (job_type, media_url, prompt, parameters, max_attempts, priority,
                           run_after, idempotency_key, idempotency_scope, ord),
     (SELECT clock_timestamp() AS at) AS clock
ORDER BY g.idempotency_key COLLATE "C", g.ord
ON CONFLICT (idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
    DO NOTHING
RETURNING id, created_at, updated_at;

-- name: get_key_holders
-- The jobs holding the idempotency keys $1: for each key, one probe of the unique index (a
-- LATERAL subquery with LIMIT 1 is a parameterized index scan a key whatever the statistics
-- say; `= ANY($1)` over 10,000 keys is planned as a sequential scan on a table not yet
-- analyzed). Run before create_many's COPY, and after create_keyed_jobs in its transaction
-- with a snapshot of its own: a holder that committed after the insert's snapshot (whose key
-- the insert found taken) is seen here.
SELECT j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result, j.error,
       j.created_at, j.updated_at, j.started_at, j.completed_at, j.processing_time_ms,
       j.attempts, j.max_attempts, j.locked_by, j.locked_until, j.heartbeat_at, j.run_after,
       j.priority, j.idempotency_key, j.idempotency_scope
FROM unnest($1::text[]) AS k (key)
CROSS JOIN LATERAL (
    SELECT id, job_type, status, media_url, prompt, parameters, result, error,
           created_at, updated_at, started_at, completed_at, processing_time_ms,
           attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
           priority, idempotency_key, idempotency_scope
    FROM jobs
    WHERE idempotency_key = k.key
      AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
    LIMIT 1
) AS j;

-- name: get_job_by_id
-- One job by id.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE id = $1::uuid;

-- name: get_job_status
-- Only the status of one job: tells "absent" from "wrong state" after a refused update.
SELECT status FROM jobs WHERE id = $1::uuid;

-- name: get_jobs_by_status
-- Jobs in one status, newest first (jobs_status_created_at_idx read backwards).
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE status = $1::text
ORDER BY created_at DESC, id DESC
LIMIT $2::int;

-- name: get_all_jobs
-- All jobs, newest first, by LIMIT/OFFSET (the plan's get_all; prefer list_jobs_after deep in).
-- Read as one ordered range of jobs_status_created_at_idx per status (the five of
-- jobs_status_check) merged in order (Merge Append): no index on (created_at, id) alone, which
-- every status change would write (migrations/0012). The LIMITs are subqueries, which the
-- planner cannot see into, so it plans the merge and each range to stop early, as it plans a
-- generic LIMIT $n: ordered index scans, analyzed or not. Given the numbers, on a table never
-- analyzed (200k finished + 20k pending jobs, guessed at 90 a status) it read and sorted every
-- range instead, measured. Five index descents a page instead of one. A status added to
-- jobs_status_check needs its range here (tests/test_jobs.py compares them).
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM (
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'pending'
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $1::int::bigint + $2::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'processing'
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $1::int::bigint + $2::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'completed'
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $1::int::bigint + $2::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'failed'
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $1::int::bigint + $2::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'cancelled'
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $1::int::bigint + $2::int))
) AS j
ORDER BY created_at DESC, id DESC
LIMIT (SELECT $1::int) OFFSET (SELECT $2::int);

-- name: list_jobs_after
-- Keyset page: jobs older than the cursor (created_at, id), newest first, read as get_all_jobs
-- reads them from the cursor on: index range scans at any depth, unlike OFFSET, which reads
-- and discards every skipped row.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM (
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'pending'
           AND (created_at, id) < ($1::timestamptz, $2::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $3::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'processing'
           AND (created_at, id) < ($1::timestamptz, $2::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $3::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'completed'
           AND (created_at, id) < ($1::timestamptz, $2::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $3::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'failed'
           AND (created_at, id) < ($1::timestamptz, $2::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $3::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'cancelled'
           AND (created_at, id) < ($1::timestamptz, $2::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $3::int))
) AS j
ORDER BY created_at DESC, id DESC
LIMIT (SELECT $3::int);

-- name: update_job_status
-- Move a job to $2 if the lifecycle allows it. A flag per optional value ($3, $5, $7) says
-- whether the caller passed it, so '' / 0 / {} are stored and omitted values are kept.
-- completed_at and (unless given) processing_time_ms come from the database clock. This is
-- the unguarded (operator's) path: moving to processing takes a lease for holder $9 lasting
-- $10 s and counts an attempt; leaving processing drops the lease (a finished job keeps its
-- last holder in locked_by); back to pending clears the holder and any backoff.
UPDATE jobs
SET status = $2::text,
    updated_at = statement_timestamp(),
    error = CASE WHEN $3::bool THEN $4::text ELSE error END,
    result = CASE WHEN $5::bool THEN $6::jsonb ELSE result END,
    started_at = CASE WHEN $2::text = 'processing' THEN clock_timestamp()
                      WHEN $2::text = 'pending' THEN NULL
                      ELSE started_at END,
    completed_at = CASE WHEN $2::text IN ('completed', 'failed', 'cancelled')
                        THEN clock_timestamp() END,
    processing_time_ms = CASE
        WHEN $7::bool THEN $8::int
        WHEN $2::text IN ('completed', 'failed', 'cancelled') AND started_at IS NOT NULL
            THEN floor(extract(epoch FROM clock_timestamp() - started_at) * 1000)::int
        WHEN $2::text IN ('pending', 'processing') THEN NULL
        ELSE processing_time_ms END,
    attempts = CASE WHEN $2::text = 'processing' THEN attempts + 1 ELSE attempts END,
    locked_by = CASE WHEN $2::text = 'processing' THEN $9::text
                     WHEN $2::text = 'pending' THEN NULL
                     ELSE locked_by END,
    locked_until = CASE WHEN $2::text = 'processing'
                        THEN clock_timestamp() + $10::float8 * interval '1 second' END,
    heartbeat_at = CASE WHEN $2::text = 'processing' THEN clock_timestamp()
                        WHEN $2::text = 'pending' THEN NULL
                        ELSE heartbeat_at END,
    run_after = NULL
WHERE id = $1::uuid
  AND media_store_job_transition_allowed(status, $2::text)
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: start_job_processing
-- Atomically move one pending job to processing under a lease for holder $2 lasting $3 s: of
-- two concurrent callers exactly one wins (the row lock serialises them and the loser's WHERE
-- no longer matches). Counts an attempt, as a claim does.
UPDATE jobs
SET status = 'processing',
    updated_at = statement_timestamp(),
    started_at = clock.at,
    completed_at = NULL,
    processing_time_ms = NULL,
    attempts = attempts + 1,
    locked_by = $2::text,
    locked_until = clock.at + $3::float8 * interval '1 second',
    heartbeat_at = clock.at,
    run_after = NULL
FROM (SELECT clock_timestamp() AS at) AS clock
WHERE id = $1::uuid AND status = 'pending'
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: set_job_priority
-- Give pending job $1 priority $2 (raise or lower it): it is claimed in its new place. Zero
-- rows: no such job, or it is no longer pending (a claim that holds the row lock decides
-- first; this update then finds the job processing).
UPDATE jobs
SET priority = $2::smallint,
    updated_at = statement_timestamp()
WHERE id = $1::uuid AND status = 'pending'
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: delete_job
-- Delete one job; its assets, transcriptions and analysis results go with it (ON DELETE CASCADE).
DELETE FROM jobs WHERE id = $1::uuid RETURNING id;

-- name: count_jobs_by_status
-- Number of jobs per status present in the table (the repository adds the zero counts).
SELECT status, count(*) AS count
FROM jobs
GROUP BY status;

-- ---------------------------------------------------------------------------------------------
-- The work queue: claims under a lease, heartbeats, lease-guarded completion and failure,
-- reclaiming expired leases. Every time comes from the database clock. Every write after the
-- claim is guarded by the lease (id, status 'processing', holder), so a worker that lost its
-- lease changes nothing.
-- The writes on a holder's jobs find them by primary key. Their status guard is written
-- `status IS NOT DISTINCT FROM 'processing'` (status is NOT NULL: the same test) because
-- `status = 'processing'` lets the planner read the processing range of
-- jobs_status_created_at_idx instead, which until the next vacuum holds an entry for every
-- job processed since: measured, a drain's completions slowed as it went, and most on a
-- table not analyzed yet (bitmap scans never mark those entries dead).

-- name: claim_jobs
-- Claim up to $2 runnable pending jobs, oldest first, of the types $4 (NULL: any) for holder $1
-- under a lease of $3 seconds, in one statement. media_store_claim_jobs (migrations/0005)
-- picks and row-locks them SKIP LOCKED, so concurrent claimers never wait for or share a row,
-- always by a range scan of a partial pending index: its plan cannot fall back on a scan and
-- sort of the whole backlog when the table has no statistics yet.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM media_store_claim_jobs($1::text, $2::int, $3::float8, $4::text[])
ORDER BY priority DESC, created_at, id;

-- name: claim_jobs_of_type
-- As claim_jobs for the one job type $4: the function then reads jobs_claim_type_idx, so a
-- worker of a rare type reads only that type's backlog instead of everyone else's.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM media_store_claim_jobs($1::text, $2::int, $3::float8, ARRAY[$4::text])
ORDER BY priority DESC, created_at, id;

-- name: heartbeat_jobs
-- Heartbeat: extend to $3 seconds from now the leases holder $1 still holds among jobs $2;
-- returns their ids, and (cancelled true) those of jobs $2 that were cancelled while $1 held
-- them, marking the cancellation as told (the caller reports the rest as lost). Rows are
-- locked in id order, as by every multi-job write of a holder, so its concurrent writes
-- cannot deadlock.
WITH held AS MATERIALIZED (
    SELECT id
    FROM jobs
    WHERE id = any($2::uuid[])
      AND status IS NOT DISTINCT FROM 'processing'  -- found by id: see the queue notes
      AND locked_by = $1::text
    ORDER BY id
    FOR UPDATE
),
extended AS (
    UPDATE jobs AS j
    SET locked_until = clock.at + $3::float8 * interval '1 second',
        updated_at = statement_timestamp(),
        heartbeat_at = clock.at
    FROM held, (SELECT clock_timestamp() AS at) AS clock
    WHERE j.id = held.id
    RETURNING j.id
),
told AS (
    UPDATE job_cancel_requests AS r
    SET acknowledged_at = coalesce(r.acknowledged_at, clock_timestamp())
    WHERE r.job_id = any($2::uuid[]) AND r.holder = $1::text
    RETURNING r.job_id
)
SELECT id, false AS cancelled FROM extended
UNION ALL
SELECT job_id, true FROM told;

-- name: acknowledge_cancels
-- Mark as told the cancellations of jobs $2 recorded for holder $1; returns their ids. A
-- heartbeat runs it for the jobs it found lost: one that waited on the row lock of a cancel
-- re-read the job after it, but its snapshot predates the cancel's request, so only a new
-- statement sees it (the holder is then told in this beat, not reported merely lost).
UPDATE job_cancel_requests
SET acknowledged_at = coalesce(acknowledged_at, clock_timestamp())
WHERE job_id = any($2::uuid[]) AND holder = $1::text
RETURNING job_id;

-- name: complete_job
-- Complete job $1 if holder $2 still holds it, storing result $3; processing_time_ms is
-- measured on the database clock from the claim. Zero rows: the lease was lost (or no job).
UPDATE jobs
SET status = 'completed',
    updated_at = statement_timestamp(),
    result = $3::jsonb,
    error = NULL,
    completed_at = clock.at,
    processing_time_ms = floor(extract(epoch FROM clock.at - started_at) * 1000)::int,
    locked_until = NULL
FROM (SELECT clock_timestamp() AS at) AS clock
WHERE id = $1::uuid AND status = 'processing' AND locked_by = $2::text
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: complete_many_jobs
-- complete_job for many jobs of holder $1 in one statement: jobs $2 with results $3 (same
-- order). Returns the ids completed; the others' leases were lost (or the jobs are gone).
WITH held AS MATERIALIZED (
    SELECT id
    FROM jobs
    WHERE id = any($2::uuid[])
      AND status IS NOT DISTINCT FROM 'processing'  -- found by id: see the queue notes
      AND locked_by = $1::text
    ORDER BY id
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
JOIN unnest($2::uuid[], $3::jsonb[]) AS done (id, result) ON done.id = held.id,
     (SELECT clock_timestamp() AS at) AS clock
WHERE j.id = held.id
RETURNING j.id;

-- name: fail_job
-- Record error $3 on job $1 if holder $2 still holds it. With $4 (retry) and attempts left it
-- goes back to pending, runnable $5 seconds later; otherwise it is failed for good,
-- keeping its holder and timing. Zero rows: the lease was lost (or no job).
UPDATE jobs
SET status = CASE WHEN $4::bool AND attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    updated_at = statement_timestamp(),
    error = $3::text,
    started_at = CASE WHEN $4::bool AND attempts < max_attempts THEN NULL ELSE started_at END,
    completed_at = CASE WHEN $4::bool AND attempts < max_attempts THEN NULL
                        ELSE clock.at END,
    processing_time_ms = CASE
        WHEN $4::bool AND attempts < max_attempts THEN NULL
        ELSE floor(extract(epoch FROM clock.at - started_at) * 1000)::int END,
    locked_by = CASE WHEN $4::bool AND attempts < max_attempts THEN NULL ELSE locked_by END,
    locked_until = NULL,
    heartbeat_at = CASE WHEN $4::bool AND attempts < max_attempts THEN NULL
                        ELSE heartbeat_at END,
    run_after = CASE WHEN $4::bool AND attempts < max_attempts
                     THEN clock.at + $5::float8 * interval '1 second' END
FROM (SELECT clock_timestamp() AS at) AS clock
WHERE id = $1::uuid AND status = 'processing' AND locked_by = $2::text
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: release_jobs
-- Give back jobs $2 that holder $1 still holds, unfinished (a worker shutting down): they
-- return to pending at once and the interrupted attempt is not counted. Locks in id order.
WITH held AS MATERIALIZED (
    SELECT id
    FROM jobs
    WHERE id = any($2::uuid[])
      AND status IS NOT DISTINCT FROM 'processing'  -- found by id: see the queue notes
      AND locked_by = $1::text
    ORDER BY id
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

-- name: reclaim_expired_jobs
-- Take back every job whose lease ran out: to pending with attempts left, else failed for
-- good; the error names the lost holder. Expired rows are found among the processing jobs
-- (as many as the leases held) on jobs_status_created_at_idx and locked SKIP LOCKED, so every
-- worker may run this at once; a lease extended by a heartbeat that committed meanwhile no
-- longer matches when locked, and is left alone.
WITH expired AS MATERIALIZED (
    SELECT id
    FROM jobs
    WHERE status = 'processing' AND locked_until < clock_timestamp()
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET status = CASE WHEN j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,
    updated_at = statement_timestamp(),
    error = 'lease of ' || j.locked_by || ' expired at ' || j.locked_until::text,
    started_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE j.started_at END,
    completed_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE clock.at END,
    processing_time_ms = CASE
        WHEN j.attempts < j.max_attempts THEN NULL
        ELSE floor(extract(epoch FROM clock.at - j.started_at) * 1000)::int END,
    locked_by = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE j.locked_by END,
    locked_until = NULL,
    heartbeat_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE j.heartbeat_at END
FROM expired, (SELECT clock_timestamp() AS at) AS clock
WHERE j.id = expired.id
RETURNING j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result,
          j.error, j.created_at, j.updated_at, j.started_at, j.completed_at,
          j.processing_time_ms, j.attempts, j.max_attempts, j.locked_by, j.locked_until,
          j.heartbeat_at, j.run_after, j.priority, j.idempotency_key, j.idempotency_scope;

-- ---------------------------------------------------------------------------------------------
-- Operating the queue: cancellation, requeueing, listing with filters, retention, stats.

-- name: cancel_job
-- Cancel job $1 if it is pending or processing, in one statement under its row lock: it is
-- cancelled at once (completed_at now; a processing job keeps its holder in locked_by and its
-- timing). A processing job's cancellation is recorded for its holder, who learns it at its
-- next heartbeat; its later completion or failure is refused by the lease guard (status is
-- no longer processing). A concurrent claim or completion is serialised by the row lock, and
-- the row is re-read after it. Zero rows: no such job, or it is finished.
WITH target AS MATERIALIZED (
    SELECT id, status, locked_by FROM jobs WHERE id = $1::uuid FOR UPDATE
),
cancelled AS (
    UPDATE jobs AS j
    SET status = 'cancelled',
        updated_at = statement_timestamp(),
        completed_at = clock.at,
        processing_time_ms = CASE WHEN j.started_at IS NULL THEN NULL
            ELSE floor(extract(epoch FROM clock.at - j.started_at) * 1000)::int END,
        locked_until = NULL,
        run_after = NULL
    FROM target, (SELECT clock_timestamp() AS at) AS clock
    WHERE j.id = target.id AND target.status IN ('pending', 'processing')
    RETURNING j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result,
              j.error, j.created_at, j.updated_at, j.started_at, j.completed_at,
              j.processing_time_ms, j.attempts, j.max_attempts, j.locked_by, j.locked_until,
              j.heartbeat_at, j.run_after, j.priority, j.idempotency_key, j.idempotency_scope
),
requested AS (
    INSERT INTO job_cancel_requests (job_id, holder)
    SELECT id, locked_by FROM target WHERE status = 'processing'
)
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM cancelled;

-- name: requeue_job
-- Put failed job $1 back to pending with a fresh set of attempts (an operator's retry); its
-- last error is kept until the next outcome. Zero rows: no such job, or it is not failed.
UPDATE jobs
SET status = 'pending',
    updated_at = statement_timestamp(),
    attempts = 0,
    started_at = NULL,
    completed_at = NULL,
    processing_time_ms = NULL,
    locked_by = NULL,
    locked_until = NULL,
    heartbeat_at = NULL,
    run_after = NULL
WHERE id = $1::uuid AND status = 'failed'
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: requeue_failed_jobs
-- requeue_job for up to $2 failed jobs of type $1 (NULL: any), oldest first, read from
-- jobs_status_created_at_idx and locked SKIP LOCKED: the caller repeats it until fewer come
-- back, each batch its own short transaction. Returns the ids requeued. A failed job whose
-- idempotency key another job holds now (the predicate of jobs_idempotency_key_idx) is
-- skipped: requeueing it would break the index (count_requeue_blocked counts them).
WITH picked AS MATERIALIZED (
    SELECT id
    FROM jobs AS f
    WHERE status = 'failed' AND ($1::text IS NULL OR job_type = $1::text)
      AND NOT (f.idempotency_key IS NOT NULL AND EXISTS (  -- jobs_idempotency_key_idx's rule
          SELECT FROM jobs AS h
          WHERE h.idempotency_key = f.idempotency_key AND h.id <> f.id
            AND (h.idempotency_scope = 'forever' OR h.status IN ('pending', 'processing'))))
    ORDER BY created_at, id
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET status = 'pending',
    updated_at = statement_timestamp(),
    attempts = 0,
    started_at = NULL,
    completed_at = NULL,
    processing_time_ms = NULL,
    locked_by = NULL,
    locked_until = NULL,
    heartbeat_at = NULL,
    run_after = NULL
FROM picked
WHERE j.id = picked.id
RETURNING j.id;

-- name: count_requeue_blocked
-- How many failed jobs of type $1 (NULL: any) requeue_failed_jobs skips: their idempotency
-- key is held by another job now (pending or processing, or kept forever).
SELECT count(*) AS count
FROM jobs AS f
WHERE status = 'failed' AND ($1::text IS NULL OR job_type = $1::text)
  AND f.idempotency_key IS NOT NULL
  AND EXISTS (
      SELECT FROM jobs AS h
      WHERE h.idempotency_key = f.idempotency_key AND h.id <> f.id
        AND (h.idempotency_scope = 'forever' OR h.status IN ('pending', 'processing')));

-- name: list_jobs_of_type
-- Keyset page of jobs older than the cursor ($2, $3), newest first, of type $1 (NULL: any),
-- read as list_jobs_after reads them (a rare type's page reads past the other types' jobs).
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM (
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'pending'
           AND ($1::text IS NULL OR job_type = $1::text)
           AND (created_at, id) < ($2::timestamptz, $3::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $4::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'processing'
           AND ($1::text IS NULL OR job_type = $1::text)
           AND (created_at, id) < ($2::timestamptz, $3::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $4::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'completed'
           AND ($1::text IS NULL OR job_type = $1::text)
           AND (created_at, id) < ($2::timestamptz, $3::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $4::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'failed'
           AND ($1::text IS NULL OR job_type = $1::text)
           AND (created_at, id) < ($2::timestamptz, $3::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $4::int))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE status = 'cancelled'
           AND ($1::text IS NULL OR job_type = $1::text)
           AND (created_at, id) < ($2::timestamptz, $3::uuid)
     ORDER BY created_at DESC, id DESC
     LIMIT (SELECT $4::int))
) AS j
ORDER BY created_at DESC, id DESC
LIMIT (SELECT $4::int);

-- name: list_jobs_in_status
-- Keyset page of jobs in status $1 older than the cursor ($3, $4), newest first, of type $2
-- (NULL: any): a range of jobs_status_created_at_idx read backwards.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE status = $1::text
  AND ($2::text IS NULL OR job_type = $2::text)
  AND (created_at, id) < ($3::timestamptz, $4::uuid)
ORDER BY status DESC, created_at DESC, id DESC
LIMIT $5::int;

-- name: list_jobs_with_key
-- Keyset page of the jobs created with idempotency key $1, older than the cursor ($4, $5),
-- newest first, in status $2 and of type $3 when given (NULL: any). Two disjoint sets, each
-- in its own index (migrations/0012): the job that holds the key now, at most one (scope
-- forever, or active while pending or processing), one probe of the unique
-- jobs_idempotency_key_idx; and the finished jobs of an active key, whose key is free again,
-- the key's range of jobs_key_created_at_idx read backwards up to the page's length (its
-- LIMIT a subquery, as in get_all_jobs: an ordered index scan, analyzed or not).
-- The two are then put in order by a sort of at most $6 + 1 rows: the holder has no order
-- to merge by (an index on the key alone).
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM (
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE idempotency_key = $1::text
       AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
       AND ($2::text IS NULL OR status = $2::text)
       AND ($3::text IS NULL OR job_type = $3::text)
       AND (created_at, id) < ($4::timestamptz, $5::uuid))
    UNION ALL
    (SELECT id, job_type, status, media_url, prompt, parameters, result, error,
            created_at, updated_at, started_at, completed_at, processing_time_ms,
            attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
            priority, idempotency_key, idempotency_scope
     FROM jobs
     WHERE idempotency_key = $1::text
       AND idempotency_scope = 'active' AND status NOT IN ('pending', 'processing')
       AND ($2::text IS NULL OR status = $2::text)
       AND ($3::text IS NULL OR job_type = $3::text)
       AND (created_at, id) < ($4::timestamptz, $5::uuid)
     ORDER BY idempotency_key DESC, created_at DESC, id DESC
     LIMIT (SELECT $6::int))
) AS j
ORDER BY idempotency_key DESC, created_at DESC, id DESC
LIMIT $6::int;

-- name: get_purge_cutoff
-- The database's time $1 seconds ago: jobs finished before it are purged.
SELECT clock_timestamp() - $1::float8 * interval '1 second' AS cutoff;

-- name: purge_finished_jobs
-- Delete up to $5 jobs in the finished status $1 that finished before $2, after the keyset
-- position ($3, $4) in (completed_at, id) order, with everything they produced (ON DELETE
-- CASCADE). media_store_finished_jobs (migrations/0008) picks them by an ordered range scan
-- of jobs_finished_idx, analyzed or not, locked SKIP LOCKED (an operator's requeue in flight
-- keeps its job) and re-read when locked, so a job no longer finished is left alone. Counts
-- what goes, children counted before the cascade runs (at the statement's end; the locked
-- jobs can get no new children meanwhile), and the batch's last position.
WITH doomed AS MATERIALIZED (
    SELECT id, completed_at
    FROM media_store_finished_jobs($1::text, $2::timestamptz, $3::timestamptz, $4::uuid,
                                   $5::int, true)
),
gone AS (
    DELETE FROM jobs AS j USING doomed WHERE j.id = doomed.id AND j.status = $1::text
    RETURNING j.id
),
last AS (
    SELECT completed_at, id FROM doomed ORDER BY completed_at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM gone) AS jobs,
       (SELECT count(*) FROM media_assets WHERE job_id IN (SELECT id FROM gone))
           AS media_assets,
       (SELECT count(*) FROM transcriptions WHERE job_id IN (SELECT id FROM gone))
           AS transcriptions,
       (SELECT count(*) FROM transcription_word_segments AS s
        JOIN transcriptions AS t ON t.id = s.transcription_id
        WHERE t.job_id IN (SELECT id FROM gone)) AS word_segments,
       (SELECT coalesce(sum(s.word_count), 0)::bigint FROM transcription_word_segments AS s
        JOIN transcriptions AS t ON t.id = s.transcription_id
        WHERE t.job_id IN (SELECT id FROM gone)) AS words,
       (SELECT count(*) FROM analysis_results WHERE job_id IN (SELECT id FROM gone))
           AS analysis_results,
       (SELECT completed_at FROM last) AS last_completed_at,
       (SELECT id FROM last) AS last_id;

-- name: count_purgeable_jobs
-- purge_finished_jobs without deleting or locking anything (a dry run): the same batch of up
-- to $5 jobs in status $1 finished before $2 after ($3, $4), and what they hold.
WITH doomed AS MATERIALIZED (
    SELECT id, completed_at
    FROM media_store_finished_jobs($1::text, $2::timestamptz, $3::timestamptz, $4::uuid,
                                   $5::int, false)
),
last AS (
    SELECT completed_at, id FROM doomed ORDER BY completed_at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM doomed) AS jobs,
       (SELECT count(*) FROM media_assets WHERE job_id IN (SELECT id FROM doomed))
           AS media_assets,
       (SELECT count(*) FROM transcriptions WHERE job_id IN (SELECT id FROM doomed))
           AS transcriptions,
       (SELECT count(*) FROM transcription_word_segments AS s
        JOIN transcriptions AS t ON t.id = s.transcription_id
        WHERE t.job_id IN (SELECT id FROM doomed)) AS word_segments,
       (SELECT coalesce(sum(s.word_count), 0)::bigint FROM transcription_word_segments AS s
        JOIN transcriptions AS t ON t.id = s.transcription_id
        WHERE t.job_id IN (SELECT id FROM doomed)) AS words,
       (SELECT count(*) FROM analysis_results WHERE job_id IN (SELECT id FROM doomed))
           AS analysis_results,
       (SELECT completed_at FROM last) AS last_completed_at,
       (SELECT id FROM last) AS last_id;

-- name: get_job_stats
-- The queue at a glance, one row per job type of $1 and a last row (job_type NULL) for all
-- of them, from small indexes only, whatever the number of finished jobs:
-- pending (jobs_claim_type_idx, pending jobs only), the creation of the oldest pending job
-- that is due now (scheduled or backing off until later: not a backlog yet), not runnable yet (jobs_delayed_idx, pending jobs with a backoff), processing
-- and expired leases (the processing range of jobs_status_created_at_idx: as many as the
-- leases held), and failed in the last hour, cancelled in the last hour, completed in the
-- last minute (ranges of jobs_finished_idx, index-only: job_type is included).
-- The finished totals (last row only) are estimates: the table's row estimate (pg_class)
-- times each status's frequency in the planner's statistics (pg_stats), NULL until the
-- table was analyzed; counting them exactly would read every finished job.
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS at),
recent AS MATERIALIZED (  -- each range read once, whatever the number of types
    SELECT f.job_type, f.status, count(*) AS n
    FROM clock, LATERAL (
        SELECT job_type, status FROM jobs
        WHERE status = 'failed' AND completed_at > clock.at - interval '1 hour'
        UNION ALL
        SELECT job_type, status FROM jobs
        WHERE status = 'cancelled' AND completed_at > clock.at - interval '1 hour'
        UNION ALL
        SELECT job_type, status FROM jobs
        WHERE status = 'completed' AND completed_at > clock.at - interval '1 minute'
    ) AS f
    GROUP BY f.job_type, f.status
),
per_type AS MATERIALIZED (
    SELECT t.job_type,
           (SELECT count(*) FROM jobs AS j
            WHERE j.status = 'pending' AND j.job_type = t.job_type) AS pending,
           (SELECT count(*) FROM jobs AS j
            WHERE j.status = 'pending' AND j.job_type = t.job_type
              AND j.run_after > clock.at) AS delayed,
           (SELECT min(j.created_at) FROM jobs AS j
            WHERE j.status = 'pending' AND j.job_type = t.job_type
              AND coalesce(j.run_after, j.created_at) <= clock.at) AS oldest_pending_at,
           (SELECT count(*) FROM jobs AS j
            WHERE j.status = 'processing' AND j.job_type = t.job_type) AS processing,
           (SELECT count(*) FROM jobs AS j
            WHERE j.status = 'processing' AND j.job_type = t.job_type
              AND j.locked_until < clock.at) AS expired_leases,
           coalesce((SELECT r.n FROM recent AS r
                     WHERE r.status = 'failed' AND r.job_type = t.job_type), 0)
               AS failed_last_hour,
           coalesce((SELECT r.n FROM recent AS r
                     WHERE r.status = 'cancelled' AND r.job_type = t.job_type), 0)
               AS cancelled_last_hour,
           coalesce((SELECT r.n FROM recent AS r
                     WHERE r.status = 'completed' AND r.job_type = t.job_type), 0)
               AS completed_last_minute
    FROM unnest($1::text[]) AS t (job_type), clock
),
estimate AS MATERIALIZED (
    SELECT v.status, round(c.reltuples * v.freq)::bigint AS n
    FROM pg_class AS c
    JOIN pg_stats AS s
      ON s.schemaname = current_schema() AND s.tablename = 'jobs' AND s.attname = 'status'
    CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
        AS v (status, freq)
    WHERE c.oid = 'jobs'::regclass AND c.reltuples >= 0
)
SELECT p.job_type, p.pending, p.pending - p.delayed AS claimable,
       extract(epoch FROM clock.at - p.oldest_pending_at)::float8 AS oldest_pending_s,
       p.processing, p.expired_leases, p.failed_last_hour, p.cancelled_last_hour,
       p.completed_last_minute,
       NULL::bigint AS completed_estimate, NULL::bigint AS failed_estimate,
       NULL::bigint AS cancelled_estimate, clock.at
FROM per_type AS p, clock
UNION ALL
SELECT NULL, sum(p.pending)::bigint, sum(p.pending - p.delayed)::bigint,
       extract(epoch FROM clock.at - min(p.oldest_pending_at))::float8,
       sum(p.processing)::bigint, sum(p.expired_leases)::bigint,
       sum(p.failed_last_hour)::bigint, sum(p.cancelled_last_hour)::bigint,
       sum(p.completed_last_minute)::bigint,
       CASE WHEN EXISTS (SELECT FROM estimate) THEN
           coalesce((SELECT n FROM estimate WHERE status = 'completed'), 0) END,
       CASE WHEN EXISTS (SELECT FROM estimate) THEN
           coalesce((SELECT n FROM estimate WHERE status = 'failed'), 0) END,
       CASE WHEN EXISTS (SELECT FROM estimate) THEN
           coalesce((SELECT n FROM estimate WHERE status = 'cancelled'), 0) END,
       clock.at
FROM per_type AS p, clock
GROUP BY clock.at;
