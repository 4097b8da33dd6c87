-- Search across transcriptions (migrations/0016), in the order of
-- media_store/repositories/search.py.

-- name: search_word_segments
-- The segments whose document matches the query terms ($1 kinds, $2 texts: see
-- media_store_search_query), best first: ts_rank, then (job_id, transcription_id, seq) to
-- break ties, after the keyset cursor ($7 rank, $8 job_id, $9 transcription_id, $10 seq;
-- NULL: from the start), at most $11. The query is made once per configuration documents
-- use ($5 language: only that language's); the GIN index is searched with them all OR'ed
-- (an InitPlan's value, so an index condition), each document then matched with its own.
-- Filters: $3 job type, $4 job, $5 language (its code, or a code's family: 'en' also finds
-- 'en-US'), $6 a speaker among the segment's words. Each segment comes with its words (the
-- columns of list_word_segments), its configuration and the query made in it.
WITH q AS MATERIALIZED (
    SELECT c.config, media_store_search_query(c.config, $1::text[], $2::text[]) AS query
    FROM transcription_search_configs AS c
    WHERE $5::text IS NULL OR c.config = media_store_search_config($5::text)
),
hits AS (
    SELECT d.job_id, d.transcription_id, d.seq, d.config, q.query,
           ts_rank(d.document, q.query) AS rank
    FROM transcription_word_search AS d
    JOIN q ON q.config = d.config AND d.document @@ q.query
    JOIN transcriptions AS t ON t.job_id = d.job_id AND t.id = d.transcription_id
    JOIN jobs AS j ON j.id = t.job_id
    -- Every configuration's query OR'ed into one, a value known before the scan: what the
    -- GIN index is searched with (the exact match, per configuration, is the join above).
    WHERE d.document @@ (SELECT string_agg('(' || query::text || ')', ' | ')::tsquery
                         FROM q WHERE query IS NOT NULL)
      AND ($3::text IS NULL OR j.job_type = $3::text)
      AND ($4::uuid IS NULL OR d.job_id = $4::uuid)
      AND ($5::text IS NULL OR lower(t.language) = lower($5::text)
           OR lower(t.language) LIKE lower($5::text) || '-%')
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
SELECT p.job_id, p.transcription_id, p.seq, p.rank, p.config::text AS config,
       p.query::text AS query,
       s.words, s.word_lengths, s.starts, s.ends, s.confidences, s.speakers
FROM page AS p
JOIN transcription_word_segments AS s
  ON s.job_id = p.job_id AND s.transcription_id = p.transcription_id AND s.seq = p.seq
ORDER BY p.rank DESC, p.job_id, p.transcription_id, p.seq;

-- name: mark_search_hits
-- Each hit's words joined by spaces ($3[i], from the library), with every word that holds a
-- lexeme of its query ($2[i], a tsquery as text) wrapped in U+E000 .. U+E001 by ts_headline in
-- the configuration $1[i]: where in the segment the query matched.
SELECT x.i::int AS i,
       ts_headline(x.config::regconfig, x.text, x.query::tsquery,
                   'HighlightAll=true, StartSel=' || chr(57344) || ', StopSel=' || chr(57345))
           AS marked
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x (config, query, text, i)
ORDER BY x.i;

-- name: search_lexemes
-- The lexemes of each text $2[i] in the text search configuration $1[i] (a name), in input
-- order: how a search checks the words it marked against each term of its query.
SELECT x.i::int AS i, tsvector_to_array(to_tsvector(x.config::regconfig, x.text)) AS lexemes
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x (config, text, i)
ORDER BY x.i;

-- name: index_word_segments
-- The search documents of segments just written ($1 job ids, $2 transcription ids, $3 seqs,
-- $4 each segment's words joined by spaces), in the configuration of each transcription's
-- language, and the configurations seen kept in transcription_search_configs.
WITH added AS (
    INSERT INTO transcription_word_search (job_id, transcription_id, seq, config, document)
    SELECT x.job_id, x.transcription_id, x.seq, c.config, to_tsvector(c.config, x.text)
    FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[])
         AS x (job_id, transcription_id, seq, text)
    JOIN transcriptions AS t ON t.job_id = x.job_id AND t.id = x.transcription_id
    CROSS JOIN LATERAL (SELECT media_store_search_config(t.language) AS config) AS c
    RETURNING config
)
INSERT INTO transcription_search_configs (config)
SELECT DISTINCT config FROM added
ON CONFLICT DO NOTHING;
