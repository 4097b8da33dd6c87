"""A holder's writes by id (heartbeat, batch completion, release) never scan jobs, whatever
the plan cache holds (migrations/0015).

asyncpg prepares each statement once per connection and PostgreSQL keeps a generic plan after
five executions: made while jobs is a few pages (a new deployment's first completions), that
plan was a sequential scan, kept as the table grew until an ANALYZE or VACUUM of jobs (the
soak benchmark, ``benchmarks/bench_soak.py``, measured 4,116 of them in 30 s). The statements
now run in PL/pgSQL functions whose SET clauses leave index paths only. Each function's
statement is explained here as the function plans it (its body from pg_proc, its arguments as
parameters of a prepared statement, its SET clauses in force: PL/pgSQL's generic plan), on the
table where a plain generic plan scans: empty and analyzed. The same statement without the SET
clauses is explained too, and scans: the check can fail.

Last, the API path's writes on a pending job by id (start_job_processing, set_job_priority)
read the primary key on a new table, not a claim index.
"""

from __future__ import annotations

import re
from typing import TypeAlias

import asyncpg
import pytest

from media_store.db.queries import QUERIES

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

# Each function, its arguments as (name, type) in order.
HOLDER = ("holder", "text")
JOB_IDS = ("job_ids", "uuid[]")
FUNCTIONS = {
    "media_store_heartbeat_jobs": (HOLDER, JOB_IDS, ("lease_s", "float8")),
    "media_store_complete_jobs": (HOLDER, JOB_IDS, ("results", "jsonb[]")),
    "media_store_release_jobs": (HOLDER, JOB_IDS),
}
ARGUMENTS = {
    "text": "'w'",
    "uuid[]": "ARRAY[gen_random_uuid()]",
    "float8": "30",
    "jsonb[]": "ARRAY['{}'::jsonb]",
}


def statement_of(function: str, body: str) -> str:
    """The function's ``RETURN QUERY`` statement, its arguments as ``$n`` parameters."""
    statement = body[body.index("RETURN QUERY") + len("RETURN QUERY") : body.rindex("END;")]
    statement = statement.strip().rstrip(";")
    for position, (name, _) in enumerate(FUNCTIONS[function], start=1):
        statement = statement.replace(f"{function}.{name}", f"${position}")
        # An argument, not a column of the same name (r.holder).
        statement = re.sub(rf"(?<![\w.]){name}\b", f"${position}", statement)
    return statement


async def explain(conn: Connection, function: str, *, with_settings: bool) -> str:
    [(body, config)] = await conn.fetch(
        "SELECT prosrc, proconfig FROM pg_proc WHERE proname = $1", function
    )
    arguments = FUNCTIONS[function]
    types = ", ".join(type_ for _, type_ in arguments)
    async with conn.transaction():
        # A generic plan, as PL/pgSQL's (force_generic_plan is among the function's settings).
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        if with_settings:
            for setting in config:
                name, value = setting.split("=", 1)
                await conn.execute("SELECT set_config($1, $2, true)", name, value)
        await conn.execute(f"PREPARE held_write ({types}) AS {statement_of(function, body)}")
        try:
            values = ", ".join(ARGUMENTS[type_] for _, type_ in arguments)
            rows = await conn.fetch(f"EXPLAIN EXECUTE held_write({values})")
        finally:
            await conn.execute("DEALLOCATE held_write")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("function", list(FUNCTIONS))
async def test_a_holders_write_reads_jobs_by_index_on_an_empty_analyzed_table(
    raw: Connection, function: str
) -> None:
    await raw.execute("ANALYZE jobs")
    plain = await explain(raw, function, with_settings=False)
    assert "Seq Scan on jobs" in plain, plain  # what a plan cached on a small table does
    planned = await explain(raw, function, with_settings=True)
    assert "Seq Scan on jobs" not in planned, planned
    assert "jobs_pkey" in planned, planned


def test_every_holder_write_of_the_queue_runs_its_function() -> None:
    for name, function in (
        ("heartbeat_jobs", "media_store_heartbeat_jobs"),
        ("complete_many_jobs", "media_store_complete_jobs"),
        ("release_jobs", "media_store_release_jobs"),
    ):
        assert f"FROM {function}(" in QUERIES[name].sql


# The API path's writes on a pending job by id. Their status test is `IS NOT DISTINCT FROM
# 'pending'` (sql/jobs.sql): written `status = 'pending'` it matches the claim indexes'
# predicate, and on a small table never analyzed (a new deployment's first jobs) the generic
# plan scanned a whole claim index for the id instead of reading the primary key.
PENDING_BY_ID = {
    "start_job_processing": "(gen_random_uuid(), 'w', 30)",
    "set_job_priority": "(gen_random_uuid(), 1)",
}


async def generic_plan(conn: Connection, sql: str, values: str) -> str:
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE by_id AS {sql}")
        try:
            rows = await conn.fetch(f"EXPLAIN EXECUTE by_id{values}")
        finally:
            await conn.execute("DEALLOCATE by_id")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("pending", [100, 3000])
@pytest.mark.parametrize("name", list(PENDING_BY_ID))
async def test_a_write_on_a_pending_job_by_id_reads_the_primary_key_on_a_new_table(
    raw: Connection, name: str, pending: int
) -> None:
    # Held off so that the table stays never analyzed nor vacuumed while it is explained.
    await raw.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url) SELECT 'video', 'x' || g"
        " FROM generate_series(1, $1::int) AS g",
        pending,
    )
    # reltuples -1: no ANALYZE or VACUUM has counted the table's rows.
    assert await raw.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'jobs'::regclass") < 0
    sql = QUERIES[name].sql
    planned = await generic_plan(raw, sql, PENDING_BY_ID[name])
    assert "jobs_pkey" in planned and "jobs_claim" not in planned, planned
    # The same statement with `status = 'pending'` reads a claim index: the check can fail.
    plain = sql.replace("status IS NOT DISTINCT FROM 'pending'", "status = 'pending'")
    assert plain != sql
    assert "jobs_claim" in await generic_plan(raw, plain, PENDING_BY_ID[name])
