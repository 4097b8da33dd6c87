-- Jobs: create, read and list them, move one by hand (the operator's path), delete one; in the
-- order of media_store/repositories/jobs.py (the reads of JobReads first, then the writes of
-- JobRepository). The work queue is in queue.sql, bulk and idempotent creation in enqueue.sql,
-- operating the queue in admin.sql, what a refused write reads in job_refusals.sql.
-- Columns are listed in the order of media_store.models.Job.
-- Every UPDATE sets updated_at = statement_timestamp(), the database's time of the statement:
-- jobs_touch_updated_at (migrations/0005) then has nothing to do for the row, and skips the
-- PL/pgSQL call it makes for any other update.

-- name: get_job_by_id
-- One job by id.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE id = $1::uuid;

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
-- All jobs, newest first, by LIMIT/OFFSET (the plan's get_all; prefer list_jobs_of_type deep in).
-- Read as one ordered range of jobs_status_created_at_idx per status (the five of
-- jobs_status_check) merged in order (Merge Append): no index on (created_at, id) alone, which
-- every status change would write (migrations/0012). The LIMITs are subqueries, which the
-- planner cannot see into, so it plans the merge and each range to stop early, as it plans a
-- generic LIMIT $n: ordered index scans, analyzed or not. Given the numbers, on a table never
-- analyzed (200k finished + 20k pending jobs, guessed at 90 a status) it read and sorted every
-- range instead, measured. Five index descents a page instead of one. A status added to
-- jobs_status_check needs its range here (tests/repositories/test_jobs.py compares them).
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

-- name: list_jobs_of_type
-- Keyset page: jobs older than the cursor ($2, $3), newest first, of type $1 (NULL: any), read
-- as get_all_jobs reads them from the cursor on: index range scans at any depth, unlike
-- OFFSET, which reads and discards every skipped row (a rare type's page reads past the other
-- types' jobs).
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

-- name: count_jobs_by_status
-- Number of jobs per status present in the table (the repository adds the zero counts).
SELECT status, count(*) AS count
FROM jobs
GROUP BY status;

-- name: create_job
-- Insert a pending job without an idempotency key; id, status and timestamps come from the
-- database defaults. run_after NULL: claimable at once.
INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after)
VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::int, $6::smallint, $7::timestamptz)
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

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
-- no longer matches). Counts an attempt, as a claim does. The status test is written
-- `IS NOT DISTINCT FROM` (status is NOT NULL: the same test) so that no plan reads a claim
-- index for it: `status = 'pending'` matches their predicate, and on a small table never
-- analyzed the generic plan scanned all of jobs_claim_type_idx, testing each entry's id
-- (since migrations/0019, which took the id out of it, fetching each entry's row).
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
WHERE id = $1::uuid AND status IS NOT DISTINCT FROM 'pending'
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: set_job_priority
-- Give pending job $1 priority $2 (raise or lower it): it is claimed in its new place. Zero
-- rows: no such job, or it is no longer pending (a claim that holds the row lock decides
-- first; this update then finds the job processing). The status test as start_job_processing's.
UPDATE jobs
SET priority = $2::smallint,
    updated_at = statement_timestamp()
WHERE id = $1::uuid AND status IS NOT DISTINCT FROM 'pending'
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms,
          attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
          priority, idempotency_key, idempotency_scope;

-- name: delete_job
-- Delete one job; its assets, transcriptions and analysis results go with it (ON DELETE CASCADE).
DELETE FROM jobs WHERE id = $1::uuid RETURNING id;
