"""The whole `bcosify` job as a library call: check, convert (with the equivalence check), fine-tune,
measure (accuracy per epoch, completeness, grid pointing game) and the recipe step to save."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.nn.bcos import BcosClassifier
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.bcos.convert import BcosOptions, ConversionPlan, LayerChange, convert
from dnnkit.surgery.bcos.finetune import FinetuneResult, finetune


@dataclass
class BcosifyConfig:
    """Options of one bcosify run (CLI names)."""

    b: float = 2.0
    b_warmup: int = 0
    encoding: str = "exact"
    mean: list[float] | None = None
    std: list[float] | None = None
    epochs: int = 10
    lr: float = 3e-3  # docs/benchmarks/bcosify-sweep.md: best mean accuracy and pointing on both zoo CNNs
    batch_size: int = 64
    augment: str = "shift"
    keep_maxpool: bool = False
    gap_reorder: bool = True
    seed: int = 0
    grids: int = 250
    train_limit: int | None = None
    logit_scale: str | float = "auto"
    data: str | None = None  # default: the model's own dataset
    plots: bool = False  # the explanation and comparison PNGs beside the output on save

    def check(self) -> None:
        """Cheap checks of the options alone (before any loading); InputError on bad input."""
        check_config(self)


@dataclass
class BcosifyResult:
    """The converted model and everything the report shows."""

    model: BcosClassifier
    plan: ConversionPlan
    changes: list[LayerChange]
    equivalence_max_abs: float
    normalisation_source: str
    accuracy_original: float | None = None
    accuracy_epoch0: float | None = None
    finetune: FinetuneResult = field(default_factory=FinetuneResult)
    completeness: dict[str, float] | None = None
    pointing: dict[str, float] | None = None

    def step(self, cfg: BcosifyConfig, opts: BcosOptions) -> dict[str, Any]:
        """The recipe step (spec section 4)."""
        params = {"b": cfg.b, "b_warmup": cfg.b_warmup, "encoding": opts.encoding, "mean": opts.mean, "std": opts.std,
                  "logit_bias": self.model.logit_bias, "logit_scale": self.model.logit_scale,
                  "keep_maxpool": cfg.keep_maxpool, "gap_reorder": cfg.gap_reorder, "epochs": cfg.epochs,
                  "lr": cfg.lr, "seed": cfg.seed,
                  **self.plan.params()}
        return {"op": "bcosify", "params": params,
                "layers": {c.name: {"from": c.from_type, "to": c.to_type} for c in self.changes}}


def check_config(cfg: BcosifyConfig) -> None:
    """Cheap option checks (exit 2 before any work)."""
    if not cfg.b >= 1 or not math.isfinite(cfg.b):
        raise InputError(f"--b must be >= 1, got {cfg.b}")
    if cfg.b_warmup < 0:
        raise InputError(f"--b-warmup must be >= 0, got {cfg.b_warmup}")
    if cfg.encoding not in ("exact", "paper"):
        raise InputError(f"--encoding must be exact or paper, got {cfg.encoding!r}")
    if cfg.augment not in ("shift", "none"):
        raise InputError(f"--augment must be shift or none, got {cfg.augment!r}")
    if cfg.epochs < 0:
        raise InputError("--epochs must be >= 0")
    if cfg.std is not None and any(s <= 0 for s in cfg.std):
        raise InputError("--std values must be positive")
    if cfg.logit_scale != "auto":
        try:
            ok = float(cfg.logit_scale) > 0 and math.isfinite(float(cfg.logit_scale))
        except ValueError:
            ok = False
        if not ok:
            raise InputError(f"--logit-scale must be auto or a positive number, got {cfg.logit_scale!r}")


def model_normalisation(arch: dict[str, Any] | None, model: nn.Module, channels: int) -> tuple[list[float] | None,
                                                                                               list[float] | None, str]:
    """(mean, std, source) of the model's input normalisation from its record; (None, None, why) if unknown."""
    family = (arch or {}).get("family")
    if family == "zoo":
        return [0.0] * channels, [1.0] * channels, "zoo model (raw pixels in [0, 1], no normalisation)"
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if family == "timm" and mean and std and len(mean) == channels and len(std) == channels:
        return list(mean), list(std), "timm pretrained configuration"
    return None, None, "unknown"


def completeness_figures(model: BcosClassifier, x: torch.Tensor) -> dict[str, float]:
    """Median and max completeness error over the inputs (predicted class)."""
    from dnnkit.probes.explain.dynamic import explain_dynamic

    errs = []
    for i in range(0, len(x), 32):
        errs += explain_dynamic(model, x[i:i + 32]).completeness_error.tolist()
    return {"median": float(statistics.median(errs)), "max": float(max(errs)), "inputs": len(errs)}


def fixed_input_size(plan: ConversionPlan, model: nn.Module) -> bool:
    """True when the head needs the native input size (flatten-FC head or ViT)."""
    return plan.gap_pool is None


def bcosify(model: nn.Module, arch: dict[str, Any] | None, train: tuple[torch.Tensor, torch.Tensor],
            test: tuple[torch.Tensor, torch.Tensor], cfg: BcosifyConfig, *, dry_run: bool = False,
            progress: ProgressReporter | None = None, warn: Any = None) -> tuple[BcosifyResult, BcosOptions]:
    """Convert, check, fine-tune and measure. `train`/`test` are (x in [0, 1], y)."""
    from dnnkit.probes.explain.dynamic import check_pixels
    from dnnkit.train import accuracy

    progress = or_null(progress)
    check_config(cfg)
    xtr, ytr = train
    xte, yte = test
    check_pixels(xte[:256], "--data")
    channels = int(xte.shape[1])
    mean, std, source = cfg.mean, cfg.std, "--mean/--std"
    if mean is None or std is None:
        m2, s2, source = model_normalisation(arch, model, channels)
        mean, std = mean or m2, std or s2
        if m2 is None and warn is not None:
            warn("the model's input normalisation is unknown: using mean 0, std 1 (pass --mean/--std)")
    opts = BcosOptions(b=cfg.b, encoding=cfg.encoding, mean=mean, std=std, keep_maxpool=cfg.keep_maxpool,
                       gap_reorder=cfg.gap_reorder, logit_scale=cfg.logit_scale)
    gen = torch.Generator().manual_seed(cfg.seed)
    check_idx = torch.randperm(len(xte), generator=gen)[:64]
    try:
        converted, plan, changes, delta = convert(model, tuple(xte.shape[1:]), opts, xte[check_idx])
    except RuntimeError as exc:
        if "shape" in str(exc) or "size" in str(exc):
            raise InputError(f"the model cannot take {'x'.join(map(str, xte.shape[1:]))} inputs "
                             f"({str(exc).splitlines()[0][:120]})") from exc
        raise
    if plan.in_channels != channels:
        raise InputError(f"--data has {channels} channels but the first layer {plan.stem} takes {plan.in_channels}")
    result = BcosifyResult(converted, plan, changes, float(delta or 0.0), source)
    progress.log(f"bcosify: converted {len(changes)} modules; equivalence max |delta logit| {delta:.3g}")
    if dry_run:
        return result, opts
    result.accuracy_original = accuracy(_normalised(model, opts), xte, yte)
    result.accuracy_epoch0 = accuracy(converted, xte, yte)
    if cfg.train_limit is not None and cfg.train_limit < len(xtr):
        keep = torch.randperm(len(xtr), generator=gen)[:cfg.train_limit]
        xtr, ytr = xtr[keep], ytr[keep]
    start = time.perf_counter()
    result.finetune = finetune(converted, xtr, ytr, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                               b=cfg.b, b_warmup=cfg.b_warmup, augment=cfg.augment, seed=cfg.seed,
                               eval_fn=lambda m: accuracy(m, xte, yte), progress=progress)
    result.finetune.seconds = time.perf_counter() - start
    converted.eval()
    result.completeness = completeness_figures(converted, xte[check_idx])
    if cfg.grids > 0:
        from dnnkit.probes.explain.pointing import grid_pointing_game

        window = tuple(xte.shape[-2:]) if fixed_input_size(plan, converted) else None
        try:
            result.pointing = grid_pointing_game(converted, xte, yte, n_grids=cfg.grids, seed=0, fixed_input=window)
        except ValueError as exc:
            progress.log(f"bcosify: grid pointing game skipped ({exc})")
    return result, opts


class _Normalised(nn.Module):
    """The original model fed (x - mu) / sigma: the function the conversion keeps."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mu", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("sd", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.model((x - self.mu.to(x.dtype)) / self.sd.to(x.dtype))
        return out.logits if hasattr(out, "logits") else out


def _normalised(model: nn.Module, opts: BcosOptions) -> nn.Module:
    return _Normalised(model, opts.mean, opts.std).eval()


def original_on_pixels(model: nn.Module, mean: list[float], std: list[float]) -> nn.Module:
    """The original model as a function of pixels in [0, 1] (for input x gradient comparisons)."""
    return _Normalised(model, mean, std).eval()
