-- The work queue, in the order of media_store/repositories/queue.py: claims under a lease, heartbeats, lease-guarded completion and failure,
-- reclaiming expired leases. Every time comes from the database clock. Every write after the
-- claim is guarded by the lease (id, status 'processing', holder), so a worker that lost its
-- lease changes nothing.
-- The batch writes on a holder's jobs (heartbeat, batch completion, release: functions since
-- migrations/0015) find them by primary key. Their status guard is written
-- `status IS NOT DISTINCT FROM 'processing'` (status is NOT NULL: the same test) because
-- `status = 'processing'` lets the planner read the processing range of
-- jobs_status_created_at_idx instead, which until the next vacuum holds an entry for every
-- job processed since: measured, a drain's completions slowed as it went, and most on a
-- table not analyzed yet (bitmap scans never mark those entries dead). The single-job
-- complete_job and fail_job keep `status = 'processing'`: it keeps them on an index
-- (jobs_status_created_at_idx) at every table size, an empty analyzed one included, where a
-- plain statement by primary key alone may be planned as a sequential scan (migrations/0015).
-- Columns are listed in the order of media_store.models.Job.

-- name: claim_jobs
-- Claim up to $2 runnable pending jobs, oldest first, of the types $4 (NULL: any) for holder $1
-- under a lease of $3 seconds, in one statement. media_store_claim_jobs (migrations/0005)
-- picks and row-locks them SKIP LOCKED, so concurrent claimers never wait for or share a row,
-- always by range scans of a partial pending index: its plan cannot fall back on a scan and
-- sort of the whole backlog when the table has no statistics yet. It walks the index one
-- priority at a time (migrations/0013), each range bounded by the due time, so jobs scheduled
-- for later are never read. Given one type, it reads jobs_claim_type_idx, so a worker of a
-- rare type reads only that type's backlog instead of everyone else's.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM media_store_claim_jobs($1::text, $2::int, $3::float8, $4::text[])
ORDER BY priority DESC, created_at, id;

-- name: claim_traced_jobs
-- claim_jobs for a traced worker: the claimed jobs (columns of claim_jobs, same order) and the
-- trace context each was created in (traceparent and tracestate, NULL when none), in one
-- statement: reading the contexts separately cost a traced worker a round trip a batch. The
-- context is read by primary key, one lookup per claimed job (a lateral subquery with its LIMIT,
-- which the planner cannot turn into a join: a plain join hashed the whole table, 1,000-5,000
-- rows, for each claim of 10), as two plain columns (an array of the two cost the server its
-- construction and the driver its decoding, a job each).
SELECT c.id, c.job_type, c.status, c.media_url, c.prompt, c.parameters, c.result, c.error,
       c.created_at, c.updated_at, c.started_at, c.completed_at, c.processing_time_ms,
       c.attempts, c.max_attempts, c.locked_by, c.locked_until, c.heartbeat_at, c.run_after,
       c.priority, c.idempotency_key, c.idempotency_scope,
       t.traceparent::text AS traceparent, t.tracestate::text AS tracestate
FROM media_store_claim_jobs($1::text, $2::int, $3::float8, $4::text[]) AS c
LEFT JOIN LATERAL (
    SELECT x.traceparent, x.tracestate
    FROM job_trace_contexts AS x
    WHERE x.job_id = c.id
    LIMIT 1
) AS t ON true
ORDER BY c.priority DESC, c.created_at, c.id;

-- name: heartbeat_jobs
-- Heartbeat: extend to $3 seconds from now the leases holder $1 still holds among jobs $2;
-- returns their ids, and (cancelled true) those of jobs $2 that were cancelled while $1 held
-- them, marking the cancellation as told (the caller reports the rest as lost). Rows are
-- locked in id order, as by every multi-job write of a holder, so its concurrent writes
-- cannot deadlock. media_store_heartbeat_jobs (migrations/0015) runs it with index paths
-- only, so that a plan cached while jobs was small cannot scan it when it has grown.
SELECT id, cancelled
FROM media_store_heartbeat_jobs($1::text, $2::uuid[], $3::float8);

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
-- media_store_complete_jobs (migrations/0015) locks them in id order and updates them, by
-- index paths only (see heartbeat_jobs).
SELECT id
FROM media_store_complete_jobs($1::text, $2::uuid[], $3::jsonb[]) AS done (id);

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
-- media_store_release_jobs (migrations/0015): index paths only (see heartbeat_jobs).
SELECT id
FROM media_store_release_jobs($1::text, $2::uuid[]) AS released (id);

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
