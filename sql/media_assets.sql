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
