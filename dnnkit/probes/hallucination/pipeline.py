"""`train`: outer grouped CV of the probe beside its baselines, held-out family, final refit; `score`.

Every trained scorer gets out-of-fold scores from the same outer folds (grouped by `group`,
stratified by task x stratum x label); the layer is chosen inside each training fold only.
Features are read through `HiddenStates`, a row view that hands one layer at a time to the probes
(for `span` a `SpanBatch` of the answer-clause tokens), so no fold copies every layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnnkit.errors import InputError, RuntimeFailure
from dnnkit.probes.hallucination.answers import AnswerSet, labels_of
from dnnkit.probes.hallucination.baselines import (
    UNCERTAINTY,
    base_rate,
    fit_metadata,
    metadata_features,
    predict_metadata,
)
from dnnkit.probes.hallucination.config import TrainConfig
from dnnkit.probes.hallucination.layersearch import LayerSearch, search_layers
from dnnkit.probes.hallucination.metrics import (
    grouped_folds,
    paired_diff,
    scorer_summary,
    threshold_at_fpr,
    too_small,
    within_strata,
)
from dnnkit.probes.hallucination.probes import PROBE_KINDS, Features, Probe, SpanBatch, auroc_or_nan, fit_probe
from dnnkit.progress import ProgressReporter, or_null


def check_records(opts: TrainConfig, records: list[dict[str, Any]] | None = None,
                  n_blocks: int | None = None) -> None:
    """Checks that need the data (the held-out family) or the model's block count (the layer): exit 2."""
    if n_blocks is not None:
        resolve_layer(opts.layer, n_blocks)
    if records is not None and opts.holdout_family != "none":
        fams = {r.get("family") for r in records}
        if opts.holdout_family not in fams:
            raise InputError(f"--holdout-family {opts.holdout_family}: no item of that family in the data",
                             hint=f"families present: {', '.join(sorted(str(f) for f in fams))}; or pass none")
        if len(fams - {opts.holdout_family}) == 0:
            raise InputError(f"--holdout-family {opts.holdout_family}: the data holds no other family to train on")


def check_options(opts: TrainConfig, records: list[dict[str, Any]] | None = None,
                  n_blocks: int | None = None) -> None:
    """`opts.check()` then `check_records` (bad options and data that cannot train: exit 2)."""
    opts.check()
    check_records(opts, records, n_blocks)


def resolve_layer(layer: str, n_blocks: int) -> int | None:
    """`auto` -> None; `N` -> N; a fraction f in (0, 1) -> floor(f * n_blocks). Must lie in 0..n_blocks."""
    if layer == "auto":
        return None
    try:
        value = float(layer)
    except ValueError as exc:
        raise InputError(f"--layer must be auto, an integer or a fraction, got {layer!r}") from exc
    idx = int(math.floor(value * n_blocks)) if 0 < value < 1 else int(value)
    if value != int(value) and not 0 < value < 1:
        raise InputError(f"--layer {layer}: a fraction must lie strictly between 0 and 1")
    if not 0 <= idx <= n_blocks:
        raise InputError(f"--layer {layer} is outside 0..{n_blocks} (hidden-state indices of this model)")
    return idx


@dataclass
class HiddenStates:
    """A row view of cached hidden states: [n, L + 1, width] for a single position, or [n, L + 1, T, width]
    with per-item lengths for `span`."""

    hidden: np.ndarray
    lengths: np.ndarray | None = None
    index: np.ndarray | None = None  # rows of `hidden` this view holds (None: all)

    @classmethod
    def of(cls, hidden: dict[str, np.ndarray], position: str, rows: np.ndarray | None = None) -> HiddenStates:
        """The view of `position` in an answer set's hidden-state dict."""
        if position == "span":
            return cls(hidden["span"], np.asarray(hidden["span_len"]), rows)
        return cls(hidden[position], None, rows)

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else int(self.hidden.shape[0])

    def __getitem__(self, rows: np.ndarray) -> HiddenStates:
        rows = np.asarray(rows)
        return HiddenStates(self.hidden, self.lengths, self.index[rows] if self.index is not None else rows)

    def at(self, rows: np.ndarray | None, layer: int) -> Features:
        """One layer's features of `rows` (of this view; None: all) as float32."""
        own = self.index if self.index is not None else np.arange(int(self.hidden.shape[0]))
        sel = own if rows is None else own[np.asarray(rows)]
        if self.lengths is None:
            return self.hidden[sel, layer].astype(np.float32)
        lengths = self.lengths[sel]
        t = max(int(lengths.max()), 1) if len(sel) else 1
        return SpanBatch(self.hidden[sel, layer, :t].astype(np.float32), lengths)


@dataclass
class CVResult:
    oof: dict[str, np.ndarray]
    layers: list[int]
    searches: list[LayerSearch] = field(default_factory=list)


def _inner_score(kind: str, x: HiddenStates, y: np.ndarray, groups: np.ndarray, cells: np.ndarray, k: int,
                 seed: int) -> Callable[[int], float]:
    folds = grouped_folds(k, y, cells, groups, seed + 1)

    def score(layer: int) -> float:
        oof = np.full(len(y), np.nan)
        for tr, te in folds:
            oof[te] = fit_probe(kind, x.at(tr, layer), y[tr], groups[tr], seed).predict(x.at(te, layer))
        return auroc_or_nan(y, oof)

    return score


def choose_layer(opts: TrainConfig, x: HiddenStates, y: np.ndarray, groups: np.ndarray, cells: np.ndarray,
                 n_blocks: int) -> tuple[int, LayerSearch | None]:
    fixed = resolve_layer(opts.layer, n_blocks)
    if fixed is not None:
        return fixed, None
    search = search_layers(_inner_score(opts.probe, x, y, groups, cells, opts.inner_folds, opts.seed), n_blocks,
                           seed=opts.seed)
    return search.chosen, search


def _fit_scorers(opts: TrainConfig, x: HiddenStates, y: np.ndarray, groups: np.ndarray, cells: np.ndarray,
                 tasks: np.ndarray, meta: np.ndarray, tr: np.ndarray, te: np.ndarray, n_blocks: int
                 ) -> tuple[dict[str, np.ndarray], int, LayerSearch | None]:
    """Train every trained scorer on `tr`, score `te`."""
    layer, search = choose_layer(opts, x[tr], y[tr], groups[tr], cells[tr], n_blocks)
    out: dict[str, np.ndarray] = {}
    x_tr, x_te = x.at(tr, layer), x.at(te, layer)
    out["probe"] = fit_probe(opts.probe, x_tr, y[tr], groups[tr], opts.seed).predict(x_te)
    if opts.probe != "linear":
        out["linear"] = fit_probe("linear", x_tr, y[tr], groups[tr], opts.seed).predict(x_te)
    out["layer0_control"] = fit_probe(opts.probe, x.at(tr, 0), y[tr], groups[tr], opts.seed).predict(x.at(te, 0))
    out["saplma"] = fit_probe("saplma", x_tr, y[tr], groups[tr], opts.seed).predict(x_te)
    out["metadata"] = predict_metadata(fit_metadata(meta[tr], y[tr]), meta[te])
    out["task_base_rate"] = base_rate(tasks[tr], y[tr], tasks[te])
    return out, layer, search


def run_train(answers: AnswerSet, opts: TrainConfig, n_blocks: int, progress: ProgressReporter | None = None
              ) -> tuple[Probe, dict[str, Any], dict[str, Any]]:
    """Cross-validated evaluation, held-out family and the final probe. Returns (probe, report, plot data)."""
    progress = or_null(progress)
    y_all, keep = labels_of(answers.grades, opts.no_answer)
    idx = np.flatnonzero(keep)
    recs = [answers.records[i] for i in idx]
    y = y_all[idx]
    if int((y == 1).sum()) < 10 or int((y == 0).sum()) < 10:
        raise RuntimeFailure(f"after grading: {int((y == 1).sum())} wrong and {int((y == 0).sum())} correct "
                             "answers; a probe needs >= 10 of each",
                             hint="add harder arithmetic (--arith-digits 1-4), more items, or other tasks")
    x = HiddenStates.of(answers.hidden, opts.position, idx)
    groups = np.array([str(r.get("group", r["id"])) for r in recs])
    tasks = np.array([str(r.get("task", "")) for r in recs])
    strata = np.array([str(r.get("stratum", "all")) for r in recs])
    families = np.array([str(r.get("family", "")) for r in recs])
    cells = np.array([f"{t}|{s}" for t, s in zip(tasks, strata, strict=True)])
    meta = metadata_features(recs)
    unc = {k: v[idx] for k, v in answers.uncertainty.items()}
    warnings: list[str] = []

    folds = grouped_folds(opts.folds, y, cells, groups, opts.seed)
    oof: dict[str, np.ndarray] = {}
    fold_layers: list[int] = []
    searches: list[LayerSearch] = []
    task = progress.task("cross-validate probes", len(folds))
    for tr, te in folds:
        scores, layer, search = _fit_scorers(opts, x, y, groups, cells, tasks, meta, tr, te, n_blocks)
        for k, v in scores.items():
            oof.setdefault(k, np.full(len(y), np.nan))[te] = v
        fold_layers.append(layer)
        if search is not None:
            searches.append(search)
        task.advance(1)
    oof.update(unc)

    scorers: dict[str, Any] = {}
    for name, s in oof.items():
        summ = scorer_summary(y, s, opts.n_boot, opts.seed)
        ws = within_strata(y, s, strata)
        summ["within_strata"] = ws["strata"]
        summ["within_strata_mean"] = ws["mean"]
        scorers[name] = summ
    scorers["task_base_rate"]["note"] = "pooled set only; constant within a task"

    comparisons = {
        "pooled": {f"probe - {b}": paired_diff(y, oof["probe"], oof[b], None, opts.n_boot, opts.seed)
                   for b in ("neg_mean_logprob", "metadata")},
        "within_strata_mean": {f"probe - {b}": paired_diff(y, oof["probe"], oof[b], strata, opts.n_boot, opts.seed)
                               for b in ("neg_mean_logprob", "metadata")},
    }

    heldout, heldout_scores = {}, {}
    if opts.holdout_family != "none":
        heldout, heldout_scores, ho_cmp = _heldout(opts, x, y, groups, cells, tasks, meta, unc, families, n_blocks)
        for name, res in heldout.items():
            scorers.setdefault(name, {})["heldout"] = {opts.holdout_family: res}
        comparisons["heldout"] = ho_cmp

    grid = _grid(opts, x, y, groups, folds, n_blocks) if opts.grid else None
    progress.log("fitting the final probe on all labelled items")
    final_layer, final_search = choose_layer(opts, x, y, groups, cells, n_blocks)
    probe = fit_probe(opts.probe, x.at(None, final_layer), y, groups, opts.seed)
    threshold = threshold_at_fpr(y, oof["probe"], 0.10)

    verdict = _verdict(comparisons)
    for name, summ in scorers.items():
        if summ.get("auroc") is None and "reason" in summ:
            warnings.append(f"{name}: no pooled AUROC ({summ['reason']})")
    for t in sorted(set(tasks.tolist())):
        n_wrong = int((y[tasks == t] == 1).sum())
        if n_wrong < 30:
            warnings.append(f"task {t}: only {n_wrong} wrong answers (< 30): no claim for this task")
    layer_search = {
        "evaluated_per_fold": [s.as_dict() for s in searches],
        "fold_layers": fold_layers,
        "chosen": final_layer,
        "final_search": final_search.as_dict() if final_search else None,
        "mode": "auto" if resolve_layer(opts.layer, n_blocks) is None else f"fixed {opts.layer}",
        "grid_best": grid["best"] if grid else None,
        "grid": grid["rows"] if grid else None,
    }
    report = {
        "n_labelled": int(len(y)), "n_wrong": int(y.sum()), "n_correct": int((y == 0).sum()),
        "data": data_summary(answers, opts.no_answer),
        "scorers": scorers,
        "layer_search": layer_search,
        "comparisons": comparisons,
        "verdict": verdict,
        "threshold": threshold,
        "grader_audit": grader_audit(answers, opts.seed),
        "warnings": warnings,
        "folds": len(folds),
    }
    plots = {"y": y, "oof": oof, "strata": strata, "grid": grid, "chosen": final_layer,
             "heldout": heldout_scores, "holdout_family": opts.holdout_family, "scorers": scorers}
    probe.info.update(layer=final_layer)
    return probe, report, plots


def _heldout(opts: TrainConfig, x: HiddenStates, y: np.ndarray, groups: np.ndarray, cells: np.ndarray,
             tasks: np.ndarray, meta: np.ndarray, unc: dict[str, np.ndarray], families: np.ndarray, n_blocks: int
             ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Fit layer, threshold and weights on the other families only; test on the held-out one."""
    te = np.flatnonzero(families == opts.holdout_family)
    tr = np.flatnonzero(families != opts.holdout_family)
    if too_small(y[tr]):
        reason = f"training families: {too_small(y[tr])}"
        return {"probe": {"auroc": None, "reason": reason}}, {}, {}
    scores, layer, _ = _fit_scorers(opts, x, y, groups, cells, tasks, meta, tr, te, n_blocks)
    scores.update({k: v[te] for k, v in unc.items()})
    yt = y[te]
    res: dict[str, Any] = {}
    for name, s in scores.items():
        res[name] = scorer_summary(yt, s, opts.n_boot, opts.seed)
    res["probe"]["layer"] = layer
    cmp = {f"probe - {b}": paired_diff(yt, scores["probe"], scores[b], None, opts.n_boot, opts.seed)
           for b in ("neg_mean_logprob", "metadata")}
    return res, {"y": yt, "scores": scores}, cmp


def _grid(opts: TrainConfig, x: HiddenStates, y: np.ndarray, groups: np.ndarray,
          folds: list[tuple[np.ndarray, np.ndarray]], n_blocks: int) -> dict[str, Any]:
    """Out-of-fold AUROC at every layer (linear and the chosen probe), reported beside the search only."""
    from dnnkit.probes.hallucination.metrics import bootstrap_ci

    kinds = ["linear"] if opts.probe == "linear" else ["linear", opts.probe]
    rows = []
    layers = sorted(set(range(0, n_blocks + 1, max(1, opts.grid_stride))) | {n_blocks})
    for layer in layers:
        row: dict[str, Any] = {"layer": layer}
        for kind in kinds:
            s = np.full(len(y), np.nan)
            for tr, te in folds:
                s[te] = fit_probe(kind, x.at(tr, layer), y[tr], groups[tr], opts.seed).predict(x.at(te, layer))
            row[kind] = auroc_or_nan(y, s)
            row[f"{kind}_ci95"] = bootstrap_ci(y, s, max(100, opts.n_boot // 5), opts.seed)
        rows.append(row)
    key = opts.probe
    best = max(rows, key=lambda r: r[key] if np.isfinite(r[key]) else -1)
    return {"rows": rows, "best": {"layer": best["layer"], "auroc": best[key], "probe": key,
                                   "note": "test folds pick this layer: optimistic, not used for the choice"}}


def _verdict(comparisons: dict[str, Any]) -> dict[str, Any]:
    """The probe passes only when its paired CI over -mean log-prob AND over metadata excludes 0, on the
    within-stratum mean or on the held-out family."""
    reasons = []
    passes = False
    for where in ("within_strata_mean", "heldout"):
        cmp = comparisons.get(where) or {}
        if not cmp:
            continue
        ok = all(bool(cmp.get(f"probe - {b}", {}).get("excludes_zero")) for b in ("neg_mean_logprob", "metadata"))
        desc = ", ".join(f"{k}: {v.get('diff') if v.get('diff') is None else round(v['diff'], 3)} "
                         f"CI {None if v.get('ci95') is None else [round(c, 3) for c in v['ci95']]}"
                         for k, v in cmp.items())
        reasons.append(f"{where}: {'passes' if ok else 'does not pass'} ({desc})")
        passes = passes or ok
    return {"passes": passes, "reason": "; ".join(reasons) or "no comparison available"}


def data_summary(answers: AnswerSet, no_answer: str) -> dict[str, Any]:
    """Per task: n, accuracy, no-answer rate, dropped; per stratum: accuracy."""
    per_task: dict[str, dict[str, Any]] = {}
    per_stratum: dict[str, list[int]] = {}
    for r, g in zip(answers.records, answers.grades, strict=True):
        if g is None:
            continue
        t = per_task.setdefault(str(r.get("task", "")), {"n": 0, "correct": 0, "no_answer": 0})
        t["n"] += 1
        t["correct"] += g == "correct"
        t["no_answer"] += g == "no-answer"
        s = per_stratum.setdefault(str(r.get("stratum", "all")), [0, 0])
        s[0] += 1
        s[1] += g == "correct"
    tasks = {k: {"n": v["n"], "accuracy": v["correct"] / v["n"], "no_answer_rate": v["no_answer"] / v["n"],
                 "dropped": v["no_answer"] if no_answer == "exclude" else 0} for k, v in per_task.items()}
    return {"tasks": tasks, "strata": {k: {"n": n, "accuracy": c / n} for k, (n, c) in sorted(per_stratum.items())}}


def grader_audit(answers: AnswerSet, seed: int, per_cell: int = 5) -> list[dict[str, Any]]:
    """Up to 5 random items per task and label, for a person to check the grader."""
    rng = np.random.default_rng(seed)
    cells: dict[tuple[str, str], list[int]] = {}
    for i, (r, g) in enumerate(zip(answers.records, answers.grades, strict=True)):
        if g is not None:
            cells.setdefault((str(r.get("task", "")), g), []).append(i)
    out = []
    for (task, label), items in sorted(cells.items()):
        pick = rng.choice(items, min(per_cell, len(items)), replace=False)
        for i in sorted(pick.tolist()):
            r = answers.records[i]
            out.append({"id": r.get("id"), "task": task, "label": label, "question": r["question"],
                        "answer": answers.answers[i], "clause": answers.clauses[i], "gold": r.get("gold")})
    return out


def score_records(answers: AnswerSet, probe: Probe, layer: int, position: str, threshold: float
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-item risk scores, and AUROC / recall at 10 % FPR when the records carry gold answers."""
    from dnnkit.probes.hallucination.metrics import recall_at_fpr

    p = probe.predict(HiddenStates.of(answers.hidden, position).at(None, layer))
    y_all, keep = labels_of(answers.grades, "exclude")
    rows = []
    for i, r in enumerate(answers.records):
        row = {"id": r.get("id"), "question": r["question"], "answer": answers.answers[i],
               "p_wrong": float(p[i]), "flagged": bool(p[i] >= threshold),
               "mean_logprob": float(answers.mean_logprob[i])}
        if answers.grades[i] is not None:
            row["label"] = answers.grades[i]
        rows.append(row)
    summary: dict[str, Any] = {"n": len(rows), "flagged": int(sum(r["flagged"] for r in rows)),
                               "threshold": threshold}
    if any(g is not None for g in answers.grades):
        y, s = y_all[keep], p[keep]
        reason = too_small(y)
        summary["labelled"] = int(keep.sum())
        if reason:
            summary.update(auroc=None, recall_at_10fpr=None, reason=reason)
        else:
            summary.update(auroc=auroc_or_nan(y, s), recall_at_10fpr=recall_at_fpr(y, s),
                           auroc_neg_mean_logprob=auroc_or_nan(y, answers.uncertainty["neg_mean_logprob"][keep]))
    return rows, summary


__all__ = ["PROBE_KINDS", "UNCERTAINTY", "TrainConfig", "check_options", "check_records",
           "resolve_layer", "run_train", "score_records"]


def probe_record(model_ref: str, model_sha: str | None, n_blocks: int, width: int, opts: TrainConfig,
                 tokenizer: Any, records: list[dict[str, Any]], data_name: str, report: dict[str, Any],
                 layer: int) -> dict[str, Any]:
    """The dnnkit record stored in the probe file (DESIGN section 3 fields plus what `score` needs)."""
    from dnnkit.probes.hallucination.generate import template_sha256
    from dnnkit.probes.hallucination.probes import MLP_WIDTHS

    return {
        "arch": {"family": "hallucination-probe", "type": opts.probe, "input_dim": width,
                 "widths": list(MLP_WIDTHS) if opts.probe == "mlp" else []},
        "source": {"reference": model_ref, "sha256": model_sha, "n_layers": n_blocks, "width": width},
        "layer": layer,
        "hidden_states": "index 0 = embeddings, index i = output of block i (index L after the final norm)",
        "position": opts.position,
        **({"span": {"tokens": "every answer-clause token (an empty clause: the first generated token)",
                     "score": "max token logit" if opts.probe == "mlp" else "probe on the mean of the span's tokens",
                     "loss": "(1 - w) mean token BCE + w BCE(max span logit, y), w 0 -> 1 over the first half"
                             if opts.probe == "mlp" else "L2 logistic regression"}}
           if opts.position == "span" else {}),
        "prompt": {"chat_template_sha256": template_sha256(tokenizer),
                   "chat_template": bool(getattr(tokenizer, "chat_template", None)),
                   "answer_stems": any("answer_stem" in r for r in records)},
        "decoding": {"greedy": True, "max_new_tokens": opts.max_new_tokens},
        "label": "1 = wrong", "no_answer": opts.no_answer,
        "tasks": sorted({str(r.get("task")) for r in records}), "data": data_name,
        "threshold": report["threshold"],
        "metrics": {k: {"auroc": v.get("auroc"), "within_strata_mean": v.get("within_strata_mean")}
                    for k, v in report["scorers"].items()} | {"verdict": report["verdict"]},
    }


def model_facts(ref: str) -> dict[str, Any]:
    """sha256 (as `LoadedModel.sha256()` computes it), block count and width of a causal-LM reference,
    read from its files without building the network (for checks before loading)."""
    import json
    from pathlib import Path

    from dnnkit.models.gguf import file_sha256
    from dnnkit.models.registry import files_sha256, hf_weight_files, resolve

    resolved = resolve(ref)
    facts: dict[str, Any] = {"sha256": None, "n_blocks": None, "width": None, "kind": resolved.kind, "task": None}
    config: dict[str, Any] = {}
    if resolved.kind == "hf-dir":
        folder = Path(resolved.target)
        files = hf_weight_files(folder)
        cfg_file = folder / "config.json"
        if cfg_file.is_file():
            try:
                config = json.loads(cfg_file.read_text())
            except json.JSONDecodeError:
                config = {}
            facts["sha256"] = files_sha256(files + [cfg_file])
    elif resolved.kind == "safetensors":
        from dnnkit.models.safetensors_io import read_header

        record = read_header(resolved.target).dnnkit_record() or {}
        config = ((record.get("arch") or {}).get("config")) or {}
        facts["sha256"] = files_sha256([Path(resolved.target)])
    elif resolved.kind == "gguf":
        facts["sha256"] = file_sha256(Path(resolved.target))
    if config.get("architectures"):
        from dnnkit.models.arch import hf_arch_from_config, info_from_arch

        facts["task"] = info_from_arch(hf_arch_from_config(config)).task
    text_cfg = config.get("text_config", config) if isinstance(config, dict) else {}
    facts["n_blocks"] = text_cfg.get("num_hidden_layers") or text_cfg.get("n_layer")
    facts["width"] = text_cfg.get("hidden_size") or text_cfg.get("n_embd")
    return facts
