"""Prototype visualisation (the paper's reading of both layers as similarity to learned prototypes).

`OUT.prototypes.png` (image models): when the layer reads the image itself (d = C*H*W), each prototype and
the 32 most used features drawn as images (diverging colours centred at 0) beside the replaced Linear's
weight rows; otherwise, per prototype and per most used feature, the 8 eval images that score highest.
`OUT.membership.png`: ReLU(Pi Omega^T), which features each prototype has.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dnnkit.models.atomic import atomic_file
from dnnkit.nn.tversky import TverskyProjection


def _figure(rows: int, cols: int, scale: float = 1.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(cols * scale + 1, rows * scale + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def _show(ax: Any, img: torch.Tensor, diverging: bool) -> None:
    img = img.detach().float().cpu().numpy()
    if diverging:
        lim = float(abs(img).max()) or 1.0
        ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
    else:
        ax.imshow(img, cmap="gray")


def membership_plot(layer: TverskyProjection, path: Path, title: str) -> str:
    """Heat map of ReLU(Pi Omega^T): p prototypes x K features."""
    with torch.no_grad():
        _, mb = layer.measures(layer.prototype_matrix[:1])
    m = mb.clamp_min(0).cpu().numpy()
    fig, axes = _figure(1, 1, 1.0)
    fig.set_size_inches(min(16, 2 + m.shape[1] * 0.12), min(12, 1.5 + m.shape[0] * 0.25))
    ax = axes[0, 0]
    ax.axis("on")
    im = ax.imshow(m, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("feature k")
    ax.set_ylabel("prototype i")
    ax.set_title(title + ": ReLU(prototype . feature)")
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def weight_image_plot(layer: TverskyProjection, old_rows: torch.Tensor | None, shape: tuple[int, ...],
                      usage: torch.Tensor, path: Path, title: str) -> str:
    """Prototypes, the 32 most used features and the replaced Linear's rows, as images."""
    h, w = shape[-2], shape[-1]
    protos = layer.prototype_matrix.detach().float().cpu()[:64]
    top = usage.argsort(descending=True)[:32].tolist()
    feats = layer.bank.detach().float().cpu()[top]
    cols = max(min(16, len(protos)), min(16, len(top)))
    rows_p = math.ceil(len(protos) / cols)
    rows_f = math.ceil(len(top) / cols)
    rows_o = 0 if old_rows is None else math.ceil(min(len(old_rows), 64) / cols)
    fig, axes = _figure(rows_p + rows_f + rows_o, cols, 0.9)

    def draw(start_row: int, mats: torch.Tensor, label: str, names: list[str]) -> None:
        for i, vec in enumerate(mats):
            ax = axes[start_row + i // cols, i % cols]
            _show(ax, vec[: h * w].reshape(h, w) if vec.numel() >= h * w else vec.reshape(1, -1), True)
            ax.set_title(names[i], fontsize=6)
        axes[start_row, 0].text(-0.6, 0.5, label, transform=axes[start_row, 0].transAxes, rotation=90,
                                va="center", ha="right", fontsize=7)

    draw(0, protos, "prototypes", [f"p{i}" for i in range(len(protos))])
    draw(rows_p, feats, "top features", [f"f{k}" for k in top])
    if old_rows is not None:
        old_rows = old_rows[:64]
        draw(rows_p + rows_f, old_rows, "linear rows", [f"w{i}" for i in range(len(old_rows))])
    fig.suptitle(title + " (first channel; diverging colours centred at 0)", fontsize=8)
    return _save(fig, path)


def top_inputs_plot(scores: torch.Tensor, measures: torch.Tensor, images: torch.Tensor, usage: torch.Tensor,
                    path: Path, title: str, per_row: int = 8, max_features: int = 8, max_prototypes: int = 16) -> str:
    """Per prototype (the first 16), and per most used feature, the eval images with the highest score / measure."""
    p = min(scores.shape[1], max_prototypes)
    top_feats = usage.argsort(descending=True)[:max_features].tolist()
    fig, axes = _figure(p + len(top_feats), per_row, 0.8)
    for row, column in enumerate([scores[:, i] for i in range(p)] + [measures[:, k] for k in top_feats]):
        best = column.argsort(descending=True)[:per_row].tolist()
        for c, idx in enumerate(best):
            _show(axes[row, c], images[idx, 0], False)
        label = f"prototype {row}" if row < p else f"feature {top_feats[row - p]}"
        axes[row, 0].text(-0.15, 0.5, label, transform=axes[row, 0].transAxes, va="center", ha="right", fontsize=7)
    fig.suptitle(title + ": eval images of highest relative similarity S - mean_j S (prototypes) / measure "
                 "(features)", fontsize=8)
    return _save(fig, path)


def write_plots(loaded: Any, result: Any, originals: dict[str, nn.Module], output: str) -> list[str]:
    """Write the PNGs of the first Tversky layer next to OUT; returns their paths."""
    layers = [(n, m) for n, m in result.layers.items() if isinstance(m, TverskyProjection)]
    if not layers:
        return []
    name, layer = layers[0]
    base = Path(output)
    stem = base.with_suffix("")
    paths = [membership_plot(layer, Path(f"{stem}.membership.png"), name)]
    inputs = result.eval_inputs
    if inputs is None or inputs.kind != "images":
        return paths
    from dnnkit.surgery.tversky.swap import _capture_inputs

    images = inputs.x[:512]
    model = result.model
    rows = _capture_inputs(model, [name], lambda: model(images.to(next(model.parameters()).device)))[name]
    rows = rows.to(layer.in_mean.device)
    with torch.no_grad():
        ma, _ = layer.measures(rows)
        scores = layer(rows).float().cpu()
    # Raw S is dominated by each input's own salience (every prototype ranks the same inputs first), so
    # rank by S relative to the input's mean over prototypes: which inputs prototype i claims most.
    scores = scores - scores.mean(1, keepdim=True)
    usage = (ma > 0).float().mean(0).cpu()
    shape = tuple(images.shape[1:])
    old = originals.get(name)
    old_rows = old.weight.detach().float().cpu() if isinstance(old, nn.Linear) and \
        old.weight.shape[0] == layer.out_features else None
    path = Path(f"{stem}.prototypes.png")
    if layer.in_features == math.prod(shape):
        paths.append(weight_image_plot(layer, old_rows, shape, usage, path, name))
    elif len(rows) == len(images):
        paths.append(top_inputs_plot(scores, ma.cpu(), images, usage, path, name))
    return paths
