"""Creating jobs idempotently and in bulk: enqueue, create_many (one binary COPY, idempotency
keys). Same order as sql/enqueue.sql."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Literal, NamedTuple

import asyncpg

from media_store._compiled import compiled
from media_store.db.queries import Query, query
from media_store.errors import Conflict, DatabaseError, DuplicateJob, ValidationError
from media_store.models import arguments
from media_store.models.fields import shown
from media_store.models.inputs import JOB_KEY, JobValues, job_values
from media_store.models.rows import columns, from_row, from_wider_row, new_job, new_job_fields
from media_store.models.schemas import Job, JobCreate, KeyScope
from media_store.repositories.trace_contexts import JobTraceContexts

# Jobs a create_many takes at most.
MAX_BATCH = 10_000
# How often an idempotent creation runs its statement again when the key's holder committed
# after the statement's snapshot was taken (see enqueue_job in sql/enqueue.sql). Each retry
# needs another transaction to take or let go of the key within one statement's run: two are
# rare.
MAX_KEY_TRIES = 16
OnConflict = Literal["return", "raise"]

# The queries of sql/enqueue.sql, in that file's order.
_UUID = uuid.UUID
_JOB_COLUMNS = columns(Job)
_ENQUEUE = query(
    "enqueue_job",
    returns=[("created", bool), *_JOB_COLUMNS],
    params=(
        str,
        str,
        str | None,
        dict[str, Any],
        int,
        int,
        datetime | None,
        str | None,
        str | None,
    ),
)
_CLOCK = query("get_clock", returns=[("now", datetime)], params=())
_CREATE_KEYED = query(
    "create_keyed_jobs",
    returns=[("id", _UUID), ("created_at", datetime), ("updated_at", datetime)],
    params=(
        list[str],
        list[str],
        list[str | None],
        list[dict[str, Any]],
        list[int],
        list[int],
        list[datetime | None],
        list[str | None],
        list[str | None],
    ),
)
_KEY_HOLDERS = query("get_key_holders", returns=Job, params=(list[str],))

_MICROSECOND: Final = timedelta(microseconds=1)
_BUILD_SLICE: Final = 500  # jobs built between two yields to the event loop
# The columns create_many's COPY writes: the id and the times the database would otherwise
# choose, around JobValues.
COPY_COLUMNS: Final = (
    "id",
    "job_type",
    "media_url",
    "prompt",
    "parameters",
    "max_attempts",
    "priority",
    "run_after",
    "idempotency_key",
    "idempotency_scope",
    "created_at",
    "updated_at",
)


class Enqueued(NamedTuple):
    """What an idempotent creation did: the job, and whether this call created it (False: the
    job is the one that held the idempotency key). A named tuple rather than a frozen
    dataclass: create_many makes one an item, and a frozen dataclass's __init__ cost 10,000 of
    them 40 ms, a tenth of the whole call (measured)."""

    job: Job
    created: bool


class JobEnqueue(JobTraceContexts):
    """Jobs created once per idempotency key, and many at once."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_ENQUEUE, _CLOCK, _CREATE_KEYED, _KEY_HOLDERS)

    async def enqueue(
        self,
        data: JobCreate | Mapping[str, Any],
        *,
        on_conflict: OnConflict = "return",
        key_scope: KeyScope | str | None = None,
    ) -> Enqueued:
        """Insert a pending job unless another job holds its ``idempotency_key``.

        A key is held by one job at a time: by a job of scope ``active`` (the default) while
        it is pending or processing, by a job of scope ``forever`` as long as it exists. When
        the key is held, nothing is written and the holder is returned with ``created=False``
        (``on_conflict="return"``) or :class:`DuplicateJob` is raised (``"raise"``). Of
        concurrent calls with one key exactly one creates the job: a unique index decides,
        not this process. Without a key, the job is created (``created=True``).
        ``key_scope`` is the key's scope when ``data`` names none (its own
        ``idempotency_scope`` wins; None: ``active``). Raises :class:`ValidationError`
        before any SQL on bad input.
        """
        mode = _on_conflict(on_conflict)
        return await self._enqueue(job_values(None, data, _key_scope(key_scope)), mode)

    async def _enqueue(self, values: JobValues, mode: OnConflict) -> Enqueued:
        """Run enqueue_job for ``values`` (checked); without a key it inserts, as create_job."""
        for _ in range(MAX_KEY_TRIES):
            # No row: the holder committed after this statement's snapshot (see enqueue_job).
            row = await self._fetchrow(_ENQUEUE, *values)
            if row is not None:
                break
        else:
            raise DatabaseError(
                f"the idempotency key {shown(values[JOB_KEY])} kept changing holders"
            )
        result = Enqueued(from_wider_row(Job, row), row["created"])
        if result.created and (carrier := self._trace_carrier()) is not None:
            # Traced Store: a statement of its own, after the insert (a worker claiming the
            # job in between starts a trace of its own; create() without a key has none).
            await self._save_trace_context([result.job.id], carrier)
        if not result.created and mode == "raise":
            key = result.job.idempotency_key
            assert key is not None
            raise DuplicateJob(key, result.job.id, result.job.status.value)
        return result

    async def create_many(
        self,
        items: Sequence[JobCreate | Mapping[str, Any]],
        *,
        on_conflict: OnConflict = "return",
        key_scope: KeyScope | str | None = None,
    ) -> list[Enqueued]:
        """Insert many pending jobs in one statement, all or nothing; returns one
        :class:`Enqueued` per item, in input order.

        Every item is validated first: one bad item raises :class:`ValidationError` naming
        its index, and nothing is written. Items with an ``idempotency_key`` another job holds
        are handled as by :meth:`enqueue`: returned with ``created=False``, or with
        ``on_conflict="raise"`` :class:`DuplicateJob` naming the item's index, and nothing of
        the batch is written. Two items with one key: the first is enqueued, the later one
        returns the same job with ``created=False`` (with ``"raise"``: a
        :class:`ValidationError` before any SQL). The jobs of a batch are first in first out
        in input order (within a priority; items given one ``run_after`` are runnable at the
        same instant, and claimed in no promised order among themselves). At most
        :data:`MAX_BATCH` items.

        ``key_scope`` is the scope of every item with a key that names none: an item's own
        ``idempotency_scope`` wins, and items without a key have no scope (None: ``active``).
        """
        mode = _on_conflict(on_conflict)
        scope = _key_scope(key_scope)
        arguments.sequence("items", items, MAX_BATCH)
        valid = [job_values(index, item, scope) for index, item in enumerate(items)]
        first: dict[str, int] = {}  # key -> index of the first item with it
        copies: dict[int, int] = {}  # index of a later item -> index of the first, same key
        for index, values in enumerate(valid):
            key = values[JOB_KEY]
            if key is not None and first.setdefault(key, index) != index:
                if mode == "raise":
                    raise ValidationError(
                        f"items {first[key]} and {index} have the same idempotency_key {shown(key)}"
                    )
                copies[index] = first[key]
        if not valid:
            return []
        if not first:  # no keys: one COPY inserts every item
            return await self._traced(await self._copy_new(valid, None))
        todo = [index for index in range(len(valid)) if index not in copies]
        batch = [valid[index] for index in todo]
        keys = [values[JOB_KEY] for values in batch]
        copied: list[Enqueued] | None = None
        held = await self._fetch(_KEY_HOLDERS, [key for key in keys if key is not None])
        if held and mode == "raise":
            # Refused before anything is written: the holder of the first item whose key is
            # taken.
            index_of = {key: index for index, key in zip(todo, keys, strict=True) if key}
            holder = from_row(Job, min(held, key=lambda row: index_of[row["idempotency_key"]]))
            assert holder.idempotency_key is not None
            raise DuplicateJob(
                holder.idempotency_key,
                holder.id,
                holder.status.value,
                index_of[holder.idempotency_key],
            )
        if not held:
            # Every key is free: one COPY, in key order (bytewise: str order is code point
            # order, UTF-8's byte order), so that concurrent batches sharing keys wait for
            # each other's keys in one order and cannot deadlock. A key taken after the probe
            # makes the COPY fail on the unique index, and write nothing: then the statement
            # that handles taken keys runs.
            order = sorted(range(len(batch)), key=lambda position: keys[position] or "")
            try:
                async with self._transaction() as tx:
                    copied = await tx._copy_new(batch, order)
            except Conflict:
                copied = None
        results: dict[int, Enqueued]
        if copied is not None:
            results = dict(zip(todo, copied, strict=True))
        else:
            results = {}
            # A retry (a holder the snapshot missed) runs in the same transaction as the first
            # statement, so that the batch stays all or nothing.
            async with self._transaction() as tx:
                for _ in range(MAX_KEY_TRIES):
                    todo = await tx._insert_keyed(valid, todo, mode, results)
                    if not todo:
                        break
                else:
                    raise DatabaseError("idempotency keys of the batch kept changing holders")
        for index, source in copies.items():
            results[index] = Enqueued(results[source].job, False)
        return await self._traced([results[index] for index in range(len(valid))])

    async def _traced(self, results: list[Enqueued]) -> list[Enqueued]:
        """``results``, after keeping the current trace context for the jobs created, when
        the Store traces (a statement after the batch's: see _enqueue)."""
        carrier = self._trace_carrier()
        if carrier is not None:
            await self._save_trace_context([r.job.id for r in results if r.created], carrier)
        return results

    async def _copy_new(self, batch: list[JobValues], order: list[int] | None) -> list[Enqueued]:
        """Insert the jobs of ``batch`` (checked, with keys nobody holds) by one binary COPY,
        in ``order`` (positions in ``batch``; None: as they come), and return them as created,
        in batch order.

        Why a COPY: the rows stream to the server while the driver encodes the next ones and
        this builds each job, so the Python work overlaps the database's, and the server
        inserts without a statement's per-row executor work (10,000 jobs: 130-175 ms against
        170-220 for INSERT ... SELECT FROM unnest, measured). A COPY returns nothing, so this
        side chooses what the database otherwise would: ids are random version-4 UUIDs
        (:func:`uuid.uuid4`, as gen_random_uuid() makes them); created_at is the database's
        clock, read just before, less one microsecond per later item, so that the batch is
        first in first out in batch order whatever the clock's resolution and no job is
        created in the future; updated_at is that clock. All or nothing: one statement."""
        clock: datetime = await self._fetchval(_CLOCK)
        count = len(batch)
        done: list[Enqueued | None] = [None] * count
        last = count - 1
        ids = iter(time_ordered_ids(count, clock))

        def records() -> Iterator[tuple[Any, ...]]:
            for position in range(count) if order is None else order:
                values = batch[position]
                job_id = next(ids)  # ascending in the order the rows go in
                created_at = clock - _MICROSECOND * (last - position)
                job = new_job(new_job_fields(values, job_id, created_at, clock))
                done[position] = Enqueued(job, True)
                yield (job_id, *values, created_at, clock)

        await self._copy("jobs", records(), COPY_COLUMNS)
        return [enqueued for enqueued in done if enqueued is not None]

    async def _insert_keyed(
        self,
        valid: list[JobValues],
        todo: list[int],
        mode: OnConflict,
        results: dict[int, Enqueued],
    ) -> list[int]:
        """Run create_keyed_jobs for the items at ``todo``, filling ``results``; returns the
        items left without a row (keyed items whose holder the statement's snapshot missed)."""
        rows, fields = await self._fetch_building(_CREATE_KEYED, [valid[index] for index in todo])
        for position, job in _dated(rows, fields):
            results[todo[position]] = Enqueued(job, True)
        if len(rows) == len(todo):
            return []
        # Some keys were taken: their holders, by a statement of its own (its snapshot sees a
        # holder that committed after the insert's); an item whose holder is gone again (it
        # finished meanwhile) is left for the caller to run again.
        left = [index for index in todo if index not in results]
        by_key = {valid[index][JOB_KEY]: index for index in left}
        for row in await self._fetch(_KEY_HOLDERS, list(by_key)):
            job = from_row(Job, row)
            index = by_key[job.idempotency_key]
            if mode == "raise":
                assert job.idempotency_key is not None
                raise DuplicateJob(job.idempotency_key, job.id, job.status.value, index)
            results[index] = Enqueued(job, False)
        return [index for index in left if index not in results]

    async def _fetch_building(
        self, query: Query, batch: list[JobValues]
    ) -> tuple[list[asyncpg.Record], list[dict[str, Any]]]:
        """Run create_keyed_jobs (``query``) for ``batch`` and, while the server executes it,
        build each item's job fields as created (everything but what the database chooses,
        which :func:`_dated` fills in from its row). The statement and the Python work
        overlap: the build costs the caller no time of its own when the server takes longer
        to insert the batch (~10 us a job). The build yields to the event loop between
        slices, so the statement goes out (and, if the connection has not prepared it yet,
        its preparation's answer comes in) before most of the work."""
        statement = asyncio.ensure_future(self._fetch(query, *_columns(batch)))
        try:
            built: list[dict[str, Any]] = []
            for start in range(0, len(batch), _BUILD_SLICE):
                await asyncio.sleep(0)
                built.extend(
                    [new_job_fields(values) for values in batch[start : start + _BUILD_SLICE]]
                )
            return await statement, built
        except BaseException:
            # Cancelled (or the build failed): the statement goes too, and is waited for, so
            # that its connection is back in its pool (or its transaction) before this returns.
            statement.cancel()
            await asyncio.wait([statement])
            if not statement.cancelled():
                statement.exception()  # retrieved: its error is not the one that matters
            raise


_UUID_STATE: Final = uuid.SafeUUID.unknown
_V7: Final = (7 << 76) | (0b10 << 62)  # the version and variant bits of RFC 9562's UUIDv7
_time_ordered_ids: Final[Callable[..., Any] | None] = compiled("time_ordered_ids")
# What the compiled ids take at most: a counter of 16 bits from a start below 2**15.
_MAX_COMPILED_IDS: Final = 1 << 15


def time_ordered_ids(count: int, clock: datetime) -> list[uuid.UUID]:
    """``count`` version-7 UUIDs (RFC 9562) of the millisecond of ``clock``, ascending.

    Layout: 48 bits of Unix milliseconds, the version; then a 16-bit counter (RFC 9562's
    "fixed bit-length dedicated counter", method 1) starting at a random value below 2**15,
    so a batch of up to 32,768 ids never wraps, split around the variant bits; then 58
    random bits each. Ids of one batch ascend in the order made; those of later batches sort
    after (a later millisecond), so a B-tree on them grows at its right edge, as one on a
    sequence does. Two batches of one millisecond are still unique: 58 random bits an id.

    Each id is made as :class:`uuid.UUID` makes one from an int (its ``__init__`` sets the
    slots ``int`` and ``is_safe`` by ``object.__setattr__``), without re-checking the int:
    0.3 us an id against 1.1 for ``UUID(int=...)`` and 1.8 for :func:`uuid.uuid4` (measured).
    """
    milliseconds = int(clock.timestamp() * 1000)
    start = secrets.randbelow(1 << 15)
    noise = os.urandom(8 * count)
    if _time_ordered_ids is not None and count <= _MAX_COMPILED_IDS:
        # The same ids, each made in compiled code (~0.1 us an id).
        made_here: list[uuid.UUID] = _time_ordered_ids(
            count, milliseconds, start, noise, uuid.UUID, _UUID_STATE
        )
        return made_here
    prefix = (milliseconds << 80) | _V7
    new, set_attribute, state = uuid.UUID.__new__, object.__setattr__, _UUID_STATE
    ids = []
    for index in range(count):
        counter = start + index
        value = (
            prefix
            | (counter >> 4) << 64
            | (counter & 0xF) << 58
            | int.from_bytes(noise[8 * index : 8 * index + 8]) >> 6
        )
        made = new(uuid.UUID)
        set_attribute(made, "int", value)
        set_attribute(made, "is_safe", state)
        ids.append(made)
    return ids


def _on_conflict(value: OnConflict) -> OnConflict:
    if isinstance(value, str) and value in ("return", "raise"):
        return "raise" if value == "raise" else "return"
    raise ValidationError(f"on_conflict must be 'return' or 'raise', got {shown(value)}")


def _key_scope(value: KeyScope | str | None) -> str:
    """A call's default scope of idempotency keys, as the column takes it."""
    if value is None:
        return KeyScope.ACTIVE.value
    if isinstance(value, str) and value in _SCOPES:
        return KeyScope(value).value
    raise ValidationError(
        f"key_scope must be one of {list(_SCOPES)} (or None: active), got {shown(value)}"
    )


_SCOPES = tuple(scope.value for scope in KeyScope)


def _columns(batch: list[JobValues]) -> list[list[Any]]:
    """The parallel arrays create_keyed_jobs takes: one list a column, an empty one for a
    column of NULLs only (unnest pads a shorter array with NULLs: the driver then need not
    inspect 10,000 Nones one by one: 4-5 ms a column of 10,000, measured). The parameters'
    list goes as one JSON array (the statement's $4 is jsonb)."""
    return [
        list(column) if any(value is not None for value in column) else []
        for column in zip(*batch, strict=True)
    ]


def _dated(rows: list[asyncpg.Record], fields: list[dict[str, Any]]) -> list[tuple[int, Job]]:
    """The jobs of create_keyed_jobs' rows, each built from its item's ``fields`` (in the
    order the items were sent) and what the database chose (id, created_at, updated_at), with
    their positions. The statement dates item i (from 0) one microsecond per later item
    before its clock, which it stores in updated_at: a row tells its item whatever order rows
    come back in."""
    last = len(fields) - 1
    made = []
    for job_id, created_at, updated_at in rows:
        position = last - (updated_at - created_at) // _MICROSECOND
        item = fields[position]
        item["id"] = job_id
        item["created_at"] = created_at
        item["updated_at"] = updated_at
        made.append((position, new_job(item)))
    return made
