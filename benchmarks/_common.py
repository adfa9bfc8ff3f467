"""Helpers shared by benchmark scripts: machine facts and Markdown tables."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"


def machine_note(threads: int | None = None) -> str:
    """One line describing where and when the numbers were taken."""
    import torch

    return (f"{_dt.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} shared cores, "
            f"torch {torch.__version__}, {threads or torch.get_num_threads()} torch thread(s)")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_doc(name: str, text: str) -> Path:
    """Write docs/benchmarks/NAME.md."""
    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / f"{name}.md"
    path.write_text(text.rstrip() + "\n")
    return path
