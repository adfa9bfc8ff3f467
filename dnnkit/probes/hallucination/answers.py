"""Answers and features of a QA set: prompt, generate (or teacher-force a given answer), grade, read states.

Results are cached (float16 hidden states per position in an .npz, the rest in JSON) under a key of
model sha256, chat-template sha256, decoding settings, positions and dataset sha256; a stale cache
is recomputed, never reused.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnnkit.probes.hallucination.baselines import uncertainty_scores
from dnnkit.probes.hallucination.dataset import ANSWER_TYPE, dataset_sha256
from dnnkit.probes.hallucination.generate import (
    POSITIONS,
    Extracted,
    build_prompt,
    greedy_decode,
    teacher_forced,
    template_sha256,
)
from dnnkit.probes.hallucination.grade import CORRECT, NO_ANSWER, WRONG, grade
from dnnkit.progress import ProgressReporter, or_null

CACHE_VERSION = 2


@dataclass
class AnswerSet:
    """Everything later steps need per item."""

    records: list[dict[str, Any]]
    answers: list[str]
    clauses: list[str]
    grades: list[str | None]  # None when the record has no gold
    hidden: dict[str, np.ndarray]  # position -> float16 [n, L + 1, width]
    uncertainty: dict[str, np.ndarray]
    mean_logprob: np.ndarray
    seconds: float  # answering + hidden states (on a cache hit: the cost of the run that filled the cache)
    cached: bool = False


def _aliases(rec: dict[str, Any]) -> list[str]:
    return [str(g) for g in rec.get("gold", [])]


def cache_key(model_sha: str | None, tpl_sha: str, max_new_tokens: int, records: list[dict[str, Any]]) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "model": model_sha, "template": tpl_sha, "decoding": {
        "greedy": True, "max_new_tokens": max_new_tokens}, "positions": list(POSITIONS),
        "data": dataset_sha256(records)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _load_cache(folder: Path, key: str) -> dict[str, Any] | None:
    meta, arrays = folder / f"{key}.json", folder / f"{key}.npz"
    if not (meta.is_file() and arrays.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("key") != key:
            return None
        with np.load(arrays, allow_pickle=False) as z:
            info["hidden"] = {p: z[p] for p in POSITIONS}
        return info
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # damaged cache: recompute


def _save_cache(folder: Path, key: str, info: dict[str, Any], hidden: dict[str, np.ndarray]) -> None:
    from dnnkit.models.atomic import atomic_file

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / f"{key}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **hidden)
    with atomic_file(folder / f"{key}.json") as tmp:
        tmp.write_text(json.dumps({**info, "key": key}))


def answer_and_extract(model: Any, tokenizer: Any, records: list[dict[str, Any]], model_sha: str | None,
                       max_new_tokens: int = 8, batch_size: int = 16, cache: str | None = None,
                       progress: ProgressReporter | None = None) -> AnswerSet:
    """Generate (or teacher-force `answer`), grade against `gold`, and read hidden states for every record."""
    progress = or_null(progress)
    key = cache_key(model_sha, template_sha256(tokenizer), max_new_tokens, records)
    info = _load_cache(Path(cache), key) if cache else None
    cached = info is not None
    t0 = time.perf_counter()
    if info is None:
        prompts = [build_prompt(tokenizer, r["question"], r.get("answer_stem")) for r in records]
        ex = _extract(model, tokenizer, records, prompts, max_new_tokens, batch_size, progress)
        info = {"answers": ex.answer_text, "clauses": ex.clause, "token_logprobs": ex.token_logprobs,
                "clause_tokens": ex.clause_tokens, "first_entropy": ex.first_entropy,
                "seconds": time.perf_counter() - t0}
        if cache:
            _save_cache(Path(cache), key, info, ex.hidden)
        info["hidden"] = ex.hidden
    seconds = float(info.get("seconds", time.perf_counter() - t0))  # a cache hit reports the original cost
    unc = uncertainty_scores(info["token_logprobs"], info["clause_tokens"], info["first_entropy"])
    grades: list[str | None] = []
    for r, clause in zip(records, info["clauses"], strict=True):
        if "gold" not in r:
            grades.append(None)
            continue
        meta = r.get("meta") or {}
        entity = list(meta.get("entity_aliases") or ([meta["entity"]] if meta.get("entity") else []))
        grades.append(grade(clause, r["gold"], ANSWER_TYPE.get(r.get("task", ""), "name"), entity))
    return AnswerSet(records, info["answers"], info["clauses"], grades, info["hidden"], unc,
                     -unc["neg_mean_logprob"], seconds, cached)


def _extract(model: Any, tokenizer: Any, records: list[dict[str, Any]], prompts: list[list[int]],
             max_new_tokens: int, batch_size: int, progress: ProgressReporter) -> Extracted:
    """Greedy decoding (states read while decoding) for records without `answer`; one teacher-forced
    pass over prompt + " answer" for records with one. Results in record order."""
    gen_idx = [i for i, r in enumerate(records) if "answer" not in r]
    tf_idx = [i for i, r in enumerate(records) if "answer" in r]
    parts: list[tuple[list[int], Extracted]] = []
    if gen_idx:
        _, ex = greedy_decode(model, tokenizer, [prompts[i] for i in gen_idx], max_new_tokens, batch_size,
                              [_aliases(records[i]) for i in gen_idx], progress)
        assert ex is not None
        parts.append((gen_idx, ex))
    if tf_idx:
        conts = [list(tokenizer(" " + records[i]["answer"].strip(), add_special_tokens=False)["input_ids"])
                 for i in tf_idx]
        parts.append((tf_idx, teacher_forced(model, tokenizer, [prompts[i] for i in tf_idx], conts,
                                             [_aliases(records[i]) for i in tf_idx], batch_size, POSITIONS,
                                             progress)))
    n = len(records)
    first = parts[0][1]
    hidden = {p: np.zeros((n, *first.hidden[p].shape[1:]), dtype=np.float16) for p in POSITIONS}
    merged = Extracted(hidden, [""] * n, [""] * n, [[] for _ in range(n)], [0] * n, [0.0] * n, [0] * n)
    for idx, ex in parts:
        for j, i in enumerate(idx):
            for p in POSITIONS:
                merged.hidden[p][i] = ex.hidden[p][j]
            merged.answer_text[i], merged.clause[i] = ex.answer_text[j], ex.clause[j]
            merged.token_logprobs[i], merged.clause_tokens[i] = ex.token_logprobs[j], ex.clause_tokens[j]
            merged.first_entropy[i], merged.n_generated[i] = ex.first_entropy[j], ex.n_generated[j]
    return merged


def labels_of(grades: list[str | None], no_answer: str = "exclude") -> tuple[np.ndarray, np.ndarray]:
    """(y, keep): y = 1 wrong / 0 correct; no-answer items dropped or counted as wrong."""
    y = np.zeros(len(grades), dtype=np.int64)
    keep = np.zeros(len(grades), dtype=bool)
    for i, g in enumerate(grades):
        if g == CORRECT:
            keep[i] = True
        elif g == WRONG or (g == NO_ANSWER and no_answer == "as-wrong"):
            keep[i], y[i] = True, 1
    return y, keep
