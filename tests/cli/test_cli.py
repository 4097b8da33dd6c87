"""What a newcomer meets first: ``media-store`` help and refusals, and the test run's header."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from media_store import Dsn, migrate
from media_store.cli.main import main as cli_main
from tests.support.harness import TEST_DSN_ENV, describe_source

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_IDS = migrate.migration_ids()
COMMANDS = [
    "migrate",
    "rollback",
    "migrate-status",
    "grant",
    "check",
    "demo",
    "import",
    "jobs",
]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asr"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``media-store <args>`` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = cli_main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def applied(url: str) -> list[str]:
    return [state.id for state in migrate.status(Dsn(url)) if state.applied]


async def jobs_table_rows(url: str) -> int | None:
    """Rows in ``jobs``, or None when the table does not exist."""
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT to_regclass('jobs') IS NULL"):
            return None
        return int(await conn.fetchval("SELECT count(*) FROM jobs"))
    finally:
        await conn.close()


async def insert_job(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO jobs (job_type, media_url) VALUES ('audio', 's3://b/a')")
    finally:
        await conn.close()


# --- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *COMMANDS], ids=["media-store", *COMMANDS])
def test_help_is_plain_text_without_backticks(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main([command, "--help"] if command else ["--help"])
    shown = capsys.readouterr().out

    assert exited.value.code == 0
    assert "`" not in shown
    assert shown.startswith(f"usage: media-store{' ' + command if command else ''}")
    if command is None:
        assert "media-store: migrate and inspect the schema" in shown
        assert all(name in shown for name in COMMANDS)
    else:
        description = shown.split("\n\n")[1]  # what the command does, after the usage line
        assert description.strip() and not description.startswith(("options:", "positional"))


def test_rollback_help_says_the_first_migration_needs_yes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli_main(["rollback", "--help"])
    shown = capsys.readouterr().out
    assert "--yes" in shown and "drops every table" in shown


# --- rollback of the first migration -------------------------------------------------------------


async def test_rollback_that_would_revert_the_first_migration_refuses_without_yes(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    await insert_job(db_url)

    code, out, err = run_cli(["rollback", "--count", str(len(MIGRATION_IDS))], capsys)

    assert code == 2
    assert out == ""
    assert MIGRATION_IDS[0] in err and "--yes" in err and "Nothing was done" in err
    assert applied(db_url) == MIGRATION_IDS
    assert await jobs_table_rows(db_url) == 1


async def test_rollback_asks_for_yes_even_for_one_migration_when_it_is_the_first(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate.apply(Dsn(empty_db_url), target=MIGRATION_IDS[0])
    monkeypatch.setenv("DATABASE_URL", empty_db_url)

    code, _, err = run_cli(["rollback"], capsys)

    assert code == 2 and "--yes" in err
    assert applied(empty_db_url) == MIGRATION_IDS[:1]
    assert await jobs_table_rows(empty_db_url) == 0


async def test_rollback_with_yes_reverts_the_first_migration_too(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)

    code, out, err = run_cli(["rollback", "--count", "99", "--yes"], capsys)

    assert code == 0, err
    assert out.splitlines()[1:] == [f"  - {m}" for m in reversed(MIGRATION_IDS)]
    assert applied(db_url) == []
    assert await jobs_table_rows(db_url) is None


async def test_rollback_of_later_migrations_needs_no_yes(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if len(MIGRATION_IDS) < 2:
        pytest.skip("only the first migration exists")
    monkeypatch.setenv("DATABASE_URL", db_url)

    code, _, err = run_cli(["rollback", "--count", str(len(MIGRATION_IDS) - 1)], capsys)

    assert code == 0, err
    assert applied(db_url) == MIGRATION_IDS[:1]


# --- migrate-status without a database -----------------------------------------------------------


def test_migrate_status_without_database_url_prints_only_the_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "media_store", "migrate-status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(
        "media-store migrate-status: ConfigurationError: no database configured"
    )
    assert len(done.stderr.splitlines()) == 1, done.stderr  # no traceback


def test_migrate_status_on_an_unreachable_server_prints_no_header(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 1 on localhost: nothing listens there, the connection is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:s3cret@127.0.0.1:1/db")

    code, out, err = run_cli(["migrate-status"], capsys)

    assert code == 2
    assert out == ""
    assert err.startswith("media-store migrate-status: DatabaseUnavailable: cannot connect to")
    assert "s3cret" not in err


# --- which server `make test` uses ----------------------------------------------------------


def test_the_test_run_header_names_the_server_without_its_password() -> None:
    env = {**os.environ, TEST_DSN_ENV: "postgresql://tester:s3cret@db.example:5432/postgres"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    header = "media_store test server: MEDIA_STORE_TEST_DSN = "
    assert f"{header}postgresql://tester:***@db.example:5432/postgres" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr


def test_the_other_servers_are_named_in_words() -> None:
    assert "Docker" in describe_source("container", {})
    assert "embedded PostgreSQL" in describe_source("embedded", {})


# --- import ------------------------------------------------------------------------------------


def run_command(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


async def test_import_runs_from_the_command_line_and_a_second_run_stores_nothing(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        job_id = await conn.fetchval(
            "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 's3://b/a') RETURNING id"
        )
        env = {**os.environ, "DATABASE_URL": db_url}
        argv = [sys.executable, "-m", "media_store", "import", "--job", str(job_id)]
        argv += ["--no-progress", str(FIXTURES / "deepgram.json"), str(FIXTURES / "vosk.json")]
        first = await asyncio.to_thread(run_command, argv, env)
        assert first.returncode == 0, first.stderr
        stored = await conn.fetchval(
            "SELECT count(*) FROM transcriptions WHERE job_id = $1", job_id
        )
        words = await conn.fetchval("SELECT sum(word_count) FROM transcription_word_segments")
        assert stored == 2 and words > 0
        again = await asyncio.to_thread(run_command, argv, env)
        assert again.returncode == 0, again.stderr
        assert await conn.fetchval("SELECT count(*) FROM transcriptions") == 2
        assert (
            await conn.fetchval("SELECT sum(word_count) FROM transcription_word_segments") == words
        )
    finally:
        await conn.close()


# --- grant ----------------------------------------------------------------------------------------


async def test_grant_gives_a_runtime_role_table_rights_and_a_dry_run_gives_none(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"ms_cli_{os.urandom(4).hex()}"
    conn = await asyncpg.connect(db_url)
    await conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        monkeypatch.setenv("DATABASE_URL", db_url)
        rights = "SELECT has_table_privilege($1, 'jobs', 'INSERT')"
        code, out, err = await asyncio.to_thread(run_cli, ["grant", role, "--dry-run"], capsys)
        assert (code, err) == (0, "") and "GRANT" in out
        assert await conn.fetchval(rights, role) is False
        code, out, err = await asyncio.to_thread(run_cli, ["grant", role], capsys)
        assert (code, err) == (0, "") and "granted" in out
        assert await conn.fetchval(rights, role) is True
        code, out, err = await asyncio.to_thread(run_cli, ["grant", "no_such_role_here"], capsys)
        assert code == 2 and "no_such_role_here" in err
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE "{role}"')
        await conn.close()
