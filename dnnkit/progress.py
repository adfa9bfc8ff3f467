"""A tiny progress protocol: library code reports, the CLI decides how (or whether) to show it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Task(Protocol):
    def advance(self, n: float = 1, **info: object) -> None: ...


class ProgressReporter(Protocol):
    def task(self, description: str, total: float | None) -> Task: ...

    def log(self, message: str) -> None: ...


class _NullTask:
    def advance(self, n: float = 1, **info: object) -> None:
        return None


class NullProgress:
    """Reports nothing (the default for library calls)."""

    def task(self, description: str, total: float | None) -> Task:
        return _NullTask()

    def log(self, message: str) -> None:
        return None


class CallbackProgress:
    """Forwards log lines to a callable (handy in tests and benchmarks)."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink

    def task(self, description: str, total: float | None) -> Task:
        self._sink(f"{description} ({total if total is not None else '?'} steps)")
        return _NullTask()

    def log(self, message: str) -> None:
        self._sink(message)


def or_null(progress: ProgressReporter | None) -> ProgressReporter:
    """`progress`, or a reporter that does nothing."""
    return progress if progress is not None else NullProgress()
