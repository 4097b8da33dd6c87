-- Reverts 0015: the workers' writes by id are plain statements again (sql/queue.sql of 0014).
DROP FUNCTION IF EXISTS media_store_release_jobs(text, uuid[]);
DROP FUNCTION IF EXISTS media_store_complete_jobs(text, uuid[], jsonb[]);
DROP FUNCTION IF EXISTS media_store_heartbeat_jobs(text, uuid[], double precision);
ALTER TABLE jobs RESET (
    fillfactor,
    autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor,
    autovacuum_vacuum_cost_delay
);
