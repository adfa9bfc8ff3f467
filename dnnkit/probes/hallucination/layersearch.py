"""Layer choice by a response model of AUROC over layer position (Bayesian optimisation).

Gaussian-process regression (Matern nu = 2.5 plus a noise term) of the inner-CV AUROC on the
normalised layer index, expected improvement as the acquisition; start at floor(0.25 L),
floor(0.5 L), floor(0.95 L), evaluate at most `max_extra` more layers, stop when EI < `tol`.
The caller's `score(layer)` must use training folds only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerSearch:
    evaluated: dict[int, float] = field(default_factory=dict)  # layer -> score, in evaluation order
    chosen: int = 0
    stopped_by: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"evaluated": [{"layer": k, "auroc": v} for k, v in self.evaluated.items()], "chosen": self.chosen,
                "stopped_by": self.stopped_by}


def start_layers(n_blocks: int) -> list[int]:
    return list(dict.fromkeys(int(math.floor(f * n_blocks)) for f in (0.25, 0.5, 0.95)))


def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    from scipy.stats import norm

    sigma = np.maximum(sigma, 1e-12)
    z = (mu - best - xi) / sigma
    return (mu - best - xi) * norm.cdf(z) + sigma * norm.pdf(z)


def search_layers(score: Callable[[int], float], n_blocks: int, max_extra: int = 6, tol: float = 1e-3,
                  seed: int = 0) -> LayerSearch:
    """Search layers 0..n_blocks (hidden-state indices) for the best `score`."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    out = LayerSearch()
    for layer in start_layers(n_blocks):
        out.evaluated[layer] = float(score(layer))
    candidates = np.arange(n_blocks + 1)
    out.stopped_by = "max evaluations"
    for _ in range(max_extra):
        todo = np.array([c for c in candidates if c not in out.evaluated])
        if len(todo) == 0:
            out.stopped_by = "all layers evaluated"
            break
        xs = np.array(list(out.evaluated), dtype=float)[:, None] / max(n_blocks, 1)
        ys = np.array(list(out.evaluated.values()), dtype=float)
        finite = np.isfinite(ys)
        # AUROC in normalised units (normalize_y): unit prior amplitude, a length scale of a few layers
        kernel = ConstantKernel(1.0, (0.1, 10.0)) * Matern(length_scale=0.2, length_scale_bounds=(0.05, 1.0),
                                                           nu=2.5) + WhiteKernel(1e-2, (1e-6, 0.5))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed, n_restarts_optimizer=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kernel hyper-parameters at their bounds on flat curves
            gp.fit(xs[finite], ys[finite])
        mu, sigma = gp.predict(todo[:, None] / max(n_blocks, 1), return_std=True)
        ei = expected_improvement(mu, sigma, float(np.nanmax(ys)))
        if float(ei.max()) < tol:
            out.stopped_by = f"expected improvement {float(ei.max()):.2g} < {tol:g}"
            break
        nxt = int(todo[int(np.argmax(ei))])
        out.evaluated[nxt] = float(score(nxt))
    finite_items = [(k, v) for k, v in out.evaluated.items() if math.isfinite(v)]
    out.chosen = max(finite_items, key=lambda kv: kv[1])[0] if finite_items else start_layers(n_blocks)[-1]
    return out
