"""Run a batch plan: resume checks, execution through an executor, result records, one line per item.

Library code: it never prints. Each finished item becomes one result dict handed to `emit`
(the CLI writes it as a JSON line); the returned summary holds them all. Ctrl-C (SIGINT) and
SIGTERM stop the batch cleanly: nothing new starts, running items are told to stop (their
atomic writers remove temporary files), finished outputs stay, and no result line or record is
cut in half, because a signal that arrives while one is written waits until it is complete.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dnnkit.batch.plan import BatchItem
from dnnkit.batch.verify import Verdict, save_result, verify_item
from dnnkit.batch.worker import EXIT_INTERRUPTED, STATUS_FAILED, STATUS_INTERRUPTED, STATUS_OK

STATUS_SKIPPED = "skipped"
STATUS_PLANNED = "planned"
SUCCESS = (STATUS_OK, STATUS_SKIPPED, STATUS_PLANNED)


class Executor(Protocol):
    name: str

    def describe(self) -> str: ...

    def run(self, items: list[BatchItem], emit: Callable[[BatchItem, dict[str, Any]], None]) -> None: ...


@dataclass
class BatchSummary:
    """What a batch did: one result per item that ran (finished, or was interrupted) or was skipped, and
    whether the batch was stopped (Ctrl-C / SIGTERM)."""

    total: int
    results: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    executor: str = ""

    def counts(self) -> Counter[str]:
        return Counter(r["status"] for r in self.results)

    @property
    def failed(self) -> int:
        """Items that did not succeed (failed or interrupted)."""
        return sum(1 for r in self.results if r["status"] not in SUCCESS)

    @property
    def finished(self) -> int:
        """Items that ran to their end (ok or failed) or were skipped: every result but the interrupted ones."""
        return sum(1 for r in self.results if r["status"] != STATUS_INTERRUPTED)

    @property
    def interrupted_items(self) -> int:
        """Items that were running when the batch (or their worker) was interrupted."""
        return sum(1 for r in self.results if r["status"] == STATUS_INTERRUPTED)

    @property
    def not_run(self) -> int:
        """Items that never started."""
        return self.total - len(self.results)

    @property
    def stopped(self) -> bool:
        """The batch was interrupted, or some item was: its exit code is 130."""
        return self.interrupted or self.interrupted_items > 0


def result_line(item: BatchItem, raw: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """The public, streamed form of one item's result."""
    return {"index": item.index, "input": item.reference, "output": item.output,
            "status": status or raw.get("status"), "metrics": raw.get("metrics"), "error": raw.get("error"),
            "seconds": raw.get("seconds", 0.0), "exit_code": raw.get("exit_code"), "argv": ["dnnkit", *item.argv]}


def planned_lines(items: list[BatchItem]) -> list[dict[str, Any]]:
    """`--dry-run`: the same keys as a real run, status `planned`, nothing run or written."""
    return [result_line(item, {"seconds": 0.0}, STATUS_PLANNED) for item in items]


class _InterruptGuard:
    """SIGINT/SIGTERM -> one KeyboardInterrupt, deferred while a result is being written."""

    def __init__(self) -> None:
        self.requested = False
        self.raised = False
        self.depth = 0

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.depth == 0 and not self.raised:
            self.raised = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0 and self.requested and not self.raised:
            self.raised = True
            raise KeyboardInterrupt


@contextlib.contextmanager
def _signals(guard: _InterruptGuard) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, guard.handler)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def check_resume(items: list[BatchItem], workers: int) -> list[Verdict]:
    """Verify existing outputs (hashing inputs in a few threads: hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, 8))) as pool:
        return list(pool.map(verify_item, items))


def run_batch(items: list[BatchItem], executor: Executor, *, emit: Callable[[dict[str, Any]], None],
              resume: bool = False, save_records: bool = True, log: Callable[[str], None] | None = None,
              hash_workers: int = 4) -> BatchSummary:
    """Run `items` through `executor`; `emit` receives one result line per finished or skipped item."""
    start = time.perf_counter()
    summary = BatchSummary(total=len(items), executor=executor.describe())
    guard = _InterruptGuard()

    def publish(line: dict[str, Any]) -> None:
        summary.results.append(line)
        emit(line)

    def on_result(item: BatchItem, raw: dict[str, Any]) -> None:
        if guard.requested and raw.get("status") == STATUS_FAILED:
            # It failed after Ctrl-C reached its worker (an exception the interruption caused inside the
            # command, or its worker killed by it): it did not finish, and --resume must redo it. Like every
            # interrupted item it reports exit code 130; the error keeps what the failure said.
            raw = {**raw, "status": STATUS_INTERRUPTED, "exit_code": EXIT_INTERRUPTED,
                   "error": raw.get("error") or "interrupted (Ctrl-C or SIGTERM) before it finished",
                   "metrics": None}
        with guard.critical():
            if raw.get("status") == STATUS_OK and save_records and item.output is not None:
                save_result(item, raw, raw.get("sha256"))
            if log is not None and raw.get("log") and raw.get("status") != STATUS_OK:
                log(f"[{item.index}] {item.reference}:\n{raw['log'].rstrip()}")
            publish(result_line(item, raw))

    with _signals(guard):
        try:
            to_run = items
            if resume:
                to_run = []
                for item, verdict in zip(items, check_resume(items, hash_workers), strict=True):
                    if verdict.skip:
                        with guard.critical():
                            publish(result_line(item, {**(verdict.saved or {}), "error": None, "exit_code": 0},
                                                STATUS_SKIPPED))
                    else:
                        if log is not None and item.output is not None and Path(item.output).exists():
                            log(f"[{item.index}] {item.reference}: redoing ({verdict.reason})")
                        to_run.append(item.with_force() if item.output and Path(item.output).exists() else item)
            executor.run(to_run, on_result)
        except KeyboardInterrupt:
            summary.interrupted = True
    summary.seconds = time.perf_counter() - start
    return summary
