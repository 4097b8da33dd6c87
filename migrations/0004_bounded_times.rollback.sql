-- Reverts 0004: drops the constraints and the function it added. Times it repaired stay as
-- repaired (the unreadable values they replaced are gone).
ALTER TABLE analysis_results DROP CONSTRAINT IF EXISTS analysis_results_created_at_readable;
ALTER TABLE transcriptions DROP CONSTRAINT IF EXISTS transcriptions_created_at_readable;
ALTER TABLE media_assets DROP CONSTRAINT IF EXISTS media_assets_created_at_readable;
ALTER TABLE jobs
    DROP CONSTRAINT IF EXISTS jobs_run_after_readable,
    DROP CONSTRAINT IF EXISTS jobs_heartbeat_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_locked_until_readable,
    DROP CONSTRAINT IF EXISTS jobs_completed_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_started_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_updated_at_readable,
    DROP CONSTRAINT IF EXISTS jobs_created_at_readable;
DROP FUNCTION IF EXISTS media_store_time_readable(timestamptz);
