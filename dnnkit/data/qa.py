"""Question/answer records in JSONL: one object per line with at least `question` and `answers`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dnnkit.data.registry import QAData
from dnnkit.errors import InputError

REQUIRED_FIELDS = ("question", "answers")


def load_jsonl(path: Path, required: tuple[str, ...] = REQUIRED_FIELDS,
               check: Callable[[dict[str, Any], str], None] | None = None) -> QAData:
    """Read and check every line; a broken line is an error that names its line number.

    `check(record, "PATH:LINE")` may validate (and normalise) each record further.
    """
    records = []
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{lineno}: not UTF-8 text") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting too deep
            raise InputError(f"{path}:{lineno}: not valid JSON ({type(exc).__name__})") from exc
        if not isinstance(rec, dict):
            raise InputError(f"{path}:{lineno}: each line must be a JSON object")
        missing = [f for f in required if f not in rec]
        if missing:
            raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        _check_types(rec, required, f"{path}:{lineno}")
        if check is not None:
            check(rec, f"{path}:{lineno}")
        records.append(rec)
    if not records:
        raise InputError(f"{path}: the dataset is empty")
    return QAData(str(path), records)


def _check_types(rec: dict[str, Any], required: tuple[str, ...], where: str) -> None:
    """`question` is a string and `answers` a string or a list of strings, when they are required."""
    if "question" in required and not isinstance(rec["question"], str):
        raise InputError(f"{where}: question must be a string")
    answers = rec.get("answers")
    if "answers" in required and not (isinstance(answers, str)
                                      or (isinstance(answers, list) and all(isinstance(a, str) for a in answers))):
        raise InputError(f"{where}: answers must be a string or a list of strings")
