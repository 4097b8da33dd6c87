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
SELECT h.idempotency_key, h.id, h.status
FROM jobs AS f
JOIN jobs AS h ON h.idempotency_key = f.idempotency_key
WHERE f.id = $1::uuid AND h.id <> f.id
  AND (h.idempotency_scope = 'forever' OR h.status IN ('pending', 'processing'))
LIMIT 1;
