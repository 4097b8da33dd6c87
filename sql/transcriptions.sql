-- Transcriptions. Columns in the order of media_store.models.Transcription.
-- word_timestamps is the plan's column, now a marker (migrations/0003): NULL when created
-- without words, '[]' when created with them. The words are in transcription_word_segments
-- (sql/words.sql); the repository reads them there and puts them in the model.

-- name: create_transcription
-- Insert one transcription; $6: created with word timestamps (sets the '[]' marker). A job_id
-- with no job fails on transcriptions_job_id_fkey.
INSERT INTO transcriptions
    (job_id, provider, text_content, language, confidence_score, word_timestamps, metadata)
VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::float8,
        CASE WHEN $6::boolean THEN '[]'::jsonb END, $7::jsonb)
RETURNING id, job_id, provider, text_content, language, confidence_score, word_timestamps,
          metadata, created_at;

-- name: create_transcriptions
-- Insert many transcriptions in one statement from parallel arrays, in array order (backfill).
INSERT INTO transcriptions
    (job_id, provider, text_content, language, confidence_score, word_timestamps, metadata)
SELECT job_id, provider, text_content, language, confidence_score,
       CASE WHEN with_words THEN '[]'::jsonb END, metadata
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::boolean[],
            $7::jsonb[])
     WITH ORDINALITY AS t (job_id, provider, text_content, language, confidence_score,
                           with_words, metadata, n)
ORDER BY n
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
-- Delete one transcription; its word segments go with it (ON DELETE CASCADE).
DELETE FROM transcriptions WHERE id = $1::uuid RETURNING id;
