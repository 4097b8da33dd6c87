-- Every write to jobs made cheaper by index entries that did not earn their cost. Each index
-- on jobs costs an insert 0.7-2 us of ~10.7, and every status change that is not a HOT update
-- (a claim, a completion) writes one entry into each index that is not partial.
-- Measured on this 2-core machine, shared, with EXPLAIN (ANALYZE, TIMING OFF) on a freshly
-- truncated table: server execution time a job, 10,000 jobs a statement, medians of 7 rounds,
-- 0011 -> 0012 in alternating runs (status changes: one UPDATE of all the jobs setting what
-- the claim and the completion set):
--   create_jobs, no key                   9.9-10.7 -> 9.2-9.4 us
--   create_keyed_jobs                     15.2-15.6 -> 13.3-13.4 us (fastest rounds; noisy)
--   pending -> processing, no key         11.2 -> 8.8-9.0 us
--   pending -> processing, keyed          15.2-16.0 -> 11.1-11.6 us
--   processing -> completed, no key       13.2-13.4 -> 11.6-11.8 us
--   processing -> completed, keyed        16.5-17.1 -> 14.2-14.6 us
-- The price is paid by the listings by time: five index descents a page instead of one and a
-- larger plan (a page of 100 from 220k jobs: 0.12-0.2 ms to run instead of 0.05-0.1, 0.4-0.65
-- ms to plan instead of 0.06-0.3 while a prepared statement still gets custom plans).
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
