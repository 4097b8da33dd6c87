"""``make demo``: two workers share a handful of jobs; one job fails once and is retried."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from media_store.models import Job, JobType
from media_store.store import Store
from media_store.worker import JobResult, run_worker


async def demo_workers(store: Store) -> None:
    """Two workers drain five video jobs; the one named flaky fails on its first attempt."""
    print("\n== two workers, five jobs, one failing once and retried ==")
    names = ["intro", "flaky", "keynote", "panel", "outro"]
    jobs = [
        await store.jobs.create(
            {"job_type": JobType.VIDEO, "media_url": f"https://example.com/{name}.mp4"}
        )
        for name in names
    ]
    by_id = {job.id: name for job, name in zip(jobs, names, strict=True)}
    history: dict[uuid.UUID, list[str]] = defaultdict(list)

    def worker_handler(worker_id: str) -> Callable[[Job], Awaitable[JobResult]]:
        async def handle(job: Job) -> JobResult:
            history[job.id].append(f"attempt {job.attempts} by {worker_id}")
            await asyncio.sleep(0.05)  # the "work": lets the other worker claim meanwhile
            if by_id.get(job.id) == "flaky" and job.attempts == 1:
                history[job.id][-1] += ": failed (provider timed out), retried"
                raise TimeoutError("provider timed out")
            history[job.id][-1] += ": completed"
            return {"frames": 24 * job.attempts, "worker": worker_id}

        return handle

    # Only video jobs: other demo sections leave jobs of their own behind.
    stats = await asyncio.gather(
        *(
            run_worker(
                store,
                worker_handler(worker_id),
                worker_id=worker_id,
                job_types=[JobType.VIDEO],
                batch=2,
                lease=10,
                burst=True,
            )
            for worker_id in ("worker-a", "worker-b")
        )
    )
    for job in jobs:
        final = await store.jobs.get_by_id(job.id)
        assert final is not None
        print(
            f"  {by_id[job.id]:8} {final.status.value:9} attempts={final.attempts}"
            f" finished by {final.locked_by} in {final.processing_time_ms} ms,"
            f" error={final.error!r}, result={final.result}"
        )
        for event in history[job.id]:
            print(f"      {event}")
    for s in stats:
        print(
            f"  {s.worker_id}: claimed {s.claimed}, completed {s.completed},"
            f" retried {s.retried}, failed {s.failed}"
        )
