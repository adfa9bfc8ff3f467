"""Pictures of explanations: the B-cos colour image (authors' recipe) and diverging contribution maps,
drawn into one PNG grid (a row per input), written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from dnnkit.models.atomic import atomic_file


def default_smooth(height: int) -> int:
    """Largest odd integer <= max(1, 15 H / 224) (the authors' 15 px at 224 px)."""
    k = int(max(1.0, 15.0 * height / 224.0))
    return k if k % 2 == 1 else k - 1


def colour_image(weights: torch.Tensor, contributions: torch.Tensor, smooth: int | None = None,
                 percentile: float = 99.5) -> np.ndarray:
    """H x W x 4 RGBA from W(x) (2C x H x W) and R (H x W), spec 2.5.5 / the authors' gradient_to_image."""
    w = weights.detach().double()
    c2, h, _w = w.shape
    c = c2 // 2
    v = (w / (w.abs().amax(0, keepdim=True) + 1e-12)).clamp_min(0)
    rgb = v[:c] / (v[:c] + v[c:] + 1e-12)
    if c == 1:
        rgb = rgb.expand(3, -1, -1)
    elif c != 3:
        rgb = rgb[:3] if c > 3 else torch.cat([rgb, rgb[-1:].expand(3 - c, -1, -1)])
    alpha = w.norm(p=2, dim=0, keepdim=True)
    alpha = torch.where(contributions.double()[None] < 0, torch.zeros_like(alpha), alpha)
    k = default_smooth(h) if smooth is None else max(1, int(smooth))
    if k > 1:
        alpha = F.avg_pool2d(alpha[None], k, stride=1, padding=(k - 1) // 2)[0]
    a = alpha.numpy()
    top = np.percentile(a, percentile)
    a = np.clip(a / top, 0, 1) if top > 0 else np.zeros_like(a)
    return np.concatenate([rgb.numpy(), a], axis=0).transpose(1, 2, 0)


def over_black(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA image over black (what the PNG shows)."""
    return rgba[..., :3] * rgba[..., 3:4]


def to_display(x: torch.Tensor) -> np.ndarray:
    """C x H x W pixels in [0, 1] -> H x W x 3 for imshow (grey repeated)."""
    a = x.detach().double().clamp(0, 1).numpy()
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return a[:3].transpose(1, 2, 0)


@dataclass
class Row:
    """One row of a figure: the input, optional colour explanation, a contribution map, a title."""

    image: torch.Tensor
    contributions: torch.Tensor
    colour: np.ndarray | None = None
    title: str = ""
    extra: list[tuple[str, torch.Tensor | np.ndarray]] | None = None  # more panels: (title, map or RGB)


def _contribution_panel(ax: object, r: np.ndarray, percentile: float, fig: object) -> None:
    lim = float(np.percentile(np.abs(r), percentile)) or float(np.abs(r).max()) or 1.0
    im = ax.imshow(r, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def save_rows(path: str | Path, rows: list[Row], percentile: float = 99.5, headers: list[str] | None = None) -> Path:
    """Write the grid PNG (a row per input) atomically and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(2 + (r.colour is not None) + len(r.extra or []) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 2.5 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        panels: list[tuple[str, object]] = [("input", to_display(row.image))]
        for title, m in row.extra or []:
            panels.append((title, m))
        if row.colour is not None:
            panels.append(("B-cos explanation", over_black(row.colour)))
        panels.append(("contributions W(x)·x" if row.colour is not None else "contributions", row.contributions))
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.axis("off")
                continue
            title, data = panels[j]
            if isinstance(data, torch.Tensor) or (isinstance(data, np.ndarray) and data.ndim == 2):
                arr = data.detach().double().numpy() if isinstance(data, torch.Tensor) else data
                _contribution_panel(ax, arr, percentile, fig)
            else:
                ax.imshow(data, interpolation="nearest")
            label = (headers[j] if headers and j < len(headers) else title)
            ax.set_title(label if i == 0 else "", fontsize=9)
            if j == 0 and row.title:
                ax.set_ylabel(row.title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, facecolor="white")
    plt.close(fig)
    return path
