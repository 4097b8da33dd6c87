-- Reverts 0016: no search documents.
DROP FUNCTION IF EXISTS media_store_search_segments(text[], text[], text, uuid, text, text, real, uuid, uuid, integer, integer);
DROP FUNCTION IF EXISTS media_store_search_query(regconfig, text[], text[]);
DROP TABLE IF EXISTS transcription_search_configs;
DROP TABLE IF EXISTS transcription_word_search;
DROP FUNCTION IF EXISTS media_store_search_config(text);
