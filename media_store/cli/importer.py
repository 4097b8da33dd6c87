"""``media-store import``: backfill saved speech-recogniser output into a job.

::

    media-store import --job JOB_ID [--engine auto] [--order sort] [--inverted drop|clamp]
                       [--untimed drop|interpolate] [--max-end SECONDS] [--max-bytes SIZE]
                       PATH...

Each PATH is a JSON file, or a directory whose ``*.json`` files (not its subdirectories)
are imported in name order. Every file becomes one transcription of the job, with its words.
A path that is no regular file (a FIFO, a device, a symbolic link loop or a broken one) is
refused with that reason and never opened for a blocking read.

Decisions:

* **Into a given job** (``--job``, required), not one new job per file: a job made by a
  backfill would be ``pending`` and picked up by the workers, its ``media_url`` would have to
  be invented, and spotting a re-import would mean searching every job. The job says which
  media the transcripts are of; create it first.
* **All or nothing per file**: a file is parsed, adapted and repaired first, then its
  transcription and its words go in one transaction (``store.transaction()`` with
  ``create_streamed``), so a file refused midway (a bad word in its 9,000th place) leaves
  no row behind. A refused file does not stop the others.
* **Bounded memory**: one file at a time, and the next one's bytes. The repair policies need
  the file's whole word list (a stable sort sees every word), so memory is bounded by the
  largest single file, never by the directory; that list goes to ``create_streamed`` whole
  (validated and copied column-wise at once: no step a word in Python). While a file is
  parsed and stored, the next is read and hashed on a thread (hashlib lets go of the GIL),
  so at most two files' bytes are held at once. A file larger than ``--max-bytes`` (default
  256 MiB; parsed JSON takes several times its size in memory) is refused from its size,
  before a byte of it is read.
* **Re-runnable**: each stored file is recorded by the SHA-256 of its bytes, in the
  transcription's metadata (``asr_import``) and as a ``transcription`` media asset of the
  job (the source file, with the same ``asr_import`` metadata). A file whose hash the job
  already holds, for a transcription that still exists, is skipped ("already imported"),
  whatever its name and whatever policies are given now. The lookup is one named query
  per file (``media_assets.find_import``: the job's assets by index, no words read), run
  once before the file is parsed (a re-run skips without parsing) and again inside the
  file's transaction after ``media_assets.lock_import`` (an advisory lock on job + hash):
  two imports of the same file into the same job running at once store it once, the
  second waits for the first to commit and then finds it.
* **Strict by default**: the three repair policies are ``refuse`` unless given; a refused
  file's reason names the word and the option that would store it. A file whose keys fit
  several engines (an empty Whisper result) is refused until ``--engine`` names one: a
  guess would record the wrong provider.
* **One file's failure is that file's refusal**: JSON nested too deeply to parse, a payload
  that trips an adapter, a bad word: the file is refused, the others are imported.
* **Exit status**: 0 when every file was stored or already there, 1 when any file was
  refused. (Wired into :mod:`media_store.cli`, a missing job or an unreachable database is a
  :class:`~media_store.errors.MediaStoreError`: status 2.)

The progress bar (on stderr) shows files done, words stored and words/s; a summary table
(on stdout) lists each file: stored / already imported / refused, its engine, words, the
repairs applied and, for a refused file, the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import hashlib
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, cast

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from media_store._compiled import compiled
from media_store.asr.decode import columns
from media_store.asr.engines import ENGINES, AmbiguousEngine, detect, words_from
from media_store.asr.repair import (
    INVERTED_POLICIES,
    ORDER_POLICIES,
    UNTIMED_POLICIES,
    InvertedPolicy,
    OrderPolicy,
    Repair,
    UntimedPolicy,
    repair,
    sound,
)
from media_store.errors import JobNotFound, ValidationError
from media_store.models.fields import storable
from media_store.models.schemas import AssetType, MediaAsset
from media_store.store import Store
from media_store.words import Words, validate_words

# The metadata key of an imported transcription and of its source-file asset (the query
# find_imported_asset in sql/media_assets.sql reads the asset's under this name).
IMPORT_KEY = "asr_import"
_WORD = itemgetter("word")
_SPACED = re.compile(r"\x00\s")
# The compiled count of words with a leading space, or None.
_leading_spaces: Callable[[list[Any]], int | None] | None = compiled("leading_spaces")
# The largest file imported unless --max-bytes says otherwise: parsed JSON takes several
# times its size in memory (a 2 GB file took 2.6-4.2 GB resident), and a recogniser's
# output for hours of audio is tens of MB.
DEFAULT_MAX_BYTES = 256 * 2**20

Status = Literal["stored", "skipped", "refused"]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What to import and how (the parsed command line)."""

    paths: tuple[Path, ...]
    job_id: uuid.UUID
    engine: str = "auto"
    order: OrderPolicy = "refuse"
    inverted: InvertedPolicy = "refuse"
    untimed: UntimedPolicy = "refuse"
    provider: str | None = None
    language: str | None = None
    max_end: float | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    progress: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ImportOptions:
        return cls(
            paths=tuple(args.paths),
            job_id=args.job,
            engine=args.engine,
            # argparse's choices hold these to the policies' names.
            order=cast(OrderPolicy, args.order),
            inverted=cast(InvertedPolicy, args.inverted),
            untimed=cast(UntimedPolicy, args.untimed),
            provider=args.provider,
            language=args.language,
            max_end=args.max_end,
            max_bytes=args.max_bytes,
            progress=args.progress,
        )


@dataclass(slots=True)
class FileResult:
    """What happened to one file."""

    path: Path
    status: Status
    engine: str | None = None
    words: int = 0
    repairs: list[Repair] = field(default_factory=list)
    reason: str | None = None
    transcription_id: uuid.UUID | None = None


@dataclass(slots=True)
class ImportReport:
    files: list[FileResult]
    seconds: float

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def words(self) -> int:
        return sum(f.words for f in self.files if f.status == "stored")

    @property
    def exit_status(self) -> int:
        """0: every file stored or already there; 1: at least one refused."""
        return 1 if self.count("refused") else 0


# --- argparse -----------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``import`` to ``subparsers`` (``parser.add_subparsers()``); its ``func`` default
    is :func:`command`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="backfill saved speech-recogniser JSON into a job",
        description=(
            "Import speech-recogniser output (JSON files, or directories of *.json) into a "
            "job, one transcription per file, all or nothing per file; files already "
            "imported into the job are skipped. Exit status 1 when any file was refused."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or directory")
    parser.add_argument("--job", required=True, type=uuid.UUID, help="the job to import into")
    parser.add_argument(
        "--engine",
        default="auto",
        choices=["auto", *ENGINES],
        help="the engine that wrote the files (default: detect it per file)",
    )
    parser.add_argument(
        "--order",
        default="refuse",
        choices=ORDER_POLICIES,
        help="words out of start order: refuse (default) or stable-sort",
    )
    parser.add_argument(
        "--inverted",
        default="refuse",
        choices=INVERTED_POLICIES,
        help="words ending before they start: refuse (default), drop, or clamp end to start",
    )
    parser.add_argument(
        "--untimed",
        default="refuse",
        choices=UNTIMED_POLICIES,
        help="words without times: refuse (default), drop, or interpolate between neighbours",
    )
    parser.add_argument("--provider", help="the transcriptions' provider (default: the engine)")
    parser.add_argument("--language", help="the transcriptions' language code")
    parser.add_argument(
        "--max-end",
        type=float,
        metavar="SECONDS",
        help="the media's end: a file with a word ending after it is refused (times in "
        "another unit than seconds); add a second or so, engines overshoot a little",
    )
    parser.add_argument(
        "--max-bytes",
        type=byte_size,
        default=DEFAULT_MAX_BYTES,
        metavar="SIZE",
        help="refuse a file larger than this, before reading it (bytes, or with K, M, G: "
        "512M, 2GiB; default 256M); parsing takes several times the file's size in memory",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    parser.set_defaults(func=command)
    return parser


_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "m": 2**20,
    "mib": 2**20,
    "g": 2**30,
    "gib": 2**30,
}


def byte_size(text: str) -> int:
    """``--max-bytes``: a whole number of bytes, or of KiB, MiB, GiB (``512M``, ``2GiB``)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"expected a size like 1000000, 512M or 2GiB, got {text!r}"
        )
    return int(match.group(1)) * _UNITS[unit]


def command(args: argparse.Namespace) -> int:
    """Run the import the parsed ``args`` describe on ``DATABASE_URL``; the exit status."""
    return asyncio.run(_run(ImportOptions.from_args(args)))


async def _run(options: ImportOptions) -> int:
    async with await Store.open() as store:
        report = await import_files(store, options, out=Console(), err=Console(stderr=True))
    return report.exit_status


# --- the import -----------------------------------------------------------------------------


async def import_files(
    store: Store, options: ImportOptions, *, out: Console, err: Console
) -> ImportReport:
    """Import every file of ``options`` into its job; print progress on ``err`` and the
    summary on ``out``. Refused files are reported, not raised. Raises
    :class:`JobNotFound`, and the store's errors for a database that fails (not a file)."""
    if await store.jobs.get_by_id(options.job_id) is None:
        raise JobNotFound(options.job_id)
    files, results = _collect(options.paths)
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]import"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[words]:>10,} words"),
        TextColumn("{task.fields[rate]:>9,.0f} words/s"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[file]}"),
        console=err,
        disable=not options.progress,
        transient=False,
    )
    with progress:
        task = progress.add_task("import", total=len(files), words=0, rate=0.0, file="")
        meter = _Meter(progress, task, started)
        # Each file's bytes and hash come from a thread started while the file before it was
        # parsed and stored: a 1.6 MB file's SHA-256 took 1.6 ms of a 22 ms import (py-spy).
        pending = _reading(files[0], options.max_bytes) if files else None
        try:
            for index, path in enumerate(files):
                assert pending is not None
                read = await _read_result(pending)
                pending = (
                    _reading(files[index + 1], options.max_bytes)
                    if index + 1 < len(files)
                    else None
                )
                progress.update(task, file=path.name)
                result = await _import_one(store, options, path, meter, read)
                results.append(result)
                meter.file_done(result)
        finally:
            if pending is not None:  # a failing database stopped the import: drop the read
                pending.cancel()
                pending.add_done_callback(_forget)
    report = ImportReport(results, time.monotonic() - started)
    _summary(out, report)
    return report


class _Meter:
    """Words stored so far (the committed files plus the one streaming), for the bar."""

    def __init__(self, progress: Progress, task: TaskID, started: float) -> None:
        self.progress = progress
        self.task = task
        self.started = started
        self.committed = 0

    def show(self, words: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.progress.update(self.task, words=words, rate=words / elapsed)

    def file_done(self, result: FileResult) -> None:
        if result.status == "stored":
            self.committed += result.words
        self.show(self.committed)  # a refused file's words were rolled back
        self.progress.advance(self.task)


def _collect(paths: Sequence[Path]) -> tuple[list[Path], list[FileResult]]:
    """The files to import, and the refusals of paths that are none (with the true reason:
    a FIFO is not "missing"). A directory's ``*.json`` entries that are no regular file are
    refused too, rather than skipped unseen; its subdirectories are left alone."""
    files: list[Path] = []
    refused: list[FileResult] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".json")
            found = [p for p in found if not p.is_dir()]
            if not found:
                refused.append(FileResult(path, "refused", reason="no *.json file in it"))
            for entry in found:
                reason = _not_a_file(entry)
                if reason is None:
                    files.append(entry)
                else:
                    refused.append(FileResult(entry, "refused", reason=reason))
        else:
            reason = _not_a_file(path)
            if reason is None:
                files.append(path)
            else:
                refused.append(FileResult(path, "refused", reason=reason))
    return files, refused


def _not_a_file(path: Path) -> str | None:
    """None when ``path`` is (a symbolic link to) a regular file, else why not."""
    try:
        info = path.stat()
    except OSError as exc:
        return _os_reason(path, exc)
    return None if stat.S_ISREG(info.st_mode) else _kind(info.st_mode)


def _os_reason(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return "a broken symbolic link (its target does not exist)"
        return "no such file or directory"
    return f"cannot read it: {exc.strerror or exc}"


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return "not a regular file: " + next((name for test, name in kinds if test(mode)), "?")


class _Unreadable(Exception):
    """A file refused before its content was parsed; the message is the reason."""


def _read(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them. Raises
    :class:`_Unreadable`.

    Opened without blocking (a FIFO put in place since :func:`_collect` looked would block
    a plain open until a writer came) and checked on the open descriptor, so what is read
    is what was checked: a regular file, no larger than ``limit`` (from its size, before
    anything is read: memory is bounded by the limit).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _Unreadable(_os_reason(path, exc)) from None
    with open(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable(_kind(info.st_mode))
        if info.st_size > limit:
            raise _Unreadable(
                f"{_size(info.st_size)}, over the {_size(limit)} limit; raise --max-bytes "
                "to import it"
            )
        try:
            data = file.read(info.st_size)
            grew = bool(file.read(1))
        except OSError as exc:
            raise _Unreadable(f"cannot read it: {exc.strerror or exc}") from None
    if grew:
        raise _Unreadable("it grew while being read; import it once it is complete")
    return data


def _read_hashed(path: Path, limit: int) -> tuple[bytes, str]:
    """:func:`_read`, and the SHA-256 of the bytes read (hex)."""
    data = _read(path, limit)
    return data, hashlib.sha256(data).hexdigest()


def _reading(path: Path, limit: int) -> asyncio.Future[tuple[bytes, str]]:
    """:func:`_read_hashed` of ``path`` on a thread, started now."""
    return asyncio.ensure_future(asyncio.to_thread(_read_hashed, path, limit))


async def _read_result(reading: asyncio.Future[tuple[bytes, str]]) -> tuple[bytes, str] | str:
    """What :func:`_reading` read: the bytes and their hash, or why the file was not read."""
    try:
        return await reading
    except _Unreadable as exc:
        return str(exc)


def _forget(reading: asyncio.Future[Any]) -> None:
    """Retrieve a dropped read's outcome, so that asyncio does not log it as unretrieved."""
    if not reading.cancelled():
        reading.exception()


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


async def _import_one(
    store: Store, options: ImportOptions, path: Path, meter: _Meter, read: tuple[bytes, str] | str
) -> FileResult:
    """Import the file at ``path``, whose bytes and hash are ``read`` (or why it could not be
    read)."""
    if isinstance(read, str):
        return FileResult(path, "refused", reason=read)
    data, digest = read
    earlier = await store.media_assets.find_import(options.job_id, digest)
    if earlier is not None:
        return _already(path, earlier)
    try:
        prepared = _prepare(data, options)
    except _Refused as refusal:
        return FileResult(
            path, "refused", engine=refusal.engine, repairs=refusal.repairs, reason=refusal.reason
        )
    engine, words, repairs, text = prepared
    record = {
        "file": path.name,
        "sha256": digest,
        "engine": engine,
        "repairs": [str(r) for r in repairs],
    }
    transcription = {
        "job_id": options.job_id,
        "provider": options.provider or engine,
        "text_content": text,
        "language": options.language,
        "metadata": {IMPORT_KEY: record},
    }
    try:
        async with store.transaction() as tx:
            # Another import of this file into this job may have committed since the check
            # above, or be running now: wait for it, then look again.
            earlier = await tx.media_assets.lock_import(options.job_id, digest)
            if earlier is not None:
                return _already(path, earlier, engine)
            # The file's words are in memory already (the repairs need them all): handed
            # over whole, they are validated at once, column-wise, then written as create
            # writes them (with the row in one statement up to 32,768 words), in a savepoint.
            created, count = await tx.transcriptions.create_streamed(
                transcription, words, max_end=options.max_end
            )
            await tx.media_assets.create(
                {
                    "job_id": options.job_id,
                    "asset_type": AssetType.TRANSCRIPTION,
                    "file_path": _absolute(path),
                    "file_size_bytes": len(data),
                    "mime_type": "application/json",
                    "metadata": {IMPORT_KEY: {**record, "transcription_id": str(created.id)}},
                }
            )
    except ValidationError as exc:
        return FileResult(path, "refused", engine=engine, repairs=repairs, reason=str(exc))
    return FileResult(path, "stored", engine, count, repairs, transcription_id=created.id)


class _Refused(Exception):
    """A file refused while being parsed, adapted or repaired (nothing written yet)."""

    def __init__(
        self, reason: str, engine: str | None = None, repairs: list[Repair] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.engine = engine
        self.repairs = repairs or []


def _prepare(
    data: bytes, options: ImportOptions
) -> tuple[str, Sequence[Mapping[str, Any]] | Words, list[Repair], str]:
    """Parse, adapt and repair one file's bytes: its engine, words, repairs and text. Pure
    (nothing is written), so any failure here is this file's alone. Raises :class:`_Refused`.

    The engines' usual files take the fast path: typed decoding to the word columns
    (:func:`media_store.asr.decode.columns`), when no repair policy has anything to do and
    the text can be stored. Anything else, the general path: parse, detect, adapt, repair,
    which names what is wrong (the same words either way).
    """
    fast = columns(data, options.engine)
    if fast is not None:
        name, (texts, starts, ends, confidences, speakers) = fast
        joined = _joined(texts)
        if sound(starts, ends) and _storable(joined):
            # Not validated yet: the store validates every Words it is given, column-wise.
            return name, Words.trusted(texts, starts, ends, confidences, speakers), [], joined
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        # The standard library's parser reads what orjson refuses (NaN, integers past 64
        # bits, UTF-16, lone surrogates: the store then names the word), and says why not.
        payload = _parse_slowly(data)
    engine: str | None = None
    repairs: list[Repair] = []
    try:
        engine = detect(payload) if options.engine == "auto" else options.engine
        words, repairs = repair(
            list(words_from(engine, payload)),
            order=options.order,
            inverted=options.inverted,
            untimed=options.untimed,
        )
        return engine, words, repairs, _text(words)
    except AmbiguousEngine as exc:
        named = " or ".join(f"--engine {c}" for c in exc.candidates)
        raise _Refused(f"{exc}: {named}") from None
    except ValidationError as exc:
        raise _Refused(str(exc), engine, repairs) from None
    except Exception as exc:
        # An adapter's bug hit by this file: nothing was written yet, and one file must not
        # stop the rest of a backfill. Named by its type, so it can be reported.
        raise _Refused(
            f"could not be read ({type(exc).__name__}: {exc}); please report it with the file",
            engine,
            repairs,
        ) from None


def _parse_slowly(data: bytes) -> Any:
    """``json.loads``, for a file orjson would not read. Raises :class:`_Refused`."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refused(f"not JSON: {exc}") from None
    except RecursionError:
        # json's parser recurses once per level: a file nested thousands deep is no
        # recogniser's output, and must not take the other files down with it.
        raise _Refused(
            "nested too deeply to parse (JSON arrays or objects thousands deep)"
        ) from None


def _text(words: Sequence[Mapping[str, Any]]) -> str:
    """:func:`transcript_text`, refusing a word the text could not hold (NUL, a lone
    surrogate) by its index, as the store would: the importer builds the text, so a bad
    word must not be reported against ``text_content``, which the user never wrote."""
    text = transcript_text(words)
    if not _storable(text):
        for index, word in enumerate(words):
            try:
                storable(word["word"])
            except ValueError:
                # The store's own check, for its message ("word 4321 (word): ...").
                validate_words([word], offset=index)
    return text


def _storable(text: str) -> bool:
    try:
        storable(text)
    except ValueError:
        return False
    return True


def _already(path: Path, asset: MediaAsset, engine: str | None = None) -> FileResult:
    """A file the job already holds: skipped, naming the transcription it became."""
    record = asset.metadata.get(IMPORT_KEY)
    found = record.get("transcription_id") if isinstance(record, Mapping) else None
    transcription_id = uuid.UUID(found) if isinstance(found, str) else None
    return FileResult(
        path,
        "skipped",
        engine=engine,
        reason=f"already imported (transcription {transcription_id})",
        transcription_id=transcription_id,
    )


def _absolute(path: Path) -> str:
    return str(path.resolve())


def transcript_text(words: Sequence[Mapping[str, Any]]) -> str:
    """The transcription's text from its words: concatenated when the engine writes words
    with their leading space (the Whisper family), else joined with single spaces."""
    # Column-wise (maps in C, no Python step a word): a transcript has tens of thousands.
    try:
        texts = list(map(_WORD, words))
    except (KeyError, TypeError):
        texts = [w["word"] for w in words]
    return _joined(texts)


def _joined(texts: list[str]) -> str:
    """:func:`transcript_text` of the words' texts."""
    # Words after the first that begin with whitespace: a separator and \s (str.isspace's
    # characters) found in one scan of the joined text, or counted by the compiled
    # leading_spaces (media_store/_speedups.c) where built, without joining them.
    counted = _leading_spaces(texts) if _leading_spaces is not None else None
    spaced = len(_SPACED.findall("\x00".join(texts))) if counted is None else counted
    if texts and spaced * 2 > len(texts) - 1 and len(texts) > 1:
        return "".join(texts).strip()
    return " ".join(filter(None, map(str.strip, texts)))


def _summary(out: Console, report: ImportReport) -> None:
    table = Table(title="media-store import", expand=True)
    table.add_column("file", ratio=3, overflow="fold")
    table.add_column("engine", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("words", justify="right", no_wrap=True)
    table.add_column("repaired", ratio=2)
    table.add_column("reason", ratio=4)
    styles = {"stored": "green", "skipped": "cyan", "refused": "bold red"}
    labels = {"stored": "stored", "skipped": "already imported", "refused": "refused"}
    for f in report.files:
        table.add_row(
            f.path.name or str(f.path),
            f.engine or "",
            f"[{styles[f.status]}]{labels[f.status]}[/]",
            f"{f.words:,}" if f.status == "stored" else "",
            "; ".join(map(str, f.repairs)),
            Text(f.reason or ""),  # verbatim: a reason may hold [brackets]
        )
    out.print(table)
    rate = report.words / report.seconds if report.seconds > 0 else 0.0
    out.print(
        f"{report.count('stored')} stored ({report.words:,} words), "
        f"{report.count('skipped')} already imported, {report.count('refused')} refused, "
        f"in {report.seconds:.1f} s ({rate:,.0f} words/s)",
        markup=False,
        highlight=False,
    )
