"""Run one batch item in this process: the dnnkit Click command called with the item's argv.

A worker process (local pool or Ray) imports torch and the CLI once and then runs item after item
in-process, so the interpreter and torch start-up are paid once per worker, not once per model.
The command's stdout (its one `--json` object) and stderr are captured; its exit code and its
`error:` line become the item's status and error.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"
EXIT_INTERRUPTED = 130
LOG_CHARS = 20_000
_MANAGE_SIGNALS = False  # set in local pool workers; Ray workers keep Ray's own SIGINT handling
_PENDING_INTERRUPT = False  # a Ctrl-C reached this pool worker: it starts no further item
CommandFactory = Callable[[], Any]  # () -> the Click command that runs `dnnkit ARGV` (injected by the CLI)
_FACTORY: CommandFactory | None = None
_COMMAND: Any = None


def init_worker(threads: int, command_factory: CommandFactory, quiet_stdout: bool = True) -> None:
    """Per-process set-up: the injected command, torch threads, SIGINT/SIGTERM between items remembered (the
    next item then does not start), stray stdout sent to stderr."""
    use_command(command_factory)
    os.environ["DNNKIT_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if quiet_stdout:
        # Whatever a C extension prints must not reach the parent's JSON Lines stream.
        with contextlib.suppress(OSError):
            os.dup2(2, 1)
    global _MANAGE_SIGNALS
    _MANAGE_SIGNALS = True
    _between_items()
    import torch

    torch.set_num_threads(threads)
    _cli()


def use_command(command_factory: CommandFactory) -> None:
    """Inject what runs an item: batch never imports the CLI itself (the CLI hands in its own command)."""
    global _FACTORY, _COMMAND
    if command_factory is not _FACTORY:
        _FACTORY, _COMMAND = command_factory, None


def _cli() -> Any:
    """The injected Click command object, built once per worker process."""
    global _COMMAND
    if _FACTORY is None:
        raise RuntimeError("no command injected: call use_command()/init_worker() first")
    if _COMMAND is None:
        _COMMAND = _FACTORY()
    return _COMMAND


def _remember_interrupt(signum: int, frame: Any) -> None:
    """SIGINT/SIGTERM between two items: nothing to stop now, but the next item must not start."""
    global _PENDING_INTERRUPT
    _PENDING_INTERRUPT = True


def _between_items() -> None:
    signal.signal(signal.SIGINT, _remember_interrupt)
    signal.signal(signal.SIGTERM, _remember_interrupt)


def _interrupt_once(signum: int, frame: Any) -> None:
    """Turn the first SIGINT/SIGTERM into KeyboardInterrupt (atomic writers clean up); ignore repeats.

    The worker stays interrupted: an item already queued to it (the pool queues one ahead) must not
    start after the Ctrl-C that stopped this one, even when the parent's own signal came while this
    handler ignored repeats."""
    global _PENDING_INTERRUPT
    _PENDING_INTERRUPT = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_item(argv: list[str], threads: int | None = None, sha_of: str | None = None,
             command_factory: CommandFactory | None = None) -> dict[str, Any]:
    """Run `dnnkit ARGV` in-process; return {status, exit_code, metrics, error, log, seconds, pid[, sha256]}.

    `sha_of`: a reference whose input sha256 is wanted in the result (for outputs batch writes itself).
    `command_factory`: the command to run (already injected by `init_worker` in pool workers).
    """
    if command_factory is not None:
        use_command(command_factory)
    if threads is not None:
        os.environ["DNNKIT_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
    cli = _cli()
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv = sys.argv
    start = time.perf_counter()
    manage = _MANAGE_SIGNALS and _in_main_thread()
    code = 1
    sha = None
    try:
        if manage:
            signal.signal(signal.SIGINT, _interrupt_once)
            signal.signal(signal.SIGTERM, _interrupt_once)
            if _PENDING_INTERRUPT:  # a Ctrl-C reached this worker (between or during items): start nothing more
                raise KeyboardInterrupt
        sys.argv = ["dnnkit", *argv]  # recorded as `command` in written checkpoints
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(args=list(argv), prog_name="dnnkit", standalone_mode=False)
            if code == 0 and sha_of is not None:
                from dnnkit.batch.verify import input_sha256

                sha = input_sha256(sha_of)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        if manage:
            _between_items()
        sys.argv = saved_argv
    seconds = time.perf_counter() - start
    gc.collect()
    return summarize(code, stdout.getvalue(), stderr.getvalue(), seconds, sha)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def summarize(code: int, out: str, err: str, seconds: float, sha: str | None = None) -> dict[str, Any]:
    """Turn the captured exit code, stdout and stderr of one command into an item result."""
    metrics = None
    for line in reversed(out.splitlines()):
        if line.strip().startswith("{"):
            try:
                metrics = json.loads(line)
            except json.JSONDecodeError:
                continue
            break
    if code == EXIT_INTERRUPTED:
        status = STATUS_INTERRUPTED
    else:
        status = STATUS_OK if code == 0 and metrics is not None else STATUS_FAILED
    error = None
    if status != STATUS_OK:
        lines = [ln[len("error: "):] for ln in err.splitlines() if ln.startswith("error: ")]
        hints = [ln[len("hint: "):] for ln in err.splitlines() if ln.startswith("hint: ")]
        if lines:
            error = lines[-1] + (f" (hint: {hints[-1]})" if hints else "")
        elif status == STATUS_INTERRUPTED:
            error = "interrupted (Ctrl-C or SIGTERM) before it finished; nothing partial was written"
        elif code == 0:
            error = "the command printed no JSON result"
        else:
            error = f"exit code {code}"
    result: dict[str, Any] = {"status": status, "exit_code": code, "metrics": metrics, "error": error,
                              "seconds": round(seconds, 4), "log": err[-LOG_CHARS:], "pid": os.getpid()}
    if sha is not None:
        result["sha256"] = sha
    return result
