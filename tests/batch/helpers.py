"""A small test-only writing command (`scale`), registered on the dnnkit app for batch tests.

`scale MODEL -o OUT` multiplies every tensor of a safetensors file by --factor and writes a dnnkit
checkpoint that records `source.sha256`, like any dnnkit surgery. `--sleep S` makes it slow (for the
Ctrl-C test); `--crash` kills its own process (a worker dying under an item).
Run as a script, it is the dnnkit CLI with `scale` added: `python tests/batch/helpers.py batch ...`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from dnnkit.cli.options import DryRunOpt, ForceOpt, JsonOpt, ModelArg, OutputOpt, QuietOpt, VerboseOpt

NAME = "scale"


def scale_command(
    model: ModelArg,
    factor: Annotated[float, typer.Option("--factor", help="Multiply every tensor by this.")] = 2.0,
    sleep: Annotated[float, typer.Option("--sleep", help="Sleep this long before writing.")] = 0.0,
    crash: Annotated[bool, typer.Option("--crash", help="Kill this process (SIGKILL).")] = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Test-only: scale every tensor and write a dnnkit checkpoint."""
    from dnnkit.cli.common import start
    from dnnkit.errors import InputError
    from dnnkit.models.atomic import check_output_path
    from dnnkit.models.registry import files_sha256
    from dnnkit.models.safetensors_io import load_tensors
    from dnnkit.models.save import write_checkpoint

    out = start(json_mode, quiet, verbose)
    if output is None and not dry_run:
        raise InputError("scale needs -o OUT")
    if output is not None and not dry_run:
        check_output_path(output, force, inputs=(model,))
    tensors = load_tensors(model)
    if crash:
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + sleep
    while time.monotonic() < deadline:
        time.sleep(0.02)
    scaled = {k: v * factor for k, v in tensors.items()}
    if not dry_run:
        record = {"source": {"reference": model, "sha256": files_sha256([Path(model)])},
                  "recipe": [{"op": "scale", "params": {"factor": factor}, "layers": {}}]}
        write_checkpoint(output, scaled, record, force=force)
    import torch

    out.result({"factor": factor, "tensors": len(scaled), "output": output, "threads": torch.get_num_threads(),
                "sum": float(sum(float(v.double().sum()) for v in scaled.values()))})


def register(app: typer.Typer) -> object:
    """Add `scale` to the app; returns its registration (remove it from app.registered_commands after)."""
    app.command(name=NAME)(scale_command)
    return app.registered_commands[-1]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from dnnkit.cli.app import app, main

    register(app)
    main()
