"""Benchmark for `dnnkit prune`: accuracy vs sparsity of the six allocation methods on the zoo CNNs
(one-shot, one-shot + an equal short fine-tune, iterative), rd curve cost vs naive passes, and the
DP time on SmolLM2-135M's 210 Linear shapes; and `--models minilm`: embedding cosine of zoo:minilm at
30/50/70 % (uniform, global, LAMP, rd; no fine-tune), inserted as its own section. Writes docs/benchmarks/prune.md.

    python benchmarks/prune.py [--models digits-cnn,fashion-cnn] [--seeds 3] [--out docs/benchmarks/prune.md]
    python benchmarks/prune.py --models minilm --json docs/benchmarks/prune-minilm.json
    python benchmarks/prune.py --models digits-cnn --seeds 5 --regimes iterative-spec --skip-dp --json F.json

`--regimes iterative-spec` is the spec's iterative protocol (20 % of the remainder per step, 5-epoch fine-tunes,
read at steps 14 and 18); `--merge A.json,B.json,...` writes one page from several dumps. The SmolLM2 rows come
from `benchmarks/prune_smollm2.py`; every page this script writes takes the MiniLM and SmolLM2 sections from
docs/benchmarks/prune-minilm.json and prune-smollm2.json when they exist.

The data-free methods run through the public API (`dnnkit.prune(model, ratio=R, method=M)`); rd keeps the
library's internals so that one set of curves per calibration seed serves every ratio (see `Bench.allocate_once`).

Seeds vary the calibration subset (rd) and the fine-tuning order, paired on the same trained zoo
network. The data-free methods do not depend on the seed without fine-tuning.
"""

from __future__ import annotations

import copy
import math
import statistics
from pathlib import Path
from typing import Any

import torch
from harness import (
    DOCS,
    Page,
    Run,
    Timer,
    dump_json,
    header,
    load_json,
    load_span,
    machine_note,
    mean_sd,
    merge_results,
    now_utc,
    parser,
    row,
    sci,
)

import dnnkit
from dnnkit.data import load_data
from dnnkit.metrics import load_inputs
from dnnkit.models.registry import load_model
from dnnkit.surgery.prune.curves import forward_y
from dnnkit.surgery.prune.layers import PrunableLayer
from dnnkit.surgery.prune.network import network_layers
from dnnkit.surgery.prune.rd import rd_allocate
from dnnkit.surgery.prune.run import PruneConfig, step_ratios
from dnnkit.train import TrainConfig, fit

BASELINES = ["uniform", "uniform-plus", "global", "erk", "lamp"]
RD_VARIANTS = ["rd", "rd-worst", "rd-refine"]
RATIOS = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
SEEDS: dict[str, int] = {}  # seeds per model when pages are merged from several runs
SPEC_STEPS, SPEC_EPOCHS, SPEC_RECORD_STEPS = 18, 5, (14, 18)  # spec section 6, regime (3)
SPEC_KEEP = 0.8  # the spec's iterative protocol keeps 80 % of the remaining weights per step: s_j = 1 - 0.8^j
RD_CAP, FT_LR = 0.99, 1e-3  # rd's per-layer cap; the masked fine-tune's Adam learning rate
CURVE_TARGET, DP_TARGET_S, DP_CAP = 0.6, 10.0, 0.99  # curves <= 0.6x naive passes; DP < 10 s CPU (at cap 0.99)
MIN_EFFECT = 0.5  # points: a "win" needs mean > 2 SD of the paired difference and at least this (~3 digits samples)

CONFIG = {
    # levels, calib, fine-tune epochs, fine-tune samples, test samples, iterative steps, iterative ratios
    "digits-cnn": {"data": "digits", "levels": 51, "calib": 256, "ft_epochs": 2, "ft_samples": None, "test": None,
                   "iter_steps": 3, "iter_ratios": [0.95, 0.98], "iter_methods": ["rd", "lamp", "global"],
                   "ft_ratios": [0.9, 0.95, 0.98], "ft_methods": ["global", "erk", "lamp", "rd", "rd-refine"],
                   "refine": 3},
    "fashion-cnn": {"data": "fashion-mnist", "levels": 21, "calib": 128, "ft_epochs": 1, "ft_samples": 2000,
                    "test": 1000, "ft_methods": ["global", "erk", "lamp", "rd", "rd-refine"],
                    "iter_steps": 3, "iter_ratios": [0.95, 0.98],
                    "iter_methods": ["rd", "lamp", "global"],
                    "ft_ratios": [0.9, 0.95, 0.98], "refine": 2},
}


def accuracy(model: torch.nn.Module, test: Any) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        y = torch.cat([forward_y(model, "classifier", test.slice(i, i + 512)) for i in range(0, len(test), 512)])
    return float((y.argmax(-1) == test.y).float().mean()), y


class Bench:
    """One model's runs."""

    def __init__(self, name: str, seeds: int, log: Any) -> None:
        self.name, self.cfg, self.seeds, self.log = name, CONFIG[name], seeds, log
        self.loaded = load_model(f"zoo:{name}")
        self.dense = self.loaded.model
        self.layers = network_layers(self.dense, PruneConfig(ratio=0.5))
        self.test = load_inputs(self.loaded, self.cfg["data"], "test", self.cfg["test"], 0)
        self.dense_acc, self.dense_y = accuracy(self.dense, self.test)
        self.train = load_data(self.cfg["data"], "train")
        self.curves: dict[tuple[int, str], Any] = {}
        self.rows: list[dict[str, Any]] = []
        self.curve_cost: list[dict[str, Any]] = []
        self.dump: Any = None

    def calib(self, seed: int) -> tuple[Any, torch.Tensor]:
        x = load_inputs(self.loaded, self.cfg["data"], "train", self.cfg["calib"], seed)
        with torch.no_grad():
            return x, forward_y(self.dense, "classifier", x)

    def fresh_layers(self, model: torch.nn.Module) -> list[PrunableLayer]:
        params = dict(model.named_parameters())
        return [PrunableLayer(layer.name, layer.shape, int((params[layer.name] == 0).sum())) for layer in self.layers]

    def allocate_once(self, model: torch.nn.Module, method: str, ratio: float, seed: int, calib: Any,
                      iterative: bool = False) -> tuple[torch.nn.Module, dict[str, Any]]:
        """`model` pruned to `ratio` with `method` (a new module; `model` itself is left as it is) and rd's
        diagnostics."""
        if method in BASELINES:  # data-free: exactly `dnnkit prune --method M --ratio R` on this module
            return dnnkit.prune(model, ratio=ratio, method=method).model, {}
        # rd keeps the library's internals on purpose: one set of single-layer curves of the dense model is
        # measured per calibration seed and objective and reused for every ratio and the fine-tune regime
        # (`self.curves`); `dnnkit.prune(method="rd")` would measure them again for each call. Same calls, same
        # arguments as the command's one-shot path (calibration samples, cap 0.99, batch 256).
        model = copy.deepcopy(model)
        layers = self.fresh_layers(model)
        objective = "worst-case" if method == "rd-worst" else "mean"
        x, _ = calib
        with torch.no_grad():
            ref = forward_y(model, "classifier", x)  # one-shot: the dense model; iterative: the current one
        key = (seed, objective)
        cached = None if iterative else self.curves.get(key)
        out = rd_allocate(model, "classifier", x, ref, layers, ratio, levels=self.cfg["levels"], cap=RD_CAP,
                          objective=objective, dp_units=None, batch_size=256, iterative=iterative,
                          refine=self.cfg["refine"] if method == "rd-refine" else 0, curves=cached)
        if cached is None and not iterative:
            self.curves[key] = out.curves
            self.curve_cost.append({"seed": seed, "objective": objective, "curves_s": out.curves.seconds,
                                    "naive_s": out.curves.naive_estimate_seconds, "passes": out.curves.naive_passes,
                                    "full_pass_s": out.curves.full_pass_seconds, "reuse": out.curves.reuse})
        return model, {"zeros": out.zeros, "rho": out.rho, "dp_s": out.dp_seconds, "start": out.start}

    def finetune(self, model: torch.nn.Module, seed: int, epochs: int) -> None:
        n = self.cfg["ft_samples"]
        g = torch.Generator().manual_seed(1000 + seed)
        idx = torch.randperm(len(self.train), generator=g)[:n] if n else torch.arange(len(self.train))
        masks = {layer.name: dict(model.named_parameters())[layer.name] != 0 for layer in self.layers}
        fit(model, self.train.x[idx], self.train.y[idx], TrainConfig(epochs=epochs, lr=FT_LR, batch_size=64,
                                                                     seed=seed), masks=masks)

    def record(self, regime: str, method: str, ratio: float, seed: int, model: torch.nn.Module,
               info: dict[str, Any], seconds: float) -> None:
        acc, y = accuracy(model, self.test)
        params = dict(model.named_parameters())
        zeros = [int((params[layer.name] == 0).sum()) for layer in self.layers]
        total = sum(layer.n for layer in self.layers)
        self.rows.append({"model": self.name, "regime": regime, "method": method, "ratio": ratio, "seed": seed,
                          "accuracy": acc, "achieved": sum(zeros) / total, "exact": sum(zeros) == round(ratio * total),
                          "mse": float(((y - self.dense_y) ** 2).mean()), "rho": info.get("rho"),
                          "start": info.get("start"), "max_layer": max(z / layer.n for z, layer in
                                                                       zip(zeros, self.layers, strict=True)),
                          "seconds": seconds})
        if self.dump is not None:
            self.dump(self.rows)
        self.log(f"{self.name} {regime:9s} {method:12s} {ratio:.2f} seed {seed}: acc {acc:.4f} "
                 f"rho {info.get('rho')} ({seconds:.1f} s)")

    def one_shot(self, finetune: bool) -> None:
        regime = "ft" if finetune else "one-shot"
        ratios = self.cfg["ft_ratios"] if finetune else RATIOS
        for seed in range(self.seeds):
            calib = self.calib(seed)
            for ratio in ratios:
                methods = self.cfg.get("ft_methods", BASELINES + RD_VARIANTS) if finetune else BASELINES + RD_VARIANTS
                for method in methods:
                    if method in BASELINES and not finetune and seed > 0:
                        continue  # deterministic: identical for every seed
                    with Timer() as t:
                        try:
                            model, info = self.allocate_once(self.dense, method, ratio, seed, calib)
                        except Exception as exc:  # noqa: BLE001 - e.g. uniform-plus unreachable: recorded, not fatal
                            self.log(f"{self.name} {method} {ratio}: {exc}")
                            continue
                        if finetune:
                            self.finetune(model, seed, self.cfg["ft_epochs"])
                    self.record(regime, method, ratio, seed, model, info, t.wall)

    def iterative(self) -> None:
        steps, epochs = self.cfg["iter_steps"], self.cfg["ft_epochs"]
        for seed in range(self.seeds):
            calib = self.calib(seed)
            for ratio in self.cfg["iter_ratios"]:
                for method in self.cfg["iter_methods"]:
                    with Timer() as t:
                        model, info = self.dense, {}
                        for j, r in enumerate(step_ratios(ratio, steps)):
                            model, info = self.allocate_once(model, method, r, seed, calib, iterative=j > 0)
                            self.finetune(model, seed, epochs)
                    self.record("iterative", method, ratio, seed, model, info, t.wall)

    def iterative_spec(self, steps: int = SPEC_STEPS, epochs: int = SPEC_EPOCHS) -> None:
        """The spec's iterative protocol: 20 % of the remainder per step (s_j = 1 - 0.8^j), a 5-epoch masked
        fine-tune after every step; one trajectory per method and seed, recorded at steps 14 (95.6 %) and 18
        (98.2 %)."""
        for seed in range(self.seeds):
            calib = self.calib(seed)
            for method in self.cfg["iter_methods"]:
                t = Timer()
                model, info = self.dense, {}
                for j in range(1, steps + 1):
                    r = 1 - SPEC_KEEP ** j
                    model, info = self.allocate_once(model, method, r, seed, calib, iterative=j > 1)
                    self.finetune(model, seed, epochs)
                    if j in SPEC_RECORD_STEPS:
                        self.record("iterative-spec", method, r, seed, model, info, t.wall)


def dp_timing() -> list[dict[str, Any]]:
    """DP time on SmolLM2-135M's 210 block Linear shapes (from the GGUF header) with synthetic curves."""
    import numpy as np

    from dnnkit.models.weights import GGUFWeights
    from dnnkit.surgery.prune.dp import LayerOptions, choose_unit, solve
    from dnnkit.zoo.catalog import ZOO, shipped_path

    src = GGUFWeights(shipped_path(ZOO["smollm2-135m"]))
    names = [n for n in src.names() if n.startswith("blk.") and len(src.shape(n)) == 2]
    rng = np.random.default_rng(0)
    levels = 101
    out = []
    for ratio in (0.3, 0.5, 0.7):
        opts = []
        for n in names:
            size = math.prod(src.shape(n))
            grid = [d * size // (levels - 1) for d in range(levels)]
            zs = [z for z in grid if z <= math.floor(DP_CAP * size)]
            curve = np.cumsum(rng.random(len(zs)) * np.linspace(0.01, 1, len(zs)) ** 3)
            curve[0] = 0.0
            opts.append(LayerOptions(n, size, [size - z for z in zs], list(curve)))
        total = sum(o.n for o in opts)
        survivors = total - round(ratio * total)
        with Timer() as t:
            unit = choose_unit(opts, survivors, None)
            result = solve(opts, survivors, unit)
        out.append({"ratio": ratio, "layers": len(opts), "levels": levels, "total": total, "unit": unit,
                    "seconds": t.wall, "cpu_s": t.cpu, "topped_up": result.topped_up,
                    "exact": sum(result.survivors) == survivors})
    return out


def summarise(rows: list[dict[str, Any]], model: str, regime: str) -> list[str]:
    """Markdown rows: mean accuracy per method, best baseline, rd variants' paired difference."""
    sel = [r for r in rows if r["model"] == model and r["regime"] == regime]
    if not sel:
        return []
    methods = BASELINES + RD_VARIANTS
    present = [m for m in methods if any(r["method"] == m for r in sel)]
    lines = ["| sparsity | " + " | ".join(present) + " | best baseline | rd - best (paired) | rd-refine - best | "
             "verdict (rd / rd-refine) |", "|" + " --- |" * (len(present) + 5)]
    for ratio in sorted({r["ratio"] for r in sel}):
        acc = {m: [r for r in sel if r["method"] == m and r["ratio"] == ratio] for m in present}
        cells = []
        for m in present:
            vals = [100 * r["accuracy"] for r in acc[m]]
            mu, sd = mean_sd(vals)
            cells.append("-" if not vals else (f"{mu:.2f} ± {sd:.2f}" if len(vals) > 1 else f"{mu:.2f}"))
        base = {m: mean_sd([100 * r["accuracy"] for r in acc[m]])[0] for m in BASELINES if acc.get(m)}
        best = max(base, key=base.get) if base else None
        diffs, verdicts = [], []
        for variant in ("rd", "rd-refine"):
            d = []
            for r in acc.get(variant, []):
                same = [b for b in acc[best] if b["seed"] == r["seed"]] or acc[best]
                d.append(100 * (r["accuracy"] - same[0]["accuracy"]))
            mu, sd = mean_sd(d)
            diffs.append("-" if not d else f"{mu:+.2f} ± {sd:.2f}")
            if not d:
                verdicts.append("-")
            elif len(d) > 1 and mu > 2 * sd and mu >= MIN_EFFECT:
                verdicts.append("win")
            elif len(d) > 1 and mu < -2 * sd and mu <= -MIN_EFFECT:
                verdicts.append("loss")
            elif len(d) == 1:
                verdicts.append("tie (1 seed)" if abs(mu) < MIN_EFFECT else
                                ("ahead (1 seed)" if mu > 0 else "behind (1 seed)"))
            else:
                verdicts.append("tie")
        lines.append(f"| {100 * ratio:.3g} % | " + " | ".join(cells) +
                     f" | {best} {base.get(best, math.nan):.2f} | {diffs[0]} | {diffs[1]} | {' / '.join(verdicts)} |")
    return lines


def _paired(rows: list[dict[str, Any]], model: str, regime: str, ratio: float, method: str,
            other: str) -> list[float]:
    mine = [r for r in rows if (r["model"], r["regime"], r["ratio"], r["method"]) == (model, regime, ratio, method)]
    theirs = {r["seed"]: r for r in rows if (r["model"], r["regime"], r["ratio"], r["method"]) ==
              (model, regime, ratio, other)}
    fallback = next(iter(theirs.values()), None)
    return [100 * (r["accuracy"] - (theirs.get(r["seed"]) or fallback)["accuracy"]) for r in mine
            if theirs.get(r["seed"]) or fallback]


def protocol_reading(rows: list[dict[str, Any]], models: list[str]) -> list[str]:
    """Iterative rd vs LAMP, scaled-down 3-step runs beside the spec's 18-step protocol, per model."""
    parts, behind = [], []
    for model in models:
        spec = sorted({r["ratio"] for r in rows if r["model"] == model and r["regime"] == "iterative-spec"})
        if not spec:
            continue
        if mean_sd(_paired(rows, model, "iterative-spec", spec[-1], "rd", "lamp"))[0] < 0:
            behind.append(f"{model} at {100 * spec[-1]:.3g} %")
        cells = []
        for regime, ratio in (("iterative", 0.95), ("iterative-spec", spec[0]), ("iterative", 0.98),
                              ("iterative-spec", spec[-1])):
            mu, sd = mean_sd(_paired(rows, model, regime, ratio, "rd", "lamp"))
            steps = "3 steps" if regime == "iterative" else "spec"
            cells.append(f"{100 * ratio:.3g} % ({steps}) {mu:+.2f} ± {sd:.2f}")
        parts.append(f"{model}: " + ", ".join(cells))
    if not parts:
        return []
    still = f" (it is still behind on {', '.join(behind)})" if behind else ""
    return ["Reading, iterative rd minus LAMP (paired, points): " + "; ".join(parts) + ". With the spec's small "
            "steps (20 % of the remainder, 5-epoch fine-tunes) the large 3-step losses at 98 % shrink, but nowhere "
            f"does rd's lead over LAMP exceed twice the paired spread{still}: the issue's iterative targets are "
            "missed, by the margins in the table."]


def _seed_count(rows: list[dict[str, Any]], model: str, regime: str) -> int:
    return len({r["seed"] for r in rows if r["model"] == model and r["regime"] == regime})


def _mean_of(rows: list[dict[str, Any]], key: str, **match: Any) -> float:
    vals = [r[key] for r in rows if all(r.get(k) == v for k, v in match.items()) and r.get(key) is not None]
    return statistics.mean(vals) if vals else math.nan


def target_lines(rows: list[dict[str, Any]], costs: dict[str, list[dict[str, Any]]],
                 dp: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each marked met or missed with the numbers and the reason."""
    lines = ["| target | model | measured (paired mean ± SD, points) | verdict | why / note |",
             "| --- | --- | --- | --- | --- |"]
    for model in costs:
        spec_ratios = sorted({r["ratio"] for r in rows if r["model"] == model and r["regime"] == "iterative-spec"})
        for regime, ratio in [("iterative", 0.95), ("iterative", 0.98)] + [("iterative-spec", r) for r in spec_ratios]:
            label = "iterative rd (3 steps)" if regime == "iterative" else "iterative rd (spec protocol)"
            for other in ("lamp", "global"):
                d = _paired(rows, model, regime, ratio, "rd", other)
                if not d:
                    continue
                mu, sd = mean_sd(d)
                ok = len(d) > 1 and mu > 2 * sd and mu >= MIN_EFFECT
                rd_max = _mean_of(rows, "max_layer", model=model, regime=regime, ratio=ratio, method="rd")
                o_max = _mean_of(rows, "max_layer", model=model, regime=regime, ratio=ratio, method=other)
                rho = _mean_of(rows, "rho", model=model, regime=regime, ratio=ratio, method="rd")
                where = ("ahead, but inside the paired spread (a win needs mean > 2 SD)" if mu > 0 else
                         "behind" if mu < -2 * sd else "behind, inside the paired spread")
                why = "" if ok else (f"{where}; rd's most pruned layer {100 * rd_max:.1f} % vs {other}'s "
                                     f"{100 * o_max:.1f} %, final-step ρ {rho:.2f}")
                lines.append(f"| {label} beats {other} at {100 * ratio:.3g} % | {model} | {mu:+.2f} ± {sd:.2f} "
                             f"(n={len(d)}) | {'met' if ok else 'missed'} | {why} |")
        for regime in ("one-shot", "ft"):
            sel = [r for r in rows if r["model"] == model and r["regime"] == regime and r["ratio"] == 0.95]
            base = {m: _mean_of(sel, "accuracy", method=m) for m in BASELINES}
            base = {m: v for m, v in base.items() if not math.isnan(v)}
            if not base or not any(r["method"] == "rd-refine" for r in sel):
                continue
            best = max(base, key=base.get)
            d = _paired(rows, model, regime, 0.95, "rd-refine", best)
            mu, sd = mean_sd(d)
            ok = mu >= -max(2 * sd, MIN_EFFECT)
            rho = _mean_of(sel, "rho", method="rd")
            label = "one-shot" if regime == "one-shot" else "one-shot + fine-tune"
            why = "" if ok else (f"refine lowers the calibration distortion but not the error; rd ρ {rho:.2f} at 95 %")
            lines.append(f"| {label} rd --refine at least ties the best baseline ({best}) at 95 % | {model} | "
                         f"{mu:+.2f} ± {sd:.2f} (n={len(d)}) | {'met' if ok else 'missed'} | {why} |")
        c = costs.get(model) or []
        if c:
            ratios = [x["curves_s"] / x["naive_s"] for x in c if x["naive_s"]]
            mu = statistics.mean(ratios)
            span = f"{min(ratios):.2f}–{max(ratios):.2f}"
            lines.append(f"| curves ≤ {CURVE_TARGET}× naive passes | {model} | {mu:.2f}× (range {span}) "
                         f"| {'met' if mu <= CURVE_TARGET else 'missed'} | naive = one timed full pass × L·(K−1); "
                         "loaded machine, noisy |")
        exact = all(r["exact"] for r in rows if r["model"] == model)
        runs = sum(r["model"] == model for r in rows)
        verdict = "met" if exact else "missed"
        lines.append(f"| achieved count = target, every run | {model} | {runs} runs | {verdict} | |")
    lines.append(SMOL_ROW)  # the SmolLM2 and MiniLM dumps replace / add their rows (add_smollm2, add_minilm)
    for d in dp:
        if d["ratio"] == 0.5:
            lines.append(f"| SmolLM2-135M DP ({d['layers']} Linear, {d['levels']} levels) < {DP_TARGET_S:g} s | "
                         f"smollm2-135m shapes | {d['cpu_s']:.2f} s CPU ({d['seconds']:.2f} s wall) | "
                         f"{'met' if d['cpu_s'] < DP_TARGET_S else 'missed'} | synthetic curves on the real shapes |")
    return lines


def rho_lines(rows: list[dict[str, Any]], model: str) -> list[str]:
    sel = [r for r in rows if r["model"] == model and r["regime"] == "one-shot"]
    lines = ["| sparsity | rd ρ (mean obj.) | rd held-out logit MSE | best baseline MSE | rd-refine MSE | "
             "refine start | rd max layer sparsity |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for ratio in sorted({r["ratio"] for r in sel}):
        rd = [r for r in sel if r["method"] == "rd" and r["ratio"] == ratio]
        rf = [r for r in sel if r["method"] == "rd-refine" and r["ratio"] == ratio]
        base = [r for r in sel if r["method"] in BASELINES and r["ratio"] == ratio]
        if not rd:
            continue
        bmse = min(base, key=lambda r: r["mse"]) if base else None
        rho = mean_sd([r["rho"] for r in rd if r["rho"] is not None])
        rd_mse, rf_mse = mean_sd([r["mse"] for r in rd])[0], mean_sd([r["mse"] for r in rf])[0]
        starts = ", ".join(sorted({str(r["start"]) for r in rf}))
        lines.append(f"| {100 * ratio:.0f} % | {rho[0]:.2f} ± {rho[1]:.2f} | {rd_mse:.4g} | "
                     f"{bmse['mse']:.4g} ({bmse['method']}) | {rf_mse:.4g} | {starts} | "
                     f"{max(r['max_layer'] for r in rd):.3f} |")
    return lines


# --------------------------------------------------------------------------------------------
# zoo:minilm (spec section 6): embedding cosine to the dense model at 30/50/70 %, no fine-tune.

MINILM = {"ratios": [0.3, 0.5, 0.7], "methods": ["uniform", "global", "lamp", "rd"], "levels": 21, "calib": 64,
          "calib_seq_len": 64, "test_seq_len": 128, "exclude": ["pooler.*"], "cap": 0.99, "data": "wiki"}
SPEC_MINILM_TEST = 500  # held-out sentences the spec asks for
MINILM_COMMAND = "python benchmarks/prune.py --models minilm --json docs/benchmarks/prune-minilm.json"
MINILM_ROW = "| embedding cosine of MiniLM"  # its row in the targets table (replaced in place)
MINILM_JSON = DOCS / "prune-minilm.json"


def _ratios_text(ratios: list[float]) -> str:
    return "/".join(f"{100 * r:.0f}" for r in ratios)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman ρ between two 1-D tensors (ranks by argsort; ties among float similarities are negligible)."""
    ra = torch.empty_like(a).scatter_(0, a.argsort(), torch.arange(len(a), dtype=a.dtype))
    rb = torch.empty_like(b).scatter_(0, b.argsort(), torch.arange(len(b), dtype=b.dtype))
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def _pairwise(y: torch.Tensor) -> torch.Tensor:
    z = torch.nn.functional.normalize(y.double(), dim=-1)
    sim = z @ z.T
    i, j = torch.triu_indices(len(z), len(z), offset=1)
    return sim[i, j]


def minilm_bench(log: Any, methods: list[str] | None = None) -> dict[str, Any]:
    """Prune the 36 encoder Linear weights of zoo:minilm (not the pooler) with uniform, global, LAMP and
    rd (pooled-embedding MSE, one set of curves reused for every ratio); held-out cosine to dense."""
    from dnnkit.surgery.prune.curves import Curves

    cfg = MINILM
    run = Run(threads=1)
    loaded = load_model("zoo:minilm")
    dense = loaded.model.eval()
    layers = network_layers(dense, PruneConfig(ratio=0.5, exclude=cfg["exclude"]))
    names = [layer.name for layer in layers]
    test = load_inputs(loaded, cfg["data"], "test", None, 0, cfg["test_seq_len"])
    calib = load_inputs(loaded, cfg["data"], "train", cfg["calib"], 0, cfg["calib_seq_len"])

    def embed(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([forward_y(model, "encoder", inputs.slice(i, i + 32)) for i in range(0, len(inputs), 32)])

    dense_y = embed(dense, test)
    dense_pairs = _pairwise(dense_y)
    ref = embed(dense, calib)
    log(f"minilm: {len(layers)} layers, {sum(x.n for x in layers)} weights, {len(test)} test, {len(calib)} calib "
        f"({run.elapsed:.1f} s)")
    rows: list[dict[str, Any]] = []
    curves: Curves | None = None
    curve_info: dict[str, Any] = {}
    for ratio in cfg["ratios"]:
        for method in methods or cfg["methods"]:
            t = Timer()
            info: dict[str, Any] = {}
            if method == "rd":  # internals: one set of curves measured once and reused for every ratio
                model = copy.deepcopy(dense)
                params = dict(model.named_parameters())
                out = rd_allocate(model, "encoder", calib, ref, layers, ratio, levels=cfg["levels"], cap=cfg["cap"],
                                  objective="mean", dp_units=None, batch_size=256, curves=curves)
                if curves is None:
                    curves = out.curves
                    curve_info = {"curves_s": out.curves.seconds, "naive_s": out.curves.naive_estimate_seconds,
                                  "passes": out.curves.naive_passes, "full_pass_s": out.curves.full_pass_seconds,
                                  "reuse": out.curves.reuse}
                zeros = out.zeros
                info = {"rho": out.rho, "dp_s": out.dp_seconds, "calib_mse": out.measured}
            else:  # data-free: `dnnkit prune --method M --ratio R --exclude 'pooler.*'`
                result = dnnkit.prune(dense, ratio=ratio, method=method, exclude=cfg["exclude"])
                model, params = result.model, dict(result.model.named_parameters())
                assert [r["name"] for r in result.report["layers"]] == names
                zeros = [r["size"] - r["kept"] for r in result.report["layers"]]
            y = embed(model, test)
            cos = torch.nn.functional.cosine_similarity(y, dense_y, dim=-1)
            total = sum(layer.n for layer in layers)
            got = sum(int((params[n] == 0).sum()) for n in names)
            rows.append({"method": method, "ratio": ratio, "cosine": float(cos.mean()), "cosine_min": float(cos.min()),
                         "spearman": _spearman(_pairwise(y), dense_pairs), "mse": float(((y - dense_y) ** 2).mean()),
                         "achieved": got / total, "exact": sum(zeros) == round(ratio * total),
                         "max_layer": max(z / layer.n for z, layer in zip(zeros, layers, strict=True)),
                         "seconds": t.wall, **info})
            r = rows[-1]
            log(f"minilm {method:8s} {ratio:.2f}: cos {r['cosine']:.4f} spearman {r['spearman']:.4f} "
                f"rho {r.get('rho')} ({r['seconds']:.1f} s)")
    record = run.finish()
    return {"rows": rows, "curves": curve_info, "layers": len(layers), "weights": sum(x.n for x in layers),
            "test": len(test), "calib": len(calib), "seconds": record["wall_s"], "date": record["date"],
            "machine": record["machine"], "run": record}


def minilm_lines(res: dict[str, Any]) -> list[str]:
    """The `## zoo:minilm` section of the page."""
    cfg, rows = MINILM, res["rows"]
    c = res["curves"]
    lines = ["## zoo:minilm (embedding cosine to dense, no fine-tune)", "",
             f"Command: `{(res.get('run') or {}).get('command') or MINILM_COMMAND}`  ",
             (f"Machine: {machine_note(res['run'])}; " if res.get("run") else
              f"Date: {res['date']}; threads: 1; machine: {res['machine']} (load average not recorded); ")
             + f"{res['seconds'] / 60:.1f} min wall in all.", "",
             f"Pruned: the {res['layers']} encoder Linear weights ({res['weights']:,} weights; `--exclude 'pooler.*'`, "
             "biases and LayerNorms untouched). rd: objective = mean squared error of the mean-pooled embedding on "
             f"{res['calib']} built-in-corpus (`--data wiki`, train split) sentences truncated to "
             f"{cfg['calib_seq_len']} tokens, {cfg['levels']} levels, cap {cfg['cap']}; one set of curves measured "
             f"once and reused for all {len(cfg['ratios'])} ratios. Held out: all "
             f"{res['test']} sentences of the wiki test split (the spec asks for ≥ {SPEC_MINILM_TEST}; the corpus has "
             f"{res['test']}), up to {cfg['test_seq_len']} tokens. Cells: mean cosine between the pruned and the "
             "dense pooled embedding; in brackets the Spearman ρ of the pairwise cosine similarities (all "
             "sentence pairs) against the dense model's. Best per row in bold. One calibration subset (seed 0), "
             "so no spread is given; the data-free methods are deterministic. rd ρ is the additivity check on "
             "the calibration set (sum of single-layer distortions / measured distortion).", "",
             "| sparsity | uniform | global | LAMP | rd | rd ρ (pred./meas.) | rd max layer sparsity |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for ratio in cfg["ratios"]:
        sel = {r["method"]: r for r in rows if r["ratio"] == ratio}
        if not sel:
            continue
        best = max(sel, key=lambda m: sel[m]["cosine"])
        cells = []
        for m in cfg["methods"]:
            r = sel.get(m)
            if r is None:
                cells.append("not run")
                continue
            txt = f"{r['cosine']:.4f} ({r['spearman']:.3f})"
            cells.append(f"**{txt}**" if m == best else txt)
        rd = sel.get("rd")
        rho = "-" if rd is None or rd.get("rho") is None else f"{rd['rho']:.2f}"
        mx = "-" if rd is None else f"{rd['max_layer']:.3f}"
        lines.append(f"| {100 * ratio:.0f} % | " + " | ".join(cells) + f" | {rho} | {mx} |")
    lines.append("")
    if c:
        ratio = c["curves_s"] / c["naive_s"] if c["naive_s"] else math.nan
        lines += [f"rd curves: {c['curves_s']:.1f} s once (naive L·(K−1) = {c['passes']} passes × "
                  f"{c['full_pass_s']:.3f} s = {c['naive_s']:.1f} s; ratio {ratio:.2f}; reuse: {c['reuse']}), "
                  "then the DP per ratio (" + ", ".join(f"{r['dp_s']:.2f} s" for r in rows if r["method"] == "rd")
                  + ").", ""]
    if res.get("note"):
        lines += [f"Note: {res['note']}", ""]
    exact = all(r["exact"] for r in rows)
    lines += [f"Achieved sparsity equals the target to the weight in every run: {'yes' if exact else 'NO'}.", ""]
    return lines


def minilm_target(res: dict[str, Any]) -> str:
    rows = res["rows"]
    parts, wins = [], 0
    for ratio in MINILM["ratios"]:
        sel = {r["method"]: r["cosine"] for r in rows if r["ratio"] == ratio}
        if "rd" not in sel:
            continue
        base = {m: v for m, v in sel.items() if m != "rd"}
        best = max(base, key=base.get)
        wins += sel["rd"] >= base[best]
        parts.append(f"{100 * ratio:.0f} %: rd {sel['rd']:.4f} vs {best} {base[best]:.4f}")
    done = len(parts)
    verdict = "met (measured)" if done == len(MINILM["ratios"]) else "missed (partly run)"
    return (f"{MINILM_ROW} at {_ratios_text(MINILM['ratios'])} % (uniform, global, LAMP, rd) | minilm | "
            f"{'; '.join(parts)} "
            f"| {verdict} | rd highest at {wins} of {done} ratios; one calibration subset (no seeds, no spread), "
            "so no win is claimed; see `## zoo:minilm` |")


SMOL_ROW = ("| perplexity of SmolLM2-135M at 30/50/70 % (uniform, global, LAMP, rd) | smollm2-135m | not run | missed "
            "| run `python benchmarks/prune_smollm2.py` (see its docstring) |")
SMOL_JSON = DOCS / "prune-smollm2.json"
DP_SECTION = "## DP time on SmolLM2"


def insert_minilm(path: Path, res: dict[str, Any]) -> None:
    """Put the MiniLM section and target row into an existing page, in place of earlier ones (the other
    sections are kept)."""
    page = Page.read(path)
    add_minilm(page, res)
    page.write(path)


def add_minilm(page: Page, res: dict[str, Any]) -> None:
    import prune_smollm2  # the sibling script (this script's folder is on sys.path)

    page.set("## zoo:minilm", minilm_lines(res),
             before=prune_smollm2.PAGE_SECTION if page.has(prune_smollm2.PAGE_SECTION) else DP_SECTION)
    page.replace_lines([MINILM_ROW], [minilm_target(res)], after=[prune_smollm2.COST_ROW, prune_smollm2.TARGET_ROW])


def add_smollm2(page: Page) -> None:
    """The SmolLM2 section and rows (from `prune_smollm2.py --json`), when that dump exists."""
    if SMOL_JSON.exists():
        import prune_smollm2

        prune_smollm2.add_section(page, load_json(SMOL_JSON))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="digits-cnn,fashion-cnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--regimes", default="one-shot,ft,iterative")
    ap.add_argument("--out", default=str(DOCS / "prune.md"))
    ap.add_argument("--json", default=None, help="also dump raw rows here")
    ap.add_argument("--skip-dp", action="store_true")
    ap.add_argument("--merge", default=None, help="comma-separated --json dumps: write one table from them")
    ap.add_argument("--minilm-from", default=None, help="a `--models minilm --json` dump: (re)insert its section "
                    "into --out without rerunning (a page written by --merge already takes "
                    f"{MINILM_JSON.relative_to(DOCS.parent.parent)})")
    ap.add_argument("--minilm-methods", default=None, help="subset of uniform,global,lamp,rd for --models minilm")
    args = ap.parse_args()
    run = Run(threads=1)
    if args.merge:
        merge(args)
        return
    if args.minilm_from:
        insert_minilm(Path(args.out), load_json(args.minilm_from))
        return
    log = run.log
    if args.models == "minilm":  # its own section, inserted into the existing page
        res = minilm_bench(log, args.minilm_methods.split(",") if args.minilm_methods else None)
        if args.json:
            dump_json(args.json, res)
        insert_minilm(Path(args.out), res)
        log(f"wrote the zoo:minilm section into {args.out}")
        return
    all_rows: list[dict[str, Any]] = []
    costs: dict[str, list[dict[str, Any]]] = {}
    dense: dict[str, float] = {}
    regimes = args.regimes.split(",")

    def result(rows: list[dict[str, Any]], costs: dict[str, Any], dp: list[dict[str, Any]], **extra: Any) -> dict:
        return {"rows": rows, "costs": costs, "dp": dp, "dense": dense, "seconds": run.elapsed, **extra,
                "seeds": args.seeds, "command": run.record["command"], "run": run.record}

    for name in args.models.split(","):
        bench = Bench(name, args.seeds, log)
        dense[name] = bench.dense_acc
        if args.json:  # partial results survive an interrupted run
            bench.dump = lambda rows, b=bench, done=list(all_rows): dump_json(args.json, result(
                done + rows, {**costs, b.name: b.curve_cost}, [], partial=True))
        if "one-shot" in regimes:
            bench.one_shot(finetune=False)
        if "ft" in regimes:
            bench.one_shot(finetune=True)
        if "iterative" in regimes:
            bench.iterative()
        if "iterative-spec" in regimes:
            bench.iterative_spec()
        all_rows += bench.rows
        costs[name] = bench.curve_cost
    dp = [] if args.skip_dp else dp_timing()
    run.finish()
    res = result(all_rows, costs, dp)
    if args.json:
        dump_json(args.json, res)
    write_markdown(Path(args.out), all_rows, costs, dp, dense, args, res["seconds"], [run.record])
    log(f"wrote {args.out}")


def merge(args: Any) -> None:
    """One markdown page from several runs' raw dumps (e.g. one process per model)."""
    parts = [load_json(part) for part in args.merge.split(",")]
    runs: list[str] = []
    for part, data in zip(args.merge.split(","), parts, strict=True):
        spec_only = {r["regime"] for r in data["rows"]} == {"iterative-spec"}
        if spec_only:  # the spec regime's first-step curves stay out of the cost table
            data["costs"] = {name: [] for name in data["costs"]}
        for name in data["costs"]:
            seen = [r["seed"] for r in data["rows"] if r["model"] == name]
            if not spec_only:  # the seeds of the scaled-down regimes; the spec regime states its own
                SEEDS[name] = data.get("seeds") or (max(seen) + 1 if seen else args.seeds)
        name = next(iter(data["costs"]), "")
        runs.append(f"`{data['command']}`" if data.get("command") else
                    f"`python benchmarks/prune.py --models {name} --seeds {SEEDS.get(name, args.seeds)} --json "
                    f"{part} --skip-dp`")
    merged = merge_results(parts, add=["seconds"], skip=["dp", "seeds", "command", "partial", "run"])
    dp = next((d["dp"] for d in reversed(parts) if d.get("dp")), [])
    args.models = ",".join(merged["costs"])
    merge_cmd = f"`python benchmarks/prune.py --merge {args.merge} --out {args.out}`"
    args.command_text = "; ".join(runs) + f"; then {merge_cmd} (adds the DP timing)"
    if not dp and not args.skip_dp:
        dp = dp_timing()
    write_markdown(Path(args.out), merged["rows"], merged["costs"], dp, merged["dense"], args, merged["seconds"],
                   [d.get("run") for d in parts])


def _preamble(args: Any, seconds: float, records: list[dict[str, Any] | None]) -> list[str]:
    """Command, dates, machine and load of the runs behind the page, from their saved records."""
    recs = [r for r in records if r]
    dates = sorted(r["date"] for r in recs if r.get("date"))
    when = (f"{dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") if dates else
            f"not recorded in the dumps (page written {now_utc()})")
    missing = len(records) - len(recs)
    machine = machine_note(recs[-1], date=False, load=False) if recs else "not recorded"
    load = (f"load average (1 min) {load_span(recs)} at the start and end of the runs"
            + (f" ({missing} of {len(records)} dumps recorded none)" if recs and missing else "")
            if recs else "load average not recorded")
    return ["# `dnnkit prune` benchmark", "",
            "Command: " + (getattr(args, "command_text", None) or
                           f"`python benchmarks/prune.py --models {args.models} --seeds {args.seeds} "
                           f"--regimes {args.regimes}`") + "  ",
            f"Date: {when}; threads: 1 (`torch.set_num_threads(1)`); machine: {machine}, shared with other jobs "
            f"(times are ratios within a run, not absolute speeds); {seconds / 60:.1f} min of process wall time in "
            f"all; {load}.", ""]


def write_markdown(path: Path, rows: list[dict[str, Any]], costs: dict[str, list[dict[str, Any]]],
                   dp: list[dict[str, Any]], dense: dict[str, float], args: Any, seconds: float,
                   records: list[dict[str, Any] | None]) -> None:
    """The whole page: targets, one section per model, the MiniLM and SmolLM2 sections from their dumps
    (when saved), the DP timing."""
    page = Page(_preamble(args, seconds, records))
    page.add(["## Targets", "", *target_lines(rows, costs, dp), "", *protocol_reading(rows, list(costs)), ""])
    for name in costs:
        cfg = CONFIG[name]
        lines = [f"## {name} (dense test accuracy {100 * dense[name]:.2f} %)", "",
                 f"Scaled down for the shared machine: {SEEDS.get(name, args.seeds)} seeds (calibration subset and "
                 f"fine-tuning order; all paired on the same trained zoo network, not one network per seed), "
                 f"{cfg['levels']} levels, {cfg['calib']} calibration samples, fine-tune {cfg['ft_epochs']} "
                 f"epoch(s) (Adam {sci(FT_LR)}) on {cfg['ft_samples'] or 'all'} training samples, test on "
                 f"{cfg['test'] or 'all'} samples. Cap {RD_CAP} for rd, none for the baselines. rd-refine = "
                 f"`--refine {cfg['refine']}`. Data-free one-shot results are deterministic (one value). "
                 f"Verdict: win/loss when the paired mean difference to the best baseline exceeds 2 SD and "
                 f"{MIN_EFFECT} points; otherwise tie.", ""]
        spec = (f"{100 * (1 - SPEC_KEEP):.0f} % of the remainder per step, a {SPEC_EPOCHS}-epoch masked fine-tune "
                f"(Adam {sci(FT_LR)}) after each")
        for regime, title in (("one-shot", "One-shot, no fine-tune (test top-1 %)"),
                              ("ft", f"One-shot + {cfg['ft_epochs']}-epoch masked fine-tune, equal for every method"),
                              ("iterative", f"Iterative: {cfg['iter_steps']} steps, each a {cfg['ft_epochs']}-epoch "
                                            f"fine-tune (scaled down from the spec's {100 * (1 - SPEC_KEEP):.0f} % "
                                            f"per step, {SPEC_EPOCHS} epochs)"),
                              ("iterative-spec", f"Iterative, the spec's protocol: {spec}, one trajectory per method "
                                                 "and seed read at steps "
                                                 + " and ".join(str(k) for k in SPEC_RECORD_STEPS)
                                                 + f" ({_seed_count(rows, name, 'iterative-spec')} seeds)")):
            block = summarise(rows, name, regime)
            if block:
                lines += [f"### {title}", "", *block, ""]
        rl = rho_lines(rows, name)
        if len(rl) > 2:
            lines += ["### Additivity check and output distortion (one-shot)", "", *rl, ""]
        if costs[name]:
            lines += ["### Curve cost vs naive passes", "",
                      *header(["objective", "seed", "curves (s)", "naive L·(K−1) passes (s)", "ratio",
                               f"target ≤ {CURVE_TARGET}", "reuse"])]
            for c in costs[name]:
                ratio = c["curves_s"] / c["naive_s"] if c["naive_s"] else math.nan
                lines.append(row([c["objective"], c["seed"], f"{c['curves_s']:.2f}",
                                  f"{c['naive_s']:.2f} ({c['passes']} × {c['full_pass_s'] * 1000:.1f} ms)",
                                  f"{ratio:.2f}", "met" if ratio <= CURVE_TARGET else "missed", c["reuse"]]))
            lines.append("")
        exact = all(r["exact"] for r in rows if r["model"] == name)
        lines += [f"Achieved sparsity equals the target to the weight in every run: {'yes' if exact else 'NO'}.", ""]
        page.add(lines)
    if dp:
        import prune_smollm2

        from dnnkit.surgery.prune.dp import DEFAULT_UNITS

        d0, smol_levels = dp[0], len(prune_smollm2.CFG["levels"])
        units = f"{DEFAULT_UNITS:,}".replace(",", " ")
        lines = [f"{DP_SECTION}-135M shapes", "",
                 f"The {d0['layers']} block Linear weights of `zoo:smollm2-135m` (shapes read from the GGUF header), "
                 f"{d0['levels']} levels up to the {DP_CAP} cap, synthetic monotone curves (real SmolLM2 curves were "
                 f"measured at {smol_levels} levels only, see `{prune_smollm2.PAGE_SECTION}`; {d0['levels']} levels "
                 f"would take about {(d0['levels'] - 1) / (smol_levels - 1):.0f} times as long), bucketed DP "
                 f"(U = {units}) plus the exact top-up.", "",
                 *header(["sparsity", "layers", "weights", "unit q", "DP + top-up wall (s)", "CPU time (s)",
                          f"target < {DP_TARGET_S:g} s (CPU)", "topped up", "exact count"])]
        for d in dp:
            lines.append(row([f"{100 * d['ratio']:.0f} %", d["layers"], d["total"], d["unit"], f"{d['seconds']:.2f}",
                              f"{d['cpu_s']:.2f}", "met" if d["cpu_s"] < DP_TARGET_S else "missed", d["topped_up"],
                              d["exact"]]))
        page.add([*lines, ""])
    add_smollm2(page)  # first: the MiniLM row goes after SmolLM2's rows, its section before SmolLM2's
    if MINILM_JSON.exists():
        add_minilm(page, load_json(MINILM_JSON))
    page.write(path)


if __name__ == "__main__":
    main()
