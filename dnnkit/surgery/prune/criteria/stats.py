"""Calibration statistics of a layer's inputs, gathered by forward hooks: the Hessian proxy
H = sum x x^T (SparseGPT) and the per-input sums of squares ||X_j||^2 (Wanda, OWL)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
    Views fed the very same tensor object in a row (q/k/v, gate/up) share one InputStats: computed once.
    The tensor is recognised by identity (a weak reference), never by its address: a freed activation's
    memory is reused by the next one (attention output, then the MLP's normed input), and an address
    match once made gate/up share o_proj's statistics."""
    stats = {v.name: InputStats.empty(v.columns, hessian) for v in views}
    last: dict[str, Any] = {}
    handles = []
    for view in views:
        def hook(module: nn.Module, args: tuple, output: object, view: LayerView = view) -> None:
            x = args[0]
            ref = last.get("ref")
            same = ref is not None and ref() is x and last["version"] == x._version
            if same and last["name"] != view.name and last["shape"] == (view.kind, view.columns) \
                    and view.kind != "conv2d":
                stats[view.name] = stats[last["name"]]
                return
            last.update(ref=weakref.ref(x), version=x._version, name=view.name, shape=(view.kind, view.columns))
            stats[view.name].add(view.inputs2d(x.detach()))

        handles.append(view.module.register_forward_hook(hook))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()
