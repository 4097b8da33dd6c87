-- Reverts 0010: the listing by key goes back to having no index of its own.
DROP INDEX IF EXISTS jobs_key_created_at_idx;
