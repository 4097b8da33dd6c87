-- Every row of a job on one shard (issue 13; docs/scaling.md): word segments carry their job.
--
-- Everything a job owns is keyed by the job (jobs.id, and job_id everywhere else), except the
-- word segments, keyed by transcription only. A sharded PostgreSQL (Citus) distributes tables
-- by one column and joins them on a shard only when both sides are distributed by it, so the
-- segments get the job's id too:
--
-- 1. transcription_word_segments.job_id, filled from their transcription, NOT NULL.
-- 2. Its foreign key becomes (job_id, transcription_id) -> transcriptions (job_id, id): the
--    database keeps it equal to the transcription's job (a composite key whose referenced
--    pair is unique: transcriptions_job_id_id_key, below). A key across shards must contain
--    the distribution column; this one does.
-- 3. Its primary key and time index lead with job_id, as a distributed table's unique
--    constraints must include the distribution column. The queries filter by job_id first
--    (sql/words.sql); ordering within a transcription is unchanged (seq, last_start).
--
-- Measured (benchmarks/bench_distribution.py): 16 bytes more per segment of up to 256 words;
-- see the README and docs/scaling.md for ingest and window-read figures before and after.
--
-- The table is rewritten under an exclusive lock (the column is filled): run it when words are
-- not being written.
--
-- depends: 0008_cancellation

ALTER TABLE transcriptions
    ADD CONSTRAINT transcriptions_job_id_id_key UNIQUE (job_id, id);

ALTER TABLE transcription_word_segments ADD COLUMN job_id uuid;

UPDATE transcription_word_segments AS s
SET job_id = t.job_id
FROM transcriptions AS t
WHERE t.id = s.transcription_id;

ALTER TABLE transcription_word_segments
    ALTER COLUMN job_id SET NOT NULL,
    DROP CONSTRAINT transcription_word_segments_transcription_id_fkey,
    ADD CONSTRAINT transcription_word_segments_job_transcription_fkey
        FOREIGN KEY (job_id, transcription_id) REFERENCES transcriptions (job_id, id)
        ON DELETE CASCADE,
    DROP CONSTRAINT transcription_word_segments_pkey,
    ADD CONSTRAINT transcription_word_segments_pkey PRIMARY KEY (job_id, transcription_id, seq);

DROP INDEX transcription_word_segments_time;
CREATE INDEX transcription_word_segments_time
    ON transcription_word_segments (job_id, transcription_id, last_start, seq);
