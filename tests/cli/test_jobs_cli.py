"""``media-store jobs``: the real command (a process of its own) on a real database: figures,
pages, a job with what it produced, requeue, cancel, purge; exit statuses and errors."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rich.console import Console

from media_store import DuplicateJob, Job, JobStats, JobStatus, JobType, Store
from media_store.cli.jobs import STATS_HEADERS, _count, _stats_view, add_parser, duration
from media_store.cli.main import main as cli_main
from media_store.repositories.jobs import QueueStats

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ["stats", "list", "show", "requeue", "cancel", "purge"]
# The counts of a JobStats.
_COUNTS = [
    "pending",
    "claimable",
    "processing",
    "expired_leases",
    "failed_last_hour",
    "cancelled_last_hour",
    "completed_last_minute",
]


async def media_store(*args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    """``python -m media_store <args>`` with DATABASE_URL = ``url`` (unset when None)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COLUMNS")}
    if url is not None:
        env["DATABASE_URL"] = url
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "media_store", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def parsed(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # no traceback
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


async def row_count(raw: asyncpg.Connection[asyncpg.Record]) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM jobs"))


async def failed_job(store: Store, job_type: str = "audio") -> Job:
    job = await store.jobs.create({"job_type": job_type, "media_url": "s3://b/f"})
    await store.jobs.start_processing(job.id, worker_id="w")
    return await store.jobs.fail(job.id, "w", "decoder crashed", retry=False)


# --- stats ----------------------------------------------------------------------------------


async def test_stats_prints_each_figure_and_json_gives_them_exactly(
    store: Store, db_url: str
) -> None:
    for _ in range(2):
        await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a"})
    await failed_job(store, "video")

    data = parsed(await media_store("jobs", "stats", "--json", url=db_url))
    table = await media_store("jobs", "stats", url=db_url)

    by_type = {row["job_type"]: row for row in data["types"]}
    assert (by_type["audio"]["pending"], by_type["audio"]["claimable"]) == (2, 2)
    assert by_type["video"]["failed_last_hour"] == 1
    assert data["total"]["pending"] == 2 and data["total"]["job_type"] is None
    assert data["total"]["completed_estimate"] is None  # never analyzed: not guessed
    assert table.returncode == 0, table.stderr
    for heading in ("pending", "ready", "oldest", "running", "expired", "leases", "failed"):
        assert heading in table.stdout
    assert "not estimated yet" in table.stdout


@pytest.mark.parametrize("size", [7, 99_999, 1_234_567, 99_999_999_999])
def test_the_stats_table_fits_80_columns_with_every_header_whole(size: int) -> None:
    # --watch in an 80-column terminal: rich squeezed nine long headers into "pendi…",
    # "oldest pendi…", and the figures with them.
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    estimates = dict.fromkeys(("completed_estimate", "failed_estimate", "cancelled_estimate"))
    figures = dict.fromkeys(_COUNTS, size) | estimates | {"oldest_pending_s": 123_456.0, "at": at}
    rows = [JobStats(job_type=t, **figures) for t in JobType]
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)

    console.print(_stats_view(QueueStats(types=rows, total=JobStats(job_type=None, **figures))))

    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines) and not any("…" in line for line in lines)
    assert lines[0].startswith("jobs at 2026-01-02 03:04:05 UTC")
    heads = [lines[1].split(), lines[2].split()]  # a header is one or two lines
    for name in STATS_HEADERS:
        *first, last = name.split("\n")
        assert last in heads[1] and all(word in heads[0] for word in first), (name, lines)
    shown = _count(size)
    for kind in ("video", "audio", "document", "all"):
        row = next(line.split() for line in lines if line.startswith(kind))
        assert row == [kind, *[shown] * 2, "34.3h", *[shown] * 5], lines


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0"), (99_999, "99,999"), (100_000, "100k"), (999_999, "999k"), (1_250_000, "1.2M")],
)
def test_stats_counts_are_exact_below_100k_then_rounded_down(count: int, shown: str) -> None:
    assert _count(count) == shown


async def test_stats_watch_refreshes_and_stops_after_count(store: Store, db_url: str) -> None:
    await store.jobs.create({"job_type": "document", "media_url": "s3://b/d"})

    live = await media_store(
        "jobs", "stats", "--watch", "--interval", "0.1", "--count", "3", url=db_url
    )
    lines = await media_store(
        "jobs", "stats", "--watch", "--json", "--interval", "0.1", "--count", "2", url=db_url
    )

    assert live.returncode == 0, live.stderr
    assert "document" in live.stdout and "all" in live.stdout
    documents = [json.loads(line) for line in lines.stdout.splitlines()]
    assert len(documents) == 2 and all(d["total"]["pending"] == 1 for d in documents)


async def test_stats_watch_ends_on_ctrl_c_with_status_0_and_no_traceback(db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["DATABASE_URL"] = db_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "media_store",
        "jobs",
        "stats",
        "--watch",
        "--json",
        "--interval",
        "0.1",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 60)  # it is watching
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 60)

    assert json.loads(first)["total"]["pending"] == 0
    assert proc.returncode == 0 and b"Traceback" not in err, err


# --- list -----------------------------------------------------------------------------------


async def test_list_pages_by_status_and_type_with_the_cursor_it_prints(
    store: Store, db_url: str
) -> None:
    wanted = [await failed_job(store, "audio") for _ in range(5)]
    await failed_job(store, "video")
    await store.jobs.create({"job_type": "audio", "media_url": "s3://b/p"})

    seen: list[str] = []
    after: list[str] = []
    for _ in range(3):
        page = parsed(
            await media_store(
                "jobs",
                "list",
                "--status",
                "failed",
                "--type",
                "audio",
                "--limit",
                "2",
                "--json",
                *after,
                url=db_url,
            )
        )
        seen += [job["id"] for job in page["jobs"]]
        assert all(j["status"] == "failed" and j["job_type"] == "audio" for j in page["jobs"])
        if page["next"] is None:
            break
        after = ["--after", page["next"]]
    human = await media_store("jobs", "list", "--limit", "2", url=db_url)

    assert seen == [str(job.id) for job in reversed(wanted)]  # newest first, once each
    assert human.returncode == 0 and "next page: media-store jobs list" in human.stdout


async def test_list_by_key_shows_every_job_that_had_it_newest_first(
    store: Store, db_url: str
) -> None:
    key = "analyse s3://b/talk 1.mp4"  # a space: the printed next-page command quotes it
    first = await store.jobs.create(
        {"job_type": "audio", "media_url": "s3://b/1", "idempotency_key": key}
    )
    await store.jobs.cancel(first.id)  # an active key is free again once its job finished
    second = await store.jobs.create(
        {"job_type": "audio", "media_url": "s3://b/2", "idempotency_key": key}
    )
    await store.jobs.create({"job_type": "audio", "media_url": "s3://b/3", "idempotency_key": "k"})
    await store.jobs.create({"job_type": "audio", "media_url": "s3://b/4"})

    page = parsed(await media_store("jobs", "list", "--key", key, "--json", url=db_url))
    pending = parsed(
        await media_store("jobs", "list", "--key", key, "--status", "pending", "--json", url=db_url)
    )
    human = await media_store("jobs", "list", "--key", key, "--limit", "1", url=db_url)

    assert [j["id"] for j in page["jobs"]] == [str(second.id), str(first.id)]
    assert [j["id"] for j in pending["jobs"]] == [str(second.id)]
    assert human.returncode == 0
    assert f"--key '{key}'" in human.stdout.replace("\n", "")


async def test_list_by_an_empty_key_is_a_usage_error(db_url: str) -> None:
    done = await media_store("jobs", "list", "--key", "", url=db_url)
    await one_line_error(done, 2, "ValidationError", "key")


async def test_list_with_a_bad_cursor_is_a_usage_error(db_url: str) -> None:
    done = await media_store("jobs", "list", "--after", "garbage", url=db_url)
    await one_line_error(done, 2, "ValidationError", "cursor")


# --- show -----------------------------------------------------------------------------------


async def test_show_gives_the_job_with_its_assets_transcriptions_and_results(
    store: Store, db_url: str
) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/talk.mp3"})
    await store.media_assets.create(
        {"job_id": job.id, "asset_type": "original", "file_path": "/m/talk.mp3"}
    )
    await store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "whisper",
            "text_content": "hello there",
            "word_timestamps": [
                {"word": "hello", "start": 0.0, "end": 0.4},
                {"word": "there", "start": 0.4, "end": 0.9},
            ],
        }
    )
    await store.analysis_results.create(
        {"job_id": job.id, "analysis_type": "summary", "summary": "a greeting", "input_tokens": 9}
    )

    data = parsed(await media_store("jobs", "show", str(job.id), "--json", url=db_url))
    human = await media_store("jobs", "show", str(job.id), url=db_url)

    assert data["job"]["id"] == str(job.id) and data["job"]["status"] == "pending"
    assert [a["file_path"] for a in data["media_assets"]] == ["/m/talk.mp3"]
    [spoken] = data["transcriptions"]
    assert spoken["word_count"] == 2 and "word_timestamps" not in spoken
    assert [r["summary"] for r in data["analysis_results"]] == ["a greeting"]
    assert human.returncode == 0, human.stderr
    for text in ("media assets (1)", "transcriptions (1)", "analysis results (1)", "whisper"):
        assert text in human.stdout


async def test_show_of_a_missing_job_exits_1_and_a_bad_id_exits_2(db_url: str) -> None:
    missing = str(uuid.uuid4())
    await one_line_error(
        await media_store("jobs", "show", missing, url=db_url),
        1,
        f"jobs show: job {missing} does not exist",
    )
    bad = await media_store("jobs", "show", "nope", url=db_url)
    assert bad.returncode == 2 and "not a job id" in bad.stderr and "Traceback" not in bad.stderr


# --- requeue, cancel ------------------------------------------------------------------------


async def test_requeue_one_failed_job_then_every_failed_job(
    store: Store, db_url: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    one = await failed_job(store)
    others = [await failed_job(store, "video") for _ in range(3)]
    done = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/done"})
    await store.jobs.start_processing(done.id)
    await store.jobs.update_status(done.id, JobStatus.COMPLETED)

    single = parsed(await media_store("jobs", "requeue", str(one.id), "--json", url=db_url))
    refused = await media_store("jobs", "requeue", str(done.id), url=db_url)
    every = await media_store("jobs", "requeue", "--failed", "--type", "video", url=db_url)

    assert single["job"]["status"] == "pending" and single["job"]["attempts"] == 0
    await one_line_error(
        refused, 1, f"jobs requeue: only failed jobs can be requeued (job {done.id} is completed)"
    )
    assert "InvalidTransition" not in refused.stderr  # an operator's words, not the class
    assert every.returncode == 0 and "requeued 3 failed video job(s)" in every.stdout
    statuses = {row["id"]: row["status"] for row in await raw.fetch("SELECT id, status FROM jobs")}
    assert statuses == {
        one.id: "pending",
        **{job.id: "pending" for job in others},
        done.id: "completed",
    }
    neither = await media_store("jobs", "requeue", url=db_url)
    assert neither.returncode == 2 and "Traceback" not in neither.stderr


async def test_requeue_of_a_failed_job_whose_key_another_job_holds_is_refused(
    store: Store, db_url: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    keyed = {"job_type": "audio", "media_url": "s3://b/k", "idempotency_key": "media-7"}
    old = await store.jobs.create(keyed)
    await store.jobs.start_processing(old.id, worker_id="w")
    await store.jobs.fail(old.id, "w", "decoder crashed", retry=False)
    new = await store.jobs.create(keyed)  # the key is free once the old one finished
    plain = await failed_job(store)
    before = await raw.fetch("SELECT id, status, attempts FROM jobs ORDER BY id")

    with pytest.raises(DuplicateJob) as refused:
        await store.jobs.requeue(old.id)
    with pytest.raises(DuplicateJob):
        await store.jobs.update_status(old.id, "pending")
    one = await media_store("jobs", "requeue", str(old.id), url=db_url)

    assert refused.value.job_id == new.id and refused.value.key == "media-7"
    await one_line_error(one, 1, f"job {new.id} (pending) holds the idempotency key 'media-7'")
    assert await raw.fetch("SELECT id, status, attempts FROM jobs ORDER BY id") == before

    every = await media_store("jobs", "requeue", "--failed", url=db_url)

    assert every.returncode == 0, every.stderr
    assert "requeued 1 failed job(s)" in every.stdout and "skipped 1" in every.stdout
    statuses = {row["id"]: row["status"] for row in await raw.fetch("SELECT id, status FROM jobs")}
    assert statuses == {old.id: "failed", new.id: "pending", plain.id: "pending"}
    again = await store.jobs.requeue_failed()
    assert (again, again.requeued, again.skipped) == (0, 0, 1)


async def test_cancel_a_pending_job_then_the_refusal_of_cancelling_it_again(
    store: Store, db_url: str
) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a"})
    running = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/r"})
    await store.jobs.start_processing(running.id, worker_id="gpu-7")

    first = await media_store("jobs", "cancel", str(job.id), url=db_url)
    again = await media_store("jobs", "cancel", str(job.id), url=db_url)
    busy = parsed(await media_store("jobs", "cancel", str(running.id), "--json", url=db_url))

    assert first.returncode == 0 and "it was pending" in first.stdout
    await one_line_error(
        again, 1, f"only pending or processing jobs can be cancelled (job {job.id} is cancelled)"
    )
    assert busy["was_processing"] is True and busy["job"]["status"] == "cancelled"
    assert busy["job"]["locked_by"] == "gpu-7"
    beat = await store.jobs.heartbeat("gpu-7", [running.id])
    assert beat.cancelled == [running.id]


# --- purge ----------------------------------------------------------------------------------


async def test_purge_dry_run_counts_then_purge_deletes_old_finished_jobs_only(
    store: Store, db_url: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    old = [await failed_job(store) for _ in range(3)]
    for job in old:
        await store.analysis_results.create({"job_id": job.id, "analysis_type": "summary"})
    await raw.execute(
        "UPDATE jobs SET completed_at = completed_at - interval '3 days'"
        " WHERE id = any($1::uuid[])",
        [job.id for job in old],
    )
    recent = await failed_job(store)
    pending = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/p"})

    dry = parsed(
        await media_store("jobs", "purge", "--older-than", "2d", "--dry-run", "--json", url=db_url)
    )
    assert await row_count(raw) == 5
    table = await media_store("jobs", "purge", "--older-than", "1d12h", url=db_url)

    assert dry["dry_run"] is True and dry["jobs"] == 3 and dry["analysis_results"] == 3
    assert dry["by_status"]["failed"] == 3
    assert table.returncode == 0 and "deleted: jobs finished before" in table.stdout
    assert "analysis_results" in table.stdout
    left = {row["id"] for row in await raw.fetch("SELECT id FROM jobs")}
    assert left == {recent.id, pending.id}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--older-than", "1d", "--status", "pending"], ["ValidationError", "never purged"]),
        (["--older-than", "1d", "--status", "processing"], ["never purged"]),
        (["--older-than", "soon"], ["no duration"]),
        (["--older-than", "-5"], ["no duration"]),
        ([], ["--older-than"]),
    ],
)
async def test_purge_refuses_what_it_must_never_delete_before_deleting_anything(
    store: Store,
    db_url: str,
    raw: asyncpg.Connection[asyncpg.Record],
    args: list[str],
    words: list[str],
) -> None:
    await failed_job(store)
    await store.jobs.create({"job_type": "audio", "media_url": "s3://b/p"})
    await raw.execute("UPDATE jobs SET created_at = created_at - interval '9 days'")

    done = await media_store("jobs", "purge", *args, url=db_url)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert await row_count(raw) == 2


# --- arguments --------------------------------------------------------------------------------

BAD_COUNTS = {
    "1e30": ("list", "--limit"),
    "10000000000000000000000000000000": ("list", "--limit"),
    "10001": ("list", "--limit"),
    "0": ("purge", "--batch"),
    "1_000": ("purge", "--batch"),
    "2.0": ("stats", "--count"),
    "-5": ("list", "--limit"),
    "٥": ("list", "--limit"),  # an Arabic-Indic five: int() takes it
}


@pytest.mark.parametrize("text", BAD_COUNTS)
def test_a_count_that_is_no_integer_in_range_is_a_usage_error(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused, not accepted and silently cut to the largest page or batch.
    subcommand, option = BAD_COUNTS[text]
    extra = ["--older-than", "30d"] if subcommand == "purge" else []
    with pytest.raises(SystemExit) as exited:
        cli_main(["jobs", subcommand, *extra, f"{option}={text}"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"argument {option}: " in err and "must be an integer from 1" in err, err
    assert err.strip().splitlines()[-1].startswith(f"media-store jobs {subcommand}: error:")


def test_counts_in_range_are_taken() -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    add_parser(subparsers)
    args = parser.parse_args(["jobs", "list", "--limit", "10000"])
    assert args.limit == 10_000
    args = parser.parse_args(["jobs", "purge", "--older-than", "1d", "--batch", " 7 "])
    assert args.batch == 7


# --- no database ------------------------------------------------------------------------------


async def test_without_a_database_every_subcommand_exits_2_with_one_line() -> None:
    for args in (["stats"], ["list"], ["cancel", str(uuid.uuid4())]):
        done = await media_store("jobs", *args, url=None)
        await one_line_error(done, 2, "ConfigurationError")


def test_an_unreachable_server_is_exit_2_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:s3cret@127.0.0.1:1/db")
    code = cli_main(["jobs", "stats"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("media-store jobs stats: DatabaseUnavailable")
    assert "s3cret" not in err


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_each_subcommand_has_plain_help(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["jobs", subcommand, "--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0 and "`" not in shown
    assert shown.startswith(f"usage: media-store jobs {subcommand}") and "--json" in shown


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("2.5", 2.5),
        ("45s", 45),
        ("90m", 5400),
        ("12h", 43200),
        ("1d12h", 129600),
        ("2w", 1209600),
        ("0", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text).total_seconds() == seconds
