"""The FastAPI integration and the example service (examples/api.py), over real HTTP.

Requests go through httpx's ASGI transport into the application in this process (the same
ASGI calls a server makes), and in one test through a real uvicorn server process on a socket
of its own. Every request reaches PostgreSQL: the test's own migrated database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, field_validator
from starlette.requests import HTTPConnection

from examples.api import create_app
from media_store import Dsn, Settings, Store
from media_store.contrib.fastapi import (
    DEFAULT_RETRY_AFTER_S,
    MAX_ERROR_MESSAGE,
    STATE_KEY,
    StoreDep,
    TransactionDep,
    get_store,
)

ROOT = Path(__file__).resolve().parents[2]
Raw: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

WORDS = [
    {"word": "hello", "start": 0.0, "end": 0.4, "confidence": 0.9, "speaker": "A"},
    {"word": "there", "start": 0.5, "end": 0.9, "confidence": 0.8, "speaker": "A"},
    {"word": "general", "start": 1.2, "end": 1.7, "speaker": "B"},
    {"word": "kenobi", "start": 1.8, "end": 2.4, "confidence": 1.0, "speaker": "B"},
]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The application started (its lifespan entered, as a server does) and a client for it.

    Errors no handler maps come back as the 500 a server sends, not raised in the test."""
    async with app.router.lifespan_context(app), client_of(app) as client:
        yield client


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def store_of(app: FastAPI) -> Store:
    store = getattr(app.state, STATE_KEY)
    assert isinstance(store, Store)
    return store


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client


async def count(raw: Raw, table: str) -> int:
    value = await raw.fetchval(f"SELECT count(*) FROM {table}")  # a fixed table name
    assert isinstance(value, int)
    return value


async def backends(raw: Raw) -> list[asyncpg.Record]:
    """The other sessions on this test's database (the application's pool)."""
    return await raw.fetch(
        "SELECT pid, state FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )


async def wait_for_no_backends(raw: Raw) -> None:
    """Until the server has ended every other session on the database: a closed connection's
    backend exits just after the client hangs up."""
    async with asyncio.timeout(30):
        while await backends(raw):  # noqa: ASYNC110 - polling the database: no event
            await asyncio.sleep(0.02)


async def create_job(client: httpx.AsyncClient, name: str = "a") -> dict[str, Any]:
    response = await client.post(
        "/jobs", json={"job_type": "video", "media_url": f"https://example.com/{name}.mp4"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def processing_job(client: httpx.AsyncClient) -> dict[str, Any]:
    job = await create_job(client)
    response = await client.post(f"/jobs/{job['id']}/start")
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    return started


async def create_transcription(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.post(
        "/transcriptions",
        json={
            "job_id": job_id,
            "provider": "whisper",
            "text_content": "hello there general kenobi",
            "word_timestamps": WORDS,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def as_stored(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Words as the library returns them: every key present."""
    return [{"confidence": None, "speaker": None, **word} for word in words]


def analysis(job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "analysis_type": "summary",
        "summary": "two people greet",
        "model_used": "some-llm",
    }


# --- the package ----------------------------------------------------------------------------------


def test_importing_media_store_imports_no_web_framework() -> None:
    code = "import media_store, sys; assert 'fastapi' not in sys.modules, 'fastapi imported'"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


# --- jobs -----------------------------------------------------------------------------------------


async def test_create_job_answers_201_with_the_stored_job(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    job = await create_job(client)
    row = await raw.fetchrow(
        "SELECT status, media_url FROM jobs WHERE id = $1", uuid.UUID(job["id"])
    )
    assert row is not None
    assert (row["status"], row["media_url"]) == ("pending", "https://example.com/a.mp4")
    assert job["status"] == "pending"
    assert job["parameters"] == {}
    assert job["result"] is None


async def test_create_job_with_a_bad_body_is_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    response = await client.post("/jobs", json={"job_type": "video", "media_url": ""})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "media_url"]]
    # the library's own field rules hold at the HTTP boundary: no NUL in stored text
    response = await client.post(
        "/jobs", json={"job_type": "video", "media_url": "u", "parameters": {"x": "a\x00b"}}
    )
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "parameters"]]
    assert await count(raw, "jobs") == 0


async def test_a_422_repeats_no_input_however_large(client: httpx.AsyncClient) -> None:
    huge = "x" * 10_000_000
    response = await client.post("/jobs", json={"job_type": huge, "media_url": "u"})
    assert response.status_code == 422
    assert len(response.content) < 1_000
    [error] = response.json()["detail"]
    assert set(error) == {"loc", "msg", "type"}
    assert error["loc"] == ["body", "job_type"]
    assert error["type"] == "enum"


class Echo(BaseModel):
    text: str

    @field_validator("text")
    @classmethod
    def refuse(cls, value: str) -> str:
        raise ValueError(f"refused {value}")  # the whole value, as a careless check might


async def test_a_422_cuts_a_message_that_quotes_a_whole_value(settings: Settings) -> None:
    app = create_app(settings)

    @app.post("/echo")
    async def echo(body: Echo) -> None:
        pass

    async with serving(app) as client:
        response = await client.post("/echo", json={"text": "y" * 1_000_000})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert len(error["msg"]) == MAX_ERROR_MESSAGE
    assert error["msg"].startswith("Value error, refused yyy")
    assert error["msg"].endswith("y…")


async def test_read_job_is_200_then_404_for_an_unknown_id_and_422_for_no_uuid(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    response = await client.get(f"/jobs/{job['id']}")
    assert response.status_code == 200
    assert response.json() == job
    missing = uuid.uuid4()
    response = await client.get(f"/jobs/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"job {missing} does not exist"}
    response = await client.get("/jobs/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "job_id"]


async def test_list_jobs_walks_every_job_newest_first_with_the_cursor(
    client: httpx.AsyncClient,
) -> None:
    created = [await create_job(client, str(i)) for i in range(5)]
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 2}
    while True:
        response = await client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        if page["next"] is None:
            break
        params = {"limit": 2, "after": page["next"]}
    assert seen == [job["id"] for job in reversed(created)]
    assert pages == 3


async def test_list_jobs_refuses_a_bad_cursor_and_a_bad_limit_with_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/jobs", params={"after": "garbage"})
    assert response.status_code == 422
    # the library's refusal, named as FastAPI names its own (checked_by)
    assert response.json()["detail"] == [
        {"loc": ["query", "after"], "msg": "invalid job cursor 'garbage'", "type": "value_error"}
    ]
    response = await client.get("/jobs", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_counts_give_every_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/counts")
    assert response.json() == {
        "pending": 0,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    await create_job(client)
    await processing_job(client)
    response = await client.get("/jobs/counts")
    assert response.status_code == 200
    assert response.json() == {
        "pending": 1,
        "processing": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }


async def test_start_is_200_once_then_409_and_404_for_an_unknown_job(
    client: httpx.AsyncClient,
) -> None:
    job = await processing_job(client)
    assert job["status"] == "processing"
    response = await client.post(f"/jobs/{job['id']}/start")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"job {job['id']} cannot move from processing to processing"
    }
    response = await client.post(f"/jobs/{uuid.uuid4()}/start")
    assert response.status_code == 404


# --- retries with an Idempotency-Key --------------------------------------------------------------


async def test_a_job_created_again_with_its_idempotency_key_is_the_same_job(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    body = {"job_type": "video", "media_url": "s3://b/talk.mp4", "parameters": {"lang": "en"}}
    key = {"Idempotency-Key": "upload-7f3a"}
    first = await client.post("/jobs", json=body, headers=key)
    assert first.status_code == 201, first.text
    # the client timed out and retries: what the first attempt made, no 409, no second row
    again = await client.post("/jobs", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert await count(raw, "jobs") == 1
    # the key stays taken once the job moved on (scope "forever"): a late retry still finds it
    job_id = first.json()["id"]
    assert (await client.post(f"/jobs/{job_id}/start")).status_code == 200
    assert (await client.post("/analysis-results", json=analysis(job_id))).status_code == 201
    late = await client.post("/jobs", json=body, headers=key)
    assert (late.status_code, late.json()["id"], late.json()["status"]) == (
        200,
        job_id,
        "completed",
    )
    assert await count(raw, "jobs") == 1


async def test_an_idempotency_key_reused_for_another_body_is_422(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    key = {"Idempotency-Key": "upload-1"}
    body = {"job_type": "video", "media_url": "s3://b/a.mp4"}
    first = await client.post("/jobs", json=body, headers=key)
    assert first.status_code == 201
    response = await client.post("/jobs", json={**body, "media_url": "s3://b/b.mp4"}, headers=key)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert first.json()["id"] in error["msg"]
    # a body naming another key than the header's
    response = await client.post(
        "/jobs", json={**body, "idempotency_key": "other"}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "idempotency_key"]
    response = await client.post("/jobs", json=body, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await count(raw, "jobs") == 1


async def test_a_delivery_sent_again_with_its_idempotency_key_is_the_same_result(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    job = await processing_job(client)
    key = {"Idempotency-Key": "delivery-1"}
    first = await client.post("/analysis-results", json=analysis(job["id"]), headers=key)
    assert first.status_code == 201, first.text
    # committed, but the client hung up before the answer: the retry is told what was stored
    again = await client.post("/analysis-results", json=analysis(job["id"]), headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert await count(raw, "analysis_results") == 1
    other = {**analysis(job["id"]), "summary": "something else"}
    response = await client.post("/analysis-results", json=other, headers=key)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    # without the key (or with another), a second delivery is still refused: the job is done
    response = await client.post("/analysis-results", json=analysis(job["id"]))
    assert response.status_code == 409
    response = await client.post(
        "/analysis-results", json=analysis(job["id"]), headers={"Idempotency-Key": "delivery-2"}
    )
    assert response.status_code == 409
    assert await count(raw, "analysis_results") == 1


# --- analysis results: a transaction per request --------------------------------------------------


async def test_deliver_analysis_stores_the_result_and_completes_the_job(
    client: httpx.AsyncClient,
) -> None:
    job = await processing_job(client)
    response = await client.post("/analysis-results", json=analysis(job["id"]))
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["summary"] == "two people greet"
    job_now = (await client.get(f"/jobs/{job['id']}")).json()
    assert job_now["status"] == "completed"
    assert job_now["result"] == {"analysis_result_id": stored["id"], "summary": "two people greet"}
    response = await client.get(f"/jobs/{job['id']}/analysis-results")
    assert response.status_code == 200
    assert response.json() == [stored]


async def test_a_delivery_failing_halfway_is_409_and_leaves_nothing_written(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    job = await create_job(client)  # pending: the insert succeeds, completing it is refused
    before = await count(raw, "analysis_results")
    response = await client.post("/analysis-results", json=analysis(job["id"]))
    assert response.status_code == 409
    assert response.json() == {"detail": f"job {job['id']} cannot move from pending to completed"}
    assert await count(raw, "analysis_results") == before
    assert (await client.get(f"/jobs/{job['id']}")).json() == job


async def test_a_delivery_refused_at_commit_is_answered_with_the_refusal(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    # A deferred constraint fails only at COMMIT, after the endpoint returned: the client must
    # get the refusal, not a 201 for a transaction that then rolled back.
    await raw.execute(
        """
        CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'refused at commit'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'refused_at_commit';
        END $$;
        CREATE CONSTRAINT TRIGGER refused_at_commit AFTER INSERT ON analysis_results
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
        """
    )
    job = await processing_job(client)
    response = await client.post("/analysis-results", json=analysis(job["id"]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "refused by constraint refused_at_commit"
    assert await count(raw, "analysis_results") == 0
    assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "processing"


async def test_deliver_analysis_for_an_unknown_job_is_404(
    client: httpx.AsyncClient, raw: Raw
) -> None:
    response = await client.post("/analysis-results", json=analysis(str(uuid.uuid4())))
    assert response.status_code == 404
    assert await count(raw, "analysis_results") == 0


async def test_analysis_results_of_an_unknown_job_are_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/jobs/{uuid.uuid4()}/analysis-results")
    assert response.status_code == 404


# --- transcriptions and their words ---------------------------------------------------------------


async def test_a_transcription_round_trips_its_words_through_json(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    transcription = await create_transcription(client, job["id"])
    assert transcription["word_timestamps"] == as_stored(WORDS)


async def test_words_between_answers_the_words_starting_in_the_window(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    transcription = await create_transcription(client, job["id"])
    url = f"/transcriptions/{transcription['id']}/words"
    response = await client.get(url, params={"t0": 0.5, "t1": 1.8})
    assert response.status_code == 200
    assert response.json() == as_stored(WORDS[1:3])
    response = await client.get(url, params={"t0": 10, "t1": 20})
    assert response.json() == []


async def test_words_between_is_404_for_an_unknown_transcription_and_422_for_nan(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/transcriptions/{uuid.uuid4()}/words?t0=0&t1=1")
    assert response.status_code == 404
    job = await create_job(client)
    transcription = await create_transcription(client, job["id"])
    url = f"/transcriptions/{transcription['id']}/words"
    response = await client.get(url, params={"t0": 0, "t1": "inf"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error == {
        "loc": ["query", "t1"],
        "msg": "t1 must be a finite number, got inf",
        "type": "value_error",
    }
    response = await client.get(url, params={"t0": "nan", "t1": "nan"})
    assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [
        (["query", "t0"], "t0 must be a finite number, got nan"),
        (["query", "t1"], "t1 must be a finite number, got nan"),
    ]


async def test_words_appended_out_of_order_are_409_and_bad_words_422_naming_the_word(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    transcription = await create_transcription(client, job["id"])
    url = f"/transcriptions/{transcription['id']}/words"
    later = [{"word": "you", "start": 3.0, "end": 3.2}]
    response = await client.post(url, json=later)
    assert (response.status_code, response.json()) == (200, 1)
    response = await client.post(url, json=[{"word": "early", "start": 1.0, "end": 1.1}])
    assert response.status_code == 409
    response = await client.post(url, json=[*later, {"word": "x", "start": 4.0, "end": 3.0}])
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"]
    assert "word 1 (end): the word ends (3.0) before it starts (4.0)" in error["msg"]
    response = await client.get(url, params={"t0": 0, "t1": 100})
    assert response.json() == as_stored([*WORDS, *later])


async def test_a_transcription_of_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/transcriptions",
        json={"job_id": str(uuid.uuid4()), "provider": "p", "text_content": "t"},
    )
    assert response.status_code == 404


# --- OpenAPI --------------------------------------------------------------------------------------


async def test_openapi_shows_the_librarys_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    schemas = spec["components"]["schemas"]
    for name in ("Job", "JobCreate", "Transcription", "TranscriptionCreate"):
        assert name in schemas
    assert set(schemas["Job"]["properties"]) >= {"id", "status", "parameters", "result"}
    read = spec["paths"]["/jobs/{job_id}"]["get"]["responses"]["200"]
    assert read["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Job"}
    words = spec["paths"]["/transcriptions/{transcription_id}/words"]["get"]["responses"]["200"]
    assert words["content"]["application/json"]["schema"]["type"] == "array"
    assert "anyOf" in schemas["Transcription"]["properties"]["word_timestamps"]
    assert spec["paths"]["/analysis-results"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/AnalysisResultCreate"}


# --- the error mapping ----------------------------------------------------------------------------


def mapping_app(settings: Settings) -> FastAPI:
    """The example plus routes that fail in ways its endpoints do not."""
    app = create_app(settings)

    @app.post("/jobs/{job_id}/complete-as/{worker_id}")
    async def complete_as(job_id: uuid.UUID, worker_id: str, store: StoreDep) -> None:
        await store.jobs.complete(job_id, worker_id)

    @app.post("/create-then-raise/{kind}")
    async def create_then_raise(kind: str, tx: TransactionDep) -> None:
        await tx.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        if kind == "http":
            raise HTTPException(status_code=418, detail="no tea")
        raise RuntimeError("a bug in the endpoint")

    return app


async def test_a_lost_lease_is_409(settings: Settings) -> None:
    app = mapping_app(settings)
    async with serving(app) as client:
        job = await create_job(client)
        [claimed] = await store_of(app).jobs.claim("worker-a")
        assert str(claimed.id) == job["id"]
        response = await client.post(f"/jobs/{job['id']}/complete-as/worker-b")
    assert response.status_code == 409
    assert "worker-b" in response.json()["detail"]


@pytest.mark.parametrize(("kind", "status"), [("http", 418), ("bug", 500)])
async def test_an_endpoint_raising_rolls_its_transaction_back(
    settings: Settings, raw: Raw, kind: str, status: int
) -> None:
    async with serving(mapping_app(settings)) as client:
        response = await client.post(f"/create-then-raise/{kind}")
    assert response.status_code == status
    assert await count(raw, "jobs") == 0


async def test_an_exhausted_pool_is_503_with_retry_after(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"min_size": 1, "max_size": 1, "acquire_timeout": 0.2})
    )
    async with serving(app) as client:
        job = await create_job(client)
        async with store_of(app).transaction():  # holds the only connection
            response = await client.get(f"/jobs/{job['id']}")
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(DEFAULT_RETRY_AFTER_S)
        assert response.json() == {"detail": "the database is unavailable; retry later"}
        assert (await client.get(f"/jobs/{job['id']}")).status_code == 200


async def test_an_unreachable_server_is_503_without_its_address() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        dsn = Dsn(f"postgresql://postgres:secret@127.0.0.1:{port}/nowhere")
        # min_size=0: the pool opens no connection at start-up, so the application starts
        app = create_app(Settings(dsn=dsn, min_size=0, max_size=2))
        async with serving(app) as client:
            for response in (await client.get("/jobs/counts"), await client.get("/health")):
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
                for secret in (str(port), "secret", "nowhere", "127.0.0.1"):
                    assert secret not in response.text


async def test_another_database_error_is_500_with_nothing_internal_and_is_logged(
    settings: Settings, raw: Raw, caplog: pytest.LogCaptureFixture
) -> None:
    read_only = settings.model_copy(
        update={"server_settings": {"default_transaction_read_only": "on"}}
    )
    async with serving(create_app(read_only)) as client:
        with caplog.at_level(logging.ERROR, logger="media_store.fastapi"):
            response = await client.post("/jobs", json={"job_type": "video", "media_url": "u"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal database error"}
    [record] = caplog.records
    assert record.exc_info is not None
    assert "25006" in str(record.exc_info[1])  # the server log has what the client does not
    assert await count(raw, "jobs") == 0


async def test_a_request_to_an_application_without_the_lifespan_is_500(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with client_of(app) as client:  # never started
        response = await client.get("/jobs/counts")
    assert response.status_code == 500
    with pytest.raises(RuntimeError, match="lifespan"):
        get_store(HTTPConnection({"type": "http", "app": app, "headers": []}))


# --- the pool and the lifespan --------------------------------------------------------------------


async def test_a_thousand_requests_with_errors_mixed_in_leak_no_connection(
    settings: Settings, raw: Raw
) -> None:
    app = mapping_app(settings.model_copy(update={"min_size": 1, "max_size": 5}))
    async with serving(app) as client:
        job = (await create_job(client))["id"]
        started = (await processing_job(client))["id"]
        transcription = (await create_transcription(client, job))["id"]
        jobs_before = await count(raw, "jobs")
        requests: list[tuple[str, int, Callable[[], Any]]] = [
            ("read", 200, lambda: client.get(f"/jobs/{job}")),
            ("missing", 404, lambda: client.get(f"/jobs/{uuid.uuid4()}")),
            (
                "create",
                201,
                lambda: client.post("/jobs", json={"job_type": "audio", "media_url": "u"}),
            ),
            ("bad body", 422, lambda: client.post("/jobs", json={"job_type": "nope"})),
            ("restart", 409, lambda: client.post(f"/jobs/{started}/start")),
            ("halfway", 409, lambda: client.post("/analysis-results", json=analysis(job))),
            ("bad cursor", 422, lambda: client.get("/jobs", params={"after": "x"})),
            ("window", 200, lambda: client.get(f"/transcriptions/{transcription}/words?t0=0&t1=2")),
            ("snapshot", 200, lambda: client.get(f"/jobs/{job}/analysis-results")),
            ("bug", 500, lambda: client.post("/create-then-raise/bug")),
        ]
        gate = asyncio.Semaphore(20)  # more requests in flight than connections
        outcomes: Counter[tuple[str, int]] = Counter()

        async def one(i: int) -> None:
            name, _, send = requests[i % len(requests)]
            async with gate:
                response = await send()
            outcomes[name, response.status_code] += 1

        await asyncio.gather(*(one(i) for i in range(1000)))
        assert outcomes == Counter({(name, status): 100 for name, status, _ in requests})

        pool = store_of(app).pool
        assert 1 <= pool.get_size() <= 5
        assert pool.get_idle_size() == pool.get_size()
        sessions = await backends(raw)
        assert len(sessions) == pool.get_size()
        assert {row["state"] for row in sessions} == {"idle"}
    assert await count(raw, "jobs") == jobs_before + 100
    assert await count(raw, "analysis_results") == 0
    await wait_for_no_backends(raw)


async def test_the_lifespan_opens_one_store_and_closes_its_pool_at_shutdown(
    settings: Settings, raw: Raw
) -> None:
    app = create_app(settings)
    async with serving(app) as client:
        store = store_of(app)
        assert (await client.get("/health")).json() == {"database": "ok"}
        assert len(await backends(raw)) == store.pool.get_size() >= 1
    assert store.pool.is_closing()
    assert not hasattr(app.state, STATE_KEY)
    await wait_for_no_backends(raw)
    async with client_of(app) as late:
        assert (await late.get("/jobs/counts")).status_code == 500


# --- a real server process ------------------------------------------------------------------------

SERVE = """
import socket, sys
import uvicorn
from examples.api import app
listening = socket.socket(fileno=int(sys.argv[1]))
uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[listening])
"""


@dataclass
class Server:
    """The example served by uvicorn in a process of its own; its log goes to ``log``."""

    url: str
    proc: asyncio.subprocess.Process
    log: Path

    async def stop(self) -> str:
        """SIGTERM, then the server's log once it exited."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                await self.proc.wait()
        return self.log.read_text()


@asynccontextmanager
async def uvicorn_serving(db_url: str, log: Path) -> AsyncIterator[Server]:
    # The test binds the socket and hands it over: no port to guess, and requests sent before
    # the server is ready wait in the socket's backlog instead of being refused. The log goes to
    # a file, not a pipe that nobody reads while the server runs (a full pipe would block it).
    with socket.socket() as listening, log.open("wb") as log_file:
        listening.bind(("127.0.0.1", 0))
        listening.listen(64)
        port = listening.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SERVE,
            str(listening.fileno()),
            pass_fds=[listening.fileno()],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=log_file,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        yield server
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_example_serves_through_uvicorn_and_closes_its_pool_on_sigterm(
    db_url: str, raw: Raw, tmp_path: Path
) -> None:
    async with uvicorn_serving(db_url, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            job = await create_job(http)
            assert (await http.get(f"/jobs/{job['id']}")).json() == job
            assert [j["id"] for j in (await http.get("/jobs")).json()["jobs"]] == [job["id"]]
            assert (await http.get("/jobs/counts")).json()["pending"] == 1
            missing = await http.get(f"/jobs/{uuid.uuid4()}")
            assert missing.status_code == 404
            assert json.loads(missing.text)["detail"].endswith("does not exist")
        assert len(await backends(raw)) >= 1
        log = await server.stop()
        # uvicorn >= 0.29 exits by the signal it shut down on, once shut down
        assert server.proc.returncode in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    await wait_for_no_backends(raw)


def local_port(response: httpx.Response) -> int:
    """The client's port of the connection that carried ``response``."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


# JSON that Python's json module reads (NaN, Infinity, and a literal beyond a double, read as
# inf) but no JSON serialiser writes back: Pydantic refuses the number and keeps it as the
# error's input, which FastAPI's own 422 handler then failed to encode.
NON_FINITE_BODIES = [
    ("/jobs", '{"job_type": "video", "media_url": "u", "parameters": {"x": NaN}}'),
    ("/jobs", '{"job_type": "video", "media_url": "u", "max_attempts": Infinity}'),
    ("/jobs", '{"job_type": "video", "media_url": "u", "priority": 1e999}'),
    ("/analysis-results", '{"job_id": "%s", "analysis_type": "s", "confidence_score": NaN}'),
]


async def test_non_finite_numbers_in_a_body_are_422_and_keep_the_connection_open(
    db_url: str, raw: Raw, tmp_path: Path
) -> None:
    async with uvicorn_serving(db_url, tmp_path / "server.log") as server:
        # One keep-alive connection: a server that closed it after an error would fail a
        # pooled client's next request, or make it open another (a new local port).
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            job = await create_job(http)
            for path, body in NON_FINITE_BODIES:
                response = await http.post(
                    path,
                    content=body.replace("%s", job["id"]),
                    headers={"content-type": "application/json"},
                )
                assert response.status_code == 422, (body, response.text)
                assert response.headers["content-type"] == "application/json"
                [error] = response.json()["detail"]
                assert set(error) == {"loc", "msg", "type"}
                assert error["loc"][0] == "body"
                assert "connection" not in response.headers  # no "Connection: close"
                after = await http.get(f"/jobs/{job['id']}")
                assert after.status_code == 200
                assert local_port(after) == local_port(response)
        log = await server.stop()
    assert "Traceback" not in log
    assert await count(raw, "jobs") == 1


async def test_turns_answer_who_spoke_when_and_404_for_an_unknown_transcription(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    transcription = await create_transcription(client, job["id"])
    response = await client.get(f"/transcriptions/{transcription['id']}/turns")
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"speaker": "A", "start": 0.0, "end": 0.9, "text": "hello there", "word_count": 2},
        {"speaker": "B", "start": 1.2, "end": 2.4, "text": "general kenobi", "word_count": 2},
    ]
    split = await client.get(f"/transcriptions/{transcription['id']}/turns?min_gap=0.05")
    assert [turn["text"] for turn in split.json()] == ["hello", "there", "general", "kenobi"]
    assert (await client.get(f"/transcriptions/{uuid.uuid4()}/turns")).status_code == 404
    refused = await client.get(f"/transcriptions/{transcription['id']}/turns?min_gap=-1")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "min_gap"]


async def test_captions_download_as_an_attachment_of_their_media_type(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    transcription = await create_transcription(client, job["id"])
    url = f"/transcriptions/{transcription['id']}/captions"
    vtt = await client.get(url)
    assert vtt.status_code == 200, vtt.text
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    assert vtt.headers["content-disposition"] == (
        f'attachment; filename="{transcription["id"]}.vtt"'
    )
    assert vtt.text == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:00.900\n<v A>hello there\n\n"
        "00:00:01.200 --> 00:00:02.400\n<v B>general kenobi\n\n"
    )
    srt = await client.get(url, params={"format": "srt", "max_chars": 6, "max_lines": 1})
    assert srt.headers["content-type"] == "application/x-subrip; charset=utf-8"
    assert srt.text.startswith("1\n00:00:00,000 --> 00:00:00,500\nhello\n\n2\n")
    assert (await client.get(f"/transcriptions/{uuid.uuid4()}/captions")).status_code == 404
    assert (await client.get(url, params={"format": "ass"})).status_code == 422


async def test_search_finds_the_second_and_pages_through_its_cursor(
    client: httpx.AsyncClient,
) -> None:
    job = await create_job(client)
    first = await create_transcription(client, job["id"])
    second = await create_transcription(client, job["id"])
    response = await client.get("/search", params={"q": "kenobi", "limit": 1})
    assert response.status_code == 200, response.text
    page = response.json()
    [hit] = page["hits"]
    assert hit["transcription_id"] in (first["id"], second["id"])
    assert (hit["start"], hit["end"], hit["speaker"], hit["text"]) == (1.8, 2.4, "B", "kenobi")
    assert hit["snippet"] == "hello there general kenobi"
    rest = await client.get("/search", params={"q": "kenobi", "limit": 1, "after": page["next"]})
    [other] = rest.json()["hits"]
    assert {hit["transcription_id"], other["transcription_id"]} == {first["id"], second["id"]}
    phrase = await client.get("/search", params={"q": '"general kenobi"', "speaker": "B"})
    assert [h["start"] for h in phrase.json()["hits"]] == [1.2, 1.2]
    assert (await client.get("/search", params={"q": "nothing"})).json()["hits"] == []
    for params, field in (({"q": '"open'}, "q"), ({"q": "x", "after": "%%"}, "after")):
        refused = await client.get("/search", params=params)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["query", field]
