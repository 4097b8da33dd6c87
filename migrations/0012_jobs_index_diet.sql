-- Every write to jobs made cheaper by two index entries that did not earn their cost.
-- Measured with EXPLAIN (ANALYZE, TIMING OFF) of create_jobs inserting 10,000 jobs into a
-- freshly truncated table, server execution time a job, median of 7 (figures in the commit
-- and docs/scaling.md): each index on jobs costs an insert 0.7-2 us of ~10.7, and every
-- status change that is not a HOT update (a claim, a completion) writes one entry into each
-- index that is not partial.
--
-- * jobs_created_at_idx (created_at, id) goes: listing by time, any status, reads
--   jobs_status_created_at_idx instead, one ordered range per status merged in order (the
--   UNION ALL of get_all_jobs, list_jobs_after and list_jobs_of_type in sql/jobs.sql). There
--   are five statuses (jobs_status_check), so a page costs five index descents instead of one.
-- * jobs_key_created_at_idx (0011) keeps only the keyed jobs that jobs_idempotency_key_idx
--   does not hold: finished jobs of an active key, whose key is free again. A keyed row
--   version is now in exactly one of the two (it was in both while pending or processing,
--   and a forever key's job in both for good), and list_jobs_with_key reads the holder from
--   the unique index and the others from this one.
--
-- depends: 0011_job_key_listing

DROP INDEX jobs_created_at_idx;

DROP INDEX jobs_key_created_at_idx;
CREATE INDEX jobs_key_created_at_idx ON jobs (idempotency_key, created_at, id)
    WHERE idempotency_key IS NOT NULL AND idempotency_scope = 'active'
      AND status NOT IN ('pending', 'processing');
