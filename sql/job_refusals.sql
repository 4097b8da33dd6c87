-- What a refused job write reads to tell why (the write changed nothing): in the order of
-- media_store/repositories/job_refusals.py.

-- name: get_job_status
-- Only the status of one job: tells "absent" from "wrong state" after a refused update.
SELECT status FROM jobs WHERE id = $1::uuid;

-- name: get_other_key_holder
-- The job other than $1 that holds $1's idempotency key now (scope forever, or active while
-- pending or processing; at most one: jobs_idempotency_key_idx), with the key: tells which job
-- a requeue of failed job $1 collided with. One probe of the primary key, one of the unique
-- index.
-- (The key is read by a subquery pinned to $1, not by a self-join: on Citus the holder may sit
-- on another shard, so the outer lookup is a fan-out by key, the subquery a router query.)
SELECT h.idempotency_key, h.id, h.status
FROM jobs AS h
WHERE h.idempotency_key = (SELECT f.idempotency_key FROM jobs AS f WHERE f.id = $1::uuid)
  AND h.id <> $1::uuid
  AND (h.idempotency_scope = 'forever' OR h.status IN ('pending', 'processing'))
LIMIT 1;
