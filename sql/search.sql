-- Search across transcriptions (migrations/0016), in the order of
-- media_store/repositories/search.py.

-- name: search_word_segments
-- The segments whose document matches the query terms ($1 kinds, $2 texts: see
-- media_store_search_query), best first: ts_rank, then (job_id, transcription_id, seq) to
-- break ties, after the keyset cursor ($7 rank, $8 job_id, $9 transcription_id, $10 seq;
-- NULL: from the start), at most $11, found by media_store_search_segments (migrations/0016:
-- the GIN index always, whatever the statistics say).
-- Filters: $3 job type, $4 job, $5 language (its code, or a code's family: 'en' also finds
-- 'en-US'), $6 a speaker among the segment's words. Each segment comes with its words (the
-- columns of list_word_segments but the confidences, which a hit does not show), its
-- configuration and the query made in it.
SELECT p.job_id, p.transcription_id, p.seq, p.rank, p.config::text AS config,
       p.query::text AS query,
       s.words, s.word_lengths, s.starts, s.ends, s.speakers
FROM media_store_search_segments($1::text[], $2::text[], $3::text, $4::uuid, $5::text,
                                 $6::text, $7::real, $8::uuid, $9::uuid, $10::int, $11::int)
         AS p,
     transcription_word_segments AS s
WHERE s.job_id = p.job_id AND s.transcription_id = p.transcription_id AND s.seq = p.seq
ORDER BY p.rank DESC, p.job_id, p.transcription_id, p.seq;

-- name: search_lexemes
-- The lexemes of each text $2[i] in the text search configuration $1[i] (a name), in input
-- order: how a search places its query's terms among the words of the segments it found
-- (each distinct word once a process: media_store.words.search.Lexicon).
SELECT x.i::int AS i, tsvector_to_array(to_tsvector(x.config::regconfig, x.text)) AS lexemes
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x (config, text, i)
ORDER BY x.i;

-- name: search_configs
-- The text search configuration of each language $1[i] (media_store_search_config), its name
-- qualified by its schema (whatever the search_path), in input order, and whether a writer
-- can make documents in it (media_store.words.documents: the configuration keeps the
-- sentinel '0' as it is).
SELECT x.i::int AS i,
       (SELECT format('%I.%I', n.nspname, t.cfgname)
        FROM pg_catalog.pg_ts_config AS t
        JOIN pg_catalog.pg_namespace AS n ON n.oid = t.cfgnamespace
        WHERE t.oid = c.config) AS config,
       to_tsvector(c.config, '0') = '0:1'::tsvector AS analysable
FROM unnest($1::text[]) WITH ORDINALITY AS x (language, i)
CROSS JOIN LATERAL (SELECT media_store_search_config(x.language) AS config) AS c
ORDER BY x.i;

-- name: search_word_positions
-- The lexemes, with their positions, of each text $2[i] in the configuration $1[i] (a name):
-- a chunk of distinct words between sentinels ('0 w1 0 w2 0'), which a writer makes its
-- segments' documents of (media_store.words.documents), each distinct word once a process.
SELECT x.i::int AS i, u.lexeme, u.positions::int[] AS positions
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x (config, text, i)
CROSS JOIN LATERAL unnest(to_tsvector(x.config::regconfig, x.text)) AS u;
