"""media_store/worker/context.py: Instruments, several instruments as one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

import pytest

from media_store import Job
from media_store.worker import Instrument, Instruments


class Recorder(Instrument):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def running(
        self, job: Job, trace_context: Mapping[str, str] | None
    ) -> AbstractContextManager[object]:
        return self._around("running")

    def claiming(self, worker_id: str) -> AbstractContextManager[object]:
        return self._around("claiming")

    @contextmanager
    def _around(self, what: str) -> Iterator[None]:
        self.log.append(f"{self.name} enters {what}")
        try:
            yield
        except Exception as exc:
            self.log.append(f"{self.name} sees {type(exc).__name__}")
            raise
        finally:
            self.log.append(f"{self.name} exits {what}")


def test_instruments_nest_their_parts_in_order_and_exit_in_reverse() -> None:
    log: list[str] = []
    both = Instruments(Recorder("a", log), Recorder("b", log))
    with both.claiming("w"):
        log.append("claim")
    assert log == [
        "a enters claiming",
        "b enters claiming",
        "claim",
        "b exits claiming",
        "a exits claiming",
    ]


def test_an_exception_in_the_block_passes_through_every_part() -> None:
    log: list[str] = []
    both = Instruments(Recorder("a", log), Recorder("b", log))
    with pytest.raises(ValueError, match="handler"), both.claiming("w"):
        raise ValueError("handler")
    assert log == [
        "a enters claiming",
        "b enters claiming",
        "b sees ValueError",
        "b exits claiming",
        "a sees ValueError",
        "a exits claiming",
    ]


def test_a_part_failing_to_enter_exits_the_parts_entered_before_it() -> None:
    log: list[str] = []

    class Failing(Instrument):
        def claiming(self, worker_id: str) -> AbstractContextManager[object]:
            @contextmanager
            def fail() -> Iterator[None]:
                raise RuntimeError("cannot enter")
                yield

            return fail()

    both = Instruments(Recorder("a", log), Failing())
    with pytest.raises(RuntimeError, match="cannot enter"), both.claiming("w"):
        log.append("never")
    assert log == ["a enters claiming", "a sees RuntimeError", "a exits claiming"]
