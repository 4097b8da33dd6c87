-- Analysis results. Columns in the order of media_store.models.AnalysisResult.

-- name: create_analysis_result
-- Insert one result; a job_id with no job fails on analysis_results_job_id_fkey.
INSERT INTO analysis_results
    (job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
     prompt_used, input_tokens, output_tokens)
VALUES ($1::uuid, $2::text, $3::text, $4::jsonb, $5::float8, $6::text, $7::text, $8::int,
        $9::int)
RETURNING id, job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
          prompt_used, input_tokens, output_tokens, created_at;

-- name: create_analysis_results
-- Insert many results in one statement from parallel arrays, in array order.
INSERT INTO analysis_results
    (job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
     prompt_used, input_tokens, output_tokens)
SELECT job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
       prompt_used, input_tokens, output_tokens
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::float8[], $6::text[],
            $7::text[], $8::int[], $9::int[])
     WITH ORDINALITY AS r (job_id, analysis_type, summary, detailed_analysis, confidence_score,
                           model_used, prompt_used, input_tokens, output_tokens, n)
ORDER BY n
RETURNING id, job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
          prompt_used, input_tokens, output_tokens, created_at;

-- name: get_analysis_result
-- One result by id.
SELECT id, job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
       prompt_used, input_tokens, output_tokens, created_at
FROM analysis_results
WHERE id = $1::uuid;

-- name: list_analysis_results_for_job
-- A job's results in creation order (analysis_results_job_id_idx).
SELECT id, job_id, analysis_type, summary, detailed_analysis, confidence_score, model_used,
       prompt_used, input_tokens, output_tokens, created_at
FROM analysis_results
WHERE job_id = $1::uuid
ORDER BY created_at, id;

-- name: delete_analysis_result
-- Delete one result.
DELETE FROM analysis_results WHERE id = $1::uuid RETURNING id;
