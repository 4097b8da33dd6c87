"""A worker process for the queue tests: ``python -m tests.support.queue_worker_proc MODE DSN ...``.

drain DSN NAME COROUTINES BATCH
    Opens one Store per coroutine, prints ``ready``, waits for a line on stdin, then runs
    ``run_worker`` (burst) in every coroutine. The handler records each run in
    ``queue_audit`` (job id, worker id) before the job is completed with ``{"worker": id}``.
    Prints the workers' stats as one JSON line and exits.

hang DSN WORKER_ID COUNT LEASE_SECONDS
    Claims COUNT jobs as WORKER_ID, prints their ids as one JSON line, then sleeps until it is
    killed: a worker that crashed while holding jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from media_store import Dsn, Job, Settings, Store
from media_store.worker.runner import JobResult, run_worker


async def drain(dsn: str, name: str, coroutines: int, batch: int) -> None:
    settings = Settings(dsn=Dsn(dsn), min_size=2, max_size=2)
    stores = [await Store.open(settings=settings) for _ in range(coroutines)]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def work(store: Store, index: int) -> dict[str, object]:
        worker_id = f"{name}/{index}"

        async def handler(job: Job) -> JobResult:
            await store.pool.execute(
                "INSERT INTO queue_audit (job_id, worker_id) VALUES ($1, $2)", job.id, worker_id
            )
            return {"worker": worker_id}

        stats = await run_worker(
            store, handler, worker_id=worker_id, batch=batch, lease=30, burst=True
        )
        return dataclasses.asdict(stats)

    try:
        stats = await asyncio.gather(*(work(s, i) for i, s in enumerate(stores)))
    finally:
        for store in stores:
            await store.close()
    print(json.dumps(stats), flush=True)


async def hang(dsn: str, worker_id: str, count: int, lease: float) -> None:
    store = await Store.open(settings=Settings(dsn=Dsn(dsn), min_size=1, max_size=1))
    jobs = await store.jobs.claim(worker_id, limit=count, lease=lease)
    print(json.dumps([str(job.id) for job in jobs]), flush=True)
    await asyncio.sleep(3600)


def main(argv: list[str]) -> None:
    mode, dsn, *rest = argv
    if mode == "drain":
        asyncio.run(drain(dsn, rest[0], int(rest[1]), int(rest[2])))
    elif mode == "hang":
        asyncio.run(hang(dsn, rest[0], int(rest[1]), float(rest[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
