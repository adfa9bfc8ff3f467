"""Report figures: roc.png (pooled and held-out), layers.png (AUROC per layer), strata.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SHOWN = ("probe", "linear", "saplma", "layer0_control", "metadata", "neg_mean_logprob", "neg_first_logprob",
         "task_base_rate")


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points at each distinct score (tied scores move both rates at once, as AUROC counts them)."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(ss) != 0), len(ss) - 1]  # last index of each run of equal scores
    tp, fp = np.cumsum(ys)[last], np.cumsum(1 - ys)[last]
    tpr = np.concatenate([[0.0], tp / max(ys.sum(), 1)])
    fpr = np.concatenate([[0.0], fp / max((1 - ys).sum(), 1)])
    return fpr, tpr


def write_plots(folder: Path, data: dict[str, Any], probe_name: str) -> list[str]:
    """Write the three PNGs into `folder`; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    y, oof = data["y"], data["oof"]
    panels = [("pooled (out-of-fold)", y, oof)]
    if data.get("heldout"):
        panels.append((f"held-out family: {data['holdout_family']}", data["heldout"]["y"],
                       data["heldout"]["scores"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
    for ax, (title, yy, scores) in zip(axes[0], panels, strict=True):
        for name in SHOWN:
            if name in scores and len(set(yy.tolist())) == 2:
                fpr, tpr = _roc(yy, np.asarray(scores[name]))
                auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
                label = probe_name if name == "probe" else name
                ax.plot(fpr, tpr, label=f"{label} ({auc:.2f})", lw=2.2 if name == "probe" else 1.2)
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.axvline(0.1, color="grey", ls="--", lw=0.8)
        ax.set(title=title, xlabel="false-positive rate (correct answers flagged)",
               ylabel="recall of wrong answers")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "roc.png", dpi=110)
    plt.close(fig)
    written.append("roc.png")

    grid = data.get("grid")
    if grid:
        rows = grid["rows"]
        layers = [r["layer"] for r in rows]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for kind in [k for k in ("linear", "mlp") if k in rows[0]]:
            vals = np.array([r[kind] for r in rows], dtype=float)
            ax.plot(layers, vals, marker="o", ms=3, label=f"{kind} probe (out-of-fold)")
            cis = [r.get(f"{kind}_ci95") for r in rows]
            if all(c is not None for c in cis):
                ax.fill_between(layers, [c[0] for c in cis], [c[1] for c in cis], alpha=0.15)
        ctrl = data["scorers"].get("layer0_control", {}).get("auroc")
        if ctrl is not None:
            ax.axhline(ctrl, color="grey", ls="--", lw=1, label=f"layer-0 control ({ctrl:.2f})")
        ax.axvline(data["chosen"], color="red", ls=":", lw=1.2, label=f"chosen layer {data['chosen']}")
        ax.set(xlabel="hidden-state index (0 = embeddings)", ylabel="AUROC (wrong answers)",
               title="AUROC per layer (grid reported beside the search; not used to choose)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "layers.png", dpi=110)
        plt.close(fig)
        written.append("layers.png")

    scorers = data["scorers"]
    names = [n for n in SHOWN if n in scorers and scorers[n].get("within_strata")]
    strata = sorted({s for n in names for s, v in scorers[n]["within_strata"].items() if v.get("auroc") is not None})
    if strata and names:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(strata) + 2), 4.5))
        width = 0.8 / len(names)
        for j, n in enumerate(names):
            vals = [scorers[n]["within_strata"].get(s, {}).get("auroc") for s in strata]
            ax.bar(np.arange(len(strata)) + j * width, [v if v is not None else 0 for v in vals], width,
                   label=probe_name if n == "probe" else n)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xticks(np.arange(len(strata)) + 0.4 - width / 2, strata, rotation=30, ha="right")
        ax.set(ylabel="AUROC within stratum", ylim=(0, 1),
               title="Within-stratum AUROC (strata with >= 10 of each label)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(folder / "strata.png", dpi=110)
        plt.close(fig)
        written.append("strata.png")
    return written
