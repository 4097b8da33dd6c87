-- Reverts 0008. Cancelled jobs have no place in the lifecycle of 0001: they become failed
-- (finished, never claimed again), their error saying they were cancelled, before the CHECK
-- is narrowed. The lifecycle trigger would refuse that move (cancelled is final), so it is
-- off for this one statement, inside the migration's transaction.
ALTER TABLE jobs DISABLE TRIGGER jobs_status_transition;
UPDATE jobs
SET status = 'failed',
    error = coalesce(error || ' ', '') || '(cancelled; 0008 rolled back)',
    updated_at = statement_timestamp()
WHERE status = 'cancelled';
ALTER TABLE jobs ENABLE TRIGGER jobs_status_transition;

DROP FUNCTION IF EXISTS media_store_finished_jobs(
    text, timestamptz, timestamptz, uuid, integer, boolean
);
DROP INDEX IF EXISTS jobs_delayed_idx;
DROP INDEX IF EXISTS jobs_finished_idx;
DROP TABLE IF EXISTS job_cancel_requests;

ALTER TABLE jobs
    DROP CONSTRAINT jobs_completed_at_check,
    ADD CONSTRAINT jobs_completed_at_check CHECK (
        (status IN ('completed', 'failed')) = (completed_at IS NOT NULL)
    ),
    DROP CONSTRAINT jobs_status_check,
    ADD CONSTRAINT jobs_status_check
        CHECK (status IN ('pending', 'processing', 'completed', 'failed'));

CREATE OR REPLACE FUNCTION media_store_job_transition_allowed(from_status text, to_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (from_status = 'pending'    AND to_status = 'processing')
        OR (from_status = 'processing' AND to_status IN ('completed', 'failed', 'pending'))
        OR (from_status = 'failed'     AND to_status = 'pending')
$$;
