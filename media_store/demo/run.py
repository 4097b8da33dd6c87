"""The example flow run by ``make demo``: what a worker does, end to end.

The demo may be pointed at a database that holds real work (``DATABASE_URL``), so it touches
only rows it created, by their ids, and counts nothing else:

- its jobs are created inside the transaction that completes them, so no worker on that
  database ever sees them pending and none can claim them; they stay behind, completed, for a
  person to look at;
- the queue section runs real workers, and a worker claims any pending job of its types: that
  section therefore runs in a private database the demo creates, migrates and drops (see
  :mod:`media_store.demo.queue`).
"""

from __future__ import annotations

import shlex
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from media_store import Dsn, JobStatus, JobType, Settings, Store
from media_store.demo.output import heading, quoted, row
from media_store.demo.queue import demo_workers
from media_store.demo.words import demo_words


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded development server the demo ran on: where its data lives, its URL."""

    data_dir: Path
    dsn: Dsn
    psql: str = "psql"  # the client to name in the closing note (bundled when none is on PATH)


async def demo_job_with_results(store: Store) -> uuid.UUID:
    """Create a job and, in the same transaction, process it: attach an asset, a
    transcription and an analysis result, and complete it. Print it back; return its id."""
    heading("1. A job and everything it produced, written in one transaction")
    # Created inside the transaction that completes it: on a shared database no worker ever
    # sees this job pending, so none can claim it.
    async with store.transaction() as tx:
        job = await tx.jobs.create(
            {
                "job_type": JobType.AUDIO,
                "media_url": "https://example.com/talk.mp3",
                "prompt": "Summarise the talk",
                "parameters": {"language": "en", "demo": True},
            }
        )
        await tx.jobs.start_processing(job.id)
        await tx.media_assets.create(
            {
                "job_id": job.id,
                "asset_type": "original",
                "file_path": "/media/talk.mp3",
                "file_size_bytes": 4_812_345,
                "mime_type": "audio/mpeg",
                "metadata": {"duration_s": 312.5},
            }
        )
        await tx.transcriptions.create(
            {
                "job_id": job.id,
                "provider": "whisper",
                "text_content": "Hello and welcome.",
                "language": "en",
                "confidence_score": 0.94,
                "word_timestamps": [
                    {"word": "Hello", "start": 0.0, "end": 0.42, "confidence": 0.98},
                    {"word": "and", "start": 0.42, "end": 0.55, "confidence": 0.95},
                    {"word": "welcome.", "start": 0.55, "end": 1.1, "confidence": 0.97},
                ],
            }
        )
        await tx.analysis_results.create(
            {
                "job_id": job.id,
                "analysis_type": "summary",
                "summary": "A short greeting.",
                "detailed_analysis": {"topics": ["greeting"]},
                "confidence_score": 0.9,
                "model_used": "minimax-m1",
                "input_tokens": 812,
                "output_tokens": 64,
            }
        )
        await tx.jobs.update_status(job.id, JobStatus.COMPLETED, result={"summary": "ready"})

    done = await store.jobs.get_by_id(job.id)
    assert done is not None
    row(
        "job",
        done.id,
        done.job_type.value,
        f"{done.status.value} in {done.processing_time_ms} ms",
    )
    for asset in await store.media_assets.list_for_job(job.id):
        row(
            "media asset",
            asset.asset_type.value,
            asset.file_path,
            f"{asset.file_size_bytes:,} bytes",
            asset.mime_type,
        )
    for transcription in await store.transcriptions.list_for_job(job.id):
        words = transcription.word_timestamps or []
        row(
            "transcription",
            transcription.provider,
            transcription.language,
            f"{len(words)} words",
            quoted(transcription.text_content),
        )
    for result in await store.analysis_results.list_for_job(job.id):
        row(
            "analysis",
            f"{result.analysis_type} by {result.model_used}",
            f"{result.input_tokens} + {result.output_tokens} tokens",
            quoted(result.summary or ""),
        )
    return job.id


async def run_demo(dsn: Dsn, *, embedded: EmbeddedServer | None = None) -> None:
    """Run every section on ``dsn`` (already migrated), then say what was left behind."""
    # The environment's pool settings (MEDIA_STORE_*) apply, as they do to any Store.
    store = await Store.open(settings=Settings.from_env(dsn))
    async with store:
        left = {
            await demo_job_with_results(store): "a job and its results",
            await demo_words(store): "a transcription with streamed words",
        }
        await demo_workers(dsn)
        heading(f"Left in the database by this run: {len(left)} jobs, none pending")
        for job_id, what in left.items():
            job = await store.jobs.get_by_id(job_id)
            row(job.status.value if job else "deleted", job_id, what)
    if embedded is None:
        row("open it with", 'psql "$DATABASE_URL"')
        return
    heading("The embedded PostgreSQL keeps running")
    row("its data", embedded.data_dir)
    row("open it with", psql_command(embedded.dsn, embedded.psql))
    pid_file = shlex.quote(str(embedded.data_dir / "postmaster.pid"))
    row("stop it with", f"kill -INT $(head -1 {pid_file})")


def psql_command(dsn: Dsn, psql: str = "psql") -> str:
    """The shell command that opens ``dsn``, given as a URL with its socket folder in ``host=``
    the way pgserver hands them out (``postgresql://postgres:@/media_store?host=/path``)."""
    parts = urlsplit(dsn.reveal())
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[0]
    port = ["-p", str(parts.port)] if parts.port else []
    user = parts.username or "postgres"
    return shlex.join([psql, "-h", host, *port, "-U", user, parts.path.lstrip("/")])


def bundled_psql() -> str:
    """``psql`` when one is on PATH, else the one inside the pgserver wheel."""
    if shutil.which("psql"):
        return "psql"
    try:
        from pgserver._commands import POSTGRES_BIN_PATH  # pgserver exports no public name
    except ImportError:  # pragma: no cover - depends on the environment
        return "psql"
    return str(POSTGRES_BIN_PATH / "psql")
