"""Speech-recogniser output in, nothing lost: one adapter per engine, :func:`detect`,
:func:`words_from`, and explicit repair policies.

``words_from(engine, payload)`` turns an engine's output, as emitted, into the word dicts
the store takes (``{"word", "start", "end", "confidence", "speaker"}``), lazily: pass the
iterator straight to ``transcriptions.create_streamed`` or ``append_words``. Or call one
adapter (:data:`ENGINES`), e.g. ``openai_whisper(model.transcribe(..., word_timestamps=True))``
or ``faster_whisper(segments)`` on the generator, which is read one segment at a time.

Decisions, for every engine alike:

* **Units.** Every time becomes a builtin ``float`` of seconds, and one decimal always gives
  one float whatever its unit (milliseconds, 100-ns ticks, ``{seconds, nanos}``,
  ``"1.500s"``, ``"00:00:01,500"``, numeric strings): integer counts are divided as
  integers, strings parsed with ``float()`` (see :mod:`media_store.asr.units`). numpy
  scalars and ``Decimal`` become plain floats.
* **Text** is kept exactly, spaces included (Whisper's leading space, Watson's trailing one).
  Deepgram's stored text is ``punctuated_word`` when the response has it; AWS punctuation
  items are appended to the word before them.
* **Confidence** is the engine's per-word value (``probability``, ``score``, ``conf``,
  ``p`` averaged over a whisper.cpp word's text tokens, ...), None where the engine gives
  none per word (Google without word confidence: the alternative's confidence is the
  whole result's, not a word's, so it is not copied onto words).
* **Speakers**: strings as given (``"SPEAKER_00"``, ``"A"``, ``"spk_0"``); integer speakers
  (Deepgram, Google, Watson, Azure batch) become their decimal string, ``0`` -> ``"0"``:
  no invented vocabulary, and ``int()`` gives the engine's value back.
* **Multichannel** output (Deepgram, AssemblyAI, AWS channel identification, Google per
  channel recognition, Azure batch) is **merged into one word list in start order, with the
  channel as the speaker**: ``"ch0"``, or ``"ch0:1"`` when the engine also diarized within
  the channel (the channel number is the engine's own: Deepgram and Azure count from 0,
  AssemblyAI and Google from 1). Why: multichannel audio is a conversation (a call with one
  party per channel), and a transcription is what was said in the media, so a time-window
  read (``words_between``) returns both sides of the exchange; AssemblyAI already delivers
  it merged, so both shapes end up the same; and one source file stays one transcription,
  which is what the import command makes all-or-nothing and skips on re-import. Nothing is
  lost: the channel is in every word's speaker. Whoever wants one transcription per
  channel passes ``channel=`` (the engine's channel id) and gets that channel alone, with
  the words' own speakers.
* **Order and gaps are left as the engine wrote them**: the adapters never sort, drop or
  invent. Backwards starts, words ending before they start and untimed words (``start`` /
  ``end`` None) come out as they are, for :mod:`media_store.asr.repair` to refuse (the
  default) or repair explicitly, with a report.

* **Speed.** Each adapter takes a word whose values need no conversion (what parsed JSON
  nearly always holds: a ``str``, finite floats, the engine's usual units and types) as it
  is, without calling the converters or formatting the path of every value
  (:func:`media_store.asr.units.plain`); any other word goes through the checked
  converters, which name the path of a bad value. Both ways give the same words and the same
  refusals (fuzzed in tests/asr/test_asr_adapters.py). Figures: ``python -m benchmarks asr``.

Errors: :class:`~media_store.errors.ValidationError` naming the engine, the path of the
bad value in the payload (``results.items[3].start_time``) and what to change;
:class:`UnknownEngine` (a ValidationError) when :func:`detect` cannot tell the engine, and
its subclass :class:`AmbiguousEngine` when the keys fit several engines (an empty Whisper
result, an empty ``results``): its ``candidates`` name them, and the caller names the engine.
A payload wrapped in a list or an envelope object is refused saying so.

Live sessions: Deepgram's websocket messages (one, or a saved list) and IBM Watson's
websocket session (a saved list of messages) are read like the batch output, final results
only, in the order received.
"""

from media_store.asr.engines import (
    CHANNELLED,
    ENGINES,
    AmbiguousEngine,
    UnknownEngine,
    detect,
    words_from,
)
from media_store.asr.local import (
    faster_whisper,
    openai_whisper,
    vosk,
    whisper_cpp,
    whisper_timestamped,
    whisperx,
)
from media_store.asr.repair import Repair, repair
from media_store.asr.services import (
    assemblyai,
    aws_transcribe,
    azure_speech,
    deepgram,
    google_stt,
    ibm_watson,
)
from media_store.asr.units import StoreWord

__all__ = [
    "CHANNELLED",
    "ENGINES",
    "AmbiguousEngine",
    "Repair",
    "StoreWord",
    "UnknownEngine",
    "assemblyai",
    "aws_transcribe",
    "azure_speech",
    "deepgram",
    "detect",
    "faster_whisper",
    "google_stt",
    "ibm_watson",
    "openai_whisper",
    "repair",
    "vosk",
    "whisper_cpp",
    "whisper_timestamped",
    "whisperx",
    "words_from",
]
