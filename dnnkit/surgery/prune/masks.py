"""Magnitude order and keep-masks: every method prunes a layer's zeros first, then ascending |w|,
ties broken by flat index (a stable sort), so methods differ only in how many each layer loses."""

from __future__ import annotations

import torch


def magnitude_ranks(weight: torch.Tensor) -> torch.Tensor:
    """rank[i] = position of element i in the pruning order (0 = pruned first), as int64, flat."""
    flat = weight.detach().reshape(-1).abs().float()
    order = torch.sort(flat, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device)
    return ranks


def keep_mask(weight: torch.Tensor, zeros: int) -> torch.Tensor:
    """Boolean keep-mask (same shape) that removes exactly `zeros` entries in magnitude order."""
    return (magnitude_ranks(weight) >= zeros).reshape(weight.shape)


def level_zeros(n: int, levels: int) -> list[int]:
    """Zero count of each grid level d = 0..K-1: floor(d*n/(K-1)), computed in integers."""
    return [d * n // (levels - 1) for d in range(levels)]


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP score of every entry (flat, float32): w_(u)^2 / sum_{v>=u} w_(v)^2 in ascending-|w| order.

    Scores rise along the magnitude order (ties by index), and the largest weight scores 1.
    """
    flat = weight.detach().reshape(-1).double()
    sq_sorted, order = torch.sort(flat.abs(), stable=True)
    sq_sorted = sq_sorted * sq_sorted
    suffix = torch.flip(torch.cumsum(torch.flip(sq_sorted, [0]), 0), [0])
    sorted_scores = torch.where(suffix > 0, sq_sorted / suffix.clamp_min(1e-300), torch.zeros_like(suffix))
    scores = torch.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores.float()
