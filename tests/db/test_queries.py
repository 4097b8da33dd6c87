"""The query loader, and the schema check (`media-store check`) against real databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from media_store import Dsn, Settings
from media_store.db.queries import QUERIES, QueryFileError, load_dir, parse_file, query
from media_store.ops.schema_check import check_database, python_kinds
from media_store.repositories import REPOSITORIES, declared_queries

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_query_has_a_verb_noun_name_and_description() -> None:
    assert len(QUERIES) >= 24
    for q in QUERIES.values():
        assert "_" in q.name
        assert q.description
        assert q.sql
        assert q.sql.lstrip().split()[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}
        assert "SELECT *" not in q.sql.upper().replace("COUNT(*)", "")


def test_parse_file_reads_names_descriptions_and_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.sql",
        "-- file comment\n\n-- name: get_thing\n-- Fetch a thing.\nSELECT 1 AS x;\n\n"
        "-- name: list_things\n-- List them.\n-- (a second comment line)\nSELECT 2 AS y\n",
    )
    first, second = parse_file(path)
    assert (first.name, first.description, first.sql, first.line) == (
        "get_thing",
        "Fetch a thing.",
        "SELECT 1 AS x",
        3,
    )
    assert (second.name, second.line, second.sql) == ("list_things", 7, "SELECT 2 AS y")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: get_thing\n-- Fetch.\n\n-- name: other_thing\n-- x\nSELECT 1", "a.sql:1"),
        ("-- name: get_thing\n-- Fetch.\nSELECT 1\n-- name Bad-Name\nSELECT 2", "a.sql:4"),
        ("-- name: GetThing\n-- Fetch.\nSELECT 1", "malformed header"),
        ("-- name: get_thing\nSELECT 1", "no description"),
        ("SELECT 1\n-- name: get_thing\n-- d\nSELECT 1", "before the first"),
    ],
    ids=["empty query", "malformed header line", "not verb_noun", "no description", "orphan"],
)
def test_malformed_files_fail_with_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "a.sql", text)
    with pytest.raises(QueryFileError, match=message) as info:
        parse_file(path)
    assert str(path) in str(info.value)


def test_duplicate_names_across_files_fail_with_both_locations(tmp_path: Path) -> None:
    write(tmp_path, "a.sql", "-- name: get_thing\n-- one\nSELECT 1")
    write(tmp_path, "b.sql", "\n-- name: get_thing\n-- two\nSELECT 2")
    with pytest.raises(QueryFileError, match="duplicate") as info:
        load_dir(tmp_path)
    assert "b.sql:2" in str(info.value) and "a.sql:1" in str(info.value)


def test_asking_for_an_undefined_query_names_it_and_its_traceback_the_calling_line() -> None:
    with pytest.raises(QueryFileError) as info:
        query("get_unicorn")
    assert "get_unicorn" in str(info.value)
    assert any(Path(str(entry.path)) == Path(__file__) for entry in info.traceback)


def test_a_repository_asking_for_a_missing_query_fails_at_import(tmp_path: Path) -> None:
    module = write(
        tmp_path,
        "bad_repo.py",
        "from media_store.db.queries import query\n\n_Q = query('get_nothing_here')\n",
    )
    proc = subprocess.run(
        [sys.executable, str(module)], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert proc.returncode != 0
    assert "QueryFileError" in proc.stderr
    assert f'File "{module}", line 3' in proc.stderr


def test_python_kinds_of_annotations() -> None:
    assert python_kinds(int | None) == {"int"}
    assert "array of text" in python_kinds(list[str])
    assert python_kinds(dict[str, int]) == {"json"}


# --- the schema check against live databases -----------------------------------------------------


async def test_check_passes_on_a_migrated_database(settings: Settings) -> None:
    problems = await check_database(settings)
    assert problems == []
    # every shipped query is used by the code and was declared with what it returns
    assert set(declared_queries()) == set(QUERIES)


async def test_every_query_declares_its_parameters_and_result_columns(db_url: str) -> None:
    # The check can only compare what the code declares: a query without declarations would
    # pass unchecked.
    conn = await asyncpg.connect(db_url)
    try:
        for name, q in declared_queries().items():
            assert q.params is not None, f"{q.location} {name}: no params= declared"
            stmt = await conn.prepare(q.sql)
            if stmt.get_attributes():
                assert q.returns is not None, f"{q.location} {name}: no returns= declared"
    finally:
        await conn.close()


async def test_check_lists_every_mismatch_on_an_altered_database(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "ALTER TABLE analysis_results DROP CONSTRAINT analysis_results_input_tokens_check;"
            "ALTER TABLE analysis_results ALTER COLUMN input_tokens TYPE text;"
            "ALTER TABLE media_assets RENAME COLUMN mime_type TO content_type;"
            "ALTER TABLE analysis_results ALTER COLUMN created_at TYPE timestamp;"
        )
    finally:
        await conn.close()
    problems = await check_database(Settings(dsn=Dsn(db_url)))
    text = "\n".join(problems)
    assert "column 'input_tokens' is text" in text
    assert "get_analysis_result" in text
    assert "mime_type" in text and "does not prepare" in text
    assert "'created_at' is timestamp" in text
    # unaffected queries are not reported
    assert "create_job" not in text


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "media_store", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=120,
    )


async def test_check_command_exit_codes(db_url: str) -> None:
    ok = run_cli("check", database_url=db_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every named query matches" in ok.stdout
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("ALTER TABLE jobs ALTER COLUMN processing_time_ms TYPE numeric")
    finally:
        await conn.close()
    bad = run_cli("check", database_url=db_url)
    assert bad.returncode == 1
    assert "mismatch" in bad.stdout
    assert "processing_time_ms" in bad.stdout


def test_each_repository_lists_its_queries_in_the_order_of_its_sql_files() -> None:
    # A reader who opens a repository and its .sql file side by side finds the same
    # operations in the same order; no query is listed by two repositories.
    seen: set[str] = set()
    for repository in REPOSITORIES:
        listed = [q.name for q in repository.queries]
        assert listed, f"{repository.__name__} lists no queries"
        assert not seen & set(listed), f"{repository.__name__} repeats another's queries"
        seen |= set(listed)
        # transcriptions.sql, then words.sql, then search.sql: the row first, then its
        # words, then the search over them
        in_files = sorted(
            listed,
            key=lambda name: (
                {"words.sql": 1, "search.sql": 2}.get(QUERIES[name].path.name, 0),
                QUERIES[name].path.name,
                QUERIES[name].line,
            ),
        )
        assert listed == in_files, repository.__name__


def test_each_part_of_the_jobs_repository_lists_its_queries_in_the_order_of_its_sql_file() -> None:
    # JobRepository is composed of parts, each beside its own .sql file: each lists the
    # queries of its file in order, none is listed twice, and together they are
    # JobRepository's.
    from media_store.repositories import (
        JobAdmin,
        JobAdminReads,
        JobEnqueue,
        JobQueue,
        JobReads,
        JobRepository,
    )
    from media_store.repositories.job_refusals import JobRefusals
    from media_store.repositories.trace_contexts import JobTraceContexts

    own = {
        "admin.sql": [*JobAdmin.queries, *JobAdminReads.queries],
        "enqueue.sql": list(JobEnqueue.queries),
        "job_refusals.sql": list(JobRefusals.queries),
        "queue.sql": list(JobQueue.queries),
        "trace_contexts.sql": list(JobTraceContexts.queries),
    }
    reads = [q for q in JobReads.queries if q.path.name == "jobs.sql"]
    writes = [q for q in JobRepository.queries if q.path.name == "jobs.sql" and q not in reads]
    own["jobs.sql"] = [*reads, *writes]
    for file, listed in own.items():
        assert all(q.path.name == file for q in listed), file
        in_file = [q.name for q in QUERIES.values() if q.path.name == file]
        assert [q.name for q in listed] == in_file, file
    every = [q.name for listed in own.values() for q in listed]
    assert len(every) == len(set(every))
    assert sorted(every) == sorted(q.name for q in JobRepository.queries)


def test_job_reads_hold_only_reads() -> None:
    # store.replica.jobs is built from JobReads: it must offer no write, and its statements
    # must write and lock nothing.
    from media_store.repositories import JobReads, JobRepository

    public = {name for name in dir(JobReads) if not name.startswith("_")}
    assert public == {
        "count_by_status",
        "executor",
        "get_all",
        "get_by_id",
        "get_by_status",
        "list_jobs",
        "queries",
        "stats",
    }
    assert issubclass(JobRepository, JobReads)
    for q in JobReads.queries:
        words = set(q.sql.upper().replace("(", " ").split())
        assert not words & {"INSERT", "UPDATE", "DELETE", "COPY"}, q.name
