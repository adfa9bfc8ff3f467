"""`--pattern N:M`: in every group of M consecutive input weights at most N are kept."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dnnkit.errors import InputError


@dataclass(frozen=True)
class Pattern:
    """Keep at most `n` of every `m` consecutive input weights (2:4 keeps half)."""

    n: int
    m: int

    @property
    def sparsity(self) -> float:
        return (self.m - self.n) / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


def parse_pattern(text: str | None) -> Pattern | None:
    """'2:4' -> Pattern(2, 4); None stays None; anything else is bad input."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        n, m = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--pattern must be N:M (for example 2:4), got {text!r}") from None
    if not 0 < n < m:
        raise InputError(f"--pattern N:M needs 0 < N < M, got {text!r}")
    if m > 64:
        raise InputError(f"--pattern group size M must be at most 64, got {m}")
    return Pattern(n, m)


def check_columns(pattern: Pattern, name: str, columns: int) -> None:
    """M must divide the layer's input size (its columns as [out, in])."""
    if columns % pattern.m:
        raise InputError(f"--pattern {pattern}: layer {name} has {columns} inputs, not a multiple of {pattern.m}",
                         hint=f"exclude it with --exclude '{name}'")


def group_mask(scores: torch.Tensor, pattern: Pattern, pinned: torch.Tensor) -> torch.Tensor:
    """Prune mask [rows, cols]: in each group of M columns, the M-N lowest scores, plus every pinned
    (already zero) entry. Ties by position."""
    rows, cols = scores.shape
    s = scores.reshape(rows, cols // pattern.m, pattern.m).clone()
    p = pinned.reshape(rows, cols // pattern.m, pattern.m)
    s[p] = -torch.inf
    order = torch.sort(s, dim=-1, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(pattern.m).expand_as(order).contiguous())
    return ((ranks < pattern.m - pattern.n) | p).reshape(rows, cols)


def satisfies(weight2d: torch.Tensor, pattern: Pattern) -> bool:
    """True when every group of M consecutive inputs keeps at most N nonzeros."""
    rows, cols = weight2d.shape
    if cols % pattern.m:
        return False
    kept = (weight2d != 0).reshape(rows, cols // pattern.m, pattern.m).sum(-1)
    return bool((kept <= pattern.n).all())


def magnitude_pattern_keep(weight: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """Keep-mask (weight's shape) of N:M by magnitude over [dim0, rest] (a bare file's [out, in])."""
    w2 = weight.detach().reshape(weight.shape[0], -1).abs().float()
    return (~group_mask(w2, pattern, w2 == 0)).reshape(weight.shape)
