"""`dnnkit batch INPUTS... -- COMMAND [ARGS]`: one dnnkit command over many checkpoints.

Results stream to stdout as JSON Lines (one object per item), the summary table goes to stderr.
Exit 0 when every item succeeded (or was skipped by --resume), 3 when some failed, 2 for bad
input (checked before anything runs), 130 after Ctrl-C.

Everything after `--` belongs to the subcommand. Click drops `--` while parsing, so the command
object splits the argument list at the first `--` itself before Click sees the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dnnkit.batch import clickcompat as click
from dnnkit.batch.session import check_batch_options, interrupted_message, make_executor, refuse_existing_outputs
from dnnkit.cli.options import DryRunOpt, ForceOpt, QuietOpt, VerboseOpt
from dnnkit.cli.output import json_lines_writer

TAIL_KEY = "dnnkit.batch.command"
MAX_TABLE_ROWS = 50


def split_at_double_dash(args: list[str]) -> tuple[list[str], list[str] | None]:
    """(batch's own arguments, the subcommand and its arguments after the first `--`, or None)."""
    if "--" not in args:
        return list(args), None
    i = args.index("--")
    return list(args[:i]), list(args[i + 1:])


class BatchCommand(TyperGroup):
    """A single command (not a group) that keeps `-- COMMAND [ARGS]` for itself.

    `COMMANDS` registers a Typer app with a custom class when it needs one, so this class is the
    Typer app's group class; it has no subcommands and runs its callback directly.
    """

    allow_interspersed_args = True  # options may follow INPUTS, as in any command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        head, tail = split_at_double_dash(args)
        ctx.meta[TAIL_KEY] = tail
        return click.Command.parse_args(self, ctx, head)

    def invoke(self, ctx: click.Context) -> Any:
        return click.Command.invoke(self, ctx)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*click.Command.collect_usage_pieces(self, ctx), "-- COMMAND [ARGS]..."]

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        return None


batch_command = typer.Typer(
    cls=BatchCommand,
    invoke_without_command=True,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EPILOG = """Examples:

\b
  dnnkit batch 'ckpts/*.safetensors' --out-dir pruned -- prune --ratio 0.5
  ls ckpts/*.safetensors | dnnkit batch - -- eval --data digits | jq .metrics.accuracy
  dnnkit batch --manifest runs.jsonl --out-dir out --executor ray --address auto \\
      --gpus-per-task 1 -- prune --ratio 0.7 --device cuda
"""


@batch_command.callback(epilog=EPILOG)
def batch_main(
    ctx: typer.Context,
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Checkpoints: paths, globs (quoted), folders of checkpoints, zoo:NAME, or - to read references "
             "from stdin.", show_default=False, metavar="INPUTS...")] = None,
    manifest: Annotated[list[str] | None, typer.Option(
        "--manifest", help="File with one reference per line, or JSON Lines {input, args|options, output}.",
        metavar="FILE")] = None,
    out_dir: Annotated[str | None, typer.Option(
        "--out-dir", help="Folder for outputs (created if missing): checkpoints of a command that writes, "
                          "JSON reports of one that only reports.")] = None,
    template: Annotated[str | None, typer.Option(
        "--template", help="Output name inside --out-dir; fields {stem} {name} {parent} {index} {command} "
                           "[default: {stem}.safetensors for commands that write, {stem}.json otherwise].",
        show_default=False)] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (a process pool) or ray.")] = "local",
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", help="Local worker processes [default: one per CPU].", min=1, show_default=False)] = None,
    threads_per_job: Annotated[int, typer.Option(
        "--threads", "--threads-per-job", help="torch CPU threads in each worker (local or Ray).", min=1)] = 1,
    address: Annotated[str, typer.Option(
        "--address", help="Ray cluster: HOST:PORT of the head, ray://HOST:PORT, or auto (the local one).")] = "auto",
    gpus_per_task: Annotated[float, typer.Option("--gpus-per-task", help="GPUs reserved per Ray task.",
                                                 min=0)] = 0.0,
    cpus_per_task: Annotated[float, typer.Option("--cpus-per-task", help="CPUs reserved per Ray task.",
                                                 min=0)] = 1.0,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip items whose output and result exist and verify (input sha256 in the metadata); "
                         "redo the others.")] = False,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    json_mode: Annotated[bool, typer.Option("--json", help="Accepted for uniformity: batch always writes JSON "
                                                           "Lines on stdout (one object per item).")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run one dnnkit command over many checkpoints: dnnkit batch INPUTS... -- COMMAND [ARGS]."""
    from dnnkit.batch.inputs import expand_inputs
    from dnnkit.batch.plan import build_items, resolve_command
    from dnnkit.cli.common import start
    from dnnkit.errors import InputError

    out = start(True, quiet, verbose)
    tail = ctx.meta.get(TAIL_KEY)
    root = ctx.find_root()
    if tail is None:
        raise InputError("missing `-- COMMAND [ARGS]`: which dnnkit command should run on each input?",
                         hint="e.g. dnnkit batch 'ckpts/*.safetensors' --out-dir out -- prune --ratio 0.5")
    check_batch_options(executor, resume, force, out_dir)
    root_args = ("--config", str(Path(root.params["config"]).resolve())) if root.params.get("config") else ()
    command = resolve_command(root.command, tail, root_args)
    specs = expand_inputs(inputs or [], manifest or [], stdin=sys.stdin)
    out_path = Path(out_dir) if out_dir is not None else None
    if executor == "ray":  # Ray workers do not share this working directory: hand them absolute paths
        from dnnkit.batch.inputs import absolute

        specs = [absolute(s) for s in specs]
        out_path = out_path.resolve() if out_path is not None else None
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise InputError(f"--out-dir {out_dir!r} is a file, not a folder")
    items = build_items(specs, command, root.command, out_path, template, force)
    if not (resume or force or dry_run or command.dry_run):
        refuse_existing_outputs(items)
    emit = json_lines_writer(out, verbose)
    if dry_run:
        from dnnkit.batch.runner import planned_lines

        for line in planned_lines(items):
            emit(line)
        out.info(f"dry run: {len(items)} items planned, nothing run or written")
        return
    from dnnkit.cli.app import click_command

    runner = make_executor(executor, jobs, threads_per_job, address, gpus_per_task, cpus_per_task, len(items),
                           click_command)
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        for item in items:
            if item.output is not None:
                Path(item.output).parent.mkdir(parents=True, exist_ok=True)
    from dnnkit.batch.runner import run_batch

    summary = run_batch(items, runner, emit=emit, resume=resume, save_records=not command.dry_run,
                        log=out.info if verbose else None, hash_workers=jobs or 4)
    if not quiet:
        _summary_table(summary, command.name)
    if summary.stopped:
        from dnnkit.cli.app import report_error

        report_error(*interrupted_message(summary))
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(3)


def _summary_table(summary: Any, command: str) -> None:
    """The per-item table and totals, on stderr."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stderr, soft_wrap=False, width=None if sys.stderr.isatty() else 140)
    table = Table(show_edge=False, header_style="bold", title=f"dnnkit batch -- {command}", title_justify="left")
    for col, justify in (("#", "right"), ("input", "left"), ("status", "left"), ("seconds", "right"),
                         ("output / error", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    rows = sorted(summary.results, key=lambda r: r["index"])
    if len(rows) > MAX_TABLE_ROWS:  # a long batch: show what needs attention, the JSON Lines have the rest
        rows = [r for r in rows if r["status"] not in ("ok", "skipped")][:MAX_TABLE_ROWS]
    for r in rows:
        detail = r["error"] if r.get("error") else (r.get("output") or "-")
        table.add_row(str(r["index"]), r["input"], r["status"], f"{r['seconds'] or 0:.2f}", str(detail))
    console.print(table, markup=False, highlight=False)
    counts = summary.counts()
    parts = [f"{counts[s]} {s}" for s in ("ok", "skipped", "failed", "interrupted") if counts.get(s)]
    if summary.not_run:
        parts.append(f"{summary.not_run} not run")
    console.print(f"{summary.total} items: {', '.join(parts) or 'none run'} in {summary.seconds:.1f} s "
                  f"({summary.executor})", markup=False, highlight=False)
