-- Word timestamps: segments of up to 256 consecutive words of one transcription, as parallel
-- packed columns (migrations/0003 and 0006), encoded and decoded by media_store.segments.
-- Segments are written by binary COPY (copy_records_to_table), not by a query here. Same
-- order as media_store/repositories/transcriptions.py.
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
