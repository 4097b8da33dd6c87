"""The claim's plan does not depend on table statistics (migrations/0005).

A burst of jobs into a table autovacuum has not analyzed yet is what a new deployment meets;
there the planner, guessing a handful of pending rows, used to scan and sort the whole
backlog for every claim. The statement the claim function runs to pick (and lock) the jobs is
explained in every table state: never analyzed and analyzed, a burst of pending jobs alone and
a backlog behind many finished ones; the plan is the generic one the function caches. Since
migrations/0013 the claim walks the index one priority at a time, so jobs scheduled for later
add nothing to a claim's reads: counted with EXPLAIN (ANALYZE, BUFFERS) below.

It is explained as the function plans it, on any server: the statement is taken from the
function's body in pg_proc (the branch the function's own IF takes for the claim's types), its
variables become parameters of a prepared statement, and the function's SET clauses
(proconfig, force_generic_plan among them) are in force for EXPLAIN EXECUTE: PL/pgSQL's plan.
Where the server ships auto_explain (the embedded pgserver build does not), the plan it logs
of the statement as the claim runs is checked to be that same plan.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
import pytest

from media_store.db.queries import QUERIES

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
Explained: TypeAlias = "tuple[Connection, bool]"  # a connection, and whether auto_explain is on

# (finished jobs, pending jobs): a burst alone, and a backlog behind many finished jobs (the
# benchmark measures 1,000,000 + 100,000; this scale shows the same plans in a few seconds).
STATES = {"burst of 5k": (0, 5_000), "200k finished + 20k pending": (200_000, 20_000)}


async def fill(conn: Connection, finished: int, pending: int) -> None:
    """Finished jobs first (older), then pending ones; one in a hundred is a document."""
    # Held off for the test's duration: autovacuum may otherwise analyze the table meanwhile.
    await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    await conn.execute(
        "INSERT INTO jobs (job_type, status, media_url, created_at, started_at, completed_at,"
        " attempts, locked_by)"
        " SELECT CASE WHEN g % 100 = 0 THEN 'document' WHEN g % 2 = 0 THEN 'video'"
        " ELSE 'audio' END, 'completed', 'f' || g,"
        " now() - interval '1 day' + g * interval '1 ms', now(), now(), 1, 'w'"
        " FROM generate_series(1, $1::int) AS g",
        finished,
    )
    # Created in the past: a job counts as runnable from its creation (migrations/0007), so
    # one created in the future would not be claimable yet.
    await conn.execute(
        "INSERT INTO jobs (job_type, media_url, created_at)"
        " SELECT CASE WHEN g % 100 = 0 THEN 'document' ELSE 'audio' END, 'p' || g,"
        " now() - interval '1 hour' + g * interval '1 ms' FROM generate_series(1, $1::int) AS g",
        pending,
    )


async def analyzed(conn: Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_statistic WHERE starelid = 'jobs'::regclass)"
        )
    )


# The picking statement of each branch of the function: ``picked := ARRAY(<SELECT>)``.
BRANCHES = re.compile(r"IF\s+(?P<test>.+?)\s+THEN(?P<then>.+?)\bELSE\b(?P<else>.+?)END IF;", re.S)
PICK = "picked := ARRAY("
# The function's variables the picking statements read, as parameters of the prepared
# statement: name -> (position, type). How PL/pgSQL plans them too ($n of a generic plan).
VARIABLES = {"job_types": (1, "text[]"), "how_many": (2, "integer"), "due": (3, "timestamptz")}
COSTS = re.compile(r"\s+\(cost=[^)]*\)")
PARAMETER = re.compile(r"\$\d+")


def picking_statement(body: str) -> tuple[str, str, str]:
    """The function's branch test and, for either outcome, its picking statement (as
    ``SELECT ARRAY(...)``, what the PL/pgSQL assignment runs)."""
    [branches] = BRANCHES.findall(body)

    def pick(code: str) -> str:
        [_] = re.findall(re.escape(PICK), code)
        start = code.index(PICK) + len(PICK)
        depth = 1
        for end in range(start, len(code)):
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            if depth == 0:
                return f"SELECT ARRAY({code[start:end]}\n)"
        raise AssertionError(f"unbalanced ARRAY( in {code}")

    test, then, otherwise = branches
    return test, pick(then), pick(otherwise)


def as_parameters(sql: str) -> str:
    for name, (position, type_) in VARIABLES.items():
        sql = re.sub(rf"\b{name}\b", f"${position}::{type_}", sql)
    return sql


def plan_shape(plan: str) -> list[str]:
    """A plan's nodes and conditions, without estimates or parameter numbers (which differ
    between a prepared statement and PL/pgSQL's)."""
    lines = [COSTS.sub("", line).rstrip() for line in plan.splitlines()]
    return [PARAMETER.sub("$n", line) for line in lines if line.strip()]


async def explain_pick(conn: Connection, how_many: int, job_types: list[str] | None) -> str:
    """The plan of the statement media_store_claim_jobs runs to pick jobs for these
    arguments, as the function plans it (its SET clauses and a generic plan)."""
    [(body, config)] = await conn.fetch(
        "SELECT prosrc, proconfig FROM pg_proc WHERE proname = 'media_store_claim_jobs'"
    )
    test, one_type, any_types = picking_statement(body)
    takes_first = await conn.fetchval(f"SELECT coalesce({as_parameters(test)}, false)", job_types)
    statement = as_parameters(one_type if takes_first else any_types)
    types = ", ".join(type_ for _, type_ in sorted(VARIABLES.values()))
    async with conn.transaction():
        for setting in config:
            name, value = setting.split("=", 1)
            await conn.execute("SELECT set_config($1, $2, true)", name, value)
        await conn.execute(f"PREPARE media_store_pick ({types}) AS {statement}")
        try:
            # EXECUTE takes no bind parameters: the arguments as literals (a generic plan does
            # not depend on them anyway).
            arguments = await conn.fetchval(
                "SELECT format('%L::text[], %s, clock_timestamp()', $1::text[], $2::int)",
                job_types,
                how_many,
            )
            rows = await conn.fetch(f"EXPLAIN EXECUTE media_store_pick({arguments})")
        finally:
            await conn.execute("DEALLOCATE media_store_pick")
    return "\n".join(row[0] for row in rows)


@pytest.fixture
async def explained(raw: Connection) -> AsyncIterator[Explained]:
    """``raw``, and whether auto_explain is on for it (every statement's plan, nested ones
    included, then arrives as a notice): where the server ships it."""
    try:
        await raw.execute("LOAD 'auto_explain'")
    except asyncpg.UndefinedFileError:  # not in this server's build (pgserver's)
        yield raw, False
        return
    await raw.execute(
        "SET auto_explain.log_min_duration = 0;"
        " SET auto_explain.log_nested_statements = on;"
        " SET auto_explain.log_level = notice"
    )
    yield raw, True
    await raw.execute("SET auto_explain.log_min_duration = -1")


async def claim_with_plans(
    explained: Explained,
    name: str,
    holder: str,
    how_many: int,
    lease: float,
    types: list[str] | str | None,
) -> tuple[list[asyncpg.Record], str]:
    """Run the named claim query; return its rows and the plan of the statement that picked
    (and locked) the jobs, explained just before (and where auto_explain logged the plan as
    the claim ran, checked to be the same)."""
    conn, auto_explain = explained
    plan = await explain_pick(conn, how_many, [types] if isinstance(types, str) else types)
    notices: list[str] = []

    def collect(_: object, message: asyncpg.PostgresLogMessage) -> None:
        notices.append(str(message.message))

    conn.add_log_listener(collect)
    try:
        rows = await conn.fetch(QUERIES[name].sql, holder, how_many, lease, types)
        await asyncio.sleep(0)  # listeners are called soon after the message, not at once
    finally:
        conn.remove_log_listener(collect)
    if auto_explain:
        [logged] = [notice for notice in notices if "LockRows" in notice]
        # The notice: duration, the statement's text, then the plan from its top node.
        as_run = logged[logged.index("\nResult") + 1 :]
        assert plan_shape(as_run) == plan_shape(plan), (as_run, plan)
    return rows, plan


SCANS = re.compile(r"(?:Index Only Scan|Index Scan|Seq Scan|Bitmap \w+ Scan) (?:using (\S+) )?on")
# The due scan of a level: bounded at both ends (this priority, due by now), in the index.
DUE_RANGE = re.compile(
    r"Index Cond: \(.*\(priority = \w+\.priority\) AND"
    r" \(COALESCE\(run_after, created_at\) <= \$\d+\)\)$",
    re.M,
)


def assert_walks_priority_levels(plan: str, index: str) -> None:
    """The picking plan of migrations/0013: the priorities present among pending jobs found
    one index descent each (a recursive CTE), highest first; a level whose first job is not
    due is filtered out before its range is read; in the others, the range (priority = p,
    due by now) of the same pending index, read in claim order and locked SKIP LOCKED. Every
    read is that index; nothing scans the table, builds a bitmap or sorts."""
    assert "Recursive Union" in plan, plan
    assert SCANS.findall(plan) == [index] * 3, plan
    assert re.search(r"Index Cond: .*\(priority < \w+\.priority\)", plan), plan
    assert re.search(r"Filter: \(first_at <= \$\d+\)", plan), plan
    assert DUE_RANGE.search(plan), plan
    assert "LockRows" in plan, plan
    for whole_backlog in ("Seq Scan", "Bitmap", "Sort"):
        assert whole_backlog not in plan, plan


CLAIMS = {
    # name, arguments after (holder, limit, lease), index read, media_url prefix of the jobs
    "any type": ("claim_jobs", None, "jobs_claim_idx", "p"),
    "two types": ("claim_jobs", ["audio", "video"], "jobs_claim_idx", "p"),
    "one rare type": ("claim_jobs", ["document"], "jobs_claim_type_idx", "p"),
}


@pytest.mark.parametrize("analyze", [False, True], ids=["never analyzed", "analyzed"])
@pytest.mark.parametrize(("finished", "pending"), STATES.values(), ids=STATES.keys())
async def test_claim_is_an_ordered_range_scan_of_a_pending_index_in_every_table_state(
    raw: Connection, explained: Explained, finished: int, pending: int, analyze: bool
) -> None:
    await fill(raw, finished, pending)
    if analyze:
        await raw.execute("ANALYZE jobs")
    assert await analyzed(raw) is analyze

    for name, types, index, prefix in CLAIMS.values():
        rows, plan = await claim_with_plans(explained, name, "w", 10, 30.0, types)

        # Read in claim order from the pending index, stopped after 10 rows: no scan of the
        # table, no bitmap of the backlog, no sort.
        assert_walks_priority_levels(plan, index)
        assert len(rows) == 10
        assert all(row["status"] == "processing" for row in rows)
        assert all(row["media_url"].startswith(prefix) for row in rows)
        assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)

    # Oldest first: the claims above took the first 10 pending jobs of any type, the next 10
    # of audio or video (audio only among pending), and the first 10 documents.
    taken = await raw.fetch(
        "SELECT media_url FROM jobs WHERE status = 'processing' ORDER BY created_at"
    )
    numbers = sorted(int(row["media_url"][1:]) for row in taken)
    assert numbers == [*range(1, 21), *range(100, 1001, 100)]


# --- priorities and scheduled starts (migrations/0007) ----------------------------------------

# Pending job g: a document when g % 100 == 0, else audio; priority 1 when g % 3 == 0, -1 when
# g % 13 == 0, else 0; scheduled for tomorrow when g % 7 == 3 (at every priority), scheduled
# half an hour before its creation when g % 11 == 5. Created in g order, one ms apart.
MIXED_PENDING = """
INSERT INTO jobs (job_type, media_url, created_at, priority, run_after)
SELECT CASE WHEN g % 100 = 0 THEN 'document' ELSE 'audio' END, 'p' || g,
       now() - interval '1 hour' + g * interval '1 ms',
       CASE WHEN g % 3 = 0 THEN 1 WHEN g % 13 = 0 THEN -1 ELSE 0 END,
       CASE WHEN g % 7 = 3 THEN now() + interval '1 day'
            WHEN g % 11 = 5 THEN now() - interval '90 minutes' + g * interval '1 ms' END
FROM generate_series(1, $1::int) AS g
"""


def claim_order(g: int) -> tuple[int, int, int]:
    """The claim's order key of pending job g: priority first, then the time it became
    runnable (its creation, or its earlier scheduled start), in ms."""
    priority = 1 if g % 3 == 0 else -1 if g % 13 == 0 else 0
    ready = g - 1_800_000 if g % 11 == 5 else g
    return (-priority, ready, g)


@pytest.mark.parametrize("analyze", [False, True], ids=["never analyzed", "analyzed"])
async def test_claim_by_priority_with_scheduled_jobs_is_one_ordered_range_scan(
    raw: Connection, explained: Explained, analyze: bool
) -> None:
    finished, pending = STATES["200k finished + 20k pending"]
    await fill(raw, finished, 0)
    await raw.execute(MIXED_PENDING, pending)
    if analyze:
        await raw.execute("ANALYZE jobs")
    assert await analyzed(raw) is analyze

    due = [g for g in range(1, pending + 1) if g % 7 != 3]
    left = sorted(due, key=claim_order)
    for name, types, index, _ in CLAIMS.values():
        rows, plan = await claim_with_plans(explained, name, "w", 10, 30.0, types)

        # Range scans of the pending index in claim order, one priority at a time, the due
        # test in the index condition; no scan of the table, no bitmap, no sort, whatever
        # the statistics say.
        assert_walks_priority_levels(plan, index)

        wanted = [
            g
            for g in left
            if types is None
            or ("document" if g % 100 == 0 else "audio")
            in ([types] if isinstance(types, str) else types)
        ][:10]
        # The ten first in claim order (returned by priority, then creation).
        assert sorted(int(row["media_url"][1:]) for row in rows) == sorted(wanted)
        assert [row["priority"] for row in rows] == sorted(
            (row["priority"] for row in rows), reverse=True
        )
        left = [g for g in left if g not in wanted]


# --- jobs scheduled for later (migrations/0013) -----------------------------------------------

SCHEDULED = 100_000
# An idle claim (nothing due) reads the index's levels: a descent for each priority present
# and one to find there is none below, each a root and a leaf page, and the first job of a
# level (its earliest due time). Against an empty index (its metapage alone) no ratio holds;
# this bound is what "does not grow with the jobs scheduled for later" means there (0012's
# claim read the whole index: about 800 buffers at 100,000 jobs).
IDLE_BUFFERS = 12
TYPES = ("", "audio")  # any type (jobs_claim_idx), one type (jobs_claim_type_idx)


async def claim_buffers(conn: Connection, types: list[str] | None) -> int:
    """Shared buffers one claim(limit=10) reads, the function's statements included, as
    EXPLAIN (ANALYZE, BUFFERS) counts them; the claim is rolled back, and run once before
    so that the function's plans are cached (as in a worker's session)."""
    counted = []
    for _ in range(2):
        transaction = conn.transaction()
        await transaction.start()
        try:
            explained = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
                " SELECT id FROM media_store_claim_jobs('w', 10, 30, $1::text[])",
                types,
            )
        finally:
            await transaction.rollback()
        [plan] = json.loads(explained) if isinstance(explained, str) else explained
        top = plan["Plan"]
        counted.append(int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]))
    return counted[-1]


SCHEDULED_STATES = {
    # due jobs at priority 0, priority of the jobs scheduled for later
    "idle, scheduled at 0": (0, 0),
    "idle, scheduled at 50": (0, 50),
    "due work at 0, scheduled behind it at 0": (1_000, 0),
    "due work at 0, scheduled ahead of it at 50": (1_000, 50),
}


@pytest.mark.parametrize("analyze", [False, True], ids=["never analyzed", "analyzed"])
@pytest.mark.parametrize(("due", "priority"), SCHEDULED_STATES.values(), ids=SCHEDULED_STATES)
async def test_jobs_scheduled_for_later_add_nothing_to_a_claims_reads(
    raw: Connection, due: int, priority: int, analyze: bool
) -> None:
    await fill(raw, 20_000, due)
    if analyze:
        await raw.execute("ANALYZE jobs")
    none = {types: await claim_buffers(raw, [types] if types else None) for types in TYPES}

    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, run_after, priority)"
        " SELECT 'audio', 's' || g, now() + interval '1 day', $2::int"
        " FROM generate_series(1, $1::int) AS g",
        SCHEDULED,
        priority,
    )
    if analyze:
        await raw.execute("ANALYZE jobs")
    assert await analyzed(raw) is analyze
    scheduled = {types: await claim_buffers(raw, [types] if types else None) for types in TYPES}

    for types in TYPES:
        if due:
            assert scheduled[types] <= 1.5 * none[types], (types, none, scheduled)
        else:
            assert scheduled[types] <= IDLE_BUFFERS, (types, none, scheduled)
    # Still nothing scheduled for later is claimed, and the due work is, in order.
    claimed = await raw.fetch(QUERIES["claim_jobs"].sql, "w", 10, 30.0, None)
    assert [row["media_url"] for row in claimed] == [f"p{g}" for g in range(1, min(due, 10) + 1)]
