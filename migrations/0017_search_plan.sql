-- Search: documents not copied, filters checked only when given (issue 23).
--
-- 0016's function kept the documents its index scan found in a materialized CTE (copied: a
-- few kB each, written to a temporary file past work_mem when a common word finds thousands),
-- matched each again with its configuration's query, and joined every match to transcriptions
-- and jobs for filters that were mostly not given. Measured at 4M words, a two-word phrase
-- (812 segments found): 8.3 ms, of it 3.4 ms the CTE and 1.6 ms the joins. Here the documents
-- are matched and ranked where the scan reads them, and the job type, language and speaker
-- filters are EXISTS checks evaluated only when given. Where one configuration has a query
-- (one language in use, or the language filter given), the scan's match is the exact one and
-- is not made again: measured at 10M words, English only, 20-30% less for a common word
-- (61 -> 45 ms) and a phrase. Still one index scan with every
-- configuration's query OR'ed: a scan a configuration (tried) reads the GIN pending list once
-- each, ~0.5 ms apiece at 4 MB (gin_pending_list_limit's default), before vacuum flushes it.
-- And no JIT: the scan's row estimate crosses jit_above_cost, ~4 ms of compiling a call.
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
SET jit = off  -- the scan's row estimate crosses jit_above_cost: ~4 ms of compiling a call
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
-- One scan of the GIN index, with every configuration's query OR'ed (a value known before
-- the scan, so an index condition): the index's pending list, which grows until vacuum or a
-- cleanup flushes it, is read once, not once a configuration. Each document found is then
-- matched with its own configuration's query and ranked where it is read (not copied).
found AS (
    SELECT d.job_id, d.transcription_id, d.seq, d.config, d.document,
           (SELECT q.query FROM q WHERE q.config = d.config) AS query
    FROM transcription_word_search AS d
    WHERE d.document @@ (SELECT string_agg('(' || q.query::text || ')', ' | ')::tsquery
                         FROM q WHERE q.query IS NOT NULL)
),
hits AS (
    SELECT f.job_id, f.transcription_id, f.seq, f.config, f.query,
           ts_rank(f.document, f.query) AS rank
    FROM found AS f
    -- The exact match, in the document's own configuration; already made by the scan when
    -- one configuration has a query (one language, or the language filter given).
    WHERE f.query IS NOT NULL
      AND ((SELECT count(*) FROM q WHERE q.query IS NOT NULL) = 1 OR f.document @@ f.query)
      AND ($4::uuid IS NULL OR f.job_id = $4::uuid)
      AND ($3::text IS NULL
           OR EXISTS (SELECT FROM jobs AS j WHERE j.id = f.job_id AND j.job_type = $3::text))
      -- the language as given ('_' read as '-'), or, given a bare code, its family
      AND ($5::text IS NULL
           OR EXISTS (
               SELECT FROM transcriptions AS t
               WHERE t.job_id = f.job_id AND t.id = f.transcription_id
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
