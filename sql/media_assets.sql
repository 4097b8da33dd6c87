-- Media assets: the files a job produced. Columns in the order of media_store.models.MediaAsset.

-- name: create_media_asset
-- Insert one asset; a job_id with no job fails on media_assets_job_id_fkey.
INSERT INTO media_assets (job_id, asset_type, file_path, file_size_bytes, mime_type, metadata)
VALUES ($1::uuid, $2::text, $3::text, $4::bigint, $5::text, $6::jsonb)
RETURNING id, job_id, asset_type, file_path, file_size_bytes, mime_type, metadata, created_at;

-- name: create_media_assets
-- Insert many assets in one statement from parallel arrays, in array order.
INSERT INTO media_assets (job_id, asset_type, file_path, file_size_bytes, mime_type, metadata)
SELECT job_id, asset_type, file_path, file_size_bytes, mime_type, metadata
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::jsonb[])
     WITH ORDINALITY AS a (job_id, asset_type, file_path, file_size_bytes, mime_type, metadata, n)
ORDER BY n
RETURNING id, job_id, asset_type, file_path, file_size_bytes, mime_type, metadata, created_at;

-- name: get_media_asset
-- One asset by id.
SELECT id, job_id, asset_type, file_path, file_size_bytes, mime_type, metadata, created_at
FROM media_assets
WHERE id = $1::uuid;

-- name: list_media_assets_for_job
-- A job's assets in creation order (media_assets_job_id_idx).
SELECT id, job_id, asset_type, file_path, file_size_bytes, mime_type, metadata, created_at
FROM media_assets
WHERE job_id = $1::uuid
ORDER BY created_at, id;

-- name: delete_media_asset
-- Delete one asset.
DELETE FROM media_assets WHERE id = $1::uuid RETURNING id;

-- name: lock_asset_import
-- Serialise imports of one source file (SHA-256 $2) into job $1 until the transaction ends: a
-- transaction-level advisory lock on a 64-bit hash of the pair, so imports of other files or
-- into other jobs never wait, and the job row (which workers update) is not locked. Two pairs
-- sharing a hash only wait for each other. Returns the key (pg_locks: classid, objid).
SELECT k.key AS lock_key
FROM (SELECT hashtextextended($1::uuid::text || '/' || $2::text, 0) AS key) AS k,
     pg_advisory_xact_lock(k.key);

-- name: find_imported_asset
-- The newest source-file asset recording an import of the file with SHA-256 $2 into job $1
-- (metadata.asr_import, as media-store import writes it) whose transcription still exists, or
-- no row. Reads the job's assets and transcriptions by their job_id indexes, never words.
SELECT a.id, a.job_id, a.asset_type, a.file_path, a.file_size_bytes, a.mime_type, a.metadata,
       a.created_at
FROM media_assets AS a
WHERE a.job_id = $1::uuid
  AND a.metadata -> 'asr_import' ->> 'sha256' = $2::text
  AND EXISTS (SELECT FROM transcriptions AS t
              WHERE t.job_id = a.job_id
                AND t.id::text = a.metadata -> 'asr_import' ->> 'transcription_id')
ORDER BY a.created_at DESC, a.id DESC
LIMIT 1;
