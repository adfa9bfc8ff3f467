"""The batch plan: which dnnkit subcommand runs, on which inputs, with which argv and output path.

The subcommand is any registered per-model dnnkit command. One that writes (it has `-o/--output`)
gets `-o OUT_DIR/<template>`; one that only reports gets its JSON result saved by batch as
`OUT_DIR/<template>` (default `{stem}.json`) when `--out-dir` is given. Every item's argv is parsed
by the subcommand's own Click parser here, so a bad option fails before any work (exit 2).
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnkit.batch import clickcompat as click
from dnnkit.batch.inputs import InputSpec
from dnnkit.errors import DnnkitError, InputError
from dnnkit.models.reference import parse_reference

TEMPLATE_FIELDS = ("stem", "name", "parent", "index", "command")
WRITER_TEMPLATE = "{stem}.safetensors"
FOLDER_WRITER_TEMPLATE = "{stem}"
REPORT_TEMPLATE = "{stem}.json"
NOT_PER_MODEL = {"batch"}
# Writing commands that write a Hugging Face / timm folder input back as a folder when -o names a folder
# (save_model without structural changes), and the parsed options under which they do. The others turn
# every input into a dnnkit .safetensors checkpoint.
FOLDER_WRITERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "prune": lambda params: params.get("fmt", "dense") != "sparse",
}


@dataclass(frozen=True)
class CommandSpec:
    """The subcommand after `--`: its name, the shared arguments, and whether it writes checkpoints."""

    name: str
    args: tuple[str, ...]
    writes: bool
    dry_run: bool
    root_args: tuple[str, ...] = ()


@dataclass
class BatchItem:
    """One unit of work: the dnnkit argv to run in a worker, and where its output goes."""

    index: int
    reference: str
    argv: list[str]
    output: str | None
    writes: bool
    report: bool
    origin: str = ""
    force: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def with_force(self) -> BatchItem:
        """The same item, told to replace an existing output (resume redoing an unverified one)."""
        if self.force or not self.writes:
            return self
        argv = list(self.argv)
        argv.insert(len(argv) - 1, "--force")  # before the trailing --json
        return BatchItem(self.index, self.reference, argv, self.output, self.writes, self.report, self.origin,
                         True, dict(self.extra))


def command_names(root: click.Group) -> list[str]:
    """Per-model commands a batch can run."""
    ctx = click.Context(root)
    names = []
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is not None and _is_per_model(cmd) and name not in NOT_PER_MODEL:
            names.append(name)
    return names


def _is_per_model(cmd: click.Command) -> bool:
    return not isinstance(cmd, click.Group) and any(isinstance(p, click.Argument) for p in cmd.params)


def _option_names(cmd: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in cmd.params if isinstance(p, click.Option) and p.name}


def resolve_command(root: click.Group, tail: list[str], root_args: tuple[str, ...] = ()) -> CommandSpec:
    """Check the `-- COMMAND [ARGS]` part: a known per-model command that can print --json."""
    if not tail:
        raise InputError("no command after `--`", hint="usage: dnnkit batch INPUTS... -- COMMAND [ARGS]; "
                         f"commands: {', '.join(command_names(root))}")
    name, args = tail[0], tuple(tail[1:])
    ctx = click.Context(root)
    cmd = root.get_command(ctx, name)
    if cmd is None or name in NOT_PER_MODEL or not _is_per_model(cmd):
        what = "unknown command" if cmd is None else "not a per-model command:"
        raise InputError(f"{what} {name!r} after `--`",
                         hint=f"batch runs one of: {', '.join(command_names(root))}")
    if any(a in ("-h", "--help") for a in args):
        raise InputError("--help after `--` would not run anything", hint=f"see `dnnkit {name} --help`")
    options = _option_names(cmd)
    if "json_mode" not in options:
        raise InputError(f"`dnnkit {name}` has no --json output, so batch cannot collect its results")
    writes = "output" in options
    for flag in ("-o", "--output"):
        if any(a == flag or a.startswith(flag + "=") or (flag == "-o" and a.startswith("-o") and len(a) > 2)
               for a in args):
            raise InputError(f"do not pass {flag} after `--`: batch names each output",
                             hint="use --out-dir DIR and --template TEMPLATE (default "
                                  f"{WRITER_TEMPLATE if writes else REPORT_TEMPLATE})")
    return CommandSpec(name, args, writes, dry_run="--dry-run" in args, root_args=root_args)


def input_stem(reference: str) -> tuple[str, str]:
    """(stem, parent) of a reference: file name without suffix, folder name, or the name after `zoo:`."""
    for prefix in ("zoo:", "timm:", "hf:"):
        if reference.startswith(prefix):
            name = reference[len(prefix):]
            return name.rsplit("/", 1)[-1].replace("?", "_") or prefix.rstrip(":"), prefix.rstrip(":")
    path = Path(reference)
    if path.is_dir():
        resolved = path.resolve()
        return resolved.name or "model", resolved.parent.name
    return path.stem, path.resolve().parent.name


def is_folder_reference(reference: str) -> bool:
    """A local folder (a Hugging Face or timm model folder), not a prefixed reference such as zoo:NAME."""
    return not any(reference.startswith(p) for p in ("zoo:", "timm:", "hf:")) and Path(reference).is_dir()


def default_template(command: CommandSpec, reference: str, params: Callable[[], dict[str, Any]]) -> str:
    """The output name of an item when no --template is given: a report is `{stem}.json`; a checkpoint is
    `{stem}.safetensors`, except that a folder input of a command that writes folders stays a folder (`{stem}`).
    `params()` gives the item's parsed options (called only for a folder input of such a command)."""
    if not command.writes:
        return REPORT_TEMPLATE
    folder_ok = FOLDER_WRITERS.get(command.name)
    if folder_ok is not None and is_folder_reference(reference) and folder_ok(params()):
        return FOLDER_WRITER_TEMPLATE
    return WRITER_TEMPLATE


def check_template(template: str) -> None:
    """A template names only known fields, without attribute or index access."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"--template {template!r} is not a valid template ({exc})") from exc
    fields = [f for _, f, _, _ in parsed if f is not None]
    if not fields:
        raise InputError(f"--template {template!r} names no field, so every output would collide",
                         hint=f"use {{stem}}; fields: {', '.join(TEMPLATE_FIELDS)}")
    for f in fields:
        if f not in TEMPLATE_FIELDS:
            raise InputError(f"--template {template!r}: unknown field {{{f}}}",
                             hint=f"fields: {', '.join('{' + n + '}' for n in TEMPLATE_FIELDS)}")


def render_output(template: str, out_dir: Path, spec: InputSpec, index: int, command: str) -> Path:
    """OUT_DIR / template filled from the input; it must stay inside OUT_DIR."""
    stem, parent = input_stem(spec.reference)
    fields = {"stem": stem, "name": Path(spec.reference).name or stem, "parent": parent, "index": index,
              "command": command}
    try:
        rel = spec.output if spec.output is not None else template.format(**fields)
    except (ValueError, IndexError) as exc:
        raise InputError(f"--template {template!r}: {exc}") from exc
    path = Path(rel) if Path(rel).is_absolute() else out_dir / rel
    root = out_dir.resolve()
    resolved = Path(os.path.normpath(path.resolve()))
    if spec.output is None and root != resolved and root not in resolved.parents:
        raise InputError(f"--template {template!r} puts {spec.reference}'s output outside --out-dir: {path}")
    return path


def build_items(specs: list[InputSpec], command: CommandSpec, root: click.Group, out_dir: Path | None,
                template: str | None, force: bool) -> list[BatchItem]:
    """Build and parse-check every item's argv; check outputs for collisions and for clashing with inputs."""
    if command.writes and out_dir is None and not command.dry_run:
        raise InputError(f"`dnnkit {command.name}` writes a checkpoint per input: pass --out-dir DIR",
                         hint=f"outputs are named by --template (default {WRITER_TEMPLATE})")
    if template is not None and out_dir is None:
        raise InputError("--template needs --out-dir")
    if template is not None:
        check_template(template)
    cmd = root.get_command(click.Context(root), command.name)
    assert cmd is not None
    items: list[BatchItem] = []
    seen: dict[str, str] = {}
    for index, spec in enumerate(specs, 1):
        output: Path | None = None
        if out_dir is not None and not (command.dry_run and not command.writes):
            item_template = template
            if item_template is None:
                base_argv = [command.name, spec.reference, *command.args, *spec.args]
                item_template = default_template(command, spec.reference,
                                                 lambda argv=base_argv, spec=spec: _parse_check(cmd, argv, spec))
            output = render_output(item_template, out_dir, spec, index, command.name)
            key = os.path.normpath(str(output.resolve()))
            if key in seen:
                raise InputError(f"outputs collide: {seen[key]} and {spec.reference} both map to {output}",
                                 hint="use a template with {parent} or {index}, e.g. --template "
                                      "'{parent}-{stem}.safetensors'")
            seen[key] = spec.reference
            _check_not_input(output, spec.reference)
        writes = command.writes and output is not None
        argv = [*command.root_args, command.name, spec.reference, *command.args, *spec.args]
        if writes:
            argv += ["-o", str(output)]
            if force:
                argv.append("--force")
        argv.append("--json")
        _parse_check(cmd, argv[len(command.root_args):], spec)
        items.append(BatchItem(index, spec.reference, argv, str(output) if output is not None else None,
                               writes=writes, report=output is not None and not writes, origin=spec.origin,
                               force=force and writes))
    return items


def _check_not_input(output: Path, reference: str) -> None:
    try:
        ref = parse_reference(reference)
    except DnnkitError:
        return
    if ref.is_file_based and os.path.normpath(output.resolve()) == os.path.normpath(ref.path.resolve()):
        raise InputError(f"output {output} is the input {reference}; dnnkit never modifies its input",
                         hint="choose another --out-dir or --template")


def _parse_check(cmd: click.Command, argv: list[str], spec: InputSpec) -> dict[str, Any]:
    """Parse the item's arguments with the subcommand's parser (types, unknown options), running nothing;
    return the parsed parameters."""
    try:
        with cmd.make_context(argv[0], argv[1:], resilient_parsing=False) as ctx:
            return dict(ctx.params)
    except click.UsageError as exc:
        where = f" ({spec.origin})" if spec.origin and spec.origin != spec.reference else ""
        raise InputError(f"`dnnkit {' '.join(argv)}`{where}: {exc.format_message()}",
                         hint=f"see `dnnkit {argv[0]} --help`") from exc
