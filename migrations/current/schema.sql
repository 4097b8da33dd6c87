-- The live schema: what migrations 0001-0019 leave behind, in one place, to read.
--
-- NOT A MIGRATION. The migrations in ../ are the only thing that builds a database; this file
-- restates their result as if written in one go, grouped per table, with the functions'
-- bodies as they now stand and the reasons the migrations gave, shortened (the migration
-- named in brackets has the measurements and the full story). yoyo reads only the files
-- directly in migrations/, not this subfolder; the query loader reads only sql/*.sql.
--
-- Kept true by tests/test_schema_file.py: it migrates one database, runs this file on another
-- and compares the two through the catalogs (tables, columns, constraints, indexes,
-- functions, triggers, comments, storage). A migration that changes the schema changes this
-- file in the same commit; `pytest tests/test_schema_file.py` prints what differs.
-- To build a scratch database from it: psql -v ON_ERROR_STOP=1 -f migrations/current/schema.sql
--
-- Conventions throughout: timestamps default to clock_timestamp(), not now(), so rows created
-- in one transaction keep their creation order, which listings and claims ("oldest first")
-- rely on. The database enforces its own invariants (CHECKs, the transition trigger) so that
-- every client, not only this library, is held to them. Every function is named media_store_*.


-- === Shared functions ========================================================================

-- Whoever updates a row, updated_at follows the database clock (jobs_touch_updated_at). [0001]
CREATE FUNCTION media_store_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Whoever updates a row, updated_at follows the database clock.
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;

-- The job lifecycle, stated once; the trigger jobs_status_transition and the library's
-- queries use it. [0001, 0008]
--   pending    -> processing | cancelled
--   processing -> completed | failed | cancelled | pending (lease released or lost)
--   failed     -> pending (requeued)
-- completed and cancelled are final.
CREATE FUNCTION media_store_job_transition_allowed(from_status text, to_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (from_status = 'pending'    AND to_status IN ('processing', 'cancelled'))
        OR (from_status = 'processing' AND to_status IN ('completed', 'failed', 'pending',
                                                         'cancelled'))
        OR (from_status = 'failed'     AND to_status = 'pending')
$$;

-- Raised as a check_violation naming the rule, so callers can match on the constraint name.
-- [0001]
CREATE FUNCTION media_store_check_job_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NOT media_store_job_transition_allowed(OLD.status, NEW.status) THEN
        RAISE EXCEPTION 'job % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_status_transition',
                  TABLE = 'jobs';
    END IF;
    RETURN NEW;
END;
$$;

-- Workers LISTEN on media_store_jobs: one notification per INSERT statement, empty payload
-- (identical notifications of a transaction fold into one); workers poll as well, so a
-- missed one costs only latency. [0002]
CREATE FUNCTION media_store_notify_jobs_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('media_store_jobs', '');
    RETURN NULL;
END;
$$;

-- Every time the library reads back must fit a Python datetime (0001-01-01 to 9999-12-31;
-- timestamptz goes to 294276 and has 'infinity'), with a day's margin each end for any local
-- time. NULL gives NULL, which a CHECK passes. Not STRICT, so the planner inlines it. Used by
-- the *_created_at_readable CHECKs of the child tables; jobs states the range inline (see
-- jobs). [0004]
CREATE FUNCTION media_store_time_readable(t timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT t >= '0001-01-02 00:00:00+00'::timestamptz AND t < '9999-12-31 00:00:00+00'::timestamptz
$$;


-- === jobs ====================================================================================
-- A work queue many worker processes share: a job is claimed under a lease (holder, expiry),
-- kept alive by heartbeats, retried up to max_attempts, taken back from a holder that stopped
-- beating. [0001, 0002, 0007, 0008]

CREATE TABLE jobs (
    id                 uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type           varchar(50)   NOT NULL,
    status             varchar(50)   NOT NULL DEFAULT 'pending',
    media_url          text          NOT NULL,
    prompt             text,
    parameters         jsonb         NOT NULL DEFAULT '{}'::jsonb,
    result             jsonb,
    error              text,
    created_at         timestamptz   NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz   NOT NULL DEFAULT clock_timestamp(),
    started_at         timestamptz,
    completed_at       timestamptz,
    processing_time_ms integer,
    -- the lease [0002]
    attempts           integer       NOT NULL DEFAULT 0,
    max_attempts       integer       NOT NULL DEFAULT 3,
    locked_by          varchar(200),
    locked_until       timestamptz,
    heartbeat_at       timestamptz,
    run_after          timestamptz,
    -- the operator's queue [0007]
    priority           smallint      NOT NULL DEFAULT 0,
    idempotency_key    varchar(200),
    idempotency_scope  varchar(10),

    CONSTRAINT jobs_status_check
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    CONSTRAINT jobs_job_type_check CHECK (job_type IN ('video', 'audio', 'document')),
    CONSTRAINT jobs_media_url_check CHECK (media_url <> ''),
    CONSTRAINT jobs_parameters_check CHECK (jsonb_typeof(parameters) = 'object'),
    CONSTRAINT jobs_processing_time_ms_check CHECK (processing_time_ms >= 0),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
    CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
    CONSTRAINT jobs_locked_by_check CHECK (locked_by <> ''),
    -- A processing job has a holder, a lease and a start time.
    CONSTRAINT jobs_processing_lease_check CHECK (
        status <> 'processing'
        OR (locked_by IS NOT NULL AND locked_until IS NOT NULL AND started_at IS NOT NULL)
    ),
    -- Only a processing job has a lease; a pending one has no holder either.
    CONSTRAINT jobs_unleased_check CHECK (
        status = 'processing'
        OR (locked_until IS NULL AND (status <> 'pending' OR locked_by IS NULL))
    ),
    -- A job has completed_at exactly when it is finished (completed, failed or cancelled).
    CONSTRAINT jobs_completed_at_check CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)
    ),
    CONSTRAINT jobs_priority_check CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT jobs_idempotency_key_check CHECK (idempotency_key <> ''),
    -- A key has one of the two scopes; no key, no scope (both NULL: true AND NULL, which a
    -- CHECK passes).
    CONSTRAINT jobs_idempotency_scope_check CHECK (
        (idempotency_key IS NULL) = (idempotency_scope IS NULL)
        AND idempotency_scope IN ('active', 'forever')
    ),
    -- media_store_time_readable's rule, written inline: CHECK expressions are prepared again
    -- for every statement writing the table, inlining a SQL function each time, and every
    -- claim and completion writes jobs (measured: 145 -> 129 us of server CPU a job). Same
    -- names as the function-calling CHECKs they replaced; callers match on them. [0004, 0010]
    CONSTRAINT jobs_created_at_readable CHECK (
        created_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND created_at < '9999-12-31 00:00:00+00'::timestamptz),
    CONSTRAINT jobs_updated_at_readable CHECK (
        updated_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND updated_at < '9999-12-31 00:00:00+00'::timestamptz),
    CONSTRAINT jobs_started_at_readable CHECK (
        started_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND started_at < '9999-12-31 00:00:00+00'::timestamptz),
    CONSTRAINT jobs_completed_at_readable CHECK (
        completed_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND completed_at < '9999-12-31 00:00:00+00'::timestamptz),
    CONSTRAINT jobs_locked_until_readable CHECK (
        locked_until >= '0001-01-02 00:00:00+00'::timestamptz
        AND locked_until < '9999-12-31 00:00:00+00'::timestamptz),
    CONSTRAINT jobs_heartbeat_at_readable CHECK (
        heartbeat_at >= '0001-01-02 00:00:00+00'::timestamptz
        AND heartbeat_at < '9999-12-31 00:00:00+00'::timestamptz),
    CONSTRAINT jobs_run_after_readable CHECK (
        run_after >= '0001-01-02 00:00:00+00'::timestamptz
        AND run_after < '9999-12-31 00:00:00+00'::timestamptz)
)
-- A queue table: every job inserted, updated at least twice (neither HOT) and purged. Vacuumed
-- and analyzed at 2% of its rows changed, without the cost delay; pages filled to 80% so that
-- a heartbeat's new row version (HOT) stays on its page. [0015]
WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

COMMENT ON TABLE jobs IS 'Media analysis job requests and their lifecycle status';
COMMENT ON COLUMN jobs.attempts IS 'How many times the job was claimed (started)';
COMMENT ON COLUMN jobs.max_attempts IS 'Claims allowed before a failing job is failed for good';
COMMENT ON COLUMN jobs.locked_by IS
    'Worker holding the lease while processing; after the job finished, the worker that finished it';
COMMENT ON COLUMN jobs.locked_until IS 'Lease expiry while processing (database clock)';
COMMENT ON COLUMN jobs.heartbeat_at IS 'Last sign of life from the holder (database clock)';
COMMENT ON COLUMN jobs.run_after IS 'A pending job is not claimed before this time (retry backoff)';
COMMENT ON COLUMN jobs.priority IS
    'Claimed before jobs of lower priority (-100 to 100, default 0); first in first out within one';
COMMENT ON COLUMN jobs.idempotency_key IS
    'A creation with a key another job holds creates nothing (see idempotency_scope)';
COMMENT ON COLUMN jobs.idempotency_scope IS
    'How long the job holds its key: active (while pending or processing) or forever';

-- Every index on jobs costs each insert and each non-HOT status change an entry; the ones
-- below earn it. Gone on purpose: jobs_lease_expiry_idx (0005: heartbeats moved its key, so
-- none was HOT; reclaiming reads jobs_status_created_at_idx) and jobs_created_at_idx (0012:
-- listing by time reads one range of jobs_status_created_at_idx per status, merged).

-- Listing by status in creation order (either direction), and by time across the five
-- statuses; reclaiming finds the processing jobs here. [0001, 0005, 0012]
CREATE INDEX jobs_status_created_at_idx ON jobs (status, created_at, id);

-- The claim order: priority, highest first; then first in first out by the time a job became
-- runnable, coalesce(run_after, created_at) (its creation, its scheduled start, or the end of
-- a retry's backoff). Pending jobs only, so the index is as small as the backlog and a claimed
-- row leaves it. The _type variant serves workers of one job type. No id at the end: entries
-- no wider than two int8 keys let a page split after a new entry and stay full (jobs runnable
-- at the same microsecond go in index order); with the id they were 55% full. [0002, 0007,
-- 0019]
CREATE INDEX jobs_claim_idx
    ON jobs (priority DESC, (coalesce(run_after, created_at)))
    WHERE status = 'pending';
CREATE INDEX jobs_claim_type_idx
    ON jobs (job_type, priority DESC, (coalesce(run_after, created_at)))
    WHERE status = 'pending';

-- At most one job holds a key: one with scope forever, whatever its status, or one with scope
-- active while pending or processing. One namespace for both scopes, and one index for the
-- race: of concurrent inserts with one key, one gets in, the others conflict (INSERT ... ON
-- CONFLICT DO NOTHING in sql/jobs.sql). [0007]
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'));

-- Listing by key (list_jobs_with_key): the holder comes from jobs_idempotency_key_idx, the
-- jobs an active key had before from here; a keyed row version is in exactly one of the two.
-- [0011, 0012]
CREATE INDEX jobs_key_created_at_idx ON jobs (idempotency_key, created_at, id)
    WHERE idempotency_key IS NOT NULL AND idempotency_scope = 'active'
      AND status NOT IN ('pending', 'processing');

-- Finished jobs by (status, completed_at): purging by age walks it in keyset batches, the
-- stats count recent failures and completions from it, index-only. Partial: a job writes one
-- entry, when it finishes. [0008]
CREATE INDEX jobs_finished_idx ON jobs (status, completed_at, id) INCLUDE (job_type)
    WHERE completed_at IS NOT NULL;

-- Pending jobs that may not run yet (a retry's backoff): the stats count "claimable now" as
-- pending minus these. [0008]
CREATE INDEX jobs_delayed_idx ON jobs (job_type, run_after)
    WHERE status = 'pending' AND run_after IS NOT NULL;

-- A statement that sets updated_at to statement_timestamp() (as the library's do) is trusted
-- with it and pays no PL/pgSQL call a row; every other update gets the clock. [0001, 0005]
CREATE TRIGGER jobs_touch_updated_at
    BEFORE UPDATE ON jobs
    FOR EACH ROW
    WHEN (NEW.updated_at IS DISTINCT FROM statement_timestamp())
    EXECUTE FUNCTION media_store_touch_updated_at();

CREATE TRIGGER jobs_status_transition
    BEFORE UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION media_store_check_job_transition();

CREATE TRIGGER jobs_notify_created
    AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION media_store_notify_jobs_created();

-- Claim up to how_many runnable pending jobs in claim order, of the types job_types (NULL:
-- any), for holder under a lease of lease_s seconds; returns the claimed rows.
-- Why a function, and a PL/pgSQL one: a plain statement's plan depends on statistics, and on
-- a never-analyzed table (a burst into a new deployment) the planner ran every claim as a
-- bitmap scan plus a sort of the whole backlog. The SET clauses (in force for this function
-- only) price out sequential scans, bitmap scans and sorts, leaving range scans of a pending
-- index in claim order stopped after how_many rows; force_generic_plan plans each statement
-- once per session. "due" is a variable, not clock_timestamp() in the WHERE, so that the
-- ready time is an index condition. The index is walked one priority at a time (levels: each
-- priority present among pending jobs, highest first, found by one descent, with its earliest
-- ready time); a level with nothing due is passed over, and in a due level the range
-- (priority = p, ready <= due) is bounded at both ends, so jobs scheduled for later are never
-- read (one range across priorities could only filter them). For one type the order leads
-- with job_type (the same order for one value), which only jobs_claim_type_idx yields. A SQL
-- function would be inlined or planned again per call. Rows are locked FOR UPDATE SKIP
-- LOCKED: claimers never wait for or share a row. The RETURNING list is the jobs row type,
-- column for column: a column added to jobs must be added there. [0005, 0007, 0013, 0019]
CREATE FUNCTION media_store_claim_jobs(
    holder text, how_many integer, lease_s double precision, job_types text[]
) RETURNS SETOF jobs
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
DECLARE
    picked uuid[];
    due timestamptz := clock_timestamp();
BEGIN
    IF cardinality(job_types) = 1 THEN
        picked := ARRAY(
            WITH RECURSIVE levels (priority, first_at) AS (
                (SELECT j.priority, coalesce(j.run_after, j.created_at)
                 FROM jobs AS j
                 WHERE j.status = 'pending' AND j.job_type = any(job_types)
                 ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at)
                 LIMIT 1)
                UNION ALL
                SELECT below.priority, below.first_at
                FROM levels AS l
                CROSS JOIN LATERAL (
                    SELECT j.priority, coalesce(j.run_after, j.created_at) AS first_at
                    FROM jobs AS j
                    WHERE j.status = 'pending' AND j.job_type = any(job_types)
                      AND j.priority < l.priority
                    ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at)
                    LIMIT 1
                ) AS below
            )
            SELECT c.id
            FROM levels AS l
            CROSS JOIN LATERAL (
                SELECT j.id
                FROM jobs AS j
                WHERE j.status = 'pending' AND j.job_type = any(job_types)
                  AND j.priority = l.priority
                  AND coalesce(j.run_after, j.created_at) <= due
                ORDER BY j.job_type, j.priority DESC, coalesce(j.run_after, j.created_at)
                LIMIT how_many
                FOR UPDATE SKIP LOCKED
            ) AS c
            WHERE l.first_at <= due
            LIMIT how_many
        );
    ELSE
        picked := ARRAY(
            WITH RECURSIVE levels (priority, first_at) AS (
                (SELECT j.priority, coalesce(j.run_after, j.created_at)
                 FROM jobs AS j
                 WHERE j.status = 'pending'
                 ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at)
                 LIMIT 1)
                UNION ALL
                SELECT below.priority, below.first_at
                FROM levels AS l
                CROSS JOIN LATERAL (
                    SELECT j.priority, coalesce(j.run_after, j.created_at) AS first_at
                    FROM jobs AS j
                    WHERE j.status = 'pending' AND j.priority < l.priority
                    ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at)
                    LIMIT 1
                ) AS below
            )
            SELECT c.id
            FROM levels AS l
            CROSS JOIN LATERAL (
                SELECT j.id
                FROM jobs AS j
                WHERE j.status = 'pending'
                  AND (job_types IS NULL OR j.job_type = any(job_types))
                  AND j.priority = l.priority
                  AND coalesce(j.run_after, j.created_at) <= due
                ORDER BY j.priority DESC, coalesce(j.run_after, j.created_at)
                LIMIT how_many
                FOR UPDATE SKIP LOCKED
            ) AS c
            WHERE l.first_at <= due
            LIMIT how_many
        );
    END IF;
    RETURN QUERY
    UPDATE jobs AS j
    SET status = 'processing',
        updated_at = statement_timestamp(),
        started_at = clock.at,
        attempts = j.attempts + 1,
        locked_by = holder,
        locked_until = clock.at + lease_s * interval '1 second',
        heartbeat_at = clock.at,
        run_after = NULL
    FROM (SELECT clock_timestamp() AS at) AS clock
    WHERE j.id = any(picked)
    RETURNING j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result,
              j.error, j.created_at, j.updated_at, j.started_at, j.completed_at,
              j.processing_time_ms, j.attempts, j.max_attempts, j.locked_by, j.locked_until,
              j.heartbeat_at, j.run_after, j.priority, j.idempotency_key, j.idempotency_scope;
END;
$$;

-- A holder's writes on its jobs by id: heartbeat, batch completion, release (sql/queue.sql).
-- Functions whose SET clauses leave the planner index paths only, planned once per session,
-- for the claim's reason: a plan cached while jobs was a few pages (a new deployment's first
-- completions) would otherwise keep scanning it as it grows, until an ANALYZE or VACUUM. The
-- rows are locked in id order, so that a holder's concurrent writes cannot deadlock. [0015]
CREATE FUNCTION media_store_heartbeat_jobs(holder text, job_ids uuid[], lease_s double precision)
RETURNS TABLE (id uuid, cancelled boolean)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        SELECT j.id
        FROM jobs AS j
        WHERE j.id = any(job_ids)
          AND j.status IS NOT DISTINCT FROM 'processing'
          AND j.locked_by = holder
        ORDER BY j.id
        FOR UPDATE
    ),
    extended AS (
        UPDATE jobs AS j
        SET locked_until = clock.at + lease_s * interval '1 second',
            updated_at = statement_timestamp(),
            heartbeat_at = clock.at
        FROM held, (SELECT clock_timestamp() AS at) AS clock
        WHERE j.id = held.id
        RETURNING j.id
    ),
    told AS (
        UPDATE job_cancel_requests AS r
        SET acknowledged_at = coalesce(r.acknowledged_at, clock_timestamp())
        WHERE r.job_id = any(job_ids) AND r.holder = media_store_heartbeat_jobs.holder
        RETURNING r.job_id
    )
    SELECT e.id, false FROM extended AS e
    UNION ALL
    SELECT t.job_id, true FROM told AS t;
END;
$$;

CREATE FUNCTION media_store_complete_jobs(holder text, job_ids uuid[], results jsonb[])
RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        SELECT j.id
        FROM jobs AS j
        WHERE j.id = any(job_ids)
          AND j.status IS NOT DISTINCT FROM 'processing'
          AND j.locked_by = holder
        ORDER BY j.id
        FOR UPDATE
    )
    UPDATE jobs AS j
    SET status = 'completed',
        updated_at = statement_timestamp(),
        result = done.result,
        error = NULL,
        completed_at = clock.at,
        processing_time_ms = floor(extract(epoch FROM clock.at - j.started_at) * 1000)::int,
        locked_until = NULL
    FROM held
    JOIN unnest(job_ids, results) AS done (id, result) ON done.id = held.id,
         (SELECT clock_timestamp() AS at) AS clock
    WHERE j.id = held.id
    RETURNING j.id;
END;
$$;

CREATE FUNCTION media_store_release_jobs(holder text, job_ids uuid[])
RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        SELECT j.id
        FROM jobs AS j
        WHERE j.id = any(job_ids)
          AND j.status IS NOT DISTINCT FROM 'processing'
          AND j.locked_by = holder
        ORDER BY j.id
        FOR UPDATE
    )
    UPDATE jobs AS j
    SET status = 'pending',
        updated_at = statement_timestamp(),
        started_at = NULL,
        attempts = greatest(j.attempts - 1, 0),
        locked_by = NULL,
        locked_until = NULL,
        heartbeat_at = NULL,
        run_after = NULL
    FROM held
    WHERE j.id = held.id
    RETURNING j.id;
END;
$$;


-- === job_cancel_requests =====================================================================
-- A processing job that was cancelled, for its holder to learn at its next heartbeat: who held
-- it, when it was cancelled, when the holder was told. A cancel moves the job itself to
-- 'cancelled' at once, under the row lock of one UPDATE, so a cancel and the holder's
-- completion are serialised on the row (a "cancel requested" state living in this table could
-- lose to a completion that cannot see it). Rows go with their job. [0008]

CREATE TABLE job_cancel_requests (
    job_id          uuid          PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    holder          varchar(200)  NOT NULL,
    requested_at    timestamptz   NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at timestamptz,
    CONSTRAINT job_cancel_requests_requested_at_readable
        CHECK (media_store_time_readable(requested_at)),
    CONSTRAINT job_cancel_requests_acknowledged_at_readable
        CHECK (media_store_time_readable(acknowledged_at))
);
COMMENT ON TABLE job_cancel_requests IS
    'Processing jobs cancelled while held: the holder learns it at its next heartbeat';

-- Up to how_many jobs in status wanted_status that finished before finished_before, after the
-- keyset position (after_at, after_id), oldest first; locked FOR UPDATE SKIP LOCKED when lock
-- is true (a purge), not at all otherwise (a dry run). A job cancelled while processing is
-- left out until its holder was told (deleting it would delete the request, and the holder
-- would learn "lease lost" instead of "cancelled"), or until 7 days (MAX_LEASE) passed. A
-- function with SET clauses for the reason media_store_claim_jobs is one: the only plan left
-- is the ordered range scan of jobs_finished_idx, stopped after how_many rows. [0008]
CREATE FUNCTION media_store_finished_jobs(
    wanted_status text, finished_before timestamptz, after_at timestamptz, after_id uuid,
    how_many integer, lock boolean
) RETURNS TABLE (id uuid, completed_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
ROWS 1000
AS $$
BEGIN
    IF lock THEN
        RETURN QUERY
        SELECT j.id, j.completed_at
        FROM jobs AS j
        WHERE j.status = wanted_status
          AND j.completed_at < finished_before
          AND (j.completed_at, j.id) > (after_at, after_id)
          AND NOT EXISTS (  -- its holder not told yet: purged once told (or long gone)
              SELECT FROM job_cancel_requests AS r
              WHERE r.job_id = j.id AND r.acknowledged_at IS NULL
                AND r.requested_at > clock_timestamp() - interval '7 days')
        ORDER BY j.status, j.completed_at, j.id
        LIMIT how_many
        FOR UPDATE SKIP LOCKED;
    ELSE
        RETURN QUERY
        SELECT j.id, j.completed_at
        FROM jobs AS j
        WHERE j.status = wanted_status
          AND j.completed_at < finished_before
          AND (j.completed_at, j.id) > (after_at, after_id)
          AND NOT EXISTS (  -- its holder not told yet: purged once told (or long gone)
              SELECT FROM job_cancel_requests AS r
              WHERE r.job_id = j.id AND r.acknowledged_at IS NULL
                AND r.requested_at > clock_timestamp() - interval '7 days')
        ORDER BY j.status, j.completed_at, j.id
        LIMIT how_many;
    END IF;
END;
$$;


-- === job_trace_contexts ======================================================================
-- The W3C trace context (traceparent, tracestate) a traced Store created a job in, for the
-- worker to start the handler's span under. A table beside jobs, not a column of the hot row
-- (copied by every claim, heartbeat and completion) nor of the claim function's row type; only
-- traced jobs have a row. Rows go with their job. [0014]

CREATE TABLE job_trace_contexts (
    job_id      uuid          PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    traceparent varchar(55)   NOT NULL,
    tracestate  varchar(512),
    CONSTRAINT job_trace_contexts_traceparent_check
        CHECK (traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$')
);
COMMENT ON TABLE job_trace_contexts IS
    'W3C trace context (traceparent, tracestate) each traced job was created in';


-- === media_assets ============================================================================

CREATE TABLE media_assets (
    id              uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id          uuid          NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    asset_type      varchar(50)   NOT NULL,
    file_path       text          NOT NULL,
    file_size_bytes bigint,
    mime_type       varchar(100),
    metadata        jsonb         NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz   NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT media_assets_asset_type_check
        CHECK (asset_type IN ('original', 'frame', 'contact_sheet', 'transcription')),
    CONSTRAINT media_assets_file_path_check CHECK (file_path <> ''),
    CONSTRAINT media_assets_file_size_bytes_check CHECK (file_size_bytes >= 0),
    CONSTRAINT media_assets_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT media_assets_created_at_readable CHECK (media_store_time_readable(created_at))
);
COMMENT ON TABLE media_assets IS 'Processed media files and their metadata';

CREATE INDEX media_assets_job_id_idx ON media_assets (job_id, created_at);


-- === transcriptions ==========================================================================

CREATE TABLE transcriptions (
    id               uuid              PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id           uuid              NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    provider         varchar(50)       NOT NULL,
    text_content     text              NOT NULL,
    language         varchar(10),
    confidence_score double precision,
    -- A marker only since 0003: NULL when created without word timestamps, '[]' when created
    -- with them. The words are in transcription_word_segments.
    word_timestamps  jsonb,
    metadata         jsonb             NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz       NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT transcriptions_confidence_score_check
        CHECK (confidence_score >= 0 AND confidence_score <= 1),
    CONSTRAINT transcriptions_word_timestamps_check
        CHECK (jsonb_typeof(word_timestamps) = 'array'),
    CONSTRAINT transcriptions_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT transcriptions_created_at_readable CHECK (media_store_time_readable(created_at)),
    -- Referenced by the word segments' (job_id, transcription_id) key. [0009]
    CONSTRAINT transcriptions_job_id_id_key UNIQUE (job_id, id)
);
COMMENT ON TABLE transcriptions IS 'Audio/video transcription results from multiple providers';

CREATE INDEX transcriptions_job_id_idx ON transcriptions (job_id, created_at);


-- === analysis_results ========================================================================

CREATE TABLE analysis_results (
    id                uuid              PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id            uuid              NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    analysis_type     varchar(50)       NOT NULL,
    summary           text,
    detailed_analysis jsonb,
    confidence_score  double precision,
    model_used        varchar(100),
    prompt_used       text,
    input_tokens      integer,
    output_tokens     integer,
    created_at        timestamptz       NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT analysis_results_confidence_score_check
        CHECK (confidence_score >= 0 AND confidence_score <= 1),
    CONSTRAINT analysis_results_input_tokens_check CHECK (input_tokens >= 0),
    CONSTRAINT analysis_results_output_tokens_check CHECK (output_tokens >= 0),
    CONSTRAINT analysis_results_created_at_readable
        CHECK (media_store_time_readable(created_at))
);
COMMENT ON TABLE analysis_results IS 'LLM analysis results from MiniMax and other providers';

CREATE INDEX analysis_results_job_id_idx ON analysis_results (job_id, created_at);


-- === transcription_word_segments =============================================================
-- Word timestamps as segments of parallel columns, one row per run of up to 256 consecutive
-- words: written by binary COPY near the server's ingest limit, ~25 bytes a word all told,
-- and a time-window read fetches only the segments overlapping the window (a row per word
-- costs 85-150 bytes; one JSONB blob per transcription must be read whole). Packed bytea
-- columns rather than arrays: binary COPY of a bytea is a memcpy, an array is encoded element
-- by element by the driver. Every column is keyed by the job too, so that a sharded
-- PostgreSQL (Citus) keeps a job's rows on one shard. [0003, 0006, 0009]

-- Decoders, for SQL readers (the library decodes in Python: media_store.words,
-- media_store.segments). Seconds are n IEEE-754 doubles, big-endian (float8send's format).
CREATE FUNCTION media_store_float8_at(packed bytea, n integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN e = 2047 THEN CASE WHEN m = 0 THEN sign * 'Infinity'::float8 ELSE 'NaN'::float8 END
        WHEN e = 0 THEN sign * m::float8 * power(2::float8, -1074)
        ELSE sign * (1 + m::float8 / 4503599627370496) * power(2::float8, e - 1023)
    END
    FROM (
        SELECT CASE WHEN bits < 0 THEN -1::float8 ELSE 1::float8 END AS sign,
               ((bits >> 52) & 2047)::integer AS e,
               bits & 4503599627370495 AS m
        FROM (
            SELECT ('x' || encode(substr(packed, 8 * n - 7, 8), 'hex'))::bit(64)::bigint AS bits
        ) AS raw
    ) AS parts
$$;

-- Every double of a packed bytea as a float8[]; NaN (the "no confidence" mark) becomes NULL.
CREATE FUNCTION media_store_unpack_float8(packed bytea) RETURNS double precision[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(
        array_agg(nullif(media_store_float8_at(packed, i), 'NaN'::float8) ORDER BY i),
        '{}'::float8[]
    )
    FROM generate_series(1, octet_length(packed) / 8) AS i
$$;

-- The words of a segment as a text[]: each is substr(words, offset, length).
CREATE FUNCTION media_store_unpack_words(words text, word_lengths bytea) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(substr(words, first, length) ORDER BY i), '{}'::text[])
    FROM (
        SELECT i, length, (sum(length) OVER (ORDER BY i) - length + 1)::integer AS first
        FROM (
            SELECT i,
                   ('x' || encode(substr(word_lengths, 4 * i - 3, 4), 'hex'))::bit(32)::integer
                       AS length
            FROM generate_series(1, octet_length(word_lengths) / 4) AS i
        ) AS lengths
    ) AS offsets
$$;

-- The speakers of a segment as a text[], one element a word. Layout of speakers: the number k
-- of distinct values (int2, big-endian), the k values, each an int4 byte length (-1: no
-- speaker) and its UTF-8 bytes, then one code byte a word: the index (from 0) of its value.
CREATE FUNCTION media_store_unpack_speakers(speakers bytea) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH RECURSIVE entries (code, at, size) AS (
        -- value "code" begins at byte offset "at" (from 0) with its length, "size" bytes
        SELECT 0, 2, ('x' || encode(substr(speakers, 3, 4), 'hex'))::bit(32)::integer
        UNION ALL
        SELECT code + 1, next, ('x' || encode(substr(speakers, next + 1, 4), 'hex'))::bit(32)::integer
        FROM entries
        CROSS JOIN LATERAL (SELECT at + 4 + greatest(size, 0) AS next) AS following
        WHERE code + 1 < get_byte(speakers, 0) * 256 + get_byte(speakers, 1)
    ),
    names AS (
        SELECT code,
               CASE WHEN size >= 0 THEN convert_from(substr(speakers, at + 5, size), 'UTF8') END
                   AS name,
               at + 4 + greatest(size, 0) AS next
        FROM entries
    )
    SELECT coalesce(array_agg(names.name ORDER BY i), '{}'::text[])
    FROM (SELECT max(next) AS first FROM names) AS codes
    CROSS JOIN generate_series(codes.first, octet_length(speakers) - 1) AS i
    JOIN names ON names.code = get_byte(speakers, i)
$$;

CREATE TABLE transcription_word_segments (
    transcription_id uuid              NOT NULL,
    -- Position of the segment in the transcript, from 0, in word order.
    seq              integer           NOT NULL,
    -- The first and last start of the segment: a window read selects segments on these
    -- without opening the packed columns.
    first_start      double precision  NOT NULL,
    last_start       double precision  NOT NULL,
    word_count       integer           NOT NULL,
    -- The words, concatenated, and the length of each in characters (n big-endian int4s).
    words            text              NOT NULL,
    word_lengths     bytea             NOT NULL,
    -- Seconds from the start of the media, packed doubles (a real keeps only milliseconds
    -- after 3 hours).
    starts           bytea             NOT NULL,
    ends             bytea             NOT NULL,
    -- Packed likewise; NaN where a word has no confidence.
    confidences      bytea             NOT NULL,
    -- NULL when no word of the segment has a speaker; see media_store_unpack_speakers.
    speakers         bytea,
    -- The transcription's job, kept equal to it by the foreign key. [0009]
    job_id           uuid              NOT NULL,
    -- Led by job_id: a distributed table's unique constraints include its distribution column.
    CONSTRAINT transcription_word_segments_pkey PRIMARY KEY (job_id, transcription_id, seq),
    CONSTRAINT transcription_word_segments_job_transcription_fkey
        FOREIGN KEY (job_id, transcription_id) REFERENCES transcriptions (job_id, id)
        ON DELETE CASCADE,
    CONSTRAINT transcription_word_segments_seq_check CHECK (seq >= 0),
    -- Parallel columns of word_count elements each. The checks of each word (finite, ordered,
    -- ranges, no NUL) run in the library before the COPY: a per-element check here would scan
    -- every array on every insert.
    CONSTRAINT transcription_word_segments_shape_check CHECK (
        word_count > 0
        AND octet_length(word_lengths) = 4 * word_count
        AND octet_length(starts) = 8 * word_count
        AND octet_length(ends) = 8 * word_count
        AND octet_length(confidences) = 8 * word_count
        -- the count, at least one value, and a code a word
        AND (speakers IS NULL OR octet_length(speakers) >= 6 + word_count)
    ),
    -- Compares bytes as float8send writes them, not decoded doubles: built-in functions, no
    -- SQL function call a row (which cost a fifth of the COPY's server time). [0006]
    CONSTRAINT transcription_word_segments_bounds_check CHECK (
        first_start >= 0
        AND first_start <= last_start
        AND substr(starts, 1, 8) = float8send(first_start)
        AND substr(starts, 8 * word_count - 7, 8) = float8send(last_start)
    )
);
COMMENT ON TABLE transcription_word_segments IS
    'Word timestamps of a transcription, up to 256 consecutive words a row, as parallel columns';

-- Compression, measured column by column: lz4 costs the server ~0.3 ms a 10,000-word COPY and
-- shrinks every column. On a server built without lz4, pglz would cost as much as the rest of
-- the COPY, so words and word lengths are stored uncompressed there instead. Confidences are
-- stored uncompressed everywhere: lz4 saves less than a byte a word on them (their lz4
-- setting then only matters if their storage is changed back). [0003, 0006]
DO $$
BEGIN
    ALTER TABLE transcription_word_segments
        ALTER COLUMN words SET COMPRESSION lz4,
        ALTER COLUMN word_lengths SET COMPRESSION lz4,
        ALTER COLUMN starts SET COMPRESSION lz4,
        ALTER COLUMN ends SET COMPRESSION lz4,
        ALTER COLUMN confidences SET COMPRESSION lz4,
        ALTER COLUMN speakers SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: words and word lengths are stored uncompressed';
    ALTER TABLE transcription_word_segments
        ALTER COLUMN words SET STORAGE EXTERNAL,
        ALTER COLUMN word_lengths SET STORAGE EXTERNAL;
END;
$$;
ALTER TABLE transcription_word_segments ALTER COLUMN confidences SET STORAGE EXTERNAL;

-- A window read (list_word_segments_between) finds its first and last segment with two
-- probes, where the primary key alone visits every segment of the transcription. [0006, 0009]
CREATE INDEX transcription_word_segments_time
    ON transcription_word_segments (job_id, transcription_id, last_start, seq);


-- === transcription_word_search ===============================================================
-- Search across transcriptions: a full-text document per word segment under GIN, written by the
-- library in the transaction that writes the words (from the words joined by spaces); the
-- configuration is the transcription's language's. Hits are placed on their words in the
-- library. [0016]

-- The text search configuration for a transcription's language (an ISO 639-1 code such as
-- 'en' or 'pt-BR', or a configuration's name such as 'english'): the language's own where the
-- server has it, 'simple' (lower-casing, no stemming, no stop words) otherwise.
CREATE FUNCTION media_store_search_config(language text) RETURNS regconfig
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT c.oid::regconfig
         FROM pg_catalog.pg_ts_config AS c
         JOIN pg_catalog.pg_namespace AS n ON n.oid = c.cfgnamespace AND n.nspname = 'pg_catalog'
         WHERE c.cfgname = coalesce(
             CASE lower(split_part(replace(language, '_', '-'), '-', 1))
                 WHEN 'ar' THEN 'arabic' WHEN 'hy' THEN 'armenian' WHEN 'eu' THEN 'basque'
                 WHEN 'ca' THEN 'catalan' WHEN 'da' THEN 'danish' WHEN 'nl' THEN 'dutch'
                 WHEN 'en' THEN 'english' WHEN 'fi' THEN 'finnish' WHEN 'fr' THEN 'french'
                 WHEN 'de' THEN 'german' WHEN 'el' THEN 'greek' WHEN 'hi' THEN 'hindi'
                 WHEN 'hu' THEN 'hungarian' WHEN 'id' THEN 'indonesian' WHEN 'ga' THEN 'irish'
                 WHEN 'it' THEN 'italian' WHEN 'lt' THEN 'lithuanian' WHEN 'ne' THEN 'nepali'
                 WHEN 'no' THEN 'norwegian' WHEN 'nb' THEN 'norwegian'
                 WHEN 'nn' THEN 'norwegian' WHEN 'pt' THEN 'portuguese'
                 WHEN 'ro' THEN 'romanian' WHEN 'ru' THEN 'russian' WHEN 'sr' THEN 'serbian'
                 WHEN 'es' THEN 'spanish' WHEN 'sv' THEN 'swedish' WHEN 'ta' THEN 'tamil'
                 WHEN 'tr' THEN 'turkish' WHEN 'yi' THEN 'yiddish'
             END,
             lower(language)
         )),
        'pg_catalog.simple'::regconfig
    )
$$;

CREATE TABLE transcription_word_search (
    job_id           uuid      NOT NULL,
    transcription_id uuid      NOT NULL,
    seq              integer   NOT NULL,
    config           regconfig NOT NULL,
    document         tsvector  NOT NULL,
    CONSTRAINT transcription_word_search_pkey PRIMARY KEY (job_id, transcription_id, seq),
    CONSTRAINT transcription_word_search_segment_fkey FOREIGN KEY (job_id, transcription_id, seq)
        REFERENCES transcription_word_segments (job_id, transcription_id, seq) ON DELETE CASCADE
);

-- Its pending list (fastupdate) merged past 1 MB rather than the server's 4 MB: every search
-- reads the whole list. [0016, 0018]
CREATE INDEX transcription_word_search_document ON transcription_word_search
    USING gin (document) WITH (gin_pending_list_limit = 1024);

-- A document is a few kB (every lexeme of 256 words with its positions): compressed and kept
-- in the row (STORAGE MAIN) rather than out of line, so that the recheck and the ranking of
-- the segments a query finds read them from the table's pages without a TOAST lookup each;
-- lz4 where the server has it (decompressed several times faster than pglz).
ALTER TABLE transcription_word_search ALTER COLUMN document SET STORAGE MAIN;
DO $$
BEGIN
    ALTER TABLE transcription_word_search ALTER COLUMN document SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; search documents use the default compression';
END;
$$;

COMMENT ON TABLE transcription_word_search IS
    'A full-text document per word segment, for search across transcriptions (0016)';

-- The configurations documents were made with: a search builds its query once for each
-- (a stemmed query matches only documents of its own configuration).
CREATE TABLE transcription_search_configs (
    config regconfig PRIMARY KEY
);

-- A search builds its query with this: the terms ($2 kinds, $3 texts) of a query, each a
-- 'word' (plainto_tsquery), a 'phrase' (phraseto_tsquery: its words in order, stop words
-- counted as gaps) or a 'prefix' (lexemes beginning with the word as typed, lower-cased, or
-- with its stem), all required (AND). A term with no lexeme in the configuration (a stop
-- word, punctuation) drops out; a query left with none is NULL, and matches nothing.
CREATE FUNCTION media_store_search_query(config regconfig, kinds text[], texts text[])
RETURNS tsquery
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET client_min_messages = warning  -- not the notice of a stop word's empty query
AS $$
DECLARE
    result tsquery;
    part tsquery;
    typed text;
    stem text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(kinds), 0) LOOP
        IF kinds[i] = 'phrase' THEN
            part := phraseto_tsquery(config, texts[i]);
        ELSIF kinds[i] = 'prefix' THEN
            typed := lower(texts[i]);
            SELECT l INTO stem
            FROM unnest(tsvector_to_array(to_tsvector(config, texts[i]))) AS l
            LIMIT 1;
            -- Quoted by hand: quote_literal writes E'...' around a backslash, which
            -- to_tsquery would read as one more term.
            part := to_tsquery('simple', '''' || replace(replace(typed, '\', '\\'), '''', '''''')
                                         || ''':*');
            IF stem IS NOT NULL AND stem <> typed THEN
                part := part || to_tsquery('simple', '''' || replace(replace(stem, '\', '\\'),
                                                                       '''', '''''')
                                                   || ''':*');
            END IF;
        ELSE
            part := plainto_tsquery(config, texts[i]);
        END IF;
        IF numnode(part) > 0 THEN
            result := CASE WHEN result IS NULL THEN part ELSE result && part END;
        END IF;
    END LOOP;
    RETURN result;
END;
$$;

-- The segments a search finds (sql/search.sql, search_word_segments, says what the arguments
-- are), best first, a page of them. The query is made once per configuration documents use
-- ($5 language: only that language's); the GIN index is searched once with them all OR'ed (an
-- InitPlan's value, so an index condition; its pending list read once), each document then
-- matched with its own configuration's query (unless only one has a query: the scan's match
-- is then the exact one) and ranked where it is read; the job type,
-- language and speaker filters are EXISTS checks evaluated only when given. Index paths only
-- (enable_seqscan off): a document is a few kB, compressed, so the planner takes a sequential
-- scan for cheap while it decompresses and matches every document; and the table may never
-- have been analyzed. No JIT (the estimates cross its threshold: ~4 ms compiling). PL/pgSQL,
-- whose plans a session keeps (a SQL function's body is planned again at every call: ~2.5 ms).
-- [0016, 0017]
CREATE FUNCTION media_store_search_segments(
    kinds text[], texts text[], of_job_type text, of_job_id uuid, of_language text,
    of_speaker text,
    after_rank real, after_job_id uuid, after_transcription_id uuid, after_seq integer,
    page_size integer
)
RETURNS TABLE (job_id uuid, transcription_id uuid, seq integer, rank real, config regconfig,
               query tsquery)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET jit = off  -- the scan's row estimate crosses jit_above_cost: ~4 ms of compiling a call
ROWS 20
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
WITH q AS MATERIALIZED (
    SELECT c.config, media_store_search_query(c.config, $1::text[], $2::text[]) AS query
    FROM transcription_search_configs AS c
    WHERE $5::text IS NULL OR c.config = media_store_search_config($5::text)
),
-- One scan of the GIN index, with every configuration's query OR'ed (a value known before
-- the scan, so an index condition): the index's pending list, which grows until vacuum or a
-- cleanup flushes it, is read once, not once a configuration. Each document found is then
-- matched with its own configuration's query and ranked where it is read (not copied).
found AS (
    SELECT d.job_id, d.transcription_id, d.seq, d.config, d.document,
           (SELECT q.query FROM q WHERE q.config = d.config) AS query
    FROM transcription_word_search AS d
    WHERE d.document @@ (SELECT string_agg('(' || q.query::text || ')', ' | ')::tsquery
                         FROM q WHERE q.query IS NOT NULL)
),
hits AS (
    SELECT f.job_id, f.transcription_id, f.seq, f.config, f.query,
           ts_rank(f.document, f.query) AS rank
    FROM found AS f
    -- The exact match, in the document's own configuration; already made by the scan when
    -- one configuration has a query (one language, or the language filter given).
    WHERE f.query IS NOT NULL
      AND ((SELECT count(*) FROM q WHERE q.query IS NOT NULL) = 1 OR f.document @@ f.query)
      AND ($4::uuid IS NULL OR f.job_id = $4::uuid)
      AND ($3::text IS NULL
           OR EXISTS (SELECT FROM jobs AS j WHERE j.id = f.job_id AND j.job_type = $3::text))
      -- the language as given ('_' read as '-'), or, given a bare code, its family
      AND ($5::text IS NULL
           OR EXISTS (
               SELECT FROM transcriptions AS t
               WHERE t.job_id = f.job_id AND t.id = f.transcription_id
                 AND (lower(replace(t.language, '_', '-')) = lower(replace($5::text, '_', '-'))
                      OR lower(split_part(replace(t.language, '_', '-'), '-', 1))
                         = lower(replace($5::text, '_', '-')))))
),
page AS (
    SELECT h.*
    FROM hits AS h
    WHERE ($7::real IS NULL
           OR h.rank < $7::real
           OR (h.rank = $7::real
               AND (h.job_id, h.transcription_id, h.seq) > ($8::uuid, $9::uuid, $10::int)))
      AND ($6::text IS NULL
           OR EXISTS (
               SELECT FROM transcription_word_segments AS s
               WHERE s.job_id = h.job_id AND s.transcription_id = h.transcription_id
                 AND s.seq = h.seq
                 AND $6::text = ANY (media_store_unpack_speakers(s.speakers))))
    ORDER BY h.rank DESC, h.job_id, h.transcription_id, h.seq
    LIMIT $11::int
)
SELECT p.job_id, p.transcription_id, p.seq, p.rank, p.config, p.query FROM page AS p;
END;
$$;
