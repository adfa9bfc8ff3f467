"""Baselines beside the probes: output uncertainty (no training), task base rate, question metadata.

Uncertainty scorers (higher = more suspect): -mean answer-clause log-prob (log-perplexity),
-first-token log-prob, first-token entropy, -min token probability. The metadata baseline is a
logistic regression on what is known before generation: task, op, operand digits, carries or
borrows, result digits, entity-name length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnnkit.probes.hallucination.dataset import TASKS

UNCERTAINTY = ("neg_mean_logprob", "neg_first_logprob", "first_entropy", "neg_min_prob")
OPS = ("add", "sub", "mul")


def uncertainty_scores(token_logprobs: list[list[float]], clause_tokens: list[int],
                       first_entropy: list[float]) -> dict[str, np.ndarray]:
    """The four output-uncertainty scores per item (clause tokens; all tokens when the clause is empty)."""
    out = {k: np.zeros(len(token_logprobs)) for k in UNCERTAINTY}
    for i, lps in enumerate(token_logprobs):
        span = lps[:clause_tokens[i]] or lps
        if not span:
            continue
        out["neg_mean_logprob"][i] = -float(np.mean(span))
        out["neg_first_logprob"][i] = -float(lps[0])
        out["neg_min_prob"][i] = -float(np.exp(np.min(span)))
        out["first_entropy"][i] = float(first_entropy[i])
    return out


def metadata_features(records: list[dict[str, Any]]) -> np.ndarray:
    """Question-only features: task and op one-hots, digits, carries, result digits, entity length."""
    rows = []
    for r in records:
        meta = r.get("meta") or {}
        task = r.get("task")
        row = [1.0 if task == t else 0.0 for t in TASKS]
        row += [1.0 if meta.get("op") == o else 0.0 for o in OPS]
        row += [float(meta.get(k, 0) or 0) for k in ("digits", "carries", "result_digits")]
        entity_len = meta.get("entity_len")
        if entity_len is None:
            entity_len = len(str(meta.get("entity", "")))
        row.append(float(entity_len))
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)


def fit_metadata(x: np.ndarray, y: np.ndarray) -> Any:
    """A standardised logistic regression on metadata features (returns an object with .predict)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(x, y)
    return model


def predict_metadata(model: Any, x: np.ndarray) -> np.ndarray:
    return model.predict_proba(x)[:, 1]


def base_rate(train_tasks: np.ndarray, y: np.ndarray, test_tasks: np.ndarray) -> np.ndarray:
    """Each test item scored by its task's wrong-answer rate in the training data (overall rate if unseen)."""
    overall = float(np.mean(y)) if len(y) else 0.5
    rates = {t: float(np.mean(y[train_tasks == t])) for t in set(train_tasks.tolist())}
    return np.array([rates.get(t, overall) for t in test_tasks.tolist()])
