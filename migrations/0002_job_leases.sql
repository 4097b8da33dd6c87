-- The jobs table becomes a work queue many worker processes share: a job is claimed under a
-- lease (a holder and an expiry), kept alive by heartbeats, retried up to max_attempts, and
-- taken back from a holder that stopped beating. Constraints tie the lease columns to the
-- status, so no client can leave a processing job without a holder or a pending job with one.
--
-- Existing rows are kept: a processing row from 0001 has no holder, so it gets a placeholder
-- holder and an already-expired lease (the next reclaim returns it to pending), and rows a raw
-- client left inconsistent (a finished job without completed_at, an unfinished one with it)
-- are repaired before the constraints are added.
--
-- depends: 0001_initial_schema

ALTER TABLE jobs
    ADD COLUMN attempts     integer      NOT NULL DEFAULT 0,
    ADD COLUMN max_attempts integer      NOT NULL DEFAULT 3,
    ADD COLUMN locked_by    varchar(200),
    ADD COLUMN locked_until timestamptz,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN run_after    timestamptz;

COMMENT ON COLUMN jobs.attempts IS 'How many times the job was claimed (started)';
COMMENT ON COLUMN jobs.max_attempts IS 'Claims allowed before a failing job is failed for good';
COMMENT ON COLUMN jobs.locked_by IS
    'Worker holding the lease while processing; after the job finished, the worker that finished it';
COMMENT ON COLUMN jobs.locked_until IS 'Lease expiry while processing (database clock)';
COMMENT ON COLUMN jobs.heartbeat_at IS 'Last sign of life from the holder (database clock)';
COMMENT ON COLUMN jobs.run_after IS 'A pending job is not claimed before this time (retry backoff)';

UPDATE jobs
SET locked_by = 'media_store:0002-migration',
    locked_until = clock_timestamp(),
    started_at = coalesce(started_at, updated_at),
    attempts = 1
WHERE status = 'processing';

UPDATE jobs SET completed_at = updated_at
WHERE status IN ('completed', 'failed') AND completed_at IS NULL;

UPDATE jobs SET completed_at = NULL
WHERE status IN ('pending', 'processing') AND completed_at IS NOT NULL;

ALTER TABLE jobs
    ADD CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
    ADD CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
    ADD CONSTRAINT jobs_locked_by_check CHECK (locked_by <> ''),
    -- A processing job has a holder, a lease and a start time.
    ADD CONSTRAINT jobs_processing_lease_check CHECK (
        status <> 'processing'
        OR (locked_by IS NOT NULL AND locked_until IS NOT NULL AND started_at IS NOT NULL)
    ),
    -- Only a processing job has a lease; a pending one has no holder either.
    ADD CONSTRAINT jobs_unleased_check CHECK (
        status = 'processing'
        OR (locked_until IS NULL AND (status <> 'pending' OR locked_by IS NULL))
    ),
    -- A job has completed_at exactly when it is finished (completed or failed).
    ADD CONSTRAINT jobs_completed_at_check CHECK (
        (status IN ('completed', 'failed')) = (completed_at IS NOT NULL)
    );

-- The claim reads pending jobs oldest first: this index holds pending jobs only, so it stays
-- as small as the backlog however many finished jobs pile up.
CREATE INDEX jobs_claim_idx ON jobs (created_at, id) WHERE status = 'pending';

-- The same for workers that take one job type only.
CREATE INDEX jobs_claim_type_idx ON jobs (job_type, created_at, id) WHERE status = 'pending';

-- Reclaiming finds expired leases among processing jobs only.
CREATE INDEX jobs_lease_expiry_idx ON jobs (locked_until) WHERE status = 'processing';

-- Workers that LISTEN on media_store_jobs are woken when jobs are created. One notification
-- per INSERT statement, with an empty payload (PostgreSQL folds identical notifications of a
-- transaction into one); workers always poll as well, so a missed one costs only latency.
CREATE FUNCTION media_store_notify_jobs_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('media_store_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_created
    AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION media_store_notify_jobs_created();
