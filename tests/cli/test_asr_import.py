"""``media-store import``: a directory with one bad file (the others land, the bad one is
reported, nothing of it stored), re-runs that store nothing new, policies from the command
line, the parser, the progress bar and the summary."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import io
import json
import os
import shutil
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given as hypothesis_given
from hypothesis import settings
from hypothesis import strategies as st
from rich.console import Console

from media_store import Job, JobNotFound, Store, ValidationError
from media_store.cli.importer import (
    DEFAULT_MAX_BYTES,
    ImportOptions,
    ImportReport,
    add_parser,
    command,
    import_files,
    transcript_text,
)
from tests.support.asr import FIXTURES, new_job

GOOD = ["deepgram.json", "openai-whisper.json", "aws-transcribe.json", "ibm-watson.json"]
GOOD_WORDS = 6 + 5 + 8 + 8


async def counts(store: Store) -> dict[str, int]:
    """Rows of every table an import writes."""
    row = await store.pool.fetchrow(
        "SELECT (SELECT count(*) FROM transcriptions) AS transcriptions,"
        " (SELECT count(*) FROM transcription_word_segments) AS segments,"
        " (SELECT coalesce(sum(word_count), 0) FROM transcription_word_segments) AS words,"
        " (SELECT count(*) FROM media_assets) AS assets"
    )
    assert row is not None
    return {key: int(value) for key, value in dict(row).items()}


def late_bad_word(path: Path, words: int = 9000) -> Path:
    """A whisperX file whose word 8,999 has a speaker longer than the store allows: the
    adapter passes it, so the store refuses it after a first chunk of words was copied."""
    items: list[dict[str, Any]] = [
        {"word": f"w{i}", "start": i * 0.3, "end": i * 0.3 + 0.2, "score": 0.9, "speaker": "S"}
        for i in range(words)
    ]
    items[-1]["speaker"] = "S" * 51
    path.write_text(json.dumps({"segments": [{"start": 0.0, "words": items}]}))
    return path


def directory(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "outputs"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def consoles() -> tuple[Console, io.StringIO, Console, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return (
        Console(file=out, width=240, color_system=None),
        out,
        Console(file=err, width=240, color_system=None),
        err,
    )


async def run(
    store: Store, job: Job | uuid.UUID, *paths: Path, **kw: Any
) -> tuple[ImportReport, str]:
    out_console, out, err_console, _ = consoles()
    job_id = job if isinstance(job, uuid.UUID) else job.id
    options = ImportOptions(paths=paths, job_id=job_id, progress=False, **kw)
    report = await import_files(store, options, out=out_console, err=err_console)
    return report, out.getvalue()


@pytest.fixture
async def job(store: Store) -> Job:
    return await new_job(store)


async def test_one_bad_file_is_refused_and_nothing_of_it_stored(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, GOOD)
    late_bad_word(folder / "zz-late-bad-word.json")
    before = await counts(store)

    report, summary = await run(store, job, folder)

    statuses = {f.path.name: f.status for f in report.files}
    assert statuses == {**dict.fromkeys(GOOD, "stored"), "zz-late-bad-word.json": "refused"}
    refused = report.files[-1]
    assert refused.reason is not None and "word 8999 (speaker)" in refused.reason
    assert report.exit_status == 1
    after = await counts(store)
    # Exactly the good files: 4 transcriptions, their words and one source asset each; none
    # of the 9,000 words copied before the refusal.
    assert after == {
        "transcriptions": before["transcriptions"] + 4,
        "segments": before["segments"] + 4,
        "words": before["words"] + GOOD_WORDS,
        "assets": before["assets"] + 4,
    }
    assert "zz-late-bad-word.json" in summary and "refused" in summary
    assert "4 stored (27 words), 0 already imported, 1 refused" in summary


async def test_reimport_stores_nothing_new(store: Store, job: Job, tmp_path: Path) -> None:
    folder = directory(tmp_path, GOOD)
    first, _ = await run(store, job, folder)
    assert first.exit_status == 0 and first.count("stored") == 4
    before = await counts(store)

    again, summary = await run(store, job, folder)

    assert [f.status for f in again.files] == ["skipped"] * 4
    assert again.exit_status == 0
    assert await counts(store) == before
    assert "0 stored (0 words), 4 already imported, 0 refused" in summary
    ids = {f.transcription_id for f in again.files}
    assert ids == {f.transcription_id for f in first.files}


async def test_a_copy_under_another_name_is_the_same_file(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    shutil.copy(folder / "vosk.json", folder / "vosk-copy.json")
    report, _ = await run(store, job, folder)
    assert [f.status for f in report.files] == ["stored", "skipped"]


async def test_the_same_file_goes_into_another_job(store: Store, job: Job, tmp_path: Path) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    await run(store, job, folder)
    other, _ = await run(store, await new_job(store), folder)
    assert other.count("stored") == 1


async def test_a_deleted_transcription_can_be_imported_again(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    first, _ = await run(store, job, folder)
    assert first.files[0].transcription_id is not None
    await store.transcriptions.delete(first.files[0].transcription_id)
    again, _ = await run(store, job, folder)
    assert again.count("stored") == 1


async def advisory_waiters(store: Store) -> int:
    """Transactions waiting for an advisory lock (an import waiting for its file's lock)."""
    count = await store.pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return int(count)


async def until_waiting(store: Store, waiters: int) -> None:
    for _ in range(400):
        if await advisory_waiters(store) >= waiters:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{waiters} import(s) never waited for the lock")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_concurrent_imports_of_the_same_file_store_it_once(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    before = await counts(store)
    # Hold the file's import lock so that both imports pass the check before parsing and
    # meet inside their transactions: the race the lock is for, made certain.
    async with store.transaction() as tx:
        assert await tx.media_assets.lock_import(job.id, sha256_of(folder / "vosk.json")) is None
        both = asyncio.ensure_future(
            asyncio.gather(run(store, job, folder), run(store, job, folder))
        )
        await until_waiting(store, 2)
        assert not both.done()
    (first, _), (second, _) = await both

    statuses = sorted(r.files[0].status for r in (first, second))
    assert statuses == ["skipped", "stored"]
    stored = next(r.files[0] for r in (first, second) if r.files[0].status == "stored")
    skipped = next(r.files[0] for r in (first, second) if r.files[0].status == "skipped")
    assert skipped.transcription_id == stored.transcription_id
    assert skipped.reason == f"already imported (transcription {stored.transcription_id})"
    after = await counts(store)
    assert after["transcriptions"] == before["transcriptions"] + 1
    assert after["assets"] == before["assets"] + 1
    assert after["words"] == before["words"] + 5


async def test_imports_racing_over_a_directory_store_each_file_once(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, GOOD)
    before = await counts(store)
    reports = await asyncio.gather(*(run(store, job, folder) for _ in range(3)))
    for name in GOOD:
        statuses = sorted(f.status for r, _ in reports for f in r.files if f.path.name == name)
        assert statuses == ["skipped", "skipped", "stored"], name
    after = await counts(store)
    assert after["transcriptions"] == before["transcriptions"] + len(GOOD)
    assert after["words"] == before["words"] + GOOD_WORDS


async def test_an_import_waits_only_for_the_same_file_into_the_same_job(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json", "deepgram.json"])
    other_job = await new_job(store)
    async with store.transaction() as tx:
        await tx.media_assets.lock_import(job.id, sha256_of(folder / "vosk.json"))
        # Another file into the job, and the same file into another job: neither waits.
        other_file, _ = await asyncio.wait_for(run(store, job, folder / "deepgram.json"), 30)
        other_into, _ = await asyncio.wait_for(run(store, other_job, folder / "vosk.json"), 30)
        assert other_file.count("stored") == other_into.count("stored") == 1
        # The job's row is not locked: its status still changes.
        started = await asyncio.wait_for(store.jobs.start_processing(job.id), 30)
        assert started.status == "processing"
        same = asyncio.ensure_future(run(store, job, folder / "vosk.json"))
        await until_waiting(store, 1)
        assert not same.done()
    report, _ = await same
    assert report.count("stored") == 1


async def test_lock_import_runs_only_in_a_transaction_and_takes_a_sha256(
    store: Store, job: Job
) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ValidationError, match=r"inside a transaction \(store.transaction\(\)\)"):
        await store.media_assets.lock_import(job.id, digest)
    async with store.transaction() as tx:
        for bad in (digest.upper(), digest[:-1], "", b"x" * 64, None):
            with pytest.raises(ValidationError, match="sha256 must be 64 lowercase hex digits"):
                await tx.media_assets.lock_import(job.id, bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="job_id must be a UUID"):
            await tx.media_assets.lock_import("nope", digest)  # type: ignore[arg-type]
        assert await tx.media_assets.lock_import(job.id, digest) is None
    assert await store.media_assets.find_import(job.id, digest) is None


async def test_a_file_ending_after_max_end_is_refused_and_nothing_of_it_stored(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json", "assemblyai.json"])  # end 2.67 s, 1743.56 s
    before = await counts(store)
    report, _ = await run(store, job, folder, max_end=60.0)
    statuses = {f.path.name: f.status for f in report.files}
    assert statuses == {"vosk.json": "stored", "assemblyai.json": "refused"}
    refused = next(f for f in report.files if f.status == "refused")
    assert refused.reason is not None
    assert "word 5 (end): ends at 1743.56 s, after max_end (60.0 s" in refused.reason
    after = await counts(store)
    assert after["transcriptions"] == before["transcriptions"] + 1
    assert after["words"] == before["words"] + 5


async def test_stored_transcription_records_its_source(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["deepgram.json"])
    report, _ = await run(store, job, folder, language="en")
    [transcription] = await store.transcriptions.list_for_job(job.id)
    digest = hashlib.sha256((folder / "deepgram.json").read_bytes()).hexdigest()
    assert transcription.id == report.files[0].transcription_id
    assert transcription.provider == "deepgram" and transcription.language == "en"
    assert transcription.text_content == "Hello, this is Anna. Hi Anna."
    assert transcription.metadata == {
        "asr_import": {
            "file": "deepgram.json",
            "sha256": digest,
            "engine": "deepgram",
            "repairs": [],
        }
    }
    [asset] = await store.media_assets.list_for_job(job.id)
    assert asset.asset_type == "transcription"
    assert asset.file_path == str((folder / "deepgram.json").resolve())
    assert asset.metadata["asr_import"]["transcription_id"] == str(transcription.id)


async def test_quirks_are_refused_unless_a_policy_is_given(
    store: Store, job: Job, tmp_path: Path
) -> None:
    quirks = ["openai-whisper-backwards.json", "whisperx-untimed.json", "whisper-cpp-garbled.json"]
    folder = directory(tmp_path, quirks)
    strict, summary = await run(store, job, folder)
    assert [f.status for f in strict.files] == ["refused"] * 3
    reasons = " ".join(f.reason or "" for f in strict.files)
    assert (
        "--order sort" in reasons and "--untimed drop" in reasons and "--inverted drop" in reasons
    )
    assert "3 refused" in summary
    assert await store.transcriptions.list_for_job(job.id) == []

    repaired, summary = await run(
        store, job, folder, order="sort", inverted="drop", untimed="interpolate"
    )
    assert [f.status for f in repaired.files] == ["stored"] * 3
    assert [list(map(str, f.repairs)) for f in repaired.files] == [
        ["order: sorted 2 (at 3, 5)"],
        ["inverted: dropped 1 (at 1)"],
        ["untimed: timed 3 (at 2, 3, 6)"],
    ]
    assert "order: sorted 2 (at 3, 5)" in summary
    stored = await store.transcriptions.list_for_job(job.id)
    assert stored[2].metadata["asr_import"]["repairs"] == ["untimed: timed 3 (at 2, 3, 6)"]


async def test_unreadable_and_foreign_files_are_refused_with_a_reason(
    store: Store, job: Job, tmp_path: Path
) -> None:
    (tmp_path / "broken.json").write_text('{"results": ')
    (tmp_path / "other.json").write_text('{"hello": "world"}')
    (tmp_path / "empty").mkdir()
    report, _ = await run(
        store,
        job,
        tmp_path / "broken.json",
        tmp_path / "other.json",
        tmp_path / "empty",
        tmp_path / "missing.json",
        FIXTURES / "vosk.json",
    )
    reasons = {f.path.name: f.reason or "" for f in report.files}
    assert reasons["empty"] == "no *.json file in it"
    assert reasons["missing.json"] == "no such file or directory"
    assert reasons["broken.json"].startswith("not JSON")
    assert "cannot tell which engine" in reasons["other.json"]
    assert report.count("stored") == 1 and report.exit_status == 1


async def test_a_forced_engine_that_does_not_fit_is_refused(
    store: Store, job: Job, tmp_path: Path
) -> None:
    report, _ = await run(store, job, FIXTURES / "vosk.json", engine="deepgram")
    assert report.files[0].status == "refused"
    assert "deepgram: results: missing" in (report.files[0].reason or "")


async def test_an_unknown_job_is_refused_before_anything(store: Store, tmp_path: Path) -> None:
    with pytest.raises(JobNotFound):
        await run(store, uuid.uuid4(), FIXTURES / "vosk.json")


async def test_the_progress_bar_shows_files_words_and_rate(store: Store, job: Job) -> None:
    out_console, _, _, _ = consoles()
    err = io.StringIO()
    err_console = Console(file=err, width=240, force_terminal=True, color_system=None)
    options = ImportOptions(paths=(FIXTURES / "vosk.json",), job_id=job.id)
    await import_files(store, options, out=out_console, err=err_console)
    shown = err.getvalue()
    assert "1/1" in shown and "files" in shown and "5 words" in shown and "words/s" in shown


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="media-store")
    add_parser(root.add_subparsers(dest="command", required=True))
    return root


def test_the_parser_takes_paths_job_engine_and_policies() -> None:
    job_id = uuid.uuid4()
    argv = ["import", "a.json", "dir", "--job", str(job_id), "--engine", "whisperx"]
    argv += ["--untimed", "interpolate", "--order", "sort", "--no-progress", "--max-end", "61"]
    args = parser().parse_args(argv)
    options = ImportOptions.from_args(args)
    assert options == ImportOptions(
        paths=(Path("a.json"), Path("dir")),
        job_id=job_id,
        engine="whisperx",
        order="sort",
        untimed="interpolate",
        max_end=61.0,
        progress=False,
    )
    assert args.func is command


@pytest.mark.parametrize(
    "argv",
    [
        ["import", "a.json"],
        ["import", "a.json", "--job", "not-a-uuid"],
        ["import", "a.json", "--job", str(uuid.UUID(int=1)), "--order", "shuffle"],
        ["import", "a.json", "--job", str(uuid.UUID(int=1)), "--engine", "sphinx"],
    ],
    ids=["no job", "bad job id", "bad policy", "bad engine"],
)
def test_the_parser_refuses_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(argv)
    assert info.value.code == 2


async def test_the_command_imports_from_database_url_and_exits_with_the_status(
    store: Store,
    job: Job,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    folder = directory(tmp_path, ["assemblyai.json", "google-stt.json"])
    argv = ["import", str(folder), "--job", str(job.id), "--no-progress"]
    assert await asyncio.to_thread(command, parser().parse_args(argv)) == 0
    assert len(await store.transcriptions.list_for_job(job.id)) == 2
    assert "2 stored (16 words)" in capsys.readouterr().out

    (folder / "bad.json").write_text("[1, 2]")
    assert await asyncio.to_thread(command, parser().parse_args(argv)) == 1
    assert "2 already imported, 1 refused" in capsys.readouterr().out
    assert len(await store.transcriptions.list_for_job(job.id)) == 2


def test_transcript_text_joins_words_as_the_engine_spaced_them() -> None:
    def words(*texts: str) -> list[dict[str, Any]]:
        return [{"word": t} for t in texts]

    assert transcript_text(words(" Jane?", " Are", " you")) == "Jane? Are you"
    assert transcript_text(words("Hello,", "this", "is")) == "Hello, this is"
    assert transcript_text(words("Chapter ", "one")) == "Chapter one"
    assert transcript_text(words("こんにちは", " ", "世界")) == "こんにちは 世界"
    assert transcript_text([]) == ""


# --- what real inputs break (issue 20) ---------------------------------------------------------


async def test_an_ambiguous_file_is_refused_until_the_engine_is_named(
    store: Store, job: Job, tmp_path: Path
) -> None:
    # An empty whisper-timestamped result: its keys are openai-whisper's too.
    path = tmp_path / "silence.json"
    path.write_text(json.dumps({"text": "", "segments": [], "language": "ja"}))
    before = await counts(store)

    report, _ = await run(store, job, path)

    [refused] = report.files
    assert refused.status == "refused" and report.exit_status == 1
    assert refused.reason is not None
    assert "--engine openai-whisper or --engine whisper-timestamped" in refused.reason
    assert await counts(store) == before

    named, _ = await run(store, job, path, engine="whisper-timestamped")
    assert named.count("stored") == 1
    [transcription] = await store.transcriptions.list_for_job(job.id)
    assert transcription.provider == "whisper-timestamped"


async def test_a_deeply_nested_file_is_that_files_refusal_and_the_others_land(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    depth = 100_000
    (folder / "deep.json").write_text("[" * depth + "]" * depth)
    before = await counts(store)

    report, _ = await run(store, job, folder)

    statuses = {f.path.name: f.status for f in report.files}
    assert statuses == {"deep.json": "refused", "vosk.json": "stored"}
    deep = report.files[0]
    assert deep.reason is not None and "nested too deeply" in deep.reason
    after = await counts(store)
    assert after["transcriptions"] == before["transcriptions"] + 1
    assert after["words"] == before["words"] + 5


async def test_a_file_over_max_bytes_is_refused_without_reading_it(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    big = folder / "big.json"
    with big.open("wb") as f:  # sparse: no disk, no memory, until someone reads it
        f.truncate(DEFAULT_MAX_BYTES + 2**20)
    before = await counts(store)

    tracemalloc.start()
    try:
        report, _ = await run(store, job, folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert {f.path.name: f.status for f in report.files} == {
        "big.json": "refused",
        "vosk.json": "stored",
    }
    reason = report.files[0].reason or ""
    assert "257.0 MiB, over the 256.0 MiB limit; raise --max-bytes" in reason
    assert peak < 64 * 2**20  # the file was never read whole
    after = await counts(store)
    assert after["transcriptions"] == before["transcriptions"] + 1


async def test_max_bytes_can_be_lowered_and_raised(store: Store, job: Job, tmp_path: Path) -> None:
    path = directory(tmp_path, ["vosk.json"]) / "vosk.json"
    size = path.stat().st_size
    low, _ = await run(store, job, path, max_bytes=size - 1)
    assert low.files[0].status == "refused"
    assert f"over the {size - 1} B limit" in (low.files[0].reason or "")
    exact, _ = await run(store, job, path, max_bytes=size)
    assert exact.files[0].status == "stored"


async def test_special_files_are_refused_with_the_true_reason_without_blocking(
    store: Store, job: Job, tmp_path: Path
) -> None:
    folder = directory(tmp_path, ["vosk.json"])
    (folder / "loop-a.json").symlink_to(folder / "loop-b.json")
    (folder / "loop-b.json").symlink_to(folder / "loop-a.json")
    (folder / "dangling.json").symlink_to(folder / "gone.json")
    os.mkfifo(folder / "pipe.json")  # nobody writes: reading it would block forever
    before = await counts(store)

    listed, _ = await asyncio.wait_for(run(store, job, folder), 30)
    named, _ = await asyncio.wait_for(
        run(
            store,
            job,
            folder / "pipe.json",
            folder / "loop-a.json",
            Path("/dev/zero"),
            tmp_path / "missing.json",
        ),
        30,
    )

    assert {f.path.name: (f.status, f.reason) for f in listed.files} == {
        "dangling.json": ("refused", "a broken symbolic link (its target does not exist)"),
        "loop-a.json": ("refused", "a symbolic link loop"),
        "loop-b.json": ("refused", "a symbolic link loop"),
        "pipe.json": ("refused", "not a regular file: a FIFO (named pipe)"),
        "vosk.json": ("stored", None),
    }
    assert [f.reason for f in named.files] == [
        "not a regular file: a FIFO (named pipe)",
        "a symbolic link loop",
        "not a regular file: a character device",
        "no such file or directory",
    ]
    after = await counts(store)
    assert after["transcriptions"] == before["transcriptions"] + 1


async def test_a_nul_in_a_word_is_reported_against_that_word(
    store: Store, job: Job, tmp_path: Path
) -> None:
    words = [
        {"word": f"w{i}", "start": i * 0.5, "end": i * 0.5 + 0.4, "conf": 0.9} for i in range(5000)
    ]
    words[4321]["word"] = "bad\x00word"
    path = tmp_path / "nul.json"
    path.write_text(json.dumps({"result": words, "text": "..."}))
    before = await counts(store)

    report, _ = await run(store, job, path)

    reason = report.files[0].reason or ""
    assert report.files[0].status == "refused"
    assert "word 4321 (word): must not contain NUL" in reason
    assert "text_content" not in reason
    assert await counts(store) == before


def test_the_parser_takes_max_bytes_with_a_unit() -> None:
    base = ["import", "a.json", "--job", str(uuid.UUID(int=1))]
    assert ImportOptions.from_args(parser().parse_args(base)).max_bytes == DEFAULT_MAX_BYTES
    for given, expected in [("1000", 1000), ("512M", 512 * 2**20), ("2GiB", 2 * 2**30)]:
        args = parser().parse_args([*base, "--max-bytes", given])
        assert ImportOptions.from_args(args).max_bytes == expected
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "--max-bytes", "lots"])


def _text_one_by_one(texts: list[str]) -> str:
    """transcript_text as it was written word by word (the column-wise one must agree)."""
    spaced = sum(1 for t in texts[1:] if t[:1].isspace())
    if texts and spaced * 2 > len(texts) - 1 and len(texts) > 1:
        return "".join(texts).strip()
    return " ".join(t.strip() for t in texts if t.strip())


@settings(max_examples=300, deadline=None)
@hypothesis_given(
    st.lists(
        st.text(
            alphabet=st.sampled_from([" ", "\t", "\u3000", "\x1c", "\u2028", "a", "é", "東", "."]),
            max_size=4,
        ),
        max_size=8,
    )
)
def test_transcript_text_column_wise_agrees_with_one_by_one(texts: list[str]) -> None:
    assert transcript_text([{"word": t} for t in texts]) == _text_one_by_one(texts)


async def test_a_database_failing_mid_import_leaves_no_read_behind(
    store: Store, job: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # Each file is read and hashed on a thread while the one before it is parsed and stored:
    # when the database fails on the first file, the second one's read is dropped, and
    # neither a pending task nor an unretrieved outcome (asyncio logs those) is left.
    from media_store import DatabaseUnavailable
    from media_store.repositories.media_assets import MediaAssetRepository

    folder = tmp_path / "outputs"
    folder.mkdir()
    first = folder / "a.json"
    shutil.copy(FIXTURES / "deepgram.json", first)
    # Over the limit: its read ends in a refusal, an outcome someone must retrieve.
    (folder / "b.json").write_bytes(b" " * (first.stat().st_size + 1))
    calls: list[str] = []

    async def failing(self: Any, job_id: uuid.UUID, sha256: str) -> None:
        calls.append(sha256)
        raise DatabaseUnavailable("the server went away")

    monkeypatch.setattr(MediaAssetRepository, "find_import", failing)
    before = await counts(store)
    # Not pytest.raises: the exception's frames would keep the dropped read alive, and asyncio
    # logs an unretrieved outcome only when its task is collected.
    failed = False
    try:
        await run(store, job, folder, max_bytes=first.stat().st_size)
    except DatabaseUnavailable:
        failed = True
    assert failed and len(calls) == 1
    for _ in range(5):
        await asyncio.sleep(0.01)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert left == []
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
    assert await counts(store) == before
