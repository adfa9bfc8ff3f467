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
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict):
                raise InputError(f"{path}:{lineno}: each line must be a JSON object")
            missing = [f for f in required if f not in rec]
            if missing:
                raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            if check is not None:
                check(rec, f"{path}:{lineno}")
            records.append(rec)
    if not records:
        raise InputError(f"{path}: the dataset is empty")
    return QAData(str(path), records)
