-- Reverts 0009: word segments keyed by transcription alone again, as 0003/0006 made them.
DROP INDEX transcription_word_segments_time;

ALTER TABLE transcription_word_segments
    DROP CONSTRAINT transcription_word_segments_pkey,
    ADD CONSTRAINT transcription_word_segments_pkey PRIMARY KEY (transcription_id, seq),
    DROP CONSTRAINT transcription_word_segments_job_transcription_fkey,
    ADD CONSTRAINT transcription_word_segments_transcription_id_fkey
        FOREIGN KEY (transcription_id) REFERENCES transcriptions (id) ON DELETE CASCADE,
    DROP COLUMN job_id;

CREATE INDEX transcription_word_segments_time
    ON transcription_word_segments (transcription_id, last_start, seq);

ALTER TABLE transcriptions DROP CONSTRAINT transcriptions_job_id_id_key;
