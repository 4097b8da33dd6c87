-- Table health for the metrics (media_store.metrics) and operators, in the order of
-- media_store/repositories/health.py: from the statistics views and catalogs only, so that a
-- scrape every few seconds reads no table, whatever its size.

-- name: get_table_health
-- For each table $1 of the search path that exists: its dead tuples, live tuples (estimates
-- of the statistics collector), last autovacuum (NULL: never), and its size on disk with its
-- indexes and TOAST (pg_total_relation_size: the files' sizes, no table read).
SELECT t.name AS table_name,
       coalesce(s.n_dead_tup, 0) AS dead_tuples,
       coalesce(s.n_live_tup, 0) AS live_tuples,
       s.last_autovacuum,
       pg_total_relation_size(c.oid) AS total_bytes
FROM unnest($1::text[]) WITH ORDINALITY AS t (name, ord)
JOIN pg_class AS c ON c.oid = to_regclass(t.name)
LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
ORDER BY t.ord;

-- name: get_oldest_transaction_age
-- Seconds since the oldest transaction still open on the server began, among the sessions
-- whose snapshot holds back vacuum (backend_xmin set: dead tuples newer than it cannot be
-- removed in any database), other than this one; NULL when there is none. A role sees
-- other roles' sessions only with pg_read_all_stats (or pg_monitor).
SELECT extract(epoch FROM clock_timestamp() - min(xact_start))::float8 AS age_s
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
  AND xact_start IS NOT NULL
  AND backend_xmin IS NOT NULL;
