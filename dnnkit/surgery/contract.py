"""The one shape of a surgery: a `Config` whose `check()` gives the bad-input errors, and
`apply(loaded, cfg, ctx) -> Result`; where a surgery can work on weights alone,
`apply_weights(ref, cfg, ctx)` streams a bare file instead. The runner (`dnnkit.runner`) does the
rest, the same way for the CLI, `batch`, the benchmarks and the Python API.

The data spec travels in the Config (`cfg.data`), so one object describes the whole run (what a
checkpoint's recipe records and what `batch` replays); the runner's `data=` fills it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dnnkit.progress import NullProgress, ProgressReporter

if TYPE_CHECKING:
    from torch import nn

    from dnnkit.models.reference import ModelRef
    from dnnkit.models.registry import LoadedModel


class Config(Protocol):
    """A surgery's options: plain data, checked cheaply before any loading."""

    def check(self) -> None: ...


@dataclass
class Context:
    """What a surgery may use besides its config: progress, a warning sink, and the run's settings."""

    progress: ProgressReporter = field(default_factory=NullProgress)
    warn: Callable[[str], None] = lambda message: None
    dry_run: bool = False
    output: str | None = None
    argv: list[str] | None = None
    force: bool = False
    load_s: float | None = None  # seconds the runner spent loading the model (probes report it)


@dataclass
class Artifact:
    """A file written beside the output after the checkpoint (plots): `write(output) -> {name: path}`."""

    write: Callable[[str], dict[str, str]]
    paths: Callable[[str], list[Path]] = lambda output: []  # what it will write, for the up-front checks


@dataclass
class Result:
    """What a surgery hands back: the new module, the recipe step, the report (= the `--json` object),
    the metrics before/after (for `--require` and the record), and artifacts to write on save."""

    model: nn.Module | None
    step: dict[str, Any] | None
    report: dict[str, Any]
    loaded: LoadedModel | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    record_metrics: dict[str, Any] | None = None
    structural: bool = False
    sparse: set[str] | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    written: bool = False  # True when apply_weights already wrote the output (streamed)

    def save(self, path: str | Path, *, force: bool = False, argv: list[str] | None = None,
             max_shard_size: int | str | None = None) -> dict[str, Any]:
        """Write the new model with its provenance (atomic), then the artifacts; returns the record.
        `max_shard_size` ("2GB", or bytes) shards a Hugging Face folder output."""
        from dnnkit.runner import save_result

        return save_result(self, str(path), force=force, argv=argv, max_shard_size=max_shard_size)


class Surgery(abc.ABC):
    """Base of every surgery: subclasses set `name` and `Config` and implement `apply`."""

    name: str = ""
    Config: type = object
    structural: bool = False  # changes the architecture: outputs are dnnkit checkpoints only
    cpu_only: bool = False

    def precheck(self, ref: ModelRef | None, cfg: Any, arch: str | None, output: str | None) -> None:  # noqa: B027
        """Cheap checks that need the reference (not the network), before anything loads."""

    def streams(self, ref: ModelRef, cfg: Any, arch: str | None) -> bool:
        """Whether this run takes the weight-only path (`apply_weights`)."""
        return False

    def apply_weights(self, ref: ModelRef, cfg: Any, ctx: Context) -> Result:
        """The weight-only path (only called when `streams` says so; surgeries without one never stream)."""
        from dnnkit.errors import RuntimeFailure

        raise RuntimeFailure(f"{self.name} has no weight-only path")

    @abc.abstractmethod
    def apply(self, loaded: LoadedModel, cfg: Any, ctx: Context) -> Result:
        """Transform `loaded.model` (a fresh load or a copy) and describe what was done."""

    def artifact_paths(self, cfg: Any, output: str) -> list[Path]:
        """Files beside the output that the run will write (checked before heavy work)."""
        return []

    def finish(self, result: Result, output: str | None) -> None:  # noqa: B027
        """Fill report fields that depend on what was written (sizes, paths)."""
