-- Creating jobs idempotently and in bulk: enqueue and create_many, in the order of
-- media_store/repositories/enqueue.py. Columns are listed in the order of media_store.models.Job.

-- name: enqueue_job
-- Insert a pending job with idempotency key $8 (scope $9) unless another job holds the key;
-- returns the new job (created) or the holder (not created). The unique index decides the race
-- (ON CONFLICT ... DO NOTHING); the holder is read in the statement's snapshot, which misses a
-- holder committed after the statement began: then no row comes back and the caller runs the
-- statement again (a new snapshot), which finds it, or inserts if it has meanwhile let go.
WITH created AS (
    INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after,
                      idempotency_key, idempotency_scope)
    VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::int, $6::smallint, $7::timestamptz,
            $8::text, $9::text)
    ON CONFLICT (idempotency_key)
        WHERE idempotency_key IS NOT NULL
          AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
        DO NOTHING
    RETURNING id, job_type, status, media_url, prompt, parameters, result, error,
              created_at, updated_at, started_at, completed_at, processing_time_ms,
              attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
              priority, idempotency_key, idempotency_scope
)
SELECT true AS created, id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM created
UNION ALL
SELECT false, id, job_type, status, media_url, prompt, parameters, result, error,
       created_at, updated_at, started_at, completed_at, processing_time_ms,
       attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
       priority, idempotency_key, idempotency_scope
FROM jobs
WHERE idempotency_key = $8::text
  AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
  AND NOT EXISTS (SELECT FROM created);

-- name: get_clock
-- The database's clock: create_many stamps a batch it COPYs with it (a COPY returns nothing;
-- its jobs' created_at is this less one microsecond per later item, its updated_at this).
SELECT clock_timestamp() AS now;

-- name: create_keyed_jobs
-- Insert many pending jobs from parallel arrays, all or nothing, skipping items whose
-- idempotency key another job holds: create_many's statement when its probe found a key held,
-- or when a key was taken during its COPY. The parameters come as one JSON array ($4), not a
-- jsonb[]: one document to encode and parse instead of one per job (1.1 vs 3.0 us a job of
-- 10,000, measured). updated_at is the statement's clock, created_at that minus one
-- microsecond per later item: the batch is first in first out in input order whatever the
-- clock's resolution, no job of it is created in the future, and each returned row tells its
-- item, counted from the end (updated_at - created_at in microseconds), whatever order rows
-- come back in. Returns what the database chose (id, created_at, updated_at) for the created
-- jobs only. The unique index decides races, as in enqueue_job; the caller reads the holders
-- of the items without a row with get_key_holders, in the same transaction (only when there
-- are any). Inserted in key order (bytewise): concurrent batches sharing keys then wait for
-- each other's keys in one order and cannot deadlock (measured: in input order, 16 batches
-- of 20 shared keys in rotated orders deadlocked at once); created_at keeps the input order.
INSERT INTO jobs (job_type, media_url, prompt, parameters, max_attempts, priority, run_after,
                  idempotency_key, idempotency_scope, created_at, updated_at)
SELECT g.job_type, g.media_url, g.prompt, g.parameters, g.max_attempts, g.priority,
       g.run_after, g.idempotency_key, g.idempotency_scope,
       clock.at - (cardinality($1::text[]) - g.ord) * interval '1 microsecond', clock.at
FROM ROWS FROM (unnest($1::text[]), unnest($2::text[]), unnest($3::text[]),
               jsonb_array_elements($4::jsonb), unnest($5::int[]), unnest($6::smallint[]),
               unnest($7::timestamptz[]), unnest($8::text[]), unnest($9::text[]))
     WITH ORDINALITY AS g (job_type, media_url, prompt, parameters, max_attempts, priority,
                           run_after, idempotency_key, idempotency_scope, ord),
     (SELECT clock_timestamp() AS at) AS clock
ORDER BY g.idempotency_key COLLATE "C", g.ord
ON CONFLICT (idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
    DO NOTHING
RETURNING id, created_at, updated_at;

-- name: get_key_holders
-- The jobs holding the idempotency keys $1: for each key, one probe of the unique index (a
-- LATERAL subquery with LIMIT 1 is a parameterized index scan a key whatever the statistics
-- say; `= ANY($1)` over 10,000 keys is planned as a sequential scan on a table not yet
-- analyzed). Run before create_many's COPY, and after create_keyed_jobs in its transaction
-- with a snapshot of its own: a holder that committed after the insert's snapshot (whose key
-- the insert found taken) is seen here.
SELECT j.id, j.job_type, j.status, j.media_url, j.prompt, j.parameters, j.result, j.error,
       j.created_at, j.updated_at, j.started_at, j.completed_at, j.processing_time_ms,
       j.attempts, j.max_attempts, j.locked_by, j.locked_until, j.heartbeat_at, j.run_after,
       j.priority, j.idempotency_key, j.idempotency_scope
FROM unnest($1::text[]) AS k (key)
CROSS JOIN LATERAL (
    SELECT id, job_type, status, media_url, prompt, parameters, result, error,
           created_at, updated_at, started_at, completed_at, processing_time_ms,
           attempts, max_attempts, locked_by, locked_until, heartbeat_at, run_after,
           priority, idempotency_key, idempotency_scope
    FROM jobs
    WHERE idempotency_key = k.key
      AND (idempotency_scope = 'forever' OR status IN ('pending', 'processing'))
    LIMIT 1
) AS j;
