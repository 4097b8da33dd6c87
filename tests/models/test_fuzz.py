"""Property-based fuzzing of every public call of the four repositories (issue 9).

For each call, hypothesis generates arguments that mix valid values with wrong types and edge
values: huge ints, NaN, infinities, Decimals, bools, lone surrogates, NUL, JSON nested far too
deep, SQL-injection strings. The property, checked on a real database: the call either
succeeds or raises a :class:`media_store.MediaStoreError` whose message can be printed, and a
call that raised changed no row of any table (row counts and row versions before and after).

One database serves the whole module (created from the migrated template, dropped at the
end), so that thousands of examples fit in well under a minute; rows the examples need (a job
held by worker "w", a fresh pending job, a fresh transcription) are made per example, before
the state is taken. The number of examples run is printed at the end of the module.
"""

from __future__ import annotations

import collections
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_store import MediaStoreError, Store
from media_store.models.fields import MAX_JSON_DEPTH
from media_store.repositories.jobs import JobCursor
from tests.models.test_arguments import State, database_store, nested, state
from tests.support.harness import Server

# Examples per call: 41 calls, so 6,150 examples a run (MEDIA_STORE_FUZZ_EXAMPLES: more for
# a longer hunt, fewer for a quick look).
EXAMPLES = int(os.environ.get("MEDIA_STORE_FUZZ_EXAMPLES", "150"))

# --- references to rows, resolved when an example runs ------------------------------------


@dataclass(frozen=True)
class Ref:
    """A row of the fuzz database, by role: ``job`` (made pending at the start), ``held`` (a job
    worker "w" holds, made for the example), ``fresh`` (a pending job made for the example),
    ``transcription``, ``asset`` and ``result`` (made at the start, on ``job``), and
    ``fresh_transcription``, ``fresh_asset`` and ``fresh_result`` (made for the example, each
    on a job of its own: what the delete calls aim at, so that the seeded rows stay)."""

    role: str


@dataclass
class Rows:
    """The module's rows by role, and the ones one example made."""

    store: Store
    seeded: dict[str, uuid.UUID]
    made: dict[str, uuid.UUID] = field(default_factory=dict)

    async def id(self, role: str) -> uuid.UUID:
        if role in self.seeded:
            return self.seeded[role]
        if role not in self.made:
            self.made[role] = await self._make(role)
        return self.made[role]

    async def _make(self, role: str) -> uuid.UUID:
        jobs = self.store.jobs
        job = await jobs.create({"job_type": "audio", "media_url": "https://x/fresh"})
        if role == "held":
            await jobs.start_processing(job.id, worker_id="w")
        elif role == "fresh_transcription":
            transcription = await self.store.transcriptions.create(
                {"job_id": job.id, "provider": "p", "text_content": "t", "word_timestamps": []}
            )
            return transcription.id
        elif role == "fresh_asset":
            asset = await self.store.media_assets.create(
                {"job_id": job.id, "asset_type": "frame", "file_path": "/f"}
            )
            return asset.id
        elif role == "fresh_result":
            result = await self.store.analysis_results.create(
                {"job_id": job.id, "analysis_type": "s"}
            )
            return result.id
        return job.id

    async def resolve(self, value: Any, depth: int = 0) -> Any:
        """``value`` with every :class:`Ref` in its first two levels replaced by its row's id
        (deeper levels are generated JSON, left as they are)."""
        if isinstance(value, Ref):
            return await self.id(value.role)
        if depth >= 2:
            return value
        if isinstance(value, dict):
            return {
                await self.resolve(k, depth + 1): await self.resolve(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            items = [await self.resolve(item, depth + 1) for item in value]
            return items if isinstance(value, list) else tuple(items)
        return value


# --- strategies ------------------------------------------------------------------------------

INJECTIONS = (
    "'; DROP TABLE jobs; --",
    "' OR '1'='1",
    "$1",
    "$2::text",
    "\\",
    "%s",
    '"; SELECT pg_sleep(10); --',
    "pending' OR status <> 'pending",
    "audio'); DELETE FROM jobs; --",
    "{}",
    "null",
    "NaN",
    "Infinity",
)


# Each strategy below is wrapped in st.deferred of a named function: its repr, which hypothesis
# builds for messages, is then the function's name instead of pages of nested one_of().


def _deep() -> st.SearchStrategy[Any]:
    return st.sampled_from([MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 255, 10_000]).map(nested)


def _huge_ints() -> st.SearchStrategy[int]:
    # Both signs: beyond a double's range below as well as above (-(10**400) made float()
    # raise OverflowError where only the upper bound was checked first: issue 20, item 8).
    large = [2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 2**1024, 2**2000, 10**400]
    return st.sampled_from(large + [-n for n in large] + [-(2**31) - 1, -(2**63) - 1])


def _text() -> st.SearchStrategy[str]:
    """Short text with NUL, lone surrogates and quotes mixed in, or an injection attempt."""
    odd = st.sampled_from("\x00\ud800\udfff'\"\\;$%")
    return st.text(st.characters() | odd, max_size=12) | st.sampled_from(INJECTIONS)


def _numbers() -> st.SearchStrategy[Any]:
    # floats include NaN and both infinities, decimals NaN, sNaN and infinities
    return st.one_of(st.integers(), HUGE_INTS, st.floats(), st.decimals(), st.fractions())


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        NUMBERS,
        TEXT,
        st.binary(max_size=8),
        st.uuids(),
        st.datetimes(timezones=st.none() | st.just(UTC)),
        st.timedeltas(),
        st.just(object()),
    )


def _json_ish() -> st.SearchStrategy[Any]:
    """JSON-shaped values of any scalars, non-string keys included."""
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(TEXT | st.integers() | st.none(), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _junk() -> st.SearchStrategy[Any]:
    """A value of any of the wrong kinds."""
    return st.one_of(
        SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=2), DEEP
    )


def _json_object() -> st.SearchStrategy[Any]:
    """A JSON object: valid half the time, else holding odd values or nested too deep."""
    valid = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    )
    objects = st.dictionaries(st.text(max_size=5), valid, max_size=3)
    return pick(objects, objects, st.dictionaries(TEXT, JSON_ISH, max_size=3), DEEP)


DEEP = st.deferred(_deep)
HUGE_INTS = st.deferred(_huge_ints)
TEXT = st.deferred(_text)
NUMBERS = st.deferred(_numbers)
SCALARS = st.deferred(_scalars)
JSON_ISH = st.deferred(_json_ish)
JUNK = st.deferred(_junk)
JSON_OBJECT = st.deferred(_json_object)


def pick(*choices: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each about as often as it is listed. (st.one_of would not weigh
    so: hypothesis folds repeated branches into one.)"""
    return st.sampled_from(range(len(choices))).flatmap(lambda i: choices[i])


def either(
    valid: st.SearchStrategy[Any], junk: st.SearchStrategy[Any] = JUNK
) -> st.SearchStrategy[Any]:
    """A valid value about three times in four, junk otherwise."""
    return pick(valid, valid, valid, junk)


def ids(*roles: str) -> st.SearchStrategy[Any]:
    """An id argument: a row of one of ``roles``, a random UUID (or its string), or junk."""
    rows = st.sampled_from(roles).map(Ref)
    return either(pick(rows, rows, st.uuids(), st.uuids().map(str)))


def hashable_ids(*roles: str) -> st.SearchStrategy[Any]:
    """:func:`ids` that can be dict keys (a signalling NaN Decimal cannot be hashed)."""
    rows = st.sampled_from(roles).map(Ref)
    junk = SCALARS.filter(lambda value: not (isinstance(value, Decimal) and value.is_snan()))
    return either(pick(rows, rows, st.uuids(), st.uuids().map(str)), junk)


def record(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """A create-dict, each field junk one time in eight (so that a good share of the dicts
    is valid), sometimes with an unknown key; or junk."""

    def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return pick(*[valid] * 7, JUNK)

    return either(
        st.fixed_dictionaries(
            {k: field(v) for k, v in required.items()},
            optional={**{k: field(v) for k, v in optional.items()}, "unknown": JUNK},
        )
    )


# Text that is mostly valid, and odd (NUL, lone surrogates, injections) one time in three.
SOME_TEXT = pick(st.text(max_size=12), st.text(max_size=12), TEXT)

STATUSES = st.sampled_from(["pending", "processing", "completed", "failed"])
JOB_TYPES = st.sampled_from(["audio", "video", "document"])
LIMITS = either(pick(st.integers(-2, 12_000), st.integers(-2, 12_000), HUGE_INTS))
_SPANS = (
    st.floats(0, 600)
    | st.integers(0, 600)
    | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=8))
    | st.floats(0, 1e13)
    | st.integers(-1, 10**14)
)
# Huge ints of either sign a good share of the time (one in four), not only when junk is drawn.
DURATIONS = either(pick(_SPANS, _SPANS, HUGE_INTS))
WORKERS = either(
    st.just("w") | st.just("w") | st.text(max_size=3) | st.text(min_size=199, max_size=202)
)
FLAGS = either(st.booleans())
TIMES = either(st.floats(-10, 1e6) | st.integers(-10, 10**6))

WORD = either(
    st.fixed_dictionaries(
        {"word": either(st.text(max_size=5)), "start": TIMES, "end": TIMES},
        optional={"confidence": either(st.floats(0, 1)), "speaker": either(st.text(max_size=51))},
    )
)


@st.composite
def valid_words(draw: st.DrawFn) -> list[dict[str, Any]]:
    starts = sorted(draw(st.lists(st.floats(0, 1e5), max_size=4)))
    return [
        {"word": draw(st.text(max_size=5)), "start": s, "end": s + draw(st.floats(0, 10))}
        for s in starts
    ]


WORDS = st.one_of(valid_words(), st.lists(WORD, max_size=4), JUNK)

JOB = record(
    {"job_type": JOB_TYPES, "media_url": SOME_TEXT},
    {
        "prompt": SOME_TEXT,
        "parameters": JSON_OBJECT,
        "max_attempts": st.integers(-1, 1001),
        "priority": st.integers(-101, 101),
        "run_after": st.datetimes(
            timezones=st.sampled_from(
                [None, UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]
            )
        ),
        "idempotency_key": st.sampled_from(["k1", "k2", ""]) | SOME_TEXT,
        "idempotency_scope": st.sampled_from(["active", "forever", "never"]),
    },
)
ASSET = record(
    {
        "job_id": ids("job"),
        "asset_type": st.sampled_from(["original", "frame"]),
        "file_path": SOME_TEXT,
    },
    {
        "file_size_bytes": st.integers(-1, 2**63) | HUGE_INTS,
        "mime_type": st.text(max_size=101),
        "metadata": JSON_OBJECT,
    },
)
TRANSCRIPTION = record(
    {"job_id": ids("job"), "provider": st.text(max_size=51), "text_content": SOME_TEXT},
    {
        "language": st.text(max_size=11),
        "confidence_score": st.floats(0, 1) | st.floats(),
        "word_timestamps": WORDS,
        "metadata": JSON_OBJECT,
    },
)
RESULT = record(
    {"job_id": ids("job"), "analysis_type": st.text(max_size=51)},
    {
        "summary": SOME_TEXT,
        "detailed_analysis": JSON_OBJECT | st.none(),
        "confidence_score": st.floats(0, 1) | st.floats(),
        "model_used": st.text(max_size=101),
        "prompt_used": SOME_TEXT,
        "input_tokens": st.integers(-1, 2**31) | HUGE_INTS,
        "output_tokens": st.integers(-1, 2**31),
    },
)
CURSORS = st.one_of(
    st.none(),
    TEXT,
    st.builds(JobCursor, either(st.datetimes(timezones=st.just(UTC))), either(st.uuids())),
    JUNK,
)
ID_LISTS = either(st.lists(ids("held", "job", "fresh"), max_size=4) | st.tuples(ids("held")))


def batch(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return either(st.lists(item, max_size=3))


# --- the calls -------------------------------------------------------------------------------

Call = Callable[[Any, tuple[Any, ...]], Awaitable[object]]


def method(path: str) -> Call:
    """``store.<repository>.<method>(*args)``, the store untyped (any argument may come)."""
    repository, name = path.split(".")

    def call(store: Any, args: tuple[Any, ...]) -> Awaitable[object]:
        return getattr(getattr(store, repository), name)(*args)  # type: ignore[no-any-return]

    return call


def keywords(path: str, *names: str) -> Call:
    """As :func:`method`, the last ``len(names)`` arguments passed by keyword."""
    repository, name = path.split(".")

    def call(store: Any, args: tuple[Any, ...]) -> Awaitable[object]:
        positional, named = args[: len(args) - len(names)], args[len(args) - len(names) :]
        bound = getattr(getattr(store, repository), name)
        return bound(*positional, **dict(zip(names, named, strict=True)))  # type: ignore[no-any-return]

    return call


CALLS: dict[str, tuple[Call, st.SearchStrategy[tuple[Any, ...]]]] = {
    # jobs
    "jobs.create": (method("jobs.create"), st.tuples(JOB)),
    "jobs.get_by_id": (method("jobs.get_by_id"), st.tuples(ids("job", "held"))),
    "jobs.get_by_status": (method("jobs.get_by_status"), st.tuples(either(STATUSES), LIMITS)),
    "jobs.get_all": (method("jobs.get_all"), st.tuples(LIMITS, either(st.integers(-1, 2**32)))),
    "jobs.list_jobs": (method("jobs.list_jobs"), st.tuples(CURSORS, LIMITS)),
    "jobs.update_status": (
        keywords("jobs.update_status", "error", "result", "processing_time_ms"),
        st.tuples(
            ids("fresh", "held", "job"),
            either(STATUSES),
            either(TEXT | st.none()),
            either(JSON_OBJECT | st.none()),
            either(st.integers(-1, 2**31) | st.none()),
        ),
    ),
    "jobs.start_processing": (
        keywords("jobs.start_processing", "worker_id", "lease"),
        st.tuples(ids("fresh", "job"), either(st.just("")) | WORKERS, DURATIONS | st.none()),
    ),
    "jobs.enqueue": (
        keywords("jobs.enqueue", "on_conflict"),
        st.tuples(JOB, either(st.sampled_from(["return", "raise"]))),
    ),
    "jobs.create_many": (
        keywords("jobs.create_many", "on_conflict"),
        st.tuples(batch(JOB), either(st.sampled_from(["return", "raise"]))),
    ),
    "jobs.set_priority": (
        method("jobs.set_priority"),
        st.tuples(ids("fresh", "held", "job"), either(st.integers(-101, 101))),
    ),
    "jobs.delete": (method("jobs.delete"), st.tuples(ids("fresh"))),
    "jobs.claim": (
        keywords("jobs.claim", "limit", "lease"),
        st.tuples(
            WORKERS,
            st.none() | either(JOB_TYPES | st.lists(either(JOB_TYPES), max_size=3)),
            either(st.integers(-1, 1001)),
            DURATIONS,
        ),
    ),
    "jobs.heartbeat": (
        keywords("jobs.heartbeat", "lease"),
        st.tuples(WORKERS, ID_LISTS, DURATIONS),
    ),
    "jobs.complete": (
        method("jobs.complete"),
        st.tuples(ids("held"), WORKERS, either(JSON_OBJECT | st.none())),
    ),
    "jobs.complete_many": (
        method("jobs.complete_many"),
        st.tuples(
            WORKERS,
            either(st.dictionaries(hashable_ids("held", "job"), JSON_OBJECT | st.none() | JUNK)),
        ),
    ),
    "jobs.fail": (
        keywords("jobs.fail", "retry", "retry_in"),
        st.tuples(ids("held"), WORKERS, either(TEXT), FLAGS, DURATIONS | st.none()),
    ),
    "jobs.release": (method("jobs.release"), st.tuples(WORKERS, ID_LISTS)),
}
for repository, item in (
    ("media_assets", ASSET),
    ("analysis_results", RESULT),
    ("transcriptions", TRANSCRIPTION),
):
    role = {"media_assets": "asset", "analysis_results": "result"}.get(repository, "transcription")
    CALLS |= {
        f"{repository}.create": (method(f"{repository}.create"), st.tuples(item)),
        f"{repository}.create_many": (method(f"{repository}.create_many"), st.tuples(batch(item))),
        f"{repository}.get": (method(f"{repository}.get"), st.tuples(ids(role))),
        f"{repository}.list_for_job": (method(f"{repository}.list_for_job"), st.tuples(ids("job"))),
        f"{repository}.delete": (method(f"{repository}.delete"), st.tuples(ids(f"fresh_{role}"))),
    }
TRANSCRIPTIONS = ("transcription", "fresh_transcription")
CALLS |= {
    "transcriptions.create_streamed": (
        method("transcriptions.create_streamed"),
        st.tuples(TRANSCRIPTION, WORDS | st.lists(WORD, max_size=4).map(iter)),
    ),
    "transcriptions.append_words": (
        method("transcriptions.append_words"),
        st.tuples(ids(*TRANSCRIPTIONS), WORDS),
    ),
    "transcriptions.words": (method("transcriptions.words"), st.tuples(ids(*TRANSCRIPTIONS))),
    "transcriptions.words_between": (
        method("transcriptions.words_between"),
        st.tuples(ids(*TRANSCRIPTIONS), TIMES, TIMES),
    ),
    "transcriptions.count_words": (
        method("transcriptions.count_words"),
        st.tuples(ids(*TRANSCRIPTIONS)),
    ),
}

# An operator's calls last: a purge deletes the finished jobs the calls before it made (and
# may take the seeded job with its outputs, had an update finished it).
CALLS |= {
    "jobs.cancel": (method("jobs.cancel"), st.tuples(ids("fresh", "held"))),
    "jobs.requeue": (method("jobs.requeue"), st.tuples(ids("fresh", "held"))),
    "jobs.requeue_failed": (
        keywords("jobs.requeue_failed", "batch"),
        st.tuples(st.none() | either(JOB_TYPES), LIMITS),
    ),
    "jobs.purge": (
        keywords("jobs.purge", "dry_run", "batch"),
        st.tuples(
            DURATIONS,
            st.none() | either(st.lists(st.sampled_from(["completed", "failed", "pending"]))),
            FLAGS,
            LIMITS,
        ),
    ),
}

# --- the module's database ---------------------------------------------------------------------

RAN: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
async def fuzz_store(pg_server: Server, template_db: str) -> AsyncIterator[Rows]:
    """A store on a database of this module's own, with the rows every example may name."""
    async with database_store(pg_server, template_db) as store:
        job = await store.jobs.create({"job_type": "video", "media_url": "https://x/seed"})
        transcription = await store.transcriptions.create(
            {
                "job_id": job.id,
                "provider": "p",
                "text_content": "t",
                "word_timestamps": [{"word": "a", "start": 0, "end": 1}],
            }
        )
        asset = await store.media_assets.create(
            {"job_id": job.id, "asset_type": "frame", "file_path": "/f"}
        )
        result = await store.analysis_results.create({"job_id": job.id, "analysis_type": "s"})
        yield Rows(
            store,
            {
                "job": job.id,
                "transcription": transcription.id,
                "asset": asset.id,
                "result": result.id,
            },
        )


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many examples ran, and how they ended, when the module is done."""
    started = time.monotonic()
    yield
    total = sum(count for key, count in RAN.items() if "/" not in key)
    if total:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        line = (
            f"fuzz: {total} calls in {time.monotonic() - started:.1f} s "
            f"({RAN['/ok']} succeeded, {RAN['/refused']} raised a media_store error, "
            f"none raised anything else or changed a row when refusing)"
        )
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)


@pytest.mark.parametrize("name", CALLS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_a_call_succeeds_or_raises_a_media_store_error_changing_nothing(
    fuzz_store: Rows, name: str, data: st.DataObject
) -> None:
    call, arguments = CALLS[name]
    rows = Rows(fuzz_store.store, fuzz_store.seeded)
    args = await rows.resolve(data.draw(arguments, label="arguments"))
    before: State = await state(rows.store)
    RAN[name] += 1
    refused: MediaStoreError | None = None
    try:
        await call(rows.store, args)
    except MediaStoreError as exc:
        refused = exc
    RAN["/ok" if refused is None else "/refused"] += 1
    if refused is not None:
        str(refused).encode("utf-8")  # the message can be printed and logged
        assert await state(rows.store) == before, f"{name} raised {refused!r} after writing"
