"""A real Prometheus (Debian's ``prometheus`` package) scrapes the metrics endpoint every second
while workers drain the queue; the figures read back through its HTTP API match the database.
Skipped, with the install command, where the binary is missing (the run's header says so)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from media_store import JobStatus, Store
from media_store.contrib.metrics import WorkerMetrics, serve
from media_store.worker import run_worker

pytestmark = pytest.mark.slow

INSTALL_PROMETHEUS = "apt-get install -y --no-install-recommends prometheus"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def prometheus(tmp_path: Path, target: str) -> AsyncIterator[httpx.AsyncClient]:
    """A Prometheus scraping ``target`` every second, on a free loopback port, its storage in
    ``tmp_path``; a client of its HTTP API. Stopped afterwards."""
    binary = prometheus_binary()
    if binary is None:
        pytest.skip(f"prometheus is not installed ({INSTALL_PROMETHEUS})")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: media_store\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    # Popen, not asyncio's subprocesses: the server runs on its own; only its exit is waited.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
            for _ in range(300):
                try:
                    if (await api.get("/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError((tmp_path / "prometheus.log").read_text())
            yield api
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def query(api: httpx.AsyncClient, promql: str) -> float | None:
    """The single value of an instant query, None when it has no result."""
    answer = (await api.get("/api/v1/query", params={"query": promql})).json()
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return None if not result else float(result[0]["value"][1])


async def eventually(
    api: httpx.AsyncClient, promql: str, wanted: Callable[[float | None], bool]
) -> float | None:
    """The query's value once ``wanted`` holds (a scrape lands every second), or the last
    value seen after 30 s."""
    got = None
    for _ in range(60):
        got = await query(api, promql)
        if wanted(got):
            return got
        await asyncio.sleep(0.5)
    return got


async def test_prometheus_scrapes_figures_that_match_the_database(
    store: Store, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(store, "127.0.0.1", port, registry=registry, stop=stop))
    audio, video = 300, 40
    await store.jobs.create_many(
        [{"job_type": "audio", "media_url": f"s3://x/{n}.mp3"} for n in range(audio)]
    )
    await store.jobs.create_many(
        [{"job_type": "video", "media_url": f"s3://x/{n}.mp4"} for n in range(video)]
    )

    async def handle(job: object) -> dict[str, bool]:
        await asyncio.sleep(0.005)  # long enough for scrapes to land mid-drain
        return {"ok": True}

    try:
        async with prometheus(tmp_path, f"127.0.0.1:{port}") as api:
            # A scrape before the drain: the whole backlog pending.
            before = await eventually(
                api, 'media_store_jobs{job_type="audio",status="pending"}', lambda v: v == audio
            )
            assert before == audio
            # Two workers drain the audio jobs; the video jobs stay pending.
            drained = await asyncio.gather(
                *(
                    run_worker(store, handle, job_types=["audio"], burst=True, instrument=metrics)
                    for _ in range(2)
                )
            )
            counts = await store.jobs.count_by_status()
            assert counts[JobStatus.COMPLETED] == audio == sum(s.completed for s in drained)

            completed = await eventually(
                api,
                'sum(media_store_jobs_completed_total{job_type="audio"})',
                lambda v: v == audio,
            )
            assert completed == counts[JobStatus.COMPLETED]
            pending = await eventually(
                api,
                'sum(media_store_jobs{status="pending"})',
                lambda v: v == counts[JobStatus.PENDING],
            )
            assert pending == counts[JobStatus.PENDING] == video
            processing = await query(api, 'sum(media_store_jobs{status="processing"})')
            assert processing == counts[JobStatus.PROCESSING] == 0
            claimed = await query(api, "sum(media_store_jobs_claimed_total)")
            assert claimed == audio
            handled = await query(api, "sum(media_store_job_handler_duration_seconds_count)")
            assert handled == audio
            # the database's side of the scrape never failed, and the tables are reported
            assert await query(api, "media_store_scrape_errors_total") == 0
            size = await query(api, 'media_store_table_size_bytes{table="jobs"}')
            assert size is not None and size > 0
            assert await query(api, 'up{job="media_store"}') == 1
    finally:
        stop.set()
        await server
