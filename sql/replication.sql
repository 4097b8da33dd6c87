-- Streaming replication positions, read by media_store.replicas to bound a replica's lag.
-- Positions are bytes of WAL from 0/0 (pg_lsn minus '0/0'), so the library compares numbers.
-- Same order as media_store/repositories/replication.py.

-- name: get_wal_position
-- On the primary: how far its WAL is written (every commit acknowledged so far ends at or
-- before it). Raises on a standby (recovery in progress): never called there.
SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS wal_position;

-- name: get_replay_position
-- On a replica: how far it has replayed the primary's WAL, and whether it is a standby at
-- all. A server that is not in recovery (a primary named as its own replica, or a promoted
-- standby) holds everything it has: replay_position is NULL then.
SELECT CASE WHEN pg_is_in_recovery()
            THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint
       END AS replay_position,
       pg_is_in_recovery() AS in_recovery;
