-- Reverts 0014: jobs no longer keep the trace context they were created in (their workers'
-- spans start new traces).
DROP TABLE IF EXISTS job_trace_contexts;
