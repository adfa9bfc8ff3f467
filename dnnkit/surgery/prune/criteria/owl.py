"""OWL, outlier-weighted layerwise sparsity (Yin et al. 2023), as an allocation.

On the dense model, each block's outlier ratio D_b is the share of its Wanda scores |W| ||X_j||
(all its layers together) above M times their mean (M = 5). Keep ratios follow D_b linearly over
a range of 2*lambda (lambda = 0.08) around 1 - S: keep_b = 1 - S + L_b - mean(L), with
L_b = 2*lambda (D_b - min D) / (max D - min D). Layers outside a block (and every layer of a model
without a layer list) form blocks of their own. Counts are made exact as every allocation's are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dnnkit.metrics import Inputs
from dnnkit.surgery.prune.criteria.quota import spread
from dnnkit.surgery.prune.criteria.stats import gather
from dnnkit.surgery.prune.criteria.view import layer_view
from dnnkit.surgery.prune.criteria.wanda import wanda_scores
from dnnkit.surgery.prune.layers import PrunableLayer

OUTLIER_M = 5.0
LAMBDA = 0.08


def _groups(model: nn.Module, names: list[str]) -> list[list[str]]:
    from dnnkit.surgery.prune.criteria.apply import module_of
    from dnnkit.surgery.prune.criteria.sequential import main_blocks

    modules = {module_of(model, n): n for n in names}
    blocks = main_blocks(model, set(modules))
    owner = {}
    if blocks is not None:
        owner = {id(m): i for i, entry in enumerate(blocks) for m in entry.modules()}
    grouped: dict[Any, list[str]] = {}
    for module, name in modules.items():
        key = owner.get(id(module), ("own", name))
        grouped.setdefault(key, []).append(name)
    return list(grouped.values())


@torch.no_grad()
def outlier_ratios(model: nn.Module, task: str, calib: Inputs, names: list[str], batch: int,
                   m: float = OUTLIER_M) -> tuple[list[list[str]], list[float]]:
    """The blocks (lists of names) and each block's outlier ratio on the dense model."""
    from dnnkit.surgery.prune.criteria.apply import module_of
    from dnnkit.surgery.prune.criteria.sequential import forward_batch

    views = {n: layer_view(n, module_of(model, n)) for n in names}
    usable = [v for v in views.values() if v is not None]
    model.eval()
    with gather(usable, hessian=False) as stats:
        for i in range(0, len(calib), batch):
            forward_batch(model, task, calib.slice(i, i + batch))
    groups, ratios = _groups(model, names), []
    for group in groups:
        scores = []
        for name in group:
            view = views[name]
            w = view.weight2d() if view is not None else dict(model.named_parameters())[name].detach().float()
            scores.append((wanda_scores(w, stats[name].col_sq) if view is not None else w.abs()).reshape(-1))
        flat = torch.cat(scores)
        ratios.append(float((flat > m * flat.mean()).float().mean()))
    return groups, ratios


def owl_zeros(model: nn.Module, task: str, calib: Inputs, layers: list[PrunableLayer], ratio: float, batch: int,
              cap: float | None = None, lam: float = LAMBDA, m: float = OUTLIER_M) -> tuple[list[int], dict[str, Any]]:
    """Zero counts per layer (exact total round(ratio * N)) and the per-block figures."""
    names = [layer.name for layer in layers]
    groups, ratios = outlier_ratios(model, task, calib, names, batch, m)
    d = torch.tensor(ratios, dtype=torch.float64)
    spanned = d.max() - d.min()
    lift = (d - d.min()) / spanned * 2 * lam if float(spanned) > 0 else torch.zeros_like(d)
    sparsity = ratio - (lift - lift.mean())  # per block
    per_layer = {name: float(sparsity[g]) for g, group in enumerate(groups) for name in group}
    sizes = torch.tensor([layer.n for layer in layers])
    floors = torch.tensor([layer.zeros for layer in layers])
    caps = None if cap is None else torch.tensor([int(cap * layer.n) for layer in layers])
    base = torch.tensor([per_layer[n] for n in names], dtype=torch.float64)
    zeros = spread(round(ratio * int(sizes.sum())), sizes, floors, base=base, caps=caps)
    blocks = [{"first": g[0], "layers": len(g), "outlier_ratio": r, "sparsity": float(s)}
              for g, r, s in zip(groups, ratios, sparsity, strict=True)]
    return [int(z) for z in zeros], {"blocks": blocks, "lambda": lam, "m": m}
