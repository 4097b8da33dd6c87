"""``make demo``: two workers share five jobs; one job fails once and is retried.

Why a private database: :func:`run_worker` claims *any* pending job of its types, oldest first.
Run on the database ``DATABASE_URL`` names, the demo's workers would claim (and complete) real
jobs waiting there, and no filter the claim offers can tell the demo's jobs from the others
(job types are a fixed enum; a handler that refuses foreign jobs runs only after the claim has
taken them). So this section creates a database of its own on the same server, migrates it,
runs there and drops it, leaving nothing behind. A role that may not create databases sees the
section skipped, with the reason, rather than run against shared work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from media_store import Dsn, Job, JobType, Settings, Store, migrate
from media_store.demo.output import heading, row
from media_store.worker.runner import JobResult, run_worker

PRIVATE_PREFIX = "media_store_demo_"


@contextlib.asynccontextmanager
async def private_database(dsn: Dsn) -> AsyncIterator[Dsn | None]:
    """A new, migrated database on ``dsn``'s server, dropped on exit; None when the role may
    not create one (nothing was created then).

    Plain asyncpg on purpose: creating and dropping databases is not the library's business.
    """
    name = PRIVATE_PREFIX + secrets.token_hex(4)  # letters, digits, underscores: safe to quote
    admin = await asyncpg.connect(dsn.reveal())
    try:
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            created = True
        except asyncpg.InsufficientPrivilegeError:
            created = False
        if not created:
            yield None
            return
        try:
            parts = urlsplit(dsn.reveal())
            private = Dsn(urlunsplit(parts._replace(path="/" + name)))
            await asyncio.to_thread(migrate.apply, private)
            yield private
        finally:
            # The section's pool is closed by now; FORCE (PostgreSQL 13+) ends any session the
            # server has not finished closing, on a database that only the demo ever used.
            force = " WITH (FORCE)" if admin.get_server_version() >= (13,) else ""
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
    finally:
        await admin.close()


async def demo_workers(dsn: Dsn) -> None:
    """Two workers drain five video jobs in a private database; ``flaky`` fails on its first
    attempt and is retried. Prints a line per job and per worker."""
    heading("3. Two workers share a queue of five jobs; one fails once and is retried")
    async with private_database(dsn) as private:
        if private is None:
            role = urlsplit(dsn.reveal()).username or "this role"
            row("skipped", "workers claim any pending job: this section needs a database of")
            row("", f"its own, and {role} may not create one (no CREATEDB)")
            return
        row("database", f"{urlsplit(private.reveal()).path.lstrip('/')} (private: dropped after)")
        store = await Store.open(settings=Settings.from_env(private))
        async with store:
            await _two_workers(store)


async def _two_workers(store: Store) -> None:
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
            await asyncio.sleep(0.05)  # the "work": lets the other worker claim meanwhile
            if by_id[job.id] == "flaky" and job.attempts == 1:
                history[job.id].append(f"{worker_id} failed (provider timed out)")
                raise TimeoutError("provider timed out")
            history[job.id].append(f"{worker_id} completed")
            return {"frames": 24 * job.attempts}

        return handle

    stats = await asyncio.gather(
        *(
            run_worker(
                store,
                worker_handler(worker_id),
                worker_id=worker_id,
                job_types=[JobType.VIDEO],
                batch=2,
                lease=10,
                burst=True,  # return once nothing is left to claim
            )
            for worker_id in ("worker-a", "worker-b")
        )
    )
    print(f"  {'job':<9}{'status':<11}{'attempts':<10}{'result':<16}what happened")
    for job in jobs:
        final = await store.jobs.get_by_id(job.id)
        assert final is not None
        result = json.dumps(final.result) if final.result is not None else "-"
        print(
            f"  {by_id[job.id]:<9}{final.status.value:<11}{final.attempts:<10}{result:<16}"
            + ", then ".join(history[job.id])
        )
    for s in stats:
        row(
            s.worker_id,
            f"claimed {s.claimed}, completed {s.completed}, retried {s.retried}, failed {s.failed}",
        )
