-- Search: a smaller GIN pending list for the search documents (issue 23).
--
-- The documents' GIN index takes new entries into its pending list (fastupdate, on by
-- default), an unsorted list merged into the index when it passes gin_pending_list_limit
-- (4 MB by default) or when vacuum comes. Every search reads the whole list, whatever it looks
-- for: a rare word found in 20 segments of 10 million words took 4.3-4.7 ms (p50) while
-- transcripts were being written, 3.3-3.9 ms with a 1 MB list, and 2 ms more right after a
-- backfill had filled the list (benchmarks/bench_search.py, embedded server). Measured beside
-- it, the writes (store.transcriptions.create of 10,000-word transcripts, 500,000 words a
-- setting): 1 MB cost 4% of their speed (within the run-to-run spread), 256 kB 18%, no
-- pending list at all (fastupdate off: each document's entries into the index at once) 43%.
-- So 1 MB: the list is merged four times as often, in smaller batches.
--
-- depends: 0017_search_plan

ALTER INDEX transcription_word_search_document SET (gin_pending_list_limit = 1024);
