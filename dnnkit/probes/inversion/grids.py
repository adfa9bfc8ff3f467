"""PNG image grids (grey-scale, fixed vmin 0 / vmax 1, row labels on the left)."""

from __future__ import annotations

from pathlib import Path

import torch


def save_grid(path: str | Path, rows: list[tuple[str, list[torch.Tensor | None]]], col_labels: list[str] | None = None,
              title: str | None = None, cell: float = 0.9) -> None:
    """Write a grid: one row per (label, images); a None image leaves its cell blank."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n_rows = max(1, len(rows))
    n_cols = max(1, max((len(imgs) for _, imgs in rows), default=1))
    label_w = max((len(label) for label, _ in rows), default=4) * 0.075 + 0.2
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(label_w + cell * n_cols, 0.3 * bool(title) + cell * n_rows),
                             squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            img = imgs[c] if c < len(imgs) else None
            if img is not None:
                arr = img.detach().cpu().float().clamp(0, 1)
                if arr.shape[0] == 1:
                    ax.imshow(arr[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                else:
                    ax.imshow(arr.permute(1, 2, 0).numpy(), vmin=0, vmax=1, interpolation="nearest")
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_labels and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=label_w / (label_w + cell * n_cols), right=0.99, top=0.9 if title else 0.97,
                        bottom=0.02, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def square_grid(path: str | Path, images: torch.Tensor, side: int = 8, title: str | None = None) -> None:
    """An side x side grid of images (e.g. prior samples G(z))."""
    imgs = list(images[: side * side])
    rows = [(str(r), imgs[r * side:(r + 1) * side]) for r in range(side) if imgs[r * side:(r + 1) * side]]
    save_grid(path, rows, title=title)
