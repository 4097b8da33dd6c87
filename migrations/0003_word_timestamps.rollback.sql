-- Reverts 0003: the words go back into transcriptions.word_timestamps as the plan stored them
-- (one JSONB array of {"word", "start", "end", "confidence", "speaker"} objects, absent keys
-- for missing values), then the segments table is dropped.
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
    CROSS JOIN LATERAL unnest(s.words, s.starts, s.ends, s.confidences, s.speakers)
        WITH ORDINALITY AS w (word, start, finish, confidence, speaker, n)
    GROUP BY s.transcription_id
) AS moved
WHERE t.id = moved.transcription_id;

DROP TABLE IF EXISTS transcription_word_segments;
