"""``media-store demo`` (:mod:`.run`, with its queue and words sections) and the embedded
development PostgreSQL it starts when ``DATABASE_URL`` is unset (:mod:`.embedded`)."""
