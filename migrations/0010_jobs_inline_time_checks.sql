-- The seven readable-time CHECKs of jobs (0004) state their range inline instead of calling
-- media_store_time_readable. Same rule, same names (callers match on them), same NULL
-- handling; the function stays, for the other tables and for anyone else.
--
-- Why: PostgreSQL prepares a table's CHECK expressions again for every statement that
-- writes it, and preparing inlines each SQL function call, parsing and analysing the
-- function's body: seven times per statement on jobs, whose rows every claim and every
-- completion writes. Measured with a bare drain loop of the library's own claim and batch
-- completion (4 connections, claims of 10, 5,000 jobs, server CPU a job from /proc, this
-- migration alone changed, medians of 6 rounds rotating, a shared 2-core machine under load):
-- 145 -> 129 us of server CPU a job (162 -> 151 and 188 -> 158 in earlier runs of 3 and 5
-- rounds). Dropping the seven altogether saved no more than this; the other CHECKs, the
-- transition trigger and the listing indexes stay (the rules and the listings need them).
--
-- depends: 0009_distribution_keys

ALTER TABLE jobs
    DROP CONSTRAINT jobs_created_at_readable,
    DROP CONSTRAINT jobs_updated_at_readable,
    DROP CONSTRAINT jobs_started_at_readable,
    DROP CONSTRAINT jobs_completed_at_readable,
    DROP CONSTRAINT jobs_locked_until_readable,
    DROP CONSTRAINT jobs_heartbeat_at_readable,
    DROP CONSTRAINT jobs_run_after_readable,
    ADD CONSTRAINT jobs_created_at_readable CHECK (
        created_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND created_at < '9999-12-31 00:00:00+00'::timestamptz),
    ADD CONSTRAINT jobs_updated_at_readable CHECK (
        updated_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND updated_at < '9999-12-31 00:00:00+00'::timestamptz),
    ADD CONSTRAINT jobs_started_at_readable CHECK (
        started_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND started_at < '9999-12-31 00:00:00+00'::timestamptz),
    ADD CONSTRAINT jobs_completed_at_readable CHECK (
        completed_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND completed_at < '9999-12-31 00:00:00+00'::timestamptz),
    ADD CONSTRAINT jobs_locked_until_readable CHECK (
        locked_until >= '0001-01-02 00:00:00+00'::timestamptz
        AND locked_until < '9999-12-31 00:00:00+00'::timestamptz),
    ADD CONSTRAINT jobs_heartbeat_at_readable CHECK (
        heartbeat_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND heartbeat_at < '9999-12-31 00:00:00+00'::timestamptz),
    ADD CONSTRAINT jobs_run_after_readable CHECK (
        run_after >= '0001-01-02 00:00:00+00'::timestamptz
        AND run_after < '9999-12-31 00:00:00+00'::timestamptz);
