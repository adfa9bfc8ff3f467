"""Small helpers every command module uses."""

from __future__ import annotations

import os
import sys

from dnnkit.cli.output import Output


def start(json_mode: bool, quiet: bool, verbose: bool, threads: int | None = None) -> Output:
    """Create the command's Output and apply the thread setting (before torch does any work)."""
    out = Output(json_mode=json_mode, quiet=quiet, verbose=verbose)
    n = threads or (int(os.environ["DNNKIT_THREADS"]) if os.environ.get("DNNKIT_THREADS", "").isdigit() else None)
    if n:
        import torch

        torch.set_num_threads(n)
    return out


def command_line() -> list[str]:
    """argv as the user typed it (recorded in checkpoints)."""
    return ["dnnkit", *sys.argv[1:]]
