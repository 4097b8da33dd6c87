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

-- name: create_transcription_with_words
-- Insert one transcription with its words and their search documents, in one statement
-- (no transaction around it to open and commit: one round trip). $1-$7 as in
-- create_transcription; then one element per word segment (parallel arrays, as
-- write_word_segments in sql/words.sql takes them, without the job and transcription, which
-- are the new row's): $8 seq, $9 first_start, $10 last_start, $11 word_count, $12 words,
-- $13 word_lengths, $14 starts, $15 ends, $16 confidences, $17 speakers; $18 the text search
-- configuration, $19 the document as a tsvector literal made by the writer, or NULL where
-- the server makes it from $20, the segment's words joined by spaces. The foreign keys of the
-- segments and of their documents are checked at the statement's end, when all are in.
WITH created AS (
    INSERT INTO transcriptions
        (job_id, provider, text_content, language, confidence_score, word_timestamps, metadata)
    VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::float8,
            CASE WHEN $6::boolean THEN '[]'::jsonb END, $7::jsonb)
    RETURNING id, job_id, provider, text_content, language, confidence_score, word_timestamps,
              metadata, created_at
), segments AS (
    INSERT INTO transcription_word_segments
        (job_id, transcription_id, seq, first_start, last_start, word_count, words,
         word_lengths, starts, ends, confidences, speakers)
    SELECT c.job_id, c.id, x.seq, x.first_start, x.last_start, x.word_count, x.words,
           x.word_lengths, x.starts, x.ends, x.confidences, x.speakers
    FROM created AS c,
         unnest($8::int[], $9::float8[], $10::float8[], $11::int[], $12::text[], $13::bytea[],
                $14::bytea[], $15::bytea[], $16::bytea[], $17::bytea[])
         AS x (seq, first_start, last_start, word_count, words, word_lengths, starts, ends,
               confidences, speakers)
), documents AS (
    INSERT INTO transcription_word_search (job_id, transcription_id, seq, config, document)
    SELECT c.job_id, c.id, x.seq, x.config::regconfig,
           coalesce(x.document::tsvector, to_tsvector(x.config::regconfig, x.text))
    FROM created AS c,
         unnest($8::int[], $18::text[], $19::text[], $20::text[]) AS x (seq, config, document, text)
    RETURNING config
), configs AS (
    INSERT INTO transcription_search_configs (config)
    SELECT DISTINCT d.config FROM documents AS d
    WHERE NOT EXISTS (SELECT FROM transcription_search_configs AS k WHERE k.config = d.config)
    ORDER BY d.config
    ON CONFLICT DO NOTHING
)
SELECT id, job_id, provider, text_content, language, confidence_score, word_timestamps,
       metadata, created_at
FROM created;

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
