"""AUROC with bootstrap CIs, recall at a false-positive rate, paired comparisons, grouped folds.

Scores mean P(wrong) (higher = more suspect). A set with fewer than `MIN_PER_CLASS` items of either
label gets no AUROC (None plus a reason), never NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnnkit.probes.hallucination.probes import auroc_or_nan

MIN_PER_CLASS = 10


def too_small(y: np.ndarray, minimum: int = MIN_PER_CLASS) -> str | None:
    """Why a set cannot give an AUROC, or None when it can."""
    n1 = int(np.sum(y == 1))
    n0 = int(np.sum(y == 0))
    if n1 < minimum or n0 < minimum:
        return f"{n1} wrong and {n0} correct answers (< {minimum} of one label)"
    return None


def threshold_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float = 0.10) -> float:
    """The smallest score threshold whose false-positive rate (s >= t among correct answers) is <= fpr."""
    neg = np.sort(np.asarray(s)[np.asarray(y) == 0])[::-1]
    if len(neg) == 0:
        return float(np.max(s))
    k = int(np.floor(fpr * len(neg)))  # at most k negatives may lie at or above the threshold
    if k >= len(neg):
        return float(neg[-1])
    return float(np.nextafter(neg[k], np.inf))


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float = 0.10) -> float:
    t = threshold_at_fpr(y, s, fpr)
    pos = np.asarray(s)[np.asarray(y) == 1]
    return float(np.mean(pos >= t)) if len(pos) else float("nan")


def bootstrap_ci(y: np.ndarray, s: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float] | None:
    """95 % percentile bootstrap CI of AUROC (resamples missing a class are skipped)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = auroc_or_nan(y[idx], s[idx])
        if np.isfinite(v):
            vals.append(v)
    if len(vals) < n_boot // 2:
        return None
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def scorer_summary(y: np.ndarray, s: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    reason = too_small(y)
    if reason:
        return {"auroc": None, "reason": reason, "n": int(len(y))}
    return {"auroc": auroc_or_nan(y, s), "ci95": bootstrap_ci(y, s, n_boot, seed),
            "recall_at_10fpr": recall_at_fpr(y, s), "n": int(len(y))}


def within_strata(y: np.ndarray, s: np.ndarray, strata: np.ndarray) -> dict[str, Any]:
    """AUROC inside each stratum (None plus a reason when too small) and their size-weighted mean."""
    out: dict[str, Any] = {}
    total, weighted = 0, 0.0
    for st in sorted(set(strata.tolist())):
        m = strata == st
        reason = too_small(y[m])
        if reason:
            out[st] = {"auroc": None, "reason": reason, "n": int(m.sum())}
            continue
        a = auroc_or_nan(y[m], s[m])
        out[st] = {"auroc": a, "n": int(m.sum())}
        total += int(m.sum())
        weighted += a * int(m.sum())
    return {"strata": out, "mean": weighted / total if total else None, "n_strata": sum(
        1 for v in out.values() if v["auroc"] is not None)}


def _stratum_mean_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, strata: np.ndarray, valid: list[str],
                       idx_by: dict[str, np.ndarray]) -> float:
    total, acc = 0, 0.0
    for st in valid:
        idx = idx_by[st]
        da = auroc_or_nan(y[idx], a[idx]) - auroc_or_nan(y[idx], b[idx])
        if np.isfinite(da):
            acc += da * len(idx)
            total += len(idx)
    return acc / total if total else float("nan")


def paired_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, strata: np.ndarray | None = None,
                n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUROC(a) - AUROC(b) with a paired 95 % bootstrap CI; with `strata`, of the within-stratum mean
    (resampling inside each stratum)."""
    rng = np.random.default_rng(seed)
    if strata is None:
        if too_small(y):
            return {"diff": None, "ci95": None, "reason": too_small(y)}
        diff = auroc_or_nan(y, a) - auroc_or_nan(y, b)
        vals = []
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            d = auroc_or_nan(y[idx], a[idx]) - auroc_or_nan(y[idx], b[idx])
            if np.isfinite(d):
                vals.append(d)
    else:
        valid = [st for st in sorted(set(strata.tolist())) if not too_small(y[strata == st])]
        if not valid:
            return {"diff": None, "ci95": None, "reason": "no stratum has >= 10 of each label"}
        where = {st: np.flatnonzero(strata == st) for st in valid}
        diff = _stratum_mean_diff(y, a, b, strata, valid, where)
        vals = []
        for _ in range(n_boot):
            boot = {st: rng.choice(ix, len(ix)) for st, ix in where.items()}
            d = _stratum_mean_diff(y, a, b, strata, valid, boot)
            if np.isfinite(d):
                vals.append(d)
    ci = [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))] if vals else None
    return {"diff": float(diff), "ci95": ci, "excludes_zero": bool(ci is not None and ci[0] > 0)}


def grouped_folds(n_splits: int, labels: np.ndarray, cells: np.ndarray, groups: np.ndarray,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds grouped by `groups` (no group in two folds), stratified by cell x label."""
    from sklearn.model_selection import StratifiedGroupKFold

    strat = np.array([f"{c}|{int(v)}" for c, v in zip(cells, labels, strict=True)])
    _, codes = np.unique(strat, return_inverse=True)
    n_groups = len(set(groups.tolist()))
    k = max(2, min(n_splits, n_groups))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(labels)), codes, groups)]
