-- Word segments for diarized transcripts (a speaker on every word) and long recordings:
--
-- 1. The speakers of a segment move from a text[] (one element a word) to one bytea: the
--    segment's distinct speakers, then one code byte a word (media_store.segments
--    .pack_speakers). Measured (benchmarks/bench_words.py, diarized profile): the text[] cost
--    the driver and the server a step per element, about as much as the rest of the segment
--    together, and held ingest to ~0.6x the plain-COPY limit; a bytea is one copy, and the
--    codes of diarized speech compress to almost nothing on disk.
-- 2. Columns that compression slows down for little are stored uncompressed (below).
-- 3. The bounds check compares bytes instead of decoding doubles in a SQL function (below).
-- 4. An index on (transcription_id, last_start, seq) lets a time-window read find its first
--    and last segment directly instead of visiting every segment of the transcription.
--
-- Existing segments are converted in place (the table is rewritten under an exclusive lock).
--
-- depends: 0003_word_timestamps

-- Layout of speakers (NULL when no word of the segment has one): the number k of distinct
-- values (int2, big-endian), the k values in any order, each an int4 byte length (-1: no
-- speaker) and its UTF-8 bytes, then word_count bytes, the code of each word: the index (from
-- 0) of its value among the k. The speakers of a segment as a text[], one element a word:
CREATE FUNCTION media_store_unpack_speakers(speakers bytea) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH RECURSIVE entries (code, at, size) AS (
        -- value "code" begins at byte offset "at" (from 0) with its length, "size" bytes
        SELECT 0, 2, ('x' || encode(substr(speakers, 3, 4), 'hex'))::bit(32)::integer
        UNION ALL
        SELECT code + 1, next, ('x' || encode(substr(speakers, next + 1, 4), 'hex'))::bit(32)::integer
        FROM entries
        CROSS JOIN LATERAL (SELECT at + 4 + greatest(size, 0) AS next) AS following
        WHERE code + 1 < get_byte(speakers, 0) * 256 + get_byte(speakers, 1)
    ),
    names AS (
        SELECT code,
               CASE WHEN size >= 0 THEN convert_from(substr(speakers, at + 5, size), 'UTF8') END
                   AS name,
               at + 4 + greatest(size, 0) AS next
        FROM entries
    )
    SELECT coalesce(array_agg(names.name ORDER BY i), '{}'::text[])
    FROM (SELECT max(next) AS first FROM names) AS codes
    CROSS JOIN generate_series(codes.first, octet_length(speakers) - 1) AS i
    JOIN names ON names.code = get_byte(speakers, i)
$$;

-- The inverse, for the conversion only (a session's temporary function, dropped below).
CREATE FUNCTION pg_temp.media_store_pack_speakers(speakers text[]) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
    WITH words AS (
        SELECT speaker, n FROM unnest(speakers) WITH ORDINALITY AS w (speaker, n)
    ),
    names AS (
        SELECT speaker, (row_number() OVER (ORDER BY min(n)) - 1)::integer AS code
        FROM words
        GROUP BY speaker
    )
    SELECT CASE WHEN (SELECT count(speaker) FROM words) > 0 THEN
        int2send((SELECT count(*) FROM names)::smallint)
        || (SELECT string_agg(
                       CASE WHEN speaker IS NULL THEN int4send(-1)
                            ELSE int4send(octet_length(convert_to(speaker, 'UTF8')))
                                 || convert_to(speaker, 'UTF8')
                       END, ''::bytea ORDER BY code)
            FROM names)
        || (SELECT string_agg(set_byte('\x00'::bytea, 0, names.code), ''::bytea
                              ORDER BY words.n)
            FROM words
            JOIN names ON names.speaker IS NOT DISTINCT FROM words.speaker)
    END
$$;

ALTER TABLE transcription_word_segments
    DROP CONSTRAINT transcription_word_segments_shape_check;

-- A column of a new type starts with the default compression: lz4 as for the other columns,
-- set in the same statement so that the rewrite of the existing rows uses it already.
--
-- Compression, measured column by column (a COPY of 10,000 diarized words; bytes a word on
-- disk): lz4 costs the server ~0.3 ms in all and shrinks every column. pglz, on servers built
-- without lz4, costs ~2.9 ms, as much as the rest of the COPY: ~0.55 ms of it on confidences
-- for nothing (pglz gives up on four-digit probabilities), ~0.5 ms on words for 1.9 bytes a
-- word, ~0.4 ms on word lengths for 3.3. Without lz4 those two are stored uncompressed
-- (~29 bytes a word instead of ~24, the COPY ~1.5 ms faster). Confidences are stored
-- uncompressed on every server: lz4 saves less than a byte a word on them.
DO $$
BEGIN
    ALTER TABLE transcription_word_segments
        ALTER COLUMN speakers TYPE bytea USING pg_temp.media_store_pack_speakers(speakers),
        ALTER COLUMN speakers SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: words and word lengths are stored uncompressed';
    ALTER TABLE transcription_word_segments
        ALTER COLUMN speakers TYPE bytea USING pg_temp.media_store_pack_speakers(speakers),
        ALTER COLUMN words SET STORAGE EXTERNAL,
        ALTER COLUMN word_lengths SET STORAGE EXTERNAL;
END;
$$;

ALTER TABLE transcription_word_segments ALTER COLUMN confidences SET STORAGE EXTERNAL;

ALTER TABLE transcription_word_segments
    ADD CONSTRAINT transcription_word_segments_shape_check CHECK (
        word_count > 0
        AND octet_length(word_lengths) = 4 * word_count
        AND octet_length(starts) = 8 * word_count
        AND octet_length(ends) = 8 * word_count
        AND octet_length(confidences) = 8 * word_count
        -- the count, at least one value, and a code a word
        AND (speakers IS NULL OR octet_length(speakers) >= 6 + word_count)
    );

DROP FUNCTION pg_temp.media_store_pack_speakers(text[]);

-- A window read (list_word_segments_between) finds its first and last segment here: two
-- probes, where the primary key alone visits every segment of the transcription.
CREATE INDEX transcription_word_segments_time
    ON transcription_word_segments (transcription_id, last_start, seq);

-- The bounds check decoded the first and last packed start with media_store_float8_at, a SQL
-- function the planner cannot inline: two function calls a row, measured at a fifth of the
-- COPY's server time. The same rule compares the bytes float8send writes instead (built-in
-- functions, no decoding): the library packs first_start and last_start from the very values
-- it packs into starts.
ALTER TABLE transcription_word_segments
    DROP CONSTRAINT transcription_word_segments_bounds_check,
    ADD CONSTRAINT transcription_word_segments_bounds_check CHECK (
        first_start >= 0
        AND first_start <= last_start
        AND substr(starts, 1, 8) = float8send(first_start)
        AND substr(starts, 8 * word_count - 7, 8) = float8send(last_start)
    );
