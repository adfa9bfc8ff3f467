"""One network per seed (issues 16 and 18): at 90 % one-shot (no fine-tune), does rd over the best criterion
beat LAMP magnitude by more than twice the paired spread over 5 seeds, on zoo:digits-cnn and zoo:fashion-cnn?

    python benchmarks/prune_seeds.py [--models digits-cnn,fashion-cnn] [--seeds 5] [--resume] [--train-only]
    python benchmarks/prune_seeds.py --page-only   # rewrite the page from docs/benchmarks/prune-seeds.json

For each model and seed s: a fresh network is trained with the zoo recipe and training seed s
(`dnnkit.zoo.build.train_zoo_network`; state dicts cached under `$DNNKIT_HOME/bench/prune-seeds/`, so reruns skip
training), the calibration subset is drawn with the same seed (`seed=s`), and each method prunes that network
through the public API (`dnnkit.prune(model, ratio=0.9, method=M, criterion=C, data=..., seed=s)`). Test top-1 is
measured here on the whole test split, the same for every method. Rows go to docs/benchmarks/prune-seeds.json after
every run (`--resume` skips the rows already there, with the same settings), and the page
docs/benchmarks/prune-seeds.md is written from all the rows in that file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from harness import DOCS, Run, Timer, dump_json, load_json, machine_note, mean_sd, parser, row, table, write_page

import dnnkit
from dnnkit.data import load_data
from dnnkit.home import dnnkit_home
from dnnkit.zoo.build import build_zoo_network, train_zoo_network
from dnnkit.zoo.catalog import zoo_entry

RATIO = 0.9
CONFIG: dict[str, dict[str, Any]] = {
    # the spec's 256 calibration samples; 51 rd levels keep one rd run under a minute on one thread
    # (measured before the run: 2-7 s on digits-cnn, 25-35 s on fashion-cnn)
    "digits-cnn": {"data": "digits", "levels": 51, "calib": 256},
    "fashion-cnn": {"data": "fashion-mnist", "levels": 51, "calib": 256},
}
# (label, method, criterion); LAMP magnitude is the baseline the target names
METHODS: list[tuple[str, str, str]] = [
    ("lamp+magnitude", "lamp", "magnitude"),
    ("uniform+wanda", "uniform", "wanda"),
    ("uniform+sparsegpt", "uniform", "sparsegpt"),
    ("owl+wanda", "owl", "wanda"),
    ("rd+magnitude", "rd", "magnitude"),
    ("rd+wanda", "rd", "wanda"),
    ("rd+sparsegpt", "rd", "sparsegpt"),
]
BASELINE = "lamp+magnitude"
JSON_OUT = DOCS / "prune-seeds.json"
PAGE_OUT = DOCS / "prune-seeds.md"


def cache_dir() -> Path:
    return dnnkit_home() / "bench" / "prune-seeds"


def trained(name: str, seed: int, log: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network of zoo model `name` trained with seed `seed` (from the cache, else trained and cached)."""
    from safetensors.torch import load_file, save_file

    entry = zoo_entry(name)
    key = f"{name}-v{entry.version}-seed{seed}"
    path = cache_dir() / f"{key}.safetensors"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("recipe") == entry.train:
            model = build_zoo_network(name)
            model.load_state_dict(load_file(str(path)))
            return model.eval(), info["metrics"]
    log(f"{name} seed {seed}: training ({entry.train})")
    model, metrics = train_zoo_network(name, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)
    dump_json(meta, {"recipe": entry.train, "metrics": metrics})
    log(f"{name} seed {seed}: dense test accuracy {metrics['test_accuracy']:.4f} ({metrics['train_seconds']} s)")
    return model.eval(), metrics


def accuracy(model: torch.nn.Module, test: Any) -> float:
    """Top-1 on the whole test split."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test.x), 500):
            correct += int((model(test.x[i:i + 500]).argmax(-1) == test.y[i:i + 500]).sum())
    return correct / len(test.x)


def prune_row(name: str, seed: int, label: str, method: str, criterion: str, dense: torch.nn.Module,
              test: Any) -> dict[str, Any]:
    """One pruning run through the public API and its test accuracy."""
    cfg = CONFIG[name]
    opts: dict[str, Any] = {"criterion": criterion, "seed": seed}
    data = None
    if method in ("rd", "owl") or criterion != "magnitude":
        data = cfg["data"]
        opts.update(calib=cfg["calib"], eval_limit=64)  # held-out figures are measured here, on the whole split
    if method == "rd":
        opts["levels"] = cfg["levels"]
    with Timer() as t:
        result = dnnkit.prune(dense, ratio=RATIO, method=method, data=data, arch=f"zoo:{name}", **opts)
    rep = result.report
    layers = rep["layers"]
    return {"model": name, "seed": seed, "method": label, "allocation": method, "criterion": criterion,
            "ratio": RATIO, "accuracy": accuracy(result.model.eval(), test), "achieved": rep["achieved"],
            "exact": rep["pruned"] == rep["target"], "rho": (rep.get("additivity") or {}).get("rho"),
            "max_layer": max(x["sparsity"] for x in layers), "calibration": rep.get("calibration"),
            "layers": {x["name"]: round(x["sparsity"], 4) for x in layers},
            "curves_s": rep["timing"].get("curves_s"), "seconds": round(t.wall, 2)}


def settings(name: str) -> dict[str, Any]:
    return {"ratio": RATIO, **CONFIG[name], "recipe": zoo_entry(name).train}


# ------------------------------------------------------------------------------------------------ page

def paired(rows: list[dict[str, Any]], model: str, method: str, other: str) -> dict[int, float]:
    """Per-seed accuracy difference method − other, in points, over the seeds both have."""
    a = {r["seed"]: r["accuracy"] for r in rows if r["model"] == model and r["method"] == method}
    b = {r["seed"]: r["accuracy"] for r in rows if r["model"] == model and r["method"] == other}
    return {s: 100 * (a[s] - b[s]) for s in sorted(a) if s in b}


def verdict(diffs: list[float]) -> tuple[bool, float, float]:
    """Met when the mean paired gain is positive and larger than twice the SD of the paired differences."""
    mu, sd = mean_sd(diffs)
    return len(diffs) > 1 and mu > 0 and mu > 2 * sd, mu, sd


def model_section(res: dict[str, Any], model: str) -> tuple[list[str], str | None]:
    """The page section of one model and its target-table row."""
    rows = [r for r in res["rows"] if r["model"] == model]
    if not rows:
        return [], None
    dense = res["dense"].get(model, {})
    seeds = sorted({r["seed"] for r in rows})
    cfg = res["settings"][model]
    labels = [m for m, _, _ in METHODS if any(r["method"] == m for r in rows)]
    means = {m: mean_sd([100 * r["accuracy"] for r in rows if r["method"] == m]) for m in labels}
    rd_labels = [m for m in labels if m.startswith("rd+")]
    best_rd = max(rd_labels, key=lambda m: means[m][0]) if rd_labels else None
    non_rd = [m for m in labels if not m.startswith("rd+")]
    best_other = max(non_rd, key=lambda m: means[m][0]) if non_rd else None
    dense_acc = [100 * dense[str(s)]["test_accuracy"] for s in seeds if str(s) in dense]
    plural = "s" if len(seeds) != 1 else ""
    lines = [f"## {model} ({len(seeds)} seed{plural}, dense test top-1 {mean_sd(dense_acc)[0]:.2f} ± "
             f"{mean_sd(dense_acc)[1]:.2f} %)", "",
             f"Data `{cfg['data']}`; calibration {cfg['calib']} training samples drawn with the seed; rd with "
             f"{cfg['levels']} levels (cap 0.99, mean objective, exact curves); test top-1 on the whole test split "
             f"({res['test_samples'][model]} samples).", "",
             "Dense networks, one per training seed (zoo recipe " + json.dumps(cfg["recipe"]) + "):", "",
             table(["seed", *[str(s) for s in seeds]],
                   [["dense test top-1 %", *[f"{100 * dense[str(s)]['test_accuracy']:.2f}" for s in seeds]],
                    ["training s", *[f"{dense[str(s)]['train_seconds']:.0f}" for s in seeds]]]), "",
             f"Pruned to {100 * RATIO:.0f} % one-shot, no fine-tune (test top-1 %; paired = per-seed difference to "
             f"{BASELINE}, mean ± SD):", ""]
    body = []
    for m in labels:
        by_seed = {r["seed"]: r for r in rows if r["method"] == m}
        d = list(paired(rows, model, m, BASELINE).values())
        ok, mu, sd = verdict(d)
        pair = "-" if m == BASELINE else f"{mu:+.2f} ± {sd:.2f}" + (" (> 2 SD)" if ok else "")
        rho = [r["rho"] for r in by_seed.values() if r["rho"] is not None]
        secs = mean_sd([r["seconds"] for r in by_seed.values()])[0]
        body.append([m + (" (best rd)" if m == best_rd else ""), f"{means[m][0]:.2f} ± {means[m][1]:.2f}", pair,
                     " / ".join(f"{100 * by_seed[s]['accuracy']:.1f}" if s in by_seed else "-" for s in seeds),
                     f"{mean_sd(rho)[0]:.2f}" if rho else "-",
                     f"{100 * max(r['max_layer'] for r in by_seed.values()):.1f}",
                     "yes" if all(r["exact"] for r in by_seed.values()) else "no", f"{secs:.1f}"])
    lines.append(table(["method", "top-1 mean ± SD", f"paired vs {BASELINE}", "per seed " + "/".join(map(str, seeds)),
                        "rd ρ (mean)", "max layer sparsity %", "count exact", "s per run"], body, "lrrrrrcr"))
    emptied = {m: sum(r["max_layer"] >= 1.0 for r in rows if r["method"] == m) for m in labels}
    emptied = {m: n for m, n in emptied.items() if n}
    chance = [m for m in labels if means[m][0] < 12.5]
    notes = []
    if emptied:
        notes.append("A layer left with no weight at all (100 % sparse): " + ", ".join(
            f"{m} in {n} of {len(seeds)} networks" for m, n in emptied.items()) + ".")
    if chance:
        notes.append(f"At or near chance (10 %): {', '.join(chance)}.")
    target_row = None
    if best_rd and BASELINE in labels:
        d = paired(rows, model, best_rd, BASELINE)
        ok, mu, sd = verdict(list(d.values()))
        per = ", ".join(f"{v:+.2f}" for v in d.values())
        lines += ["", f"Best rd row: **{best_rd}**; paired gain over {BASELINE} {mu:+.2f} ± {sd:.2f} points over "
                  f"{len(d)} seeds (per seed {per}); 2 × SD = {2 * sd:.2f}: **{'met' if ok else 'missed'}**."]
        if best_other and best_other != BASELINE:
            d2 = paired(rows, model, best_rd, best_other)
            _, mu2, sd2 = verdict(list(d2.values()))
            lines.append(f"Against the best non-rd row ({best_other}, {means[best_other][0]:.2f} %), {best_rd} is "
                         f"{mu2:+.2f} ± {sd2:.2f} points (paired).")
        note = "" if len(d) >= 5 else f"only {len(d)} of the 5 seeds the target asks for"
        target_row = row([f"rd over the best criterion beats LAMP magnitude by > 2 × paired SD at {100 * RATIO:.0f} % "
                          "one-shot", model, f"{best_rd} {mu:+.2f} ± {sd:.2f} (n={len(d)})",
                          "met" if ok else "missed", note])
    if notes:
        lines += ["", " ".join(notes)]
    return lines + [""], target_row


def write_page_from(res: dict[str, Any], path: Path) -> Path:
    models = [m for m in CONFIG if any(r["model"] == m for r in res["rows"])]
    sections, targets, verdicts = [], [], []
    for model in models:
        lines, target = model_section(res, model)
        sections += lines
        if target:
            targets.append(target)
            verdicts.append(target.split(" | ")[3] == "met" and not target.split(" | ")[4].strip(" |"))
    if len(verdicts) > 1 or (verdicts and len(models) < len(CONFIG)):
        whole = len(verdicts) == len(CONFIG) and all(verdicts)
        targets.append(row(["issue 16: the above on both CNNs, 5 seeds each", ", ".join(models), "see the rows above",
                            "met" if whole else "missed", "" if whole else "needs every model met over 5 seeds"]))
    runs = res.get("runs") or []
    commands = "; ".join(f"`{r['command']}`" for r in runs)
    notes = [f"- {machine_note(r)}; {r.get('wall_s', 0) / 60:.1f} min wall" for r in runs]
    lines = ["# prune: one network per seed, 90 % one-shot (issues 16 and 18)", "",
             "Written by `benchmarks/prune_seeds.py`. Each seed trains its own network with the zoo recipe (training "
             "seed = the seed) and draws its own calibration subset with the same seed; every method prunes that "
             "network to exactly 90 % of the Linear/Conv weights through the public API (`dnnkit.prune`), with no "
             "fine-tune. Methods are paired on each network. The best rd row is picked after the fact among the three "
             "rd criteria (a selection that favours rd); every row's paired difference to LAMP is shown.", "",
             "The trained networks are cached under `$DNNKIT_HOME/bench/prune-seeds/` (a `--train-only` run "
             "trains them and prunes nothing; a later run loads them, and `--resume` keeps the rows and dense figures "
             "of the dump it reads).", "",
             f"Command: {commands} (each run as `flock /tmp/dnnkit-heavy.lock env OMP_NUM_THREADS=1 "
             ".venv/bin/python ...`)  ",
             "Runs (torch threads pinned with `torch.set_num_threads`):", *notes, "",
             "## Target", "",
             "| target | model | measured (paired mean ± SD, points) | verdict | note |",
             "| --- | --- | --- | --- | --- |", *targets, "",
             *sections,
             "Raw rows: `docs/benchmarks/prune-seeds.json` (per run: accuracy, achieved sparsity, ρ, per-layer "
             "sparsity, calibration hash, seconds)."]
    return write_page(path, "\n".join(lines))


# ------------------------------------------------------------------------------------------------ main

def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="digits-cnn,fashion-cnn")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(m for m, _, _ in METHODS), help="comma-separated labels")
    ap.add_argument("--train-only", action="store_true", help="train and cache the networks, prune nothing")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --json, run the missing ones")
    ap.add_argument("--json", default=str(JSON_OUT))
    ap.add_argument("--out", default=str(PAGE_OUT))
    ap.add_argument("--page-only", action="store_true", help="write --out from the rows in --json, run nothing")
    args = ap.parse_args()
    if args.page_only:
        write_page_from(load_json(args.json), Path(args.out))
        return
    run = Run(threads=1)
    log = run.log
    methods = [m for m in METHODS if m[0] in args.methods.split(",")]
    res: dict[str, Any] = {"rows": [], "dense": {}, "settings": {}, "test_samples": {}, "runs": []}
    if args.resume and Path(args.json).exists():
        res = load_json(args.json)
    res["runs"] = [r for r in res["runs"] if r.get("date") != run.record["date"]] + [run.record]
    for name in args.models.split(","):
        if name in res["settings"] and res["settings"][name] != settings(name):
            raise SystemExit(f"{args.json} holds {name} rows with other settings; rerun without --resume")
        res["settings"][name] = settings(name)
        test = load_data(CONFIG[name]["data"], "test")
        res["test_samples"][name] = len(test.x)
        for seed in range(args.seeds):
            dense, metrics = trained(name, seed, log)
            res["dense"].setdefault(name, {})[str(seed)] = metrics
            if args.train_only:
                continue
            for label, method, criterion in methods:
                if any((r["model"], r["seed"], r["method"]) == (name, seed, label) for r in res["rows"]):
                    continue
                r = prune_row(name, seed, label, method, criterion, dense, test)
                res["rows"].append(r)
                run.finish()
                dump_json(args.json, res)
                log(f"{name} seed {seed} {label:18s}: top-1 {100 * r['accuracy']:.2f} achieved {r['achieved']:.4f} "
                    f"rho {r['rho']} ({r['seconds']:.1f} s)")
    run.finish()
    dump_json(args.json, res)
    if res["rows"]:
        write_page_from(res, Path(args.out))
        log(f"wrote {args.out} and {args.json}")
    if any(math.isnan(r["accuracy"]) for r in res["rows"]):
        raise SystemExit("a run gave NaN accuracy")


if __name__ == "__main__":
    main()
