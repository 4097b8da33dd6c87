-- Jobs: the plan's JobRepository operations, in the order of media_store/repositories/jobs.py.
-- Columns are listed in the order of media_store.models.Job.

-- name: create_job
-- Insert a pending job; id, status and timestamps come from the database defaults.
INSERT INTO jobs (job_type, media_url, prompt, parameters)
VALUES ($1::text, $2::text, $3::text, $4::jsonb)
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms;

-- name: get_job
-- One job by id.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms
FROM jobs
WHERE id = $1::uuid;

-- name: get_job_status
-- Only the status of one job: tells "absent" from "wrong state" after a refused update.
SELECT status FROM jobs WHERE id = $1::uuid;

-- name: list_jobs_by_status
-- Jobs in one status, newest first (jobs_status_created_at_idx read backwards).
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms
FROM jobs
WHERE status = $1::text
ORDER BY created_at DESC, id DESC
LIMIT $2::int;

-- name: list_jobs
-- All jobs, newest first, by LIMIT/OFFSET (the plan's get_all; prefer list_jobs_after deep in).
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms
FROM jobs
ORDER BY created_at DESC, id DESC
LIMIT $1::int OFFSET $2::int;

-- name: list_jobs_after
-- Keyset page: jobs older than the cursor (created_at, id), newest first; an index range scan
-- at any depth, unlike OFFSET which reads and discards every skipped row.
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms
FROM jobs
WHERE (created_at, id) < ($1::timestamptz, $2::uuid)
ORDER BY created_at DESC, id DESC
LIMIT $3::int;

-- name: update_job_status
-- Move a job to $2 if the lifecycle allows it. A flag per optional value ($3, $5, $7) says
-- whether the caller passed it, so '' / 0 / {} are stored and omitted values are kept.
-- completed_at and (unless given) processing_time_ms come from the database clock.
UPDATE jobs
SET status = $2::text,
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
        ELSE processing_time_ms END
WHERE id = $1::uuid
  AND media_store_job_transition_allowed(status, $2::text)
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms;

-- name: start_job_processing
-- Atomically move one pending job to processing: of two concurrent callers exactly one wins
-- (the row lock serialises them and the loser's WHERE no longer matches).
UPDATE jobs
SET status = 'processing',
    started_at = clock_timestamp(),
    completed_at = NULL,
    processing_time_ms = NULL
WHERE id = $1::uuid AND status = 'pending'
RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
          created_at, updated_at, started_at, completed_at, processing_time_ms;

-- name: delete_job
-- Delete one job; its assets, transcriptions and analysis results go with it (ON DELETE CASCADE).
DELETE FROM jobs WHERE id = $1::uuid RETURNING id;

-- name: count_jobs_by_status
-- Number of jobs per status present in the table (the repository adds the zero counts).
SELECT status, count(*) AS count
FROM jobs
GROUP BY status;
