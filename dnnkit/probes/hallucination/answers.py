"""Answers and features of a QA set: prompt, generate (or teacher-force a given answer), grade, read states.

Results are cached (float16 hidden states per position in an .npz, the rest in JSON) under a key of
model sha256, chat-template sha256, decoding settings, positions and dataset sha256; a stale cache
is recomputed, never reused. The single positions' key is the one of earlier versions (their caches
still load); a run that needs `span` uses the key with `span` in its positions, whose cache holds the
single positions too (so a later single-position run reuses it).
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
    SPAN,
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
    hidden: dict[str, np.ndarray]  # position -> float16 [n, L + 1, width]; span: [n, L + 1, T, width] + span_len
    uncertainty: dict[str, np.ndarray]
    mean_logprob: np.ndarray
    seconds: float  # answering + hidden states (on a cache hit: the cost of the run that filled the cache)
    cached: bool = False


def _aliases(rec: dict[str, Any]) -> list[str]:
    return [str(g) for g in rec.get("gold", [])]


def cache_key(model_sha: str | None, tpl_sha: str, max_new_tokens: int, records: list[dict[str, Any]],
              span: bool = False) -> str:
    """The cache key; `span` adds the span position (a different key: the single-position key is unchanged)."""
    positions = [*POSITIONS, SPAN] if span else list(POSITIONS)
    blob = json.dumps({"v": CACHE_VERSION, "model": model_sha, "template": tpl_sha, "decoding": {
        "greedy": True, "max_new_tokens": max_new_tokens}, "positions": positions,
        "data": dataset_sha256(records)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _load_cache(folder: Path, key: str, names: tuple[str, ...] = POSITIONS) -> dict[str, Any] | None:
    meta, arrays = folder / f"{key}.json", folder / f"{key}.npz"
    if not (meta.is_file() and arrays.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("key") != key:
            return None
        with np.load(arrays, allow_pickle=False) as z:
            info["hidden"] = {p: z[p] for p in names}
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
                       progress: ProgressReporter | None = None, span: bool = False) -> AnswerSet:
    """Generate (or teacher-force `answer`), grade against `gold`, and read hidden states for every record
    (with `span` also every answer-clause token)."""
    progress = or_null(progress)
    tpl = template_sha256(tokenizer)
    key = cache_key(model_sha, tpl, max_new_tokens, records, span)
    info = None
    if cache:
        info = _load_cache(Path(cache), key, (*POSITIONS, SPAN, "span_len") if span else POSITIONS)
        if info is None and not span:  # a span run's cache holds the single positions too
            info = _load_cache(Path(cache), cache_key(model_sha, tpl, max_new_tokens, records, True))
    cached = info is not None
    t0 = time.perf_counter()
    if info is None:
        prompts = [build_prompt(tokenizer, r["question"], r.get("answer_stem")) for r in records]
        ex = _extract(model, tokenizer, records, prompts, max_new_tokens, batch_size, progress, span)
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
             max_new_tokens: int, batch_size: int, progress: ProgressReporter, span: bool = False) -> Extracted:
    """Greedy decoding (states read while decoding) for records without `answer`; one teacher-forced
    pass over prompt + " answer" for records with one. Results in record order."""
    gen_idx = [i for i, r in enumerate(records) if "answer" not in r]
    tf_idx = [i for i, r in enumerate(records) if "answer" in r]
    parts: list[tuple[list[int], Extracted]] = []
    if gen_idx:
        _, ex = greedy_decode(model, tokenizer, [prompts[i] for i in gen_idx], max_new_tokens, batch_size,
                              [_aliases(records[i]) for i in gen_idx], progress, span)
        assert ex is not None
        parts.append((gen_idx, ex))
    if tf_idx:
        conts = [list(tokenizer(" " + records[i]["answer"].strip(), add_special_tokens=False)["input_ids"])
                 for i in tf_idx]
        parts.append((tf_idx, teacher_forced(model, tokenizer, [prompts[i] for i in tf_idx], conts,
                                             [_aliases(records[i]) for i in tf_idx], batch_size,
                                             (*POSITIONS, SPAN) if span else POSITIONS, progress)))
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
    if span:
        t_max = max(int(ex.hidden[SPAN].shape[2]) for _, ex in parts)
        merged.hidden[SPAN] = np.zeros((n, *first.hidden[SPAN].shape[1:2], t_max, first.hidden[SPAN].shape[3]),
                                       dtype=np.float16)
        merged.hidden["span_len"] = np.zeros(n, dtype=np.int32)
        for idx, ex in parts:
            t = int(ex.hidden[SPAN].shape[2])
            merged.hidden[SPAN][idx, :, :t] = ex.hidden[SPAN]
            merged.hidden["span_len"][idx] = ex.hidden["span_len"]
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
