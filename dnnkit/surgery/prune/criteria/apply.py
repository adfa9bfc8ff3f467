"""A criterion applied to a built network: calibrated criteria through sequential calibration,
magnitude (with or without `--pattern`) directly; returns each layer's keep-mask and figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dnnkit.metrics import Inputs
from dnnkit.progress import ProgressReporter
from dnnkit.surgery.prune.criteria.pattern import Pattern, check_columns, group_mask
from dnnkit.surgery.prune.criteria.sparsegpt import BLOCK_SIZE, DAMPENING, reconstruction_error, sparsegpt_prune
from dnnkit.surgery.prune.criteria.stats import InputStats
from dnnkit.surgery.prune.criteria.view import LayerView, layer_view
from dnnkit.surgery.prune.criteria.wanda import wanda_prune
from dnnkit.surgery.prune.masks import keep_mask


@dataclass
class CriterionSpec:
    """Which weights go inside a layer: criterion name, optional N:M pattern, SparseGPT knobs."""

    name: str = "magnitude"
    pattern: Pattern | None = None
    dampening: float = DAMPENING
    block_size: int = BLOCK_SIZE

    @property
    def calibrated(self) -> bool:
        return self.name in ("wanda", "sparsegpt")


def module_of(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name.removesuffix(".weight")) if name != "weight" else model


def check_pattern(model: nn.Module, names: list[str], pattern: Pattern | None) -> None:
    """Every layer's input size must be a multiple of M (checked before any work)."""
    if pattern is None:
        return
    for name in names:
        view = layer_view(name, module_of(model, name))
        columns = view.columns if view is not None else math.prod(dict(model.named_parameters())[name].shape[1:])
        check_columns(pattern, name, columns)


def prune_layer(view: LayerView, stats: InputStats | None, zeros: int, spec: CriterionSpec) -> dict[str, Any]:
    """Prune one module in place with `spec`; returns its keep-mask (parameter shape) and figures."""
    w = view.weight2d()
    error = None
    if spec.name == "sparsegpt":
        assert stats is not None and stats.hessian is not None
        res = sparsegpt_prune(w, stats.hessian, zeros, view.name, spec.pattern, spec.dampening, spec.block_size)
        pruned, mask, error = res.weight, res.mask, res.relative_error
    elif spec.name == "wanda":
        assert stats is not None
        pruned, mask = wanda_prune(w, stats.col_sq, zeros, spec.pattern)
    else:
        mask = group_mask(w.abs(), spec.pattern, w == 0) if spec.pattern is not None else \
            ~keep_mask(w, zeros)
        pruned = w.masked_fill(mask, 0.0)
    if error is None and stats is not None and stats.hessian is not None:
        error = reconstruction_error(w, pruned, stats.hessian)[1]
    view.set_weight2d(pruned)
    return {"keep": view.mask_to_param(~mask), "zeros": int(mask.sum()), "relative_error": error}


def _magnitude_param(param: nn.Parameter, zeros: int, pattern: Pattern | None) -> dict[str, Any]:
    """Magnitude on a parameter with no matrix view (flattened to [dim0, rest] for a pattern)."""
    w = param.detach()
    if pattern is not None:
        w2 = w.reshape(w.shape[0], -1).float()
        keep = (~group_mask(w2.abs(), pattern, w2 == 0)).reshape(w.shape)
    else:
        keep = keep_mask(w, zeros)
    with torch.no_grad():
        param.mul_(keep.to(param.dtype))
    return {"keep": keep, "zeros": int((~keep).sum()), "relative_error": None, "criterion": "magnitude"}


def apply_criterion(model: nn.Module, task: str, calib: Inputs | None, names: list[str], zeros: list[int],
                    spec: CriterionSpec, batch: int, progress: ProgressReporter | None = None,
                    keep_masks: bool = True) -> dict[str, dict[str, Any]]:
    """Prune each named weight of `model` in place to its zero count (or `spec.pattern`). Each outcome
    holds the layer's keep-mask under "keep" only with `keep_masks` (a fine-tune needs them)."""
    counts = dict(zip(names, zeros, strict=True))
    params = dict(model.named_parameters())

    def held(outcome: dict[str, Any]) -> dict[str, Any]:
        if not keep_masks:
            outcome.pop("keep", None)
        return outcome

    if not spec.calibrated:
        out = {}
        for name in names:
            view = layer_view(name, module_of(model, name)) if name.endswith("weight") else None
            out[name] = held(prune_layer(view, None, counts[name], spec) if view is not None else
                             _magnitude_param(params[name], counts[name], spec.pattern))
            out[name].setdefault("criterion", spec.name)
        return out
    from dnnkit.surgery.prune.criteria.sequential import prune_sequential

    assert calib is not None

    def prune(view: LayerView, stats: InputStats, z: int) -> dict[str, Any]:
        return held({**prune_layer(view, stats, z, spec), "criterion": spec.name})

    outcomes, fallback = prune_sequential(model, task, calib, names, counts, prune,
                                          hessian=spec.name == "sparsegpt", batch=batch, progress=progress)
    for name in fallback:
        outcomes[name] = held(_magnitude_param(params[name], counts[name], spec.pattern))
    return outcomes
