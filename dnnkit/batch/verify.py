"""What `--resume` trusts: an output that exists, reads back, and was made from this very input.

A checkpoint written by a dnnkit command records `source.sha256` of its input in its metadata; a
JSON report written by batch records the same field. An item is skipped on resume only when its
output reads back, that sha256 equals the input's sha256 now, and its saved result (the report, or
the `<output>.result.json` beside a checkpoint) holds a successful run of the same command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnkit import __version__
from dnnkit.batch.plan import BatchItem
from dnnkit.errors import DnnkitError
from dnnkit.models.atomic import atomic_file

RESULT_SUFFIX = ".result.json"
RECORD_KIND = "dnnkit-batch-result"


def input_sha256(reference: str) -> str | None:
    """sha256 of a reference's weight files, computed as the model registry does (None when it has no files)."""
    from dnnkit.models.registry import files_sha256, source_files

    files = source_files(reference)
    return files_sha256(files) if files else None


def result_path(item: BatchItem) -> Path | None:
    """Where an item's result record lives: the report itself, or `<checkpoint>.result.json`."""
    if item.output is None:
        return None
    return Path(item.output) if item.report else Path(item.output + RESULT_SUFFIX)


def comparable_argv(argv: list[str]) -> list[str]:
    """The argv without the flags that do not change the result (--force, --json)."""
    return [a for a in argv if a not in ("--force", "--json")]


@dataclass
class Verdict:
    """Resume's decision for one item: skip it (with its saved result) or run it, and why."""

    skip: bool
    reason: str
    saved: dict[str, Any] | None = None


def verify_item(item: BatchItem) -> Verdict:
    """Decide whether a finished output of `item` can be trusted and skipped."""
    if item.output is None:
        return Verdict(False, "no output to resume from")
    out = Path(item.output)
    if not out.exists():
        return Verdict(False, "no output yet")
    record_file = result_path(item)
    assert record_file is not None
    saved = _read_json(record_file)
    if saved is None or saved.get("kind") != RECORD_KIND:
        return Verdict(False, f"no readable result record at {record_file}")
    if saved.get("status") != "ok" or comparable_argv(saved.get("argv") or []) != comparable_argv(item.argv):
        return Verdict(False, "the saved result is from another command line or did not succeed")
    try:
        sha_now = input_sha256(item.reference)
    except (DnnkitError, OSError) as exc:
        return Verdict(False, f"cannot hash the input ({exc})")
    if sha_now is None:
        return Verdict(False, "the input has no weight files to check against")
    recorded = (saved.get("source") or {}).get("sha256") if item.report else _checkpoint_source_sha(out)
    if recorded != sha_now:
        return Verdict(False, "the output was made from another version of the input (sha256 differs)")
    return Verdict(True, "verified", saved)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _checkpoint_source_sha(out: Path) -> str | None:
    """`source.sha256` from a written checkpoint (a safetensors file, or a Hugging Face folder)."""
    from dnnkit.models.safetensors_io import read_header

    try:
        if out.is_dir():
            files = sorted(out.glob("*.safetensors"))
            record = _read_json(out / "dnnkit.json")
            for f in files:
                read_header(f)  # every shard must read back
            if record is None and files:
                record = read_header(files[0]).dnnkit_record()
        else:
            record = read_header(out).dnnkit_record()
    except (DnnkitError, OSError):
        return None
    return ((record or {}).get("source") or {}).get("sha256")


def result_record(item: BatchItem, result: dict[str, Any], sha256: str | None) -> dict[str, Any]:
    """The saved form of one finished item (what resume reads back)."""
    return {"kind": RECORD_KIND, "version": __version__, "input": item.reference, "output": item.output,
            "argv": item.argv, "status": result["status"], "metrics": result.get("metrics"),
            "seconds": result.get("seconds"), "source": {"reference": item.reference, "sha256": sha256}}


def save_result(item: BatchItem, result: dict[str, Any], sha256: str | None) -> None:
    """Write an item's result record atomically (nothing half-written on Ctrl-C)."""
    path = result_path(item)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result_record(item, result, sha256), indent=1, allow_nan=False, default=str) + "\n"
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
