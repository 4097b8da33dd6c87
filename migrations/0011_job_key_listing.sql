-- Jobs listed by their idempotency key (`jobs.list_jobs(key=...)`, `media-store jobs list
-- --key`): every job that ever had the key, newest first, a keyset page at a time.
--
-- jobs_idempotency_key_idx (0007) cannot serve it: it is unique and holds only the jobs that
-- hold their key now (scope forever, or active while pending or processing), not the finished
-- jobs an active key had before. This index is partial on a key being set, so jobs created
-- without a key (the drain's, and most) never write an entry; a keyed job writes one on each
-- status change, as it does in the other non-partial indexes.
--
-- depends: 0010_jobs_inline_time_checks

CREATE INDEX jobs_key_created_at_idx ON jobs (idempotency_key, created_at, id)
    WHERE idempotency_key IS NOT NULL;
