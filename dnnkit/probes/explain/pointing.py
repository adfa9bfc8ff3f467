"""The grid pointing game (B-cos papers' localisation metric).

2x2 grids of test images of 4 distinct classes, each correctly classified with confidence > 0.5;
for each cell's class, score = positive contribution inside that cell / all positive contribution.
A model with a fixed input size is slid over the grid (window = its input, stride half a cell) and
the contributions of the windows are summed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dnnkit.probes.explain.dynamic import explain, is_bcos

ExplainFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x: N x C x H x W, classes: N) -> R: N x H x W


@torch.no_grad()
def confident_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Indices of inputs classified correctly with confidence > 0.5 (sigmoid for B-cos, softmax otherwise)."""
    model.eval()
    keep = []
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size])
        out = out.logits if hasattr(out, "logits") else out
        prob = torch.sigmoid(out) if is_bcos(model) else torch.softmax(out, -1)
        yb = y[i:i + batch_size]
        ok = (out.argmax(-1) == yb) & (prob.gather(1, yb[:, None])[:, 0] > 0.5)
        keep.append(ok.nonzero().flatten() + i)
    return torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)


def make_grids(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, n_grids: int, seed: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_grids` 2x2 grids (N x C x 2H x 2W) of 4 distinct random classes, and their cell classes (N x 4)."""
    gen = torch.Generator().manual_seed(seed)
    by_class = {int(c): pool[y[pool] == c] for c in torch.unique(y[pool])}
    classes = sorted(by_class)
    if len(classes) < 4:
        raise ValueError("the grid pointing game needs confidently correct images of at least 4 classes")
    _n, ch, h, w = x.shape
    grids = torch.zeros((n_grids, ch, 2 * h, 2 * w), dtype=x.dtype)
    cells = torch.zeros((n_grids, 4), dtype=torch.long)
    for g in range(n_grids):
        pick = torch.randperm(len(classes), generator=gen)[:4]
        for k, ci in enumerate(pick.tolist()):
            c = classes[ci]
            idx = by_class[c][int(torch.randint(len(by_class[c]), (1,), generator=gen))]
            r, s = divmod(k, 2)
            grids[g, :, r * h:(r + 1) * h, s * w:(s + 1) * w] = x[idx]
            cells[g, k] = c
    return grids, cells


def sliding_explain(explain_fn: ExplainFn, grids: torch.Tensor, classes: torch.Tensor, window: tuple[int, int]
                    ) -> torch.Tensor:
    """Contributions of a fixed-input model over larger images: window at stride half its size, summed."""
    n, _c, gh, gw = grids.shape
    wh, ww = window
    sh, sw = max(1, wh // 2), max(1, ww // 2)
    out = torch.zeros((n, gh, gw), dtype=torch.float64)
    for top in range(0, gh - wh + 1, sh):
        for left in range(0, gw - ww + 1, sw):
            r = explain_fn(grids[:, :, top:top + wh, left:left + ww], classes)
            out[:, top:top + wh, left:left + ww] += r.double()
    return out


def pointing_scores(contributions: torch.Tensor, cell: int) -> torch.Tensor:
    """Positive contribution inside cell `cell` (0..3, row-major) over all positive contribution, per grid."""
    pos = contributions.clamp_min(0)
    _n, gh, gw = pos.shape
    r, s = divmod(cell, 2)
    inside = pos[:, r * gh // 2:(r + 1) * gh // 2, s * gw // 2:(s + 1) * gw // 2].flatten(1).sum(1)
    total = pos.flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-30), torch.zeros_like(total))


def grid_pointing_game(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_grids: int = 250, seed: int = 0,
                       method: str = "auto", fixed_input: tuple[int, int] | None = None, batch_size: int = 64
                       ) -> dict[str, float]:
    """Mean pointing score over `n_grids` grids x 4 cells (chance 0.25); `fixed_input` slides a window."""
    pool = confident_correct(model, x, y)
    grids, cells = make_grids(x, y, pool, n_grids, seed)

    def explain_fn(xb: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
        parts = [explain(model, xb[i:i + batch_size], cb[i:i + batch_size], method).contributions.detach()
                 for i in range(0, len(xb), batch_size)]
        return torch.cat(parts)

    scores = []
    for cell in range(4):
        if fixed_input is not None:
            r = sliding_explain(explain_fn, grids, cells[:, cell], fixed_input)
        else:
            r = explain_fn(grids, cells[:, cell])
        scores.append(pointing_scores(r, cell))
    s = torch.cat(scores)
    return {"score": float(s.mean()), "grids": n_grids, "pool": int(len(pool))}
