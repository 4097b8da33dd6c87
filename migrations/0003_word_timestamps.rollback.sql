-- Reverts 0003: the words go back into transcriptions.word_timestamps as the plan stored them
-- (one JSONB array of {"word", "start", "end", "confidence", "speaker"} objects, absent keys
-- for missing values), then the segments table and its functions are dropped.
UPDATE transcriptions AS t
SET word_timestamps = moved.words
FROM (
    SELECT s.transcription_id,
           jsonb_agg(
               jsonb_strip_nulls(jsonb_build_object(
                   'word', w.word, 'start', w.start, 'end', w.finish,
                   'confidence', w.confidence, 'speaker', w.speaker))
               ORDER BY s.seq, w.n
           ) AS words
    FROM transcription_word_segments AS s
    CROSS JOIN LATERAL unnest(
        media_store_unpack_words(s.words, s.word_lengths),
        media_store_unpack_float8(s.starts),
        media_store_unpack_float8(s.ends),
        media_store_unpack_float8(s.confidences),
        s.speakers
    )
        WITH ORDINALITY AS w (word, start, finish, confidence, speaker, n)
    GROUP BY s.transcription_id
) AS moved
WHERE t.id = moved.transcription_id;

DROP TABLE IF EXISTS transcription_word_segments;
DROP FUNCTION IF EXISTS media_store_unpack_words(text, bytea);
DROP FUNCTION IF EXISTS media_store_unpack_float8(bytea);
DROP FUNCTION IF EXISTS media_store_float8_at(bytea, integer);
