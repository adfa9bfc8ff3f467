"""PNGs of the linear interpreter: item panels, columns, singular vectors, bias-share histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnnkit.probes.linear_interpret.analyse import ItemResult


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_image(a: np.ndarray, sum_channels: bool = True) -> np.ndarray:
    """An input-shaped array as a 2-D map (channels summed) or, for inputs, RGB when there are 3 channels."""
    if a.ndim == 3:
        if not sum_channels and a.shape[0] == 3:
            return np.clip(a.transpose(1, 2, 0), 0, 1)
        return a.sum(0) if sum_channels else a.mean(0)
    if a.ndim == 2:
        return a
    return a.reshape(1, -1)


def _diverging(ax, fig, a: np.ndarray, title: str) -> None:  # noqa: ANN001
    lim = float(np.abs(a).max()) or 1.0
    im = ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def item_png(item: ItemResult, path: Path, classes: list[str] | None = None) -> None:
    """input | row of the predicted class | vote map | c_k and (A x0)_k per class."""
    plt = _plt()
    f = item.fields
    pred = f["pred"]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    img = _as_image(item.x, sum_channels=False)
    axes[0].imshow(img, cmap=None if img.ndim == 3 else "gray", interpolation="nearest")
    axes[0].set_title(f"input #{f['index']} (label {f['label']}, pred {pred})", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    row = item.rows.get(pred)
    if row is not None:
        _diverging(axes[1], fig, _as_image(row), f"row of A for class {pred}\n(input units, channels summed)")
        votes = _as_image(row * item.x)
        _diverging(axes[2], fig, votes, f"votes A_k * x0 (sum {votes.sum():.2f} = f_k - c_k)")
    else:
        axes[1].axis("off")
        axes[2].axis("off")
    k = np.arange(len(item.c))
    axes[3].bar(k - 0.2, item.ax, width=0.4, label="(A x0)_k", color="tab:blue")
    axes[3].bar(k + 0.2, item.c, width=0.4, label="c_k (bias path)", color="tab:orange")
    axes[3].axhline(0, color="black", lw=0.5)
    axes[3].set_xticks(k)
    if classes and len(classes) == len(k):
        axes[3].set_xticklabels([c[:8] for c in classes], rotation=60, fontsize=7)
    axes[3].set_title(f"score = A x0 + c  (bias share {f['bias_share']:.2f})", fontsize=9)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def columns_png(item: ItemResult, path: Path, input_shape: tuple[int, ...]) -> None:
    """One bar chart per computed column A e_p (how an impulse at position p moves every output)."""
    plt = _plt()
    cols = list(item.columns.items())
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3), squeeze=False)
    for ax, (p, col) in zip(axes[0], cols, strict=True):
        where = np.unravel_index(p, input_shape)
        ax.bar(np.arange(len(col)), col, color=np.where(col >= 0, "tab:red", "tab:blue"))
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(f"column p={p} {tuple(int(i) for i in where)}", fontsize=9)
        ax.set_xlabel("output")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def svd_png(item: ItemResult, path: Path) -> None:
    """Input-side singular vectors of A(x0) as images, singular values in the titles."""
    plt = _plt()
    n = len(item.svd_values)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, s, v in zip(axes[0], item.svd_values, item.svd_inputs, strict=True):
        _diverging(ax, fig, _as_image(v), f"sigma = {s:.3g}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bias_share_png(shares: np.ndarray, path: Path, title: str) -> None:
    """Histogram of the bias share of the predicted class over the evaluated examples."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.hist(shares, bins=30, range=(0, 1), color="tab:orange", edgecolor="black", lw=0.3)
    ax.axvline(float(np.mean(shares)), color="black", ls="--", label=f"mean {np.mean(shares):.3f}")
    ax.set_xlabel("|c_k| / (|c_k| + |(A x)_k|), k = predicted class")
    ax.set_ylabel("examples")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
