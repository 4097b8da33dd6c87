-- The plan's four tables, corrected: nothing is dropped on apply, no extension is needed
-- (gen_random_uuid() is built in since PostgreSQL 13), and the database enforces its own
-- invariants so that every client, not only this library, is held to them.

CREATE FUNCTION media_store_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Whoever updates a row, updated_at follows the database clock.
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;

-- The job lifecycle: pending -> processing -> completed | failed; processing -> pending when a
-- lease is released or lost; failed -> pending when a job is requeued. A finished job never
-- moves again. One function states it; the trigger below and the library's queries use it.
CREATE FUNCTION media_store_job_transition_allowed(from_status text, to_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (from_status = 'pending'    AND to_status = 'processing')
        OR (from_status = 'processing' AND to_status IN ('completed', 'failed', 'pending'))
        OR (from_status = 'failed'     AND to_status = 'pending')
$$;

-- Raised as a check_violation naming the rule, so callers can match on the constraint name.
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

CREATE TABLE jobs (
    id                 uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type           varchar(50)  NOT NULL,
    status             varchar(50)  NOT NULL DEFAULT 'pending',
    media_url          text         NOT NULL,
    prompt             text,
    parameters         jsonb        NOT NULL DEFAULT '{}'::jsonb,
    result             jsonb,
    error              text,
    created_at         timestamptz  NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz  NOT NULL DEFAULT clock_timestamp(),
    started_at         timestamptz,
    completed_at       timestamptz,
    processing_time_ms integer,
    CONSTRAINT jobs_status_check
        CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    CONSTRAINT jobs_job_type_check
        CHECK (job_type IN ('video', 'audio', 'document')),
    CONSTRAINT jobs_media_url_check CHECK (media_url <> ''),
    CONSTRAINT jobs_parameters_check CHECK (jsonb_typeof(parameters) = 'object'),
    CONSTRAINT jobs_processing_time_ms_check CHECK (processing_time_ms >= 0)
);

-- Timestamps use clock_timestamp(), not now(): rows created in one transaction keep the order
-- they were created in, which listings and claims ("oldest first") rely on.

-- Jobs are read by status in creation order (newest first for listings, oldest first for
-- claims: a btree serves both directions) and listed by creation time with id as tie-breaker.
CREATE INDEX jobs_status_created_at_idx ON jobs (status, created_at, id);
CREATE INDEX jobs_created_at_idx ON jobs (created_at, id);

CREATE TRIGGER jobs_touch_updated_at
    BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION media_store_touch_updated_at();

CREATE TRIGGER jobs_status_transition
    BEFORE UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION media_store_check_job_transition();

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
    CONSTRAINT media_assets_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX media_assets_job_id_idx ON media_assets (job_id, created_at);

CREATE TABLE transcriptions (
    id               uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id           uuid          NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    provider         varchar(50)   NOT NULL,
    text_content     text          NOT NULL,
    language         varchar(10),
    confidence_score double precision,
    word_timestamps  jsonb,
    metadata         jsonb         NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz   NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT transcriptions_confidence_score_check
        CHECK (confidence_score >= 0 AND confidence_score <= 1),
    CONSTRAINT transcriptions_word_timestamps_check
        CHECK (jsonb_typeof(word_timestamps) = 'array'),
    CONSTRAINT transcriptions_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX transcriptions_job_id_idx ON transcriptions (job_id, created_at);

CREATE TABLE analysis_results (
    id                uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id            uuid          NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    analysis_type     varchar(50)   NOT NULL,
    summary           text,
    detailed_analysis jsonb,
    confidence_score  double precision,
    model_used        varchar(100),
    prompt_used       text,
    input_tokens      integer,
    output_tokens     integer,
    created_at        timestamptz   NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT analysis_results_confidence_score_check
        CHECK (confidence_score >= 0 AND confidence_score <= 1),
    CONSTRAINT analysis_results_input_tokens_check CHECK (input_tokens >= 0),
    CONSTRAINT analysis_results_output_tokens_check CHECK (output_tokens >= 0)
);
CREATE INDEX analysis_results_job_id_idx ON analysis_results (job_id, created_at);

COMMENT ON TABLE jobs IS 'Media analysis job requests and their lifecycle status';
COMMENT ON TABLE media_assets IS 'Processed media files and their metadata';
COMMENT ON TABLE transcriptions IS 'Audio/video transcription results from multiple providers';
COMMENT ON TABLE analysis_results IS 'LLM analysis results from MiniMax and other providers';
