"""Operating the database: migrations (:mod:`.migrations`), the runtime role's grants
(:mod:`.grants`) and the check of every named query against a live schema
(:mod:`.schema_check`)."""
