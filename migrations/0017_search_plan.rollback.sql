-- Reverts 0017: 0016's search function.
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
-- Every configuration's query OR'ed into one, a value known before the scan: what the GIN
-- index is searched with; a CTE of its own, so that nothing else can drive the plan.
found AS MATERIALIZED (
    SELECT d.job_id, d.transcription_id, d.seq, d.config, d.document
    FROM transcription_word_search AS d
    WHERE d.document @@ (SELECT string_agg('(' || query::text || ')', ' | ')::tsquery
                         FROM q WHERE query IS NOT NULL)
),
hits AS (
    SELECT d.job_id, d.transcription_id, d.seq, d.config, q.query,
           ts_rank(d.document, q.query) AS rank
    FROM found AS d
    JOIN q ON q.config = d.config AND d.document @@ q.query  -- the exact match
    JOIN transcriptions AS t ON t.job_id = d.job_id AND t.id = d.transcription_id
    JOIN jobs AS j ON j.id = t.job_id
    WHERE ($3::text IS NULL OR j.job_type = $3::text)
      AND ($4::uuid IS NULL OR d.job_id = $4::uuid)
      -- the language as given ('_' read as '-'), or, given a bare code, its family
      AND ($5::text IS NULL
           OR lower(replace(t.language, '_', '-')) = lower(replace($5::text, '_', '-'))
           OR lower(split_part(replace(t.language, '_', '-'), '-', 1))
              = lower(replace($5::text, '_', '-')))
    ORDER BY rank DESC, d.job_id, d.transcription_id, d.seq
),
page AS (
    SELECT h.*
    FROM hits AS h
    JOIN transcription_word_segments AS s
      ON s.job_id = h.job_id AND s.transcription_id = h.transcription_id AND s.seq = h.seq
    WHERE ($6::text IS NULL OR $6::text = ANY (media_store_unpack_speakers(s.speakers)))
      AND ($7::real IS NULL
           OR h.rank < $7::real
           OR (h.rank = $7::real
               AND (h.job_id, h.transcription_id, h.seq) > ($8::uuid, $9::uuid, $10::int)))
    ORDER BY h.rank DESC, h.job_id, h.transcription_id, h.seq
    LIMIT $11::int
)
SELECT p.job_id, p.transcription_id, p.seq, p.rank, p.config, p.query FROM page AS p;
END;
$$;
