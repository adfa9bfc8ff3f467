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

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from harness import DOCS, Page, Run, Timer, Timing, dump_json, header, load_json, machine_note, parser, row

import dnnkit
from dnnkit.metrics import load_inputs
from dnnkit.models.registry import load_model
from dnnkit.surgery.prune.curves import (
    Curves,
    DistortionMeter,
    forward_y,
    measure_curves,
    reference_outputs,
)
from dnnkit.surgery.prune.lm_head import HeadShortcut, head_shortcut
from dnnkit.surgery.prune.network import network_layers
from dnnkit.surgery.prune.rd import rd_allocate
from dnnkit.surgery.prune.run import PruneConfig

CFG = {"ratios": [0.3, 0.5, 0.7], "methods": ["uniform", "global", "lamp", "rd"], "calib": 8, "calib_seq_len": 64,
       "test": 64, "test_seq_len": 128, "cap": 0.95, "data": "wiki", "levels": [d / 10 for d in range(10)] + [0.95]}
PAGE_SECTION = "## zoo:smollm2-135m"
TARGET_ROW = "| perplexity of SmolLM2-135M"  # its rows in the targets table of prune.md (replaced in place)
COST_ROW = "| curves ≤ 0.6× naive passes | smollm2-135m |"
CURVE_TARGET = 0.6  # curves at most 0.6x the naive passes
KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BROKEN_FACTOR = 40  # a ratio where every method's perplexity exceeds 40x the dense one only ranks failures


def level_zeros(n: int) -> list[int]:
    """Zero counts of the spec's 11 levels for a layer of n weights (integer rounding, as the grid)."""
    return sorted({round(p * 100) * n // 100 for p in CFG["levels"]})


class Setup:
    """The dense model, the layers, calibration and test tokens, the head shortcut and references."""

    def __init__(self, log: Any, seed: int = 0) -> None:
        t = Timer()
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
            f"{tuple(self.calib.x.shape)}, test {tuple(self.test.x.shape)} ({t.wall:.1f} s)")


def measure_shard(setup: Setup, shard: int, shards: int, cache: Path, log: Any) -> None:
    """Curves of layers i with i % shards == shard that the cache lacks; one JSON file per layer."""
    cache.mkdir(parents=True, exist_ok=True)
    todo = [n for i, n in enumerate(setup.names) if i % shards == shard and not (cache / f"{n}.json").exists()]
    if not todo:
        return
    meter = DistortionMeter(setup.dense, "causal-lm", setup.calib, setup.calib_ref, setup.names, "mean",
                            batch_size=8, head=setup.head)
    dump_json(cache / f"full_pass_{shard}_{shards}.json", {"seconds": meter.full_pass_seconds}, indent=None)
    params = dict(setup.dense.named_parameters())
    t = Timer()
    for k, name in enumerate(todo, 1):
        if (cache / f"{name}.json").exists():  # another process measured it meanwhile
            continue
        weight = params[name].detach().clone()
        c = measure_curves(meter, {name: weight}, {name: level_zeros(weight.numel())})
        dump_json(cache / f"{name}.json", {"zeros": c.zeros[0], "distortion": c.distortion[0], "seconds": c.seconds},
                  indent=None)
        spent = t.wall
        eta = spent / k * (len(todo) - k)
        log(f"shard {shard}/{shards}: {k}/{len(todo)} {name} {c.seconds:.1f} s (eta {eta:.0f} s)")


def load_curves(setup: Setup, cache: Path) -> Curves:
    """One `Curves` from the per-layer cache (every layer must be there)."""
    per = [load_json(cache / f"{n}.json") for n in setup.names]
    passes = [load_json(p)["seconds"] for p in cache.glob("full_pass_*.json")]
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
    with_head, without = Timing(), Timing()
    forward_y(setup.dense, "causal-lm", setup.calib)  # warm-up
    for _ in range(repeats):
        with Timer() as t:
            forward_y(setup.dense, "causal-lm", setup.calib)
        with_head.add(t)
        with setup.head.hidden_outputs(), Timer() as t:
            forward_y(setup.dense, "causal-lm", setup.calib)
        without.add(t)
    return {"with_head_s": with_head.wall, "without_head_s": without.wall, "factor": with_head.wall / without.wall}


def run(setup: Setup, curves: Curves, log: Any, methods: list[str] | None = None) -> dict[str, Any]:
    """Every method at every ratio: perplexity, logit MSE (test and calibration), exact count, layer spread."""
    dense = held_out(setup, setup.dense, setup.head, None)
    dense_hidden = dense.pop("hidden")
    log(f"dense perplexity {dense['perplexity']:.3f}")
    rows: list[dict[str, Any]] = []
    total = sum(x.n for x in setup.layers)
    for ratio in CFG["ratios"]:
        for method in methods or CFG["methods"]:
            t = Timer()
            info: dict[str, Any] = {}
            if method == "rd":
                # internals on purpose: the curves come from the per-layer cache (measured in shards, once for all
                # ratios); `dnnkit.prune(method="rd")` would measure them again on every call
                model = copy.deepcopy(setup.dense)
                head = _head(setup, model)
                out = rd_allocate(model, "causal-lm", setup.calib, setup.calib_ref, setup.layers, ratio,
                                  levels=len(CFG["levels"]), cap=CFG["cap"], objective="mean", dp_units=None,
                                  batch_size=8, curves=curves, head=head)
                zeros = out.zeros
                info = {"rho": out.rho, "dp_s": out.dp_seconds, "dp_unit": out.unit, "topped_up": out.topped_up,
                        "predicted": out.predicted}
            else:  # data-free: exactly `dnnkit prune zoo:smollm2-135m --method M --ratio R`
                result = dnnkit.prune(setup.dense, ratio=ratio, method=method)
                model, head = result.model, _head(setup, result.model)
                assert [r["name"] for r in result.report["layers"]] == setup.names
                zeros = [r["size"] - r["kept"] for r in result.report["layers"]]
            params = dict(model.named_parameters())
            res = held_out(setup, model, head, dense_hidden)
            res.pop("hidden")
            got = sum(int((params[n] == 0).sum()) for n in setup.names)
            sparsity = [z / x.n for z, x in zip(zeros, setup.layers, strict=True)]
            rows.append({"method": method, "ratio": ratio, **res, "calib_mse": calib_mse(setup, model, head),
                         "achieved": got / total, "exact": got == round(ratio * total),
                         "max_layer": max(sparsity), "min_layer": min(sparsity),
                         "by_kind": _by_kind(setup.names, zeros, setup.layers),
                         "seconds": t.wall, **info})
            r = rows[-1]
            log(f"{method:8s} {ratio:.2f}: ppl {r['perplexity']:.3f} logit mse {r['logit_mse']:.4g} calib mse "
                f"{r['calib_mse']:.4g} rho {r.get('rho')} exact {r['exact']} ({r['seconds']:.0f} s)")
            del model
    return {"dense": dense, "rows": rows}


def _head(setup: Setup, model: torch.nn.Module) -> HeadShortcut:
    """The LM-head shortcut of this copy (it patches a module instance; the head itself is never pruned)."""
    head = head_shortcut(model, "causal-lm", [n.removesuffix(".weight") for n in setup.names], setup.calib)
    assert head is not None
    return head


def _by_kind(names: list[str], zeros: list[int], layers: list[Any]) -> dict[str, float]:
    """Sparsity per projection kind (q/k/v/o/gate/up/down), pooled over the 30 blocks."""
    pooled: dict[str, list[int]] = {}
    for name, z, layer in zip(names, zeros, layers, strict=True):
        kind = name.split(".")[-2]
        acc = pooled.setdefault(kind, [0, 0])
        acc[0] += z
        acc[1] += layer.n
    return {k: v[0] / v[1] for k, v in pooled.items()}


LEGACY_SHARDS = 2  # prune-smollm2.json of 2026-11-27 was measured with the docstring's two shards (not recorded then)


def _ratios_text() -> str:
    return "/".join(f"{100 * x:.0f}" for x in CFG["ratios"])


def _levels_text() -> str:
    """The level grid in words, e.g. `11 levels (0-90 % by 10, and 95 %, also the cap)`."""
    pct = [round(100 * x) for x in CFG["levels"]]
    step, k = pct[1] - pct[0], 2
    while k < len(pct) and pct[k] - pct[k - 1] == step:
        k += 1
    text = f"{pct[0]}-{pct[k - 1]} % by {step}" + "".join(f", and {p} %" for p in pct[k:])
    if pct[k:] and round(100 * CFG["cap"]) == pct[-1]:
        text += ", also the cap"
    return f"{len(pct)} levels ({text})"


def _shards(res: dict[str, Any]) -> int:
    return int(res["curves"].get("shards") or LEGACY_SHARDS)


def page_lines(res: dict[str, Any]) -> list[str]:
    """The `## zoo:smollm2-135m` section of docs/benchmarks/prune.md."""
    c, n = res["curves"], _shards(res)
    shards = " & ".join(f"python benchmarks/prune_smollm2.py --shard {k}/{n}" for k in range(n))
    run = res.get("run")
    machine = (f"Machine: {machine_note(run)}; threads: 1 per process ({n} curve shards in parallel)." if run else
               f"Date: {res['date']}; threads: 1 per process ({n} curve shards in parallel); machine: "
               f"{res['machine']} (load average not recorded).")
    lines = [f"{PAGE_SECTION} (perplexity, no fine-tune)", "",
             f"Command: `{shards} & wait; python benchmarks/prune_smollm2.py --json docs/benchmarks/prune-smollm2.json`"
             + "".join(f"; then the same three with `--seed {k}` (rd only)" for k in sorted(res.get("extra_seeds", {})))
             + "; `--time-head` for the head timing  ", machine, "",
             f"Pruned: the {res['layers']} block Linear weights ({res['weights']:,} weights; the tied embedding/head "
             "is not pruned). SmolLM2-135M-*Instruct* dequantised from its Q4_1 GGUF to fp32, so perplexities are "
             "those of that checkpoint, not of the full-precision base model. rd: mean squared logit error on "
             f"{CFG['calib']} x {CFG['calib_seq_len']} calibration tokens (wiki train split) through the LM-head "
             f"shortcut, {_levels_text()}, one set of curves reused for all {len(CFG['ratios'])} ratios. Held out: "
             f"{CFG['test']} x {CFG['test_seq_len']} wiki test tokens; dense perplexity "
             f"{res['dense']['perplexity']:.2f}. Cells: perplexity, and in brackets the mean squared logit error to "
             "the dense model on the held-out tokens. Best per row in bold. One calibration subset, so no spread.", "",
             *header(["sparsity", "uniform", "global", "LAMP", "rd", "rd calib. MSE (best baseline)",
                      "rd ρ (pred./meas.)", "rd sparsity q/k/v/o/gate/up/down"])]
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
        kinds = "/".join(f"{rd['by_kind'][k]:.2f}" for k in KINDS)
        lines.append(row([f"{100 * ratio:.0f} %", *cells,
                          f"{rd['calib_mse']:.3g} ({base} {sel[base]['calib_mse']:.3g})", f"{rd['rho']:.2f}", kinds]))
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
              f"DP on the {res['layers']} layers x {len(CFG['levels'])} levels: "
              f"{max(r.get('dp_s', 0) for r in rows):.2f} s at most.", ""]
    return lines


def seed_lines(res: dict[str, Any]) -> list[str]:
    """rd's perplexity per calibration subset (seed 0 in the table, more seeds from `--seed S`)."""
    extra = res.get("extra_seeds") or {}
    if not extra:
        return []
    per = {0: {r["ratio"]: r for r in res["rows"] if r["method"] == "rd"}}
    per.update({int(k): {r["ratio"]: r for r in v["rows"]} for k, v in extra.items()})
    lines = [f"rd with other calibration subsets (`--seed S`: different {CFG['calib']} x {CFG['calib_seq_len']} "
             "training tokens, new curves; the data-free baselines do not depend on it). Cells: perplexity (held-out "
             "logit MSE; ρ).", "", *header(["sparsity", *(f"rd seed {k}" for k in sorted(per)), "best baseline"])]
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
    broken = [x for x in CFG["ratios"] if all(by[(m, x)]["perplexity"] > BROKEN_FACTOR * dense
                                               for m in CFG["methods"])]
    text = (f"Reading: rd has the lowest perplexity at {len(lowest)} of {len(CFG['ratios'])} ratios. ")
    if worse_mse:
        text += ("Its own objective disagrees (seed-0 table): at " + "; ".join(worse_mse) + " a baseline's "
                 "allocation has the lower measured calibration logit MSE, and the lower held-out one. The "
                 f"additivity check shows the DP's model of the error was off (ρ = {rho} at {_ratios_text()} %: "
                 "summed single-layer errors under-predict the joint error). rd's lower perplexity there goes with a "
                 f"different spread of sparsity (`v_proj` kept much denser: {v} % against {_ratios_text()} % "
                 "overall), not "
                 "with a lower mean squared logit error; which part of the spread matters was not tested. ")
    if broken:
        text += (f"At {', '.join(f'{100 * x:.0f} %' for x in broken)} every method breaks the model (perplexity "
                 f"over {BROKEN_FACTOR}x the dense {dense:.1f}); that row only ranks degrees of failure. ")
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
    return (f"{TARGET_ROW} at {_ratios_text()} % (uniform, global, LAMP, rd) | smollm2-135m | "
            f"{'; '.join(parts)} | met (measured) | rd lowest at {wins} of {len(CFG['ratios'])} ratios ({note}); see "
            f"`{PAGE_SECTION}` |")


def cost_row(res: dict[str, Any]) -> str:
    """The curve-cost target on SmolLM2 (naive = full-logit passes when the head factor was timed)."""
    c, h = res["curves"], res.get("head_timing")
    headless = c["curves_s"] / c["naive_s"]
    ratio = headless / h["factor"] if h else headless
    against = (f"{ratio:.2f}× full-logit passes ({headless:.2f}× passes timed without the head)" if h else
               f"{ratio:.2f}× passes timed without the head")
    return (f"{COST_ROW} {against} | {'met' if ratio <= CURVE_TARGET else 'missed'} | {c['passes']} levels, "
            f"{_shards(res)} curve shards in parallel; the naive method computes full logits |")


def insert_section(path: Path, res: dict[str, Any]) -> None:
    """(Re)insert the section and the target rows into an existing page, keeping its other sections."""
    page = Page.read(path)
    add_section(page, res)
    page.write(path)


def add_section(page: Page, res: dict[str, Any]) -> None:
    """The section (before the DP timing section) and the SmolLM2 rows of the targets table, in place."""
    page.set(PAGE_SECTION, page_lines(res), before="## DP time on SmolLM2")
    page.replace_lines([TARGET_ROW, COST_ROW], [target_row(res), cost_row(res)])


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seed", type=int, default=0, help="calibration subset; with a seed other than 0 the "
                    "final stage runs rd only and adds its rows to --json as another calibration seed")
    ap.add_argument("--shard", default=None, help="K/N: only measure curves of layers i %% N == K into the cache")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "dnnkit" / "bench-smollm2-curves"))
    ap.add_argument("--out", default=str(DOCS / "prune.md"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--from-json", default=None, help="only (re)insert the section from an earlier --json dump")
    ap.add_argument("--time-head", action="store_true", help="time full passes with and without the LM head, "
                    "add the factor to --json and reinsert the section")
    args = ap.parse_args()
    run_ = Run(threads=1)
    if args.from_json:
        insert_section(Path(args.out), load_json(args.from_json))
        return
    log = run_.log
    setup = Setup(log, args.seed)
    if args.time_head:
        res = load_json(args.json)
        res["head_timing"] = head_factor(setup)
        log(f"head timing: {res['head_timing']}")
        dump_json(args.json, res)
        insert_section(Path(args.out), res)
        return
    cache = Path(args.cache) / setup.key  # keyed by weights, calibration tokens and levels
    if args.shard:
        k, n = (int(x) for x in args.shard.split("/"))
        measure_shard(setup, k, n, cache, log)
        return
    measure_shard(setup, 0, 1, cache, log)  # whatever the shards left
    curves = load_curves(setup, cache)
    shards = max((int(p.stem.rsplit("_", 1)[1]) for p in cache.glob("full_pass_*_*.json")), default=1)
    curve_info = {"curves_s": curves.seconds, "naive_s": curves.naive_estimate_seconds, "passes": curves.naive_passes,
                  "full_pass_s": curves.full_pass_seconds, "shards": shards}
    if args.seed != 0:  # another calibration subset: rd only, added to the seed-0 dump
        res = load_json(args.json)
        extra = run(setup, curves, log, methods=["rd"])
        res.setdefault("extra_seeds", {})[str(args.seed)] = {"rows": extra["rows"], "curves": curve_info,
                                                             "run": run_.finish()}
        dump_json(args.json, res)
        insert_section(Path(args.out), res)
        log(f"added rd with calibration seed {args.seed} to {args.json} and {args.out}")
        return
    res = run(setup, curves, log)
    record = run_.finish()
    res.update({"curves": curve_info, "layers": len(setup.layers), "weights": sum(x.n for x in setup.layers),
                "seconds": record["wall_s"], "machine": record["machine"], "date": record["date"], "run": record})
    if args.json:
        dump_json(args.json, res)
    insert_section(Path(args.out), res)
    log(f"wrote the {PAGE_SECTION} section into {args.out}")


if __name__ == "__main__":
    main()
