"""The one output contract: results on stdout (a Rich table, or exactly one JSON object with
--json), logs/warnings/progress on stderr, progress bars only when stderr is a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from dnnkit.jsonsafe import clean as _clean
from dnnkit.jsonsafe import to_json

_CURRENT: Output | None = None


class Output:
    """Renders one command's results and messages according to --json/--quiet/--verbose."""

    def __init__(self, json_mode: bool = False, quiet: bool = False, verbose: bool = False) -> None:
        global _CURRENT
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self._progress: CliProgress | None = None
        _CURRENT = self

    def result(self, data: dict[str, Any], human: Callable[[Any], None] | None = None) -> None:
        """Emit the command's result: JSON object, or the human rendering (a Rich console is passed)."""
        self.close()  # bars end (at their final state) before the result is printed
        if self.json_mode:
            sys.stdout.write(to_json(data) + "\n")
            sys.stdout.flush()
            return
        if self.quiet:
            return
        if human is None:
            sys.stdout.write(json.dumps(_clean(data), indent=2) + "\n")
            return
        human(self.console())

    def console(self) -> Any:
        """A Rich console on stdout (rich is imported only when a human rendering is asked for)."""
        from rich.console import Console

        return Console(file=sys.stdout, soft_wrap=False, width=None if sys.stdout.isatty() else 140)

    def info(self, message: str) -> None:
        """A log line on stderr (hidden by --quiet)."""
        if not self.quiet:
            self._stderr_line(message)

    def _stderr_line(self, line: str) -> None:
        """One line on stderr, above a live progress bar when one is shown."""
        bar = self._progress._bar if self._progress is not None else None
        if bar is not None:
            bar.console.print(line, markup=False, highlight=False)
            return
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def debug(self, message: str) -> None:
        """A log line shown only with --verbose."""
        if self.verbose:
            sys.stderr.write(message + "\n")

    def warn(self, message: str) -> None:
        """A warning on stderr (hidden by --quiet)."""
        if not self.quiet:
            self._stderr_line(f"warning: {message}")

    def progress(self) -> Any:
        """The command's one ProgressReporter: bars on a terminal, plain log lines otherwise, nothing with --quiet."""
        if self._progress is None:
            self._progress = CliProgress(self)
        return self._progress

    def close(self) -> None:
        """Stop any live progress display (before the result, and when the command ends or fails)."""
        if self._progress is not None:
            self._progress.close()


class _BarTask:
    def __init__(self, bar: Any, task_id: int) -> None:
        self.bar, self.task_id = bar, task_id

    def advance(self, n: float = 1, **info: object) -> None:
        self.bar.advance(self.task_id, n)
        if "loss" in info:
            self.bar.update(self.task_id, loss=f"loss {float(info['loss']):.4f}")
        total = self.bar.tasks[self.task_id].total if self.task_id < len(self.bar.tasks) else None
        if total is not None and self.bar.tasks[self.task_id].completed >= total:
            self.bar.stop_task(self.task_id)


class _NoTask:
    def advance(self, n: float = 1, **info: object) -> None:
        return None


class CliProgress:
    """ProgressReporter for the CLI: Rich bars on a TTY stderr; logs on stderr unless --quiet."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._bar = None

    def task(self, description: str, total: float | None) -> Any:
        if self.out.quiet or not sys.stderr.isatty():
            return _NoTask()
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[loss]}"),
                                 console=Console(file=sys.stderr), transient=True)
            self._bar.start()
        return _BarTask(self._bar, self._bar.add_task(description, total=total, loss=""))

    def log(self, message: str) -> None:
        self.out.info(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def current() -> Output:
    """The Output of the running command (a default one outside commands)."""
    return _CURRENT or Output()


def json_lines_writer(out: Output, verbose: bool) -> Any:
    """Write each result as one JSON line on stdout (flushed at once, so a pipeline sees it stream)."""
    state = {"closed": False}
    show = verbose or sys.stderr.isatty()

    def emit(line: dict[str, Any]) -> None:
        if show:
            note = f" ({line['error']})" if line.get("error") else ""
            out.info(f"[{line['index']}] {line['status']}: {line['input']} in {line['seconds'] or 0:.2f} s{note}")
        if state["closed"]:
            return
        try:
            sys.stdout.write(to_json(line) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            state["closed"] = True  # the reader left (e.g. `| head`); keep working, stop writing
            import contextlib
            import os

            with contextlib.suppress(Exception):  # no second BrokenPipeError when Python exits
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return emit
