"""The checks that replace a second pass through pydantic on the hot path give the same
models and the same refusals: rows built by ``from_row`` equal the validated ones, a row the
checks refuse is validated (and refused) as before, and the JSON check's fast path never
accepts what the full walk refuses."""

from __future__ import annotations

import enum
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

import asyncpg
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store import Store, ValidationError
from media_store.models import fields as fields_module
from media_store.models import rows as rows_module
from media_store.models.fields import MAX_JSON_DEPTH, Row, _is_plain_json, check_json
from media_store.models.inputs import _plain_job, job_values, status_values, validate_input
from media_store.models.rows import _RowPlan, from_row, from_wider_row, new_job, new_job_fields
from media_store.models.schemas import (
    AnalysisResult,
    Job,
    JobCreate,
    JobStatus,
    JobType,
    KeyScope,
    MediaAsset,
    StatusUpdate,
    Transcription,
)
from tests.support.strategies import SMALL_OBJECTS

JOB_ROW = """
SELECT gen_random_uuid() AS id, {job_type} AS job_type, {status} AS status,
       'https://x/1.mp4'::text AS media_url, NULL::text AS prompt,
       '{{"a": [1, 2.5, "\u00e9"]}}'::jsonb AS parameters, {result} AS result,
       NULL::text AS error, clock_timestamp() AS created_at, clock_timestamp() AS updated_at,
       clock_timestamp() AS started_at, NULL::timestamptz AS completed_at,
       12 AS processing_time_ms, 1 AS attempts, 3 AS max_attempts,
       'w'::text AS locked_by, clock_timestamp() AS locked_until,
       clock_timestamp() AS heartbeat_at, NULL::timestamptz AS run_after,
       0::smallint AS priority, 'k'::text AS idempotency_key, 'active'::text AS idempotency_scope
"""


@pytest.fixture(params=["compiled", "python"])
def row_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each row test both ways: the compiled row_values (media_store/_speedups.c) and the
    Python checks it stands in for."""
    if request.param == "python":
        monkeypatch.setattr(rows_module, "_row_values", None)
    elif rows_module._row_values is None:
        pytest.skip("media_store._speedups is not compiled in this install")
    return str(request.param)


def _validated(model: type[Row], row: asyncpg.Record) -> Row:
    return model.model_validate(dict(row))


def _same(built: Row, validated: Row) -> None:
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    for name in type(built).model_fields:
        mine, theirs = getattr(built, name), getattr(validated, name)
        assert type(mine) is type(theirs), name
        assert mine == theirs, name
    assert built.model_dump(mode="json") == validated.model_dump(mode="json")
    assert built.__pydantic_extra__ == validated.__pydantic_extra__
    assert built.__pydantic_private__ == validated.__pydantic_private__
    assert built.model_copy() == validated.model_copy()
    with pytest.raises(pydantic.ValidationError):  # as frozen as the validated one
        setattr(built, "id", None)  # noqa: B010 - any field


async def _job_row(store: Store, **parts: str) -> asyncpg.Record:
    sql = JOB_ROW.format(
        **{"job_type": "'audio'::text", "status": "'processing'::text", "result": "NULL::jsonb"}
        | parts
    )
    row = await store.pool.fetchrow(sql)
    assert row is not None
    return row


async def test_rows_of_the_repositories_become_the_models_validation_gives(
    store: Store, row_path: str
) -> None:
    job = await store.jobs.create(
        {"job_type": "video", "media_url": "https://x/v.mp4", "parameters": {"k": [1, None]}}
    )
    claimed = await store.jobs.claim("w1", limit=1)
    assert [j.id for j in claimed] == [job.id]
    done = await store.jobs.complete(job.id, "w1", {"score": 0.5, "tags": ["a"]})
    asset = await store.media_assets.create(
        {"job_id": job.id, "asset_type": "frame", "file_path": "/f/1.jpg", "metadata": {"w": 1}}
    )
    analysis = await store.analysis_results.create(
        {"job_id": job.id, "analysis_type": "summary", "confidence_score": 0.25}
    )
    for model, made, table in (
        (Job, done, "jobs"),
        (MediaAsset, asset, "media_assets"),
        (AnalysisResult, analysis, "analysis_results"),
    ):
        columns = ", ".join(model.model_fields)
        row = await store.pool.fetchrow(f"SELECT {columns} FROM {table} WHERE id = $1", made.id)
        assert row is not None
        _same(from_row(model, row), _validated(model, row))
        _same(made, _validated(model, row))
    assert isinstance(done.status, JobStatus) and done.status is JobStatus.COMPLETED
    assert isinstance(done.job_type, JobType) and done.result == {"score": 0.5, "tags": ["a"]}


async def test_a_row_the_checks_refuse_is_refused_by_validation_as_before(
    store: Store, row_path: str
) -> None:
    refused = {
        "an unknown status": {"status": "'archived'::text"},
        "an unknown job type": {"job_type": "'image'::text"},
        "a result that is no object": {"result": "'[1, 2]'::jsonb"},
        "a NULL where none is allowed": {"status": "NULL::text"},
        "a type other than the field's": {"job_type": "42"},
    }
    for what, parts in refused.items():
        row = await _job_row(store, **parts)
        with pytest.raises(pydantic.ValidationError) as by_validation:
            _validated(Job, row)
        with pytest.raises(pydantic.ValidationError) as by_from_row:
            from_row(Job, row)
        assert by_from_row.value.errors() == by_validation.value.errors(), what


async def test_a_row_with_other_columns_is_validated(store: Store, row_path: str) -> None:
    # Columns missing, in another order, or one too many: the checks step aside.
    row = await store.pool.fetchrow("SELECT 'audio'::text AS job_type")
    assert row is not None
    with pytest.raises(pydantic.ValidationError):
        from_row(Job, row)
    columns = ", ".join(reversed(Job.model_fields))
    parts = {"job_type": "'audio'::text", "status": "'processing'::text", "result": "NULL::jsonb"}
    shuffled = await store.pool.fetchrow(f"SELECT {columns} FROM ({JOB_ROW.format(**parts)}) j")
    assert shuffled is not None
    _same(from_row(Job, shuffled), _validated(Job, shuffled))
    extra = await store.pool.fetchrow(f"SELECT j.*, 1 AS extra FROM ({JOB_ROW.format(**parts)}) j")
    assert extra is not None
    with pytest.raises(pydantic.ValidationError):
        from_row(Job, extra)


async def test_a_wider_row_with_the_columns_in_one_run_takes_the_checks(
    store: Store, row_path: str
) -> None:
    # enqueue_job's `created` before the job's columns, a claim's trace context after them:
    # the checks take the run, and give what validating the model's columns gives.
    parts = {"job_type": "'audio'::text", "status": "'processing'::text", "result": "NULL::jsonb"}
    before = await store.pool.fetchrow(
        f"SELECT true AS created, j.* FROM ({JOB_ROW.format(**parts)}) j"
    )
    after = await store.pool.fetchrow(
        f"SELECT j.*, 'x'::text AS extra FROM ({JOB_ROW.format(**parts)}) j"
    )
    assert before is not None and after is not None
    plan = _RowPlan.of(Job)
    assert plan is not None
    for row in (before, after):
        assert plan.wider_values(row) is not None
        _same(from_wider_row(Job, row), _validated_columns(Job, row))
    # Not one run in order (a column between, another order): validated by name, as before.
    columns = ", ".join(Job.model_fields)
    # A field's name twice (the record by name gives the last): validated by name.
    twice = await store.pool.fetchrow(
        f"SELECT j.*, 'failed'::text AS status FROM ({JOB_ROW.format(**parts)}) j"
    )
    assert twice is not None
    assert plan.wider_values(twice) is None
    assert from_wider_row(Job, twice).status is JobStatus.FAILED
    split = await store.pool.fetchrow(
        f"SELECT id, 1 AS extra, {columns.removeprefix('id, ')} FROM ({JOB_ROW.format(**parts)}) j"
    )
    shuffled = await store.pool.fetchrow(
        f"SELECT {', '.join(reversed(Job.model_fields))}, 1 AS extra"
        f" FROM ({JOB_ROW.format(**parts)}) j"
    )
    assert split is not None and shuffled is not None
    for other in (split, shuffled):
        assert plan.wider_values(other) is None
        _same(from_wider_row(Job, other), _validated_columns(Job, other))
    # What the checks refuse is refused by validation, with its errors.
    archived = JOB_ROW.format(**(parts | {"status": "'archived'::text"}))
    refused = await store.pool.fetchrow(f"SELECT true AS created, j.* FROM ({archived}) j")
    assert refused is not None
    with pytest.raises(pydantic.ValidationError) as by_validation:
        _validated_columns(Job, refused)
    with pytest.raises(pydantic.ValidationError) as by_wider:
        from_wider_row(Job, refused)
    assert by_wider.value.errors() == by_validation.value.errors()


def _validated_columns(model: type[Row], row: asyncpg.Record) -> Row:
    return model.model_validate({name: row[name] for name in model.model_fields})


def test_models_with_constrained_or_custom_fields_are_always_validated() -> None:
    assert _RowPlan.of(Transcription) is None  # its words are a custom type
    assert _RowPlan.of(Job) is not None
    assert _RowPlan.of(MediaAsset) is not None
    assert _RowPlan.of(AnalysisResult) is not None


# --- the JSON check ---------------------------------------------------------------------------


class _Str(str):
    pass


class _Dict(dict[str, Any]):
    pass


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=6),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "ok", _Str("sub"), uuid.UUID(int=1), b"x"]),
)
_keys = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["\x00", "\udfff", _Str("k")]),
    st.integers(0, 3),
)


def _json_like(leaves: Any) -> Any:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=4).map(tuple),
            st.dictionaries(_keys, children, max_size=4),
            st.dictionaries(st.text(max_size=3), children, max_size=3).map(_Dict),
        ),
        max_leaves=20,
    )


def _walk_accepts(value: Any) -> bool:
    try:
        check_json(value)
    except ValueError:
        return False
    return True


@given(_json_like(_scalars))
@settings(max_examples=400, deadline=None)
def test_the_json_fast_path_never_accepts_what_the_walk_refuses(value: Any) -> None:
    if _is_plain_json(value, 0):
        assert _walk_accepts(value)


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": [value]} if depth % 2 else {"a": value}
    return value


def test_the_json_fast_path_takes_plain_values_and_stops_at_the_depth_limit() -> None:
    plain = {"s": "é ok", "n": [1, -(2**63) + 1, 2.5, None, True], "o": {"t": ("x",)}}
    assert _is_plain_json(plain, 0) and _walk_accepts(plain)
    for bad in (math.nan, math.inf, 2**63, "a\x00", "\ud800", {1: "x"}, {"\x00": 1}):
        assert not _is_plain_json({"k": [bad]}, 0)
        assert not _walk_accepts({"k": [bad]})
    deep: Any = {}
    for _ in range(MAX_JSON_DEPTH - 1):
        deep = {"a": deep}
    assert _is_plain_json(deep, 0) and _walk_accepts(deep)
    assert not _is_plain_json({"a": deep}, 0) and not _walk_accepts({"a": deep})
    assert not _is_plain_json(_nested(10_000), 0)


class _Level(enum.IntEnum):
    HIGH = 1


class _Float(float):
    pass


class _List(list[Any]):
    pass


class _Pair(NamedTuple):
    a: int
    b: int


def _compiled_json() -> Any:
    if fields_module._plain_json is None:
        pytest.skip("media_store._speedups is not compiled in this install")
    return fields_module._plain_json


@given(_json_like(_scalars))
@settings(max_examples=400, deadline=None)
def test_the_compiled_json_check_answers_as_the_python_one(value: Any) -> None:
    # The compiled plain_json (media_store/_speedups.c) is the one check_json runs where built.
    assert _compiled_json()(value, MAX_JSON_DEPTH) is _is_plain_json(value, 0)


def test_the_compiled_json_check_keeps_the_edges() -> None:
    plain_json = _compiled_json()
    edges: list[Any] = [
        2**63 - 1,
        -(2**63) + 1,
        -(2**63),
        2**63,
        -(2**200),
        1e308,
        -math.inf,
        "é\U0001f600",
        "x\udfffy",
        "\U0001f600\x00",
        {"é": 1},
        {"\ud800": 1},
        {_Str("k"): 1},
        [_Str("v")],
        _Dict(a=1),
        (1, [2, (3,)]),
        {"a": uuid.UUID(int=1)},
        True,
        "\U0001f600\ud800",  # a 4-byte-wide text with a lone surrogate
        "é\u3000\x00",  # a 2-byte-wide text with a NUL
        _Level.HIGH,  # subclasses of int, float, list and tuple: left to the walk
        _Float(1.5),
        _List([1]),
        _Pair(1, 2),
    ]
    for value in edges:
        assert plain_json(value, MAX_JSON_DEPTH) is _is_plain_json(value, 0), value
    for wrap in (lambda v: [v], lambda v: (v,), lambda v: {"a": v}):
        deep: Any = 1
        for _ in range(MAX_JSON_DEPTH):
            deep = wrap(deep)
        assert plain_json(deep, MAX_JSON_DEPTH) and _is_plain_json(deep, 0)
        assert not plain_json(wrap(deep), MAX_JSON_DEPTH) and not _is_plain_json(wrap(deep), 0)
    assert not plain_json(_nested(10_000), MAX_JSON_DEPTH)
    with pytest.raises(ValueError, match="max_depth"):
        plain_json({}, 10**6)


async def test_the_fast_path_is_taken_for_a_job_row_of_the_latest_schema(
    store: Store, row_path: str
) -> None:
    # A column added to jobs (and Job) without its place here, or a field the plan cannot
    # check, would silently send every row back through validation: the plan must build.
    for model in (Job, MediaAsset, AnalysisResult):
        assert _RowPlan.of(model) is not None, model
    plan = _RowPlan.of(Job)
    assert plan is not None
    row = await _job_row(store, status="'pending'::text")
    assert tuple(row.keys()) == tuple(Job.model_fields)
    assert plan.build(Job, row) is not None


STATUS_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "error": st.none() | st.text(max_size=4) | st.integers() | st.just("a\x00b"),
        "result": st.none() | SMALL_OBJECTS | st.lists(st.integers(), max_size=2) | st.integers(),
        "processing_time_ms": st.none()
        | st.integers(-2, 2**31)
        | st.booleans()
        | st.floats(0, 2)
        | st.just("7"),
    },
)


@given(STATUS_VALUES)
@settings(max_examples=400, deadline=None)
def test_the_status_fast_path_agrees_with_statusupdate(given_values: dict[str, Any]) -> None:
    # update_status checks plain values without building a StatusUpdate: what it accepts, and
    # the values it passes on, must be exactly StatusUpdate's; what it refuses, refused alike.
    try:
        update = validate_input(StatusUpdate, given_values)
    except ValidationError:
        with pytest.raises(ValidationError):
            status_values(given_values)
        return
    assert status_values(given_values) == (
        update.error,
        update.result,
        update.processing_time_ms,
    )


JOB_ITEMS = st.fixed_dictionaries(
    {
        "job_type": st.sampled_from([t.value for t in JobType]),
        "media_url": st.text(min_size=1, max_size=8),
    },
    optional={
        "prompt": st.none() | st.text(max_size=8),
        "parameters": SMALL_OBJECTS,
        "max_attempts": st.integers(1, 1000),
        "priority": st.integers(-32768, 32767),
        "run_after": st.none()
        | st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
        )
        # What is no time: naive, a number or string Pydantic once read as seconds since
        # 1970, a delay, a date (issue 20, item 7).
        | st.datetimes(timezones=st.none())
        | st.integers()
        | st.floats()
        | st.booleans()
        | st.integers(0, 10**10).map(str)
        | st.timedeltas()
        | st.dates(),
        "idempotency_key": st.text(min_size=1, max_size=8),
        "idempotency_scope": st.sampled_from(["active", "forever"]),
    },
)


@given(JOB_ITEMS, st.sampled_from(["active", "forever"]))
@settings(max_examples=400, deadline=None)
def test_the_plain_dict_fast_path_agrees_with_jobcreate(
    item: dict[str, Any], key_scope: str
) -> None:
    # _plain_job (no model) takes a dict only when JobCreate would take it unchanged, and
    # gives its columns; anything else it leaves to JobCreate (None), whose refusal is raised.
    try:
        job = validate_input(JobCreate, item)
    except ValidationError:
        assert _plain_job(item, key_scope) is None
        with pytest.raises(ValidationError, match="item 3"):
            job_values(3, item, key_scope)
        return
    key = job.idempotency_key
    expected = (
        job.job_type.value,
        job.media_url,
        job.prompt,
        job.parameters,
        job.max_attempts,
        job.priority,
        job.run_after,
        key,
        # the call's scope for a key whose item names none
        None if key is None else (job.idempotency_scope or KeyScope(key_scope)).value,
    )
    fast = _plain_job(item, key_scope)
    assert fast is None or (fast == expected and list(map(type, fast)) == list(map(type, expected)))
    got = job_values(3, item, key_scope)
    assert got == expected and list(map(type, got)) == list(map(type, expected))


@given(
    JOB_ITEMS,
    st.uuids(version=4),
    # A clock create_many can read: it subtracts a microsecond a later item (the database's
    # readable range starts at 0001-01-02, migrations/0010).
    st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC)),
)
@settings(max_examples=300, deadline=None)
def test_the_jobs_create_many_builds_equal_the_validated_ones(
    item: dict[str, Any], job_id: uuid.UUID, clock: datetime
) -> None:
    # new_job sets the model's state directly (no validation): it must give what validating
    # the same fields gives.
    try:
        values = job_values(None, item)
    except ValidationError:
        return  # refused before any job is built
    fields = new_job_fields(values, job_id, clock - timedelta(microseconds=1), clock)
    validated = Job.model_validate(dict(fields))
    _same(new_job(dict(fields)), validated)
    assert validated.parameters is not item.get("parameters")  # the caller's dict stays its own


JOB_ROWS = st.fixed_dictionaries(
    {
        "id": st.uuids(),
        "job_type": st.sampled_from(list(JobType)),
        "status": st.sampled_from(list(JobStatus)),
        "media_url": st.text(min_size=1, max_size=4),
        "prompt": st.none() | st.text(max_size=4),
        "parameters": SMALL_OBJECTS,
        "result": st.none() | SMALL_OBJECTS,
        "error": st.none() | st.text(max_size=4),
        "created_at": st.datetimes(timezones=st.just(UTC)),
        "updated_at": st.datetimes(timezones=st.just(UTC)),
        "started_at": st.none() | st.datetimes(timezones=st.just(UTC)),
        "completed_at": st.none() | st.datetimes(timezones=st.just(UTC)),
        "processing_time_ms": st.none() | st.integers(0, 2**31 - 1),
        "attempts": st.integers(0, 1000),
        "max_attempts": st.integers(1, 1000),
        "locked_by": st.none() | st.text(max_size=4),
        "locked_until": st.none() | st.datetimes(timezones=st.just(UTC)),
        "heartbeat_at": st.none() | st.datetimes(timezones=st.just(UTC)),
        "run_after": st.none() | st.datetimes(timezones=st.just(UTC)),
        "priority": st.integers(-32768, 32767),
        "idempotency_key": st.none() | st.text(min_size=1, max_size=4),
        "idempotency_scope": st.none() | st.sampled_from(list(KeyScope)),
    }
)


@given(JOB_ROWS)
@settings(max_examples=300, deadline=None)
def test_the_row_fast_path_builds_what_validation_builds(values: dict[str, Any]) -> None:
    # _RowPlan.make: values already checked (exact types, enum members) become the model by
    # setting the model's state directly; the result equals model_validate of the same values,
    # and no value of an earlier model (the first, validated one) leaks into it.
    plan = _RowPlan.of(Job)
    assert plan is not None
    values = {name: values[name] for name in Job.model_fields}
    first = plan.make(Job, dict(values))  # the first of a plan: validated
    again = plan.make(Job, dict(values))  # built directly (compiled, where built)
    _same(again, Job.model_validate(values))
    _same(first, again)
    compiled = rows_module._make_model
    try:  # and by the Python original the compiled make_model stands in for
        rows_module._make_model = None
        python = plan.make(Job, dict(values))
    finally:
        rows_module._make_model = compiled
    _same(python, again)
    assert type(again) is Job and type(again.__pydantic_fields_set__) is set  # its own
