"""The one shape of a probe (an analysis that returns a report): a `Config` with `check()`, and
`apply(loaded, cfg, ctx) -> ProbeResult`. A result is a typed report (`to_json()` is the command's
`--json` object) plus a writer for the files it saves (a report folder, a PNG, a probe file).
`dnnkit.runner.run_probe` runs every probe the same way for the CLI and the Python API.
"""

from __future__ import annotations

import abc
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


class Probe(abc.ABC):
    """Base of every probe: subclasses set `name` and `Config` and implement `apply`."""

    name: str = ""
    Config: type = object
    needs_model: bool = True

    def output_paths(self, cfg: Any, output: str) -> list[Path]:
        """Files beside `output` that saving also writes (checked before heavy work)."""
        return []

    def precheck(self, model: Any, cfg: Any) -> None:  # noqa: B027 - optional hook
        """Cheap checks that read the model's files (not the network), before it loads."""

    def input_paths(self, cfg: Any) -> list[str]:
        """Files besides MODEL that the probe reads (an output must never be one of them)."""
        return []

    def side_outputs(self, cfg: Any) -> list[Path]:
        """Files a real run writes whether or not `-o` is given (e.g. explain's `--save-maps`), checked
        before any loading; the probe writes them itself unless a dry run."""
        return []

    @abc.abstractmethod
    def apply(self, loaded: LoadedModel | None, cfg: Any, ctx: Context) -> ProbeResult:
        """Analyse `loaded` (None for probes that read no model) and return the report."""
