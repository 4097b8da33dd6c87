-- Operating the queue: cancellation, requeueing, retention, stats; in the order of
-- media_store/repositories/admin.py. Columns are listed in the order of media_store.models.Job.
-- Every UPDATE sets updated_at = statement_timestamp() (see jobs.sql).

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
        JOIN transcriptions AS t ON t.id = s.transcription_id AND t.job_id = s.job_id
        WHERE t.job_id IN (SELECT id FROM gone)) AS word_segments,
       (SELECT coalesce(sum(s.word_count), 0)::bigint FROM transcription_word_segments AS s
        JOIN transcriptions AS t ON t.id = s.transcription_id AND t.job_id = s.job_id
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
        JOIN transcriptions AS t ON t.id = s.transcription_id AND t.job_id = s.job_id
        WHERE t.job_id IN (SELECT id FROM doomed)) AS word_segments,
       (SELECT coalesce(sum(s.word_count), 0)::bigint FROM transcription_word_segments AS s
        JOIN transcriptions AS t ON t.id = s.transcription_id AND t.job_id = s.job_id
        WHERE t.job_id IN (SELECT id FROM doomed)) AS words,
       (SELECT count(*) FROM analysis_results WHERE job_id IN (SELECT id FROM doomed))
           AS analysis_results,
       (SELECT completed_at FROM last) AS last_completed_at,
       (SELECT id FROM last) AS last_id;

-- name: get_job_stats
-- The queue at a glance, one row per job type of $1 and a last row (job_type NULL) for all
-- of them, from small indexes only, whatever the number of finished jobs:
-- pending (jobs_claim_type_idx, pending jobs only), since when the longest-waiting due job
-- has been due (coalesce(run_after, created_at): its scheduled start or the end of its
-- backoff, else its creation; jobs not due yet are no backlog), not due yet
-- (jobs_delayed_idx: run_after ahead, scheduled or backing off), processing
-- and expired leases (the processing range of jobs_status_created_at_idx: as many as the
-- leases held), and failed in the last hour, cancelled in the last hour, completed in the
-- last minute (ranges of jobs_finished_idx, index-only: job_type is included). Those ranges
-- are bounded by statement_timestamp() written in place, not by the clock CTE: the planner
-- evaluates a stable call when it estimates the range (also for a generic plan), where a
-- value from a CTE is guessed at a third of the finished jobs, which after an ANALYZE
-- without a fresh VACUUM made the recent completions a sequential scan of the table. The
-- clock is statement_timestamp() as well, so every figure is as of one instant.
-- The finished totals (last row only) are estimates: the table's row estimate (pg_class)
-- times each status's frequency in the planner's statistics (pg_stats), NULL until the
-- table was analyzed; counting them exactly would read every finished job.
WITH clock AS MATERIALIZED (SELECT statement_timestamp() AS at),
recent AS MATERIALIZED (  -- each range read once, whatever the number of types
    SELECT f.job_type, f.status, count(*) AS n
    FROM (
        SELECT job_type, status FROM jobs
        WHERE status = 'failed' AND completed_at > statement_timestamp() - interval '1 hour'
        UNION ALL
        SELECT job_type, status FROM jobs
        WHERE status = 'cancelled' AND completed_at > statement_timestamp() - interval '1 hour'
        UNION ALL
        SELECT job_type, status FROM jobs
        WHERE status = 'completed' AND completed_at > statement_timestamp() - interval '1 minute'
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
           (SELECT min(coalesce(j.run_after, j.created_at)) FROM jobs AS j
            WHERE j.status = 'pending' AND j.job_type = t.job_type
              AND coalesce(j.run_after, j.created_at) <= clock.at) AS oldest_due_at,
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
       extract(epoch FROM clock.at - p.oldest_due_at)::float8 AS oldest_pending_s,
       p.processing, p.expired_leases, p.failed_last_hour, p.cancelled_last_hour,
       p.completed_last_minute,
       NULL::bigint AS completed_estimate, NULL::bigint AS failed_estimate,
       NULL::bigint AS cancelled_estimate, clock.at
FROM per_type AS p, clock
UNION ALL
SELECT NULL, sum(p.pending)::bigint, sum(p.pending - p.delayed)::bigint,
       extract(epoch FROM clock.at - min(p.oldest_due_at))::float8,
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
