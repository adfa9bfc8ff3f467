"""PNGs of hash-code figures: the sweep "phase chart" and kept bits per layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sweep_png(sweep: dict[str, Any], path: Path, title: str) -> None:
    """RR train/test on top; k-NN, LR, K-Means and network accuracy below; seed spread shaded; raw dashed."""
    plt = _plt()
    rows = sorted(sweep["rows"], key=lambda r: r["x"])
    xs = np.array([r["x"] for r in rows], dtype=float)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 6.5), sharex=True)

    def series(ax, key: str, label: str, color: str) -> None:  # noqa: ANN001
        m = np.array([np.nan if r["mean"][key] is None else r["mean"][key] for r in rows], dtype=float)
        s = np.array([0.0 if r["std"][key] is None else r["std"][key] for r in rows], dtype=float)
        ax.plot(xs, m, "o-", label=label, color=color)
        ax.fill_between(xs, m - s, m + s, color=color, alpha=0.2)

    series(top, "rr_train", "RR train", "tab:blue")
    series(top, "rr_test", "RR test", "tab:orange")
    top.set_ylabel("redundancy ratio")
    top.set_ylim(-0.03, 1.03)
    top.legend(fontsize=8)
    colors = {"knn_test": "tab:green", "lr_test": "tab:red", "kmeans_test": "tab:purple", "net_test": "black"}
    names = {"knn_test": "k-NN (codes)", "lr_test": "LR (codes)", "kmeans_test": "K-Means (codes)",
             "net_test": "network"}
    for key in colors:
        series(bottom, key, names[key], colors[key])
    raw = sweep.get("raw") or {}
    for key, rkey in (("knn_test", "knn"), ("lr_test", "lr"), ("kmeans_test", "kmeans")):
        if raw.get(rkey) is not None:
            bottom.axhline(raw[rkey], ls="--", color=colors[key], lw=1, label=f"{rkey} on raw inputs")
    bottom.set_ylabel("test accuracy")
    bottom.set_ylim(0, 1.02)
    bottom.legend(fontsize=7, ncol=2)
    kind = sweep["kind"]
    if kind in ("width", "samples") and xs.min() > 0:
        bottom.set_xscale("log")
    if kind == "epochs" and len(xs) > 1:
        bottom.set_xscale("symlog", linthresh=1)
        bottom.set_xlim(left=0, right=xs.max() * 1.1)
    bottom.set_xlabel({"width": "hidden units (total)", "epochs": "epoch", "samples": "training examples"}[kind])
    top.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bits_per_layer_png(bits: list[tuple[str, int, int]], path: Path, title: str) -> None:
    """Bars of units per gate call, kept (varying) bits highlighted."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(bits) + 2), 3.8))
    k = np.arange(len(bits))
    ax.bar(k, [b[1] for b in bits], color="lightgray", label="units")
    ax.bar(k, [b[2] for b in bits], color="tab:blue", label="kept (not constant)")
    ax.set_xticks(k)
    ax.set_xticklabels([b[0] for b in bits], rotation=60, fontsize=7, ha="right")
    units = [b[1] for b in bits]
    if max(units) > 50 * max(1, min(units)):  # conv stems dwarf the head: log scale, bars from 1
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
    ax.set_ylabel("bits")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
