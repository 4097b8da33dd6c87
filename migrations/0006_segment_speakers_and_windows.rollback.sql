-- Reverts 0006: the speakers of each segment become a text[] again (one element a word); the
-- shape and bounds checks and the storage of the columns are as 0003 made them; the time index
-- and the function go.
DROP INDEX IF EXISTS transcription_word_segments_time;

ALTER TABLE transcription_word_segments
    DROP CONSTRAINT transcription_word_segments_bounds_check,
    ADD CONSTRAINT transcription_word_segments_bounds_check CHECK (
        first_start >= 0
        AND first_start <= last_start
        AND first_start = media_store_float8_at(starts, 1)
        AND last_start = media_store_float8_at(starts, word_count)
    );

ALTER TABLE transcription_word_segments
    DROP CONSTRAINT transcription_word_segments_shape_check;

DO $$
BEGIN
    ALTER TABLE transcription_word_segments
        ALTER COLUMN speakers TYPE text[] USING media_store_unpack_speakers(speakers),
        ALTER COLUMN speakers SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; speakers use the default compression';
    ALTER TABLE transcription_word_segments
        ALTER COLUMN speakers TYPE text[] USING media_store_unpack_speakers(speakers);
END;
$$;

ALTER TABLE transcription_word_segments
    ADD CONSTRAINT transcription_word_segments_shape_check CHECK (
        word_count > 0
        AND octet_length(word_lengths) = 4 * word_count
        AND octet_length(starts) = 8 * word_count
        AND octet_length(ends) = 8 * word_count
        AND octet_length(confidences) = 8 * word_count
        AND (speakers IS NULL OR cardinality(speakers) = word_count)
    );

ALTER TABLE transcription_word_segments
    ALTER COLUMN words SET STORAGE EXTENDED,
    ALTER COLUMN word_lengths SET STORAGE EXTENDED,
    ALTER COLUMN confidences SET STORAGE EXTENDED;

DROP FUNCTION IF EXISTS media_store_unpack_speakers(bytea);
