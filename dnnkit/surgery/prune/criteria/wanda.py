"""Wanda (Sun et al. 2023): score |W_ij| * ||X_j||_2, compared within each output row; no update."""

from __future__ import annotations

import torch

from dnnkit.surgery.prune.criteria.pattern import Pattern, group_mask
from dnnkit.surgery.prune.criteria.quota import spread


def wanda_scores(w2d: torch.Tensor, col_sq: torch.Tensor) -> torch.Tensor:
    """|W| * ||X_j|| for W [out, in] and the per-input sums of squares ||X_j||^2."""
    return w2d.abs() * col_sq.clamp_min(0).sqrt().unsqueeze(0)


def row_mask(scores: torch.Tensor, zeros: int, pinned: torch.Tensor) -> torch.Tensor:
    """Prune mask with `zeros` entries in all, spread evenly over rows (each row at least its pinned
    zeros), the lowest scores of each row first; ties by column."""
    rows, cols = scores.shape
    quotas = spread(zeros, torch.full((rows,), cols), pinned.sum(1))
    s = scores.clone()
    s[pinned] = -torch.inf
    order = torch.sort(s, dim=1, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(cols).expand_as(order).contiguous())
    return ranks < quotas.unsqueeze(1)


def wanda_prune(w2d: torch.Tensor, col_sq: torch.Tensor, zeros: int, pattern: Pattern | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(pruned W, prune mask) for W [out, in]; existing zeros stay zero and count toward `zeros`."""
    scores = wanda_scores(w2d, col_sq)
    pinned = w2d == 0
    mask = group_mask(scores, pattern, pinned) if pattern is not None else row_mask(scores, zeros, pinned)
    return w2d.masked_fill(mask, 0.0), mask
