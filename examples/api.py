"""An HTTP service on media_store, to copy: jobs, their analysis results, transcriptions and
their words, on FastAPI with the integration of :mod:`media_store.fastapi`.

Run it with one command (``make api``, or ``python -m examples.api``): against
``DATABASE_URL`` when it is set, else against the embedded development PostgreSQL that
``make demo`` uses (started if needed and left running, its data in ``.dev-postgres/``). The
command applies pending migrations first, as ``make demo`` does, then serves on
http://127.0.0.1:8000 (the OpenAPI page at ``/docs``). In production, migrate as an operator
(``media-store migrate``) and serve the application alone: ``uvicorn examples.api:app``.

Endpoints hold no try/except: the library's errors become HTTP answers in one place
(:func:`media_store.fastapi.exception_handlers`): bad input 422, a missing job or
transcription 404, a refused status change or out-of-order words 409, no database 503.

``POST /jobs`` and ``POST /analysis-results`` honour an ``Idempotency-Key`` header (IETF draft
"The Idempotency-Key HTTP Header Field"): a client that timed out cannot know whether its
request committed, so it retries with the same key and is answered 200 with what the first
attempt made (201 when this attempt made it), or 422 when the key was used with another body.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Body, FastAPI, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from media_store import (
    AnalysisResult,
    AnalysisResultCreate,
    DatabaseUnavailable,
    Dsn,
    Job,
    JobCreate,
    JobCursor,
    JobNotFound,
    JobStatus,
    JobType,
    KeyScope,
    Repositories,
    SearchPage,
    Settings,
    Transcription,
    TranscriptionCreate,
    Turn,
    ValidationError,
    Words,
    migrate,
)
from media_store.config import DATABASE_URL
from media_store.demo.embedded import DEFAULT_DIR, embedded_url, start_embedded
from media_store.fastapi import (
    StoreDep,
    TransactionDep,
    checked_by,
    exception_handlers,
    lifespan,
    transaction,
)
from media_store.models import arguments
from media_store.models.arguments import MAX_KEY
from media_store.repositories.jobs import MAX_PAGE
from media_store.words.captions import MEDIA_TYPES, CaptionRules, check_min_gap
from media_store.words.search import MAX_LIMIT as MAX_SEARCH_PAGE
from media_store.words.search import decode_cursor, parse_query
from media_store.words.timestamps import WordsInput, WordsOutput

# A consistent read of several statements: one snapshot, no writes.
SnapshotDep = Annotated[Repositories, transaction(isolation="repeatable_read", readonly=True)]

router = APIRouter()

# Parameters checked by the library's own rules as FastAPI reads them, so that a refusal names
# the parameter (loc ["query", "after"]) rather than coming from inside the endpoint with no loc.
Cursor = Annotated[
    str | None,
    Query(description="the `next` of the previous page"),
    checked_by(JobCursor.decode),
]
Start = Annotated[
    float,
    Query(description="seconds; words starting at or after t0"),
    checked_by(partial(arguments.number, "t0")),
]
End = Annotated[
    float,
    Query(description="seconds; words starting before t1"),
    checked_by(partial(arguments.number, "t1")),
]


# A client's retry key. For a job it is the job's idempotency_key (the library's own: a unique
# index makes concurrent retries create one job); for a delivery, the job's result records it.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY,
        description="retry with the same key to get what the first attempt made (200)",
    ),
]
KEY_LOC = ("header", "Idempotency-Key")  # as FastAPI names the header in its own errors
REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"description": "made by an earlier request with this Idempotency-Key"}
}

# The fields a job keeps as it was created. Its priority and run_after are left out: the queue
# changes them (set_priority, a retry's backoff), so they no longer tell a retry from another
# request.
CREATED_AS = frozenset(JobCreate.model_fields) - {"priority", "run_after"}


def same_request(stored: BaseModel, request: BaseModel, fields: frozenset[str]) -> bool:
    """Whether ``stored`` is what ``request`` would have made, compared on ``fields``."""
    return all(getattr(stored, name) == getattr(request, name) for name in fields)


def key_reused(made: uuid.UUID) -> ValidationError:
    """The answer to a key sent again with another body: 422, as the IETF draft asks (the
    request cannot be a retry of the first; 409 would say the first is still in progress)."""
    msg = f"this Idempotency-Key was used by another request, with another body (made {made})"
    return ValidationError(msg, [{"loc": KEY_LOC, "msg": msg}])


class JobsPage(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[Job]
    next: str | None = Field(description="pass as ?after= for the next page; null on the last page")


class Health(BaseModel):
    database: str


@router.get("/health")
async def health(store: StoreDep) -> Health:
    """200 when a connection answers, else 503 (for a load balancer's readiness check)."""
    if not await store.ping():
        raise DatabaseUnavailable("the database did not answer the health check")
    return Health(database="ok")


@router.post("/jobs", status_code=status.HTTP_201_CREATED, responses=REPLAYED)
async def create_job(
    job: JobCreate, store: StoreDep, response: Response, idempotency_key: IdempotencyKey = None
) -> Job:
    """Create a pending job. With an ``Idempotency-Key``, the key becomes the job's
    ``idempotency_key``, held ``forever`` unless the body names a scope (so a late retry, after
    the job finished, still finds it): the same request again is answered 200 with that job."""
    if idempotency_key is None:
        return await store.jobs.create(job)  # a key in the body held by another job: 409
    if job.idempotency_key not in (None, idempotency_key):
        msg = "idempotency_key differs from the Idempotency-Key header"
        raise ValidationError(msg, [{"loc": ("body", "idempotency_key"), "msg": msg}])
    keyed = job.model_copy(
        update={
            "idempotency_key": idempotency_key,
            "idempotency_scope": job.idempotency_scope or KeyScope.FOREVER,
        }
    )
    made = await store.jobs.enqueue(keyed)
    if not made.created:
        if not same_request(made.job, keyed, CREATED_AS):
            raise key_reused(made.job.id)
        response.status_code = status.HTTP_200_OK
    return made.job


@router.get("/jobs")
async def list_jobs(
    store: StoreDep,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> JobsPage:
    """Jobs newest first, a page at a time (keyset pagination: deep pages cost no more)."""
    page = await store.jobs.list_jobs(after=after, limit=limit)
    return JobsPage(jobs=page.jobs, next=None if page.next is None else page.next.encode())


# Before /jobs/{job_id}, which would otherwise take "counts" for an id.
@router.get("/jobs/counts")
async def count_jobs(store: StoreDep) -> dict[JobStatus, int]:
    """How many jobs are in each status (every status present, zeros included)."""
    return await store.jobs.count_by_status()


@router.get("/jobs/{job_id}")
async def read_job(job_id: uuid.UUID, store: StoreDep) -> Job:
    job = await store.jobs.get_by_id(job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


@router.post("/jobs/{job_id}/start")
async def start_job(job_id: uuid.UUID, store: StoreDep) -> Job:
    """Move a pending job to processing (409 when it is not pending)."""
    return await store.jobs.start_processing(job_id)


@router.get("/jobs/{job_id}/analysis-results")
async def list_analysis_results(job_id: uuid.UUID, tx: SnapshotDep) -> list[AnalysisResult]:
    """The job's analysis results, oldest first (404 when the job does not exist)."""
    if await tx.jobs.get_by_id(job_id) is None:
        raise JobNotFound(job_id)
    return await tx.analysis_results.list_for_job(job_id)


@router.post("/analysis-results", status_code=status.HTTP_201_CREATED, responses=REPLAYED)
async def deliver_analysis(
    analysis: AnalysisResultCreate,
    tx: TransactionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AnalysisResult:
    """Store an analysis result and complete its job with it, all or nothing.

    When the job is not processing, the status change is refused (409) after the result
    was inserted: the transaction rolls back, and nothing is stored. With an
    ``Idempotency-Key``, the completed job's result records the key: the same delivery again is
    answered 200 with the stored result. A job completes once, so the key needs no row of its
    own; a concurrent twin of a delivery still in flight is refused (409) by the status change.
    """
    if idempotency_key is not None:
        delivered = await delivered_with(tx, analysis.job_id, idempotency_key)
        if delivered is not None:
            if not same_request(delivered, analysis, DELIVERED_AS):
                raise key_reused(delivered.id)
            response.status_code = status.HTTP_200_OK
            return delivered
    stored = await tx.analysis_results.create(analysis)
    result = {"analysis_result_id": str(stored.id), "summary": stored.summary}
    if idempotency_key is not None:
        result["idempotency_key"] = idempotency_key
    await tx.jobs.update_status(analysis.job_id, JobStatus.COMPLETED, result=result)
    return stored


DELIVERED_AS = frozenset(AnalysisResultCreate.model_fields)


async def delivered_with(tx: Repositories, job_id: uuid.UUID, key: str) -> AnalysisResult | None:
    """The result an earlier delivery with ``key`` completed the job with, if one did."""
    job = await tx.jobs.get_by_id(job_id)
    if job is None or job.result is None or job.result.get("idempotency_key") != key:
        return None
    return await tx.analysis_results.get(uuid.UUID(job.result["analysis_result_id"]))


@router.post("/transcriptions", status_code=status.HTTP_201_CREATED)
async def create_transcription(
    transcription: TranscriptionCreate, store: StoreDep
) -> Transcription:
    """Store a transcription with its word timestamps (a JSON array of words)."""
    return await store.transcriptions.create(transcription)


@router.post("/transcriptions/{transcription_id}/words")
async def append_words(
    transcription_id: uuid.UUID, words: Annotated[WordsInput, Body()], store: StoreDep
) -> int:
    """Append words as a recording is transcribed; returns how many were appended (409 when
    the batch starts before the last stored word)."""
    return await store.transcriptions.append_words(transcription_id, words)


@router.get("/transcriptions/{transcription_id}/words", response_model=WordsOutput)
async def words_between(
    transcription_id: uuid.UUID,
    store: StoreDep,
    t0: Start,
    t1: End,
) -> Words:
    """The words spoken in a window of the media, read from the segments that hold them."""
    return await store.transcriptions.words_between(transcription_id, t0, t1)


MinGap = Annotated[
    float | None,
    Query(description="seconds; a longer pause within one speaker's words starts a new turn"),
    checked_by(check_min_gap),
]


@router.get("/transcriptions/{transcription_id}/turns")
async def speaker_turns(
    transcription_id: uuid.UUID, store: StoreDep, min_gap: MinGap = None
) -> list[Turn]:
    """The speaker turns, in order: who spoke when, and what (read a window of words at a
    time; the list is what the client asked for, so it is answered whole)."""
    return [turn async for turn in store.transcriptions.turns(transcription_id, min_gap=min_gap)]


SearchCursor = Annotated[
    str | None,
    Query(description="the `next` of the previous page"),
    checked_by(decode_cursor),
]
SearchQuery = Annotated[
    str,
    Query(description='words, "a phrase", prefix*; all required'),
    checked_by(parse_query),
]


@router.get("/search")
async def search(
    store: StoreDep,
    q: SearchQuery,
    job_type: JobType | None = None,
    language: Annotated[str | None, Query(min_length=1, max_length=35)] = None,
    job_id: uuid.UUID | None = None,
    speaker: Annotated[str | None, Query(min_length=1)] = None,
    after: SearchCursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_PAGE)] = 20,
) -> SearchPage:
    """Where something was said, across every transcription, best first: each hit with its
    words' exact times (jump the player there), speaker and snippet; a page at a time
    through ``next``. Read from a standby when the Store has replicas."""
    return await store.replica.transcriptions.search(
        q,
        job_type=job_type,
        language=language,
        job_id=job_id,
        speaker=speaker,
        after=after,
        limit=limit,
    )


_RULES = CaptionRules()


@router.get(
    "/transcriptions/{transcription_id}/captions",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
async def captions(
    transcription_id: uuid.UUID,
    store: StoreDep,
    format: Literal["srt", "vtt"] = "vtt",
    max_chars: Annotated[int, Query(ge=1)] = _RULES.max_chars,
    max_lines: Annotated[int, Query(ge=1)] = _RULES.max_lines,
    split_on_speaker: bool = True,
) -> StreamingResponse:
    """The captions as a file to download (SRT or WebVTT), streamed a cue at a time."""
    chunks = store.transcriptions.captions(
        transcription_id,
        format,
        max_chars=max_chars,
        max_lines=max_lines,
        split_on_speaker=split_on_speaker,
    )
    # The first chunk is read before answering: an unknown transcription is a 404, not a 200
    # cut short once the headers are gone.
    first = await anext(chunks, "")

    async def body() -> AsyncIterator[str]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(
        body(),
        media_type=f"{MEDIA_TYPES[format]}; charset=utf-8",  # SubRip too: the text is UTF-8
        headers={"Content-Disposition": f'attachment; filename="{transcription_id}.{format}"'},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; its Store is opened from ``settings`` (default: the environment)
    when the server starts."""
    app = FastAPI(
        title="media_store example",
        lifespan=lifespan if settings is None else partial(lifespan, settings=settings),
        exception_handlers=exception_handlers(),
    )
    app.include_router(router)
    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if not os.environ.get(DATABASE_URL):
        server = start_embedded(DEFAULT_DIR, keep_running=True)
        os.environ[DATABASE_URL] = embedded_url(server)
        print("database: embedded development PostgreSQL (DATABASE_URL is unset)")
    dsn = Dsn(os.environ[DATABASE_URL])
    applied = migrate.apply(dsn)
    done = ", ".join(applied) + " applied" if applied else "up to date"
    print(f"database: {dsn}; migrations: {done}")
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
