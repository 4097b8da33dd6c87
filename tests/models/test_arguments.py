"""Every argument is checked before SQL, and no time the database holds is one Python cannot
read (issue 9, findings 1 and 4).

A duration beyond its documented range (arguments.MAX_LEASE, arguments.MAX_DURATION) is a
ValidationError before anything is written; the database refuses, from any client, a
timestamp outside Python's datetime range (migrations/0004); odd arguments of every kind are
a ValidationError naming the argument, never a TypeError, OverflowError or RecursionError.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any, cast

import asyncpg
import pytest

from media_store import Dsn, Job, JobStatus, Settings, Store, ValidationError, migrate
from media_store.db.queries import QUERIES
from media_store.models import arguments
from media_store.models.arguments import MAX_DURATION, MAX_LEASE
from media_store.models.fields import MAX_JSON_DEPTH
from media_store.repositories.jobs import MAX_RETENTION, JobCursor
from media_store.worker.runner import run_worker
from tests.conftest import create_database, drop_database
from tests.support.harness import Server, with_database

# Every table, and per table what changes whenever any row is inserted, updated or deleted:
# the row count and the sum of the rows' xmin (a new row version has a new transaction id).
STATE_SQL = " UNION ALL ".join(
    f"SELECT '{table}', count(*), coalesce(sum(xmin::text::bigint), 0) FROM {table}"
    for table in (
        "jobs",
        "media_assets",
        "transcriptions",
        "analysis_results",
        "transcription_word_segments",
    )
)

State = dict[str, tuple[int, int]]


@asynccontextmanager
async def database_store(server: Server, template: str) -> AsyncIterator[Store]:
    """A store on a migrated database of its own (a clone of the template), for a whole
    module whose tests write nothing or nothing the others read; dropped afterwards."""
    name = await create_database(server, template=template)
    try:
        store = await Store.open(
            settings=Settings(
                dsn=Dsn(with_database(server.admin_url, name)), min_size=1, max_size=3
            )
        )
        try:
            yield store
        finally:
            await store.close()
    finally:
        await drop_database(server, name)


async def state(store: Store) -> State:
    """Row count and row-version fingerprint of every table: equal before and after a call
    exactly when the call changed no row."""
    return {row[0]: (row[1], row[2]) for row in await store.pool.fetch(STATE_SQL)}


async def new_job(store: Store, **fields: Any) -> Job:
    return await store.jobs.create({"job_type": "audio", "media_url": "https://x/a", **fields})


# --- finding 1: durations -----------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    """A call taking a duration that used to commit a time Python cannot read back."""

    call: Callable[[Store, uuid.UUID, Any], Awaitable[object]]
    maximum: timedelta  # the largest duration the call accepts
    claimed: bool = False  # the job must be held by worker "w" first


async def _run_worker(store: Store, job_id: uuid.UUID, span: Any) -> object:
    async def handler(job: Job) -> None:
        return None

    return await run_worker(store, handler, lease=span, burst=True)


POISONS = {
    "claim(lease=)": Poison(lambda s, j, span: s.jobs.claim("w", lease=span), MAX_LEASE),
    "start_processing(lease=)": Poison(
        lambda s, j, span: s.jobs.start_processing(j, lease=span), MAX_LEASE
    ),
    "heartbeat(lease=)": Poison(
        lambda s, j, span: s.jobs.heartbeat("w", [j], lease=span), MAX_LEASE, claimed=True
    ),
    "fail(retry_in=)": Poison(
        lambda s, j, span: s.jobs.fail(j, "w", "boom", retry_in=span), MAX_DURATION, claimed=True
    ),
    "run_worker(lease=)": Poison(_run_worker, MAX_LEASE),
}

JUST_OVER = object()  # the call's maximum plus one second
HUGE_DURATIONS: dict[str, Any] = {
    "1e12 s (year 33715)": 1e12,
    "10**400 s": 10**400,
    "-(10**400) s": -(10**400),  # past a double's range below: OverflowError once
    "-1e308 s": -1e308,
    "-infinity": float("-inf"),
    "NaN": float("nan"),
    "timedelta.max": timedelta.max,
    "infinity": float("inf"),
    "just over the maximum": JUST_OVER,
}


async def every_read_works(store: Store, job_id: uuid.UUID) -> None:
    """The reads a poisoned row used to break, each returning the job, and reclaiming."""
    found = await store.jobs.get_by_id(job_id)
    assert found is not None
    assert job_id in [j.id for j in await store.jobs.get_all()]
    assert job_id in [j.id for j in (await store.jobs.list_jobs()).jobs]
    assert job_id in [j.id for j in await store.jobs.get_by_status(found.status)]
    assert await store.jobs.reclaim_expired() == []  # nothing expired, nothing raised


@pytest.mark.parametrize("span", HUGE_DURATIONS.values(), ids=HUGE_DURATIONS.keys())
@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
async def test_a_duration_beyond_its_range_is_refused_and_the_job_stays_readable(
    store: Store, poison: Poison, span: Any
) -> None:
    job = await new_job(store)
    if poison.claimed:
        assert [j.id for j in await store.jobs.claim("w")] == [job.id]
    if span is JUST_OVER:
        span = poison.maximum + timedelta(seconds=1)
    before = await state(store)

    with pytest.raises(ValidationError, match=r"lease|retry_in") as refused:
        await poison.call(store, job.id, span)

    assert str(poison.maximum) in str(refused.value)  # the message states the range
    assert await state(store) == before
    await every_read_works(store, job.id)


@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
async def test_the_largest_duration_accepted_reads_back(store: Store, poison: Poison) -> None:
    job = await new_job(store)
    if poison.claimed:
        await store.jobs.claim("w")
    if poison.call is _run_worker:
        # the worker runs the job under the lease: it completes, readable
        await poison.call(store, job.id, poison.maximum)
        done = await store.jobs.get_by_id(job.id)
        assert done is not None and done.status is JobStatus.COMPLETED
    else:
        await poison.call(store, job.id, poison.maximum)
        held = await store.jobs.get_by_id(job.id)
        assert held is not None
        far = held.run_after if held.status is JobStatus.PENDING else held.locked_until
        assert far is not None and held.updated_at is not None
        assert far - held.updated_at == pytest.approx(poison.maximum, abs=timedelta(seconds=5))
    await every_read_works(store, job.id)


# Where each timestamptz column the library reads gets a value $1 (a job that a worker "w"
# holds is $2), in a row that breaks no other constraint.
_NEW_JOB = "INSERT INTO jobs (job_type, media_url, {col}) VALUES ('audio', 'u', $1)"
_HELD_JOB = "UPDATE jobs SET {col} = $1 WHERE id = $2"
TIME_COLUMNS = {
    ("jobs", "created_at"): _NEW_JOB,
    ("jobs", "updated_at"): _NEW_JOB,
    ("jobs", "started_at"): _HELD_JOB,
    ("jobs", "completed_at"): "INSERT INTO jobs (job_type, status, media_url, started_at, {col})"
    " VALUES ('audio', 'completed', 'u', now(), $1)",
    ("jobs", "locked_until"): _HELD_JOB,
    ("jobs", "heartbeat_at"): _HELD_JOB,
    ("jobs", "run_after"): _NEW_JOB,
    ("media_assets", "created_at"): "INSERT INTO media_assets (job_id, asset_type, file_path,"
    " {col}) VALUES ($2, 'frame', '/f', $1)",
    ("transcriptions", "created_at"): "INSERT INTO transcriptions (job_id, provider,"
    " text_content, {col}) VALUES ($2, 'w', 't', $1)",
    ("analysis_results", "created_at"): "INSERT INTO analysis_results (job_id, analysis_type,"
    " {col}) VALUES ($2, 'summary', $1)",
}
# Python's datetime covers 0001-01-01 to 9999-12-31; the database keeps a day's margin.
UNREADABLE = (
    "infinity",
    "-infinity",
    "33715-06-01 00:00+00",
    "9999-12-31 12:00+00",
    "0001-01-01 12:00+00",
    "2000-01-01 00:00+00 BC",
)
TABLES = ("jobs", "media_assets", "transcriptions", "analysis_results")


@pytest.mark.parametrize(("table", "column"), TIME_COLUMNS, ids=map("_".join, TIME_COLUMNS))
async def test_the_database_refuses_a_time_python_cannot_read(
    raw: asyncpg.Connection[asyncpg.Record], table: str, column: str
) -> None:
    job_id = await raw.fetchval(
        "INSERT INTO jobs (job_type, status, media_url, locked_by, started_at, locked_until,"
        " heartbeat_at) VALUES ('audio', 'processing', 'u', 'w', now(), now(), now())"
        " RETURNING id"
    )
    sql = TIME_COLUMNS[table, column].format(col=column)
    snapshot = {t: await raw.fetch(f"SELECT * FROM {t} ORDER BY id") for t in TABLES}

    for value in UNREADABLE:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await raw.execute(
                sql.replace("$1", "$1::text::timestamptz"),
                *((value, job_id) if "$2" in sql else (value,)),
            )
        assert refused.value.constraint_name == f"{table}_{column}_readable", value

    assert {t: await raw.fetch(f"SELECT * FROM {t} ORDER BY id") for t in TABLES} == snapshot
    # the bounds themselves are readable
    for value in ("0001-01-02 00:00+00", "9999-12-30 23:59:59.999999+00"):
        await raw.execute(
            sql.replace("$1", "$1::text::timestamptz"),
            *((value, job_id) if "$2" in sql else (value,)),
        )


async def test_the_lease_the_old_claim_wrote_is_refused_by_the_database(
    raw: asyncpg.Connection[asyncpg.Record],
) -> None:
    await raw.execute("INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'u')")
    before = await raw.fetch("SELECT * FROM jobs")
    # claim_jobs as it ran with lease=1e12: locked_until in the year 33715
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await raw.fetch(QUERIES["claim_jobs"].sql, "w", 1, 1e12, None)
    assert refused.value.constraint_name == "jobs_locked_until_readable"
    assert await raw.fetch("SELECT * FROM jobs") == before


async def test_migrating_repairs_rows_an_unbounded_duration_poisoned(empty_db_url: str) -> None:
    # The database as the old code left it: a job claimed with lease=1e12, a job failed with
    # retry_in=1e12, and a raw client's 'infinity' in a child row.
    dsn = Dsn(empty_db_url)
    migrate.apply(dsn, target="0003_word_timestamps")
    conn = await asyncpg.connect(empty_db_url)
    try:
        held, retried = [
            await conn.fetchval(
                "INSERT INTO jobs (job_type, status, media_url, locked_by, started_at,"
                " locked_until, heartbeat_at, attempts, run_after) VALUES ('audio', $1, 'u', $2,"
                " now(), $3::text::timestamptz, $4::text::timestamptz, 1,"
                " $5::text::timestamptz) RETURNING id",
                *row,
            )
            for row in (
                ("processing", "w", "33715-06-01 00:00+00", "now", None),
                ("pending", None, None, None, "33715-06-01 00:00+00"),
            )
        ]
        await conn.execute(
            "INSERT INTO media_assets (job_id, asset_type, file_path, created_at)"
            " VALUES ($1, 'frame', '/f', 'infinity')",
            held,
        )
    finally:
        await conn.close()

    assert migrate.apply(dsn, target="0004_bounded_times") == ["0004_bounded_times"]
    migrate.apply(dsn)  # and whatever came after it

    async with await Store.open(settings=Settings(dsn=dsn, min_size=1, max_size=2)) as store:
        for job_id in (held, retried):
            await store.jobs.get_by_id(job_id)  # readable again
        assert [j.id for j in await store.jobs.get_all()] == [retried, held]
        assert len(await store.media_assets.list_for_job(held)) == 1
        # the endless lease has expired: the job is taken back, and claimable with the other
        assert [j.id for j in await store.jobs.reclaim_expired()] == [held]
        assert {j.id for j in await store.jobs.claim("w2", limit=5)} == {held, retried}


# --- finding 4: odd arguments --------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep: {"a": {"a": ... {} ...}}."""
    return functools.reduce(lambda inner, _: {"a": inner}, range(depth - 1), {})


@dataclass(frozen=True)
class Fixture:
    """Rows the odd calls aim at: a pending job, a job "w" holds, a transcription."""

    pending: uuid.UUID
    held: uuid.UUID
    transcription: uuid.UUID


# The store untyped: these calls are what a caller without a type checker may write.
Call = Callable[[Any, Fixture], Awaitable[object]]


def _job(**fields: Any) -> dict[str, Any]:
    return {"job_type": "audio", "media_url": "https://x/a", **fields}


# (the argument the error must name, the call)
ODD_CALLS: dict[str, tuple[str, Call]] = {
    "JSON 10,000 deep": ("parameters", lambda s, f: s.jobs.create(_job(parameters=nested(10_000)))),
    "JSON one level too deep": (
        "parameters",
        lambda s, f: s.jobs.create(_job(parameters=nested(MAX_JSON_DEPTH + 1))),
    ),
    "JSON 10,000 deep in a list": (
        "result",
        lambda s, f: s.jobs.complete(
            f.held,
            "w",
            {"r": functools.reduce(lambda inner, _: [inner], range(10_000), cast(Any, []))},
        ),
    ),
    # Found by test_fuzz: pydantic's enum fallback repr()s a non-text value, and a deeply
    # nested list there raised RecursionError.
    "job_type a list 10,000 deep": (
        "job_type",
        lambda s, f: s.jobs.create(
            _job(job_type=functools.reduce(lambda inner, _: [inner], range(10_000), cast(Any, [])))
        ),
    ),
    "job_type 5": ("job_type", lambda s, f: s.jobs.create(_job(job_type=5))),
    "asset_type a list 10,000 deep": (
        "asset_type",
        lambda s, f: s.media_assets.create(
            {
                "job_id": f.pending,
                "asset_type": functools.reduce(
                    lambda inner, _: [inner], range(10_000), cast(Any, [])
                ),
                "file_path": "/a",
            }
        ),
    ),
    "lone surrogate in a JSON key": (
        "parameters",
        lambda s, f: s.jobs.create(_job(parameters={"\ud800": 1})),
    ),
    "lone surrogate in a JSON string": (
        "metadata",
        lambda s, f: s.media_assets.create(
            {
                "job_id": f.pending,
                "asset_type": "frame",
                "file_path": "/f",
                "metadata": {"k": ["ok", "\udfff"]},
            }
        ),
    ),
    "NUL in a JSON key": (
        "detailed_analysis",
        lambda s, f: s.analysis_results.create(
            {"job_id": f.pending, "analysis_type": "x", "detailed_analysis": {"a\x00": 1}}
        ),
    ),
    "JSON integer beyond 64 bits": (
        "result",
        lambda s, f: s.jobs.complete(f.held, "w", {"n": 2**64}),
    ),
    "a mapping orjson cannot encode": (
        "parameters",
        lambda s, f: s.jobs.create(_job(parameters={"m": MappingProxyType({"a": 1})})),
    ),
    "limit as a string": ("limit", lambda s, f: s.jobs.get_by_status("pending", limit="5")),
    "limit 5.5": ("limit", lambda s, f: s.jobs.get_by_status("pending", limit=5.5)),
    "limit Decimal NaN": (
        "limit",
        lambda s, f: s.jobs.get_by_status("pending", limit=Decimal("NaN")),
    ),
    "limit True": ("limit", lambda s, f: s.jobs.get_all(limit=True)),
    "offset 'x'": ("offset", lambda s, f: s.jobs.get_all(offset="x")),
    "offset beyond the SQL int": ("offset", lambda s, f: s.jobs.get_all(offset=2**31)),
    "status as a list": ("status", lambda s, f: s.jobs.get_by_status(["pending"])),
    "after=123": ("after", lambda s, f: s.jobs.list_jobs(after=123)),
    "after, a cursor of a naive time": (
        "after",
        lambda s, f: s.jobs.list_jobs(after=JobCursor(datetime(2020, 1, 1), uuid.uuid4())),
    ),
    "after, a cursor holding junk": (
        "after",
        lambda s, f: s.jobs.list_jobs(after=JobCursor(*cast(Any, (5, "x")))),
    ),
    "after, a cursor string with a surrogate": (
        "cursor",
        lambda s, f: s.jobs.list_jobs(after="\ud800"),
    ),
    "claim(w, 5)": ("job_types", lambda s, f: s.jobs.claim("w", 5)),
    "claim(w, [[]])": ("job type", lambda s, f: s.jobs.claim("w", [[]])),
    "claim, lease 10**400": ("lease", lambda s, f: s.jobs.claim("w", lease=10**400)),
    "claim, lease Decimal": ("lease", lambda s, f: s.jobs.claim("w", lease=Decimal(5))),
    "claim, lease -(10**400)": ("lease", lambda s, f: s.jobs.claim("w", lease=-(10**400))),
    "claim, limit -(10**400)": ("limit", lambda s, f: s.jobs.claim("w", limit=-(10**400))),
    "heartbeat, lease -(10**400)": (
        "lease",
        lambda s, f: s.jobs.heartbeat("w", [f.held], lease=-(10**400)),
    ),
    "claim, worker id with a lone surrogate": ("worker_id", lambda s, f: s.jobs.claim("w\ud800")),
    "claim, worker id None": ("worker_id", lambda s, f: s.jobs.claim(None)),
    "heartbeat(w, 5)": ("job_ids", lambda s, f: s.jobs.heartbeat("w", 5)),
    "heartbeat(w, one UUID)": ("job_ids", lambda s, f: s.jobs.heartbeat("w", f.held)),
    "heartbeat(w, a UUID string)": ("job_ids", lambda s, f: s.jobs.heartbeat("w", str(f.held))),
    "heartbeat(w, [junk])": ("job_ids[1]", lambda s, f: s.jobs.heartbeat("w", [f.held, "junk"])),
    "release(w, None)": ("job_ids", lambda s, f: s.jobs.release("w", None)),
    "complete_many(w, [id])": ("results", lambda s, f: s.jobs.complete_many("w", [f.held])),
    "complete_many, a junk key": ("results", lambda s, f: s.jobs.complete_many("w", {5: None})),
    "complete_many, an id twice": (
        "results",
        lambda s, f: s.jobs.complete_many("w", {f.held: None, str(f.held): None}),
    ),
    "fail(retry='no')": ("retry", lambda s, f: s.jobs.fail(f.held, "w", "e", retry="no")),
    "fail(retry_in=10**400)": (
        "retry_in",
        lambda s, f: s.jobs.fail(f.held, "w", "e", retry_in=10**400),
    ),
    "fail(retry_in=-(10**400))": (
        "retry_in",
        lambda s, f: s.jobs.fail(f.held, "w", "e", retry_in=-(10**400)),
    ),
    "fail(error=None)": ("error", lambda s, f: s.jobs.fail(f.held, "w", None)),
    "purge(-(10**400))": ("older_than", lambda s, f: s.jobs.purge(-(10**400))),
    "purge(NaN)": ("older_than", lambda s, f: s.jobs.purge(float("nan"))),
    # a cut-off before year 1, which Python cannot read (found by the fuzz: OverflowError)
    "purge(1,000,000 days)": ("older_than", lambda s, f: s.jobs.purge(timedelta(days=10**6))),
    "purge(8e10 s)": ("older_than", lambda s, f: s.jobs.purge(8e10, dry_run=True)),
    "purge(True)": ("older_than", lambda s, f: s.jobs.purge(True)),
    "purge(Decimal)": ("older_than", lambda s, f: s.jobs.purge(Decimal(30))),
    "purge(batch=-(10**400))": ("batch", lambda s, f: s.jobs.purge(0, batch=-(10**400))),
    "requeue_failed(batch=1e30)": ("batch", lambda s, f: s.jobs.requeue_failed(batch=1e30)),
    "get_by_id('abc')": ("job_id", lambda s, f: s.jobs.get_by_id("abc")),
    "get_by_id(5)": ("job_id", lambda s, f: s.jobs.get_by_id(5)),
    "get_by_id(None)": ("job_id", lambda s, f: s.jobs.get_by_id(None)),
    "delete(b'bytes')": ("job_id", lambda s, f: s.jobs.delete(f.pending.bytes)),
    "update_status(job_id=1.5)": ("job_id", lambda s, f: s.jobs.update_status(1.5, "processing")),
    "start_processing(worker_id=None)": (
        "worker_id",
        lambda s, f: s.jobs.start_processing(f.pending, worker_id=None),
    ),
    "complete('abc')": ("job_id", lambda s, f: s.jobs.complete("abc", "w")),
    "media_assets.create_many(None)": ("items", lambda s, f: s.media_assets.create_many(None)),
    "analysis_results.create_many(a dict)": (
        "items",
        lambda s, f: s.analysis_results.create_many({"job_id": f.pending}),
    ),
    "transcriptions.create_many('abc')": (
        "items",
        lambda s, f: s.transcriptions.create_many("abc"),
    ),
    "media_assets.get([])": ("row_id", lambda s, f: s.media_assets.get([])),
    "analysis_results.list_for_job(0)": ("job_id", lambda s, f: s.analysis_results.list_for_job(0)),
    "transcriptions.delete(None)": ("row_id", lambda s, f: s.transcriptions.delete(None)),
    "words_between(t, 2**2000, 3)": (
        "t0",
        lambda s, f: s.transcriptions.words_between(f.transcription, 2**2000, 3),
    ),
    "words_between(t, 0, NaN)": (
        "t1",
        lambda s, f: s.transcriptions.words_between(f.transcription, 0, float("nan")),
    ),
    "words_between(t, Decimal, 3)": (
        "t0",
        lambda s, f: s.transcriptions.words_between(f.transcription, Decimal(1), 3),
    ),
    "words('x')": ("transcription_id", lambda s, f: s.transcriptions.words("x")),
    "count_words(None)": ("transcription_id", lambda s, f: s.transcriptions.count_words(None)),
    "append_words(t, 5)": ("words", lambda s, f: s.transcriptions.append_words(f.transcription, 5)),
    "append_words(junk id, [])": (
        "transcription_id",
        lambda s, f: s.transcriptions.append_words(7, []),
    ),
    "append_words, a start of 2**2000": (
        "start",
        lambda s, f: s.transcriptions.append_words(
            f.transcription, [{"word": "a", "start": 2**2000, "end": 2**2001}]
        ),
    ),
    "append_words, a lone surrogate": (
        "word",
        lambda s, f: s.transcriptions.append_words(
            f.transcription, [{"word": "\ud800", "start": 1, "end": 2}]
        ),
    ),
    "create_streamed(data, None)": (
        "words",
        lambda s, f: s.transcriptions.create_streamed(
            {"job_id": f.pending, "provider": "p", "text_content": "t"}, None
        ),
    ),
}


@pytest.fixture(scope="module")
async def refusing(pg_server: Server, template_db: str) -> AsyncIterator[Store]:
    """One database for every odd call: each is refused and writes nothing, which the test
    checks, so they can share it (a database per case would cost most of the module's time)."""
    async with database_store(pg_server, template_db) as store:
        yield store


@pytest.fixture(scope="module")
async def rows(refusing: Store) -> Fixture:
    store = refusing
    pending = await new_job(store)
    held = await new_job(store)
    await store.jobs.start_processing(held.id, worker_id="w")
    transcription = await store.transcriptions.create(
        {
            "job_id": pending.id,
            "provider": "p",
            "text_content": "t",
            "word_timestamps": [{"word": "a", "start": 0, "end": 1}],
        }
    )
    return Fixture(pending.id, held.id, transcription.id)


@pytest.mark.parametrize(("name", "call"), ODD_CALLS.values(), ids=ODD_CALLS.keys())
async def test_an_odd_argument_is_a_validation_error_naming_it(
    refusing: Store, rows: Fixture, name: str, call: Call
) -> None:
    store = refusing
    before = await state(store)

    with pytest.raises(ValidationError) as refused:
        await call(store, rows)

    message = str(refused.value)
    assert name in message
    message.encode("utf-8")  # printable, even when the value held a lone surrogate
    assert await state(store) == before


async def test_ids_are_uuids_or_their_strings(refusing: Store, rows: Fixture) -> None:
    untyped: Any = refusing  # the annotations say UUID; a UUID's string works as well
    found = await untyped.jobs.get_by_id(str(rows.pending))
    assert found is not None and found.id == rows.pending
    assert await untyped.jobs.get_by_id(str(uuid.uuid4())) is None
    beat = await untyped.jobs.heartbeat("w", (str(rows.held), rows.held))  # one job, twice
    assert beat.extended == [rows.held] and beat.lost == []
    assert await untyped.transcriptions.count_words(str(rows.transcription)) == 1


async def test_json_exactly_as_deep_as_allowed_round_trips(refusing: Store) -> None:
    store = refusing
    deep = nested(MAX_JSON_DEPTH)
    job = await store.jobs.create(_job(parameters=deep))
    assert job.parameters == deep
    found = await store.jobs.get_by_id(job.id)
    assert found is not None and found.parameters == deep


# --- issue 20, item 8: every numeric check, every odd number --------------------------------

ODD_NUMBERS: dict[str, object] = {
    "-(10**400)": -(10**400),
    "10**400": 10**400,
    "-(2**2000)": -(2**2000),
    "-(2**63) - 1": -(2**63) - 1,
    "1e308": 1e308,
    "-1e308": -1e308,
    "NaN": float("nan"),
    "infinity": float("inf"),
    "-infinity": float("-inf"),
    "True": True,
    "False": False,
    "Decimal 5": Decimal(5),
    "Decimal NaN": Decimal("NaN"),
    "Decimal sNaN": Decimal("sNaN"),
    "Decimal -1e400": Decimal("-1e400"),
    "Fraction 1/2": Fraction(1, 2),
    "'5'": "5",
    "None": None,
    "timedelta.min": timedelta.min,
    "timedelta.max": timedelta.max,
}
NUMERIC_CHECKS: dict[str, Callable[[Any], object]] = {
    "duration": lambda value: arguments.duration("older_than", value),
    "duration(positive)": lambda value: arguments.duration("poll", value, positive=True),
    "lease": arguments.lease,
    "bounded_int": lambda value: arguments.bounded_int("limit", value, 1, 1000),
    "bounded_int(negative range)": lambda value: arguments.bounded_int("p", value, -100, 100),
    "number": lambda value: arguments.number("t0", value),
}


# What a check takes among them: numbers a double holds, for a time in seconds.
TAKEN = {("number", "-(2**63) - 1"), ("number", "1e308"), ("number", "-1e308")}


@pytest.mark.parametrize("value_name", ODD_NUMBERS)
@pytest.mark.parametrize("check_name", NUMERIC_CHECKS)
def test_every_numeric_check_refuses_odd_numbers_with_a_validation_error(
    check_name: str, value_name: str
) -> None:
    # Refused, not an OverflowError or a TypeError from a comparison or a float() inside,
    # whatever the value's sign or size; or, for the few a check takes, the float it means.
    check, value = NUMERIC_CHECKS[check_name], ODD_NUMBERS[value_name]
    if (check_name, value_name) in TAKEN:
        assert check(value) == float(cast(int | float, value))
        return
    with pytest.raises(ValidationError) as refused:
        check(value)
    str(refused.value).encode("utf-8")
    assert len(str(refused.value)) < 200  # the value is described, not printed in full


async def test_the_longest_retention_a_purge_takes_gives_a_cutoff_python_reads(
    refusing: Store,
) -> None:
    purged = await refusing.jobs.purge(MAX_RETENTION, dry_run=True)
    assert purged.cutoff.year >= 1 and purged.jobs == 0
