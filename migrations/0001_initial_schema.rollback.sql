-- Reverts 0001: drops the four tables and their functions. Run only by `make rollback`.
DROP TABLE IF EXISTS analysis_results;
DROP TABLE IF EXISTS transcriptions;
DROP TABLE IF EXISTS media_assets;
DROP TABLE IF EXISTS jobs;
DROP FUNCTION IF EXISTS media_store_check_job_transition();
DROP FUNCTION IF EXISTS media_store_touch_updated_at();
DROP FUNCTION IF EXISTS media_store_job_transition_allowed(text, text);
