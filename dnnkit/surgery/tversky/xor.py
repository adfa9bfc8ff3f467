"""XOR with one projection layer: the paper's first demonstration (a Tversky layer can, a linear layer cannot)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([0, 1, 1, 0])


def train_xor(layer: nn.Module, steps: int = 1000, lr: float = 0.01) -> float:
    """Full-batch Adam on the four XOR points with summed cross-entropy; returns the final accuracy."""
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(layer(XOR_X), XOR_Y, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((layer(XOR_X).argmax(-1) == XOR_Y).float().mean())


def solved_share(make_layer: Callable[[int], nn.Module], seeds: range, steps: int = 1000, lr: float = 0.01) -> float:
    """Share of seeds whose layer (built by `make_layer(seed)`) reaches 100% accuracy on XOR."""
    wins = [train_xor(make_layer(seed), steps, lr) == 1.0 for seed in seeds]
    return sum(wins) / len(wins)
