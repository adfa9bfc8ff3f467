"""Sweeps on a freshly trained MLP family: width, training time (epoch snapshots) or sample size."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dnnkit.probes.gating.units import find_gates
from dnnkit.probes.hashcodes.report import HashOptions, analyse, raw_baselines
from dnnkit.progress import ProgressReporter, or_null

METRIC_KEYS = ("bits_kept", "rr_train", "rr_test", "kmeans_test", "knn_test", "lr_test", "net_train", "net_test")


@dataclass
class SweepConfig:
    """The MLP family and its training (Adam, constant lr, no BatchNorm: the measured default)."""

    kind: str = "width"
    depth: int = 1
    widths: tuple[int, ...] = (3, 10, 20, 40, 60, 100, 200)
    epochs: int = 100
    snapshots: tuple[int, ...] = (0, 1, 3, 10, 30, 100, 300)
    samples: tuple[int | None, ...] = (10, 30, 100, 300, None)  # None = all
    seeds: int = 2
    lr: float = 1e-2
    weight_decay: float = 1e-6
    batch_size: int = 64


def mlp(n_in: int, n_classes: int, depth: int, width: int) -> nn.Sequential:
    """`depth` hidden ReLU layers of width // depth units each (width is the total), linear head."""
    per = width // depth
    layers: list[nn.Module] = [nn.Flatten()]
    d = n_in
    for _ in range(depth):
        layers += [nn.Linear(d, per), nn.ReLU()]
        d = per
    layers.append(nn.Linear(d, n_classes))
    return nn.Sequential(*layers)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: SweepConfig, epochs: int, seed: int,
           on_epoch_end: Any = None) -> None:
    from dnnkit.train import TrainConfig, fit

    fit(model, x, y, TrainConfig(epochs=epochs, lr=cfg.lr, optimizer="adam", weight_decay=cfg.weight_decay,
                                 batch_size=cfg.batch_size, seed=seed), on_epoch_end=on_epoch_end)


def run_sweep(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor, cfg: SweepConfig,
              opts: HashOptions, progress: ProgressReporter | None = None) -> dict[str, Any]:
    """Rows {x, seeds, mean, std} of the report's figures, plus the raw-input baselines."""
    progress = or_null(progress)
    n_in, n_classes = xtr[0].numel(), int(max(int(ytr.max()), int(yte.max())) + 1)
    notes: list[str] = []
    raw = raw_baselines(xtr.flatten(1).numpy(), ytr.numpy(), xte.flatten(1).numpy(), yte.numpy(), n_classes, opts,
                        notes) if opts.raw else None
    per_x: dict[Any, list[dict[str, Any]]] = {}

    def record(x_value: Any, model: nn.Module) -> None:
        res = analyse(model, xtr, ytr, xte, yte, find_gates(model), opts, raw=raw or {})
        per_x.setdefault(x_value, []).append(res.report)
        progress.log(f"sweep {cfg.kind}={x_value}: RR test {res.report['rr_test']}, k-NN {res.report['knn_test']}")

    for seed in range(cfg.seeds):
        if cfg.kind == "width":
            for w in cfg.widths:
                torch.manual_seed(seed)
                model = mlp(n_in, n_classes, cfg.depth, w)
                _train(model, xtr, ytr, cfg, cfg.epochs, seed)
                record(w, model)
        elif cfg.kind == "epochs":
            torch.manual_seed(seed)
            model = mlp(n_in, n_classes, cfg.depth, cfg.widths[0])
            snaps = sorted(set(cfg.snapshots))
            if 0 in snaps:
                record(0, model)
            last = max(snaps)

            def on_end(epoch: int, m: nn.Module, snaps: list[int] = snaps) -> None:
                if epoch + 1 in snaps:
                    record(epoch + 1, copy.deepcopy(m).eval())

            if last > 0:
                _train(model, xtr, ytr, cfg, last, seed, on_end)
        else:
            for n in cfg.samples:
                n_eff = len(xtr) if n is None or n >= len(xtr) else n
                reps = -(-len(xtr) // n_eff)
                xs = xtr[:n_eff].repeat(reps, *([1] * (xtr.dim() - 1)))[: len(xtr)]
                ys = ytr[:n_eff].repeat(reps)[: len(xtr)]
                torch.manual_seed(seed)
                model = mlp(n_in, n_classes, cfg.depth, cfg.widths[0])
                _train(model, xs, ys, cfg, cfg.epochs, seed)
                record(n_eff, model)
    rows = []
    for x_value, reps in per_x.items():
        mean, std = {}, {}
        for key in METRIC_KEYS:
            vals = [r[key] for r in reps if r.get(key) is not None]
            mean[key] = float(np.mean(vals)) if vals else None
            std[key] = float(np.std(vals)) if vals else None
        rows.append({"x": x_value, "seeds": len(reps), "mean": mean, "std": std})
    for reps in per_x.values():
        for r in reps:
            notes.extend(n for n in r["notes"] if n not in notes)
    return {"kind": cfg.kind, "depth": cfg.depth, "rows": rows, "raw": raw, "notes": notes,
            "config": {"widths": list(cfg.widths), "epochs": cfg.epochs, "snapshots": list(cfg.snapshots),
                       "samples": [s if s is not None else "all" for s in cfg.samples], "seeds": cfg.seeds,
                       "lr": cfg.lr, "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size}}
