-- Every timestamp the library reads back must be one Python can hold: a datetime ends on
-- 9999-12-31 and begins on 0001-01-01, while timestamptz goes on to the year 294276 and has
-- 'infinity'. A lease or a retry delay of a trillion seconds (or a raw client writing
-- 'infinity') once committed a time that made every later read of the row raise, so that the
-- job could be neither listed nor reclaimed. The library bounds every duration it is given
-- (media_store/arguments.py); these constraints hold every client to the readable range, with
-- a day's margin at each end so that the value survives conversion to any local time.
--
-- Existing rows holding such a time are repaired first: the time becomes the migration's
-- clock, so an endless lease has expired (the next reclaim takes the job back), a retry
-- delayed for ever is due, and any other time reads as the moment of the repair.
--
-- depends: 0003_word_timestamps

-- One statement of the readable range, used by every constraint below. NULL gives NULL, which
-- a CHECK passes. Not declared STRICT, so that the planner inlines it into each constraint
-- (two comparisons, no function call per row).
CREATE FUNCTION media_store_time_readable(t timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT t >= '0001-01-02 00:00:00+00'::timestamptz AND t < '9999-12-31 00:00:00+00'::timestamptz
$$;

UPDATE jobs
SET created_at = CASE WHEN NOT media_store_time_readable(created_at)
                      THEN clock_timestamp() ELSE created_at END,
    updated_at = CASE WHEN NOT media_store_time_readable(updated_at)
                      THEN clock_timestamp() ELSE updated_at END,
    started_at = CASE WHEN NOT media_store_time_readable(started_at)
                      THEN clock_timestamp() ELSE started_at END,
    completed_at = CASE WHEN NOT media_store_time_readable(completed_at)
                        THEN clock_timestamp() ELSE completed_at END,
    locked_until = CASE WHEN NOT media_store_time_readable(locked_until)
                        THEN clock_timestamp() ELSE locked_until END,
    heartbeat_at = CASE WHEN NOT media_store_time_readable(heartbeat_at)
                        THEN clock_timestamp() ELSE heartbeat_at END,
    run_after = CASE WHEN NOT media_store_time_readable(run_after)
                     THEN clock_timestamp() ELSE run_after END
WHERE NOT (
    media_store_time_readable(created_at)
    AND media_store_time_readable(updated_at)
    AND coalesce(media_store_time_readable(started_at), true)
    AND coalesce(media_store_time_readable(completed_at), true)
    AND coalesce(media_store_time_readable(locked_until), true)
    AND coalesce(media_store_time_readable(heartbeat_at), true)
    AND coalesce(media_store_time_readable(run_after), true)
);

UPDATE media_assets SET created_at = clock_timestamp()
WHERE NOT media_store_time_readable(created_at);

UPDATE transcriptions SET created_at = clock_timestamp()
WHERE NOT media_store_time_readable(created_at);

UPDATE analysis_results SET created_at = clock_timestamp()
WHERE NOT media_store_time_readable(created_at);

ALTER TABLE jobs
    ADD CONSTRAINT jobs_created_at_readable CHECK (media_store_time_readable(created_at)),
    ADD CONSTRAINT jobs_updated_at_readable CHECK (media_store_time_readable(updated_at)),
    ADD CONSTRAINT jobs_started_at_readable CHECK (media_store_time_readable(started_at)),
    ADD CONSTRAINT jobs_completed_at_readable CHECK (media_store_time_readable(completed_at)),
    ADD CONSTRAINT jobs_locked_until_readable CHECK (media_store_time_readable(locked_until)),
    ADD CONSTRAINT jobs_heartbeat_at_readable CHECK (media_store_time_readable(heartbeat_at)),
    ADD CONSTRAINT jobs_run_after_readable CHECK (media_store_time_readable(run_after));

ALTER TABLE media_assets
    ADD CONSTRAINT media_assets_created_at_readable CHECK (media_store_time_readable(created_at));

ALTER TABLE transcriptions
    ADD CONSTRAINT transcriptions_created_at_readable
        CHECK (media_store_time_readable(created_at));

ALTER TABLE analysis_results
    ADD CONSTRAINT analysis_results_created_at_readable
        CHECK (media_store_time_readable(created_at));
