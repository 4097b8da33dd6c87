-- Word timestamps move from transcriptions.word_timestamps (one JSONB array per transcription)
-- to segments of typed arrays: one row per run of up to 512 consecutive words. Measured (see
-- benchmarks/bench_words.py): the arrays are written by binary COPY near the server's ingest
-- limit, take ~25 bytes a word with table, index and TOAST, and a time-window read fetches only
-- the segments that overlap the window. A row per word costs 85-150 bytes and a per-row
-- foreign-key check; one JSONB blob per transcription is slower to write and must be read
-- whole.
--
-- transcriptions.word_timestamps stays (the plan's column), as a marker only: NULL when the
-- transcription was created without word timestamps, '[]' when it was created with them.
-- The words themselves are in transcription_word_segments.
--
-- depends: 0001_initial_schema

CREATE TABLE transcription_word_segments (
    transcription_id uuid               NOT NULL
        REFERENCES transcriptions (id) ON DELETE CASCADE,
    -- Position of the segment in the transcript, from 0, in word order.
    seq              integer            NOT NULL,
    -- starts[1] and starts[word_count]: a window read selects segments on these without
    -- opening the arrays.
    first_start      double precision   NOT NULL,
    last_start       double precision   NOT NULL,
    word_count       integer            NOT NULL,
    words            text[]             NOT NULL,
    -- Seconds from the start of the media. double precision, not real: real keeps ~7 digits,
    -- i.e. only milliseconds after 3 hours, and would not give back the values written.
    starts           double precision[] NOT NULL,
    ends             double precision[] NOT NULL,
    -- Elements are NULL where a word has no confidence.
    confidences      double precision[] NOT NULL,
    -- NULL when no word of the segment has a speaker.
    speakers         text[],
    CONSTRAINT transcription_word_segments_pkey PRIMARY KEY (transcription_id, seq),
    CONSTRAINT transcription_word_segments_seq_check CHECK (seq >= 0),
    -- Parallel one-dimensional arrays of word_count elements each, indexed from 1. The checks
    -- of each word (finite, ordered, ranges, no NUL) run in the library, column-wise, before
    -- the COPY: a per-element check here would cost a scan of every array on every insert.
    CONSTRAINT transcription_word_segments_shape_check CHECK (
        word_count > 0
        AND array_ndims(words) = 1 AND array_lower(words, 1) = 1
        AND cardinality(words) = word_count
        AND cardinality(starts) = word_count
        AND cardinality(ends) = word_count
        AND cardinality(confidences) = word_count
        AND (speakers IS NULL OR cardinality(speakers) = word_count)
    ),
    CONSTRAINT transcription_word_segments_bounds_check CHECK (
        first_start >= 0
        AND first_start <= last_start
        AND first_start = starts[1]
        AND last_start = starts[word_count]
    )
);

-- lz4 compresses and decompresses several times faster than the default pglz, for a few
-- bytes more per word. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE transcription_word_segments
        ALTER COLUMN words SET COMPRESSION lz4,
        ALTER COLUMN starts SET COMPRESSION lz4,
        ALTER COLUMN ends SET COMPRESSION lz4,
        ALTER COLUMN confidences SET COMPRESSION lz4,
        ALTER COLUMN speakers SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; word segments use the default compression';
END;
$$;

COMMENT ON TABLE transcription_word_segments IS
    'Word timestamps of a transcription, up to 512 consecutive words a row, as parallel arrays';

-- Words already stored by the plan's design move to segments of 512 in their array order,
-- leaving the '[]' marker behind.
INSERT INTO transcription_word_segments
    (transcription_id, seq, first_start, last_start, word_count, words, starts, ends,
     confidences, speakers)
SELECT id, seq, starts[1], starts[cardinality(starts)], cardinality(words), words, starts, ends,
       confidences, CASE WHEN has_speaker THEN speakers END
FROM (
    SELECT t.id,
           ((w.n - 1) / 512)::integer AS seq,
           array_agg(w.word ->> 'word' ORDER BY w.n) AS words,
           array_agg((w.word ->> 'start')::double precision ORDER BY w.n) AS starts,
           array_agg((w.word ->> 'end')::double precision ORDER BY w.n) AS ends,
           array_agg((w.word ->> 'confidence')::double precision ORDER BY w.n) AS confidences,
           array_agg(w.word ->> 'speaker' ORDER BY w.n) AS speakers,
           bool_or(w.word ->> 'speaker' IS NOT NULL) AS has_speaker
    FROM transcriptions AS t
    CROSS JOIN LATERAL jsonb_array_elements(t.word_timestamps) WITH ORDINALITY AS w (word, n)
    WHERE jsonb_typeof(t.word_timestamps) = 'array'
    GROUP BY t.id, (w.n - 1) / 512
) AS moved;

UPDATE transcriptions SET word_timestamps = '[]'::jsonb
WHERE word_timestamps IS NOT NULL AND word_timestamps <> '[]'::jsonb;
