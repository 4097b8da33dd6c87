-- The trace context a job was created in (issue 22, traces): the W3C `traceparent` (and
-- `tracestate`) of the span that was current when a traced Store created the job, so that the
-- worker that runs it starts its handler's span as a child of that span, and the request that
-- enqueued a job and the worker that ran it share one trace.
--
-- A table beside jobs, not a column of it:
-- - jobs is the hot, often-updated row (a claim, a heartbeat every few seconds, a completion
--   each write a new version of the whole row): a context of ~60-600 bytes would be copied by
--   every one of them, for a value written once and read once;
-- - jobs' row type is what media_store_claim_jobs returns, column for column: a column added
--   to jobs means redefining the claim function, whose body other migrations change too;
-- - only traced jobs have a row here: an untraced deployment writes and reads nothing more.
-- The worker reads the contexts of a claimed batch in one statement, only when tracing.
-- Rows go with their job (ON DELETE CASCADE), as job_cancel_requests' do.
--
-- depends: 0013_claim_by_priority_levels

CREATE TABLE job_trace_contexts (
    job_id      uuid          PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    traceparent varchar(55)   NOT NULL,
    tracestate  varchar(512),
    CONSTRAINT job_trace_contexts_traceparent_check
        CHECK (traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$')
);
COMMENT ON TABLE job_trace_contexts IS
    'W3C trace context (traceparent, tracestate) each traced job was created in';
