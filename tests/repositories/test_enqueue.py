"""The queue's enqueue side (issue 12, items 1-4, migrations/0007): bulk enqueue, idempotency
keys and their races, priorities, scheduled starts. The claim's plans with priorities and
scheduled jobs at scale: tests/repositories/test_claim_plan.py."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeAlias
from unittest import mock

import asyncpg
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store import (
    DuplicateJob,
    Enqueued,
    Job,
    JobCreate,
    JobNotFound,
    JobNotPending,
    JobStatus,
    JobType,
    KeyScope,
    Settings,
    Store,
    ValidationError,
)
from media_store.db.connections import connect
from media_store.db.queries import QUERIES
from media_store.models.inputs import job_values
from media_store.repositories import JobRepository
from media_store.repositories import enqueue as enqueue_module
from media_store.repositories.enqueue import time_ordered_ids
from tests.support.strategies import SMALL_OBJECTS

Raw: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def item(n: int | str, **extra: Any) -> dict[str, Any]:
    return {"job_type": "audio", "media_url": f"https://x/{n}", **extra}


async def count(raw: Raw) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM jobs"))


async def claim_all(store: Store) -> list[Job]:
    """Every claimable job, one claim at a time: the order the queue hands them out."""
    taken: list[Job] = []
    while batch := await store.jobs.claim("w", limit=1):
        taken.extend(batch)
    return taken


# --- bulk enqueue -----------------------------------------------------------------------------


async def test_create_many_inserts_every_item_in_input_order(store: Store, raw: Raw) -> None:
    items = [item(i, parameters={"n": i}, priority=i % 3 - 1) for i in range(500)]
    done = await store.jobs.create_many(items)

    assert [e.created for e in done] == [True] * 500
    assert [e.job.media_url for e in done] == [f"https://x/{i}" for i in range(500)]
    assert [e.job.parameters for e in done] == [{"n": i} for i in range(500)]
    assert [e.job.priority for e in done] == [i % 3 - 1 for i in range(500)]
    assert all(e.job.status is JobStatus.PENDING for e in done)
    assert len({e.job.id for e in done}) == 500
    assert await count(raw) == 500
    # Stored as returned.
    assert await store.jobs.get_by_id(done[123].job.id) == done[123].job
    # First in first out in input order within each priority, whatever the clock's resolution.
    created = [e.job.created_at for e in done]
    assert created == sorted(created) and len(set(created)) == 500
    assert created[-1] <= await raw.fetchval("SELECT clock_timestamp()")
    order = [j.media_url for j in await claim_all(store)]
    expected = [f"https://x/{i}" for p in (1, 0, -1) for i in range(500) if i % 3 - 1 == p]
    assert order == expected


@pytest.mark.parametrize("keyed", [False, True], ids=["no keys", "keys"])
async def test_create_many_returns_each_job_as_stored(store: Store, keyed: bool) -> None:
    # A created job is returned from what was sent and what the database chose: it must be
    # the job as stored, field for field (times in UTC, JSON as the database gives it back).
    paris = timezone(timedelta(hours=2))
    items = [
        item(
            i,
            prompt=None if i % 2 else f"prompt {i}",
            parameters={"n": i, "f": 1.5, "nested": {"a": [1, "x", None, True]}},
            max_attempts=1 + i % 5,
            priority=i % 7 - 3,
            run_after=None if i % 3 else datetime(2030, 1, 1, 12, i, tzinfo=paris),
            **({"idempotency_key": f"k{i}"} if keyed and i % 2 else {}),
            **({"idempotency_scope": "forever"} if keyed and i % 4 == 1 else {}),
        )
        for i in range(40)
    ]
    done = await store.jobs.create_many(items)
    for e in done:
        assert e.created
        assert await store.jobs.get_by_id(e.job.id) == e.job
        assert e.job.run_after is None or e.job.run_after.utcoffset() == timedelta(0)
        # Built without Job's validator: still a complete, frozen model of the declared types.
        assert Job.model_validate(e.job.model_dump()) == e.job
        assert e.job.model_fields_set == set(Job.model_fields)
        with pytest.raises(pydantic.ValidationError):
            e.job.priority = 1  # type: ignore[misc]
    # The job's parameters are its own: changing the caller's dict does not change the job.
    items[0]["parameters"]["n"] = -1
    assert done[0].job.parameters["n"] == 0


async def test_create_many_of_nothing_writes_nothing(store: Store, raw: Raw) -> None:
    assert await store.jobs.create_many([]) == []
    assert await count(raw) == 0


BAD_ITEMS: dict[str, dict[str, Any]] = {
    "unknown job type": item(0, job_type="podcast"),
    "priority above the range": item(0, priority=101),
    "priority below the range": item(0, priority=-101),
    "priority not an int": item(0, priority=1.5),
    "naive run_after": item(0, run_after=datetime(2030, 1, 1)),
    "run_after in seconds": item(0, run_after=3600),
    "run_after a string": item(0, run_after="2030-01-01T00:00:00Z"),
    "run_after past the readable range": item(0, run_after=datetime(9999, 12, 31, 12, tzinfo=UTC)),
    "empty key": item(0, idempotency_key=""),
    "key too long": item(0, idempotency_key="k" * 201),
    "key with NUL": item(0, idempotency_key="a\x00b"),
    "scope without a key": item(0, idempotency_scope="forever"),
    "unknown scope": item(0, idempotency_key="k", idempotency_scope="sometimes"),
}


@pytest.mark.parametrize("bad", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
async def test_a_bad_item_is_refused_before_anything_is_written(
    store: Store, raw: Raw, bad: dict[str, Any]
) -> None:
    await store.jobs.create(item("kept"))
    before = await count(raw)

    with pytest.raises(ValidationError, match="item 2") as refused:
        await store.jobs.create_many([item(1), item(2, idempotency_key="k2"), bad, item(3)])
    loc = refused.value.errors[0]["loc"]
    assert isinstance(loc, tuple) and loc[0] == 2
    with pytest.raises(ValidationError):
        await store.jobs.create(bad)
    with pytest.raises(ValidationError):
        await store.jobs.enqueue(bad)

    assert await count(raw) == before


NOT_A_TIME: dict[str, Any] = {
    "seconds as an int": 3600,
    "seconds as a float": 3600.0,
    "seconds as a string": "3600",
    "a Decimal": Decimal(3600),
    "True": True,
    "an ISO string": "2030-01-01T00:00:00+00:00",
    "a timedelta": timedelta(hours=1),
    "a date": date(2030, 1, 1),
}


@pytest.mark.parametrize("value", NOT_A_TIME.values(), ids=NOT_A_TIME.keys())
async def test_run_after_is_an_aware_datetime_and_nothing_else(
    store: Store, raw: Raw, value: Any
) -> None:
    # Every duration of the library is seconds, so run_after=3600 reads as "in an hour";
    # Pydantic read it as seconds since 1970 (1970-01-01T01:00Z), claimable at once.
    await store.jobs.create(item("kept"))
    before = await count(raw)
    modelled = JobCreate.model_construct(job_type=JobType.AUDIO, media_url="u", run_after=value)

    for job in (item(1, run_after=value), modelled):
        with pytest.raises(ValidationError, match=r"run_after: .*aware datetime") as refused:
            await store.jobs.create(job)
        assert refused.value.errors[0]["loc"] == ("run_after",)
        with pytest.raises(ValidationError, match=r"run_after: .*aware datetime"):
            await store.jobs.enqueue(job, on_conflict="raise")
        with pytest.raises(ValidationError, match=r"item 1: .*run_after: .*aware datetime"):
            await store.jobs.create_many([item(0), job, item(2)])
    with pytest.raises(pydantic.ValidationError, match="run_after"):
        JobCreate(job_type=JobType.AUDIO, media_url="u", run_after=value)

    assert await count(raw) == before


@pytest.mark.parametrize("on_conflict", ["maybe", None, 1, b"raise"])
async def test_on_conflict_is_return_or_raise(store: Store, raw: Raw, on_conflict: Any) -> None:
    with pytest.raises(ValidationError, match="on_conflict"):
        await store.jobs.enqueue(item(0, idempotency_key="k"), on_conflict=on_conflict)
    with pytest.raises(ValidationError, match="on_conflict"):
        await store.jobs.create_many([item(0)], on_conflict=on_conflict)
    assert await count(raw) == 0


async def test_create_many_refuses_more_than_the_batch_limit(store: Store, raw: Raw) -> None:
    with pytest.raises(ValidationError, match="at most 10000"):
        await store.jobs.create_many([item(i) for i in range(10_001)])
    assert await count(raw) == 0


async def test_a_failing_statement_writes_none_of_the_batch(store: Store, raw: Raw) -> None:
    # A row the database refuses (a raw client's key of another scope is not possible through
    # the model; the CHECK on priority is): every item of the statement goes with it.
    await raw.execute("ALTER TABLE jobs ADD CONSTRAINT no_z CHECK (media_url <> 'https://x/z')")
    with pytest.raises(ValidationError, match="no_z"):
        await store.jobs.create_many([item(1), item(2, idempotency_key="k"), item("z")])
    with pytest.raises(ValidationError, match="no_z"):
        await store.jobs.create_many([item(1), item(2), item("z")])
    assert await count(raw) == 0


# What a run_after is not, though Pydantic would once read most of them as seconds since 1970.
NOT_TIMES = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.integers(0, 10**10).map(str),
    st.timedeltas(),
    st.dates(),
    st.decimals(allow_nan=False),
)

JOB_ITEMS = st.fixed_dictionaries(
    {
        "job_type": st.sampled_from(["audio", "video", "document", "podcast", JobType.AUDIO]),
        "media_url": st.text(max_size=4) | st.integers(),
    },
    optional={
        "prompt": st.none() | st.text(max_size=4),
        "parameters": SMALL_OBJECTS | st.integers(),
        "max_attempts": st.integers(-1, 1001) | st.booleans() | st.just("3"),
        "priority": st.integers(-102, 102) | st.booleans() | st.floats(-1, 1) | st.just("7"),
        "run_after": st.none()
        | st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-9))]))
        | st.just("2030-01-01T00:00:00Z")
        | NOT_TIMES,
        "idempotency_key": st.none() | st.text(max_size=3) | st.text(min_size=199, max_size=201),
        "idempotency_scope": st.none() | st.sampled_from(["active", "forever", "x"]),
        "unknown": st.integers(),
    },
)


@settings(max_examples=400, deadline=None)
@given(raw=JOB_ITEMS)
def test_the_fast_check_of_plain_items_agrees_with_jobcreate(raw: dict[str, Any]) -> None:
    # create_many checks a plain dict without building a JobCreate when it can: the columns
    # it gives, or its refusal, must be JobCreate's.
    try:
        model = JobCreate.model_validate(raw)
    except pydantic.ValidationError:
        with pytest.raises(ValidationError, match="item 5"):
            job_values(5, raw)
        return
    key = model.idempotency_key
    expected = (
        model.job_type.value,
        model.media_url,
        model.prompt,
        model.parameters,
        model.max_attempts,
        model.priority,
        model.run_after,
        key,
        None if key is None else (model.idempotency_scope or KeyScope.ACTIVE).value,
    )
    got = job_values(5, raw)
    assert got == expected
    assert [type(value) for value in got] == [type(value) for value in expected]


# --- idempotency keys -------------------------------------------------------------------------


async def test_a_held_key_returns_the_holder_or_raises(store: Store, raw: Raw) -> None:
    first = await store.jobs.enqueue(item(1, idempotency_key="talk-42"))
    assert first.created and first.job.idempotency_key == "talk-42"
    assert first.job.idempotency_scope is KeyScope.ACTIVE  # the default scope

    again = await store.jobs.enqueue(item(2, idempotency_key="talk-42", priority=9))
    assert again == Enqueued(first.job, False)  # the holder as it is; nothing of item 2 stored

    with pytest.raises(DuplicateJob) as refused:
        await store.jobs.enqueue(item(3, idempotency_key="talk-42"), on_conflict="raise")
    assert (refused.value.job_id, refused.value.status) == (first.job.id, "pending")
    assert refused.value.key == "talk-42" and refused.value.index is None
    # create() creates or raises: it cannot say "not created".
    with pytest.raises(DuplicateJob):
        await store.jobs.create(item(4, idempotency_key="talk-42"))

    assert await count(raw) == 1
    # Other keys, and no key, are not affected.
    assert (await store.jobs.enqueue(item(5, idempotency_key="talk-43"))).created
    assert (await store.jobs.enqueue(item(6))).created
    assert (await store.jobs.create(item(7, idempotency_key="talk-44"))).idempotency_key
    assert await count(raw) == 4


async def test_a_calls_key_scope_applies_to_keyed_items_that_name_none(
    store: Store, raw: Raw
) -> None:
    # Precedence: the item's own idempotency_scope, then the call's key_scope, then active.
    done = await store.jobs.create_many(
        [
            item(1, idempotency_key="k1"),
            item(2, idempotency_key="k2", idempotency_scope="active"),
            item(3),
            JobCreate(job_type=JobType.AUDIO, media_url="u", idempotency_key="k4"),
        ],
        key_scope="forever",
    )
    one = await store.jobs.enqueue(item(5, idempotency_key="k5"), key_scope=KeyScope.FOREVER)
    own = await store.jobs.enqueue(
        item(6, idempotency_key="k6", idempotency_scope="active"), key_scope="forever"
    )
    plain = await store.jobs.create_many([item(7, idempotency_key="k7")])

    scopes = [e.job.idempotency_scope for e in [*done, one, own, *plain]]
    assert scopes == [
        KeyScope.FOREVER,
        KeyScope.ACTIVE,
        None,
        KeyScope.FOREVER,
        KeyScope.FOREVER,
        KeyScope.ACTIVE,
        KeyScope.ACTIVE,
    ]
    rows = await raw.fetch("SELECT idempotency_key, idempotency_scope FROM jobs")
    stored = {row["idempotency_key"]: row["idempotency_scope"] for row in rows}
    assert stored == {
        "k1": "forever",
        "k2": "active",
        None: None,
        "k4": "forever",
        "k5": "forever",
        "k6": "active",
        "k7": "active",
    }


@pytest.mark.parametrize("key_scope", ["never", "", 1, b"forever", ["forever"], True])
async def test_a_bad_key_scope_is_refused_before_anything_is_written(
    store: Store, raw: Raw, key_scope: Any
) -> None:
    with pytest.raises(ValidationError, match="key_scope"):
        await store.jobs.create_many([item(1, idempotency_key="k")], key_scope=key_scope)
    with pytest.raises(ValidationError, match="key_scope"):
        await store.jobs.enqueue(item(1, idempotency_key="k"), key_scope=key_scope)
    assert await count(raw) == 0


async def test_an_active_key_is_free_again_once_its_job_finished(store: Store) -> None:
    key = {"idempotency_key": "media-7", "idempotency_scope": "active"}
    first = (await store.jobs.enqueue(item(1, **key))).job
    [claimed] = await store.jobs.claim("w")
    assert claimed.id == first.id
    # Held while processing too.
    assert (await store.jobs.enqueue(item(2, **key))) == Enqueued(claimed, False)

    await store.jobs.complete(first.id, "w")
    second = await store.jobs.enqueue(item(3, **key))
    assert second.created and second.job.id != first.id

    # A failed job lets go of it as well; requeued, it cannot take it back from the new one.
    [claimed] = await store.jobs.claim("w")
    await store.jobs.fail(second.job.id, "w", "boom", retry=False)
    third = await store.jobs.enqueue(item(4, **key))
    assert third.created
    with pytest.raises(DuplicateJob, match="holds the idempotency key 'media-7'"):
        await store.jobs.update_status(second.job.id, JobStatus.PENDING)
    assert (await store.jobs.get_by_id(second.job.id)).status is JobStatus.FAILED  # type: ignore[union-attr]


async def test_a_forever_key_is_held_whatever_its_job_became(store: Store, raw: Raw) -> None:
    key = {"idempotency_key": "analyse:sha256:ab12", "idempotency_scope": KeyScope.FOREVER}
    first = (await store.jobs.enqueue(item(1, **key))).job
    await store.jobs.claim("w")
    done = await store.jobs.complete(first.id, "w", {"ok": True})

    again = await store.jobs.enqueue(item(2, **key))
    assert again == Enqueued(done, False)
    # One namespace for both scopes: an active-scope creation does not take it either.
    assert (await store.jobs.enqueue(item(3, idempotency_key=key["idempotency_key"]))) == again
    assert await count(raw) == 1
    # Deleting the job frees the key.
    assert await store.jobs.delete(first.id)
    assert (await store.jobs.enqueue(item(4, **key))).created


async def test_an_active_holder_blocks_a_forever_creation(store: Store) -> None:
    first = await store.jobs.enqueue(item(1, idempotency_key="k"))
    again = await store.jobs.enqueue(item(2, idempotency_key="k", idempotency_scope="forever"))
    assert again == Enqueued(first.job, False)


@pytest.fixture
async def sixteen(settings: Settings) -> AsyncIterator[list[JobRepository]]:
    """Sixteen repositories, each on a connection of its own (sixteen server backends)."""
    connections = [await connect(settings) for _ in range(16)]
    try:
        yield [JobRepository(conn) for conn in connections]
    finally:
        for conn in connections:
            await conn.close()


@pytest.mark.parametrize("scope", ["active", "forever"])
async def test_sixteen_concurrent_creates_with_one_key_make_one_job(
    sixteen: list[JobRepository], raw: Raw, scope: str
) -> None:
    for round_no in range(5):
        key = f"race-{round_no}"
        results = await asyncio.gather(
            *(
                repo.enqueue(item(f"{round_no}-{i}", idempotency_key=key, idempotency_scope=scope))
                for i, repo in enumerate(sixteen)
            )
        )
        assert sum(r.created for r in results) == 1
        [winner] = [r.job for r in results if r.created]
        assert {r.job.id for r in results} == {winner.id}
        assert await raw.fetchval("SELECT count(*) FROM jobs WHERE idempotency_key = $1", key) == 1

        # Asked to raise, the fifteen losers raise, naming the winner.
        outcomes = await asyncio.gather(
            *(
                repo.enqueue(item(i, idempotency_key=f"{key}-r"), on_conflict="raise")
                for i, repo in enumerate(sixteen)
            ),
            return_exceptions=True,
        )
        jobs = [o for o in outcomes if isinstance(o, Enqueued)]
        refusals = [o for o in outcomes if isinstance(o, DuplicateJob)]
        assert len(jobs) == 1 and len(refusals) == 15
        assert {r.job_id for r in refusals} == {jobs[0].job.id}
    assert await count(raw) == 10


async def test_sixteen_concurrent_batches_sharing_keys_make_one_job_a_key(
    sixteen: list[JobRepository], raw: Raw
) -> None:
    # Each batch: 20 keys in a rotated order (so the batches take the index's locks in
    # different orders) and one keyless job of its own.
    keys = [f"batch-key-{k}" for k in range(20)]

    def batch(i: int) -> list[dict[str, Any]]:
        mine = keys[i:] + keys[:i]
        return [item(f"{i}-{k}", idempotency_key=k) for k in mine] + [item(f"{i}-own")]

    results = await asyncio.gather(*(repo.create_many(batch(i)) for i, repo in enumerate(sixteen)))

    holders: dict[str, set[uuid.UUID]] = {}
    created = 0
    for i, done in enumerate(results):
        assert [e.job.media_url for e in done][-1] == f"https://x/{i}-own" and done[-1].created
        for e in done[:-1]:
            assert e.job.idempotency_key is not None
            holders.setdefault(e.job.idempotency_key, set()).add(e.job.id)
            created += e.created
    assert all(len(ids) == 1 for ids in holders.values()) and len(holders) == 20
    assert created == 20
    assert await count(raw) == 20 + 16


async def wait_for_lock_wait(raw: Raw) -> None:
    """Until some backend of this database waits for a lock (the statement under test)."""
    for _ in range(500):
        waiting = await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no statement waited for a lock")


async def racing(
    raw: Raw, db_url: str, setup: str, *args: Any, commit: bool
) -> Callable[[Awaitable[Any]], Awaitable[Any]]:
    """A transaction of another client that ran ``setup`` and has not ended: ``run(call)``
    starts ``call``, waits until it waits for that transaction, ends it (commit or rollback)
    and returns what the call returned."""
    other: Raw = await asyncpg.connect(db_url)
    tx = other.transaction()
    await tx.start()
    await other.execute(setup, *args)

    async def run(call: Awaitable[Any]) -> Any:
        try:
            task = asyncio.ensure_future(call)
            await wait_for_lock_wait(raw)
            await (tx.commit() if commit else tx.rollback())
            return await task
        finally:
            await other.close()

    return run


INSERT_HOLDER = (
    "INSERT INTO jobs (job_type, media_url, idempotency_key, idempotency_scope)"
    " VALUES ('audio', 'https://x/other', $1, 'active')"
)


async def test_a_holder_committed_after_the_statement_began_is_found(
    store: Store, raw: Raw, db_url: str
) -> None:
    # The other client inserts the key's holder; our statement's snapshot is taken before it
    # commits, so the conflict is seen (the index waits for the other transaction) but the
    # holder cannot be read in that snapshot: the statement runs again and finds it.
    run = await racing(raw, db_url, INSERT_HOLDER, "late", commit=True)
    result = await run(store.jobs.enqueue(item(1, idempotency_key="late")))
    holder = await raw.fetchval("SELECT id FROM jobs WHERE media_url = 'https://x/other'")
    assert result.created is False and result.job.id == holder

    # The same in a batch: the keyless item is not written twice by the second statement.
    run = await racing(raw, db_url, INSERT_HOLDER, "late-2", commit=True)
    done = await run(store.jobs.create_many([item(2), item(3, idempotency_key="late-2")]))
    holder = await raw.fetchval("SELECT id FROM jobs WHERE idempotency_key = 'late-2'")
    assert [e.created for e in done] == [True, False] and done[1].job.id == holder
    assert await count(raw) == 3  # the two holders and item 2


async def test_create_many_asked_to_raise_names_the_first_item_whose_key_is_held(
    store: Store, raw: Raw
) -> None:
    # Keys found held by the probe are refused before any insert: the first such item of the
    # batch is named, whatever order the holders come back in.
    late = (await store.jobs.enqueue(item("late", idempotency_key="z-late"))).job
    early = (await store.jobs.enqueue(item("early", idempotency_key="a-early"))).job
    batch = [
        item(1, idempotency_key="m-free"),
        item(2, idempotency_key="z-late"),
        item(3),
        item(4, idempotency_key="a-early"),
    ]
    with pytest.raises(DuplicateJob) as refused:
        await store.jobs.create_many(batch, on_conflict="raise")
    assert (refused.value.index, refused.value.job_id) == (1, late.id)
    assert await count(raw) == 2
    assert early.id != late.id


async def test_a_key_taken_during_the_copy_falls_back_to_the_conflict_statement(
    store: Store, raw: Raw, db_url: str
) -> None:
    # create_many probes the keys, finds them free and COPYs; the other client's holder (not
    # committed at the probe) makes the COPY wait on the unique index, then fail when it
    # commits. The COPY writes nothing, and the statement for taken keys returns the holder;
    # asked to raise, nothing of the batch is written.
    run = await racing(raw, db_url, INSERT_HOLDER, "mid", commit=True)
    batch = [item(1, idempotency_key="a-free"), item(2), item(3, idempotency_key="mid")]
    with pytest.raises(DuplicateJob) as refused:
        await run(store.jobs.create_many(batch, on_conflict="raise"))
    assert refused.value.index == 2
    assert await count(raw) == 1  # the holder alone

    run = await racing(raw, db_url, INSERT_HOLDER, "mid-2", commit=True)
    batch = [item(1, idempotency_key="b-free"), item(2), item(3, idempotency_key="mid-2")]
    done = await run(store.jobs.create_many(batch))
    holder = await raw.fetchval("SELECT id FROM jobs WHERE idempotency_key = 'mid-2'")
    assert [e.created for e in done] == [True, True, False] and done[2].job.id == holder
    for e in done[:2]:
        assert await store.jobs.get_by_id(e.job.id) == e.job
    assert await count(raw) == 4  # two holders, items 1 and 2


async def test_a_failed_copy_in_a_transaction_leaves_the_transaction_usable(
    store: Store, raw: Raw, db_url: str
) -> None:
    # Inside the caller's transaction the COPY runs in a savepoint: its failure (a key taken
    # meanwhile) rolls back the COPY alone, and the caller's work before and after stays.
    run = await racing(raw, db_url, INSERT_HOLDER, "tx-mid", commit=True)

    async def in_transaction() -> list[Enqueued]:
        async with store.transaction() as tx:
            await tx.jobs.create(item("before"))
            done = await tx.jobs.create_many([item(1, idempotency_key="tx-mid"), item(2)])
            await tx.jobs.create(item("after"))
        return done

    done = await run(in_transaction())
    assert [e.created for e in done] == [False, True]
    urls = {r["media_url"] for r in await raw.fetch("SELECT media_url FROM jobs")}
    assert urls == {"https://x/other", "https://x/before", "https://x/2", "https://x/after"}


async def test_created_ids_are_version_7_uuids_with_random_tails(store: Store) -> None:
    # A COPY returns nothing, so create_many chooses the ids: time-ordered (see
    # time_ordered_ids), each with 58 random bits.
    done = await store.jobs.create_many([item(i) for i in range(2000)])
    ids = [e.job.id for e in done]
    assert len(set(ids)) == 2000
    assert {i.version for i in ids} == {7} and {i.variant for i in ids} == {uuid.RFC_4122}
    # Random: every hex digit of the tail but the variant's takes many values.
    columns = [{str(i).replace("-", "")[d] for i in ids} for d in range(17, 32)]
    assert all(len(c) == 16 for c in columns)


async def test_a_holder_that_rolled_back_leaves_the_key_free(
    store: Store, raw: Raw, db_url: str
) -> None:
    run = await racing(raw, db_url, INSERT_HOLDER, "gone", commit=False)
    result = await run(store.jobs.enqueue(item(1, idempotency_key="gone")))
    assert result.created and result.job.media_url == "https://x/1"
    assert await count(raw) == 1


FINISH = (
    "UPDATE jobs SET status = 'completed', completed_at = clock_timestamp(), locked_until = NULL"
    " WHERE id = $1"
)


@pytest.mark.parametrize("finished", [True, False], ids=["finishes", "finish rolled back"])
async def test_a_holder_finishing_during_the_creation(
    store: Store, raw: Raw, db_url: str, finished: bool
) -> None:
    # The holder is processing; another client completes it while our creation runs. The index
    # makes the creation wait for that transaction: committed, the key is free and the job is
    # created; rolled back, the holder is returned.
    holder = (await store.jobs.enqueue(item(1, idempotency_key="busy"))).job
    await store.jobs.claim("w")
    run = await racing(raw, db_url, FINISH, holder.id, commit=finished)
    result = await run(store.jobs.enqueue(item(2, idempotency_key="busy")))
    if finished:
        assert result.created and result.job.id != holder.id
    else:
        assert not result.created and result.job.id == holder.id
        assert result.job.status is JobStatus.PROCESSING
    assert await count(raw) == (2 if finished else 1)


async def test_create_many_with_keys_returns_holders_in_place(store: Store, raw: Raw) -> None:
    held = (await store.jobs.enqueue(item("held", idempotency_key="a"))).job
    done = await store.jobs.create_many(
        [
            item(1, idempotency_key="b"),
            item(2, idempotency_key="a"),  # held by an existing job
            item(3),
            item(4, idempotency_key="b"),  # the same key as item 0 of this batch
            item(5, idempotency_key="c", idempotency_scope="forever"),
        ]
    )
    assert [e.created for e in done] == [True, False, True, False, True]
    assert done[1].job == held
    assert done[3].job == done[0].job
    assert done[4].job.idempotency_scope is KeyScope.FOREVER
    assert await count(raw) == 4


async def test_create_many_asked_to_raise_writes_nothing(store: Store, raw: Raw) -> None:
    held = (await store.jobs.enqueue(item("held", idempotency_key="a"))).job
    batch = [item(1), item(2, idempotency_key="x"), item(3, idempotency_key="a")]

    with pytest.raises(DuplicateJob) as refused:
        await store.jobs.create_many(batch, on_conflict="raise")
    assert (refused.value.index, refused.value.job_id, refused.value.key) == (2, held.id, "a")
    assert await count(raw) == 1

    # Two items with one key: refused before any SQL.
    with pytest.raises(ValidationError, match="items 0 and 2"):
        await store.jobs.create_many(
            [item(1, idempotency_key="y"), item(2), item(3, idempotency_key="y")],
            on_conflict="raise",
        )
    assert await count(raw) == 1

    # In a transaction, the refused batch is rolled back alone (a savepoint).
    async with store.transaction() as tx:
        await tx.jobs.create(item("before"))
        with pytest.raises(DuplicateJob):
            await tx.jobs.create_many(batch, on_conflict="raise")
        await tx.jobs.create(item("after"))
    urls = {r["media_url"] for r in await raw.fetch("SELECT media_url FROM jobs")}
    assert urls == {"https://x/held", "https://x/before", "https://x/after"}


# --- priority ---------------------------------------------------------------------------------


async def test_higher_priority_first_and_first_in_first_out_within_one(store: Store) -> None:
    priorities = [0, 5, -3, 5, 0, 100, -100, 0]
    jobs = [await store.jobs.create(item(i, priority=p)) for i, p in enumerate(priorities)]
    order = [j.id for j in await claim_all(store)]
    expected = sorted(range(len(jobs)), key=lambda i: (-priorities[i], i))
    assert order == [jobs[i].id for i in expected]


async def test_a_claim_of_many_returns_them_in_priority_order(store: Store) -> None:
    low = await store.jobs.create(item(1, job_type="video"))
    high = await store.jobs.create(item(2, job_type="video", priority=7))
    other = await store.jobs.create(item(3, job_type="audio", priority=50))
    claimed = await store.jobs.claim("w", ["video"], limit=5)  # the one-type claim
    assert [j.id for j in claimed] == [high.id, low.id]
    assert [j.id for j in await store.jobs.claim("w", ["audio", "video"])] == [other.id]


async def test_raising_the_priority_of_a_pending_job(store: Store, raw: Raw) -> None:
    jobs = [await store.jobs.create(item(i)) for i in range(3)]
    raised = await store.jobs.set_priority(jobs[2].id, 10)
    assert raised.priority == 10 and raised.updated_at > jobs[2].updated_at
    [first] = await store.jobs.claim("w")
    assert first.id == jobs[2].id

    # Not pending any more: refused, nothing changed.
    with pytest.raises(JobNotPending) as refused:
        await store.jobs.set_priority(first.id, 50)
    assert refused.value.status == "processing"
    with pytest.raises(JobNotFound):
        await store.jobs.set_priority(uuid.uuid4(), 1)
    for bad in (101, -101, True, 1.0, "5"):
        with pytest.raises(ValidationError, match="priority"):
            await store.jobs.set_priority(jobs[0].id, bad)  # type: ignore[arg-type]
    assert await raw.fetchval("SELECT priority FROM jobs WHERE id = $1", first.id) == 10
    assert await raw.fetchval("SELECT sum(priority) FROM jobs") == 10


async def test_the_database_holds_every_client_to_the_priority_range(raw: Raw) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_priority_check"):
        await raw.execute(
            "INSERT INTO jobs (job_type, media_url, priority) VALUES ('audio', 'u', 101)"
        )
    for key, scope in (("'k'", "NULL"), ("NULL", "'active'"), ("'k'", "'often'")):
        with pytest.raises(asyncpg.CheckViolationError, match="jobs_idempotency_scope_check"):
            await raw.execute(
                "INSERT INTO jobs (job_type, media_url, idempotency_key, idempotency_scope)"
                f" VALUES ('audio', 'u', {key}, {scope})"
            )
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_idempotency_key_check"):
        await raw.execute(
            "INSERT INTO jobs (job_type, media_url, idempotency_key, idempotency_scope)"
            " VALUES ('audio', 'u', '', 'active')"
        )
    assert await count(raw) == 0


# --- scheduled start --------------------------------------------------------------------------


async def test_a_scheduled_job_is_not_claimed_before_its_start(store: Store, raw: Raw) -> None:
    now: datetime = await raw.fetchval("SELECT clock_timestamp()")
    start = now + timedelta(seconds=0.5)
    scheduled = await store.jobs.create(item("later", run_after=start, priority=100))
    tomorrow = await store.jobs.create(item("tomorrow", run_after=now + timedelta(days=1)))
    assert scheduled.run_after == start
    plain = await store.jobs.create(item("now"))

    # The plain job is claimed; the scheduled ones are not, whatever their priority.
    assert [j.id for j in await store.jobs.claim("w", limit=10)] == [plain.id]
    claimed: list[Job] = []
    while not claimed:
        claimed = await store.jobs.claim("w", limit=10)
        if not claimed:
            await asyncio.sleep(0.05)
    assert [j.id for j in claimed] == [scheduled.id]
    assert claimed[0].started_at is not None and claimed[0].started_at >= start
    assert await store.jobs.claim("w", limit=10) == []
    assert (await store.jobs.get_by_id(tomorrow.id)).status is JobStatus.PENDING  # type: ignore[union-attr]


async def test_a_job_scheduled_in_the_past_queues_at_its_start(store: Store, raw: Raw) -> None:
    # First in first out by the time a job became runnable: one scheduled for an hour ago
    # goes before jobs created since.
    now: datetime = await raw.fetchval("SELECT clock_timestamp()")
    fresh = await store.jobs.create(item("fresh"))
    old = await store.jobs.create(item("old", run_after=now - timedelta(hours=1)))
    assert [j.id for j in await claim_all(store)] == [old.id, fresh.id]


async def test_a_retry_backoff_queues_the_job_at_its_end(store: Store, raw: Raw) -> None:
    first, second = [await store.jobs.create(item(i)) for i in range(2)]
    await store.jobs.claim("w")
    await store.jobs.fail(first.id, "w", "rate limited", retry_in=0)
    # Retried at once, it queues behind the jobs already waiting (not ahead of them, as its
    # creation time alone would put it): a failing job cannot starve the others.
    assert [j.id for j in await claim_all(store)] == [second.id, first.id]


async def test_create_many_schedules_each_item(store: Store, raw: Raw) -> None:
    now: datetime = await raw.fetchval("SELECT clock_timestamp()")
    done = await store.jobs.create_many(
        [item(1, run_after=now + timedelta(hours=1)), item(2), item(3, run_after=now)]
    )
    assert [e.job.run_after for e in done] == [now + timedelta(hours=1), None, now]
    assert [j.id for j in await claim_all(store)] == [done[2].job.id, done[1].job.id]


# --- listing by key ---------------------------------------------------------------------------


async def test_list_by_key_pages_every_job_that_had_the_key(store: Store, raw: Raw) -> None:
    made = []
    for n in range(5):  # an active key: each job finishes before the next takes the key
        job = await store.jobs.create(item(n, idempotency_key="talk"))
        await store.jobs.cancel(job.id)
        made.append(job.id)
    held = await store.jobs.create(item("held", idempotency_key="talk"))
    made.append(held.id)
    await store.jobs.create_many([item(f"o{n}", idempotency_key=f"other {n}") for n in range(3)])
    await store.jobs.create_many([item(f"u{n}") for n in range(3)])

    seen: list[uuid.UUID] = []
    page = await store.jobs.list_jobs(limit=4, key="talk")
    seen += [j.id for j in page.jobs]
    assert page.next is not None
    page = await store.jobs.list_jobs(page.next, limit=4, key="talk")
    seen += [j.id for j in page.jobs]
    cancelled = await store.jobs.list_jobs(key="talk", status="cancelled", job_type="audio")

    assert seen == made[::-1] and page.next is None  # newest first, each once
    assert [j.id for j in cancelled.jobs] == made[-2::-1]
    assert (await store.jobs.list_jobs(key="nobody's")).jobs == []


async def test_list_by_key_returns_every_job_of_the_key_in_order(store: Store, raw: Raw) -> None:
    # Each keyed job is in one of two indexes (migrations/0012): the holder in the unique one
    # (active and pending or processing, or forever whatever its status), the finished jobs
    # of an active key in jobs_key_created_at_idx. The listing gives both, in one order,
    # wherever the holder falls among the others (a requeued job holds from the middle).
    at = "timestamptz '2026-01-01' + interval '1 second' * "
    rows = [  # key, its n-th job (the order created), status, type, scope
        ("talk", 1, "completed", "audio", "active"),
        ("talk", 2, "failed", "video", "active"),
        ("talk", 3, "cancelled", "audio", "active"),
        ("talk", 4, "completed", "audio", "active"),
        ("talk", 5, "completed", "video", "active"),
        ("once", 1, "completed", "audio", "active"),
        ("once", 2, "failed", "audio", "active"),
        ("once", 3, "completed", "video", "forever"),
        ("once", 4, "cancelled", "audio", "active"),
        ("solo", 1, "pending", "audio", "forever"),
        ("free", 1, "failed", "audio", "active"),
    ]
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, status, created_at, completed_at,"
        " idempotency_key, idempotency_scope)"
        f" SELECT t, 'https://x/' || k || n, s, {at} n,"
        f" CASE WHEN s <> 'pending' THEN {at} n END, k, scope"
        " FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])"
        " AS v (k, n, s, t, scope)",
        *map(list, zip(*rows, strict=True)),
    )
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, status, created_at, started_at, locked_by,"
        f" locked_until, idempotency_key, idempotency_scope) VALUES ('audio', 'https://x/busy',"
        f" 'processing', {at} 7, {at} 7, 'w', now() + interval '1 hour', 'busy', 'active')"
    )
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, status, created_at, completed_at,"
        f" idempotency_key, idempotency_scope) VALUES ('audio', 'https://x/busy0', 'completed',"
        f" {at} 8, {at} 8, 'busy', 'active')"
    )
    requeued = await raw.fetchval("SELECT id FROM jobs WHERE media_url = 'https://x/talk2'")
    await store.jobs.requeue(requeued)  # holds "talk" now, older than three finished jobs

    for key in ("talk", "once", "solo", "busy", "free"):
        for status, kind in [(None, None), ("completed", None), (None, "audio"), ("pending", None)]:
            expected = [
                r["id"]
                for r in await raw.fetch(
                    "SELECT id FROM jobs WHERE idempotency_key = $1"
                    " AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR job_type = $3)"
                    " ORDER BY created_at DESC, id DESC",
                    key,
                    status,
                    kind,
                )
            ]
            for limit in (1, 2, 100):
                seen: list[uuid.UUID] = []
                page = await store.jobs.list_jobs(
                    limit=limit, key=key, status=status, job_type=kind
                )
                seen += [j.id for j in page.jobs]
                while page.next is not None:
                    page = await store.jobs.list_jobs(
                        page.next, limit=limit, key=key, status=status, job_type=kind
                    )
                    seen += [j.id for j in page.jobs]
                assert seen == expected, (key, status, kind, limit)
    talk = [j.status.value for j in (await store.jobs.list_jobs(key="talk")).jobs]
    assert talk == ["completed", "completed", "cancelled", "pending", "completed"]
    once = [j.idempotency_scope for j in (await store.jobs.list_jobs(key="once")).jobs]
    assert once == ["active", "forever", "active", "active"]


def plan_nodes(plan: dict[str, Any], parent: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every node of a plan in EXPLAIN (FORMAT JSON) form with its parent's type, root first."""
    nodes = [(parent, plan)]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child, plan["Node Type"]))
    return nodes


async def test_list_by_key_reads_only_its_two_indexes_in_every_table_state(
    store: Store, raw: Raw
) -> None:
    # The holder by one probe of the unique index, the finished jobs by the key's range of
    # jobs_key_created_at_idx, stopped at the page: never a scan of the table or a bitmap of
    # the key's jobs, analyzed or not, custom or generic plan. A sort is allowed above them
    # only: it sorts at most the page and the holder.
    await raw.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, status, completed_at, idempotency_key,"
        " idempotency_scope, created_at)"
        " SELECT 'audio', 'u' || g, 'completed', now(), 'k' || g % 2000, 'active',"
        " now() - g * interval '1 second' FROM generate_series(1, 200000) AS g"
    )
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, idempotency_key, idempotency_scope)"
        " SELECT 'audio', 'h' || g, 'k' || g, 'active' FROM generate_series(0, 1999, 2) AS g"
    )
    sql = QUERIES["list_jobs_with_key"].sql
    for state in ("never analyzed", "analyzed"):
        if state == "analyzed":
            await raw.execute("ANALYZE jobs")
        assert await raw.fetchval(
            "SELECT (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) = $1"
            " FROM pg_stat_user_tables WHERE relname = 'jobs'",
            state == "analyzed",
        )
        for mode in ("auto", "force_generic_plan"):
            await raw.execute(f"SET plan_cache_mode = {mode}")
            await raw.execute(f"PREPARE by_key AS {sql}")
            for args in (
                "'k10', NULL, NULL, 'infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 50",
                "'k10', 'completed', 'audio', now() - interval '1 day', gen_random_uuid(), 100",
            ):
                text = await raw.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE by_key({args})")
                nodes = plan_nodes(json.loads(text)[0]["Plan"])
                where = (state, mode, args, [n["Node Type"] for _, n in nodes])
                kinds = {n["Node Type"] for _, n in nodes}
                assert not kinds & {"Seq Scan", "Bitmap Heap Scan", "Incremental Sort"}, where
                scans = {
                    n["Index Name"]: (parent, n["Node Type"])
                    for parent, n in nodes
                    if n.get("Relation Name") == "jobs"
                }
                assert scans.keys() == {"jobs_idempotency_key_idx", "jobs_key_created_at_idx"}, (
                    where
                )
                # the holder: merged or sorted with the page as the planner likes (one row)
                assert scans["jobs_idempotency_key_idx"][1] == "Index Scan", where
                assert scans["jobs_key_created_at_idx"] == ("Limit", "Index Scan"), where
            await raw.execute("DEALLOCATE by_key")
    assert len((await store.jobs.list_jobs(key="k10", limit=1000)).jobs) == 101


@pytest.mark.parametrize("key", ["", "x" * 201, 5, "a\x00b", None.__class__])
async def test_list_by_a_bad_key_is_refused_before_sql(store: Store, raw: Raw, key: Any) -> None:
    before = await count(raw)
    with pytest.raises(ValidationError, match="key"):
        await store.jobs.list_jobs(key=key)
    assert await count(raw) == before


@given(st.integers(1, 2_000), st.datetimes(min_value=datetime(1990, 1, 1), timezones=st.just(UTC)))
@settings(max_examples=50, deadline=None)
def test_time_ordered_ids_are_version_7_ascending_and_of_the_clock(
    count: int, clock: datetime
) -> None:
    ids = time_ordered_ids(count, clock)
    assert len(set(ids)) == count and ids == sorted(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(uuid.UUID(str(i)) == i and hash(i) == hash(uuid.UUID(str(i))) for i in ids[:5])
    assert {i.int >> 80 for i in ids} == {int(clock.timestamp() * 1000)}


@given(
    st.integers(0, 3_000),
    st.datetimes(min_value=datetime(1990, 1, 1), timezones=st.just(UTC)),
    st.integers(0, (1 << 15) - 1),
    st.randoms(use_true_random=False),
)
@settings(max_examples=50, deadline=None)
def test_the_compiled_ids_are_the_python_ones(
    count: int, clock: datetime, start: int, rng: Any
) -> None:
    """The compiled time_ordered_ids (media_store/_speedups.c) makes, from the same
    millisecond, counter start and random bytes, the ids of the Python original."""
    if enqueue_module._time_ordered_ids is None:
        pytest.skip("media_store._speedups is not compiled in this install")
    noise = rng.randbytes(8 * count)
    made: dict[str, list[uuid.UUID]] = {}
    for way in ("compiled", "python"):
        with (
            mock.patch.object(secrets, "randbelow", return_value=start),
            mock.patch.object(os, "urandom", return_value=noise),
            mock.patch.object(
                enqueue_module,
                "_time_ordered_ids",
                None if way == "python" else enqueue_module._time_ordered_ids,
            ),
        ):
            made[way] = time_ordered_ids(count, clock)
    assert [i.int for i in made["compiled"]] == [i.int for i in made["python"]]
    unknown = uuid.SafeUUID.unknown
    assert all(type(i) is uuid.UUID and i.is_safe is unknown for i in made["compiled"])
    assert made["compiled"] == made["python"]


async def test_create_many_ids_ascend_in_the_order_the_jobs_go_in(store: Store, raw: Raw) -> None:
    # The primary key takes a batch at its right edge: ids of a later batch sort after.
    first = await store.jobs.create_many(
        [{"job_type": "audio", "media_url": f"u{i}"} for i in range(50)]
    )
    later = await store.jobs.create_many(
        [{"job_type": "audio", "media_url": f"v{i}"} for i in range(50)]
    )
    ids = [e.job.id for e in first + later]
    assert ids == sorted(ids) and all(i.version == 7 for i in ids)
    stored = await raw.fetch("SELECT id FROM jobs WHERE id = ANY($1::uuid[]) ORDER BY id", ids)
    assert [row["id"] for row in stored] == ids
