from media_store import JobStatus, Store


async def test_create_and_get_job(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
    assert job.status is JobStatus.PENDING
    fetched = await store.jobs.get_by_id(job.id)
    assert fetched == job
    assert job.created_at.tzinfo is not None
