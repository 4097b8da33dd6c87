"""Prometheus metrics (media_store.contrib.metrics): the worker's counters by job type, the
database's figures read at each scrape, the ASGI endpoint, the CLI endpoint, and that the core
never imports prometheus_client."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest

from media_store import Job, JobStatus, Settings, Store
from media_store.contrib.metrics import STATE_KEY, DatabaseCollector, WorkerMetrics, metrics_app
from media_store.worker import Instruments, PermanentFailure, WorkerStats, run_worker

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def scraped(registry: CollectorRegistry) -> str:
    """The exposition, rendered off the event loop as a scrape is (the collector's statements
    run on this loop meanwhile)."""
    return (await asyncio.to_thread(generate_latest, registry)).decode()


def test_import_media_store_and_a_worker_never_import_the_optional_integrations(
    db_url: str,
) -> None:
    script = """
import asyncio, sys
import media_store, media_store.worker, media_store.cli
from media_store import Store
from media_store.worker import run_worker

async def main():
    async with await Store.open(sys.argv[1]) as store:
        await store.jobs.create({"job_type": "audio", "media_url": "s3://x/a.mp3"})
        stats = await run_worker(store, lambda job: {"ok": True}, burst=True)
        assert stats.completed == 1, stats

asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prometheus_client", "opentelemetry"))
print(",".join(loaded) or "none")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, db_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"


async def test_worker_metrics_count_each_outcome_by_job_type(store: Store) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    for name in ("ok-1", "ok-2", "bad", "flaky"):
        await store.jobs.create(
            {"job_type": "audio", "media_url": f"s3://x/{name}", "max_attempts": 2}
        )
    await store.jobs.create({"job_type": "video", "media_url": "s3://x/ok-3"})

    def handle(job: Job) -> dict[str, bool]:
        if job.media_url.endswith("bad"):
            raise PermanentFailure("no")
        if job.media_url.endswith("flaky") and job.attempts == 1:
            raise RuntimeError("once")
        return {"ok": True}

    stats = await run_worker(store, handle, burst=True, instrument=Instruments(metrics))
    assert (stats.completed, stats.failed, stats.retried) == (4, 1, 1)

    def count(name: str, job_type: str) -> float | None:
        return value(registry, f"media_store_{name}_total", job_type=job_type)

    assert count("jobs_claimed", "audio") == 5  # the flaky job twice
    assert count("jobs_completed", "audio") == 3 and count("jobs_completed", "video") == 1
    assert count("jobs_failed", "audio") == 1 and count("jobs_retried", "audio") == 1
    assert count("jobs_cancelled", "audio") == 0 and count("job_leases_lost", "audio") == 0
    assert count("jobs_completed", "document") == 0  # every type shown from the start
    duration = "media_store_job_handler_duration_seconds_count"
    assert value(registry, duration, job_type="audio") == 5
    assert value(registry, "media_store_claim_duration_seconds_count") is not None
    # the wait is observed for first attempts only
    assert value(registry, "media_store_job_wait_seconds_count", job_type="audio") == 4
    assert value(registry, "media_store_jobs_in_flight", job_type="audio") == 0
    # a scrape of it follows the conventions: no job id anywhere, base units
    text = await scraped(registry)
    assert "job_id" not in text and "_milliseconds" not in text


async def test_workers_on_two_threads_count_into_one_instance(
    store: Store, settings: Settings
) -> None:
    """Each thread counts in figures of its own, without a lock (WorkerMetrics' doc): workers
    on two event loops, one per thread, each on a Store of its own, share one instance, and a
    scrape adds up both threads' figures."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    for n in range(40):
        await store.jobs.create({"job_type": "audio", "media_url": f"s3://x/{n}"})
    start = threading.Barrier(2, timeout=30)

    async def handle(job: Job) -> None:
        await asyncio.sleep(0.002)

    async def work() -> WorkerStats:
        async with await Store.open(settings=settings) as own:
            start.wait()
            return await run_worker(own, handle, batch=4, burst=True, instrument=metrics)

    done: list[WorkerStats] = []
    threads = [threading.Thread(target=lambda: done.append(asyncio.run(work()))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)
    assert len(done) == 2
    assert all(stats.completed > 0 for stats in done)  # both threads counted some
    assert sum(stats.completed for stats in done) == 40
    assert value(registry, "media_store_jobs_claimed_total", job_type="audio") == 40
    assert value(registry, "media_store_jobs_completed_total", job_type="audio") == 40
    duration = "media_store_job_handler_duration_seconds"
    assert value(registry, f"{duration}_count", job_type="audio") == 40
    assert value(registry, f"{duration}_bucket", job_type="audio", le="+Inf") == 40
    assert value(registry, "media_store_job_wait_seconds_count", job_type="audio") == 40
    claims = value(registry, "media_store_claim_duration_seconds_count")
    assert claims is not None and claims >= 40 / 4  # a claim takes at most 4 here
    assert value(registry, "media_store_jobs_in_flight", job_type="audio") == 0
    # Both threads have ended: their counts were kept once, and let go (a process that
    # starts workers on new threads does not collect a set of counts per thread it ran).
    assert metrics._threads == []
    assert value(registry, "media_store_jobs_completed_total", job_type="audio") == 40


async def test_the_database_collector_reports_the_queue_and_table_health(store: Store) -> None:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(store))
    for n in range(3):
        await store.jobs.create({"job_type": "audio", "media_url": f"s3://x/{n}"})
    await store.jobs.create({"job_type": "video", "media_url": "s3://x/v"})
    await store.jobs.claim("w", job_types=["video"], lease=0.001)
    await asyncio.sleep(0.01)  # its lease expires

    await scraped(registry)  # runs the statements
    text = await scraped(registry)
    counts = await store.jobs.count_by_status()
    pending = 'media_store_jobs{job_type="audio",status="pending"}'
    assert f"{pending} {float(counts[JobStatus.PENDING])}" in text
    assert 'media_store_jobs{job_type="video",status="processing"} 1.0' in text
    assert 'media_store_expired_leases{job_type="video"} 1.0' in text
    assert 'media_store_jobs_claimable{job_type="audio"} 3.0' in text
    assert 'media_store_oldest_pending_age_seconds{job_type="audio"}' in text
    for table in ("jobs", "transcription_word_segments"):
        assert f'media_store_table_size_bytes{{table="{table}"}}' in text
        assert f'media_store_table_dead_tuples{{table="{table}"}}' in text
    assert "media_store_oldest_transaction_age_seconds " in text
    assert "media_store_scrape_errors_total 0.0" in text


async def test_a_failing_or_slow_database_counts_an_error_and_still_answers(store: Store) -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    registry.register(DatabaseCollector(store, timeout=0.000001))
    text = await scraped(registry)
    assert "media_store_scrape_errors_total 1.0" in text
    assert "media_store_jobs_completed_total" in text  # the worker's figures are still there
    assert "media_store_jobs{" not in text
    # Collected on the event loop's own thread (where it would wait for itself): refused.
    on_the_loop = generate_latest(registry).decode()
    assert "media_store_scrape_errors_total 2.0" in on_the_loop


async def test_the_asgi_endpoint_serves_the_store_of_the_fastapi_integration(
    store: Store,
) -> None:
    registry = CollectorRegistry()
    app = FastAPI()
    app.mount("/metrics", metrics_app(registry=registry))
    setattr(app.state, STATE_KEY, store)  # as media_store.fastapi.lifespan keeps it
    await store.jobs.create({"job_type": "document", "media_url": "s3://x/d.pdf"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/metrics/")
        refused = await client.post("/metrics/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'media_store_jobs{job_type="document",status="pending"} 1.0' in answer.text
    assert refused.status_code == 405


@pytest.fixture
def cli_env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url}


@pytest.mark.slow
async def test_the_metrics_command_serves_the_database_figures(
    store: Store, cli_env: dict[str, str]
) -> None:
    await store.jobs.create({"job_type": "audio", "media_url": "s3://x/a.mp3"})
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "media_store",
        "metrics",
        "--listen",
        f"127.0.0.1:{port}",
        env=cli_env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert f"http://127.0.0.1:{port}/metrics" in line.decode()
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert 'media_store_jobs{job_type="audio",status="pending"} 1.0' in answer.text
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
