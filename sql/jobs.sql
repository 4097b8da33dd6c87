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

-- name: create_jobs
-- Insert many pending jobs without idempotency keys in one statement from parallel arrays, all
-- or nothing. updated_at is the statement's clock, created_at that minus one microsecond per
-- later item: the batch is first in first out in input order whatever the clock's resolution,
-- no job of it is created in the future, and each returned row tells its item, counted from
-- the end (updated_at - created_at in microseconds), whatever order rows come back in: no join
-- of the input with the inserted rows (without statistics the planner guessed 10,000 x 10,000
-- rows for one, priced the statement above jit_above_cost and spent 1.5 s compiling it,
-- measured). Returns what the database chose (id, created_at, updated_at): the rest of a new
-- job is what was sent and the column defaults, which the caller fills in (returning every
-- column cost 10,000 jobs about half as much time again as inserting them, measured).
INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after,
                  idempotency_key, idempotency_scope, created_at, updated_at)
SELECT g.job_type, g.media_url, g.prompt, g.parameters, g.max_attempts, g.priority,
       g.run_after, g.idempotency_key, g.idempotency_scope,
       clock.at - (cardinality($1::text[]) - g.ord) * interval '1 microsecond', clock.at
FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::smallint[],
            $7::timestamptz[], $8::text[], $9::text[])
     WITH ORDINALITY AS g (job_type, media_url, prompt, parameters, max_attempts, priority,
                           run_after, idempotency_key, idempotency_scope, ord),
     (SELECT clock_timestamp() AS at) AS clock
RETURNING id, created_at, updated_at;

-- name: create_keyed_jobs
-- create_jobs for a batch with idempotency keys: an item whose key another job holds inserts
-- nothing and its holder is returned instead, whole; a created job comes back as create_jobs
-- returns it (id, created_at, updated_at; the other columns NULL, which tells the two apart).
-- The unique index decides races, as in enqueue_job; a keyed item whose holder the statement's
-- snapshot misses has no row, and the caller runs it again in the same transaction. Inserted
-- in key order (bytewise): concurrent batches sharing keys then wait for each other's keys in
-- one order and cannot deadlock (measured: in input order, 16 batches of 20 shared keys in
-- rotated orders deadlocked at once); created_at keeps the input order. Holders are found by
-- the unique index, one probe a key.
WITH created AS (
    INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after,
                      idempotency_key, idempotency_scope, created_at, updated_at)
    SELECT g.job_type, g.media_url, g.prompt, g.parameters, g.max_attempts, g.priority,
           g.run_after, g.idempotency_key, g.idempotency_scope,
           clock.at - (cardinality($1::text[]) - g.ord) * interval '1 microsecond', clock.at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::smallint[],
                $7::timestamptz[], $8::text[], $9::text[])
         WITH ORDINALITY AS g (job_type, media_url, prompt, parameters, max_attempts, priority,
                               run_after, idempotency_key, idempotency_scope, ord),
         (SELECT clock_timestamp() AS at) AS clock
    ORDER BY g.idempotency_key COLLATE "C", g.ord
    ON CONFLICT (idempotency_key)
        WHERE idempotency_key IS NOT NULL
          AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
        DO NOTHING
    RETURNING id, created_at, updated_at, idempotency_key
)
SELECT id, NULL::varchar AS job_type, NULL::varchar AS status, NULL::text AS media_url,
       NULL::text AS prompt, NULL::jsonb AS parameters, NULL::jsonb AS result,
       NULL::text AS error, created_at, updated_at, NULL::timestamptz AS started_at,
       NULL::timestamptz AS completed_at, NULL::int AS processing_time_ms,
       NULL::int AS attempts, NULL::int AS max_attempts, NULL::varchar AS locked_by,
       NULL::timestamptz AS locked_until, NULL::timestamptz AS heartbeat_at,
       NULL::timestamptz AS run_after, NULL::smallint AS priority,
       NULL::varchar AS idempotency_key, NULL::varchar AS idempotency_scope
FROM created
UNION ALL
SELECT j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result, j.error,
       j.created_at, j.updated_at, j.started_at, j.completed_at, j.processing_time_ms,
       j.attempts, j.max_attempts, j.locked_by, j.locked_until, j.heartbeat_at, j.run_after,
       j.priority, j.idempotency_key, j.idempotency_scope
FROM unnest($8::text[]) AS k (key)
JOIN jobs AS j
  ON j.idempotency_key = k.key
 AND (j.idempotency_scope = 'forever' OR j.status IN ('pending', 'processing'))
WHERE NOT EXISTS (SELECT FROM created AS c WHERE c.idempotency_key = k.key);

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
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
ORDER BY created_at DESC, id DESC
LIMIT $1::int OFFSET $2::int;

-- name: list_jobs_after
-- Keyset page: jobs older than the cursor (created_at, id), newest first; an index range scan
-- at any depth, unlike OFFSET which reads and discards every skipped row.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE (created_at, id) < ($1::timestamptz, $2::uuid)
ORDER BY created_at DESC, id DESC
LIMIT $3::int;

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
    completed_at = CASE WHEN $2::text IN ('completed', 'failed') THEN clock_timestamp() END,
    processing_time_ms = CASE
        WHEN $7::bool THEN $8::int
        WHEN $2::text IN ('completed', 'failed') AND started_at IS NOT NULL
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
-- returns their ids (the caller reports the others as lost). Rows are locked in id order, as
-- by every multi-job write of a holder, so its concurrent writes cannot deadlock.
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
SET locked_until = clock.at + $3::float8 * interval '1 second',
    updated_at = statement_timestamp(),
    heartbeat_at = clock.at
FROM held, (SELECT clock_timestamp() AS at) AS clock
WHERE j.id = held.id
RETURNING j.id;

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
