"""Curves over a calibrated criterion: for rd, each layer's variant at each level is the layer
pruned by Wanda or SparseGPT (with its weight update) from the dense model's input statistics,
so the DP allocates over what the criterion actually produces.

`--rd-curves proxy` also needs each variant's reconstruction error ||(W - W_hat) X||^2 on the
calibration inputs, from the same statistics (the Hessian H = X^T X, which SparseGPT builds anyway)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dnnkit.metrics import Inputs
from dnnkit.surgery.prune.criteria.apply import CriterionSpec, module_of
from dnnkit.surgery.prune.criteria.sparsegpt import reconstruction_error, sparsegpt_levels
from dnnkit.surgery.prune.criteria.stats import InputStats, gather
from dnnkit.surgery.prune.criteria.view import LayerView, layer_view
from dnnkit.surgery.prune.criteria.wanda import wanda_prune

Variants = Callable[[str, torch.Tensor, list[int]], list[torch.Tensor]]
Proxy = Callable[[str, torch.Tensor, torch.Tensor], float]


@torch.no_grad()
def criterion_variants(model: nn.Module, task: str, calib: Inputs, names: list[str], spec: CriterionSpec,
                       batch: int, proxy: bool = False) -> tuple[Variants, Proxy | None]:
    """A `variants(name, weight, zero_counts)` function for rd curves, from one dense stats pass; with
    `proxy`, also `error(name, weight, variant)`: the variant's reconstruction error on the calibration
    inputs (None for a layer without a matrix view)."""
    from dnnkit.surgery.prune.criteria.sequential import forward_batch
    from dnnkit.surgery.prune.curves import layer_variants

    views: dict[str, LayerView] = {}
    for name in names:
        view = layer_view(name, module_of(model, name)) if name.endswith("weight") else None
        if view is not None:
            views[name] = view
    model.eval()
    with gather(list(views.values()), hessian=spec.name == "sparsegpt" or proxy) as stats:
        for i in range(0, len(calib), batch):
            forward_batch(model, task, calib.slice(i, i + batch))
    held: dict[str, InputStats] = dict(stats)

    def variants(name: str, weight: torch.Tensor, zero_counts: list[int]) -> list[torch.Tensor]:
        view = views.get(name)
        if view is None or spec.name == "magnitude":
            return layer_variants(weight, zero_counts)
        w2d = view.to2d(weight)
        if spec.name == "sparsegpt":  # every level in one column sweep
            pruned = sparsegpt_levels(w2d, held[name].hessian, zero_counts, name, spec.dampening, spec.block_size)
        else:
            pruned = [wanda_prune(w2d, held[name].col_sq, z)[0] for z in zero_counts]
        return [view.from2d(p).to(weight.dtype) for p in pruned]

    def error(name: str, weight: torch.Tensor, variant: torch.Tensor) -> float:
        view = views.get(name)
        if view is None:
            return math.nan
        return reconstruction_error(view.to2d(weight), view.to2d(variant).float(), held[name].hessian)[0]

    return variants, (error if proxy else None)
