"""Calibration statistics of a layer's inputs, gathered by forward hooks: the Hessian proxy
H = sum x x^T (SparseGPT) and the per-input sums of squares ||X_j||^2 (Wanda, OWL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from dnnkit.surgery.prune.criteria.view import LayerView


@dataclass
class InputStats:
    """Running sums over the calibration rows of one layer's inputs."""

    col_sq: torch.Tensor
    hessian: torch.Tensor | None
    rows: int = 0

    @classmethod
    def empty(cls, columns: int, hessian: bool) -> InputStats:
        return cls(torch.zeros(columns), torch.zeros(columns, columns) if hessian else None)

    def add(self, x2d: torch.Tensor) -> None:
        self.col_sq += (x2d * x2d).sum(0)
        if self.hessian is not None:
            self.hessian.addmm_(x2d.t(), x2d)
        self.rows += x2d.shape[0]


@contextmanager
def gather(views: list[LayerView], hessian: bool) -> Iterator[dict[str, InputStats]]:
    """Forward hooks that add every input of each view's module to its stats while the block runs.
    Views fed the very same tensor in a row (q/k/v, gate/up) share one InputStats: computed once."""
    stats = {v.name: InputStats.empty(v.columns, hessian) for v in views}
    last: dict[str, tuple] = {}
    handles = []
    for view in views:
        def hook(module: nn.Module, args: tuple, output: object, view: LayerView = view) -> None:
            x = args[0].detach()
            key = (x.data_ptr(), tuple(x.shape), x._version, view.kind, view.columns)
            if last.get("key") == key and last["name"] != view.name and view.kind != "conv2d":
                stats[view.name] = stats[last["name"]]
                return
            last.update(key=key, name=view.name)
            stats[view.name].add(view.inputs2d(x))

        handles.append(view.module.register_forward_hook(hook))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()
