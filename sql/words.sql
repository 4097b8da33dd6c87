-- Word timestamps: segments of up to 256 consecutive words of one transcription, as parallel
-- packed columns (migrations/0003 and 0006), encoded and decoded by media_store.words.segments.
-- Written with their search documents (migrations/0016) by write_word_segments below, or, for a
-- transcription created with its words, by create_transcription_with_words
-- (sql/transcriptions.sql). Same order as media_store/repositories/transcriptions.py.
--
-- Every read of segments filters by job_id, their distribution key (migrations/0009,
-- docs/scaling.md): given by the caller where it has it, else taken from the transcription in
-- the same statement (the transcription's own row, by the primary key: one more index probe).

-- name: lock_transcription_words
-- Lock a transcription against other appenders until the transaction ends, and return its
-- job and language. NO KEY UPDATE: inserts of its segments (KEY SHARE for the foreign key)
-- still proceed.
SELECT id, job_id, language FROM transcriptions WHERE id = $1::uuid FOR NO KEY UPDATE;

-- name: get_word_tail
-- The last segment of transcription $2 of job $1. Run after lock_transcription_words, as a
-- separate statement: under READ COMMITTED it then sees what the appender before us committed.
SELECT seq, last_start
FROM transcription_word_segments
WHERE job_id = $1::uuid AND transcription_id = $2::uuid
ORDER BY seq DESC
LIMIT 1;

-- name: write_word_segments
-- Word segments and their search documents, in one statement: parallel arrays, one element
-- per segment, $1-$12 its columns in the order of media_store.words.segments.SEGMENT_COLUMNS;
-- $13 the text search configuration of its transcription, $14 its document as a tsvector
-- literal made by the writer (media_store.words.documents), or NULL where the server makes it
-- from $15, the segment's words joined by spaces. The documents' foreign key to their segments
-- is checked at the statement's end, when both are in. The configurations seen are kept in
-- transcription_search_configs: only one not there yet is inserted (the first words of a new
-- language; writers of that language meanwhile wait for that transaction), in name order (two
-- such writers cannot deadlock).
WITH segments AS (
    INSERT INTO transcription_word_segments
        (job_id, transcription_id, seq, first_start, last_start, word_count, words,
         word_lengths, starts, ends, confidences, speakers)
    SELECT x.job_id, x.transcription_id, x.seq, x.first_start, x.last_start, x.word_count,
           x.words, x.word_lengths, x.starts, x.ends, x.confidences, x.speakers
    FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::float8[], $5::float8[], $6::int[],
                $7::text[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], $12::bytea[])
         AS x (job_id, transcription_id, seq, first_start, last_start, word_count, words,
               word_lengths, starts, ends, confidences, speakers)
), documents AS (
    INSERT INTO transcription_word_search (job_id, transcription_id, seq, config, document)
    SELECT x.job_id, x.transcription_id, x.seq, x.config::regconfig,
           coalesce(x.document::tsvector, to_tsvector(x.config::regconfig, x.text))
    FROM unnest($1::uuid[], $2::uuid[], $3::int[], $13::text[], $14::text[], $15::text[])
         AS x (job_id, transcription_id, seq, config, document, text)
    RETURNING config
)
INSERT INTO transcription_search_configs (config)
SELECT DISTINCT d.config FROM documents AS d
WHERE NOT EXISTS (SELECT FROM transcription_search_configs AS k WHERE k.config = d.config)
ORDER BY d.config
ON CONFLICT DO NOTHING;

-- name: list_word_segments
-- Every segment of one transcription, in word order (transcription_word_segments_pkey).
SELECT s.transcription_id, s.words, s.word_lengths, s.starts, s.ends, s.confidences,
       s.speakers
FROM transcriptions AS t
JOIN transcription_word_segments AS s ON s.job_id = t.job_id AND s.transcription_id = t.id
WHERE t.id = $1::uuid
ORDER BY s.seq;

-- name: list_word_segments_for_job
-- Every segment of every transcription of a job, grouped by transcription, in word order.
SELECT transcription_id, words, word_lengths, starts, ends, confidences, speakers
FROM transcription_word_segments
WHERE job_id = $1::uuid
ORDER BY transcription_id, seq;

-- name: list_word_segments_between
-- The segments holding a word with $2 <= start < $3. Starts never decrease along seq, so
-- these run from the first segment whose last start is >= $2 to the first whose last start
-- is >= $3 (two probes of transcription_word_segments_time), read on the primary key: only
-- those rows are visited, however long the transcription. The job is looked up once (owner).
WITH owner AS MATERIALIZED (SELECT t.job_id FROM transcriptions AS t WHERE t.id = $1::uuid)
SELECT s.transcription_id, s.words, s.word_lengths, s.starts, s.ends, s.confidences,
       s.speakers
FROM transcription_word_segments AS s
WHERE s.job_id = (SELECT owner.job_id FROM owner)
  AND s.transcription_id = $1::uuid
  AND s.seq >= (SELECT f.seq FROM transcription_word_segments AS f
                WHERE f.job_id = (SELECT owner.job_id FROM owner)
                  AND f.transcription_id = $1::uuid AND f.last_start >= $2::float8
                ORDER BY f.last_start, f.seq
                LIMIT 1)
  AND s.seq <= coalesce((SELECT l.seq FROM transcription_word_segments AS l
                         WHERE l.job_id = (SELECT owner.job_id FROM owner)
                           AND l.transcription_id = $1::uuid AND l.last_start >= $3::float8
                         ORDER BY l.last_start, l.seq
                         LIMIT 1), 2147483647)
  AND s.first_start < $3::float8
ORDER BY s.seq;

-- name: count_words
-- Number of words of a transcription; no row when the transcription does not exist.
SELECT t.id AS transcription_id, coalesce(sum(s.word_count), 0)::bigint AS word_count
FROM transcriptions AS t
LEFT JOIN transcription_word_segments AS s ON s.job_id = t.job_id AND s.transcription_id = t.id
WHERE t.id = $1::uuid
GROUP BY t.id;
