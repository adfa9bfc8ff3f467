"""The linear algebra: float64 SVD of a (possibly rescaled) weight, rank rules, the balanced split.

A layer's weight W (m x n; a Conv2d unrolled to c_out x c_in*kh*kw) is decomposed as
A = W T = U diag(sigma) V^T, where T is the identity (`--svd`), diag(s) with s the ASVD
activation scale (`--asvd`), or the lower Cholesky factor S of the calibration Gram matrix
(`--whiten`, SVD-LLM). The rank-r export is the balanced split
up = U_r Sigma_r^(1/2) (m x r) and down = Sigma_r^(1/2) V_r^T T^-1 (r x n), so up @ down is the
truncation of W in the metric T defines. T^-1 is applied by a triangular solve, never an inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dnnkit.errors import InputError


@dataclass
class Decomposition:
    """SVD of W T in float64, with what is needed to map the right factor back to W's coordinates."""

    u: torch.Tensor  # m x k
    s: torch.Tensor  # k
    vt: torch.Tensor  # k x n
    transform: str = "none"  # none | diag | cholesky
    t: torch.Tensor | None = None  # diag scale (n) or lower Cholesky factor (n x n)

    @property
    def energy(self) -> torch.Tensor:
        """Cumulative share of the squared spectrum kept by ranks 1..k."""
        sq = self.s.double() ** 2
        total = float(sq.sum())
        if total <= 0:
            return torch.ones_like(sq)
        return torch.cumsum(sq, 0) / total

    def factors(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(up m x r, down r x n) in float64 for the first `rank` components (balanced split)."""
        root = self.s[:rank].clamp_min(0).sqrt()
        up = self.u[:, :rank] * root[None, :]
        right = self.vt[:rank] * root[:, None]
        if self.transform == "diag":
            right = right / self.t[None, :]
        elif self.transform == "cholesky":
            right = torch.linalg.solve_triangular(self.t, right, upper=False, left=False)
        return up, right


def _fix_signs(u: torch.Tensor, vt: torch.Tensor) -> None:
    """Make each left singular vector's largest-magnitude entry positive (deterministic factors)."""
    idx = u.abs().argmax(0)
    sign = torch.sign(u[idx, torch.arange(u.shape[1])])
    sign[sign == 0] = 1
    u.mul_(sign[None, :])
    vt.mul_(sign[:, None])


def decompose(weight: torch.Tensor, transform: str = "none", t: torch.Tensor | None = None) -> Decomposition:
    """SVD of W (m x n, float64) after right-multiplying by T (see module docstring)."""
    w = weight.detach().reshape(weight.shape[0], -1).to(torch.float64).cpu()
    if not torch.isfinite(w).all():
        raise InputError("weight holds NaN or Inf values")
    if transform == "diag":
        a = w * t[None, :]
    elif transform == "cholesky":
        a = w @ t
    else:
        a = w
    u, s, vt = torch.linalg.svd(a, full_matrices=False)
    _fix_signs(u, vt)
    return Decomposition(u, s, vt, transform, t)


def asvd_scale(mean_abs: torch.Tensor, alpha: float) -> tuple[torch.Tensor, int]:
    """ASVD's input-channel scale s_j = (mean |x_j|)^alpha, clamped >= 1e-6; also the count clamped."""
    s = mean_abs.double().clamp_min(0) ** alpha
    clamped = int((s < 1e-6).sum())
    return s.clamp_min(1e-6), clamped


def whitening_factor(gram: torch.Tensor, name: str) -> tuple[torch.Tensor, float, bool]:
    """Lower Cholesky factor S of G + delta I (SVD-LLM), escalating delta x10 from 1e-6 to 1e-2 mean(diag G).

    Returns (S, delta / mean(diag G), escalated). NaN/Inf in G or failure at the largest jitter:
    InputError naming the layer.
    """
    g = gram.double()
    if not torch.isfinite(g).all():
        raise InputError(f"layer {name}: the calibration activation covariance holds NaN/Inf",
                         hint="check the model and the calibration data for NaN/Inf activations")
    scale = float(torch.diagonal(g).mean())
    if not math.isfinite(scale) or scale <= 0:
        raise InputError(f"layer {name}: the calibration activations are all zero; whitening is undefined",
                         hint="use --svd or other calibration data")
    eye = torch.eye(g.shape[0], dtype=g.dtype)
    rel = 1e-6
    while rel <= 1e-2 * (1 + 1e-9):
        factor, info = torch.linalg.cholesky_ex(g + rel * scale * eye)
        if int(info) == 0 and torch.isfinite(factor).all():
            return factor, rel, rel > 1e-6
        rel *= 10
    raise InputError(f"layer {name}: the calibration covariance is not positive definite even with "
                     f"1e-2 x mean(diag) jitter", hint="use more calibration data (--calib) or --asvd/--svd")


# ---- rank rules -------------------------------------------------------------------------------------

def rank_by_ratio(m: int, n: int, ratio: float) -> int:
    """r = max(1, floor(R * min(m, n)))."""
    return max(1, math.floor(ratio * min(m, n) + 1e-9))


def rank_by_energy(dec: Decomposition, energy: float) -> int:
    """Smallest r whose share of the squared spectrum is >= E."""
    cum = dec.energy
    hits = (cum >= energy - 1e-12).nonzero()
    return int(hits[0]) + 1 if len(hits) else int(cum.numel())


def rank_by_params(m: int, n: int, fraction: float) -> int:
    """Parameter-matched rank: r = max(1, floor(P m n / (m + n)))."""
    return max(1, math.floor(fraction * m * n / (m + n) + 1e-9))


def break_even(m: int, n: int) -> float:
    """Rank at which r (m + n) = m n: factoring at or above it does not shrink the layer."""
    return m * n / (m + n)


def global_allocation(spectra: dict[str, tuple[int, int, torch.Tensor]], fraction: float) -> dict[str, int]:
    """Keep components of all layers by decreasing (sigma_j^2 / ||W~||_F^2) / (m + n) within the budget.

    `spectra` maps name -> (m, n, sigma). Every layer keeps rank >= 1; the budget is
    fraction * sum(m n) parameters of the selected layers.
    """
    budget = fraction * sum(m * n for m, n, _ in spectra.values())
    ranks = {name: 1 for name in spectra}
    used = sum(m + n for m, n, _ in spectra.values())
    items: list[tuple[float, str, int]] = []
    for name, (m, n, s) in spectra.items():
        sq = s.double() ** 2
        total = float(sq.sum()) or 1.0
        for j in range(1, len(sq)):
            items.append((float(sq[j]) / total / (m + n), name, j))
    items.sort(key=lambda it: -it[0])
    for _score, name, j in items:
        m, n, _ = spectra[name]
        if ranks[name] != j:  # a prefix only: component j follows j-1 (scores are sorted within a layer)
            continue
        if used + m + n > budget:
            continue
        ranks[name] = j + 1
        used += m + n
    return ranks
