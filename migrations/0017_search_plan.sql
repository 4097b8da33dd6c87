-- Search: each configuration's documents found by their own query, filters checked only when
-- given, no documents copied (issue 23).
--
-- 0016's function searched the GIN index once with every configuration's query OR'ed, kept
-- the documents found in a materialized CTE (copied: a few kB each, written to a temporary file
-- past work_mem when a common word finds thousands), matched each again with its own query,
-- and joined every match to transcriptions and jobs for filters that were mostly not given.
-- Measured at 4M words, a two-word phrase (812 segments found): 8.3 ms, of it 3.4 ms the
-- found CTE and 1.6 ms the joins. Here each configuration's query scans the index for its own
-- documents (a bitmap scan a configuration: ~5; the index holds no configuration, so a
-- document of another whose lexemes match is dropped by the recheck), ranked where it is
-- read; the job type and language filters are EXISTS checks evaluated only when given.
--
-- depends: 0016_word_search

CREATE OR REPLACE FUNCTION media_store_search_segments(
    kinds text[], texts text[], of_job_type text, of_job_id uuid, of_language text,
    of_speaker text,
    after_rank real, after_job_id uuid, after_transcription_id uuid, after_seq integer,
    page_size integer
)
RETURNS TABLE (job_id uuid, transcription_id uuid, seq integer, rank real, config regconfig,
               query tsquery)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET jit = off  -- the estimate of the lateral scans' rows crosses jit_above_cost: ~4 ms spent compiling
ROWS 20
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
WITH q AS MATERIALIZED (
    SELECT c.config, media_store_search_query(c.config, $1::text[], $2::text[]) AS query
    FROM transcription_search_configs AS c
    WHERE $5::text IS NULL OR c.config = media_store_search_config($5::text)
),
hits AS (
    SELECT d.job_id, d.transcription_id, d.seq, q.config, q.query,
           ts_rank(d.document, q.query) AS rank
    FROM q
    CROSS JOIN LATERAL (
        SELECT d.job_id, d.transcription_id, d.seq, d.document
        FROM transcription_word_search AS d
        WHERE d.document @@ q.query AND d.config = q.config
    ) AS d
    WHERE q.query IS NOT NULL
      AND ($4::uuid IS NULL OR d.job_id = $4::uuid)
      AND ($3::text IS NULL
           OR EXISTS (SELECT FROM jobs AS j WHERE j.id = d.job_id AND j.job_type = $3::text))
      -- the language as given ('_' read as '-'), or, given a bare code, its family
      AND ($5::text IS NULL
           OR EXISTS (
               SELECT FROM transcriptions AS t
               WHERE t.job_id = d.job_id AND t.id = d.transcription_id
                 AND (lower(replace(t.language, '_', '-')) = lower(replace($5::text, '_', '-'))
                      OR lower(split_part(replace(t.language, '_', '-'), '-', 1))
                         = lower(replace($5::text, '_', '-')))))
),
page AS (
    SELECT h.*
    FROM hits AS h
    WHERE ($7::real IS NULL
           OR h.rank < $7::real
           OR (h.rank = $7::real
               AND (h.job_id, h.transcription_id, h.seq) > ($8::uuid, $9::uuid, $10::int)))
      AND ($6::text IS NULL
           OR EXISTS (
               SELECT FROM transcription_word_segments AS s
               WHERE s.job_id = h.job_id AND s.transcription_id = h.transcription_id
                 AND s.seq = h.seq
                 AND $6::text = ANY (media_store_unpack_speakers(s.speakers))))
    ORDER BY h.rank DESC, h.job_id, h.transcription_id, h.seq
    LIMIT $11::int
)
SELECT p.job_id, p.transcription_id, p.seq, p.rank, p.config, p.query FROM page AS p;
END;
$$;
