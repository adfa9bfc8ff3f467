"""The `prune` pipeline: validate, allocate (data-free or rd, one-shot or iterative), fine-tune,
measure, write. Library code: returns a plain dict report, never prints."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.prune.allocate import DATA_FREE, METHODS, allocate
from dnnkit.surgery.prune.layers import PrunableLayer

WARN_SPARSITY = 0.995


@dataclass
class PruneConfig:
    """Every knob of one pruning run (CLI flags map one to one)."""

    ratio: float
    method: str = "lamp"
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    cap: float | None = None  # --max-layer-sparsity; rd and owl use 0.99 when not given
    data: str | None = None
    calib: int = 256
    seed: int = 0
    objective: str = "mean"
    levels: int = 101
    rd_curves: str = "exact"  # exact: every level measured; proxy: one per layer, reconstruction errors between
    rd_calib: int | None = None  # samples the rd curves' output distortion is measured on (None: all of calib)
    dp_units: int | None = None
    steps: int = 1
    refine: int = 0
    finetune_epochs: int = 0
    lr: float = 1e-3
    format: str = "dense"
    batch_size: int = 256
    eval_limit: int | None = None
    seq_len: int = 64
    criterion: str = "auto"  # magnitude | wanda | sparsegpt; auto: sparsegpt with --data, else magnitude
    pattern: str | None = None  # N:M
    dampening: float = 0.01
    block_size: int = 128

    @property
    def resolved_criterion(self) -> str:
        if self.criterion != "auto":
            return self.criterion
        return "sparsegpt" if self.data is not None else "magnitude"

    def criterion_spec(self) -> Any:
        """The CriterionSpec of this run."""
        from dnnkit.surgery.prune.criteria.apply import CriterionSpec
        from dnnkit.surgery.prune.criteria.pattern import parse_pattern

        return CriterionSpec(self.resolved_criterion, parse_pattern(self.pattern), self.dampening, self.block_size)

    @property
    def rd_cap(self) -> float:
        return 0.99 if self.cap is None else self.cap

    def check(self) -> None:
        """Cheap checks of the options alone (before any loading); InputError on bad input."""
        validate_options(self)

    def needs_network(self) -> bool:
        return (self.method in ("rd", "owl") or self.steps > 1 or self.finetune_epochs > 0
                or self.resolved_criterion != "magnitude")

    def params(self) -> dict[str, Any]:
        """The recipe step's params."""
        rd = self.method == "rd"
        return {"method": self.method, "ratio": self.ratio, "objective": self.objective if rd else None,
                "levels": self.levels if self.method == "rd" else None,
                "rd_curves": self.rd_curves if self.method == "rd" else None,
                "rd_calib": self.rd_calib if self.method == "rd" else None, "steps": self.steps,
                "refine": self.refine,
                "calib": self.calib if self.method == "rd" else None, "seed": self.seed, "data": self.data,
                "cap": self.rd_cap if self.method in ("rd", "owl") else self.cap,
                "finetune_epochs": self.finetune_epochs,
                "criterion": self.resolved_criterion, "pattern": self.pattern,
                "dampening": self.dampening if self.resolved_criterion == "sparsegpt" else None}


def validate_options(opts: PruneConfig) -> None:
    """Cheap checks of the options alone (before any loading)."""
    if not (isinstance(opts.ratio, float | int) and math.isfinite(opts.ratio) and 0 <= opts.ratio < 1):
        raise InputError(f"--ratio must be in [0, 1), got {opts.ratio}")
    if opts.method not in METHODS:
        raise InputError(f"unknown --method {opts.method!r}", hint=f"use one of {', '.join(METHODS)}")
    if opts.cap is not None and not (0 < opts.cap <= 1):
        raise InputError(f"--max-layer-sparsity must be in (0, 1], got {opts.cap}")
    if opts.levels < 2:
        raise InputError(f"--levels must be at least 2, got {opts.levels}")
    if opts.levels > 32767:
        raise InputError(f"--levels must be at most 32767, got {opts.levels}")
    if opts.dp_units is not None and opts.dp_units < 100:
        raise InputError(f"--dp-units must be at least 100 (or auto), got {opts.dp_units}")
    if opts.objective not in ("mean", "worst-case"):
        raise InputError(f"--objective must be mean or worst-case, got {opts.objective!r}")
    if opts.rd_curves not in ("exact", "proxy"):
        raise InputError(f"--rd-curves must be exact or proxy, got {opts.rd_curves!r}")
    if opts.rd_curves == "proxy" and opts.method != "rd":
        raise InputError("--rd-curves proxy is an option of the rd allocation", hint="add --layer-adaptive")
    if opts.rd_curves == "proxy" and opts.refine:
        raise InputError("--refine measures magnitude masks and cannot be combined with --rd-curves proxy")
    if opts.rd_calib is not None:
        if opts.method != "rd":
            raise InputError("--rd-calib is an option of the rd allocation", hint="add --layer-adaptive")
        if not 1 <= opts.rd_calib <= opts.calib:
            raise InputError(f"--rd-calib must be between 1 and --calib ({opts.calib}), got {opts.rd_calib}")
    if opts.format not in ("dense", "sparse"):
        raise InputError(f"--format must be dense or sparse, got {opts.format!r}")
    if opts.steps < 1 or opts.refine < 0 or opts.finetune_epochs < 0:
        raise InputError("--steps must be >= 1, --refine and --finetune-epochs >= 0")
    if opts.refine and opts.method != "rd":
        raise InputError("--refine corrects the rd allocation: use it with --method rd")
    _check_criterion(opts)


def _check_criterion(opts: PruneConfig) -> None:
    from dnnkit.surgery.prune.criteria import CALIBRATED, CRITERIA
    from dnnkit.surgery.prune.criteria.pattern import parse_pattern

    if opts.criterion not in (*CRITERIA, "auto"):
        raise InputError(f"unknown --criterion {opts.criterion!r}", hint=f"use one of {', '.join(CRITERIA)}")
    if opts.criterion in CALIBRATED and opts.data is None:
        raise InputError(f"--criterion {opts.criterion} needs calibration data: add --data (e.g. wiki or digits)")
    if opts.method == "owl" and opts.data is None:
        raise InputError("--method owl needs calibration data: add --data (e.g. wiki or digits)")
    if opts.refine and opts.resolved_criterion in CALIBRATED:
        raise InputError(f"--refine re-measures magnitude masks: use it with --criterion magnitude, "
                         f"not {opts.resolved_criterion}")
    if not (math.isfinite(opts.dampening) and 0 < opts.dampening < 10):
        raise InputError(f"--dampening must be in (0, 10), got {opts.dampening}")
    pattern = parse_pattern(opts.pattern)
    if pattern is None:
        return
    if opts.method != "uniform":
        raise InputError(f"--pattern {pattern} prunes every layer alike: it works with --method uniform, "
                         f"not {opts.method}")
    if abs(opts.ratio - pattern.sparsity) > 1e-9:
        raise InputError(f"--pattern {pattern} prunes {100 * pattern.sparsity:g} % of every layer; "
                         f"--ratio {opts.ratio} disagrees", hint=f"drop --ratio or pass --ratio {pattern.sparsity:g}")
    if opts.block_size % pattern.m:
        raise InputError(f"--pattern {pattern}: the SparseGPT block size {opts.block_size} is not a multiple of "
                         f"{pattern.m}")


def step_ratios(ratio: float, steps: int) -> list[float]:
    """s_j = 1 - (1-R)^(j/S): an equal fraction of the remainder per step; the last is R exactly."""
    return [1 - (1 - ratio) ** (j / steps) for j in range(1, steps)] + [ratio]


def layer_rows(layers: list[PrunableLayer], zeros: list[int], extra: dict[str, dict[str, Any]] | None = None,
               ) -> list[dict[str, Any]]:
    """The per-layer table rows."""
    rows = []
    for layer, z in zip(layers, zeros, strict=True):
        row = {"name": layer.name, "shape": list(layer.shape), "size": layer.n, "kept": layer.n - z,
               "sparsity": z / layer.n if layer.n else 0.0}
        row.update((extra or {}).get(layer.name, {}))
        rows.append(row)
    return rows


def sparsity_warnings(rows: list[dict[str, Any]]) -> list[str]:
    """A layer at or above 99.5 % is warned about (such layers stayed at chance after fine-tuning)."""
    return [f"layer {r['name']} is {100 * r['sparsity']:.2f} % sparse (>= 99.5 %): it may cut the signal"
            for r in rows if r["sparsity"] >= WARN_SPARSITY]


def prune_weights(source: Any, layers: list[PrunableLayer], opts: PruneConfig,
                  progress: ProgressReporter | None = None) -> tuple[list[int], dict[str, Any]]:
    """Data-free allocation over a WeightSource (tensor by tensor); returns zeros and a report."""
    progress = or_null(progress)
    if opts.method not in DATA_FREE:
        raise InputError(f"--method {opts.method} needs the network: pass --arch or a dnnkit/HF checkpoint")
    t0 = time.perf_counter()
    zeros = allocate(opts.method, layers, opts.ratio, source.get, opts.cap)
    return zeros, {"allocation_s": time.perf_counter() - t0}


def summary(layers: list[PrunableLayer], zeros: list[int], opts: PruneConfig) -> dict[str, Any]:
    """The common report fields."""
    total = sum(layer.n for layer in layers)
    pruned = sum(zeros)
    rows = layer_rows(layers, zeros)
    return {"method": opts.method, "ratio": opts.ratio, "target": round(opts.ratio * total), "achieved": pruned / total,
            "pruned": pruned, "kept": total - pruned, "total": total, "layers": rows,
            "warnings": sparsity_warnings(rows)}


def dir_bytes(path: Path) -> int:
    """Size of a file, or of every file under a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def is_sparse_output(out: str | None) -> bool:
    return out is not None and out.endswith(".safetensors")
