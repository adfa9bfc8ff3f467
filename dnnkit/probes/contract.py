"""The one shape of a probe (an analysis that returns a report): a `Config` with `check()`, and
`apply(loaded, cfg, ctx) -> ProbeResult`. A result is a typed report (`to_json()` is the command's
`--json` object) plus a writer for the files it saves (a report folder, a PNG, a probe file).
`dnnkit.runner.run_probe` runs every probe the same way for the CLI and the Python API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnnkit.models.registry import LoadedModel
    from dnnkit.surgery.contract import Context


@dataclass
class ProbeResult:
    """A probe's report and how to write its outputs (`writer(path)`, atomic, may add report fields)."""

    report: dict[str, Any]
    writer: Callable[[str], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # in-memory results for the Python API (arrays...)

    def to_json(self) -> dict[str, Any]:
        """The report as strict JSON values (NaN/Inf -> None, tensors -> lists): the `--json` object."""
        import json

        from dnnkit.jsonsafe import to_json

        return json.loads(to_json(self.report))

    def save(self, path: str | Path, *, force: bool = False) -> str:
        """Write the outputs at `path` (an existing one only with `force`)."""
        from dnnkit.errors import InputError
        from dnnkit.models.atomic import check_output_path

        if self.writer is None:
            raise InputError("this probe writes no files")
        check_output_path(path, force)
        self.writer(str(path))
        self.report["output"] = str(path)
        return str(path)


class Probe:
    """Base of every probe: subclasses set `name` and `Config` and implement `apply`."""

    name: str = ""
    Config: type = object
    needs_model: bool = True

    def output_paths(self, cfg: Any, output: str) -> list[Path]:
        """Files beside `output` that saving also writes (checked before heavy work)."""
        return []

    def apply(self, loaded: LoadedModel | None, cfg: Any, ctx: Context) -> ProbeResult:
        raise NotImplementedError
