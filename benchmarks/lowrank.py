"""Benchmark for `dnnkit lowrank`: SVD vs ASVD vs SVD-LLM whitening on zoo:minilm, accuracy vs parameters
for SVD, SVD + short fine-tune and Maestro on zoo:digits-mlp and zoo:fashion-cnn, and Maestro's
"one training, many sizes" truncation curve vs SVD. Writes docs/benchmarks/lowrank.md.

    python benchmarks/lowrank.py [--sections minilm,minilm-maestro,digits,fashion] [--out docs/benchmarks/lowrank.md]

Each section caches its JSON under $TMPDIR/dnnkit-lowrank-bench/ so the table can be rebuilt with
`--report-only`. One torch thread; the scale (epochs, samples) is printed in the table.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnnkit.data import load_data, subset_indices  # noqa: E402
from dnnkit.metrics import Inputs  # noqa: E402
from dnnkit.models.registry import load_model  # noqa: E402
from dnnkit.progress import NullProgress  # noqa: E402
from dnnkit.surgery.lowrank.api import (  # noqa: E402
    LowRankConfig,
    apply_ranks,
    choose_ranks,
    decompose_layers,
    finetune,
)
from dnnkit.surgery.lowrank.calibrate import calibrate  # noqa: E402
from dnnkit.surgery.lowrank.fidelity import fidelity, make_reference, unique_params  # noqa: E402
from dnnkit.surgery.lowrank.maestro import budget_ranks, export, run_maestro  # noqa: E402
from dnnkit.surgery.lowrank.select import select_layers  # noqa: E402
from dnnkit.surgery.lowrank.training import recalibrate_batchnorm  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "dnnkit-lowrank-bench"
FFN = ["encoder.layer.*.intermediate.dense", "encoder.layer.?.output.dense"]
ATTN = ["encoder.layer.*.attention.self.*", "encoder.layer.*.attention.output.dense"]
STDLIB = ["os", "os.path", "re", "json", "collections", "itertools", "functools", "pathlib", "shutil", "string",
          "textwrap", "datetime", "calendar", "random", "statistics", "math", "fractions", "decimal", "heapq",
          "bisect", "array", "copy", "pprint", "enum", "typing", "dataclasses", "abc", "contextlib", "inspect",
          "argparse", "logging", "csv", "configparser", "tarfile", "zipfile", "gzip", "hashlib", "hmac", "secrets",
          "base64", "binascii", "struct", "codecs", "io", "tempfile", "glob", "fnmatch", "subprocess", "threading",
          "queue", "sched", "socket", "ssl", "selectors", "asyncio", "email", "http.client", "urllib.parse",
          "urllib.request", "html", "xml.etree.ElementTree", "sqlite3", "pickle", "shelve", "difflib", "unittest",
          "doctest", "timeit", "trace", "traceback", "warnings", "weakref", "types", "operator", "numbers",
          "locale", "gettext", "uuid", "ipaddress", "mimetypes", "platform", "sysconfig", "zlib", "lzma", "bz2"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def docstring_sentences(limit: int = 600) -> list[str]:
    """First sentences of Python standard-library docstrings (modules, classes, functions), deduplicated."""
    import importlib

    out: list[str] = []
    seen: set[str] = set()
    for name in STDLIB:
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module missing on this build is skipped
            continue
        objs = [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]
        for obj in objs:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str) or (obj is not mod and getattr(obj, "__module__", name) != mod.__name__):
                continue
            first = " ".join(doc.strip().split("\n\n")[0].split())
            first = first.split(". ")[0].rstrip(".")
            if len(first.split()) >= 5 and first not in seen:
                seen.add(first)
                out.append(first)
    import random

    random.Random(0).shuffle(out)
    return out[:limit]


def encode(tok: Any, texts: list[str], max_len: int = 64) -> Inputs:
    enc = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    return Inputs("tokens", enc["input_ids"], None, enc["attention_mask"])


def factor_and_eval(dense: torch.nn.Module, cands: list, decs: dict, cfg: LowRankConfig, ref: Any) -> dict:
    ranks = choose_ranks(cfg, cands, decs)
    model = copy.deepcopy(dense)
    done = apply_ranks(model, cands, decs, ranks)
    fid = fidelity(model, ref)
    return {"ranks": done, "params": unique_params(model), "fid": fid, "model": model}


# ---- MiniLM -----------------------------------------------------------------------------------------

def section_minilm(args: argparse.Namespace) -> dict:
    loaded = load_model("zoo:minilm")
    dense = loaded.model
    texts = docstring_sentences(600)
    tok = loaded.tokenizer()
    half = len(texts) // 2
    calib_in, eval_in = encode(tok, texts[:half]), encode(tok, texts[half:])
    log(f"minilm: {len(texts)} sentences, calib {len(calib_in)}, eval {len(eval_in)}")
    t0 = time.perf_counter()
    ref = make_reference(dense, "encoder", eval_in)
    groups = {"FFN": FFN, "attention": ATTN}
    all_cands = {g: select_layers(dense, pats)[0] for g, pats in groups.items()}
    names = [c.name for cs in all_cands.values() for c in cs]
    calib = calibrate(dense, "encoder", calib_in, names, want_abs=True, want_gram=True, batch_size=32)
    log(f"minilm: reference + calibration {time.perf_counter() - t0:.0f} s")
    base = unique_params(dense)
    rows = []
    for method in ("svd", "asvd", "whiten"):
        for group, cands in all_cands.items():
            warnings: list[str] = []
            cfg = LowRankConfig(method=method, rule="params", value=1.0, data="x")
            decs = decompose_layers(dense, cands, cfg, calib, warnings, NullProgress())
            for p in args.minilm_p:
                cfg.value = p
                r = factor_and_eval(dense, cands, decs, cfg, ref)
                sel_before = sum(c.dense_params for c in cands)
                rows.append({"method": method, "group": group, "P": p, "params": r["params"],
                             "removed": base - r["params"], "selected_kept": 1 - (base - r["params"]) / sel_before,
                             "model_kept": r["params"] / base, "cos_mean": r["fid"]["cosine_mean"],
                             "cos_min": r["fid"]["cosine_min"], "nn": r["fid"]["nn_agreement"],
                             "rel_mse": r["fid"]["relative_output_mse"]})
                log(f"minilm {method} {group} P={p}: cos {rows[-1]['cos_mean']:.4f} "
                    f"(min {rows[-1]['cos_min']:.3f}) nn {rows[-1]['nn']:.2f}")
    return {"rows": rows, "n_calib": len(calib_in), "n_eval": len(eval_in), "base_params": base,
            "seconds": time.perf_counter() - t0}


def section_minilm_maestro(args: argparse.Namespace) -> dict:
    """One Maestro training of the FFN matrices from the pretrained MiniLM, exported at every P."""
    loaded = load_model("zoo:minilm")
    dense = loaded.model
    texts = docstring_sentences(600)
    tok = loaded.tokenizer()
    half = len(texts) // 2
    calib_in, eval_in = encode(tok, texts[:half]), encode(tok, texts[half:])
    t_start = time.perf_counter()
    ref = make_reference(dense, "encoder", eval_in)
    cands, _ = select_layers(dense, FFN)
    base = unique_params(dense)
    cfg = LowRankConfig(method="maestro", epochs=args.minilm_maestro_epochs, lambda_gl=args.minilm_maestro_lambda,
                        lr=args.minilm_maestro_lr, batch_size=32, data="x")
    warnings: list[str] = []
    log(f"minilm-maestro: {len(cands)} FFN matrices, {cfg.epochs} epochs on {len(calib_in)} calibration sentences")
    t0 = time.perf_counter()
    # ref=None: no per-epoch evaluation pass (time); the init check is the library's own test
    out = run_maestro(dense, "encoder", cands, calib_in, None, cfg, warnings, NullProgress())
    secs = time.perf_counter() - t0
    log(f"minilm-maestro: trained {out.report['steps']} steps in {secs:.0f} s, ranks {out.ranks}")
    full = fidelity(out.trained, ref)
    mods = {c.name: out.trained.get_submodule(c.name) for c in cands}
    by_name = {c.name: c for c in cands}
    sel = sum(c.dense_params for c in cands)
    rows = []
    for p in args.minilm_p:  # the same training exported at every budget (--maestro --params P)
        b_ranks = budget_ranks(mods, by_name, out.ranks, p)
        exp, _ = export(out.trained, mods, by_name, b_ranks, dense)
        fid = fidelity(exp, ref)
        params = unique_params(exp)
        rows.append({"P": p, "params": params, "model_kept": params / base,
                     "selected_kept": 1 - (base - params) / sel, "ranks": b_ranks,
                     "cos_mean": fid["cosine_mean"], "cos_min": fid["cosine_min"], "nn": fid["nn_agreement"],
                     "rel_mse": fid["relative_output_mse"]})
        log(f"minilm maestro FFN P={p}: cos {rows[-1]['cos_mean']:.4f} (min {rows[-1]['cos_min']:.3f}) "
            f"nn {rows[-1]['nn']:.2f}")
    return {"rows": rows, "epochs": cfg.epochs, "steps": out.report["steps"], "lr": out.report["lr"],
            "lambda_gl": cfg.lambda_gl, "batch_size": cfg.batch_size, "sampler": cfg.sampler,
            "train_seconds": secs, "train_loss": out.report["train_loss"], "final_ranks": out.ranks,
            "full_rank": {"cos_mean": full["cosine_mean"], "cos_min": full["cosine_min"],
                          "nn": full["nn_agreement"]},
            "warnings": warnings, "n_calib": len(calib_in), "n_eval": len(eval_in),
            "seconds": time.perf_counter() - t_start}


# ---- classifiers ------------------------------------------------------------------------------------

def _classifier_setup(name: str, data: str, eval_limit: int | None, train_limit: int | None, seed: int = 0):
    loaded = load_model(f"zoo:{name}")
    test = load_data(data, "test")
    if eval_limit and len(test) > eval_limit:
        test = test.take(subset_indices(len(test), eval_limit, seed))
    ref = make_reference(loaded.model, "classifier", Inputs("images", test.x, test.y))
    return loaded, ref


def _truncate_eval(trained: torch.nn.Module, ranks: dict[str, int], ref: Any) -> float:
    """Accuracy of the trained Maestro model cut to `ranks` (prefixes of its components), no retraining."""
    mods = {n: trained.get_submodule(n) for n in ranks}
    for n, mod in mods.items():
        mod.active_rank = ranks[n]
    acc = fidelity(trained, ref)["accuracy"]
    for mod in mods.values():
        mod.active_rank = None
    return acc


def classifier_section(name: str, data: str, budgets: list[float], *, ft_epochs: int, maestro_epochs: int,
                       trunc_epochs: int, eval_limit: int | None, train_limit: int | None,
                       lambdas: list[float]) -> dict:
    t_start = time.perf_counter()
    loaded, ref = _classifier_setup(name, data, eval_limit, train_limit)
    dense = loaded.model
    base = unique_params(dense)
    cands, _ = select_layers(dense)
    dense_acc = ref.metrics["accuracy"]
    log(f"{name}: dense accuracy {dense_acc:.4f}, {base} params, {len(cands)} layers selected")
    svd_cfg = LowRankConfig(method="svd", rule="params", value=1.0, data=data, train_limit=train_limit)
    decs = decompose_layers(dense, cands, svd_cfg, None, [], NullProgress())
    rows = []
    for p in budgets:
        svd_cfg.value = p
        r = factor_and_eval(dense, cands, decs, svd_cfg, ref)
        ft_cfg = LowRankConfig(method="svd", rule="params", value=p, data=data, finetune_epochs=ft_epochs,
                               train_limit=train_limit)
        t0 = time.perf_counter()
        finetune(r["model"], dense, loaded, data, ft_cfg, NullProgress())
        ft_acc = fidelity(r["model"], ref)["accuracy"]
        rows.append({"P": p, "ranks": r["ranks"], "params": r["params"], "svd": r["fid"]["accuracy"],
                     "svd_ft": ft_acc, "ft_seconds": time.perf_counter() - t0})
        log(f"{name} P={p}: params {r['params']} svd {rows[-1]['svd']:.4f} svd+ft {ft_acc:.4f}")
    maestro_rows = []
    for lam in lambdas:
        cfg = LowRankConfig(method="maestro", data=data, epochs=maestro_epochs, lambda_gl=lam, train_limit=train_limit)
        from dnnkit.surgery.lowrank.api import training_inputs

        train = training_inputs(loaded, data, cfg)
        warnings: list[str] = []
        t0 = time.perf_counter()
        out = run_maestro(dense, "classifier", cands, train, ref, cfg, warnings, NullProgress())
        secs = time.perf_counter() - t0
        acc = fidelity(out.model, ref)["accuracy"]
        params = unique_params(out.model)
        # baseline: SVD + the same fine-tune at the ranks Maestro found
        ranks = {c.name: min(out.ranks[c.name], c.full_rank) for c in cands}
        svd_model = copy.deepcopy(dense)
        apply_ranks(svd_model, cands, decs, ranks)
        ft_cfg = LowRankConfig(method="svd", data=data, finetune_epochs=ft_epochs, train_limit=train_limit)
        finetune(svd_model, dense, loaded, data, ft_cfg, NullProgress())
        budget = []
        mods = {c.name: out.trained.get_submodule(c.name) for c in cands}
        for p in budgets:  # the same training exported at every budget (--maestro --params P)
            b_ranks = budget_ranks(mods, {c.name: c for c in cands}, out.ranks, p)
            exp, _ = export(out.trained, mods, {c.name: c for c in cands}, b_ranks, dense)
            recalibrate_batchnorm(exp, "classifier", train)
            budget.append({"P": p, "params": unique_params(exp), "acc": fidelity(exp, ref)["accuracy"],
                           "ranks": b_ranks})
        maestro_rows.append({"budget": budget})
        maestro_rows[-1].update({"lambda": lam, "epochs": maestro_epochs, "steps": out.report["steps"],
                             "seconds": secs, "ranks": out.ranks, "params": params, "acc": acc,
                             "svd_ft_same_ranks": fidelity(svd_model, ref)["accuracy"],
                             "svd_ft_same_ranks_params": unique_params(svd_model),
                             "trajectory": out.report["rank_trajectory"], "warnings": warnings})
        log(f"{name} maestro lambda={lam}: params {params} acc {acc:.4f} ranks {out.ranks} ({secs:.0f} s)")
    # one training, many sizes: lambda = 0, truncated to every SVD row's ranks
    trunc = []
    if trunc_epochs:
        cfg = LowRankConfig(method="maestro", data=data, epochs=trunc_epochs, lambda_gl=0.0, train_limit=train_limit)
        from dnnkit.surgery.lowrank.api import training_inputs

        train = training_inputs(loaded, data, cfg)
        t0 = time.perf_counter()
        out = run_maestro(dense, "classifier", cands, train, None, cfg, [], NullProgress())
        secs = time.perf_counter() - t0
        full = fidelity(out.trained, ref)["accuracy"]
        for row in rows:
            ranks = {c.name: row["ranks"].get(c.name, c.full_rank) for c in cands}
            trunc.append({"P": row["P"], "params": row["params"], "svd": row["svd"],
                          "maestro": _truncate_eval(out.trained, ranks, ref),
                          "below_eighth": all(ranks[c.name] < c.full_rank / 8 for c in cands
                                              if c.name in row["ranks"]) and bool(row["ranks"])})
        log(f"{name} truncation: full-rank maestro {full:.4f}, {secs:.0f} s")
        trunc = {"epochs": trunc_epochs, "seconds": secs, "full_rank_acc": full, "rows": trunc}
    return {"dense_acc": dense_acc, "base_params": base, "rows": rows, "maestro": maestro_rows, "truncation": trunc,
            "layers": [(c.name, c.m, c.n) for c in cands], "eval_n": len(ref.inputs), "train_limit": train_limit,
            "ft_epochs": ft_epochs, "seconds": time.perf_counter() - t_start}


def section_digits(args: argparse.Namespace) -> dict:
    return classifier_section("digits-mlp", "digits", [0.5, 0.25, 0.125, 0.0625, 0.03125], ft_epochs=5,
                              maestro_epochs=args.digits_epochs, trunc_epochs=args.digits_epochs, eval_limit=None,
                              train_limit=None, lambdas=[1e-3])


def section_fashion(args: argparse.Namespace) -> dict:
    return classifier_section("fashion-cnn", "fashion-mnist", [0.5, 0.25, 0.125], ft_epochs=1,
                              maestro_epochs=args.fashion_epochs, trunc_epochs=args.fashion_epochs, eval_limit=2000,
                              train_limit=args.fashion_train, lambdas=[1e-3])


# ---- report -----------------------------------------------------------------------------------------

def _mark(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = ["# `dnnkit lowrank` benchmark", "",
             f"Command: `python benchmarks/lowrank.py {' '.join(a for a in sys.argv[1:] if a != '--report-only')}` "
             "(each section may be run as its own process; the JSON of each is cached and the table assembled "
             "with `--report-only`); "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__}, 1 thread "
             f"(`torch.set_num_threads(1)`); machine: {platform.machine()}, {os.cpu_count()} shared cores, "
             "other jobs running (timings are loose). Scaled down from the spec's protocol to fit ~15 min: "
             "see each section.", ""]
    m = results.get("minilm")
    if m:
        lines += ["## zoo:minilm — embedding cosine to the dense model", "",
                  f"First sentences of {m['n_calib'] + m['n_eval']} Python standard-library docstrings "
                  f"(shuffled, seed 0), {m['n_calib']} calibration / {m['n_eval']} evaluation, max 64 tokens. "
                  "P = share of the selected matrices' weights kept (uniform `--params P`); mean (min) cosine of "
                  "mean-pooled embeddings to the dense model, then nearest-neighbour agreement "
                  "(relative output MSE in the cached JSON). "
                  f"Whole model: {m['base_params']:,} params. Grid time {m['seconds']:.0f} s on the loaded machine.",
                  "",
                  "| matrices | P | model params kept | SVD | ASVD | whitening | Maestro |",
                  "|---|---|---|---|---|---|---|"]
        by = {(r["method"], r["group"], r["P"]): r for r in m["rows"]}
        mm = results.get("minilm-maestro")
        for r in mm["rows"] if mm else []:
            by[("maestro", "FFN", r["P"])] = r
        order_ok = True
        for group in ("FFN", "attention"):
            for p in sorted({r["P"] for r in m["rows"]}, reverse=True):
                cells = []
                for meth in ("svd", "asvd", "whiten"):
                    r = by[(meth, group, p)]
                    cells.append(f"{r['cos_mean']:.3f} ({r['cos_min']:.3f}), {r['nn']:.2f}")
                r = by.get(("maestro", group, p))
                cells.append(f"{r['cos_mean']:.3f} ({r['cos_min']:.3f}), {r['nn']:.2f}" if r else "not run")
                a, b, c = (by[(x, group, p)]["cos_mean"] for x in ("svd", "asvd", "whiten"))
                order_ok &= c > b > a
                lines.append(f"| {group} | {p} | {by[('svd', group, p)]['model_kept']:.1%} | " + " | ".join(cells)
                             + " |")
        w80 = by.get(("whiten", "FFN", 0.8))
        lines += ["", "Targets:", f"- whitening > ASVD > SVD at every P: {_mark(order_ok)}."]
        if w80:
            lines.append(f"- whitening FFN P = 0.8 mean cosine >= 0.966: {w80['cos_mean']:.3f}, "
                         f"{_mark(w80['cos_mean'] >= 0.966)}.")
        if mm:
            kept = ", ".join(f"P {r['P']}: {r['model_kept']:.1%} of the model, ranks "
                             f"{min(r['ranks'].values())}-{max(r['ranks'].values())}" for r in mm["rows"])
            lines += ["- Maestro on MiniLM (report-only in the spec): FFN "
                      + "; ".join(f"P {r['P']} {r['cos_mean']:.3f}" for r in mm["rows"])
                      + " mean cosine (no target); above "
                      + "; ".join(f"P {r['P']}: " + (", ".join(n for k, n in (("svd", "SVD"), ("asvd", "ASVD"),
                                                                               ("whiten", "whitening"))
                                                       if r["cos_mean"] > by[(k, "FFN", r["P"])]["cos_mean"])
                                                     or "none")
                                  for r in mm["rows"] if ("svd", "FFN", r["P"]) in by)
                      + ". Setup below.", ""]
            lines += [f"Maestro column (FFN matrices only; attention not run): ONE Maestro training from the "
                      "pretrained model (balanced SVD split at full rank; ranks after progressive shrinking "
                      f"{min(mm['final_ranks'].values())}-{max(mm['final_ranks'].values())}; "
                      f"ordered dropout with the {mm['sampler']} sampler, group lasso lambda_gl {mm['lambda_gl']:g}, "
                      f"distilling the dense mean-pooled embedding, 1 - cosine) on the {mm['n_calib']} calibration "
                      f"sentences: {mm['epochs']} epochs = {mm['steps']} steps of Adam lr {mm['lr']:g}, batch "
                      f"{mm['batch_size']} ({mm['train_seconds']:.0f} s), then that one trained model exported at "
                      "each P with the library's `--maestro --params P` export (trailing components dropped "
                      "greedily, lowest importance / (m + n) first, so ranks differ per matrix, unlike the uniform "
                      f"SVD-family rows; no retraining per P): {kept}. Full-rank trained model: cosine "
                      f"{mm['full_rank']['cos_mean']:.3f} ({mm['full_rank']['cos_min']:.3f}), "
                      f"{mm['full_rank']['nn']:.2f} (it drifted from the dense model; the loss saw only sampled "
                      "sub-models, no `--full-pass`). Budget far below the paper's (a few hundred steps, scaled "
                      "down to fit the time); the spec's init from the whitened split is not implemented (balanced "
                      "SVD split of the dense weight instead)."
                      + (f" Warnings: {'; '.join(mm['warnings'])}." if mm["warnings"] else ""), ""]
        else:
            lines += ["- Maestro on MiniLM (report-only in the spec): not run in this benchmark (time).", ""]
    for key, title in (("digits", "zoo:digits-mlp"), ("fashion", "zoo:fashion-cnn")):
        d = results.get(key)
        if not d:
            continue
        lay = ", ".join(f"{n} {m_}x{n_}" for n, m_, n_ in d["layers"])
        lines += [f"## {title} — accuracy vs parameters", "",
                  f"Dense accuracy {d['dense_acc']:.4f}, {d['base_params']:,} params; factored layers: {lay} "
                  f"(head dense). Evaluation on {d['eval_n']} test images; training data "
                  f"{'all of the train split' if not d['train_limit'] else str(d['train_limit']) + ' train images'}."
                  f" SVD + fine-tune: {d['ft_epochs']} epoch(s) Adam 1e-3, batch 64. Section time "
                  f"{d['seconds']:.0f} s.", "",
                  "| --params P | ranks | params (model) | SVD | SVD + fine-tune |", "|---|---|---|---|---|"]
        for r in d["rows"]:
            ranks = "/".join(str(v) for v in r["ranks"].values()) or "dense"
            lines.append(f"| {r['P']} | {ranks} | {r['params']:,} ({r['params'] / d['base_params']:.1%}) | "
                         f"{r['svd']:.4f} | {r['svd_ft']:.4f} |")
        for mr in d["maestro"]:
            ranks = "/".join(str(v) for v in mr["ranks"].values())
            lines += ["", f"Maestro from the pretrained model: lambda_gl {mr['lambda']}, {mr['epochs']} epochs "
                      f"({mr['steps']} steps, Adam 1e-3, independent sampler, {mr['seconds']:.0f} s): ranks {ranks}, "
                      f"{mr['params']:,} params ({mr['params'] / d['base_params']:.1%}), accuracy {mr['acc']:.4f}. "
                      f"SVD + fine-tune at the same ranks: {mr['svd_ft_same_ranks']:.4f} "
                      f"({mr['svd_ft_same_ranks_params']:,} params)."]
        for mr in d["maestro"]:
            if mr.get("budget"):
                lines += ["", f"The same Maestro training (lambda_gl {mr['lambda']}) exported at each budget "
                          "(`--params P`: trailing components dropped greedily, lowest importance per parameter "
                          "first; BatchNorm statistics recomputed when the model has BatchNorm):", "",
                          "| --params P | params (model) | Maestro exported | SVD + fine-tune (table above) |",
                          "|---|---|---|---|"]
                ft = {r["P"]: r["svd_ft"] for r in d["rows"]}
                for b in mr["budget"]:
                    lines.append(f"| {b['P']} | {b['params']:,} ({b['params'] / d['base_params']:.1%}) | "
                                 f"{b['acc']:.4f} | {ft.get(b['P'], float('nan')):.4f} |")
        best = [(r["params"], r["svd_ft"]) for r in d["rows"]] + [(r["params"], r["svd"]) for r in d["rows"]] + \
               [(mr["params"], mr["acc"]) for mr in d["maestro"]] + \
               [(b["params"], b["acc"]) for mr in d["maestro"] for b in mr.get("budget", [])]
        ok = [p for p, a in best if p <= 0.5 * d["base_params"] and a >= d["dense_acc"] - 0.01]
        lines.append("")
        if key == "fashion":
            lines += ["The spec sets no fashion-cnn figure yet (this run is the first); the digits targets are "
                      "applied for reference. Training budget here: "
                      f"{d['maestro'][0]['steps'] if d['maestro'] else 0} Maestro steps on {d['train_limit']} images, "
                      "far below the spec's 10 epochs = 9,380 steps (scaled down to fit the time), and neither the "
                      "SVD nor the truncated columns recompute BatchNorm statistics (the Maestro exports do).", ""]
        for mr in d["maestro"]:
            share = mr["params"] / d["base_params"]
            lines.append(f"- Target (spec): Maestro from pretrained <= 15% of the parameters within 1 pp of dense: "
                         f"{share:.1%} at {mr['acc'] - d['dense_acc']:+.2%} "
                         f"({_mark(share <= 0.15 and mr['acc'] >= d['dense_acc'] - 0.01)}).")
        lines += ["- Target (digits spec): <= 50% of the parameters within 1 point of dense: "
                  + (f"smallest {min(ok):,} params ({min(ok) / d['base_params']:.1%}), {_mark(True)}."
                     if ok else _mark(False) + ".")]
        t = d.get("truncation")
        if t:
            lines += ["", f"### {title}: one training, many sizes", "",
                      f"Maestro with lambda_gl = 0 trained once from the pretrained model for {t['epochs']} epochs "
                      f"({t['seconds']:.0f} s; full-rank accuracy {t['full_rank_acc']:.4f}), then cut to each "
                      "row's ranks without retraining, against post-hoc SVD of the dense model at the same ranks.",
                      "", "| --params P | params | SVD | Maestro truncated | ranks below 1/8 of full |",
                      "|---|---|---|---|---|"]
            ok_all = True
            for r in t["rows"]:
                if r["below_eighth"]:
                    ok_all &= r["maestro"] >= r["svd"]
                lines.append(f"| {r['P']} | {r['params']:,} | {r['svd']:.4f} | {r['maestro']:.4f} | "
                             f"{'yes' if r['below_eighth'] else 'no'} |")
            lines += ["", f"- Target: Maestro truncated >= SVD at every budget below 1/8 of the ranks: "
                      f"{_mark(ok_all)}.", f"- Target: full-rank Maestro within 0.5 pp of dense: "
                      f"{t['full_rank_acc']:.4f} vs {d['dense_acc']:.4f}, "
                      f"{_mark(t['full_rank_acc'] >= d['dense_acc'] - 0.005)}."]
        lines.append("")
    lines += ["Not claimed: wall-clock speed-ups (none measured here; fewer MACs is not faster at small r on CPU), "
              "nor the papers' LLaMA / CIFAR-10 figures. `zoo:smollm2-135m` was not run (time).", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", default="minilm,digits,fashion")
    ap.add_argument("--out", default="docs/benchmarks/lowrank.md")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--minilm-p", default="0.8,0.6,0.4")
    ap.add_argument("--minilm-maestro-epochs", type=int, default=20)
    ap.add_argument("--minilm-maestro-lr", type=float, default=1e-4)
    ap.add_argument("--minilm-maestro-lambda", type=float, default=1e-6)
    ap.add_argument("--digits-epochs", type=int, default=40)
    ap.add_argument("--fashion-epochs", type=int, default=2)
    ap.add_argument("--fashion-train", type=int, default=6000)
    args = ap.parse_args()
    args.sections = args.sections.split(",")
    args.minilm_p = [float(p) for p in args.minilm_p.split(",")]
    torch.set_num_threads(1)
    CACHE.mkdir(exist_ok=True)
    results: dict[str, Any] = {}
    fns = {"minilm": section_minilm, "minilm-maestro": section_minilm_maestro, "digits": section_digits,
           "fashion": section_fashion}
    for name in args.sections:
        path = CACHE / f"{name}.json"
        if not args.report_only:
            torch.manual_seed(0)
            res = fns[name](args)
            path.write_text(json.dumps(res, default=str))
        if path.exists():
            results[name] = json.loads(path.read_text())
    Path(args.out).write_text(report(results, args))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
