"""The root `dnnkit` command: global options, command registration, exceptions -> exit codes.

Exit codes: 0 success; 1 runtime failure; 2 bad usage or bad input; 3 some batch items failed.
Errors are one `error: ...` line plus a hint on stderr; `--verbose` adds the traceback.
This module must not import torch or rich: `dnnkit --help` and `--version` stay fast.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # recent typer vendors click; older releases use the click package
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover
    from click import exceptions as click

from dnnkit import __version__
from dnnkit.errors import DnnkitError

# (command name, module under dnnkit.cli, attribute): a Typer app (group) or a command function.
COMMANDS: list[tuple[str, str, str]] = [
    ("inspect", "inspect", "inspect_command"),
    ("eval", "evaluate", "eval_command"),
    ("zoo", "zoo", "app"),
    ("batch", "batch", "batch_command"),
    ("probe-hallucination", "probe_hallucination", "app"),
    ("invert", "invert", "app"),
    ("bcosify", "bcosify", "bcosify_command"),
    ("explain", "explain", "explain_command"),
    ("lowrank", "lowrank", "lowrank_command"),
    ("swap-projection", "swap_projection", "app"),
    ("prune", "prune", "prune_command"),
    ("hash-codes", "hash_codes", "hash_codes_command"),
    ("linear-interpret", "linear_interpret", "linear_interpret_command"),
    ("export", "export", "export_command"),
]


def _wants_traceback(args: list[str]) -> bool:
    return any(a in ("--verbose", "-v") for a in args)


def report_error(message: str, hint: str | None = None) -> None:
    """Write the one-line error (and its hint) to stderr."""
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()


class DnnkitGroup(TyperGroup):
    """Runs the CLI in non-standalone mode and maps every exception to one line and an exit code."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=argv, prog_name=prog_name or "dnnkit", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.NoArgsIsHelpError as exc:
            sys.stderr.write((exc.ctx.get_help() if exc.ctx else "") + "\n")
            code = 2
        except click.UsageError as exc:
            hint = None
            if exc.ctx is not None and exc.ctx.command_path:
                hint = f"see `{exc.ctx.command_path} --help`"
            report_error(exc.format_message().replace("\n", " "), hint)
            code = 2
        except click.ClickException as exc:
            report_error(exc.format_message())
            code = exc.exit_code
        except typer.Exit as exc:
            code = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            report_error("interrupted; nothing partial was written")
            code = 130
        except DnnkitError as exc:
            if _wants_traceback(argv):
                import traceback

                traceback.print_exc()
            report_error(exc.message, exc.hint)
            code = exc.exit_code
        except MemoryError:
            report_error("out of memory", "try a smaller --batch-size or --calib")
            code = 1
        except Exception as exc:  # noqa: BLE001 - the contract: never a raw traceback
            if _wants_traceback(argv):
                import traceback

                traceback.print_exc()
            report_error(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unexpected failure'}",
                         None if _wants_traceback(argv) else "run with --verbose for the traceback")
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="dnnkit",
    cls=DnnkitGroup,
    help="Analysis and surgery of trained neural networks: prune, factor, explain, audit, probe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"dnnkit {__version__}\n")
        raise typer.Exit(0)


def _load_config(ctx: typer.Context, path: str) -> None:
    """Turn a YAML file into Click's default_map, so flags given on the command line override it."""
    from dnnkit.cli.config_file import read_config

    raw = read_config(path, {c[0] for c in COMMANDS})
    sub = ctx.invoked_subcommand
    per_command = {k: v for k, v in raw.items() if isinstance(v, dict) and k in {c[0] for c in COMMANDS}}
    flat = {k: v for k, v in raw.items() if k not in per_command}
    default_map = {name: dict(v) for name, v in per_command.items()}
    if sub:
        default_map[sub] = {**flat, **default_map.get(sub, {})}
    ctx.default_map = default_map


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
    config: Annotated[str | None, typer.Option("--config", help="YAML file of option values (flags win).",
                                                  metavar="FILE.yaml")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
) -> None:
    """dnnkit COMMAND MODEL [options] [-o OUT]: load, transform or analyse, write."""
    if config:
        _load_config(ctx, config)


def _register() -> None:
    for name, module, attr in COMMANDS:
        obj = getattr(importlib.import_module(f"dnnkit.cli.{module}"), attr)
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name=name)(obj)


_register()


def click_command() -> Any:
    """The whole CLI as one Click command (what `batch` workers run items with)."""
    return typer.main.get_command(app)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _sigterm)
    command = typer.main.get_command(app)
    command.main(args=sys.argv[1:], prog_name="dnnkit", standalone_mode=True)
