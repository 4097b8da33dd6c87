-- Word timestamps move from transcriptions.word_timestamps (one JSONB array per transcription)
-- to segments of parallel columns: one row per run of up to 256 consecutive words. Measured
-- (see benchmarks/bench_words.py): segments are written by binary COPY near the server's
-- ingest limit, take ~25 bytes a word with table, index and TOAST, and a time-window read
-- fetches only the segments that overlap the window. A row per word costs 85-150 bytes and a
-- per-row foreign-key check; one JSONB blob per transcription is slower to write and must be
-- read whole.
--
-- transcriptions.word_timestamps stays (the plan's column), as a marker only: NULL when the
-- transcription was created without word timestamps, '[]' when it was created with them.
-- The words themselves are in transcription_word_segments.
--
-- depends: 0001_initial_schema

-- The seconds of a segment are packed: n IEEE-754 doubles, big-endian (float8send's format),
-- in one bytea. Binary COPY of a bytea is a memcpy, where a float8[] is encoded element by
-- element by the driver: measured, this halves the cost of writing a transcript. Decoded in
-- SQL by media_store_float8_at / media_store_unpack_float8 below, in Python by
-- media_store.words.unpack_floats.
CREATE FUNCTION media_store_float8_at(packed bytea, n integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN e = 2047 THEN CASE WHEN m = 0 THEN sign * 'Infinity'::float8 ELSE 'NaN'::float8 END
        WHEN e = 0 THEN sign * m::float8 * power(2::float8, -1074)
        ELSE sign * (1 + m::float8 / 4503599627370496) * power(2::float8, e - 1023)
    END
    FROM (
        SELECT CASE WHEN bits < 0 THEN -1::float8 ELSE 1::float8 END AS sign,
               ((bits >> 52) & 2047)::integer AS e,
               bits & 4503599627370495 AS m
        FROM (
            SELECT ('x' || encode(substr(packed, 8 * n - 7, 8), 'hex'))::bit(64)::bigint AS bits
        ) AS raw
    ) AS parts
$$;

-- Every double of a packed bytea as a float8[]; NaN (the "no confidence" mark) becomes NULL.
CREATE FUNCTION media_store_unpack_float8(packed bytea) RETURNS double precision[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(
        array_agg(nullif(media_store_float8_at(packed, i), 'NaN'::float8) ORDER BY i),
        '{}'::float8[]
    )
    FROM generate_series(1, octet_length(packed) / 8) AS i
$$;

-- The words of a segment as a text[]: each is substr(words, offset, length).
CREATE FUNCTION media_store_unpack_words(words text, word_lengths bytea) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(substr(words, first, length) ORDER BY i), '{}'::text[])
    FROM (
        SELECT i, length, (sum(length) OVER (ORDER BY i) - length + 1)::integer AS first
        FROM (
            SELECT i,
                   ('x' || encode(substr(word_lengths, 4 * i - 3, 4), 'hex'))::bit(32)::integer
                       AS length
            FROM generate_series(1, octet_length(word_lengths) / 4) AS i
        ) AS lengths
    ) AS offsets
$$;

CREATE TABLE transcription_word_segments (
    transcription_id uuid               NOT NULL
        REFERENCES transcriptions (id) ON DELETE CASCADE,
    -- Position of the segment in the transcript, from 0, in word order.
    seq              integer            NOT NULL,
    -- The first and last start of the segment: a window read selects segments on these
    -- without opening the arrays.
    first_start      double precision   NOT NULL,
    last_start       double precision   NOT NULL,
    word_count       integer            NOT NULL,
    -- The words of the segment, concatenated, and the length of each in characters (n
    -- big-endian int4s): one text and one bytea, where a text[] costs the driver an encoding
    -- step per element (measured: the COPY of a transcript is 2.5x faster). Decoded in SQL
    -- by media_store_unpack_words below, in Python by media_store.words.split_words.
    words            text               NOT NULL,
    word_lengths     bytea              NOT NULL,
    -- Seconds from the start of the media, packed (see above). Doubles, not reals: a real
    -- keeps ~7 digits, i.e. only milliseconds after 3 hours, and would not give back the
    -- values written.
    starts           bytea              NOT NULL,
    ends             bytea              NOT NULL,
    -- Packed likewise; NaN where a word has no confidence.
    confidences      bytea              NOT NULL,
    -- NULL when no word of the segment has a speaker.
    speakers         text[],
    CONSTRAINT transcription_word_segments_pkey PRIMARY KEY (transcription_id, seq),
    CONSTRAINT transcription_word_segments_seq_check CHECK (seq >= 0),
    -- Parallel columns of word_count elements each. The checks of each word (finite, ordered,
    -- ranges, no NUL) run in the library, column-wise, before the COPY: a per-element check
    -- here would cost a scan of every array on every insert.
    CONSTRAINT transcription_word_segments_shape_check CHECK (
        word_count > 0
        AND octet_length(word_lengths) = 4 * word_count
        AND octet_length(starts) = 8 * word_count
        AND octet_length(ends) = 8 * word_count
        AND octet_length(confidences) = 8 * word_count
        AND (speakers IS NULL OR cardinality(speakers) = word_count)
    ),
    CONSTRAINT transcription_word_segments_bounds_check CHECK (
        first_start >= 0
        AND first_start <= last_start
        AND first_start = media_store_float8_at(starts, 1)
        AND last_start = media_store_float8_at(starts, word_count)
    )
);

-- lz4 compresses and decompresses several times faster than the default pglz, for a few
-- bytes more per word. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE transcription_word_segments
        ALTER COLUMN words SET COMPRESSION lz4,
        ALTER COLUMN word_lengths SET COMPRESSION lz4,
        ALTER COLUMN starts SET COMPRESSION lz4,
        ALTER COLUMN ends SET COMPRESSION lz4,
        ALTER COLUMN confidences SET COMPRESSION lz4,
        ALTER COLUMN speakers SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; word segments use the default compression';
END;
$$;

COMMENT ON TABLE transcription_word_segments IS
    'Word timestamps of a transcription, up to 256 consecutive words a row, as parallel columns';

-- Words already stored by the plan's design move to segments of 256 in their array order,
-- leaving the '[]' marker behind.
INSERT INTO transcription_word_segments
    (transcription_id, seq, first_start, last_start, word_count, words, word_lengths, starts,
     ends, confidences, speakers)
SELECT id, seq, first_start, last_start, word_count, words, word_lengths, starts, ends,
       confidences, CASE WHEN has_speaker THEN speakers END
FROM (
    SELECT t.id,
           ((w.n - 1) / 256)::integer AS seq,
           (array_agg((w.word ->> 'start')::double precision ORDER BY w.n))[1] AS first_start,
           (array_agg((w.word ->> 'start')::double precision ORDER BY w.n DESC))[1]
               AS last_start,
           count(*)::integer AS word_count,
           string_agg(w.word ->> 'word', '' ORDER BY w.n) AS words,
           string_agg(int4send(char_length(w.word ->> 'word')), ''::bytea ORDER BY w.n)
               AS word_lengths,
           string_agg(float8send((w.word ->> 'start')::double precision), ''::bytea
                      ORDER BY w.n) AS starts,
           string_agg(float8send((w.word ->> 'end')::double precision), ''::bytea
                      ORDER BY w.n) AS ends,
           string_agg(float8send(coalesce((w.word ->> 'confidence')::double precision,
                                          'NaN'::float8)), ''::bytea ORDER BY w.n)
               AS confidences,
           array_agg(w.word ->> 'speaker' ORDER BY w.n) AS speakers,
           bool_or(w.word ->> 'speaker' IS NOT NULL) AS has_speaker
    FROM transcriptions AS t
    CROSS JOIN LATERAL jsonb_array_elements(t.word_timestamps) WITH ORDINALITY AS w (word, n)
    WHERE jsonb_typeof(t.word_timestamps) = 'array'
    GROUP BY t.id, (w.n - 1) / 256
) AS moved;

UPDATE transcriptions SET word_timestamps = '[]'::jsonb
WHERE word_timestamps IS NOT NULL AND word_timestamps <> '[]'::jsonb;
