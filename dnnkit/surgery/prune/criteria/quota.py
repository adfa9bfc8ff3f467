"""Integer zero counts spread over bins (rows of a layer, column blocks) in proportion to size,
never below a bin's existing zeros (they are never revived) and never above its size."""

from __future__ import annotations

import torch


def spread(total: int, sizes: torch.Tensor, floors: torch.Tensor, base: torch.Tensor | None = None,
           caps: torch.Tensor | None = None) -> torch.Tensor:
    """Counts q_b with sum q_b = total and floors_b <= q_b <= caps_b (default sizes_b), each near
    (base_b + t) * sizes_b for one common t (water-filling; base 0: a common fraction of the sizes),
    then largest remainder with ties by index. int64."""
    sizes = sizes.to(torch.int64)
    caps = sizes if caps is None else torch.minimum(caps.to(torch.int64), sizes)
    floors = torch.minimum(floors.to(torch.int64), sizes)
    caps = torch.maximum(caps, floors)
    low, high = int(floors.sum()), int(caps.sum())
    if not low <= total <= high:
        raise ValueError(f"cannot place {total} zeros in bins holding {low}..{high}")
    s, f, c = sizes.double(), floors.double(), caps.double()
    b = torch.zeros_like(s) if base is None else base.double()

    def fill(t: float) -> torch.Tensor:
        return torch.minimum(torch.maximum((b + t) * s, f), c)

    lo, hi = -1.0 - float(b.max()) if len(b) else -1.0, 1.0 - float(b.min()) if len(b) else 1.0
    for _ in range(64):
        mid = (lo + hi) / 2
        if float(fill(mid).sum()) < total:
            lo = mid
        else:
            hi = mid
    real = fill(hi)
    base = torch.maximum(torch.floor(real).to(torch.int64), floors)
    left = total - int(base.sum())
    if left > 0:
        frac = real - base.double()
        room = base < caps
        order = sorted(range(len(sizes)), key=lambda i: (not bool(room[i]), -float(frac[i]), i))
        for i in order[:left]:
            base[i] += 1
    elif left < 0:  # rounding overshoot: take back from bins above their floor, smallest remainder first
        frac = real - base.double()
        order = sorted(range(len(sizes)), key=lambda i: (not bool(base[i] > floors[i]), float(frac[i]), i))
        for i in order[:-left]:
            base[i] -= 1
    return base
