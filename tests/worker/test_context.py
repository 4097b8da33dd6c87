"""media_store/worker/context.py: Instruments, several instruments as one, and the hooks the
worker calls once a job."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import pytest

from media_store import Job
from media_store.worker import Instrument, Instruments
from media_store.worker.context import Outcome, per_job_hooks


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


@pytest.mark.parametrize("parts", [2, 3])
def test_what_each_part_gave_on_claiming_comes_back_to_its_settling(parts: int) -> None:
    log: list[str] = []

    class Giving(Recorder):
        def claiming(self, worker_id: str) -> AbstractContextManager[object]:
            @contextmanager
            def give() -> Iterator[str]:
                yield f"{self.name}'s batch"

            return give()

        def settling(self, claimed: object) -> AbstractContextManager[object]:
            self.log.append(f"{self.name} settles {claimed}")
            return self._around("settling")

    names = "abc"[:parts]
    every = Instruments(*(Giving(name, log) for name in names))
    with every.claiming("w") as claimed:
        pass
    assert claimed == tuple(f"{name}'s batch" for name in names)
    with every.settling(claimed):
        log.append("write")
    assert log == [
        *(f"{name} settles {name}'s batch" for name in names),
        *(f"{name} enters settling" for name in names),
        "write",
        *(f"{name} exits settling" for name in reversed(names)),
    ]
    log.clear()
    with every.settling(None):  # before any claim
        pass
    assert log[:parts] == [f"{name} settles None" for name in names]


@pytest.mark.parametrize("parts", [2, 3])
def test_parts_nest_as_with_blocks_do_when_an_exit_raises_or_suppresses(parts: int) -> None:
    """The same exceptions reach each part as nested ``with`` blocks would pass them: an
    inner exit that raises replaces the block's exception; one that suppresses it hides it
    from the outer parts."""

    class Exiting(Instrument):
        def __init__(self, name: str, log: list[str], action: str) -> None:
            self.name, self.log, self.action = name, log, action

        def running(
            self, job: Job, trace_context: Mapping[str, str] | None
        ) -> AbstractContextManager[object]:
            part = self

            class Manager:
                def __enter__(self) -> None:
                    return None

                def __exit__(self, kind: object, exc: object, tb: object) -> bool:
                    part.log.append(f"{part.name} sees {type(exc).__name__}")
                    if part.action == "raise":
                        raise KeyError(part.name)
                    return part.action == "suppress"

            return Manager()

    def run(actions: list[str]) -> tuple[list[str], str | None]:
        log: list[str] = []
        every = Instruments(*(Exiting(str(n), log, a) for n, a in enumerate(actions)))
        try:
            with every.running(None, None):  # type: ignore[arg-type]
                raise ValueError("handler")
        except Exception as exc:
            return log, type(exc).__name__
        return log, None

    def nested(actions: list[str]) -> tuple[list[str], str | None]:
        log: list[str] = []
        managers = [
            Exiting(str(n), log, a).running(None, None)  # type: ignore[arg-type]
            for n, a in enumerate(actions)
        ]
        try:
            if len(managers) == 2:
                with managers[0], managers[1]:
                    raise ValueError("handler")
            else:
                with managers[0], managers[1], managers[2]:
                    raise ValueError("handler")
        except Exception as exc:
            return log, type(exc).__name__
        return log, None

    for inner in ("pass", "raise", "suppress"):
        for outer in ("pass", "raise", "suppress"):
            actions = [outer, *["pass"] * (parts - 2), inner]
            assert run(actions) == nested(actions), actions


def test_the_worker_calls_only_the_per_job_hooks_that_do_something_flattened_in_order() -> None:
    """per_job_hooks: the running and finished hooks the worker calls itself, once a job: the
    parts of (nested) Instruments in order, without those left as Instrument's no-ops."""
    log: list[str] = []
    first, second = Recorder("first", log), Recorder("second", log)

    class Counting(Instrument):
        def finished(self, job: Job, outcome: Outcome) -> None:
            log.append(f"finished {outcome.value}")

    counting = Counting()
    running, finished = per_job_hooks(
        Instruments(first, Instruments(Instrument(), counting), second)
    )
    assert running == (first.running, second.running)
    assert finished == (counting.finished,)
    assert per_job_hooks(first) == ((first.running,), ())
    assert per_job_hooks(Instrument()) == ((), ())


def test_one_part_with_claim_hooks_gets_them_with_nothing_between() -> None:
    """Where a single part (nested ones included) has claiming or settling of its own, as
    traces beside metrics, Instruments hands both to it: what its claiming gave comes back to
    its settling as it is; every part's claimed is still called."""
    given: list[object] = []
    seen: list[str] = []

    class Claims(Instrument):
        @contextmanager
        def claiming(self, worker_id: str) -> Iterator[object]:
            yield "the claim's span"

        def settling(self, claimed: object) -> AbstractContextManager[object]:
            given.append(claimed)
            return nullcontext()

        def claimed(self, jobs: Sequence[Job], seconds: float) -> None:
            seen.append("claims")

    class Counts(Instrument):
        def claimed(self, jobs: Sequence[Job], seconds: float) -> None:
            seen.append("counts")

    every = Instruments(Counts(), Instruments(Claims()))
    with every.claiming("w") as claimed:
        every.claimed([], 0.0)
    with every.settling(claimed):
        pass
    assert claimed == "the claim's span" and given == ["the claim's span"]
    assert seen == ["counts", "claims"]
    # Two parts with claim hooks: each gets back its own, as before.
    both = Instruments(Claims(), Claims())
    with both.claiming("w") as claimed:
        pass
    with both.settling(claimed):
        pass
    assert given[1:] == ["the claim's span", "the claim's span"]
