"""Migrations against real PostgreSQL: reversible, idempotent, safe to run twice at once.

The tests walk whatever migrations ``migrations/`` holds (``migrate.migration_ids()``); none of
them is named here except where a test is about 0001's own invariants.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from media_store import Dsn, migrate
from media_store.cli.main import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_IDS = migrate.migration_ids()
ZERO_ONE_TABLES = ("jobs", "media_assets", "transcriptions", "analysis_results")

# yoyo's own bookkeeping tables live in public too; they are not part of our schema.
_NOT_YOYO = "{rel} NOT LIKE '\\_yoyo\\_%' AND {rel} <> 'yoyo_lock'"

CATALOG_QUERIES: Mapping[str, str] = {
    "relations": f"""
        SELECT c.relname, c.relkind::text, obj_description(c.oid, 'pg_class'),
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
          AND {_NOT_YOYO.format(rel="c.relname")}
        ORDER BY 1""",
    "columns": f"""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
               col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
          AND a.attnum > 0 AND NOT a.attisdropped
          AND {_NOT_YOYO.format(rel="c.relname")}
        ORDER BY c.relname, a.attnum""",
    "constraints": f"""
        SELECT c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND {_NOT_YOYO.format(rel="c.relname")}
        ORDER BY 1, 2""",
    "indexes": f"""
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND {_NOT_YOYO.format(rel="tablename")}
        ORDER BY 1, 2""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal
        ORDER BY 1, 2""",
    # Every function in public, not only the media_store_* ones: nothing may be left behind.
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid),
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
        ORDER BY 1, 2""",
    "types": """
        SELECT t.typname, t.typtype::text, format_type(t.typbasetype, t.typtypmod),
               (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                FROM pg_enum e WHERE e.enumtypid = t.oid)::text
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r', 'm')
        ORDER BY 1""",
}

Catalog = dict[str, list[tuple[Any, ...]]]


async def catalog_dump(url: str) -> Catalog:
    """What the public schema holds, excluding yoyo's bookkeeping, as comparable rows."""
    conn = await asyncpg.connect(url)
    try:
        return {
            name: [tuple(row) for row in await conn.fetch(sql)]
            for name, sql in CATALOG_QUERIES.items()
        }
    finally:
        await conn.close()


async def table_counts(url: str) -> dict[str, int]:
    """Row count of every table of our schema that exists in ``url`` right now."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            f"""SELECT quote_ident(c.relname) AS name FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                  AND {_NOT_YOYO.format(rel="c.relname")}"""
        )
        return {
            row["name"]: await conn.fetchval(f"SELECT count(*) FROM {row['name']}")
            for row in tables
        }
    finally:
        await conn.close()


async def insert_sample_rows(url: str, jobs: int = 3) -> None:
    """``jobs`` jobs, each with one row in every child table, using 0001's columns only.

    Columns added by later migrations are left to their defaults, so this works at any
    point of the migration history from 0001 on.
    """
    conn = await asyncpg.connect(url)
    try:
        for i in range(jobs):
            job_id = await conn.fetchval(
                "INSERT INTO jobs (job_type, media_url, prompt, parameters)"
                " VALUES ('audio', $1::text, 'summarise', '{\"lang\": \"en\"}'::jsonb)"
                " RETURNING id",
                f"https://example.com/{i}.mp3",
            )
            await conn.execute(
                "INSERT INTO media_assets (job_id, asset_type, file_path, file_size_bytes)"
                " VALUES ($1::uuid, 'original', '/media/a.mp3', 1024)",
                job_id,
            )
            await conn.execute(
                "INSERT INTO transcriptions (job_id, provider, text_content, language)"
                " VALUES ($1::uuid, 'whisper', 'hello', 'en')",
                job_id,
            )
            await conn.execute(
                "INSERT INTO analysis_results (job_id, analysis_type, summary, input_tokens)"
                " VALUES ($1::uuid, 'summary', 'a greeting', 12)",
                job_id,
            )
    finally:
        await conn.close()


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``media-store <args>`` in this process (the console script's own entry point)."""
    capsys.readouterr()
    code = cli_main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def parse_status(output: str) -> dict[str, str]:
    """``{migration id: "applied" | "pending"}`` from ``media-store migrate-status``."""
    return dict(
        (m.group(2), m.group(1))
        for m in re.finditer(r"^\s+\[(applied|pending)\] (\S+)$", output, re.MULTILINE)
    )


@pytest.fixture
def cli_db(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty database that ``DATABASE_URL`` points at, for the command-line tests."""
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    return empty_db_url


def test_migrations_are_found_in_order() -> None:
    assert MIGRATION_IDS, "no migrations found"
    assert MIGRATION_IDS[0].startswith("0001_")
    assert sorted(MIGRATION_IDS) == MIGRATION_IDS
    assert len(set(MIGRATION_IDS)) == len(MIGRATION_IDS)


@pytest.mark.parametrize("position", range(len(MIGRATION_IDS)), ids=MIGRATION_IDS)
async def test_rollback_restores_the_previous_schema_and_reapply_the_same_one(
    empty_db_url: str, position: int
) -> None:
    dsn = Dsn(empty_db_url)
    migration = MIGRATION_IDS[position]
    if position > 0:
        assert migrate.apply(dsn, target=MIGRATION_IDS[position - 1]) == list(
            MIGRATION_IDS[:position]
        )
    before = await catalog_dump(empty_db_url)

    assert migrate.apply(dsn, target=migration) == [migration]
    applied = await catalog_dump(empty_db_url)
    assert applied != before

    assert migrate.rollback(dsn) == [migration]
    assert await catalog_dump(empty_db_url) == before

    assert migrate.apply(dsn, target=migration) == [migration]
    assert await catalog_dump(empty_db_url) == applied


async def test_rolling_back_everything_leaves_nothing_behind(empty_db_url: str) -> None:
    dsn = Dsn(empty_db_url)
    empty = await catalog_dump(empty_db_url)
    assert all(not rows for rows in empty.values()), empty  # a fresh database's public schema

    assert migrate.apply(dsn) == MIGRATION_IDS
    assert migrate.rollback(dsn, count=len(MIGRATION_IDS)) == MIGRATION_IDS[::-1]

    assert await catalog_dump(empty_db_url) == empty
    assert all(not state.applied for state in migrate.status(dsn))


async def test_applying_again_changes_nothing_and_keeps_rows(db_url: str) -> None:
    await insert_sample_rows(db_url)
    counts = await table_counts(db_url)
    schema = await catalog_dump(db_url)

    assert migrate.apply(Dsn(db_url)) == []

    assert await table_counts(db_url) == counts
    assert {table: counts[table] for table in ZERO_ONE_TABLES} == dict.fromkeys(ZERO_ONE_TABLES, 3)
    assert await catalog_dump(db_url) == schema
    assert all(state.applied for state in migrate.status(Dsn(db_url)))


async def test_two_migrate_runs_at_once_apply_the_schema_once(
    empty_db_url: str, db_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": empty_db_url}
    runs = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "media_store", "migrate"),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    finished = await asyncio.wait_for(
        asyncio.gather(*(run.communicate() for run in runs)), timeout=120
    )
    outputs = [out.decode() for out, _ in finished]

    assert [run.returncode for run in runs] == [0, 0], outputs
    applied_counts = sorted(
        int(match.group(1))
        for output in outputs
        for match in re.finditer(r"applied (\d+) migration", output)
    )
    # One run applied everything; the other waited for it and found nothing left to do.
    assert applied_counts == [0, len(MIGRATION_IDS)], outputs

    conn = await asyncpg.connect(empty_db_url)
    try:
        recorded = await conn.fetch(
            "SELECT migration_id, count(*) AS n FROM _yoyo_migration GROUP BY migration_id"
        )
    finally:
        await conn.close()
    assert {row["migration_id"]: row["n"] for row in recorded} == dict.fromkeys(MIGRATION_IDS, 1)
    assert await catalog_dump(empty_db_url) == await catalog_dump(db_url)


async def test_migrate_status_lists_applied_and_pending(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_cli(["migrate-status"], capsys)
    assert code == 0
    assert parse_status(output) == dict.fromkeys(MIGRATION_IDS, "pending")

    migrate.apply(Dsn(cli_db), target=MIGRATION_IDS[0])

    code, output = run_cli(["migrate-status"], capsys)
    assert code == 0
    assert parse_status(output) == {
        migration: "applied" if i == 0 else "pending" for i, migration in enumerate(MIGRATION_IDS)
    }


async def test_cli_migrate_rollback_migrate_keeps_the_rows(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_cli(["migrate"], capsys)
    assert code == 0, output
    assert f"applied {len(MIGRATION_IDS)} migration(s)" in output
    await insert_sample_rows(cli_db)
    counts = await table_counts(cli_db)

    code, output = run_cli(["rollback"], capsys)
    assert code == 0, output
    assert f"- {MIGRATION_IDS[-1]}" in output
    code, output = run_cli(["migrate-status"], capsys)
    assert parse_status(output) == {
        migration: "pending" if migration == MIGRATION_IDS[-1] else "applied"
        for migration in MIGRATION_IDS
    }
    survivors = await table_counts(cli_db)
    assert survivors == {table: counts[table] for table in survivors}
    assert set(ZERO_ONE_TABLES) <= set(survivors)

    code, output = run_cli(["migrate"], capsys)
    assert code == 0, output
    assert f"+ {MIGRATION_IDS[-1]}" in output
    after = await table_counts(cli_db)
    assert {table: after[table] for table in survivors} == survivors
    code, output = run_cli(["migrate-status"], capsys)
    assert parse_status(output) == dict.fromkeys(MIGRATION_IDS, "applied")


async def test_cli_rollback_to_the_first_migration_and_back_keeps_the_rows(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(["migrate"], capsys)
    await insert_sample_rows(cli_db)
    counts = await table_counts(cli_db)
    later = len(MIGRATION_IDS) - 1

    if later:  # with 0001 alone there is nothing above it to roll back
        code, output = run_cli(["rollback", "--count", str(later)], capsys)
        assert code == 0, output
    code, output = run_cli(["migrate-status"], capsys)
    assert parse_status(output) == {
        migration: "applied" if i == 0 else "pending" for i, migration in enumerate(MIGRATION_IDS)
    }
    at_first = await table_counts(cli_db)
    assert set(at_first) == set(ZERO_ONE_TABLES)
    assert at_first == {table: counts[table] for table in ZERO_ONE_TABLES}

    code, output = run_cli(["migrate"], capsys)
    assert code == 0, output
    after = await table_counts(cli_db)
    assert {table: after[table] for table in ZERO_ONE_TABLES} == at_first
    assert at_first == dict.fromkeys(ZERO_ONE_TABLES, 3)


async def test_cli_rollback_count_below_one_is_refused(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(["migrate"], capsys)
    code, output = run_cli(["rollback", "--count", "0"], capsys)
    assert code == 2
    assert "MigrationError" in output
    assert all(state.applied for state in migrate.status(Dsn(cli_db)))


def test_unknown_target_is_refused_before_connecting() -> None:
    with pytest.raises(migrate.MigrationError, match="no migration"):
        migrate.apply(Dsn("postgresql://nobody@127.0.0.1:1/none"), target="9999_nothing")


# --- 0001's invariants, enforced by the database for any client (raw SQL, no library) -------


@dataclass(frozen=True)
class Refusal:
    """``sql`` must be refused with ``error``, naming ``constraint`` (or ``column``).

    ``$1`` in ``sql`` is a job: the pending job every case starts with, or the one ``prepare``
    returns. ``table`` is compared in full before and after: nothing may change.
    """

    sql: str
    error: type[asyncpg.PostgresError]
    table: str
    constraint: str | None = None
    column: str | None = None
    prepare: str | None = None
    args: tuple[Any, ...] = field(default=())


CHECK = asyncpg.CheckViolationError
NOT_NULL = asyncpg.NotNullViolationError
JOB = "INSERT INTO jobs (job_type, status, media_url{cols}) VALUES ('audio', {status}, 'u'{vals})"
FINISHED_JOB = (
    "INSERT INTO jobs (job_type, status, media_url, started_at, completed_at, "
    "processing_time_ms) VALUES ('audio', '{status}', 'u', now(), now(), 5) RETURNING id"
)

REFUSALS: dict[str, Refusal] = {
    "job status outside the enum": Refusal(
        JOB.format(cols="", status="'queued'", vals=""), CHECK, "jobs", "jobs_status_check"
    ),
    "job_type outside the enum": Refusal(
        "INSERT INTO jobs (job_type, media_url) VALUES ('image', 'u')",
        CHECK,
        "jobs",
        "jobs_job_type_check",
    ),
    "negative processing_time_ms": Refusal(
        JOB.format(cols=", processing_time_ms", status="'pending'", vals=", -1"),
        CHECK,
        "jobs",
        "jobs_processing_time_ms_check",
    ),
    "negative file_size_bytes": Refusal(
        "INSERT INTO media_assets (job_id, asset_type, file_path, file_size_bytes)"
        " VALUES ($1, 'original', '/a', -1)",
        CHECK,
        "media_assets",
        "media_assets_file_size_bytes_check",
    ),
    "negative input_tokens": Refusal(
        "INSERT INTO analysis_results (job_id, analysis_type, input_tokens)"
        " VALUES ($1, 'summary', -1)",
        CHECK,
        "analysis_results",
        "analysis_results_input_tokens_check",
    ),
    "negative output_tokens": Refusal(
        "INSERT INTO analysis_results (job_id, analysis_type, output_tokens)"
        " VALUES ($1, 'summary', -5)",
        CHECK,
        "analysis_results",
        "analysis_results_output_tokens_check",
    ),
    "transcription confidence above 1": Refusal(
        "INSERT INTO transcriptions (job_id, provider, text_content, confidence_score)"
        " VALUES ($1, 'whisper', 't', 1.01)",
        CHECK,
        "transcriptions",
        "transcriptions_confidence_score_check",
    ),
    "transcription confidence below 0": Refusal(
        "INSERT INTO transcriptions (job_id, provider, text_content, confidence_score)"
        " VALUES ($1, 'whisper', 't', -0.01)",
        CHECK,
        "transcriptions",
        "transcriptions_confidence_score_check",
    ),
    "analysis confidence above 1": Refusal(
        "INSERT INTO analysis_results (job_id, analysis_type, confidence_score)"
        " VALUES ($1, 'summary', 1.5)",
        CHECK,
        "analysis_results",
        "analysis_results_confidence_score_check",
    ),
    "analysis confidence below 0": Refusal(
        "UPDATE analysis_results SET confidence_score = -1 WHERE job_id = $1",
        CHECK,
        "analysis_results",
        "analysis_results_confidence_score_check",
    ),
    "job created_at null": Refusal(
        JOB.format(cols=", created_at", status="'pending'", vals=", NULL"),
        NOT_NULL,
        "jobs",
        column="created_at",
    ),
    "job updated_at null": Refusal(
        JOB.format(cols=", updated_at", status="'pending'", vals=", NULL"),
        NOT_NULL,
        "jobs",
        column="updated_at",
    ),
    "asset created_at null": Refusal(
        "INSERT INTO media_assets (job_id, asset_type, file_path, created_at)"
        " VALUES ($1, 'original', '/a', NULL)",
        NOT_NULL,
        "media_assets",
        column="created_at",
    ),
    "transcription created_at null": Refusal(
        "INSERT INTO transcriptions (job_id, provider, text_content, created_at)"
        " VALUES ($1, 'whisper', 't', NULL)",
        NOT_NULL,
        "transcriptions",
        column="created_at",
    ),
    "analysis created_at null": Refusal(
        "INSERT INTO analysis_results (job_id, analysis_type, created_at)"
        " VALUES ($1, 'summary', NULL)",
        NOT_NULL,
        "analysis_results",
        column="created_at",
    ),
    "completed job back to pending": Refusal(
        "UPDATE jobs SET status = 'pending' WHERE id = $1",
        CHECK,
        "jobs",
        "jobs_status_transition",
        prepare=FINISHED_JOB.format(status="completed"),
    ),
    "completed job to failed": Refusal(
        "UPDATE jobs SET status = 'failed' WHERE id = $1",
        CHECK,
        "jobs",
        "jobs_status_transition",
        prepare=FINISHED_JOB.format(status="completed"),
    ),
    "pending job straight to completed": Refusal(
        "UPDATE jobs SET status = 'completed' WHERE id = $1",
        CHECK,
        "jobs",
        "jobs_status_transition",
    ),
}


async def new_job(conn: asyncpg.Connection[asyncpg.Record]) -> uuid.UUID:
    job_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO jobs (job_type, media_url) VALUES ('video', 'https://x/v.mp4') RETURNING id"
    )
    return job_id


async def snapshot(conn: asyncpg.Connection[asyncpg.Record], table: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY id")]


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
async def test_database_refuses_what_breaks_an_invariant(
    raw: asyncpg.Connection[asyncpg.Record], case: Refusal
) -> None:
    job_id = await new_job(raw)
    await raw.execute(
        "INSERT INTO analysis_results (job_id, analysis_type, confidence_score)"
        " VALUES ($1, 'summary', 0.5)",
        job_id,
    )
    if case.prepare:
        job_id = await raw.fetchval(case.prepare)
    before = await snapshot(raw, case.table)

    with pytest.raises(case.error) as refused:
        await raw.execute(case.sql, *([job_id] if "$1" in case.sql else []))

    if case.constraint is not None:
        assert refused.value.constraint_name == case.constraint
    if case.column is not None:
        assert refused.value.column_name == case.column
    assert await snapshot(raw, case.table) == before


async def test_timestamps_are_not_null_and_filled_by_default(
    raw: asyncpg.Connection[asyncpg.Record],
) -> None:
    columns = await raw.fetch(
        """SELECT c.relname AS table_name, a.attname AS column_name, a.attnotnull AS not_null,
                  pg_get_expr(d.adbin, d.adrelid) AS default_expr
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE c.relname = any($1::text[]) AND a.attname IN ('created_at', 'updated_at')
             AND c.relnamespace = 'public'::regnamespace""",
        list(ZERO_ONE_TABLES),
    )
    assert {(row["table_name"], row["column_name"]) for row in columns} == {
        ("jobs", "created_at"),
        ("jobs", "updated_at"),
        ("media_assets", "created_at"),
        ("transcriptions", "created_at"),
        ("analysis_results", "created_at"),
    }
    assert all(row["not_null"] and row["default_expr"] for row in columns)

    job_id = await new_job(raw)
    await insert_children(raw, job_id)
    for table in ZERO_ONE_TABLES:
        key = "id" if table == "jobs" else "job_id"
        stamps = await raw.fetch(f"SELECT created_at FROM {table} WHERE {key} = $1", job_id)
        assert len(stamps) == 1
        assert stamps[0]["created_at"] is not None
    job = await raw.fetchrow("SELECT created_at, updated_at FROM jobs WHERE id = $1", job_id)
    assert job is not None
    assert job["updated_at"] >= job["created_at"]


async def test_updated_at_follows_every_raw_update(
    raw: asyncpg.Connection[asyncpg.Record],
) -> None:
    job_id = await new_job(raw)
    first = await raw.fetchval("SELECT updated_at FROM jobs WHERE id = $1", job_id)

    await raw.execute("UPDATE jobs SET prompt = 'describe' WHERE id = $1", job_id)
    second = await raw.fetchval("SELECT updated_at FROM jobs WHERE id = $1", job_id)
    assert second > first

    # Even a client that writes updated_at itself gets the database clock.
    await raw.execute(
        "UPDATE jobs SET updated_at = '2000-01-01T00:00:00Z', error = NULL WHERE id = $1", job_id
    )
    third = await raw.fetchval("SELECT updated_at FROM jobs WHERE id = $1", job_id)
    assert third > second


async def insert_children(conn: asyncpg.Connection[asyncpg.Record], job_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO media_assets (job_id, asset_type, file_path) VALUES ($1, 'frame', '/f')",
        job_id,
    )
    await conn.execute(
        "INSERT INTO transcriptions (job_id, provider, text_content) VALUES ($1, 'w', 't')",
        job_id,
    )
    await conn.execute(
        "INSERT INTO analysis_results (job_id, analysis_type) VALUES ($1, 'summary')", job_id
    )


async def test_deleting_a_job_deletes_its_children_only(
    raw: asyncpg.Connection[asyncpg.Record],
) -> None:
    doomed, kept = await new_job(raw), await new_job(raw)
    await insert_children(raw, doomed)
    await insert_children(raw, kept)

    assert await raw.execute("DELETE FROM jobs WHERE id = $1", doomed) == "DELETE 1"

    for table in ZERO_ONE_TABLES[1:]:
        rows = await raw.fetch(f"SELECT job_id FROM {table}")
        assert [row["job_id"] for row in rows] == [kept], table
