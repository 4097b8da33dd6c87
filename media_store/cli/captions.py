"""``media-store captions ID --format srt|vtt``: a transcription's captions on stdout.

Written a cue at a time as the words are read (a window at a time), so a long transcript never
sits in memory: ``media-store captions ID --format vtt > talk.vtt``. Exit status: 0 done; 1 no
such transcription; 2 bad arguments or no database (from ``media-store``'s main). Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any, TextIO

from media_store.errors import NotFound
from media_store.store import Store
from media_store.words.captions import CAPTION_FORMATS, CaptionRules

_DEFAULTS = CaptionRules()


def _transcription_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a transcription id (a UUID)") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``captions`` to ``subparsers`` (``parser.add_subparsers()``); its ``func`` default
    is :func:`command`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "captions",
        help="write a transcription's captions (SRT or WebVTT) to stdout",
        description=(
            "Write the captions of transcription ID to stdout as SRT or WebVTT, a cue at a "
            "time: lines broken at word boundaries, a cue per speaker (WebVTT names them), "
            "Netflix's limits by default. Exit status 1 when the transcription does not exist."
        ),
    )
    parser.add_argument("transcription_id", type=_transcription_id, metavar="ID")
    parser.add_argument("--format", choices=CAPTION_FORMATS, default="srt", help="default srt")
    parser.add_argument("--max-chars", type=int, default=_DEFAULTS.max_chars, metavar="N")
    parser.add_argument("--max-lines", type=int, default=_DEFAULTS.max_lines, metavar="N")
    parser.add_argument(
        "--max-duration", type=float, default=_DEFAULTS.max_duration, metavar="SECONDS"
    )
    parser.add_argument(
        "--min-duration", type=float, default=_DEFAULTS.min_duration, metavar="SECONDS"
    )
    parser.add_argument(
        "--max-gap",
        type=float,
        default=_DEFAULTS.max_gap,
        metavar="SECONDS",
        help="a longer pause between words ends the cue",
    )
    parser.add_argument(
        "--no-speaker-split",
        dest="split_on_speaker",
        action="store_false",
        help="let a cue run on over a change of speaker",
    )
    parser.set_defaults(func=command)
    return parser


def command(args: argparse.Namespace) -> int:
    """Run ``captions``; its exit status. Other library errors (bad limits: ValidationError;
    no database) reach ``media-store``'s main (exit status 2)."""
    try:
        return asyncio.run(_write(args, sys.stdout))
    except NotFound as exc:
        print(f"media-store captions: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


async def _write(args: argparse.Namespace, out: TextIO) -> int:
    async with await Store.open() as store:
        chunks = store.transcriptions.captions(
            args.transcription_id,
            args.format,
            max_chars=args.max_chars,
            max_lines=args.max_lines,
            max_duration=args.max_duration,
            min_duration=args.min_duration,
            max_gap=args.max_gap,
            split_on_speaker=args.split_on_speaker,
        )
        async for chunk in chunks:
            out.write(chunk)
    out.flush()
    return 0
