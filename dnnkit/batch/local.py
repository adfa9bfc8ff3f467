"""The local executor: a pool of worker processes, each running items in-process one after another.

At most `jobs` items are in flight, so after Ctrl-C nothing new starts. A worker that dies (killed,
out of memory) breaks the pool; the items that were running are then retried one at a time in a
fresh pool, and the one that kills its worker again is reported as failed, so one bad input never
stops the others.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dnnkit.batch.plan import BatchItem
from dnnkit.batch.worker import STATUS_FAILED, CommandFactory, init_worker, run_item

Emit = Callable[[BatchItem, dict[str, Any]], None]


def default_jobs() -> int:
    """One job per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _mp_context() -> multiprocessing.context.BaseContext:
    # fork on Linux: the parent never imports torch or CUDA, so forking is safe and workers start at once;
    # spawn elsewhere (macOS, Windows), where fork is unsafe or missing.
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def crashed_result(item: BatchItem, retried: bool) -> dict[str, Any]:
    """The result of an item whose worker process died under it."""
    return {"status": STATUS_FAILED, "exit_code": None, "metrics": None, "seconds": 0.0, "log": "",
            "error": "the worker process died while running this item (killed, or out of memory)"
                     + ("; it died again when retried alone" if retried else "")}


class LocalExecutor:
    """Runs items in a local process pool of `jobs` workers with `threads` torch threads each."""

    name = "local"

    def __init__(self, jobs: int, threads: int, command_factory: CommandFactory) -> None:
        self.jobs = max(1, jobs)
        self.threads = threads
        self.command_factory = command_factory
        self._pool: ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return f"local pool of {self.jobs} workers, {self.threads} torch thread{'s' if self.threads > 1 else ''} each"

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=init_worker,
                                   initargs=(self.threads, self.command_factory))

    def run(self, items: list[BatchItem], emit: Emit) -> None:
        """Run every item, calling `emit(item, result)` as each finishes; KeyboardInterrupt stops cleanly."""
        if not items:
            return
        pending: deque[BatchItem] = deque(items)
        suspects: deque[BatchItem] = deque()  # were running when a worker died: retried one at a time
        retried: set[int] = set()
        in_flight: dict[Future, BatchItem] = {}
        workers = min(self.jobs, len(items))
        self._pool = self._new_pool(workers)

        def lost(item: BatchItem) -> None:
            """An item whose worker died: retry it alone once, then report it as failed."""
            if item.index in retried:
                emit(item, crashed_result(item, retried=True))
            else:
                suspects.append(item.with_force())  # its own first attempt may have written its output

        try:
            while pending or suspects or in_flight:
                broken = False
                if suspects:
                    if not in_flight:
                        item = suspects.popleft()
                        retried.add(item.index)
                        broken = not self._submit(item, in_flight)
                        if broken:
                            suspects.appendleft(item)
                else:
                    while pending and len(in_flight) < workers and not broken:
                        item = pending.popleft()
                        broken = not self._submit(item, in_flight)
                        if broken:
                            pending.appendleft(item)
                if in_flight:
                    done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                    for fut in done:
                        item = in_flight.pop(fut)
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            lost(item)
                            continue
                        emit(item, result)
                if broken:
                    for fut, item in list(in_flight.items()):
                        in_flight.pop(fut)
                        lost(item)
                    self._pool.shutdown(wait=True, cancel_futures=True)
                    self._pool = self._new_pool(workers)
        except KeyboardInterrupt:
            self._interrupt(in_flight, emit)
            raise
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, item: BatchItem, in_flight: dict[Future, BatchItem]) -> bool:
        """Submit one item; False when the pool broke (a worker died) before it could take the item."""
        assert self._pool is not None
        try:
            fut = self._pool.submit(run_item, item.argv, None, item.reference if item.report else None)
        except (BrokenProcessPool, RuntimeError):
            return False
        in_flight[fut] = item
        return True

    def _interrupt(self, in_flight: dict[Future, BatchItem], emit: Emit) -> None:
        """Ctrl-C: tell running items to stop (their atomic writers remove temp files), collect what they say."""
        pool = self._pool
        for process in list(getattr(pool, "_processes", {}).values()) if pool is not None else []:
            with contextlib.suppress(OSError, AttributeError, ValueError):
                os.kill(process.pid, signal.SIGINT)
        while in_flight:
            try:
                done, _ = wait(list(in_flight), timeout=60)
            except KeyboardInterrupt:
                continue  # a second Ctrl-C: keep waiting for the workers to clean up
            if not done:
                break
            for fut in done:
                item = in_flight.pop(fut)
                try:
                    emit(item, fut.result())
                except (BrokenProcessPool, KeyboardInterrupt):
                    continue
