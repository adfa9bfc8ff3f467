"""SparseGPT (Frantar & Alistarh 2023): OBS mask selection with the inverse-Hessian update of the
kept weights, column block by column block with lazy updates of the columns to the right.

H = sum_x x x^T over the calibration inputs of the layer. With dampening lambda = d * mean(diag H),
Hinv is the upper Cholesky factor of (H + lambda I)^-1. In each block of B columns the mask takes the
lowest w^2 / [Hinv]_jj^2 (exactly the block's share of the layer's zero count, or the M-N lowest of
every group of M columns under `--pattern`); each column is then frozen in turn and its error
(w - q) / [Hinv]_jj is spread over the columns not yet frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dnnkit.errors import InputError
from dnnkit.surgery.prune.criteria.pattern import Pattern, group_mask
from dnnkit.surgery.prune.criteria.quota import spread

BLOCK_SIZE = 128
DAMPENING = 0.01


@dataclass
class SparseGPTResult:
    """The pruned weight, its prune mask and the reconstruction error on the calibration inputs."""

    weight: torch.Tensor
    mask: torch.Tensor
    error: float  # ||(W - W_hat) X||^2 summed over calibration rows
    relative_error: float  # the same over ||W X||^2


def inverse_hessian_factor(hessian: torch.Tensor, dampening: float, name: str) -> torch.Tensor:
    """Upper Cholesky factor of (H + d*mean(diag H)*I)^-1; dead inputs (H_jj = 0) get H_jj = 1."""
    h = hessian.clone()
    diag = torch.diagonal(h)
    dead = diag == 0
    diag[dead] = 1.0
    diag += dampening * float(diag.mean())
    low, info = torch.linalg.cholesky_ex(h)
    if int(info) == 0:
        inv = torch.cholesky_inverse(low)
        upper, info = torch.linalg.cholesky_ex(inv, upper=True)
    if int(info) != 0:
        raise InputError(f"the Hessian of layer {name} stays singular after dampening {dampening}",
                         hint="use more calibration samples (--calib) or raise --dampening")
    return upper


def block_quotas(zeros: int, pinned: torch.Tensor, block_size: int) -> list[int]:
    """The layer's zero count split over column blocks in proportion to their size."""
    rows, cols = pinned.shape
    starts = list(range(0, cols, block_size))
    sizes = torch.tensor([rows * (min(s + block_size, cols) - s) for s in starts])
    floors = torch.tensor([int(pinned[:, s:s + block_size].sum()) for s in starts])
    return [int(q) for q in spread(zeros, sizes, floors)]


def _lowest(scores: torch.Tensor, count: int, pinned: torch.Tensor) -> torch.Tensor:
    """Mask of the `count` lowest scores (pinned entries first; ties by position), from a kthvalue
    threshold and a fill of the tied entries in index order (what a stable sort would give)."""
    flat = scores.reshape(-1).clone()
    flat[pinned.reshape(-1)] = -torch.inf
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if count >= flat.numel():
        mask[:] = True
    elif count > 0:
        threshold = torch.kthvalue(flat, count).values
        mask = flat < threshold
        ties = torch.nonzero(flat == threshold).squeeze(1)[:count - int(mask.sum())]
        mask[ties] = True
    return mask.reshape(scores.shape)


@torch.no_grad()
def sparsegpt_prune(w2d: torch.Tensor, hessian: torch.Tensor, zeros: int, name: str,
                    pattern: Pattern | None = None, dampening: float = DAMPENING,
                    block_size: int = BLOCK_SIZE) -> SparseGPTResult:
    """Prune W [out, in] (float32) to `zeros` zeros (or the N:M pattern); existing zeros stay zero."""
    pinned = w2d == 0
    hinv = inverse_hessian_factor(hessian, dampening, name)
    quotas = [block_quotas(zeros, pinned, block_size)] if pattern is None else None
    w, mask = _prune_columns(w2d, pinned, hinv, quotas, pattern, block_size)
    return SparseGPTResult(w[0], mask[0], *reconstruction_error(w2d, w[0], hessian))


@torch.no_grad()
def sparsegpt_levels(w2d: torch.Tensor, hessian: torch.Tensor, zero_counts: list[int], name: str,
                     dampening: float = DAMPENING, block_size: int = BLOCK_SIZE) -> list[torch.Tensor]:
    """`sparsegpt_prune(w2d, hessian, z, ...).weight` for every z in `zero_counts`, in one pass over
    the columns: the levels share the inverse-Hessian factor and run their row updates together
    (the same arithmetic per row, so each level equals its own `sparsegpt_prune`)."""
    if not zero_counts:
        return []
    pinned = w2d == 0
    hinv = inverse_hessian_factor(hessian, dampening, name)
    quotas = [block_quotas(z, pinned, block_size) for z in zero_counts]
    w, _ = _prune_columns(w2d, pinned, hinv, quotas, None, block_size)
    return list(w.unbind(0))


def _prune_columns(w2d: torch.Tensor, pinned: torch.Tensor, hinv: torch.Tensor, quotas: list[list[int]] | None,
                   pattern: Pattern | None, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The SparseGPT column sweep for L levels at once: W [L, out, in] pruned and its mask. `quotas[l][b]`
    is level l's zero count in column block b (None: the N:M `pattern`, one level)."""
    levels = len(quotas) if quotas is not None else 1
    rows, cols = w2d.shape
    w = w2d.unsqueeze(0).repeat(levels, 1, 1)
    mask = torch.zeros(w.shape, dtype=torch.bool)
    pin_rows = pinned.repeat(levels, 1) if pattern is not None else None  # the N:M groups' pinned entries
    for b, i1 in enumerate(range(0, cols, block_size)):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, :, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        d = torch.diagonal(hinv1)
        pin1 = pinned[:, i1:i2]
        if quotas is not None:
            scores = w1 ** 2 / d.unsqueeze(0) ** 2
            mask1 = torch.stack([_lowest(scores[lv], quotas[lv][b], pin1) for lv in range(levels)])
        else:
            mask1 = torch.zeros(w1.shape, dtype=torch.bool)
        flat_w, flat_mask, flat_err = (t.view(levels * rows, i2 - i1) for t in (w1, mask1, err1))
        for i in range(i2 - i1):
            if pattern is not None and i % pattern.m == 0:
                group = slice(i, i + pattern.m)
                g_scores = flat_w[:, group] ** 2 / d[group].unsqueeze(0) ** 2
                flat_mask[:, group] = group_mask(g_scores, pattern, pin_rows[:, i1 + i:i1 + i + pattern.m])
            col = flat_w[:, i]
            err = torch.where(flat_mask[:, i], col, torch.zeros_like(col)) / d[i]
            flat_w[:, i:].addr_(err, hinv1[i, i:], alpha=-1.0)
            flat_err[:, i] = err
        w1[mask1] = 0.0
        w[:, :, i1:i2] = w1
        mask[:, :, i1:i2] = mask1
        if i2 < cols:
            for lv in range(levels):  # one matmul per level: the same shapes (and rounding) as a single level
                w[lv, :, i2:].addmm_(err1[lv], hinv[i1:i2, i2:], alpha=-1.0)
    w[mask] = 0.0
    return w, mask


def reconstruction_error(w2d: torch.Tensor, pruned: torch.Tensor, hessian: torch.Tensor) -> tuple[float, float]:
    """(||(W - W_hat) X||^2, relative to ||W X||^2) from H = X^T X."""
    delta = pruned - w2d
    error = float(((delta @ hessian) * delta).sum())
    base = float(((w2d @ hessian) * w2d).sum())
    return error, error / base if base > 0 else 0.0
