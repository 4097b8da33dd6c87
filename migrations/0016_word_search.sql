-- Search across transcriptions (issue 23): a full-text document per word segment.
--
-- Each segment of transcription_word_segments (up to 256 consecutive words) gets one row here:
-- its words, joined with spaces, as a tsvector of the transcription's text search
-- configuration (the language's stemming where PostgreSQL has one, 'simple' otherwise), under
-- a GIN index. A query finds its segments through the index; the exact words of a hit, and so
-- their times, are found in those segments only (ts_headline marks the matched words: see
-- media_store.repositories.search). Written by the library in the transaction that writes the
-- words, right after their COPY (sql/search.sql, index_word_segments): every write path of the
-- library (create, create_many, streamed inserts, append_words) is covered, a reader never sees
-- words it cannot find, and a standby gets the rows with the words. The library sends each
-- segment's words joined by spaces: a trigger would have to cut the packed words apart again in
-- SQL (media_store_unpack_words: ~13 us a word with multibyte text, against ~1 us for
-- to_tsvector itself). A writer that COPYs segments by itself indexes them the same way.
--
-- Why a document per segment and not one row per word (the other layout a user would write):
-- a segment's row carries ~256 words' lexemes under one heap tuple and one set of GIN entries
-- per distinct lexeme, and the segment is where the words' times are read from anyway. The
-- cost: a phrase that spans two segments is not found (documented), and a hit's words are
-- located by re-reading its segment. benchmarks/bench_search.py measures both layouts and the
-- ILIKE scan side by side.
--
-- depends: 0015_jobs_storage

-- The text search configuration for a transcription's language (an ISO 639-1 code such as
-- 'en' or 'pt-BR', or a configuration's name such as 'english'): the language's own where the
-- server has it, 'simple' (lower-casing, no stemming, no stop words) otherwise.
CREATE FUNCTION media_store_search_config(language text) RETURNS regconfig
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT c.oid::regconfig
         FROM pg_catalog.pg_ts_config AS c
         JOIN pg_catalog.pg_namespace AS n ON n.oid = c.cfgnamespace AND n.nspname = 'pg_catalog'
         WHERE c.cfgname = coalesce(
             CASE lower(split_part(replace(language, '_', '-'), '-', 1))
                 WHEN 'ar' THEN 'arabic' WHEN 'hy' THEN 'armenian' WHEN 'eu' THEN 'basque'
                 WHEN 'ca' THEN 'catalan' WHEN 'da' THEN 'danish' WHEN 'nl' THEN 'dutch'
                 WHEN 'en' THEN 'english' WHEN 'fi' THEN 'finnish' WHEN 'fr' THEN 'french'
                 WHEN 'de' THEN 'german' WHEN 'el' THEN 'greek' WHEN 'hi' THEN 'hindi'
                 WHEN 'hu' THEN 'hungarian' WHEN 'id' THEN 'indonesian' WHEN 'ga' THEN 'irish'
                 WHEN 'it' THEN 'italian' WHEN 'lt' THEN 'lithuanian' WHEN 'ne' THEN 'nepali'
                 WHEN 'no' THEN 'norwegian' WHEN 'nb' THEN 'norwegian'
                 WHEN 'nn' THEN 'norwegian' WHEN 'pt' THEN 'portuguese'
                 WHEN 'ro' THEN 'romanian' WHEN 'ru' THEN 'russian' WHEN 'sr' THEN 'serbian'
                 WHEN 'es' THEN 'spanish' WHEN 'sv' THEN 'swedish' WHEN 'ta' THEN 'tamil'
                 WHEN 'tr' THEN 'turkish' WHEN 'yi' THEN 'yiddish'
             END,
             lower(language)
         )),
        'pg_catalog.simple'::regconfig
    )
$$;

CREATE TABLE transcription_word_search (
    job_id           uuid      NOT NULL,
    transcription_id uuid      NOT NULL,
    seq              integer   NOT NULL,
    config           regconfig NOT NULL,
    document         tsvector  NOT NULL,
    CONSTRAINT transcription_word_search_pkey PRIMARY KEY (job_id, transcription_id, seq),
    CONSTRAINT transcription_word_search_segment_fkey FOREIGN KEY (job_id, transcription_id, seq)
        REFERENCES transcription_word_segments (job_id, transcription_id, seq) ON DELETE CASCADE
);

CREATE INDEX transcription_word_search_document ON transcription_word_search
    USING gin (document);

-- A document is a few kB (every lexeme of 256 words with its positions): compressed and kept
-- in the row (STORAGE MAIN) rather than out of line, so that the recheck and the ranking of
-- the segments a query finds read them from the table's pages without a TOAST lookup each;
-- lz4 where the server has it (decompressed several times faster than pglz).
ALTER TABLE transcription_word_search ALTER COLUMN document SET STORAGE MAIN;
DO $$
BEGIN
    ALTER TABLE transcription_word_search ALTER COLUMN document SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; search documents use the default compression';
END;
$$;

COMMENT ON TABLE transcription_word_search IS
    'A full-text document per word segment, for search across transcriptions (0016)';

-- The configurations documents were made with: a search builds its query once for each
-- (a stemmed query matches only documents of its own configuration).
CREATE TABLE transcription_search_configs (
    config regconfig PRIMARY KEY
);

-- The words stored before this migration (cut apart in SQL: slow, but once).
INSERT INTO transcription_word_search (job_id, transcription_id, seq, config, document)
SELECT s.job_id, s.transcription_id, s.seq, media_store_search_config(t.language),
       to_tsvector(media_store_search_config(t.language),
                   array_to_string(media_store_unpack_words(s.words, s.word_lengths), ' '))
FROM transcription_word_segments AS s
JOIN transcriptions AS t ON t.job_id = s.job_id AND t.id = s.transcription_id;

INSERT INTO transcription_search_configs (config)
SELECT DISTINCT config FROM transcription_word_search;

-- A search builds its query with this: the terms ($2 kinds, $3 texts) of a query, each a
-- 'word' (plainto_tsquery), a 'phrase' (phraseto_tsquery: its words in order, stop words
-- counted as gaps) or a 'prefix' (lexemes beginning with the word as typed, lower-cased, or
-- with its stem), all required (AND). A term with no lexeme in the configuration (a stop
-- word, punctuation) drops out; a query left with none is NULL, and matches nothing.
CREATE FUNCTION media_store_search_query(config regconfig, kinds text[], texts text[])
RETURNS tsquery
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET client_min_messages = warning  -- not the notice of a stop word's empty query
AS $$
DECLARE
    result tsquery;
    part tsquery;
    typed text;
    stem text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(kinds), 0) LOOP
        IF kinds[i] = 'phrase' THEN
            part := phraseto_tsquery(config, texts[i]);
        ELSIF kinds[i] = 'prefix' THEN
            typed := lower(texts[i]);
            SELECT l INTO stem
            FROM unnest(tsvector_to_array(to_tsvector(config, texts[i]))) AS l
            LIMIT 1;
            -- Quoted by hand: quote_literal writes E'...' around a backslash, which
            -- to_tsquery would read as one more term.
            part := to_tsquery('simple', '''' || replace(replace(typed, '\', '\\'), '''', '''''')
                                         || ''':*');
            IF stem IS NOT NULL AND stem <> typed THEN
                part := part || to_tsquery('simple', '''' || replace(replace(stem, '\', '\\'),
                                                                       '''', '''''')
                                                   || ''':*');
            END IF;
        ELSE
            part := plainto_tsquery(config, texts[i]);
        END IF;
        IF numnode(part) > 0 THEN
            result := CASE WHEN result IS NULL THEN part ELSE result && part END;
        END IF;
    END LOOP;
    RETURN result;
END;
$$;

-- The segments a search finds (sql/search.sql, search_word_segments, says what the arguments
-- are), best first, a page of them. The query is made once per configuration documents use
-- ($5 language: only that language's); the GIN index is searched with them all OR'ed (an
-- InitPlan's value, so an index condition), each document then matched with its own. Index
-- paths only (enable_seqscan off): a document is a few kB, compressed, so the planner takes a
-- sequential scan for cheap while it decompresses and matches every document; and the table
-- may never have been analyzed. PL/pgSQL, whose plans
-- a session keeps (a SQL function's body is planned again at every call: ~2.5 ms).
CREATE FUNCTION media_store_search_segments(
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
