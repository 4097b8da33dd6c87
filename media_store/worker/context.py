"""What a handler of :func:`~media_store.worker.run_worker` sees: the job's result type, the
:class:`JobContext` it may take, :class:`PermanentFailure` it may raise; and what the worker
reports back: :class:`WorkerStats` when it returns, and to an :class:`Instrument` (metrics,
traces) as it goes. No database access here."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, TypeAlias

from media_store.models.schemas import Job

JobResult: TypeAlias = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler taking two arguments, ``handler(job, context)``, receives besides the
    job: the worker's id, and ``cancel_requested``, set when the job was cancelled while the
    handler ran (see :mod:`media_store.worker.runner`). A plain-function handler, which
    nothing can interrupt, should poll it (``context.cancelled``) or sleep on it
    (``cancel_requested.wait(s)``) and return early when it is set."""

    job: Job
    worker_id: str
    cancel_requested: threading.Event

    @property
    def cancelled(self) -> bool:
        return self.cancel_requested.is_set()


Handler: TypeAlias = (
    Callable[[Job], Awaitable[JobResult]]
    | Callable[[Job], JobResult]
    | Callable[[Job, JobContext], Awaitable[JobResult]]
    | Callable[[Job, JobContext], JobResult]
)


class PermanentFailure(Exception):
    """Raised by a handler to fail the job for good, without using its remaining attempts."""


@dataclass
class WorkerStats:
    """What one :func:`run_worker` call did."""

    worker_id: str
    claimed: int = 0
    completed: int = 0
    retried: int = 0  # failed, back to pending for another attempt
    failed: int = 0  # failed for good
    lost: int = 0  # the lease was lost before the job could be finished
    released: int = 0  # given back unfinished on stop or cancellation
    reclaimed: int = 0  # expired leases of other workers this worker took back
    unwritten: int = 0  # finished, but the outcome could not be written while the lease held
    paused: int = 0  # claims put off because outcomes could not be written
    cancelled: int = 0  # cancelled while held: the handler was stopped, no outcome written


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where to look when a lease is lost."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Outcome(StrEnum):
    """How a job the worker claimed ended for it (an :class:`Instrument` is told each)."""

    COMPLETED = "completed"
    FAILED = "failed"  # for good
    RETRIED = "retried"  # failed, pending again for another attempt
    CANCELLED = "cancelled"  # cancelled while held: the handler was stopped
    LOST = "lost"  # the lease was lost: another worker may run it


# One shared, reusable no-op context manager: the default hooks allocate nothing per job.
_NOTHING: Final[AbstractContextManager[None]] = contextlib.nullcontext()


class Instrument:
    """What :func:`~media_store.worker.run_worker` tells an observer as it works: metrics
    (:class:`media_store.metrics.WorkerMetrics`) and traces
    (:class:`media_store.tracing.WorkerTracing`) implement it; :class:`Instruments` combines
    several. Every hook here does nothing, so a subclass overrides only what it needs.

    The hooks run on the worker's event loop, inside its loop: they must be quick and must not
    raise (an exception would stop the worker), and must not block. A ``running`` or
    ``finished`` hook left as it is here costs nothing a job: the worker calls only those an
    instrument, or a part of :class:`Instruments`, overrides (:func:`per_job_hooks`).
    """

    __slots__ = ()

    # Whether the worker should read the trace context each claimed job was created under
    # (read by the claim's statement, one index lookup a job: only tracing asks for it).
    wants_trace_context: bool = False

    def claiming(self, worker_id: str) -> AbstractContextManager[object]:
        """Entered around each claim statement (the claim's span); what it gives on entering
        comes back to :meth:`settling` when the claimed batch's outcomes are written."""
        return _NOTHING

    def claimed(self, jobs: Sequence[Job], seconds: float) -> None:
        """A claim returned ``jobs`` (maybe none) after ``seconds`` (inside :meth:`claiming`)."""

    def running(
        self, job: Job, trace_context: Mapping[str, str] | None
    ) -> AbstractContextManager[object]:
        """Entered around the handler's run of ``job``, in the worker's task (a plain-function
        handler's thread sees the context variables set on entering). ``trace_context``: the
        W3C headers the job was created under, when :attr:`wants_trace_context` and there
        were any. An exception the handler raised passes through it."""
        return _NOTHING

    def settling(self, claimed: object) -> AbstractContextManager[object]:
        """Entered around each statement that writes the outcome of jobs of a batch (a
        completion, a failure): ``claimed`` is what entering that batch's :meth:`claiming`
        gave (None before any claim)."""
        return _NOTHING

    def finished(self, job: Job, outcome: Outcome) -> None:
        """``job``'s attempt ended with ``outcome`` (written to the database, or, for
        cancelled and lost, learnt from it)."""


class Instruments(Instrument):
    """Several instruments as one (``Instruments(metrics, tracing)``), each hook called on
    each in order, the context managers nested in that order."""

    __slots__ = ("_batch_part", "_claimed", "parts", "wants_trace_context")

    def __init__(self, *parts: Instrument) -> None:
        self.parts = parts
        self.wants_trace_context = any(part.wants_trace_context for part in parts)
        every = _flattened(self)
        # The one part (of every one, nested ones included) with a claiming or settling of
        # its own, if only one has: these two hooks are then that part's alone, the others'
        # doing nothing (traces with metrics: the claim's span), with no layer between.
        batch = [
            part for part in every if _overrides(part, "claiming") or _overrides(part, "settling")
        ]
        self._batch_part = batch[0] if len(batch) == 1 else None
        self._claimed = tuple(part.claimed for part in every if _overrides(part, "claimed"))

    def claiming(self, worker_id: str) -> AbstractContextManager[object]:
        if self._batch_part is not None:
            return self._batch_part.claiming(worker_id)
        return _nested([part.claiming(worker_id) for part in self.parts])

    def claimed(self, jobs: Sequence[Job], seconds: float) -> None:
        for claimed in self._claimed:
            claimed(jobs, seconds)

    def running(
        self, job: Job, trace_context: Mapping[str, str] | None
    ) -> AbstractContextManager[object]:
        return _nested([part.running(job, trace_context) for part in self.parts])

    def settling(self, claimed: object) -> AbstractContextManager[object]:
        if self._batch_part is not None:
            return self._batch_part.settling(claimed)
        # What each part's claiming gave, in order (see _Nested.__enter__).
        parts = self.parts
        given = claimed if isinstance(claimed, tuple) and len(claimed) == len(parts) else None
        if given is None:
            given = (None,) * len(parts)
        return _nested([part.settling(value) for part, value in zip(parts, given, strict=True)])

    def finished(self, job: Job, outcome: Outcome) -> None:
        for part in self.parts:
            part.finished(job, outcome)


def _nested(managers: list[AbstractContextManager[object]]) -> AbstractContextManager[object]:
    """``managers`` as one (see :class:`_Nested`), two of them (metrics and traces, the usual
    pair) by a class of its own that nests them without a loop: ~1 us less a job."""
    if len(managers) == 2:
        return _Two(*managers)
    return _Nested(managers)


class _Two:
    """Two context managers as nested ``with`` blocks (``with first: with second:``), giving
    what each gave on entering, as :class:`_Nested` does."""

    __slots__ = ("first", "second")

    def __init__(
        self, first: AbstractContextManager[object], second: AbstractContextManager[object]
    ) -> None:
        self.first = first
        self.second = second

    def __enter__(self) -> tuple[object, object]:
        given = self.first.__enter__()
        try:
            return given, self.second.__enter__()
        except BaseException as exc:
            if not self.first.__exit__(type(exc), exc, exc.__traceback__):
                raise
            return given, None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        try:
            suppressed = bool(self.second.__exit__(exc_type, exc, traceback))
        except BaseException as new:
            # The inner block's exit raised: the outer one sees that exception instead.
            if self.first.__exit__(type(new), new, new.__traceback__):
                return True
            raise
        if suppressed:
            exc_type = exc = traceback = None
        return bool(self.first.__exit__(exc_type, exc, traceback)) or suppressed


class _Nested:
    """Context managers entered in order and exited in reverse, as nested ``with`` blocks
    (an ExitStack's bookkeeping costs a few microseconds more, once a job). A manager whose
    ``__enter__`` raises leaves the ones before it exited with that exception."""

    __slots__ = ("entered", "managers")

    def __init__(self, managers: list[AbstractContextManager[object]]) -> None:
        self.managers = managers
        self.entered = 0

    def __enter__(self) -> tuple[object, ...]:
        """What each manager gave on entering, in order."""
        given = []
        try:
            for manager in self.managers:
                given.append(manager.__enter__())
                self.entered += 1
        except BaseException as exc:
            if not self.__exit__(type(exc), exc, exc.__traceback__):
                raise
        return tuple(given)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        suppressed = False
        raised: BaseException | None = None  # by an __exit__: replaces the block's exception
        while self.entered:
            self.entered -= 1
            try:
                if self.managers[self.entered].__exit__(exc_type, exc, traceback):
                    suppressed, raised = True, None
                    exc_type = exc = traceback = None
            except BaseException as new:
                suppressed, raised = False, new
                exc_type, exc, traceback = type(new), new, new.__traceback__
        if raised is not None:
            raise raised
        return suppressed


NO_INSTRUMENT: Final = Instrument()


RunningHook: TypeAlias = Callable[[Job, "Mapping[str, str] | None"], AbstractContextManager[object]]
FinishedHook: TypeAlias = Callable[[Job, Outcome], None]


def per_job_hooks(
    instrument: Instrument,
) -> tuple[tuple[RunningHook, ...], tuple[FinishedHook, ...]]:
    """The ``running`` and ``finished`` hooks of ``instrument`` that do something: its own, or
    its parts' in order when it is :class:`Instruments` (nested ones flattened), each only
    where it overrides :class:`Instrument`'s. The worker calls these itself, once a job: a
    hook that does nothing is then no call at all, and two instruments (metrics and traces)
    cost no layer of :class:`Instruments` between them."""
    parts = _flattened(instrument) if type(instrument) is Instruments else [instrument]
    running = tuple(part.running for part in parts if _overrides(part, "running"))
    finished = tuple(part.finished for part in parts if _overrides(part, "finished"))
    return running, finished


def _overrides(instrument: Instrument, hook: str) -> bool:
    """Whether ``instrument``'s ``hook``, as its attribute gives it (a method of its class, or
    anything set on the instance), is other than :class:`Instrument`'s, which does nothing."""
    found = getattr(instrument, hook, None)
    return found is None or getattr(found, "__func__", None) is not getattr(Instrument, hook)


def _flattened(instruments: Instruments) -> list[Instrument]:
    found: list[Instrument] = []
    for part in instruments.parts:
        found.extend(_flattened(part) if type(part) is Instruments else [part])
    return found
