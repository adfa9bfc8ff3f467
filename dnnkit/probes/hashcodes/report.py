"""One model's hash-code report: codes of train + test, redundancy, categorisation beside raw inputs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dnnkit.probes.gating.units import GateInfo
from dnnkit.probes.hashcodes import metrics
from dnnkit.probes.hashcodes.codes import (
    compute_codes,
    constant_columns,
    keep_columns,
    minmax_pooled,
)
from dnnkit.progress import ProgressReporter, or_null


@dataclass
class HashOptions:
    """Options of the analysis (defaults follow the authors' protocol)."""

    mode: str = "binary"
    max_train: int = 10000
    knn_k: int = 9
    kmeans_init: int = 4
    kmeans_seed: int = 9
    kmeans_map: str = "hungarian"
    raw: bool = True
    seed: int = 0
    batch_size: int = 256


@dataclass
class HashResult:
    """The report plus what the codes file and plots need."""

    report: dict[str, Any]
    train_codes: np.ndarray | None = None
    test_codes: np.ndarray | None = None
    keep: np.ndarray | None = None
    layer_offsets: dict[str, Any] = field(default_factory=dict)
    bits_per_call: list[tuple[str, int, int]] = field(default_factory=list)  # (name, units, kept)


def raw_baselines(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, n_classes: int,
                  opts: HashOptions, notes: list[str]) -> dict[str, float | None]:
    """k-NN (Euclidean), LR and K-Means on the flattened inputs, same subsets as the codes."""
    sub = metrics.stratified_subset(ytr, opts.max_train, opts.seed)
    return metrics.categorise(xtr[sub], ytr[sub], xte, yte, hamming=False, bits=None, n_classes=n_classes,
                              k=opts.knn_k, kmeans_init=opts.kmeans_init, kmeans_seed=opts.kmeans_seed,
                              kmeans_map=opts.kmeans_map, notes=notes, what="raw inputs")


def analyse(model: nn.Module, xtr: torch.Tensor, ytr: torch.Tensor | None, xte: torch.Tensor,
            yte: torch.Tensor | None, gates: list[GateInfo], opts: HashOptions, *,
            raw: dict[str, float | None] | None = None, progress: ProgressReporter | None = None) -> HashResult:
    """Codes of both splits and every figure of the report (labels optional: redundancy only without them)."""
    progress = or_null(progress)
    t0 = time.perf_counter()
    model.eval()
    tr, layout = compute_codes(model, xtr, gates, opts.mode, opts.batch_size, progress, "codes (train)")
    te, _ = compute_codes(model, xte, gates, opts.mode, opts.batch_size, progress, "codes (test)")
    t_codes = time.perf_counter() - t0
    notes: list[str] = []
    kinds = {g.kind for g in gates}
    rep: dict[str, Any] = {
        "layers": [{"name": g.name, "units": sum(u for n, u in zip(layout.names, layout.units, strict=True)
                                                 if n == g.name),
                    "calls": layout.names.count(g.name), "kind": g.kind} for g in gates],
        "gate_kind": "smooth" if kinds == {"smooth"} else "mixed" if len(kinds) > 1 else "relu",
        "code": opts.mode, "bits_total": layout.total, "n_train": len(xtr), "n_test": len(xte),
    }
    if "smooth" in kinds:
        notes.append("smooth units read as sign codes of their input: not the paper's setting, and not linear regions")
    res = HashResult(rep)
    n_classes = int(max(int(ytr.max()), int(yte.max())) + 1) if ytr is not None and yte is not None else 0
    if opts.mode == "binary":
        keep, dead_off, dead_on = constant_columns([tr.codes, te.codes], layout.total)
        bits = int(keep.sum())
        rep.update(bits_kept=bits, dead_units=dead_off, always_on_units=dead_on)
        if dead_off + dead_on > layout.total / 2:
            notes.append(f"{dead_off + dead_on} of {layout.total} units are constant over the data (dead or always on);"
                         " a too-high learning rate kills units")
        ctr, cte = keep_columns(tr.codes, layout.total, keep), keep_columns(te.codes, layout.total, keep)
        rtr, rte = metrics.redundancy(ctr), metrics.redundancy(cte)
        rep.update(rr_train=rtr["rr"], rr_test=rte["rr"], unique_train=rtr["unique"], unique_test=rte["unique"],
                   max_collision=max(rtr["max_collision"], rte["max_collision"]),
                   test_codes_seen_in_train=metrics.seen_in_train(ctr, cte))
        res.train_codes, res.test_codes, res.keep = ctr, cte, keep
        kept_per_call, off = [], 0
        for name, units in zip(layout.names, layout.units, strict=True):
            kept_per_call.append((name, units, int(keep[off:off + units].sum())))
            off += units
        res.bits_per_call = kept_per_call
        res.layer_offsets = {"names": layout.names, "offsets": layout.offsets(), "units": layout.units}
    else:
        ctr, cte = minmax_pooled(tr.codes, te.codes, layout)
        bits = ctr.shape[1]
        rep.update(bits_kept=None, dead_units=None, rr_train=None, rr_test=None, unique_train=None, unique_test=None,
                   max_collision=None, test_codes_seen_in_train=None)
        notes.append("pooled codes are real-valued: redundancy ratio not defined, k-NN is Euclidean")
        res.train_codes, res.test_codes = ctr, cte
        res.layer_offsets = {"names": layout.names, "offsets": layout.offsets(), "units": layout.units}
    t1 = time.perf_counter()
    rep.update(knn_test=None, lr_test=None, kmeans_test=None, kmeans_map=opts.kmeans_map, raw=None,
               net_train=None, net_test=None)
    if ytr is not None and yte is not None:
        ytr_np, yte_np = ytr.numpy(), yte.numpy()
        rep["net_train"] = float((tr.pred == ytr_np).mean())
        rep["net_test"] = float((te.pred == yte_np).mean())
        if opts.mode == "binary" and bits == 0:
            notes.append("all bits are constant: every example shares one code; categorisation metrics are null")
        else:
            sub = metrics.stratified_subset(ytr_np, opts.max_train, opts.seed)
            cat = metrics.categorise(ctr[sub], ytr_np[sub], cte, yte_np, hamming=opts.mode == "binary", bits=bits,
                                     n_classes=n_classes, k=opts.knn_k, kmeans_init=opts.kmeans_init,
                                     kmeans_seed=opts.kmeans_seed, kmeans_map=opts.kmeans_map, notes=notes,
                                     what="codes")
            rep.update(knn_test=cat["knn"], lr_test=cat["lr"], kmeans_test=cat["kmeans"])
        rep["n_train_used"] = int(min(len(ytr_np), opts.max_train))
        if opts.raw:
            rep["raw"] = raw if raw is not None else raw_baselines(
                xtr.flatten(1).numpy(), ytr_np, xte.flatten(1).numpy(), yte_np, n_classes, opts, notes)
    else:
        notes.append("the data has no labels: redundancy figures only")
    rep["notes"] = notes
    rep["timings"] = {"codes_s": t_codes, "metrics_s": time.perf_counter() - t1}
    return res
