-- Reverts 0018: the server's gin_pending_list_limit for the search documents' index.
ALTER INDEX transcription_word_search_document RESET (gin_pending_list_limit);
