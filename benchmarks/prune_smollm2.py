"""Perplexity of zoo:smollm2-135m pruned to 30/50/70 % by uniform, global, LAMP and rd (spec section 6).

Prunes the 210 block Linear weights (the tied embedding/head is not pruned), no fine-tune. rd: mean squared
logit error on 8 x 64 calibration tokens of the built-in wiki text (train split), through the LM-head
shortcut (spec 4.4); 11 levels (0-90 % by 10, plus 95 %, which is also the cap); one set of curves, reused
for the three ratios. Held out: perplexity and logit MSE to the dense model on 64 x 128 wiki test tokens.

Curves take most of the time, so they can be measured in shards (one process per core) and are cached
per layer; the final run reads the cache, measures what is missing, and writes the page section:

    python benchmarks/prune_smollm2.py --shard 0/2 & python benchmarks/prune_smollm2.py --shard 1/2 & wait
    python benchmarks/prune_smollm2.py --json docs/benchmarks/prune-smollm2.json
    python benchmarks/prune_smollm2.py --time-head --json docs/benchmarks/prune-smollm2.json   # naive-cost factor

Another calibration subset for rd (new curves; the data-free baselines do not depend on it): the same shard
commands and final run with `--seed 1`; its rows are added to the seed-0 dump and page.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnnkit.metrics import load_inputs  # noqa: E402
from dnnkit.models.registry import load_model  # noqa: E402
from dnnkit.surgery.prune.allocate import allocate  # noqa: E402
from dnnkit.surgery.prune.curves import (  # noqa: E402
    Curves,
    DistortionMeter,
    forward_y,
    measure_curves,
    reference_outputs,
)
from dnnkit.surgery.prune.lm_head import HeadShortcut, head_shortcut  # noqa: E402
from dnnkit.surgery.prune.network import network_layers  # noqa: E402
from dnnkit.surgery.prune.rd import apply_zeros, rd_allocate  # noqa: E402
from dnnkit.surgery.prune.run import PruneConfig  # noqa: E402

CFG = {"ratios": [0.3, 0.5, 0.7], "methods": ["uniform", "global", "lamp", "rd"], "calib": 8, "calib_seq_len": 64,
       "test": 64, "test_seq_len": 128, "cap": 0.95, "data": "wiki", "levels": [d / 10 for d in range(10)] + [0.95]}
PAGE_SECTION = "## zoo:smollm2-135m"


def level_zeros(n: int) -> list[int]:
    """Zero counts of the spec's 11 levels for a layer of n weights (integer rounding, as the grid)."""
    return sorted({round(p * 100) * n // 100 for p in CFG["levels"]})


class Setup:
    """The dense model, the layers, calibration and test tokens, the head shortcut and references."""

    def __init__(self, log: Any, seed: int = 0) -> None:
        t0 = time.perf_counter()
        self.loaded = load_model("zoo:smollm2-135m")
        self.dense = self.loaded.model.eval()
        self.layers = network_layers(self.dense, PruneConfig(ratio=0.5))
        self.names = [layer.name for layer in self.layers]
        self.calib = load_inputs(self.loaded, CFG["data"], "train", CFG["calib"], seed, CFG["calib_seq_len"])
        self.test = load_inputs(self.loaded, CFG["data"], "test", CFG["test"], 0, CFG["test_seq_len"])
        head = head_shortcut(self.dense, "causal-lm", [n.removesuffix(".weight") for n in self.names], self.calib)
        if head is None:
            raise SystemExit("error: the LM-head shortcut does not apply to zoo:smollm2-135m")
        self.head: HeadShortcut = head
        self.calib_ref = reference_outputs(self.dense, "causal-lm", self.calib, 8, head)
        digest = hashlib.sha256(self.calib.x.numpy().tobytes() + json.dumps(CFG["levels"]).encode())
        for n in self.names:
            digest.update(dict(self.dense.named_parameters())[n].detach().numpy().tobytes()[:4096])
        self.key = digest.hexdigest()[:16]
        log(f"smollm2: {len(self.layers)} layers, {sum(x.n for x in self.layers):,} weights, calib "
            f"{tuple(self.calib.x.shape)}, test {tuple(self.test.x.shape)} ({time.perf_counter() - t0:.1f} s)")


def measure_shard(setup: Setup, shard: int, shards: int, cache: Path, log: Any) -> None:
    """Curves of layers i with i % shards == shard that the cache lacks; one JSON file per layer."""
    cache.mkdir(parents=True, exist_ok=True)
    todo = [n for i, n in enumerate(setup.names) if i % shards == shard and not (cache / f"{n}.json").exists()]
    if not todo:
        return
    meter = DistortionMeter(setup.dense, "causal-lm", setup.calib, setup.calib_ref, setup.names, "mean",
                            batch_size=8, head=setup.head)
    (cache / f"full_pass_{shard}_{shards}.json").write_text(json.dumps({"seconds": meter.full_pass_seconds}))
    params = dict(setup.dense.named_parameters())
    t0 = time.perf_counter()
    for k, name in enumerate(todo, 1):
        if (cache / f"{name}.json").exists():  # another process measured it meanwhile
            continue
        weight = params[name].detach().clone()
        c = measure_curves(meter, {name: weight}, {name: level_zeros(weight.numel())})
        tmp = cache / f"{name}.json.tmp"
        tmp.write_text(json.dumps({"zeros": c.zeros[0], "distortion": c.distortion[0], "seconds": c.seconds}))
        tmp.replace(cache / f"{name}.json")
        spent = time.perf_counter() - t0
        eta = spent / k * (len(todo) - k)
        log(f"shard {shard}/{shards}: {k}/{len(todo)} {name} {c.seconds:.1f} s (eta {eta:.0f} s)")


def load_curves(setup: Setup, cache: Path) -> Curves:
    """One `Curves` from the per-layer cache (every layer must be there)."""
    per = [json.loads((cache / f"{n}.json").read_text()) for n in setup.names]
    passes = [json.loads(p.read_text())["seconds"] for p in cache.glob("full_pass_*.json")]
    curves = Curves(setup.names, [x.n for x in setup.layers], [p["zeros"] for p in per], [p["distortion"] for p in per],
                    sum(p["seconds"] for p in per), min(passes), sum(len(p["zeros"]) - 1 for p in per), "prefix",
                    len(CFG["levels"]))
    return curves


@torch.no_grad()
def held_out(setup: Setup, model: torch.nn.Module, head: HeadShortcut,
             dense_hidden: torch.Tensor | None) -> dict[str, Any]:
    """Perplexity on the test tokens and, given the dense final hidden states, the mean squared logit
    error to the dense model (exact via the head's Gram matrix); one pass."""
    captured: list[torch.Tensor] = []
    handle = head.module.register_forward_hook(lambda mod, args, out: captured.append(args[0].detach()))
    total, count = 0.0, 0
    try:
        for i in range(0, len(setup.test), 8):
            ids = setup.test.x[i:i + 8]
            logits = model(input_ids=ids, use_cache=False).logits.float()
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     ids[:, 1:].reshape(-1), reduction="sum")
            total, count = total + float(loss), count + ids[:, 1:].numel()
    finally:
        handle.remove()
    hidden = torch.cat(captured)
    out = {"perplexity": math.exp(total / count), "hidden": hidden}
    if dense_hidden is not None:
        out["logit_mse"] = float(head.per_sample_error(hidden, dense_hidden).mean())
    return out


def calib_mse(setup: Setup, model: torch.nn.Module, head: HeadShortcut) -> float:
    """The rd objective on the calibration tokens for any allocation (mean squared logit error)."""
    h = reference_outputs(model, "causal-lm", setup.calib, 8, head)
    return float(head.per_sample_error(h, setup.calib_ref).mean())


@torch.no_grad()
def head_factor(setup: Setup, repeats: int = 4) -> dict[str, float]:
    """Median time of a full calibration pass with the LM head over one without it (interleaved, one
    process): the naive method computes full logits, the curves' timed pass does not."""
    with_head, without = [], []
    forward_y(setup.dense, "causal-lm", setup.calib)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        forward_y(setup.dense, "causal-lm", setup.calib)
        with_head.append(time.perf_counter() - t0)
        with setup.head.hidden_outputs():
            t0 = time.perf_counter()
            forward_y(setup.dense, "causal-lm", setup.calib)
            without.append(time.perf_counter() - t0)
    return {"with_head_s": statistics.median(with_head), "without_head_s": statistics.median(without),
            "factor": statistics.median(with_head) / statistics.median(without)}


def run(setup: Setup, curves: Curves, log: Any, methods: list[str] | None = None) -> dict[str, Any]:
    """Every method at every ratio: perplexity, logit MSE (test and calibration), exact count, layer spread."""
    dense = held_out(setup, setup.dense, setup.head, None)
    dense_hidden = dense.pop("hidden")
    log(f"dense perplexity {dense['perplexity']:.3f}")
    rows: list[dict[str, Any]] = []
    total = sum(x.n for x in setup.layers)
    for ratio in CFG["ratios"]:
        for method in methods or CFG["methods"]:
            t0 = time.perf_counter()
            model = copy.deepcopy(setup.dense)
            params = dict(model.named_parameters())
            head = head_shortcut(model, "causal-lm", [n.removesuffix(".weight") for n in setup.names], setup.calib)
            assert head is not None  # the copy's own head (the shortcut patches a module instance)
            info: dict[str, Any] = {}
            if method == "rd":
                out = rd_allocate(model, "causal-lm", setup.calib, setup.calib_ref, setup.layers, ratio,
                                  levels=len(CFG["levels"]), cap=CFG["cap"], objective="mean", dp_units=None,
                                  batch_size=8, curves=curves, head=head)
                zeros = out.zeros
                info = {"rho": out.rho, "dp_s": out.dp_seconds, "dp_unit": out.unit, "topped_up": out.topped_up,
                        "predicted": out.predicted}
            else:
                zeros = allocate(method, setup.layers, ratio, lambda n, p=params: p[n].detach(), None)
                apply_zeros(params, {n: params[n].detach().clone() for n in setup.names}, setup.names, zeros)
            res = held_out(setup, model, head, dense_hidden)
            res.pop("hidden")
            got = sum(int((params[n] == 0).sum()) for n in setup.names)
            sparsity = [z / x.n for z, x in zip(zeros, setup.layers, strict=True)]
            rows.append({"method": method, "ratio": ratio, **res, "calib_mse": calib_mse(setup, model, head),
                         "achieved": got / total, "exact": got == round(ratio * total),
                         "max_layer": max(sparsity), "min_layer": min(sparsity),
                         "by_kind": _by_kind(setup.names, zeros, setup.layers),
                         "seconds": time.perf_counter() - t0, **info})
            r = rows[-1]
            log(f"{method:8s} {ratio:.2f}: ppl {r['perplexity']:.3f} logit mse {r['logit_mse']:.4g} calib mse "
                f"{r['calib_mse']:.4g} rho {r.get('rho')} exact {r['exact']} ({r['seconds']:.0f} s)")
            del model
    return {"dense": dense, "rows": rows}


def _by_kind(names: list[str], zeros: list[int], layers: list[Any]) -> dict[str, float]:
    """Sparsity per projection kind (q/k/v/o/gate/up/down), pooled over the 30 blocks."""
    pooled: dict[str, list[int]] = {}
    for name, z, layer in zip(names, zeros, layers, strict=True):
        kind = name.split(".")[-2]
        acc = pooled.setdefault(kind, [0, 0])
        acc[0] += z
        acc[1] += layer.n
    return {k: v[0] / v[1] for k, v in pooled.items()}


def page_lines(res: dict[str, Any]) -> list[str]:
    """The `## zoo:smollm2-135m` section of docs/benchmarks/prune.md."""
    c = res["curves"]
    lines = [f"{PAGE_SECTION} (perplexity, no fine-tune)", "",
             "Command: `python benchmarks/prune_smollm2.py --shard 0/2 & python benchmarks/prune_smollm2.py --shard "
             "1/2 & wait; python benchmarks/prune_smollm2.py --json docs/benchmarks/prune-smollm2.json`"
             + "".join(f"; then the same three with `--seed {k}` (rd only)" for k in sorted(res.get("extra_seeds", {})))
             + "; `--time-head` for the head timing  ",
             f"Date: {res['date']}; threads: 1 per process (two curve shards in parallel on the 2 cores); machine: "
             f"{res['machine']}.", "",
             f"Pruned: the {res['layers']} block Linear weights ({res['weights']:,} weights; the tied embedding/head "
             "is not pruned). SmolLM2-135M-*Instruct* dequantised from its Q4_1 GGUF to fp32, so perplexities are "
             "those of that checkpoint, not of the full-precision base model. rd: mean squared logit error on "
             f"{CFG['calib']} x {CFG['calib_seq_len']} calibration tokens (wiki train split) through the LM-head "
             "shortcut, 11 levels (0-90 % by 10, and 95 %, also the cap), one set of curves reused for the three "
             f"ratios. Held out: {CFG['test']} x {CFG['test_seq_len']} wiki test tokens; dense perplexity "
             f"{res['dense']['perplexity']:.2f}. Cells: perplexity, and in brackets the mean squared logit error to "
             "the dense model on the held-out tokens. Best per row in bold. One calibration subset, so no spread.", "",
             "| sparsity | uniform | global | LAMP | rd | rd calib. MSE (best baseline) | rd ρ (pred./meas.) | "
             "rd sparsity q/k/v/o/gate/up/down |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = res["rows"]
    for ratio in CFG["ratios"]:
        sel = {r["method"]: r for r in rows if r["ratio"] == ratio}
        best = min(sel, key=lambda m: sel[m]["perplexity"])
        cells = []
        for m in CFG["methods"]:
            txt = f"{sel[m]['perplexity']:.2f} ({sel[m]['logit_mse']:.3g})"
            cells.append(f"**{txt}**" if m == best else txt)
        rd = sel["rd"]
        base = min((m for m in sel if m != "rd"), key=lambda m: sel[m]["calib_mse"])
        kinds = "/".join(f"{rd['by_kind'][k]:.2f}" for k in
                         ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
        lines.append(f"| {100 * ratio:.0f} % | {' | '.join(cells)} | {rd['calib_mse']:.3g} ({base} "
                     f"{sel[base]['calib_mse']:.3g}) | {rd['rho']:.2f} | {kinds} |")
    lines += ["", *seed_lines(res), *reading(res)]
    exact = all(r["exact"] for r in rows)
    h = res.get("head_timing")
    full = ("" if h is None else f" A full pass with the LM head took {h['factor']:.2f}x one without it (medians of "
            f"{h['with_head_s']:.2f} s and {h['without_head_s']:.2f} s, interleaved in one process, "
            "`--time-head`), so against naive full-logit passes the curves cost "
            f"**{c['curves_s'] / (c['naive_s'] * h['factor']):.2f}x**.")
    lines += ["", f"Every allocation met its count exactly: {'yes' if exact else 'NO'}. Curves: {c['passes']} "
              f"single-layer levels; {c['curves_s']:.0f} s summed over the shards against {c['naive_s']:.0f} s for "
              f"as many full passes ({c['full_pass_s']:.2f} s each: one timed calibration pass without the LM head): "
              f"**{c['curves_s'] / c['naive_s']:.2f}x** (prefix reuse, level batching, LM-head shortcut).{full} "
              f"DP on the 210 layers x 11 levels: {max(r.get('dp_s', 0) for r in rows):.2f} s at most.", ""]
    return lines


def seed_lines(res: dict[str, Any]) -> list[str]:
    """rd's perplexity per calibration subset (seed 0 in the table, more seeds from `--seed S`)."""
    extra = res.get("extra_seeds") or {}
    if not extra:
        return []
    per = {0: {r["ratio"]: r for r in res["rows"] if r["method"] == "rd"}}
    per.update({int(k): {r["ratio"]: r for r in v["rows"]} for k, v in extra.items()})
    lines = ["rd with other calibration subsets (`--seed S`: different 8 x 64 training tokens, new curves; the "
             "data-free baselines do not depend on it). Cells: perplexity (held-out logit MSE; ρ).", "",
             "| sparsity | " + " | ".join(f"rd seed {k}" for k in sorted(per)) + " | best baseline |",
             "| --- |" + " --- |" * (len(per) + 1)]
    for x in CFG["ratios"]:
        base = min((r for r in res["rows"] if r["ratio"] == x and r["method"] != "rd"), key=lambda r: r["perplexity"])
        cells = [f"{per[k][x]['perplexity']:.2f} ({per[k][x]['logit_mse']:.3g}; ρ {per[k][x]['rho']:.2f})"
                 for k in sorted(per)]
        lines.append(f"| {100 * x:.0f} % | " + " | ".join(cells) + f" | {base['method']} {base['perplexity']:.2f} |")
    return [*lines, ""]


def reading(res: dict[str, Any]) -> list[str]:
    """What the table says, computed from it: where rd's perplexity and its own objective disagree."""
    rows, dense = res["rows"], res["dense"]["perplexity"]
    by = {(r["method"], r["ratio"]): r for r in rows}
    lowest = [x for x in CFG["ratios"] if min(CFG["methods"], key=lambda m: by[(m, x)]["perplexity"]) == "rd"]
    worse_mse = []
    for x in CFG["ratios"]:
        base = min((m for m in CFG["methods"] if m != "rd"), key=lambda m: by[(m, x)]["calib_mse"])
        if by[("rd", x)]["calib_mse"] > by[(base, x)]["calib_mse"]:
            worse_mse.append(f"{100 * x:.0f} % ({by[('rd', x)]['calib_mse']:.3g} vs {base} "
                             f"{by[(base, x)]['calib_mse']:.3g}; held out {by[('rd', x)]['logit_mse']:.3g} vs "
                             f"{by[(base, x)]['logit_mse']:.3g})")
    v = "/".join(f"{100 * by[('rd', x)]['by_kind']['v_proj']:.0f}" for x in CFG["ratios"])
    rho = "/".join(f"{by[('rd', x)]['rho']:.2f}" for x in CFG["ratios"])
    broken = [x for x in CFG["ratios"] if all(by[(m, x)]["perplexity"] > 40 * dense for m in CFG["methods"])]
    text = (f"Reading: rd has the lowest perplexity at {len(lowest)} of {len(CFG['ratios'])} ratios. ")
    if worse_mse:
        text += ("Its own objective disagrees (seed-0 table): at " + "; ".join(worse_mse) + " a baseline's "
                 "allocation has the lower measured calibration logit MSE, and the lower held-out one. The "
                 f"additivity check shows the DP's model of the error was off (ρ = {rho} at 30/50/70 %: summed "
                 "single-layer errors under-predict the joint error). rd's lower perplexity there goes with a "
                 f"different spread of sparsity (`v_proj` kept much denser: {v} % against 30/50/70 % overall), not "
                 "with a lower mean squared logit error; which part of the spread matters was not tested. ")
    if broken:
        text += (f"At {', '.join(f'{100 * x:.0f} %' for x in broken)} every method breaks the model (perplexity "
                 f"over 40x the dense {dense:.1f}); that row only ranks degrees of failure. ")
    subsets = 1 + len(res.get("extra_seeds") or {})
    text += ("No fine-tune and one calibration subset: no seed spread, so no win is claimed." if subsets == 1 else
             f"No fine-tune; {subsets} calibration subsets for rd (above); the baselines are data-free.")
    return [text]


def target_row(res: dict[str, Any]) -> str:
    """The SmolLM2 row of the targets table."""
    parts, wins = [], 0
    extra = [v["rows"] for v in (res.get("extra_seeds") or {}).values()]
    for ratio in CFG["ratios"]:
        sel = {r["method"]: r["perplexity"] for r in res["rows"] if r["ratio"] == ratio}
        base = {m: v for m, v in sel.items() if m != "rd"}
        best = min(base, key=base.get)
        rd_all = [sel["rd"]] + [r["perplexity"] for rows in extra for r in rows if r["ratio"] == ratio]
        wins += max(rd_all) <= base[best]
        rd_txt = f"{sel['rd']:.2f}" if len(rd_all) == 1 else f"{min(rd_all):.2f}–{max(rd_all):.2f}"
        parts.append(f"{100 * ratio:.0f} %: rd {rd_txt} vs {best} {base[best]:.2f}")
    subsets = 1 + len(extra)
    note = ("one calibration subset, no spread, so no win is claimed" if subsets == 1 else
            f"in each of {subsets} calibration subsets, rd range shown; no fine-tune")
    return (f"| perplexity of SmolLM2-135M at 30/50/70 % (uniform, global, LAMP, rd) | smollm2-135m | "
            f"{'; '.join(parts)} | met (measured) | rd lowest at {wins} of 3 ratios ({note}); see "
            "`## zoo:smollm2-135m` |")


COST_ROW = "| curves ≤ 0.6× naive passes | smollm2-135m |"


def cost_row(res: dict[str, Any]) -> str:
    """The curve-cost target on SmolLM2 (naive = full-logit passes when the head factor was timed)."""
    c, h = res["curves"], res.get("head_timing")
    headless = c["curves_s"] / c["naive_s"]
    ratio = headless / h["factor"] if h else headless
    against = (f"{ratio:.2f}× full-logit passes ({headless:.2f}× passes timed without the head)" if h else
               f"{ratio:.2f}× passes timed without the head")
    return (f"{COST_ROW} {against} | {'met' if ratio <= 0.6 else 'missed'} | {c['passes']} levels, two shards on "
            "the 2 cores; the naive method computes full logits |")


def insert_section(path: Path, res: dict[str, Any]) -> None:
    """Replace the SmolLM2 target row and (re)insert the section before the DP timing section."""
    out: list[str] = []
    skip = False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            skip = line.startswith(PAGE_SECTION)
        if skip:
            continue
        if line.startswith("| perplexity of SmolLM2-135M"):
            out += [target_row(res), cost_row(res)]
        elif not line.startswith(COST_ROW):
            out.append(line)
    at = next((i for i, x in enumerate(out) if x.startswith("## DP time on SmolLM2")), len(out))
    out[at:at] = page_lines(res)
    path.write_text("\n".join(out).rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0, help="calibration subset; with a seed other than 0 the "
                        "final stage runs rd only and adds its rows to --json as another calibration seed")
    parser.add_argument("--shard", default=None, help="K/N: only measure curves of layers i % N == K into the cache")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "dnnkit" / "bench-smollm2-curves"))
    parser.add_argument("--out", default="docs/benchmarks/prune.md")
    parser.add_argument("--json", default=None)
    parser.add_argument("--from-json", default=None, help="only (re)insert the section from an earlier --json dump")
    parser.add_argument("--time-head", action="store_true", help="time full passes with and without the LM head, "
                        "add the factor to --json and reinsert the section")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.from_json:
        insert_section(Path(args.out), json.loads(Path(args.from_json).read_text()))
        return
    started = time.perf_counter()
    log = lambda m: print(f"[{time.perf_counter() - started:7.1f}s] {m}", flush=True)  # noqa: E731
    setup = Setup(log, args.seed)
    if args.time_head:
        res = json.loads(Path(args.json).read_text())
        res["head_timing"] = head_factor(setup)
        log(f"head timing: {res['head_timing']}")
        Path(args.json).write_text(json.dumps(res, indent=1))
        insert_section(Path(args.out), res)
        return
    cache = Path(args.cache) / setup.key  # keyed by weights, calibration tokens and levels
    if args.shard:
        k, n = (int(x) for x in args.shard.split("/"))
        measure_shard(setup, k, n, cache, log)
        return
    measure_shard(setup, 0, 1, cache, log)  # whatever the shards left
    curves = load_curves(setup, cache)
    curve_info = {"curves_s": curves.seconds, "naive_s": curves.naive_estimate_seconds, "passes": curves.naive_passes,
                  "full_pass_s": curves.full_pass_seconds}
    if args.seed != 0:  # another calibration subset: rd only, added to the seed-0 dump
        res = json.loads(Path(args.json).read_text())
        extra = run(setup, curves, log, methods=["rd"])
        res.setdefault("extra_seeds", {})[str(args.seed)] = {"rows": extra["rows"], "curves": curve_info}
        Path(args.json).write_text(json.dumps(res, indent=1))
        insert_section(Path(args.out), res)
        log(f"added rd with calibration seed {args.seed} to {args.json} and {args.out}")
        return
    res = run(setup, curves, log)
    res.update({"curves": curve_info,
                "layers": len(setup.layers), "weights": sum(x.n for x in setup.layers),
                "seconds": time.perf_counter() - started, "machine": platform.machine(),
                "date": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"})
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    insert_section(Path(args.out), res)
    log(f"wrote the {PAGE_SECTION} section into {args.out}")


if __name__ == "__main__":
    main()
