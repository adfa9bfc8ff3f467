"""The parts of one `dnnkit batch` run that are not rendering: executors, output checks, the
interruption summary (the CLI adapter in dnnkit/cli/batch.py declares options and renders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def interrupted_message(summary: Any) -> tuple[str, str | None]:
    """The `error:` line and hint after Ctrl-C: how many items finished, were interrupted, never started."""
    left = summary.total - summary.finished
    if left == 0:
        return (f"interrupted after all {summary.total} items had finished; their outputs are kept", None)
    parts = [f"{summary.finished} of {summary.total} items finished"]
    if summary.interrupted_items:
        parts.append(f"{summary.interrupted_items} interrupted")
    if summary.not_run:
        parts.append(f"{summary.not_run} not run")
    return (f"interrupted: {', '.join(parts)}; finished outputs are kept, nothing partial was written",
            "run the same command with --resume to finish the rest")


def refuse_existing_outputs(items: list[Any]) -> None:
    """Without --resume or --force, an existing output is bad input (before anything runs)."""
    from dnnkit.errors import InputError

    for item in items:
        if item.output is not None and Path(item.output).exists():
            raise InputError(f"output {item.output!r} already exists",
                             hint="pass --resume to skip verified outputs, or --force to replace them")


def make_executor(kind: str, jobs: int | None, threads: int, address: str, gpus: float, cpus: float,
                  n_items: int, click_command: Any) -> Any:
    """The local pool or the Ray executor; `click_command` is what workers run items with (injected)."""

    if kind == "ray":
        from dnnkit.batch.ray_executor import RayExecutor

        runner = RayExecutor(address, threads, click_command, cpus_per_task=cpus, gpus_per_task=gpus)
        runner.connect()  # an unreachable cluster is bad input: exit 2 before anything runs
        return runner
    from dnnkit.batch.local import LocalExecutor, default_jobs

    if gpus:
        from dnnkit.errors import InputError

        raise InputError("--gpus-per-task applies to --executor ray", hint="locally, pass --device cuda after --")
    return LocalExecutor(min(jobs or default_jobs(), max(1, n_items)), threads, click_command)


def check_batch_options(executor: str, resume: bool, force: bool, out_dir: str | None) -> None:
    """Combinations of batch's own options that cannot work (exit 2)."""
    from dnnkit.errors import InputError

    if executor not in ("local", "ray"):
        raise InputError(f"--executor must be local or ray, got {executor!r}")
    if resume and force:
        raise InputError("--resume and --force contradict each other",
                         hint="--resume keeps verified outputs; --force replaces every output")
    if resume and out_dir is None:
        raise InputError("--resume needs --out-dir (it resumes from the outputs found there)")
