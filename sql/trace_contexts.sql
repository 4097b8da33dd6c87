-- The trace context jobs were created in (job_trace_contexts, migrations/0014), in the order of
-- media_store/repositories/trace_contexts.py: written only by a traced Store, read only by a
-- traced worker. Columns of jobs are listed in the order of media_store.models.Job.

-- name: create_traced_job
-- create_job for a traced Store: the job and the trace context it was created in (traceparent
-- $8, tracestate $9), in one statement, so that no worker can claim the job before its
-- context is there.
WITH created AS (
    INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after)
    VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::int, $6::smallint, $7::timestamptz)
    RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
              created_at, updated_at, started_at, completed_at, processing_time_ms,
              attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
              priority, idempotency_key, idempotency_scope
),
traced AS (
    INSERT INTO job_trace_contexts (job_id, traceparent, tracestate)
    SELECT id, $8::text, $9::text FROM created
)
SELECT id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM created;

-- name: save_job_trace_contexts
-- Keep trace context (traceparent $2, tracestate $3) for the jobs $1 just created (enqueue,
-- create_many of a traced Store); a job that already has one keeps it.
INSERT INTO job_trace_contexts (job_id, traceparent, tracestate)
SELECT job_id, $2::text, $3::text
FROM unnest($1::uuid[]) AS t (job_id)
ON CONFLICT (job_id) DO NOTHING;

-- name: get_job_trace_contexts
-- The trace contexts of the jobs $1 (a claimed batch) that have one, by primary key.
SELECT job_id, traceparent, tracestate
FROM job_trace_contexts
WHERE job_id = any($1::uuid[]);
