-- Transcriptions. Columns in the order of media_store.models.Transcription.

-- name: create_transcription
-- Insert one transcription; a job_id with no job fails on transcriptions_job_id_fkey.
INSERT INTO transcriptions
    (job_id, provider, text_content, language, confidence_score, word_timestamps, metadata)
VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::float8, $6::jsonb, $7::jsonb)
RETURNING id, job_id, provider, text_content, language, confidence_score, word_timestamps,
          metadata, created_at;

-- name: get_transcription
-- One transcription by id.
SELECT id, job_id, provider, text_content, language, confidence_score, word_timestamps,
       metadata, created_at
FROM transcriptions
WHERE id = $1::uuid;

-- name: list_transcriptions_for_job
-- A job's transcriptions in creation order (transcriptions_job_id_idx).
SELECT id, job_id, provider, text_content, language, confidence_score, word_timestamps,
       metadata, created_at
FROM transcriptions
WHERE job_id = $1::uuid
ORDER BY created_at, id;

-- name: delete_transcription
-- Delete one transcription.
DELETE FROM transcriptions WHERE id = $1::uuid RETURNING id;
