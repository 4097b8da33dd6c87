"""The example worker flow run by ``make demo``: what a worker does, end to end."""

from __future__ import annotations

from media_store.config import Dsn, Settings
from media_store.demo_queue import demo_workers
from media_store.demo_words import demo_words
from media_store.models import JobStatus, JobType
from media_store.store import Store


def _show(label: str, model: object) -> None:
    print(f"  {label}: {model!r}")


async def demo_job_with_results(store: Store) -> None:
    """Create a job, then in one transaction: claim it, attach an asset, a transcription and
    an analysis result, and complete it. Print everything back."""
    print("\n== a job and what it produced, written in one transaction ==")
    job = await store.jobs.create(
        {
            "job_type": JobType.AUDIO,
            "media_url": "https://example.com/talk.mp3",
            "prompt": "Summarise the talk",
            "parameters": {"language": "en"},
        }
    )
    async with store.transaction() as tx:
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
        await tx.jobs.update_status(job.id, JobStatus.COMPLETED, result={"summary_id": 1})
    done = await store.jobs.get_by_id(job.id)
    _show("job", done)
    for asset in await store.media_assets.list_for_job(job.id):
        _show("asset", asset)
    for transcription in await store.transcriptions.list_for_job(job.id):
        _show("transcription", transcription)
    for result in await store.analysis_results.list_for_job(job.id):
        _show("analysis result", result)
    counts = await store.jobs.count_by_status()
    print("  jobs by status:", {status.value: n for status, n in counts.items()})


SECTIONS = [demo_job_with_results, demo_words, demo_workers]


async def run_demo(dsn: Dsn) -> None:
    store = await Store.open(settings=Settings(dsn=dsn, min_size=1, max_size=4))
    async with store:
        if not await store.ping():  # pragma: no cover - Store.open already connected
            raise SystemExit("database does not answer")
        for section in SECTIONS:
            await section(store)
