"""Turn what a user passes to `dnnkit batch` into a list of checked model references.

INPUTS are paths, globs, `-` (references read from stdin) and `--manifest FILE` (one reference per
line, or JSON Lines with per-item options). Every reference is checked with the registry's parser
before any work starts, so a typo is one `error:` line (exit 2), not a failed item.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dnnkit.errors import DnnkitError, InputError
from dnnkit.models.reference import ACCEPTED_FORMS, parse_reference

GLOB_CHARS = ("*", "?", "[")
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".pt", ".pth", ".bin")
MANIFEST_KEYS = {"input", "args", "options", "output"}


@dataclass(frozen=True)
class InputSpec:
    """One model to process: its reference, extra subcommand arguments, an optional explicit output."""

    reference: str
    args: tuple[str, ...] = ()
    output: str | None = None
    origin: str = ""
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def expand_inputs(inputs: Iterable[str], manifests: Iterable[str] = (), stdin: TextIO | None = None) -> list[InputSpec]:
    """Expand INPUTS (paths, globs, `-`) and manifests into checked input specs, in the order given."""
    specs: list[InputSpec] = []
    stdin_used = False
    for raw in inputs:
        if raw == "-":
            if stdin_used:
                raise InputError("`-` (stdin) was given twice")
            stdin_used = True
            if stdin is None:
                raise InputError("`-` reads references from stdin, but there is no stdin")
            specs.extend(parse_reference_lines(stdin.read().splitlines(), where="stdin", base=Path(".")))
        else:
            specs.extend(_expand_one(raw))
    for manifest in manifests:
        specs.extend(read_manifest(manifest))
    if not specs:
        raise InputError("no inputs matched", hint="pass checkpoint paths or globs, `-` for stdin, or --manifest FILE")
    return specs


def _expand_one(raw: str) -> list[InputSpec]:
    """A path, a directory of checkpoints, a glob, or a registry reference such as zoo:NAME."""
    if any(c in raw for c in GLOB_CHARS) and not Path(raw).exists():
        matches = sorted(glob.glob(raw, recursive=True))
        if not matches:
            raise InputError(f"no inputs matched {raw!r}", hint="check the pattern (quote it so the shell leaves it "
                             "to dnnkit, or let the shell expand it)")
        out: list[InputSpec] = []
        for m in matches:
            out.extend(_expand_one(m))
        return out
    path = Path(raw)
    if path.is_dir() and not _is_model_folder(path):
        entries = folder_entries(path)
        if not entries:
            raise InputError(f"no inputs matched in folder {raw!r}",
                             hint=f"a folder is either a model folder (config.json + weights) or holds "
                                  f"{', '.join(WEIGHT_SUFFIXES)} files or model folders; for checkpoints "
                                  f"deeper down, use a glob such as '{raw.rstrip('/')}/**/*.safetensors'")
        return [_checked(str(e), origin=raw) for e in entries]
    return [_checked(raw, origin=raw)]


def folder_entries(folder: Path) -> list[Path]:
    """The models directly inside a folder of checkpoints, sorted by name: every weight file and every
    model subfolder (Hugging Face or timm: config.json + weights). Hidden entries (the temporary files
    of dnnkit's atomic writers among them), result records and other files are left out."""
    out = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        is_weights = entry.is_file() and entry.suffix.lower() in WEIGHT_SUFFIXES
        if is_weights or (entry.is_dir() and is_model_subfolder(entry)):
            out.append(entry)
    return sorted(out, key=lambda p: p.name)


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "model.safetensors.index.json").is_file()


def is_model_subfolder(path: Path) -> bool:
    """A Hugging Face or timm model folder: config.json plus weights (what `hf_weight_files` reads:
    model.safetensors, a shard index, pytorch_model*.bin, or other *.safetensors files)."""
    if not (path / "config.json").is_file():
        return False
    if (path / "model.safetensors.index.json").is_file() or (path / "pytorch_model.bin.index.json").is_file():
        return True  # a broken index still makes a model: it becomes a failed item, not a silent skip
    return any(f.is_file() and not f.name.startswith(".") and
               (f.suffix.lower() == ".safetensors" or (f.name.startswith("pytorch_model") and f.suffix == ".bin"))
               for f in path.iterdir())


def _checked(reference: str, origin: str, args: tuple[str, ...] = (), output: str | None = None,
             options: dict[str, Any] | None = None) -> InputSpec:
    try:
        parse_reference(reference)
    except DnnkitError as exc:
        raise InputError(f"{origin}: {exc.message}" if origin and origin != reference else exc.message,
                         hint=exc.hint) from exc
    return InputSpec(reference, args, output, origin, dict(options or {}))


def absolute(spec: InputSpec) -> InputSpec:
    """The same spec with a local path made absolute (for workers that run in another directory)."""
    if ":" in spec.reference.split("/")[0] or not Path(spec.reference).exists():
        return spec
    return InputSpec(str(Path(spec.reference).resolve()), spec.args, spec.output, spec.origin, spec.options)


def read_manifest(path: str) -> list[InputSpec]:
    """Read a manifest: one reference per line, or JSON objects `{"input", "args"|"options", "output"}`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read --manifest {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"--manifest {path} is not UTF-8 text") from exc
    return parse_reference_lines(text.splitlines(), where=path, base=Path(path).parent)


def parse_reference_lines(lines: Iterable[str], where: str, base: Path) -> list[InputSpec]:
    """Parse manifest or stdin lines; relative paths are taken relative to `base` (the manifest's folder)."""
    specs: list[InputSpec] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        origin = f"{where} line {number}"
        if text.startswith("{"):
            specs.append(_json_line(text, origin, base))
        else:
            specs.append(_reference_line(text, origin, base))
    return specs


def _rebase(reference: str, base: Path) -> str:
    """A relative path in a manifest is relative to the manifest's folder; prefixed references stay."""
    if ":" in reference.split("/")[0] or Path(reference).is_absolute() or base == Path("."):
        return reference
    return str(base / reference)


def _reference_line(text: str, origin: str, base: Path) -> InputSpec:
    reference = _rebase(text, base)
    try:
        parse_reference(reference)
    except DnnkitError as exc:
        raise InputError(f"{origin} is not a model reference: {text!r} ({exc.message})",
                         hint=f"one reference per line ({ACCEPTED_FORMS}), or a JSON object "
                              '{"input": ..., "args": [...], "output": ...}') from exc
    return InputSpec(reference, (), None, origin)


def _json_line(text: str, origin: str, base: Path) -> InputSpec:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{origin} is not valid JSON ({exc.msg})") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("input"), str):
        raise InputError(f"{origin}: a JSON line needs an \"input\" string",
                         hint='e.g. {"input": "ckpt/a.safetensors", "args": ["--ratio", "0.7"]}')
    unknown = sorted(set(obj) - MANIFEST_KEYS)
    if unknown:
        raise InputError(f"{origin}: unknown key {unknown[0]!r}", hint=f"keys: {', '.join(sorted(MANIFEST_KEYS))}")
    args = obj.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        raise InputError(f"{origin}: \"args\" must be a list of strings")
    options = obj.get("options", {})
    if not isinstance(options, dict):
        raise InputError(f"{origin}: \"options\" must be an object of option names to values")
    output = obj.get("output")
    if output is not None and (not isinstance(output, str) or not output):
        raise InputError(f"{origin}: \"output\" must be a non-empty path string")
    all_args = tuple(str(a) for a in args) + options_to_args(options, origin)
    reference = _rebase(obj["input"], base)
    try:
        parse_reference(reference)
    except DnnkitError as exc:
        raise InputError(f"{origin} is not a model reference: {obj['input']!r} ({exc.message})",
                         hint=exc.hint) from exc
    return InputSpec(reference, all_args, output, origin, options)


def options_to_args(options: dict[str, Any], origin: str = "") -> tuple[str, ...]:
    """{"ratio": 0.7, "layer_adaptive": true, "include": ["a", "b"]} -> --ratio 0.7 --layer-adaptive --include a ..."""
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).lstrip("-").replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for v in value:
                out.extend([flag, _scalar(v, origin, key)])
        else:
            out.extend([flag, _scalar(value, origin, key)])
    return tuple(out)


def _scalar(value: Any, origin: str, key: str) -> str:
    if isinstance(value, (dict, list)):
        raise InputError(f"{origin}: option {key!r} must be a string, number or boolean")
    return str(value)
