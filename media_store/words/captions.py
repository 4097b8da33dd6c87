"""Speaker turns and caption cues built from words: pure functions, no database.

Both builders are fed a transcript's words window by window (:class:`~media_store.words.Words`
in start order, as ``store.transcriptions`` reads them) and hand back what each window
completes, so a three-hour transcript is never held whole; :func:`turns_of` and
:func:`captions_of` drive them over an async iterable of windows, :func:`build_turns` and
:func:`build_cues` over words already in memory.

**Text.** Words are joined as they were stored. When some word of the first window fed starts
with whitespace (Whisper's ``" Hello"`` ``" world"``), the transcript is *verbatim*: words are
concatenated as they are, so a word without a leading space sticks to the one before (``"
don"`` ``"'t"``, and the unspaced words of Chinese or Japanese). Otherwise the words are
*spaced* (``"Hello"`` ``"world"``, most engines) and joined by one space. Either way every run
of whitespace becomes one space (a newline inside a word would end a subtitle line) and the
text is stripped: both give ``"Hello world"``. A word that is only whitespace shows nothing.

**Turns.** A turn is a run of consecutive words of one speaker (None is a speaker too: the
words of an undiarized transcript make one turn). With ``min_gap``, a pause longer than
``min_gap`` seconds between a word's start and the end of the turn so far starts a new turn
of the same speaker; overlapping words never split one.

**Cues** follow Netflix's timed-text rules, for which :class:`CaptionRules` holds the limits.
Words are added to a cue while it keeps to them, lines filled greedily at word boundaries and
then balanced (the narrowest width that keeps the line count). A new cue starts at a speaker
change (``split_on_speaker``), when the cue would last longer than ``max_duration``, after a
pause longer than ``max_gap``, or when the words no longer fit in ``max_lines`` lines of
``max_chars`` characters (a character is a code point; combining marks count). In a verbatim
transcript a line breaks before a spaced word rather than inside ``don't``, unless the run of
unspaced words is itself longer than a line. A word longer than ``max_chars`` is never cut: it
takes a line of its own, the one line allowed to be longer.

Times are whole milliseconds (how SRT and WebVTT write them). A cue starts at its first word's
start and ends at its words' latest end, at most ``max_duration`` after its start (a single
word longer than that is shown for ``max_duration``), at least ``min_duration`` when the next
cue starts late enough, never after the next cue starts: cues never overlap, and their times
never go backwards. Two cues whose first words start on the same millisecond are given one
millisecond each, so no cue is empty. Reading speed is not a rule here, only reported
(:attr:`Cue.chars_per_second`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Literal, TypeAlias, get_args

from media_store.errors import ValidationError
from media_store.models.fields import Row, shown
from media_store.words.timestamps import Words

JoinStyle: TypeAlias = Literal["auto", "verbatim", "spaced"]
CaptionFormat: TypeAlias = Literal["srt", "vtt"]


class Turn(Row):
    """A speaker turn: consecutive words of one speaker (``store.transcriptions.turns``).
    ``start`` is its first word's start, ``end`` its words' latest end, ``text`` its words
    joined as stored (media_store.words.captions says how), ``word_count`` how many words."""

    speaker: str | None
    start: float
    end: float
    text: str
    word_count: int


CAPTION_FORMATS: tuple[str, ...] = get_args(CaptionFormat)
MEDIA_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}

# One word as a caption sees it: the space before it ("" when it sticks to the word before)
# and its text with whitespace collapsed.
Token: TypeAlias = tuple[str, str]


def join_style(words: Iterable[str]) -> Literal["verbatim", "spaced"]:
    """``"verbatim"`` when some word starts with whitespace (Whisper's style), else
    ``"spaced"`` (see the module docstring)."""
    return "verbatim" if any(word[:1].isspace() for word in words) else "spaced"


class _Joiner:
    """Words to tokens in one style, carrying across windows whether a space is owed (a word
    ending in whitespace, or a blank word, in a verbatim transcript)."""

    __slots__ = ("owed", "style")

    def __init__(self, style: JoinStyle) -> None:
        self.style = style
        self.owed = False

    def tokens(self, words: list[str]) -> list[Token]:
        """One token per word, in order; a blank word's body is ""."""
        if self.style == "auto":
            if not words:
                return []
            self.style = join_style(words)
        if self.style == "spaced":
            return [(" ", " ".join(word.split())) for word in words]
        tokens = []
        owed = self.owed
        for word in words:
            body = " ".join(word.split())
            tokens.append((" " if owed or word[:1].isspace() else "", body))
            if body:
                owed = word[-1:].isspace()
            elif word:  # whitespace alone: the next word is spaced off
                owed = True
        self.owed = owed
        return tokens


def joined(tokens: Iterable[Token]) -> str:
    """The text of ``tokens``: their bodies, each after its space but the first."""
    parts: list[str] = []
    for sep, body in tokens:
        if body:
            if parts:
                parts.append(sep)
            parts.append(body)
    return "".join(parts)


def join_words(words: Iterable[str], style: JoinStyle = "auto") -> str:
    """``words`` as one text (see the module docstring): ``[" Hello", " world"]`` and
    ``["Hello", "world"]`` both give ``"Hello world"``."""
    words = list(words)
    return joined(_Joiner(style).tokens(words))


# --- turns ------------------------------------------------------------------------------------


def check_min_gap(min_gap: float | None) -> float | None:
    """``min_gap`` as a float: None (turns split only at speaker changes) or seconds >= 0."""
    if min_gap is None:
        return None
    if (
        isinstance(min_gap, int | float)
        and not isinstance(min_gap, bool)
        and math.isfinite(min_gap)
        and min_gap >= 0
    ):
        return float(min_gap)
    raise ValidationError(f"min_gap must be None or a number of seconds >= 0, got {shown(min_gap)}")


class TurnBuilder:
    """Speaker turns from words fed window by window: :meth:`feed` returns the turns a
    window completes, :meth:`finish` the last one."""

    __slots__ = ("_count", "_end", "_joiner", "_min_gap", "_speaker", "_start", "_tokens")

    def __init__(self, *, min_gap: float | None = None, style: JoinStyle = "auto") -> None:
        self._min_gap = check_min_gap(min_gap)
        self._joiner = _Joiner(style)
        self._tokens: list[Token] = []
        self._speaker: str | None = None
        self._start = 0.0
        self._end = 0.0
        self._count = 0

    def feed(self, words: Words) -> list[Turn]:
        done = []
        tokens = self._joiner.tokens(words.words)
        speakers = repeat(None) if words.speakers is None else words.speakers
        min_gap = math.inf if self._min_gap is None else self._min_gap
        for token, start, end, speaker in zip(
            tokens, words.starts, words.ends, speakers, strict=False
        ):
            if self._count and (speaker != self._speaker or start - self._end > min_gap):
                done.append(self._turn())
            if not self._count:
                self._speaker, self._start, self._end = speaker, start, end
            elif end > self._end:
                self._end = end
            self._tokens.append(token)
            self._count += 1
        return done

    def finish(self) -> list[Turn]:
        return [self._turn()] if self._count else []

    def _turn(self) -> Turn:
        # Built from trusted columns: the words passed their checks when they were stored.
        turn = Turn.model_construct(
            speaker=self._speaker,
            start=self._start,
            end=self._end,
            text=joined(self._tokens),
            word_count=self._count,
        )
        self._tokens = []
        self._count = 0
        return turn


def build_turns(
    words: Words, *, min_gap: float | None = None, style: JoinStyle = "auto"
) -> list[Turn]:
    """The speaker turns of ``words`` (all in memory)."""
    builder = TurnBuilder(min_gap=min_gap, style=style)
    return builder.feed(words) + builder.finish()


async def turns_of(
    windows: AsyncIterable[Words], *, min_gap: float | None = None, style: JoinStyle = "auto"
) -> AsyncIterator[Turn]:
    """The speaker turns of a transcript read as consecutive windows of words, each yielded
    as soon as the window that ends it is read."""
    builder = TurnBuilder(min_gap=min_gap, style=style)
    async for window in windows:
        for turn in builder.feed(window):
            yield turn
    for turn in builder.finish():
        yield turn


# --- cues -------------------------------------------------------------------------------------


def _seconds(name: str, value: float, *, positive: bool = False) -> float:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (value == 0 and not positive))
    ):
        return float(value)
    bound = "> 0" if positive else ">= 0"
    raise ValidationError(f"{name} must be a number of seconds {bound}, got {shown(value)}")


def _count(name: str, value: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValidationError(f"{name} must be an integer >= 1, got {shown(value)}")


@dataclass(frozen=True, slots=True)
class CaptionRules:
    """The limits of a cue (Netflix's timed-text defaults: 42 characters a line, two lines,
    7 s at most, 5/6 s at least). ``max_gap``: a pause longer than this many seconds between
    words ends the cue (None: pauses never do), so that a cue does not stay on through a
    silence. Raises :class:`ValidationError` on a value out of range."""

    max_chars: int = 42
    max_lines: int = 2
    max_duration: float = 7.0
    min_duration: float = 0.833
    max_gap: float | None = 1.5
    split_on_speaker: bool = True

    def __post_init__(self) -> None:
        _count("max_chars", self.max_chars)
        _count("max_lines", self.max_lines)
        max_duration = _seconds("max_duration", self.max_duration, positive=True)
        min_duration = _seconds("min_duration", self.min_duration)
        if round(max_duration * 1000) < 1:
            raise ValidationError(f"max_duration must be at least 0.001 s, got {max_duration}")
        if min_duration > max_duration:
            raise ValidationError(
                f"min_duration ({min_duration}) must not exceed max_duration ({max_duration})"
            )
        if self.max_gap is not None:
            _seconds("max_gap", self.max_gap)
        if not isinstance(self.split_on_speaker, bool):
            raise ValidationError(
                f"split_on_speaker must be True or False, got {shown(self.split_on_speaker)}"
            )


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption: its times in whole milliseconds, its lines, and its speaker (None when
    its words have none, or several when cues were not split on speakers: ``mixed``)."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    speaker: str | None
    mixed: bool = False
    word_count: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def chars_per_second(self) -> float:
        """Reading speed, for information (Netflix asks at most 17 for adults' English)."""
        chars = sum(map(len, self.lines))
        return chars * 1000 / max(self.end_ms - self.start_ms, 1)


class _Lines:
    """A cue's words wrapped greedily into lines of at most ``width`` characters."""

    __slots__ = ("lines", "widths")

    def __init__(self) -> None:
        self.lines: list[list[Token]] = []
        self.widths: list[int] = []

    def add(self, token: Token, width: int, max_lines: int) -> bool:
        """Add ``token`` when the lines stay within ``max_lines``; False (nothing changed)
        when they would not."""
        sep, body = token
        if not self.lines:
            self.lines.append([token])
            self.widths.append(len(body))
            return True
        line = self.lines[-1]
        if self.widths[-1] + len(sep) + len(body) <= width:
            line.append(token)
            self.widths[-1] += len(sep) + len(body)
            return True
        if len(self.lines) >= max_lines:
            return False
        # A token stuck to the word before ("'t" of "don't"): carry the run it belongs to
        # over to the new line with it, when the line has a space to break at and the run
        # fits a line.
        cut = len(line)
        if not sep:
            cut = next((i for i in range(len(line) - 1, 0, -1) if line[i][0]), 0)
            moved = _width(line[cut:]) + len(body)
            if not cut or moved > width:
                cut = len(line)
        carried = line[cut:]
        del line[cut:]
        self.widths[-1] = _width(line)
        self.lines.append([*carried, token])
        self.widths.append(_width(self.lines[-1]))
        return True


def _width(tokens: list[Token]) -> int:
    return sum(len(sep) + len(body) for sep, body in tokens) - (len(tokens[0][0]) if tokens else 0)


def _wrap(tokens: list[Token], width: int, max_lines: int) -> list[list[Token]] | None:
    lines = _Lines()
    for token in tokens:
        if not lines.add(token, width, max_lines):
            return None
    return lines.lines


def _balanced(tokens: list[Token], lines: list[list[Token]], max_chars: int) -> list[list[Token]]:
    """The same tokens in as many lines, as narrow as greedy wrapping allows: the narrowest
    width (found by bisection) at which they still fit, so that two lines come out even
    rather than one full line over a word or two."""
    count = len(lines)
    longest = max(len(body) for _, body in tokens)
    if count < 2 or longest > max_chars:
        return lines
    best = lines
    lo, hi = max(longest, _width(tokens) // count), max_chars - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        wrapped = _wrap(tokens, mid, count)
        if wrapped is None:
            lo = mid + 1
        else:
            best, hi = wrapped, mid - 1
    return best


@dataclass(slots=True)
class _Open:
    """The cue being filled: its words' tokens, times and speakers, and their lines."""

    tokens: list[Token] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    speakers: list[str | None] = field(default_factory=list)
    lines: _Lines = field(default_factory=_Lines)
    end: float = 0.0

    def add(self, token: Token, start: float, end: float, speaker: str | None) -> None:
        self.tokens.append(token)
        self.starts.append(start)
        self.ends.append(end)
        self.speakers.append(speaker)
        self.end = end if len(self.ends) == 1 else max(self.end, end)


@dataclass(slots=True)
class _Closed:
    """A cue whose words are known, waiting for the next cue's start to be timed."""

    start_ms: int
    end_ms: int  # its words' latest end, at most max_duration after its start
    lines: tuple[str, ...]
    speaker: str | None
    mixed: bool
    count: int


class CueBuilder:
    """Caption cues from words fed window by window: :meth:`feed` returns the cues a window
    completes (a cue is handed out once the next one starts, which bounds its end),
    :meth:`finish` the rest."""

    __slots__ = ("_joiner", "_max_ms", "_min_ms", "_open", "_pending", "_previous_end", "rules")

    def __init__(self, rules: CaptionRules | None = None, *, style: JoinStyle = "auto") -> None:
        self.rules = CaptionRules() if rules is None else rules
        self._joiner = _Joiner(style)
        self._max_ms = round(self.rules.max_duration * 1000)
        self._min_ms = round(self.rules.min_duration * 1000)
        self._open: _Open | None = None
        self._pending: _Closed | None = None
        self._previous_end = 0

    def feed(self, words: Words) -> list[Cue]:
        done: list[Cue] = []
        rules = self.rules
        max_chars, max_lines = rules.max_chars, rules.max_lines
        max_gap = math.inf if rules.max_gap is None else rules.max_gap
        tokens = self._joiner.tokens(words.words)
        speakers = repeat(None) if words.speakers is None else words.speakers
        for token, start, end, speaker in zip(
            tokens, words.starts, words.ends, speakers, strict=False
        ):
            if not token[1]:
                continue  # whitespace alone: nothing to show
            cue = self._open
            if cue is not None and (
                (rules.split_on_speaker and speaker != cue.speakers[0])
                or max(end, cue.end) - cue.starts[0] > rules.max_duration
                or start - cue.end > max_gap
            ):
                self._close(cue, done)
                cue = None
            if cue is None:
                cue = self._open = _Open()
                cue.lines.add(token, max_chars, max_lines)
            elif not cue.lines.add(token, max_chars, max_lines):
                cue = self._open = self._overflow(cue, token, start, end, done)
            cue.add(token, start, end, speaker)
        return done

    def finish(self) -> list[Cue]:
        done: list[Cue] = []
        if self._open is not None:
            self._close(self._open, done)
        if self._pending is not None:
            done.append(self._timed(self._pending, None))
            self._pending = None
        return done

    def _overflow(
        self, cue: _Open, token: Token, start: float, end: float, done: list[Cue]
    ) -> _Open:
        """Close the full cue and open the next with ``token`` in its lines. A token stuck to
        the word before ("'t" of "don't") takes the run it belongs to along, when the cue keeps
        a word and the run fits the next cue's limits: a cue never ends inside "don't"."""
        cut = len(cue.tokens)
        if not token[0]:
            cut = next((i for i in range(len(cue.tokens) - 1, 0, -1) if cue.tokens[i][0]), 0)
        carried = _Open()
        if 0 < cut < len(cue.tokens) and (
            max(end, *cue.ends[cut:]) - cue.starts[cut] <= self.rules.max_duration
            and _wrap([*cue.tokens[cut:], token], self.rules.max_chars, self.rules.max_lines)
        ):
            kept = _Open()
            for i in range(cut):
                kept.add(cue.tokens[i], cue.starts[i], cue.ends[i], cue.speakers[i])
            for i in range(cut, len(cue.tokens)):
                carried.lines.add(cue.tokens[i], self.rules.max_chars, self.rules.max_lines)
                carried.add(cue.tokens[i], cue.starts[i], cue.ends[i], cue.speakers[i])
            cue = kept
        self._close(cue, done)
        carried.lines.add(token, self.rules.max_chars, self.rules.max_lines)
        return carried

    def _close(self, cue: _Open, done: list[Cue]) -> None:
        """End the open cue: time the one before it (now that this one's start is known)
        and keep this one until the next starts."""
        self._open = None
        rules = self.rules
        start_ms = round(cue.starts[0] * 1000)
        natural = min(round(cue.end * 1000), start_ms + self._max_ms)
        lines = _wrap(cue.tokens, rules.max_chars, rules.max_lines)
        assert lines is not None  # the words were added as they fitted
        lines = _balanced(cue.tokens, lines, rules.max_chars)
        mixed = cue.speakers.count(cue.speakers[0]) != len(cue.speakers)
        closed = _Closed(
            start_ms,
            natural,
            tuple(joined(line) for line in lines),
            None if mixed else cue.speakers[0],
            mixed,
            len(cue.tokens),
        )
        if self._pending is not None:
            done.append(self._timed(self._pending, start_ms))
        self._pending = closed

    def _timed(self, cue: _Closed, next_start_ms: int | None) -> Cue:
        start = max(cue.start_ms, self._previous_end)
        # Stretched from where the cue really starts (later than its first word when the cue
        # before took that millisecond); within max_duration, as min_duration <= max_duration.
        end = max(cue.end_ms, start + self._min_ms)
        if next_start_ms is not None:
            end = min(end, next_start_ms)
        end = max(end, start + 1)  # a cue shares its first word's start with the next one
        self._previous_end = end
        return Cue(start, end, cue.lines, cue.speaker, cue.mixed, cue.count)


def build_cues(
    words: Words, rules: CaptionRules | None = None, *, style: JoinStyle = "auto"
) -> list[Cue]:
    """The cues of ``words`` (all in memory)."""
    builder = CueBuilder(rules, style=style)
    return builder.feed(words) + builder.finish()


# --- SRT and WebVTT ---------------------------------------------------------------------------


def check_format(format: str) -> CaptionFormat:
    if format == "srt":
        return "srt"
    if format == "vtt":
        return "vtt"
    raise ValidationError(
        f"format must be one of {', '.join(CAPTION_FORMATS)}, got {shown(format)}"
    )


def timestamp(ms: int, separator: str) -> str:
    """``HH:MM:SS<separator>mmm`` (hours grow past two digits when they must)."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def srt_cue(index: int, cue: Cue) -> str:
    """One SubRip block, its blank line included. The text is as spoken: SRT has no escape,
    and no standard speaker label."""
    return (
        f"{index}\n{timestamp(cue.start_ms, ',')} --> {timestamp(cue.end_ms, ',')}\n{cue.text}\n\n"
    )


VTT_HEADER = "WEBVTT\n\n"


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: '&' and '<' start references and tags, and '>' would make
    # "-->" out of text, which a cue may not hold.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_cue(cue: Cue) -> str:
    """One WebVTT cue, its blank line included: the speaker as a voice span (``<v S1>``)
    when the cue has one."""
    voice = "" if cue.speaker is None else f"<v {_vtt_escape(cue.speaker)}>"
    return (
        f"{timestamp(cue.start_ms, '.')} --> {timestamp(cue.end_ms, '.')}\n"
        f"{voice}{_vtt_escape(cue.text)}\n\n"
    )


def format_cues(cues: Iterable[Cue], format: CaptionFormat) -> Iterable[str]:
    """The text of ``cues`` as SRT or WebVTT, a chunk a cue (WebVTT's header first)."""
    if format == "vtt":
        yield VTT_HEADER
        for cue in cues:
            yield vtt_cue(cue)
    else:
        for index, cue in enumerate(cues, 1):
            yield srt_cue(index, cue)


async def captions_of(
    windows: AsyncIterable[Words],
    format: CaptionFormat = "srt",
    rules: CaptionRules | None = None,
    *,
    style: JoinStyle = "auto",
) -> AsyncIterator[str]:
    """A subtitle file of a transcript read as consecutive windows of words, yielded a cue at
    a time as the windows complete them (WebVTT's header first, even with no words)."""
    builder = CueBuilder(rules, style=style)
    index = 0
    # The header waits for the first window: an error reading it (an unknown transcription)
    # then comes before any text, while an answer can still say so.
    header = VTT_HEADER if format == "vtt" else ""
    async for window in windows:
        if header:
            yield header
            header = ""
        for cue in builder.feed(window):
            index += 1
            yield vtt_cue(cue) if format == "vtt" else srt_cue(index, cue)
    if header:
        yield header
    for cue in builder.finish():
        index += 1
        yield vtt_cue(cue) if format == "vtt" else srt_cue(index, cue)
