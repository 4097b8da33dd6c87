"""The test harness itself: where the database comes from, and the embedded server."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from tests.support.harness import (
    HOW_TO_PROVIDE,
    TEST_DSN_ENV,
    NoTestDatabase,
    choose_source,
    docker_answers,
    provide_server,
    random_name,
    with_database,
)

DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def probe(answer: bool, calls: list[str], name: str) -> Callable[[], bool]:
    def answer_and_record() -> bool:
        calls.append(name)
        return answer

    return answer_and_record


@pytest.mark.parametrize(
    ("env", "docker", "embedded", "chosen", "probed"),
    [
        ({TEST_DSN_ENV: DSN}, True, True, "env", []),
        ({TEST_DSN_ENV: DSN}, False, False, "env", []),
        ({}, True, True, "container", ["docker"]),
        ({TEST_DSN_ENV: ""}, True, False, "container", ["docker"]),
        ({}, False, True, "embedded", ["docker", "embedded"]),
    ],
    ids=["env wins", "env without others", "docker", "empty env is unset", "embedded"],
)
def test_choose_source_takes_the_first_available_in_order(
    env: dict[str, str], docker: bool, embedded: bool, chosen: str, probed: list[str]
) -> None:
    calls: list[str] = []
    source = choose_source(
        env, docker=probe(docker, calls, "docker"), embedded=probe(embedded, calls, "embedded")
    )
    assert source == chosen
    assert calls == probed  # a later source is not even probed once one answers


def test_choose_source_without_any_database_says_how_to_provide_one() -> None:
    calls: list[str] = []
    with pytest.raises(NoTestDatabase) as none:
        choose_source(
            {}, docker=probe(False, calls, "docker"), embedded=probe(False, calls, "embedded")
        )
    assert str(none.value) == HOW_TO_PROVIDE
    for hint in (TEST_DSN_ENV, "postgresql://", "Docker", "pip install pgserver"):
        assert hint in str(none.value)
    assert calls == ["docker", "embedded"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres",
         "postgresql://postgres@127.0.0.1:5432/ms_x"),
        ("postgresql://postgres:@/postgres?host=/tmp/tmpabc",
         "postgresql://postgres:@/ms_x?host=/tmp/tmpabc"),
        ("postgresql://u:p%40ss@db:6543?sslmode=disable&host=/run/pg",
         "postgresql://u:p%40ss@db:6543/ms_x?sslmode=disable&host=/run/pg"),
    ],
    ids=["tcp", "unix socket via host=", "no database and two params"],
)  # fmt: skip
def test_with_database_replaces_only_the_database(url: str, expected: str) -> None:
    assert with_database(url, "ms_x") == expected


def test_random_names_are_distinct_lowercase_identifiers() -> None:
    names = {random_name("ms_test") for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("ms_test_") and name.isidentifier() for name in names)
    assert all(name == name.lower() for name in names)  # no quoting surprises in SQL


def test_provide_server_from_env_uses_the_url_as_given() -> None:
    with provide_server("env", env={TEST_DSN_ENV: DSN}) as server:
        assert (server.source, server.admin_url) == ("env", DSN)


@pytest.mark.slow
def test_provide_server_embedded_runs_a_real_postgresql_and_cleans_up() -> None:
    with provide_server("embedded", env={}) as server:
        assert server.source == "embedded"
        name = random_name("ms_harness")
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        with psycopg.connect(with_database(server.admin_url, name)) as other:
            assert other.execute("SELECT current_database()").fetchone() == (name,)
        data_dir = Path(parse_qs(urlsplit(server.admin_url).query)["host"][0])
        assert data_dir.is_dir()

    assert version is not None
    assert int(version[0]) >= 130000  # gen_random_uuid() is built in from 13 on
    assert not data_dir.exists()  # stopped and deleted on exit


def test_docker_probe_is_false_without_an_engine_and_leaves_no_socket_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An engine address that cannot answer (this machine has no Docker): the probe must say
    # no, and the failed client's socket must not surface later as a ResourceWarning.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert docker_answers() is False
    gc.collect()  # with filterwarnings=error, a leaked socket fails this test here
