"""Benchmark: B-cosification of zoo CNNs vs the original and vs a B-cos network trained from scratch.

Per model: accuracy of the original; of the B-cosified network (exact and paper encodings) after each
fine-tuning epoch, with wall time; of the same B-cos architecture trained from scratch (random init,
same loss and optimiser, 3x the epochs); completeness error (median over 64 test inputs); the grid
pointing game (2x2 grids) for the B-cos models vs input x gradient on the original. Plus the
structural check on timm models (random init): equivalence at B = 1, completeness at B = 2, replay.

    python benchmarks/bcosify.py [--quick]   # writes docs/benchmarks/bcosify.md
    python benchmarks/bcosify.py --sweep     # lr x logit-scale grid, B-cosified and from scratch:
                                             # writes docs/benchmarks/bcosify-sweep.md
"""

from __future__ import annotations

import statistics

import torch
from harness import (
    DOCS,
    Page,
    Run,
    Timer,
    dump_json,
    header,
    load_json,
    log,
    machine_note,
    mark,
    parser,
    row,
    sci,
    write_page,
)

from dnnkit.data import load_data
from dnnkit.models.registry import load_model
from dnnkit.probes.explain.dynamic import explain_dynamic, input_x_gradient
from dnnkit.probes.explain.pointing import grid_pointing_game
from dnnkit.surgery.bcos.convert import NORM_KINDS, BcosOptions, convert, plan_conversion
from dnnkit.surgery.bcos.finetune import finetune
from dnnkit.surgery.bcos.pipeline import BcosifyConfig
from dnnkit.surgery.bcos.scratch import scratch_bcos
from dnnkit.train import accuracy
from dnnkit.zoo.build import build_zoo_network

# Internals on purpose (not `dnnkit.bcosify`): every row - both encodings, extra learning rates and the B-cos network
# trained from scratch - goes through the same convert + finetune calls on this script's seeded train/test subsets,
# with completeness read on one fixed batch of 64 test images; the command draws its own subsets and measures
# completeness in batches of 32, so its figures would not be the same numbers.
# Fine-tuning: Adam with a cosine schedule, BCE, +-1 px shifts (the library's finetune) at the library's defaults.
LR, SCALE, FT_BATCH = BcosifyConfig.lr, BcosifyConfig.logit_scale, BcosifyConfig.batch_size
# The from-scratch control per model: the best (final accuracy) of the same lr x logit-scale grid as the
# B-cosified model (`--sweep`, docs/benchmarks/bcosify-sweep.md), with the unit-gain initialisation.
SCRATCH = {"digits-cnn": (1e-2, "1"), "fashion-cnn": (1e-2, "1")}
SWEEP_LRS, SWEEP_SCALES = (1e-3, 3e-3, 1e-2), ("auto", "1")
WITHIN = 0.005  # target: within 0.5 points of the original's accuracy
SPEEDUP, POINTING, IXG_POINTING, COMPLETE, EQUIV = 3, 0.85, 0.40, 1e-5, 1e-5  # the spec's / papers' figures


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def completeness(model: torch.nn.Module, x: torch.Tensor) -> float:
    return float(statistics.median(explain_dynamic(model, x).completeness_error.tolist()))


def ixg_completeness(model: torch.nn.Module, x: torch.Tensor) -> float:
    return float(statistics.median(input_x_gradient(model, x).completeness_error.tolist()))


def pointing(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, grids: int, fixed: tuple | None,
             method: str = "auto") -> float:
    try:
        return grid_pointing_game(model, x, y, n_grids=grids, method=method, fixed_input=fixed)["score"]
    except ValueError:  # too few confidently correct classes (an untrained model)
        return float("nan")


def run_key(lr: float, scale: str) -> str:
    return f"lr{lr:g}_s{scale}"


def run_model(name: str, data: str, train_n: int | None, test_n: int | None, epochs: int, scratch_epochs: int,
              grids: int, encodings: list[str], extra: tuple[str, ...] = (),
              sweep: tuple[tuple[float, str], ...] = ()) -> dict:
    """One zoo CNN. Default: the encodings at the library's defaults (+ `extra` "LR[:SCALE]" rows, exact
    encoding) and the from-scratch control at its tuned setting. `sweep`: the exact encoding and the
    from-scratch control at every (lr, logit scale) of the grid (no encoding rows)."""
    log(f"== {name}")
    loaded = load_model(f"zoo:{name}")
    orig = loaded.model.eval()
    tr, te = load_data(data, "train"), load_data(data, "test")
    xtr, ytr = subset(tr.x, tr.y, train_n, 0)
    xte, yte = subset(te.x, te.y, test_n, 1)
    shape = tuple(xte.shape[1:])
    check = xte[torch.randperm(len(xte), generator=torch.Generator().manual_seed(0))[:64]]
    res: dict = {"name": name, "train_n": len(xtr), "test_n": len(xte), "epochs": epochs, "grids": grids,
                 "full_train": len(tr.x), "full_test": len(te.x), "lr": LR, "logit_scale": SCALE}
    res["original"] = accuracy(orig, xte, yte)
    fixed = None if name == "fashion-cnn" else tuple(shape[-2:])
    with Timer() as t:
        res["ixg_pointing"] = pointing(orig, xte, yte, grids, fixed, "ixg")
        res["ixg_completeness"] = ixg_completeness(orig, check)
    log(f"original {res['original']:.4f} ixg pointing {res['ixg_pointing']:.3f} ({t.wall:.0f}s)")
    # With a normalisation layer `auto` resolves to 1 (spec 2.2 / convert.resolve_logit_scale): one run serves both.
    auto_is_one = any(k in NORM_KINDS for k in plan_conversion(orig, shape).units.values())
    grid = [(lr, sc) for lr, sc in sweep if not (auto_is_one and sc != "auto" and float(sc) == 1.0)]
    res["auto_is_one"] = auto_is_one
    if sweep:
        runs = [("exact", lr, sc, f"exact_{run_key(lr, sc)}") for lr, sc in grid]
    else:
        runs = [(enc, LR, SCALE, enc) for enc in encodings]
        for spec in extra:  # "LR" or "LR:LOGIT_SCALE"
            lr, _, scale = spec.partition(":")
            runs.append(("exact", float(lr), scale or SCALE,
                         f"exact_lr{float(lr):g}" + (f"_s{scale}" if scale else "")))
    for enc, lr, scale, key in runs:
        model, plan, _changes, delta = convert(orig, shape, BcosOptions(encoding=enc, logit_scale=scale), check)
        out = {"equivalence": delta, "epoch0": accuracy(model, xte, yte), "logit_scale": model.logit_scale, "lr": lr,
               "scale_option": scale}
        ft = finetune(model, xtr, ytr, epochs=epochs, lr=lr, batch_size=FT_BATCH,
                      eval_fn=lambda m: accuracy(m, xte, yte))
        out.update(acc=ft.accuracy, seconds=ft.seconds, completeness=completeness(model, check))
        with Timer() as t:
            out["pointing"] = pointing(model, xte, yte, grids, fixed)
        log(f"bcosified {key}: {[round(a, 4) for a in ft.accuracy]} {ft.seconds:.0f}s compl {out['completeness']:.2g}"
            f" pointing {out['pointing']:.3f} ({t.wall:.0f}s)")
        res[f"bcosified_{key}"] = out
    scratch_runs = [(lr, sc, f"scratch_{run_key(lr, sc)}") for lr, sc in grid] if sweep else \
        [(*SCRATCH[name], "scratch")]
    for lr, scale, key in scratch_runs:
        torch.manual_seed(0)
        fresh = build_zoo_network(name).eval()
        model, _plan = scratch_bcos(fresh, shape, BcosOptions(logit_scale=scale), xtr[:256], check)
        out = {"lr": lr, "scale_option": scale, "logit_scale": model.logit_scale}
        ft = finetune(model, xtr, ytr, epochs=scratch_epochs, lr=lr, batch_size=FT_BATCH,
                      eval_fn=lambda m: accuracy(m, xte, yte))
        out.update(acc=ft.accuracy, seconds=ft.seconds, completeness=completeness(model, check))
        out["pointing"] = pointing(model, xte, yte, grids, fixed)
        log(f"{key}: {[round(a, 4) for a in ft.accuracy]} {ft.seconds:.0f}s pointing {out['pointing']:.3f}")
        res[key] = out
    return res


def structural(names: list[str]) -> list[dict]:
    """Random-init timm models at 224 px, float64: equivalence, completeness at B = 2, replay reload."""
    import timm

    from dnnkit.models.arch import build_arch
    from dnnkit.models.recipe import replay
    from dnnkit.surgery.bcos.pipeline import BcosifyConfig, BcosifyResult

    rows = []
    for name in names:
        t = Timer()
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=10).eval().double()
        x = torch.rand(2, 3, 224, 224, dtype=torch.float64)
        cfg = model.pretrained_cfg
        opts = BcosOptions(mean=list(cfg["mean"]), std=list(cfg["std"]))
        converted, plan, changes, delta = convert(model, (3, 224, 224), opts, x)
        exp = explain_dynamic(converted, x)
        res = BcosifyResult(converted, plan, changes, delta, "timm")
        step = res.step(BcosifyConfig(), opts)
        rebuilt = replay(build_arch({"family": "timm", "name": name, "kwargs": {"num_classes": 10}}), [step]).double()
        rebuilt.load_state_dict(converted.state_dict(), strict=True)
        rebuilt.eval()
        with torch.no_grad():
            same = float((rebuilt(x) - converted(x)).abs().max())
        rows.append({"name": name, "equivalence": delta, "gap": plan.gap_pool is not None,
                     "reason": plan.gap_reason, "completeness": float(exp.completeness_error.max()),
                     "constant_share": float(exp.constant_share.abs().max()), "replay_identical": same,
                     "modules": len(changes), "seconds": t.wall})
        log(str(rows[-1]))
    return rows


def first_epoch_at(acc: list[float], target: float) -> int | None:
    for i, a in enumerate(acc):
        if a >= target - 1e-9:
            return i + 1
    return None


def write_markdown(results: list[dict], struct: list[dict] | str, record: dict, out_path: str | None = None) -> str:
    lines = ["# Benchmark: `dnnkit bcosify` (B-cosification) and `dnnkit explain`", "",
             f"Command: `{record['command']}` · machine: {machine_note(record)} (other jobs share it: wall times are "
             f"indicative only) · total wall {record.get('wall_s', 0) / 60:.1f} min", ""]
    for r in results:
        show = [e for e in (0, 1, 3, 5, 10) if e <= r["epochs"]]
        lines += [f"## `zoo:{r['name']}`", "",
                  f"Train samples {r['train_n']}, test samples {r['test_n']}"
                  + (f" (**scaled down** from {r['full_train']}/{r['full_test']} to fit the time budget)"
                     if r["train_n"] < r["full_train"] or r["test_n"] < r["full_test"] else "")
                  + f", {r['epochs']} fine-tuning epochs, "
                  f"Adam {r.get('lr', 1e-3):g} cosine, logit scale {r.get('logit_scale', 'auto')} (the defaults), "
                  f"batch {FT_BATCH}, ±1 px shifts, BCE; grid pointing game on {r['grids']} 2×2 grids."
                  + (f" B-cos from scratch: the converted architecture with random weights and the unit-gain "
                     f"initialisation (`dnnkit.surgery.bcos.scratch`), Adam {r['scratch']['lr']:g}, logit scale "
                     f"{r['scratch']['scale_option']} ({r['scratch']['logit_scale']:.3g}), the best of the same "
                     "lr × logit-scale grid as the B-cosified model ([bcosify-sweep.md](bcosify-sweep.md))."
                     if "lr" in r["scratch"] else ""), ""]
        lines += header(["model", *(f"ep{e}" for e in show), "wall", "completeness (median rel.)",
                         "grid pointing 2×2"])
        for key in [k[len("bcosified_"):] for k in r if k.startswith("bcosified_")]:
            b = r[f"bcosified_{key}"]
            accs = [b["epoch0"], *b["acc"]]
            label = key.replace("_lr", " encoding, lr ").replace("_s", ", logit scale ") if "_lr" in key \
                else f"{key} encoding"
            lines.append(row([f"B-cosified, {label}", *(f"{100 * accs[e]:.2f}" for e in show), f"{b['seconds']:.0f} s",
                              f"{b['completeness']:.2g}", f"{b['pointing']:.3f}"]))
        s = r["scratch"]
        lines.append(row([f"B-cos from scratch ({len(s['acc'])} ep: {100 * s['acc'][-1]:.2f})", "–",
                          *(f"{100 * s['acc'][e - 1]:.2f}" for e in show[1:]), f"{s['seconds']:.0f} s",
                          f"{s['completeness']:.2g}", f"{s['pointing']:.3f}"]))
        lines.append(row([f"original ({100 * r['original']:.2f}%), input×gradient", *("–" for _ in show), "–",
                          f"{r['ixg_completeness']:.2g}", f"{r['ixg_pointing']:.3f}"]))
        ex = r["bcosified_exact"]
        target = r["original"] - WITHIN
        best = max(ex["acc"]) if ex["acc"] else ex["epoch0"]
        ep_b = first_epoch_at(ex["acc"], target)
        ep_s = first_epoch_at(s["acc"], target)
        reach = max(ex["acc"][-1], 0)
        ep_b2 = first_epoch_at(ex["acc"], reach)
        ep_s2 = first_epoch_at(s["acc"], reach)
        lines += ["", "Targets:", "",
                  f"- within {100 * WITHIN:g} points of the original ({100 * r['original']:.2f}%) within "
                  f"{r['epochs']} epochs: {mark(bool(ep_b))} (best {100 * best:.2f}%"
                  + (f", first at epoch {ep_b}" if ep_b else "") + ")",
                  f"- epochs to the B-cosified final accuracy {100 * reach:.2f}%: B-cosified {ep_b2}, from scratch "
                  + (f"{ep_s2} ({ep_s2 / ep_b2:.1f}×; target ≥ {SPEEDUP}×: {mark(ep_s2 / ep_b2 >= SPEEDUP)})"
                     if ep_s2 else f"not within {len(s['acc'])} epochs (≥ {len(s['acc']) / ep_b2:.1f}×: **met**)"),
                  f"- grid pointing ≥ {POINTING} (B-cosified, exact) vs about {IXG_POINTING:.2f} for input×gradient: "
                  f"{ex['pointing']:.3f} vs {r['ixg_pointing']:.3f} ({mark(ex['pointing'] >= POINTING)})",
                  f"- completeness ≤ {sci(COMPLETE)} (exact): {ex['completeness']:.2g} "
                  f"({mark(ex['completeness'] <= COMPLETE)})",
                  f"- equivalence ≤ {sci(EQUIV)} absolute: {ex['equivalence']:.2g} "
                  f"({mark(ex['equivalence'] <= EQUIV)}); logit scale {ex['logit_scale']:.4g}",
                  f"- from scratch within {100 * WITHIN:g} points of the original ({100 * r['original']:.2f}%): "
                  f"{'reached at epoch ' + str(ep_s) if ep_s else 'not reached'} in {len(s['acc'])} epochs", ""]
    if struct == "keep":  # --skip-structural on a page that has one: the section stays as it was
        kept = Page.read(out_path) if out_path else Page()
        section = next((sec for sec in kept.sections if sec[0].startswith("## Structural check")), None)
        note = "(Kept from the previous run of this page: the structural check was not rerun.)"
        if section:
            body = [line for line in section if line != note]
            while body and body[-1] == "":
                body.pop()
            lines += [*body, "", note, ""]
    elif struct:
        lines += ["## Structural check (timm, random init, two 224×224 inputs, float64)", "",
                  *header(["model", "equivalence max abs Δ (B = 1)", "GAP reorder", "completeness max (B = 2, exact)",
                           "constant share (max)", "replay reload max abs Δ", "modules", "time"])]
        for s in struct:
            gap = "yes" if s["gap"] else "no: " + s["reason"]
            lines.append(row([f"`timm:{s['name']}`", f"{s['equivalence']:.2g}", gap,
                              f"{s['completeness']:.2g} ({mark(s['completeness'] <= COMPLETE)})",
                              f"{s['constant_share']:.3g}", f"{s['replay_identical']:.2g}", s["modules"],
                              f"{s['seconds']:.0f} s"]))
        lines.append("")
    lines += ["Not claimed: ImageNet figures, the papers' 4.7×/9× speed-ups, that B-cosified beats from-scratch at "
              "long budgets, that the paper encoding is complete, any ViT localisation figure.", ""]
    return "\n".join(lines)


def sweep_row(r: dict, kind: str, lr: float, scale: str) -> dict | None:
    """The sweep result of `kind` (exact / scratch) at (lr, scale); `auto` stands for 1 on a normalised net."""
    prefix = "bcosified_exact" if kind == "exact" else "scratch"
    found = r.get(f"{prefix}_{run_key(lr, scale)}")
    if found is None and r.get("auto_is_one") and scale != "auto":
        found = r.get(f"{prefix}_{run_key(lr, 'auto')}")
    return found


def sweep_choice(results: list[dict], kind: str) -> list[dict]:
    """Per grid point: final accuracy and pointing on each model and their means, best first (mean accuracy,
    then mean pointing)."""
    out = []
    for lr in SWEEP_LRS:
        for scale in SWEEP_SCALES:
            got = [sweep_row(r, kind, lr, scale) for r in results]
            if any(g is None for g in got):
                continue
            accs = [g["acc"][-1] for g in got]
            points = [g["pointing"] if g["pointing"] == g["pointing"] else 0.0 for g in got]
            out.append({"lr": lr, "scale": scale, "acc": accs, "pointing": points,
                        "mean_acc": statistics.mean(accs), "mean_pointing": statistics.mean(points)})
    return sorted(out, key=lambda c: (-round(c["mean_acc"], 6), -c["mean_pointing"]))


def write_sweep(results: list[dict], record: dict) -> str:
    lines = ["# Benchmark: `dnnkit bcosify` defaults sweep (learning rate × logit scale)", "",
             f"Command: `{record['command']}` · machine: {machine_note(record)} (other jobs share it: wall times are "
             f"indicative only) · total wall {record.get('wall_s', 0) / 60:.1f} min", "",
             "The B-cosified network (exact encoding) and the B-cos network trained from scratch (the converted "
             "architecture, random weights, unit-gain initialisation: `dnnkit.surgery.bcos.scratch`) on the same "
             f"grid: Adam lr {{{', '.join(f'{lr:g}' for lr in SWEEP_LRS)}}} (cosine) × logit scale "
             f"{{{', '.join(SWEEP_SCALES)}}}; batch {FT_BATCH}, ±1 px shifts, BCE, seed 0. `auto` is 1 on a network "
             "with normalisation layers (`zoo:fashion-cnn`: one run stands for both), else std(original logits) / "
             "std(converted logits) on 64 test images (for the from-scratch network: against the randomly "
             "initialised original). Final = accuracy after the last epoch; pointing = grid pointing game (2×2).", ""]
    for r in results:
        lines += [f"## `zoo:{r['name']}`", "",
                  f"Train samples {r['train_n']}, test samples {r['test_n']}"
                  + (f" (**scaled down** from {r['full_train']}/{r['full_test']} to fit the time budget)"
                     if r["train_n"] < r["full_train"] or r["test_n"] < r["full_test"] else "")
                  + f"; B-cosified {r['epochs']} epochs, from scratch {3 * r['epochs']}; original "
                  f"{100 * r['original']:.2f}%, input×gradient pointing {r['ixg_pointing']:.3f}.", ""]
        lines += header(["model", "lr", "logit scale", "ep1", "ep3", "ep5", f"ep{r['epochs']}", "final", "best",
                         "grid pointing 2×2", "completeness (median rel.)", "wall"])
        for kind, label in (("exact", "B-cosified, exact"), ("scratch", "B-cos from scratch")):
            for lr in SWEEP_LRS:
                for scale in SWEEP_SCALES:
                    b = r.get(("bcosified_exact" if kind == "exact" else "scratch") + f"_{run_key(lr, scale)}")
                    if b is None:
                        continue
                    acc = b["acc"]
                    shown = [f"{100 * acc[e - 1]:.2f}" if e <= len(acc) else "–" for e in (1, 3, 5, r["epochs"])]
                    sc = f"{scale} ({b['logit_scale']:.3g})" if scale == "auto" else scale
                    lines.append(row([label, f"{lr:g}", sc, *shown, f"{100 * acc[-1]:.2f}",
                                      f"{100 * max(acc):.2f}", f"{b['pointing']:.3f}", f"{b['completeness']:.2g}",
                                      f"{b['seconds']:.0f} s"]))
        lines.append("")
    names = [f"`{r['name']}`" for r in results]
    lines += ["## Choice", ""]
    for kind, label in (("exact", "B-cosified (the CLI/library defaults)"),
                        ("scratch", "from scratch (the control)")):
        ranked = sweep_choice(results, kind)
        if not ranked:
            continue
        lines += [f"{label}, ranked by mean final accuracy over the models, then mean pointing:", "",
                  *header(["lr", "logit scale", *(f"{n} final" for n in names), *(f"{n} pointing" for n in names),
                           "mean final", "mean pointing"])]
        for c in ranked:
            lines.append(row([f"{c['lr']:g}", c["scale"], *(f"{100 * a:.2f}" for a in c["acc"]),
                              *(f"{p:.3f}" for p in c["pointing"]), f"{100 * c['mean_acc']:.2f}",
                              f"{c['mean_pointing']:.3f}"]))
        best = ranked[0]
        top_point = max(ranked, key=lambda c: c["mean_pointing"])
        lines += ["", f"Best: lr {best['lr']:g}, logit scale {best['scale']}"
                  + ("; it also has the best mean pointing." if top_point is best else
                     f"; best mean pointing: lr {top_point['lr']:g}, logit scale {top_point['scale']}."), ""]
    return "\n".join(lines)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke run)")
    p.add_argument("--out", default=None, help="the page (default docs/benchmarks/bcosify.md, with --sweep "
                                               "docs/benchmarks/bcosify-sweep.md)")
    p.add_argument("--json", default=None, help="also save the results here (the page can be rebuilt from it)")
    p.add_argument("--from-json", default=None, help="only rewrite --out from a saved --json file")
    p.add_argument("--fashion-train", type=int, default=3000)
    p.add_argument("--fashion-test", type=int, default=1000)
    p.add_argument("--fashion-epochs", type=int, default=5, help="B-cosified epochs on fashion (from scratch: 3x)")
    p.add_argument("--skip-fashion", action="store_true")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--skip-structural", action="store_true",
                   help="do not rerun the timm structural check (the page keeps its previous section)")
    p.add_argument("--extra", action="append", default=[], metavar="LR[:LOGIT_SCALE]",
                   help="also fine-tune the exact encoding with this learning rate (and logit scale); a row each")
    p.add_argument("--sweep", action="store_true", help="the lr x logit-scale grid (B-cosified and from scratch) "
                                                        "instead of the default rows; no structural check")
    args = p.parse_args()
    out = args.out or str(DOCS / ("bcosify-sweep.md" if args.sweep else "bcosify.md"))
    if args.from_json:
        saved = load_json(args.from_json)
        text = write_sweep(saved["results"], saved["run"]) if saved.get("sweep") else \
            write_markdown(saved["results"], saved["structural"], saved["run"], out)
        write_page(out, text)
        return
    run = Run(threads=1)
    results = []
    grid = tuple((lr, sc) for lr in SWEEP_LRS for sc in SWEEP_SCALES) if args.sweep else ()
    fe = args.fashion_epochs
    if args.quick:
        results.append(run_model("digits-cnn", "digits", 300, 200, 2, 3, 10, ["exact"]))
    else:
        if not args.skip_digits:
            results.append(run_model("digits-cnn", "digits", None, None, 10, 30, 250, ["exact", "paper"],
                                     tuple(args.extra), grid))
        if not args.skip_fashion:
            results.append(run_model("fashion-cnn", "fashion-mnist", args.fashion_train, args.fashion_test, fe,
                                     3 * fe, 100, ["exact"], sweep=grid))
    if args.sweep:
        struct: list[dict] | str = []
    elif args.skip_structural:
        struct = "keep"
    else:
        struct = structural(["resnet18"] if args.quick else ["resnet18", "densenet121", "convnext_atto",
                                                              "vit_tiny_patch16_224", "deit_tiny_patch16_224"])
    record = run.finish()
    if args.json:
        dump_json(args.json, {"results": results, "structural": struct, "run": record, "sweep": args.sweep})
    text = write_sweep(results, record) if args.sweep else write_markdown(results, struct, record, out)
    write_page(out, text)
    print(text)


if __name__ == "__main__":
    main()
