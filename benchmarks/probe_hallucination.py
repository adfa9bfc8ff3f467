"""Benchmark: does SmolLM2-135M-Instruct's hidden state flag its wrong answers better than its token
probabilities and than the question's metadata? Writes docs/benchmarks/probe_hallucination.md.

    python benchmarks/probe_hallucination.py [--items quick|default] [--threads 1]

One torch thread. `quick` (the profile used for the committed table) scales the item count down so the
run fits the ~30 min budget of a shared 2-core machine; `default` is the spec's ~860 items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROFILES = {
    # task -> number of items (None = all); arithmetic: n, ops, digits
    "quick": {"capitals": 80, "state-capitals": 0, "element-symbols": 60, "element-numbers": 60,
              "arith": (200, "add,sub", "1-2")},
    "default": {"capitals": None, "state-capitals": None, "element-symbols": None, "element-numbers": None,
                "arith": (400, "add,sub,mul", "1-4")},
}


def build_items(profile: str, seed: int) -> list[dict]:
    from dnnkit.probes.hallucination.dataset import build_dataset

    cfg = PROFILES[profile]
    n_arith, ops, digits = cfg["arith"]
    fact_tasks = [t for t in ("capitals", "state-capitals", "element-symbols", "element-numbers")
                  if cfg[t] is None or cfg[t] > 0]
    records, _ = build_dataset(",".join([*fact_tasks, "arithmetic"]), "builtin", n_arith, ops, digits, seed)
    rng = random.Random(seed)
    out = []
    for task in fact_tasks:
        items = [r for r in records if r["task"] == task]
        if cfg[task] is not None and cfg[task] < len(items):
            items = rng.sample(items, cfg[task])
        out += items
    out += [r for r in records if r["task"] == "arithmetic"]
    return out


def fmt(v: object, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def ci(v: list[float] | None) -> str:
    return "-" if not v else f"[{v[0]:.2f}, {v[1]:.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--holdout-family", default="chemistry")
    ap.add_argument("--grid-stride", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cache", default="/tmp/dnnkit-bench-hallucination-cache")
    ap.add_argument("--probe-out", default="/tmp/dnnkit-bench-hallucination/probe.safetensors")
    ap.add_argument("--out", default="docs/benchmarks/probe_hallucination.md")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from dnnkit.models.registry import load_model
    from dnnkit.models.save import write_checkpoint
    from dnnkit.probes.hallucination.answers import answer_and_extract
    from dnnkit.probes.hallucination.dataset import records_jsonl
    from dnnkit.probes.hallucination.pipeline import TrainOptions, probe_record, run_train
    from dnnkit.probes.hallucination.plots import write_plots
    from dnnkit.progress import CallbackProgress

    progress = CallbackProgress(lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    records = build_items(args.items, args.seed)
    Path(args.probe_out).parent.mkdir(parents=True, exist_ok=True)
    data_path = Path(args.probe_out).parent / "qa.jsonl"
    data_path.write_text(records_jsonl(records))
    progress.log(f"{len(records)} items ({args.items}) -> {data_path}")
    t0 = time.perf_counter()
    loaded = load_model("zoo:smollm2-135m")
    tok = loaded.tokenizer()
    load_s = time.perf_counter() - t0
    net = loaded.model
    n_blocks = int(net.config.num_hidden_layers)
    answers = answer_and_extract(net, tok, records, loaded.sha256(), 8, args.batch_size, args.cache, progress)
    progress.log(f"answers: {answers.seconds:.0f} s ({answers.seconds / len(records):.2f} s/item, "
                 f"cached={answers.cached})")
    opts = TrainOptions(probe="mlp", layer="auto", position="first", holdout_family=args.holdout_family,
                        folds=args.folds, seed=args.seed, grid=True, grid_stride=args.grid_stride)
    t1 = time.perf_counter()
    probe, rep, plot_data = run_train(answers, opts, n_blocks, progress)
    train_s = time.perf_counter() - t1
    record = probe_record("zoo:smollm2-135m", loaded.sha256(), n_blocks, int(net.config.hidden_size), opts, tok,
                          records, f"jsonl:{data_path}", rep, probe.info["layer"])
    write_checkpoint(args.probe_out, probe.tensors(), record, force=True)
    report_dir = Path(args.out).parent / "probe_hallucination"
    report_dir.mkdir(parents=True, exist_ok=True)
    figures = write_plots(report_dir, plot_data, "MLP probe")
    total_s = time.perf_counter() - t_start
    rep["timings"] = {"load_s": load_s, "answer_s": answer_s_of(answers), "train_s": train_s, "total_s": total_s}
    (Path(args.probe_out).parent / "report.json").write_text(json.dumps(rep, indent=1, default=float))
    rep["timings"]["answers_cached"] = answers.cached
    write_markdown(args, rep, records, load_s, answers.seconds, train_s, total_s, figures, report_dir)
    progress.log(f"done in {total_s / 60:.1f} min -> {args.out}")


def answer_s_of(answers: object) -> float:
    return float(getattr(answers, "seconds", 0.0))


def write_markdown(args: argparse.Namespace, rep: dict, records: list[dict], load_s: float, answer_s: float,
                   train_s: float, total_s: float, figures: list[str], report_dir: Path) -> None:
    sc = rep["scorers"]
    names = ["probe", "linear", "saplma", "layer0_control", "metadata", "task_base_rate", "neg_mean_logprob",
             "neg_first_logprob", "first_entropy", "neg_min_prob"]
    label = {"probe": "MLP probe (neural probe), `first`", "linear": "linear probe, same layer",
             "saplma": "SAPLMA MLP, same layer", "layer0_control": "MLP probe on layer 0 (control)",
             "metadata": "question metadata (LR)", "task_base_rate": "task base rate",
             "neg_mean_logprob": "-mean log-prob (perplexity)", "neg_first_logprob": "-first-token log-prob",
             "first_entropy": "first-token entropy", "neg_min_prob": "-min token prob"}
    ho = args.holdout_family
    lines = [
        "# probe-hallucination benchmark: SmolLM2-135M-Instruct",
        "",
        f"Command: `python benchmarks/probe_hallucination.py --items {args.items} --threads {args.threads} "
        f"--folds {args.folds} --holdout-family {ho} --grid-stride {args.grid_stride}`  ",
        f"Date: {dt.date.today().isoformat()}; torch threads: {args.threads}; machine: {platform.machine()} "
        f"shared 2-core CPU with other jobs running (load average often > 10), no GPU.  ",
        f"Cost: model load {load_s:.0f} s; answering + hidden states {answer_s:.0f} s "
        f"({answer_s / len(records):.2f} s/item, batch {args.batch_size}, shared system-prompt KV cache"
        + ("; read from the cache filled by an identical earlier run, whose cost this is" if
           rep["timings"].get("answers_cached") else "") + "); "
        f"cross-validation, layer search, grid and final fit {train_s:.0f} s; "
        f"total of this run {total_s / 60:.1f} min.",
        "",
        f"**Scaled down** (`--items {args.items}`): {len(records)} items instead of the spec's ~860 so the run fits "
        "the ~30 min budget on this loaded machine: " + ", ".join(
            f"{t} {v['n']}" for t, v in rep["data"]["tasks"].items()) + ". Layer grid every "
        f"{args.grid_stride} layers (reported only; the layer is chosen by the GP search inside training folds).",
        "",
        "## Model accuracy (exact match)",
        "",
        "| task | n | accuracy | no-answer rate |",
        "| --- | ---: | ---: | ---: |",
    ]
    for t, v in rep["data"]["tasks"].items():
        lines.append(f"| {t} | {v['n']} | {v['accuracy']:.2f} | {v['no_answer_rate']:.2f} |")
    lines += ["", "Per stratum: " + ", ".join(f"{k} {v['accuracy']:.2f} (n {v['n']})"
                                             for k, v in rep["data"]["strata"].items()) + ".", ""]
    lines += [
        f"## AUROC for wrong answers ({rep['n_labelled']} labelled, {rep['n_wrong']} wrong; no-answers excluded)",
        "",
        f"Out-of-fold scores of {rep['folds']}-fold CV grouped by item group, stratified by task x stratum x label. "
        f"Held-out family `{ho}`: layer and weights fitted on the other families only.",
        "",
        f"| scorer | pooled AUROC | 95% CI | recall @10% FPR | within-strata mean | held-out {ho} AUROC "
        "| held-out CI |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for n in names:
        if n not in sc:
            continue
        s = sc[n]
        h = (s.get("heldout") or {}).get(ho, {})
        lines.append(f"| {label[n]} | {fmt(s.get('auroc'))} | {ci(s.get('ci95'))} | {fmt(s.get('recall_at_10fpr'))} "
                     f"| {fmt(s.get('within_strata_mean'))} | {fmt(h.get('auroc'))} | {ci(h.get('ci95'))} |")
    strata = sorted({k for n in names if n in sc for k in (sc[n].get("within_strata") or {})})
    lines += ["", "## Within strata (AUROC; `-` = fewer than 10 of a label)", "",
              "| stratum | n | " + " | ".join(label[n] for n in ("probe", "linear", "metadata", "neg_mean_logprob"))
              + " |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for st in strata:
        cell = sc["probe"]["within_strata"][st]
        vals = [fmt(sc[n]["within_strata"].get(st, {}).get("auroc")) for n in ("probe", "linear", "metadata",
                                                                              "neg_mean_logprob")]
        lines.append(f"| {st} | {cell['n']} | " + " | ".join(vals) + " |")
    cmp = rep["comparisons"]
    lines += ["", "## Paired bootstrap: probe minus baseline (AUROC difference, 95% CI)", "",
              "| where | vs -mean log-prob | vs metadata |", "| --- | --- | --- |"]
    for where in ("pooled", "within_strata_mean", "heldout"):
        if where not in cmp or not cmp[where]:
            continue
        row = []
        for b in ("neg_mean_logprob", "metadata"):
            d = cmp[where].get(f"probe - {b}", {})
            row.append(f"{fmt(d.get('diff'))} {ci(d.get('ci95'))}")
        lines.append(f"| {where} | " + " | ".join(row) + " |")
    ls = rep["layer_search"]
    lines += [
        "", "## Layer search", "",
        f"Per outer fold the GP search (Matern 2.5 + noise, expected improvement, start at 7/15/28) chose layers "
        f"{ls['fold_layers']}; on all items it chose **{ls['chosen']}** after evaluating "
        f"{[e['layer'] for e in (ls['final_search'] or {}).get('evaluated', [])]}. The grid's best layer "
        f"(chosen on test folds, optimistic) was {ls['grid_best']['layer'] if ls['grid_best'] else '-'} "
        f"with AUROC {fmt((ls['grid_best'] or {}).get('auroc'))}.",
        "",
        "## Targets",
        "",
    ]
    v = rep["verdict"]
    wsm = cmp.get("within_strata_mean", {})
    p_ws = sc["probe"].get("within_strata_mean") or 0.0
    rivals = [sc[n].get("within_strata_mean") or 0.0 for n in ("neg_mean_logprob", "linear") if n in sc]
    within_met = p_ws > 0.72 and all(p_ws > r for r in rivals)
    lines += [
        f"- Probe beats -mean log-prob AND metadata (paired CI excludes 0) on the within-stratum mean or on the "
        f"held-out family: **{'met' if v['passes'] else 'missed'}**. {v['reason']}.",
        f"- Within strata the probe must beat the 0.70-0.72 that perplexity and the linear probe shared in the "
        f"spec's first measurement, and both of them in this run: probe within-strata mean {fmt(p_ws)} "
        f"(-mean log-prob {fmt(sc['neg_mean_logprob'].get('within_strata_mean'))}, linear "
        f"{fmt(sc.get('linear', {}).get('within_strata_mean'))}): **{'met' if within_met else 'missed'}**.",
        f"- Probe vs -mean log-prob within strata: {fmt(wsm.get('probe - neg_mean_logprob', {}).get('diff'))} "
        f"{ci(wsm.get('probe - neg_mean_logprob', {}).get('ci95'))}; vs metadata "
        f"{fmt(wsm.get('probe - metadata', {}).get('diff'))} {ci(wsm.get('probe - metadata', {}).get('ci95'))}.",
        "",
        "## Limits (read before quoting any number)",
        "",
        "- Pooled AUROC mostly recognises task and difficulty (compare the task base rate and metadata rows); "
        "it is not hallucination detection. Quote within-stratum and held-out figures.",
        "- The MLP-over-linear gap is not a claim (the spec measured gaps within +-0.03).",
        "- The neural-probe paper's gains (+5.6 % accuracy, +8.2 % recall on LongFact) are not reproduced here; "
        "its code is not public and this is a 135M model on short factual answers.",
        "- Tasks with fewer than 30 wrong answers support no claim: " + ("; ".join(
            w for w in rep["warnings"] if "wrong answers" in w) or "none") + ".",
        "- `span` position and semantic entropy are not implemented.",
        "",
        "## Figures",
        "",
    ]
    for f in figures:
        lines.append(f"![{f}](probe_hallucination/{f})")
    lines.append("")
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
