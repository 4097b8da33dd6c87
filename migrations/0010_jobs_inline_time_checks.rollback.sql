-- Reverts 0010: the readable-time CHECKs of jobs call media_store_time_readable again, as
-- 0004 made them (the same rule: no row changes).
ALTER TABLE jobs
    DROP CONSTRAINT IF EXISTS jobs_created_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_updated_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_started_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_completed_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_locked_until_readable,
    DROP CONSTRAINT IF EXISTS jobs_heartbeat_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_run_after_readable,
    ADD CONSTRAINT jobs_created_at_readable CHECK (media_store_time_readable(created_at)),
    ADD CONSTRAINT jobs_updated_at_readable CHECK (media_store_time_readable(updated_at)),
    ADD CONSTRAINT jobs_started_at_readable CHECK (media_store_time_readable(started_at)),
    ADD CONSTRAINT jobs_completed_at_readable CHECK (media_store_time_readable(completed_at)),
    ADD CONSTRAINT jobs_locked_until_readable CHECK (media_store_time_readable(locked_until)),
    ADD CONSTRAINT jobs_heartbeat_at_readable CHECK (media_store_time_readable(heartbeat_at)),
    ADD CONSTRAINT jobs_run_after_readable CHECK (media_store_time_readable(run_after));
