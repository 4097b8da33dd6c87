-- Reverts 0005: the lease expiry index and the unconditional updated_at trigger come back, the
-- claim function goes. No row changes.
CREATE INDEX IF NOT EXISTS jobs_lease_expiry_idx ON jobs (locked_until)
    WHERE status = 'processing';

DROP TRIGGER IF EXISTS jobs_touch_updated_at ON jobs;
CREATE TRIGGER jobs_touch_updated_at
    BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION media_store_touch_updated_at();

DROP FUNCTION IF EXISTS media_store_claim_jobs(text, integer, double precision, text[]);
