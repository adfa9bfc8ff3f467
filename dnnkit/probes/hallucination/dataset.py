"""Question-answer items with exactly known answers, and their JSONL form.

A record: {id, task, family, group, stratum, question, answer_stem, gold[], meta{}}. `gold` holds
every accepted answer; `group` keeps near-duplicates (a+b and b+a, one element in two tasks) in one
fold; `stratum` is the difficulty cell used for within-stratum evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.probes.hallucination.arithmetic import arithmetic_record, parse_digits, parse_ops, sample_arithmetic
from dnnkit.probes.hallucination.facts import load_fact_tables

TASKS = ("capitals", "state-capitals", "element-symbols", "element-numbers", "arithmetic")
FAMILY_OF = {"capitals": "geography", "state-capitals": "geography", "element-symbols": "chemistry",
             "element-numbers": "chemistry", "arithmetic": "arithmetic"}
FAMILIES = ("arithmetic", "geography", "chemistry")
ANSWER_TYPE = {"capitals": "name", "state-capitals": "name", "element-symbols": "symbol",
               "element-numbers": "number", "arithmetic": "number"}
TEMPLATES = {
    "capitals": ("What is the capital of {e}?", "The capital of {e} is"),
    "state-capitals": ("What is the capital of the US state of {e}?", "The capital of {e} is"),
    "element-symbols": ("What is the chemical symbol of {e}?", "The chemical symbol of {e} is"),
    "element-numbers": ("What is the atomic number of {e}?", "The atomic number of {e} is"),
}


def parse_tasks(spec: str) -> list[str]:
    """`all` or a comma list of task names."""
    if spec.strip() == "all":
        return list(TASKS)
    tasks = [t.strip() for t in spec.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise InputError(f"unknown task {bad[0] if bad else spec!r}", hint=f"choose from all, {', '.join(TASKS)}")
    return tasks


def _fact_record(task: str, entity: str, aliases: tuple[str, ...], gold: tuple[str, ...], group: str,
                 source: str, line: int) -> dict[str, Any]:
    question, stem = TEMPLATES[task]
    slug = "".join(c if c.isalnum() else "-" for c in entity.lower()).strip("-")
    return {"id": f"{task}-{slug}", "task": task, "family": FAMILY_OF[task], "group": group, "stratum": task,
            "question": question.format(e=entity), "answer_stem": stem.format(e=entity), "gold": list(gold),
            "meta": {"entity": entity, "entity_aliases": list(aliases), "entity_len": len(entity),
                     "source": f"{source}:{line}"}}


def build_dataset(tasks: str = "all", facts: str = "builtin", n_arith: int = 400, arith_ops: str = "add,sub,mul",
                  arith_digits: str = "1-4", seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All records of the chosen tasks, and the manifest (sources, overrides, dropped rows, counts)."""
    chosen = parse_tasks(tasks)
    ops, digits = parse_ops(arith_ops), parse_digits(arith_digits)
    records: list[dict[str, Any]] = []
    manifest: dict[str, Any] = {"tasks": chosen, "facts": facts, "seed": seed, "sources": {}, "overrides": [],
                                "dropped": []}
    if any(t != "arithmetic" for t in chosen):
        tables = load_fact_tables(facts)
        manifest.update(sources=tables.sources, overrides=tables.applied, dropped=tables.dropped,
                        notice="fact tables derived from the quiz data of bsdgames; BSD licence, see "
                               "dnnkit/probes/hallucination/facts/NOTICE")
        if "capitals" in chosen:
            for r in tables.rows["capitals"]:
                records.append(_fact_record("capitals", r.entity, r.entity_aliases, r.answers["capital"],
                                            f"country:{r.entity}", r.source, r.line))
        if "state-capitals" in chosen:
            for r in tables.rows["state"]:
                records.append(_fact_record("state-capitals", r.entity, r.entity_aliases, r.answers["capital"],
                                            f"state:{r.entity}", r.source, r.line))
        for task, key in (("element-symbols", "symbol"), ("element-numbers", "number")):
            if task in chosen:
                for r in tables.rows["elements"]:
                    records.append(_fact_record(task, r.entity, r.entity_aliases, r.answers[key],
                                                f"element:{r.entity}", r.source, r.line))
    if "arithmetic" in chosen and n_arith > 0:
        manifest["arithmetic"] = {"n": n_arith, "ops": ops, "digits": digits, "mul_max_digits": 2}
        items = sample_arithmetic(n_arith, ops, digits, seed)
        for it in items:
            records.append(arithmetic_record(it, len(str(max(it.a, it.b)))))
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise InputError("duplicate item ids in the built dataset")
    counts: dict[str, int] = {}
    for r in records:
        counts[r["task"]] = counts.get(r["task"], 0) + 1
    manifest["counts"] = counts
    manifest["n"] = len(records)
    return records, manifest


def records_jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def dataset_sha256(records: list[dict[str, Any]]) -> str:
    return hashlib.sha256(records_jsonl(records).encode("utf-8")).hexdigest()


def qa_path(spec: str) -> str | None:
    """The file of a `--data` value: None for builtin-qa, PATH for jsonl:PATH (or a bare PATH.jsonl)."""
    if spec == "builtin-qa":
        return None
    path = spec[6:] if spec.startswith("jsonl:") else spec
    if not (spec.startswith("jsonl:") or path.endswith(".jsonl")):
        raise InputError(f"--data must be builtin-qa or jsonl:PATH, got {spec!r}")
    return path


def load_records(spec: str, require_gold: bool, seed: int = 0) -> list[dict[str, Any]]:
    """The records of a `--data` value: builtin-qa (built in memory with `seed`) or a validated JSONL file."""
    path = qa_path(spec)
    if path is None:
        return build_dataset(seed=seed)[0]
    return load_qa_jsonl(path, require_gold=require_gold)


def load_qa_jsonl(path: str | Path, require_gold: bool) -> list[dict[str, Any]]:
    """Read and validate a QA JSONL file; every problem names its line number."""
    from dnnkit.data.qa import load_jsonl

    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file {str(path)!r} does not exist")
    return load_jsonl(path, required=(), check=lambda rec, where: _check_record(rec, where, require_gold)).records


def _check_record(rec: dict[str, Any], where: str, require_gold: bool) -> None:
    if not isinstance(rec.get("question"), str) or not rec["question"].strip():
        raise InputError(f"{where}: missing field 'question' (a non-empty string)")
    if require_gold and "gold" not in rec:
        raise InputError(f"{where}: missing field 'gold' (the accepted answers) needed for training")
    if "gold" in rec:
        gold = rec["gold"]
        if isinstance(gold, str):
            rec["gold"] = [gold]
        elif not (isinstance(gold, list) and gold and all(isinstance(g, (str, int)) for g in gold)):
            raise InputError(f"{where}: 'gold' must be a non-empty list of strings")
        rec["gold"] = [str(g) for g in rec["gold"]]
    task = rec.get("task")
    if task is not None and task not in TASKS:
        raise InputError(f"{where}: unknown task {task!r}", hint=f"tasks: {', '.join(TASKS)}")
    for key in ("answer_stem", "answer", "id"):
        if key in rec and not isinstance(rec[key], str):
            raise InputError(f"{where}: {key!r} must be a string")
    rec.setdefault("id", where.rsplit(":", 1)[-1])
    if task is not None:
        rec.setdefault("family", FAMILY_OF[task])
    rec.setdefault("stratum", task or "all")
    rec.setdefault("group", rec["id"])
    rec.setdefault("meta", {})
    if not isinstance(rec["meta"], dict):
        raise InputError(f"{where}: 'meta' must be an object")
