"""ASR ingest: each engine's JSON, parsed, adapted and stored, next to the plain-COPY limit.

One transcript of :data:`WORDS` words (Unicode text, punctuation, two speakers taking turns,
times to 10 ms, four-decimal confidences) is rendered into every engine's native JSON shape,
with what that engine writes besides the words (Whisper's segment headers and tokens,
whisperX's ``word_segments`` copy, whisper.cpp ``-ojf``'s per-token objects, AssemblyAI's
``utterances``, AWS's punctuation items, Google's diarized last result repeating every word,
Azure's continuous-recognition list, Watson's parallel lists and ``speaker_labels``), in that
engine's units (milliseconds, 100-ns ticks, ``"1.230s"``, numeric strings) and speaker forms.
Every engine's adapter must give back the same times and confidences (checked before timing).

Contenders, each timed per transcript, one call per transcript:

- ``<engine>``: ``orjson.loads`` of the engine's bytes, ``list(words_from(engine, payload))``,
  ``store.transcriptions.create`` with those words; the three phases timed apart, so the
  figures are parse-to-stored, adapt-to-stored (parse untimed, as bench_words times the
  store) and store only;
- ``generic``: the same words as plain dicts of the five keys (``orjson.loads`` of a JSON
  array, then ``create``): the generic-path profile;
- ``<engine> limit`` / ``generic limit``: the plain-COPY limit of the same words, as
  bench_words defines it: tuples built (untimed, from the engine's JSON through its adapter)
  from the words that contender stores, asyncpg binary COPY into a logged table of plain rows
  with no index or constraint.

Then the import command (issue 21, item 3): ``media-store import`` of each engine's directory
of its :data:`DISTINCT` files (``import_files``, into a job made before the clock), against
the plainest import of the same files (the issue's limit): each file read, ``orjson.loads``,
its words made plain rows by one comprehension over the parsed objects (:data:`PLAIN_ROWS`:
each engine's units to seconds, nothing checked), COPYed, all in the clock. Reported too, as
a stricter bound: the same with the rows built before the clock (``parse + COPY alone``: it
leaves out getting the words out of the payload). The three take turns file set by file set.

All contenders take turns transcript by transcript, the engines' order rotating and each
engine's store and limit side by side (which goes first alternating), so that a burst of load
on this shared 2-core machine falls on all of them alike; media_store contenders share one
fresh migrated database per round, the limits one fresh plain database (a table each).
:data:`ROUNDS` rounds; words/s are medians of rounds, ratios medians of each round's ratio.
The issue's target: the generic path at least :data:`TARGET_VS_LIMIT` x the limit; every
engine's ratios are reported next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import random
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from rich.console import Console

from benchmarks.common import Timer, fresh_database, judge, median, print_table, write_results
from media_store import Dsn, Settings, Store
from media_store.asr import words_from
from media_store.cli.importer import ImportOptions, import_files

WORDS = 12_000
DISTINCT = 3  # distinct transcripts per engine; transcript i uses payload i % DISTINCT
TRANSCRIPTS = 12  # per contender per round
ROUNDS = 3
SEGMENT = 24  # words per segment / result / utterance in the rendered payloads
TARGET_VS_LIMIT = 0.8
IMPORTS = 4  # imports of each engine's directory (its DISTINCT files) per round
TARGET_IMPORT_VS_LIMIT = 0.8  # issue 21, item 3: import vs the plainest import, every engine

ENGLISH = (
    "the of and to a in is it you that he was for on are with as I his they be at one have"
    " this from or had by word but what some we can out other were all there when up use your"
    " how said an each she which do their time if will way about many then them would like so"
    " these her long make thing see him two has look more day could go come did number sound"
    " no most people my over know water than call first who may down side been now find"
)
VOCABULARY = [
    *ENGLISH.split(),
    "réunion",
    "naïve",
    "café",
    "Straße",
    "São",
    "東京",
    "שלום",
    "мир",
    "नमस्ते",
    "🎙️",
    "👋🏽",
]


@dataclass(frozen=True, slots=True)
class Base:
    """One word before any engine wrote it: times in centiseconds (every unit is exact)."""

    text: str  # with its punctuation, if any
    bare: str  # without it (Deepgram's ``word``, AWS's pronunciation content)
    punctuation: str
    start_cs: int
    end_cs: int
    confidence: float
    speaker: int  # 0 or 1


def base_words(n: int, seed: int) -> list[Base]:
    rng = random.Random(seed)
    words: list[Base] = []
    t = 0
    speaker, turn = 0, rng.randint(1, 40)
    for _ in range(n):
        t += int(rng.expovariate(1 / 16))
        length = rng.randint(8, 60)
        bare = rng.choice(VOCABULARY)
        punctuation = rng.choice(("", "", "", "", ",", ".", "?"))
        if turn == 0:
            speaker, turn = 1 - speaker, rng.randint(1, 40)
        turn -= 1
        words.append(
            Base(
                bare + punctuation,
                bare,
                punctuation,
                t,
                t + length,
                round(rng.uniform(0.4, 1.0), 4),
                speaker,
            )
        )
        t += length * 6 // 10
    return words


def s(cs: int) -> float:
    return cs / 100


def chunks(words: list[Base], size: int = SEGMENT) -> Iterator[list[Base]]:
    for i in range(0, len(words), size):
        yield words[i : i + size]


def clock(cs: int) -> str:
    ms = cs * 10
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


# --- each engine's JSON ------------------------------------------------------------------------


def _whisper_segment(i: int, part: list[Base], words: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": i,
        "seek": part[0].start_cs // 3000 * 3000,
        "start": s(part[0].start_cs),
        "end": s(part[-1].end_cs),
        "text": "".join(" " + w.text for w in part),
        "tokens": [50364 + (i * 7 + k) % 1000 for k in range(len(part) + 2)],
        "temperature": 0.0,
        "avg_logprob": -0.21,
        "compression_ratio": 1.4,
        "no_speech_prob": 0.01,
        "words": words,
    }


def openai_whisper(words: list[Base]) -> Any:
    segments = [
        _whisper_segment(
            i,
            part,
            [
                {
                    "word": " " + w.text,
                    "start": s(w.start_cs),
                    "end": s(w.end_cs),
                    "probability": w.confidence,
                }
                for w in part
            ],
        )
        for i, part in enumerate(chunks(words))
    ]
    return {"text": "".join(" " + w.text for w in words), "segments": segments, "language": "en"}


def faster_whisper(words: list[Base]) -> Any:
    # A JSON dump of the generator's segments: [segment._asdict() ...], words as dicts.
    return [
        _whisper_segment(
            i,
            part,
            [
                {
                    "start": s(w.start_cs),
                    "end": s(w.end_cs),
                    "word": " " + w.text,
                    "probability": w.confidence,
                }
                for w in part
            ],
        )
        for i, part in enumerate(chunks(words))
    ]


def whisper_timestamped(words: list[Base]) -> Any:
    segments = []
    for i, part in enumerate(chunks(words)):
        segment = _whisper_segment(
            i,
            part,
            [
                {
                    "text": w.text,
                    "start": s(w.start_cs),
                    "end": s(w.end_cs),
                    "confidence": w.confidence,
                }
                for w in part
            ],
        )
        segment["confidence"] = 0.8
        segments.append(segment)
    return {"text": " ".join(w.text for w in words), "segments": segments, "language": "en"}


def whisperx(words: list[Base]) -> Any:
    def one(w: Base) -> dict[str, Any]:
        return {
            "word": w.text,
            "start": s(w.start_cs),
            "end": s(w.end_cs),
            "score": w.confidence,
            "speaker": f"SPEAKER_0{w.speaker}",
        }

    segments = [
        {
            "start": s(part[0].start_cs),
            "end": s(part[-1].end_cs),
            "text": " ".join(w.text for w in part),
            "speaker": f"SPEAKER_0{part[0].speaker}",
            "words": [one(w) for w in part],
        }
        for part in chunks(words)
    ]
    return {"segments": segments, "word_segments": [one(w) for w in words]}


def whisper_cpp(words: list[Base]) -> Any:
    entries = []
    for i, w in enumerate(words):
        stamps = {"from": clock(w.start_cs), "to": clock(w.end_cs)}
        offsets = {"from": w.start_cs * 10, "to": w.end_cs * 10}
        entries.append(
            {
                "timestamps": stamps,
                "offsets": offsets,
                "text": " " + w.text,
                "tokens": [
                    {
                        "text": " " + w.text,
                        "timestamps": stamps,
                        "offsets": offsets,
                        "id": 400 + i % 50_000,
                        "p": w.confidence,
                        "t_dtw": -1,
                    }
                ],
            }
        )
    return {
        "systeminfo": "AVX = 1 | AVX2 = 1 | AVX512 = 0 | FMA = 1 | NEON = 0 | F16C = 1",
        "model": {"type": "base", "multilingual": True, "vocab": 51865, "mels": 80, "ftype": 1},
        "params": {"model": "models/ggml-base.bin", "language": "en", "translate": False},
        "result": {"language": "en"},
        "transcription": entries,
    }


def vosk(words: list[Base]) -> Any:
    return [
        {
            "result": [
                {"conf": w.confidence, "end": s(w.end_cs), "start": s(w.start_cs), "word": w.bare}
                for w in part
            ],
            "text": " ".join(w.bare for w in part),
        }
        for part in chunks(words)
    ]


def deepgram(words: list[Base]) -> Any:
    return {
        "metadata": {
            "request_id": "5d6c2a4e-3c1b-4f0e-9a59-2f1a7c6d8e90",
            "created": "2024-05-01T10:00:00.000Z",
            "duration": s(words[-1].end_cs),
            "channels": 1,
        },
        "results": {
            "channels": [
                {
                    "alternatives": [
                        {
                            "transcript": " ".join(w.text for w in words),
                            "confidence": 0.98,
                            "words": [
                                {
                                    "word": w.bare.lower(),
                                    "start": s(w.start_cs),
                                    "end": s(w.end_cs),
                                    "confidence": w.confidence,
                                    "punctuated_word": w.text,
                                    "speaker": w.speaker,
                                    "speaker_confidence": 0.87,
                                }
                                for w in words
                            ],
                        }
                    ]
                }
            ]
        },
    }


def assemblyai(words: list[Base]) -> Any:
    def one(w: Base) -> dict[str, Any]:
        return {
            "text": w.text,
            "start": w.start_cs * 10,
            "end": w.end_cs * 10,
            "confidence": w.confidence,
            "speaker": "AB"[w.speaker],
        }

    return {
        "id": "6rlr37h7ph-0e2a-4b8f-b9f1-8c6a1ea1d2e3",
        "status": "completed",
        "text": " ".join(w.text for w in words),
        "words": [one(w) for w in words],
        "utterances": [
            {
                "confidence": 0.95,
                "start": part[0].start_cs * 10,
                "end": part[-1].end_cs * 10,
                "speaker": "AB"[part[0].speaker],
                "text": " ".join(w.text for w in part),
                "words": [one(w) for w in part],
            }
            for part in chunks(words)
        ],
        "confidence": 0.93,
        "audio_duration": words[-1].end_cs // 100 + 1,
        "speaker_labels": True,
    }


def aws_transcribe(words: list[Base]) -> Any:
    items: list[dict[str, Any]] = []
    for w in words:
        label = f"spk_{w.speaker}"
        items.append(
            {
                "id": len(items),
                "type": "pronunciation",
                "alternatives": [{"confidence": str(w.confidence), "content": w.bare}],
                "start_time": str(s(w.start_cs)),
                "end_time": str(s(w.end_cs)),
                "speaker_label": label,
            }
        )
        if w.punctuation:
            items.append(
                {
                    "id": len(items),
                    "type": "punctuation",
                    "alternatives": [{"confidence": "0.0", "content": w.punctuation}],
                    "speaker_label": label,
                }
            )
    return {
        "jobName": "call-2024-05-01",
        "accountId": "123456789012",
        "status": "COMPLETED",
        "results": {
            "transcripts": [{"transcript": " ".join(w.text for w in words)}],
            "items": items,
        },
    }


def _google_duration(cs: int) -> str:
    return f"{cs // 100}.{cs % 100:02d}0s"


def google_stt(words: list[Base]) -> Any:
    def one(w: Base, tagged: bool) -> dict[str, Any]:
        word: dict[str, Any] = {
            "startTime": _google_duration(w.start_cs),
            "endTime": _google_duration(w.end_cs),
            "word": w.text,
            "confidence": w.confidence,
        }
        if tagged:
            word["speakerTag"] = w.speaker + 1
        return word

    results: list[dict[str, Any]] = [
        {
            "alternatives": [
                {
                    "transcript": " ".join(w.text for w in part),
                    "confidence": 0.93,
                    "words": [one(w, False) for w in part],
                }
            ],
            "resultEndTime": _google_duration(part[-1].end_cs),
            "languageCode": "en-us",
        }
        for part in chunks(words)
    ]
    # Diarized: the last result repeats every word of the audio, with its speakerTag.
    results.append({"alternatives": [{"words": [one(w, True) for w in words]}]})
    return {"results": results}


def azure_speech(words: list[Base]) -> Any:
    results = []
    for i, part in enumerate(chunks(words)):
        display = " ".join(w.text for w in part)
        results.append(
            {
                "Id": f"{i:032x}",
                "RecognitionStatus": "Success",
                "Offset": part[0].start_cs * 100_000,
                "Duration": (part[-1].end_cs - part[0].start_cs) * 100_000,
                "Channel": 0,
                "DisplayText": display,
                "NBest": [
                    {
                        "Confidence": 0.97,
                        "Lexical": display.lower(),
                        "ITN": display.lower(),
                        "MaskedITN": display.lower(),
                        "Display": display,
                        "Words": [
                            {
                                "Word": w.text,
                                "Offset": w.start_cs * 100_000,
                                "Duration": (w.end_cs - w.start_cs) * 100_000,
                                "Confidence": w.confidence,
                            }
                            for w in part
                        ],
                    }
                ],
            }
        )
    return results


def ibm_watson(words: list[Base]) -> Any:
    results = [
        {
            "final": True,
            "alternatives": [
                {
                    "transcript": " ".join(w.text for w in part) + " ",
                    "confidence": 0.9,
                    "timestamps": [[w.text, s(w.start_cs), s(w.end_cs)] for w in part],
                    "word_confidence": [[w.text, w.confidence] for w in part],
                }
            ],
        }
        for part in chunks(words)
    ]
    labels = [
        {
            "from": s(w.start_cs),
            "to": s(w.end_cs),
            "speaker": w.speaker,
            "confidence": 0.5,
            "final": False,
        }
        for w in words
    ]
    return {"result_index": 0, "results": results, "speaker_labels": labels}


RENDER: dict[str, Callable[[list[Base]], Any]] = {
    "openai-whisper": openai_whisper,
    "faster-whisper": faster_whisper,
    "whisper-timestamped": whisper_timestamped,
    "whisperx": whisperx,
    "whisper.cpp": whisper_cpp,
    "vosk": vosk,
    "deepgram": deepgram,
    "assemblyai": assemblyai,
    "aws-transcribe": aws_transcribe,
    "google-stt": google_stt,
    "azure-speech": azure_speech,
    "ibm-watson": ibm_watson,
}
GENERIC = "generic"


def generic(words: list[Base]) -> Any:
    """The generic-path profile: plain dicts of the five keys."""
    return [
        {
            "word": w.text,
            "start": s(w.start_cs),
            "end": s(w.end_cs),
            "confidence": w.confidence,
            "speaker": f"SPEAKER_0{w.speaker}",
        }
        for w in words
    ]


def check(engine: str, words: list[dict[str, Any]], base: list[Base]) -> None:
    """The adapter gave back every word, time and confidence it was given."""
    assert len(words) == len(base), (engine, len(words), len(base))
    for got, want in zip(words, base, strict=True):
        assert got["word"].strip() in (want.text, want.bare), (engine, got, want)
        assert got["start"] == s(want.start_cs) and got["end"] == s(want.end_cs), (engine, got)
        assert got["confidence"] == want.confidence, (engine, got, want)


# --- the contenders --------------------------------------------------------------------------


LIMIT_COLUMNS = ["transcription_id", "word", "start", "finish", "confidence", "speaker"]


def limit_tuples(words: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    tid = uuid.uuid4()
    return [
        (tid, w["word"], w["start"], w["end"], w.get("confidence"), w.get("speaker")) for w in words
    ]


# --- the plainest import: each engine's words as plain rows, straight from orjson's objects --


def _whisper_rows(segments: Any, text: str, confidence: str, speaker: str | None = None) -> Rows:
    tid = uuid.uuid4()
    return [
        (tid, w[text], w["start"], w["end"], w[confidence], w.get(speaker) if speaker else None)
        for segment in segments
        for w in segment["words"]
    ]


def _cpp_rows(p: Any) -> Rows:
    tid = uuid.uuid4()
    rows = []
    for e in p["transcription"]:
        ps = [t["p"] for t in e["tokens"]]
        rows.append(
            (
                tid,
                e["text"],
                e["offsets"]["from"] / 1000,
                e["offsets"]["to"] / 1000,
                sum(ps) / len(ps) if ps else None,
                None,
            )
        )
    return rows


def _aws_rows(p: Any) -> Rows:
    tid = uuid.uuid4()
    rows: Rows = []
    for item in p["results"]["items"]:
        alternative = item["alternatives"][0]
        if item["type"] == "punctuation":  # glued to the word before it
            last = rows[-1]
            rows[-1] = (tid, last[1] + alternative["content"], *last[2:])
        else:
            rows.append(
                (
                    tid,
                    alternative["content"],
                    float(item["start_time"]),
                    float(item["end_time"]),
                    float(alternative["confidence"]),
                    item.get("speaker_label"),
                )
            )
    return rows


def _google_rows(p: Any) -> Rows:
    tid = uuid.uuid4()
    words = p["results"][-1]["alternatives"][0]["words"]  # diarized: every word, tagged
    return [
        (
            tid,
            w["word"],
            float(w["startTime"][:-1]),
            float(w["endTime"][:-1]),
            w.get("confidence"),
            str(w["speakerTag"]),
        )
        for w in words
    ]


def _watson_rows(p: Any) -> Rows:
    tid = uuid.uuid4()
    speakers = {label["from"]: str(label["speaker"]) for label in p["speaker_labels"]}
    return [
        (tid, t[0], t[1], t[2], c[1], speakers.get(t[1]))
        for result in p["results"]
        for t, c in zip(
            result["alternatives"][0]["timestamps"],
            result["alternatives"][0]["word_confidence"],
            strict=True,
        )
    ]


Rows = list[tuple[Any, ...]]
# Per engine, the rows a user writing the import by hand would build from ``orjson.loads``'s
# objects: one comprehension over the words, each engine's units turned to seconds, no check.
PLAIN_ROWS: dict[str, Callable[[Any], Rows]] = {
    "openai-whisper": lambda p: _whisper_rows(p["segments"], "word", "probability"),
    "faster-whisper": lambda p: _whisper_rows(p, "word", "probability"),
    "whisper-timestamped": lambda p: _whisper_rows(p["segments"], "text", "confidence"),
    "whisperx": lambda p: _whisper_rows(p["segments"], "word", "score", "speaker"),
    "whisper.cpp": _cpp_rows,
    "vosk": lambda p: [
        (tid, w["word"], w["start"], w["end"], w["conf"], None)
        for tid in [uuid.uuid4()]
        for r in p
        for w in r["result"]
    ],
    "deepgram": lambda p: [
        (tid, w["punctuated_word"], w["start"], w["end"], w["confidence"], str(w["speaker"]))
        for tid in [uuid.uuid4()]
        for w in p["results"]["channels"][0]["alternatives"][0]["words"]
    ],
    "assemblyai": lambda p: [
        (tid, w["text"], w["start"] / 1000, w["end"] / 1000, w["confidence"], w["speaker"])
        for tid in [uuid.uuid4()]
        for w in p["words"]
    ],
    "aws-transcribe": _aws_rows,
    "google-stt": _google_rows,
    "azure-speech": lambda p: [
        (
            tid,
            w["Word"],
            w["Offset"] / 10_000_000,
            (w["Offset"] + w["Duration"]) / 10_000_000,
            w["Confidence"],
            None,
        )
        for tid in [uuid.uuid4()]
        for r in p
        for w in r["NBest"][0]["Words"]
    ],
    "ibm-watson": _watson_rows,
}


def check_plain(engine: str, rows: Rows, words: Sequence[Mapping[str, Any]]) -> None:
    """The plainest import's rows hold the words the adapter gives (texts up to the leading
    space, times, confidences, speakers up to their form)."""
    assert len(rows) == len(words), (engine, len(rows), len(words))
    for row, w in zip(rows, words, strict=True):
        assert row[1].strip() == w["word"].strip(), (engine, row, w)
        assert (row[2], row[3]) == (w["start"], w["end"]), (engine, row, w)
        assert row[4] == w.get("confidence"), (engine, row, w)
        assert (row[5] is None) == (w.get("speaker") is None), (engine, row, w)


@dataclass(slots=True)
class Times:
    parse: float = 0.0
    adapt: float = 0.0
    store: float = 0.0
    limit: float = 0.0
    words: int = 0


def table(name: str) -> str:
    return "plain_" + "".join(c if c.isalnum() else "_" for c in name)


def adapt(name: str, blob: bytes) -> list[dict[str, Any]]:
    payload = orjson.loads(blob)
    words: list[dict[str, Any]] = payload if name == GENERIC else list(words_from(name, payload))
    return words


async def run_round(
    server_url: str, blobs: dict[str, list[bytes]], round_: int
) -> dict[str, Times]:
    names = [*RENDER, GENERIC]
    times = {name: Times() for name in names}
    async with contextlib.AsyncExitStack() as stack:
        store_url = await stack.enter_async_context(fresh_database(server_url))
        limit_url = await stack.enter_async_context(fresh_database(server_url, migrated=False))
        store = await Store.open(settings=Settings(dsn=Dsn(store_url), min_size=1, max_size=1))
        stack.push_async_callback(store.close)
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.wav"})
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(limit_url)
        stack.push_async_callback(conn.close)
        for name in names:
            await conn.execute(
                f"CREATE TABLE {table(name)} (transcription_id uuid, word text, start float8,"
                " finish float8, confidence float8, speaker text)"
            )
        for i in range(TRANSCRIPTS):
            # The engines in rotating order, each one's store and limit side by side (which
            # goes first alternating), so that each pair meets the same load.
            shift = (i * 5 + round_ * 3) % len(names)
            kinds = ("store", "limit") if (i + round_) % 2 == 0 else ("limit", "store")
            for name, kind in [(n, k) for n in names[shift:] + names[:shift] for k in kinds]:
                which = i % DISTINCT
                if kind == "limit":
                    records = limit_tuples(adapt(name, blobs[name][which]))
                    with Timer() as t:
                        await conn.copy_records_to_table(
                            table(name), records=records, columns=LIMIT_COLUMNS
                        )
                    times[name].limit += t.elapsed
                    del records
                    continue
                blob = blobs[name][which]
                with Timer() as parsed:
                    payload = orjson.loads(blob)
                with Timer() as adapted:
                    words = payload if name == GENERIC else list(words_from(name, payload))
                with Timer() as stored:
                    await store.transcriptions.create(
                        {
                            "job_id": job.id,
                            "provider": name,
                            "text_content": "…",
                            "word_timestamps": words,
                        }
                    )
                times[name].parse += parsed.elapsed
                times[name].adapt += adapted.elapsed
                times[name].store += stored.elapsed
                times[name].words += len(words)
                del payload, words  # freed here, untimed, not in the next contender's clock
    return times


# --- the import command, file to stored ------------------------------------------------------

IMPORT = "import"
IMPORT_PARSE_COPY = "parse + COPY alone"
IMPORT_PLAIN = "plainest import"


def write_files(folder: Path, blobs: dict[str, list[bytes]]) -> dict[str, Path]:
    """Each engine's transcripts as the files a backfill reads: a directory an engine."""
    folders = {}
    for name in RENDER:
        where = folder / table(name)
        where.mkdir()
        for i, blob in enumerate(blobs[name]):
            (where / f"{i}.json").write_bytes(blob)
        folders[name] = where
    return folders


async def import_round(
    server_url: str, folders: dict[str, Path], round_: int
) -> dict[str, dict[str, float]]:
    """Per engine, seconds of: ``media-store import`` of the engine's directory (every file,
    each into a job made before the clock starts); and the plainest import of the same files
    (read, ``orjson.loads``, the words as plain rows by COPY), without and with building the
    rows from the payload (the adapter, then tuples) in the clock."""
    quiet = Console(file=io.StringIO(), width=120)
    seconds = {
        name: dict.fromkeys((IMPORT, IMPORT_PARSE_COPY, IMPORT_PLAIN), 0.0) for name in RENDER
    }
    async with contextlib.AsyncExitStack() as stack:
        store_url = await stack.enter_async_context(fresh_database(server_url))
        limit_url = await stack.enter_async_context(fresh_database(server_url, migrated=False))
        store = await Store.open(settings=Settings(dsn=Dsn(store_url), min_size=1, max_size=1))
        stack.push_async_callback(store.close)
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(limit_url)
        stack.push_async_callback(conn.close)
        names = list(RENDER)
        for name in names:
            await conn.execute(
                f"CREATE TABLE {table(name)} (transcription_id uuid, word text, start float8,"
                " finish float8, confidence float8, speaker text)"
            )
        files = {name: sorted(folders[name].iterdir()) for name in names}
        for i in range(IMPORTS):
            shift = (i * 5 + round_ * 3) % len(names)
            kinds = [IMPORT, IMPORT_PARSE_COPY, IMPORT_PLAIN]
            turn = (i + round_) % len(kinds)
            kinds = kinds[turn:] + kinds[:turn]
            for name in names[shift:] + names[:shift]:
                for kind in kinds:
                    if kind == IMPORT:
                        job = await store.jobs.create(
                            {"job_type": "audio", "media_url": "https://x/a.wav"}
                        )
                        options = ImportOptions(
                            (folders[name],), job.id, engine=name, progress=False
                        )
                        with Timer() as t:
                            report = await import_files(store, options, out=quiet, err=quiet)
                        assert report.count("stored") == len(files[name]), report
                        quiet.file = io.StringIO()
                    elif kind == IMPORT_PARSE_COPY:
                        prepared = [limit_tuples(adapt(name, p.read_bytes())) for p in files[name]]
                        with Timer() as t:
                            for path, records in zip(files[name], prepared, strict=True):
                                orjson.loads(path.read_bytes())
                                await conn.copy_records_to_table(
                                    table(name), records=records, columns=LIMIT_COLUMNS
                                )
                        del prepared
                    else:
                        rows_of = PLAIN_ROWS[name]
                        with Timer() as t:
                            for path in files[name]:
                                records = rows_of(orjson.loads(path.read_bytes()))
                                await conn.copy_records_to_table(
                                    table(name), records=records, columns=LIMIT_COLUMNS
                                )
                        del records
                    seconds[name][kind] += t.elapsed
                gc.collect()  # untimed, between engines
    return seconds


# --- the run -------------------------------------------------------------------------------


async def main(server_url: str) -> None:
    bases = [base_words(WORDS, seed) for seed in range(DISTINCT)]
    blobs: dict[str, list[bytes]] = {}
    for name, render in {**RENDER, GENERIC: generic}.items():
        blobs[name] = [orjson.dumps(render(base)) for base in bases]
        for blob, base in zip(blobs[name], bases, strict=True):
            check(name, adapt(name, blob), base)
            if name in PLAIN_ROWS:
                check_plain(name, PLAIN_ROWS[name](orjson.loads(blob)), adapt(name, blob))
    # Only the JSON bytes stay in memory, as in bench_words: parsed words kept alive between
    # calls would make every garbage collection in the timed code walk them all.
    del bases
    gc.collect()

    rounds = []
    for r in range(ROUNDS):
        rounds.append(await run_round(server_url, blobs, r))
        gc.collect()
    with tempfile.TemporaryDirectory() as folder:
        folders = write_files(Path(folder), blobs)
        imports = [await import_round(server_url, folders, r) for r in range(ROUNDS)]

    engines: dict[str, dict[str, Any]] = {}
    for name in [*RENDER, GENERIC]:
        per = [r[name] for r in rounds]
        words = per[0].words
        assert all(p.words == words for p in per)
        # Ratios: per round (each round's store and limit ran side by side), then the median.
        paired = {
            "parse_to_stored_vs_limit": median(
                [p.limit / (p.parse + p.adapt + p.store) for p in per]
            ),
            "adapt_to_stored_vs_limit": median([p.limit / (p.adapt + p.store) for p in per]),
            "store_vs_limit": median([p.limit / p.store for p in per]),
        }
        med = {
            "parse_s": median([p.parse for p in per]),
            "adapt_s": median([p.adapt for p in per]),
            "store_s": median([p.store for p in per]),
            "parse_to_stored_s": median([p.parse + p.adapt + p.store for p in per]),
            "adapt_to_stored_s": median([p.adapt + p.store for p in per]),
            "limit_s": median([p.limit for p in per]),
        }
        if name == GENERIC:  # no adapter: the words are what was parsed
            del med["adapt_s"], med["adapt_to_stored_s"], paired["adapt_to_stored_vs_limit"]
        rate = {key.removesuffix("_s"): words / value for key, value in med.items()}
        engines[name] = {
            "json_bytes_per_word": sum(map(len, blobs[name])) / (DISTINCT * WORDS),
            "seconds": med,
            "words_per_s": rate,
            "ratios": paired,
        }
    generic_rate = engines[GENERIC]["words_per_s"]
    for name in RENDER:
        engines[name]["ratios"]["adapt_to_stored_vs_generic_store"] = (
            engines[name]["words_per_s"]["adapt_to_stored"] / generic_rate["store"]
        )

    print_table(
        f"ASR ingest: {TRANSCRIPTS} transcripts x {WORDS:,} words per engine and round,"
        f" median of {ROUNDS} rounds (words/s; ratios: vs the COPY limit of the same words)",
        [
            "engine",
            "JSON B/word",
            "parse",
            "adapt",
            "store",
            "parse-to-stored",
            "limit",
            "p2s/limit",
            "a2s/limit",
            "store/limit",
        ],
        [
            [
                name,
                e["json_bytes_per_word"],
                e["words_per_s"]["parse"],
                e["words_per_s"].get("adapt", "-"),
                e["words_per_s"]["store"],
                e["words_per_s"]["parse_to_stored"],
                e["words_per_s"]["limit"],
                e["ratios"]["parse_to_stored_vs_limit"],
                e["ratios"].get("adapt_to_stored_vs_limit", "-"),
                e["ratios"]["store_vs_limit"],
            ]
            for name, e in engines.items()
        ],
    )
    file_words = DISTINCT * WORDS * IMPORTS
    for name in RENDER:
        per_round = [r[name] for r in imports]
        engines[name]["import"] = {
            "words_per_s": {
                kind: file_words / median([r[kind] for r in per_round])
                for kind in (IMPORT, IMPORT_PARSE_COPY, IMPORT_PLAIN)
            },
            "ratios": {
                "import_vs_parse_copy": median(
                    [r[IMPORT_PARSE_COPY] / r[IMPORT] for r in per_round]
                ),
                "import_vs_plainest": median([r[IMPORT_PLAIN] / r[IMPORT] for r in per_round]),
            },
        }
    print_table(
        f"media-store import: each engine's {DISTINCT} files ({WORDS:,} words each) a call,"
        f" {IMPORTS} calls a round, median of {ROUNDS} rounds (words/s; ratios: import over"
        " the plainest import of the same files)",
        [
            "engine",
            "import",
            IMPORT_PARSE_COPY,
            IMPORT_PLAIN,
            "vs plainest",
            "vs parse+COPY",
        ],
        [
            [
                name,
                engines[name]["import"]["words_per_s"][IMPORT],
                engines[name]["import"]["words_per_s"][IMPORT_PARSE_COPY],
                engines[name]["import"]["words_per_s"][IMPORT_PLAIN],
                engines[name]["import"]["ratios"]["import_vs_plainest"],
                engines[name]["import"]["ratios"]["import_vs_parse_copy"],
            ]
            for name in RENDER
        ],
    )
    print(
        "  import: media_store.cli.importer.import_files of the engine's directory into a"
        " fresh job (read,\n  hash, re-import check, parse, adapt, repair checks, one"
        " transaction a file with its asset and\n  its words' search documents, the summary)."
        "\n  plainest import: each file read, orjson.loads, the words as plain rows by one"
        " comprehension\n  over the parsed objects (units to seconds, no check), COPY: the"
        " issue's limit, all in the clock.\n  parse + COPY alone: the same with the rows"
        " built before the clock (it leaves out getting the\n  words out of the payload):"
        " a stricter bound, reported."
    )

    def worst(ratio: str) -> tuple[str, float]:
        name = min(RENDER, key=lambda n: engines[n]["import"]["ratios"][ratio])
        return name, engines[name]["import"]["ratios"][ratio]

    generic_ratio = engines[GENERIC]["ratios"]["store_vs_limit"]
    met = judge("generic path (plain dicts) vs its limit", generic_ratio, TARGET_VS_LIMIT)
    worst_engine, import_worst = worst("import_vs_plainest")
    print(f"  worst import vs the plainest import: {worst_engine}")
    judge("import vs the plainest import, worst engine", import_worst, TARGET_IMPORT_VS_LIMIT)
    strict_engine, strict_worst = worst("import_vs_parse_copy")
    print(
        f"  worst import vs parse + COPY of prebuilt rows (stricter, not the target):"
        f" {strict_engine} {strict_worst:.2f}"
    )
    write_results(
        "asr",
        {
            "words_per_transcript": WORDS,
            "transcripts_per_round": TRANSCRIPTS,
            "rounds": ROUNDS,
            "engines": engines,
            "targets": {
                f"generic_store_vs_limit>={TARGET_VS_LIMIT}": met,
                f"import_vs_plainest>={TARGET_IMPORT_VS_LIMIT} (every engine)": import_worst
                >= TARGET_IMPORT_VS_LIMIT,
            },
        },
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    from benchmarks.common import bench_server

    with bench_server() as url:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else url))
