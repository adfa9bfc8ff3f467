"""Options every command shares, declared once and handed to the command as one `Shared` object.

A command declares only its own options and names the shared groups it takes:

    @shared_options(LOAD, WRITE, GATE)
    def prune_command(model: ModelArg, ratio: ..., shared: Shared) -> None: ...

The decorator appends the shared options to the signature Typer reads (so `--threads`, `--json`,
`--weights` ... mean the same in every command), builds the `Output` and applies `--threads` before
the command body runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dnnkit.cli.common import start
from dnnkit.cli.output import Output

if TYPE_CHECKING:
    from dnnkit.models.registry import LoadedModel

# Option groups: every command gets RUN; the others where they make sense.
RUN = ("json_mode", "quiet", "verbose", "threads")
LOAD = ("arch", "weights", "device")
DTYPE = ("dtype",)
WRITE = ("output", "force", "dry_run")
SHARDS = ("max_shard_size",)  # commands that may write a Hugging Face folder
GATE = ("require",)

# name -> (type, flags, default, help, extra typer.Option keywords)
_DECLS: dict[str, tuple[Any, tuple[str, ...], Any, str, dict[str, Any]]] = {
    "json_mode": (bool, ("--json",), False, "Print exactly one JSON object on stdout.", {}),
    "quiet": (bool, ("--quiet", "-q"), False, "No human output and no logs (errors still shown).", {}),
    "verbose": (bool, ("--verbose", "-v"), False, "More logs; tracebacks on errors.", {}),
    "threads": (int | None, ("--threads",), None, "torch CPU threads (default: $DNNKIT_THREADS or torch's default; "
                                                  "1 is often fastest on small models).", {"min": 1}),
    "arch": (str | None, ("--arch",), None, "Architecture for a bare weights file: zoo:NAME, timm:NAME[?k=v], or a "
                                            "HF folder/config.json.", {}),
    "weights": (str | None, ("--weights",), None, "Weights (.safetensors or .pt/.pth/.bin) for a timm:NAME model.",
                {"metavar": "FILE"}),
    "device": (str, ("--device",), "cpu", "cpu or cuda[:N].", {}),
    "dtype": (str | None, ("--dtype",), None, "float32, float16 or bfloat16.", {}),
    "output": (str | None, ("--output", "-o"), None, "Output path (missing parent folders are created).", {}),
    "force": (bool, ("--force",), False, "Replace an existing output.", {}),
    "dry_run": (bool, ("--dry-run",), False, "Compute and report, write nothing.", {}),
    "max_shard_size": (str | None, ("--max-shard-size",), None,
                       "Shard a Hugging Face folder output at this size (500MB, 2GB; default: the input's "
                       "shard size, one file for an unsharded input).", {"metavar": "SIZE"}),
    "require": (list[str] | None, ("--require",), None,
                "Gate on an after-metric, e.g. 'accuracy>=0.9' or 'perplexity<=30' (repeatable): when one fails, "
                "exit 1 and write nothing.", {"metavar": "EXPR"}),
}


def _parameter(name: str, default: Any, help_text: str | None) -> inspect.Parameter:
    kind, flags, _, base_help, extra = _DECLS[name]
    option = typer.Option(*flags, help=help_text or base_help, **extra)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, option], default=default)


@dataclass
class Shared:
    """The shared options of one command run, plus its `Output`."""

    json_mode: bool = False
    quiet: bool = False
    verbose: bool = False
    threads: int | None = None
    arch: str | None = None
    weights: str | None = None
    device: str = "cpu"
    dtype: str | None = None
    output: str | None = None
    force: bool = False
    dry_run: bool = False
    max_shard_size: str | None = None
    require: list[str] = field(default_factory=list)
    out: Output = field(default_factory=Output)

    def progress(self) -> Any:
        """The command's one progress reporter (bars on a terminal only)."""
        return self.out.progress()

    def load(self, model: str) -> LoadedModel:
        """Load MODEL with the shared --arch/--weights/--device/--dtype and the command's progress."""
        from dnnkit.models.registry import load_model

        return load_model(model, arch=self.arch, weights=self.weights, device=self.device, dtype=self.dtype,
                          progress=self.progress())

    def load_options(self) -> Any:
        """The shared load options as the runner takes them."""
        from dnnkit.runner import LoadOptions

        return LoadOptions(arch=self.arch, weights=self.weights, device=self.device, dtype=self.dtype)

    def run(self, surgery: str, model: str, cfg: Any, what: str) -> Any:
        """Run a surgery through the one runner with this command's shared options; returns its Result."""
        from dnnkit.cli.common import command_line
        from dnnkit.runner import run_surgery

        output = self.output_or_error(what)
        return run_surgery(surgery, model, cfg, load=self.load_options(), output=output, force=self.force,
                           dry_run=self.dry_run, require=self.require, progress=self.progress(), warn=self.out.warn,
                           argv=command_line(), max_shard_size=self.max_shard_size)

    def run_probe(self, probe: Any, model: str | None, cfg: Any) -> Any:
        """Run a probe through the one runner with this command's shared options; returns its ProbeResult."""
        from dnnkit.cli.common import command_line
        from dnnkit.runner import run_probe

        return run_probe(probe, model, cfg, load=self.load_options(), output=self.output, force=self.force,
                         dry_run=self.dry_run, progress=self.progress(), warn=self.out.warn, argv=command_line())

    def output_or_error(self, what: str) -> str | None:
        """The -o path, or the one missing-output error (None on --dry-run without -o)."""
        from dnnkit.errors import InputError

        if self.output is None and not self.dry_run:
            raise InputError(f"missing -o/--output: {what}", hint="pass -o PATH (or --dry-run to write nothing)")
        return self.output

    def check_output(self, path: str | Path, model: str | None = None, *, replace: bool | None = None) -> Path:
        """Validate an output path before heavy work (never the input, existing only with --force)."""
        from dnnkit.models.atomic import check_output_path

        return check_output_path(path, self.force if replace is None else replace, inputs=model_inputs(model))

    def requirements(self) -> list[Any]:
        """The parsed --require expressions (bad ones are an InputError before any work)."""
        from dnnkit.gate import parse_requirements

        return parse_requirements(self.require)

    def gate(self, before: dict[str, Any], after: dict[str, Any], what: str = "the result") -> None:
        """Warn when an after-metric fell far below its before-value; raise when a --require fails."""
        from dnnkit.gate import check_requirements, drop_warnings

        for message in drop_warnings(before, after):
            self.out.warn(message + ("" if self.require else "; gate a pipeline with --require, e.g. "
                                     "--require 'accuracy>=0.9'"))
        check_requirements(self.requirements(), after, what)


def model_inputs(model: str | None) -> tuple[str, ...]:
    """The local files/folders a MODEL reference reads (an output must never be one of them)."""
    if not model or model.startswith(("zoo:", "timm:", "hf:")):
        return ()
    return (model,) if Path(model).exists() else ()


def shared_options(*groups: tuple[str, ...], defaults: dict[str, Any] | None = None,
                   helps: dict[str, str] | None = None) -> Callable[[Callable], Callable]:
    """Decorate a command whose last parameter is `shared: Shared`: add the RUN options and `groups`
    (`defaults` and `helps` adjust a shared option's default or help text for this command)."""
    names = [n for group in (RUN, *groups) for n in group]
    overrides, texts = dict(defaults or {}), dict(helps or {})

    def decorate(func: Callable) -> Callable:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "shared"]
        taken = {p.name for p in own}
        added = [n for n in dict.fromkeys(names) if n not in taken]
        params = own + [_parameter(n, overrides.get(n, _DECLS[n][2]), texts.get(n)) for n in added]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in added}
            values["require"] = list(values.get("require") or [])
            out = start(values.get("json_mode", False), values.get("quiet", False), values.get("verbose", False),
                        values.get("threads"))
            shared = Shared(**values, out=out)
            if "require" in values:
                shared.requirements()  # bad expressions fail before any work
            try:
                return func(**kwargs, shared=shared)
            finally:
                out.close()

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # Typer must read the new signature, not the wrapped one
        return command

    return decorate
