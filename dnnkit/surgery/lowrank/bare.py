"""`--svd` on a bare weights file (no architecture): tensor by tensor, never the whole model in memory.

Candidates are `NAME.weight` tensors with 2 dims (Linear) or 4 dims (Conv2d, groups = 1 assumed),
minus embeddings (names with `embed`, `wte`, `wpe`) and the head (the last candidate in natural
order, unless --factor-head). Factors are written as `NAME.down.weight`, `NAME.up.weight` and the
bias as `NAME.up.bias`, the names the `lowrank` recipe step expects when the file is later loaded
with an architecture. Energy and global rules read the spectrum in a first pass.

transformers' Conv1D (GPT-2) stores its weight (in, out), the transpose of a Linear's. A 2-D weight
whose bias has length shape[1] != shape[0] can only be stored that way: it is factored as a Conv1D
(kind "conv1d", the factors of W^T). In a file holding such tensors, a 2-D weight whose layout the
bias does not settle (square, or no bias) is skipped with the reason: factoring it the wrong way
round would reload as another map (pass --arch to factor it from the network).
"""

from __future__ import annotations

import fnmatch
import json
import time
from pathlib import Path
from typing import Any

import torch

from dnnkit.errors import InputError
from dnnkit.models.reference import ModelRef
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.lowrank.select import Candidate, check_patterns

EMBED_MARKERS = ("embed", "wte", "wpe")


def is_bare(ref: ModelRef, arch: str | None) -> bool:
    """True for a safetensors / legacy file with no architecture in its record and no --arch."""
    if arch is not None:
        return False
    if ref.kind == "safetensors":
        from dnnkit.models.safetensors_io import read_header

        record = read_header(ref.path).dnnkit_record()
        return not (record or {}).get("arch")
    return ref.kind == "legacy"


def _module_name(tensor: str) -> str:
    return tensor[: -len(".weight")]


def bare_candidates(source: Any, include: list[str], exclude: list[str],
                    factor_head: bool) -> tuple[list[Candidate], list[dict[str, str]]]:
    """Factorable tensors of a weight source, by name and shape only."""
    from dnnkit.models.weights import natural_key

    names = sorted(source.names(), key=natural_key)
    layers = [_module_name(n) for n in names if n.endswith(".weight") and len(source.shape(n)) in (2, 4)]
    check_patterns(layers, include, exclude)
    layouts = {mod: _layout(source, mod) for mod in layers}
    conv1d_file = "conv1d" in layouts.values()
    head = None
    plain = [m for m in layers if not any(k in m.lower() for k in EMBED_MARKERS)]
    if plain and not factor_head:
        head = plain[-1]
    chosen, skipped = [], []
    for mod in layers:
        if include and not any(fnmatch.fnmatchcase(mod, p) for p in include):
            continue
        if exclude and any(fnmatch.fnmatchcase(mod, p) for p in exclude):
            continue
        shape = tuple(source.shape(mod + ".weight"))
        if any(k in mod.lower() for k in EMBED_MARKERS):
            if include:
                skipped.append({"name": mod, "reason": "embedding"})
            continue
        if mod == head:
            if include:
                skipped.append({"name": mod, "reason": "output head (last weight; pass --factor-head)"})
            continue
        kind = "conv2d" if len(shape) == 4 else layouts[mod] or "linear"
        if layouts[mod] is None and conv1d_file:
            skipped.append({"name": mod, "reason": "layout unknown: the file holds transformers Conv1D weights "
                                                   "stored (in, out) and this one may be one too (pass --arch)"})
            continue
        m, n = (shape[1], shape[0]) if kind == "conv1d" else (shape[0], int(torch.Size(shape[1:]).numel()))
        if min(m, n) < 2:
            skipped.append({"name": mod, "reason": "min(m, n) < 2"})
            continue
        if source.dtype(mod + ".weight") not in ("F32", "F16", "BF16", "F64", "float32", "float16", "bfloat16"):
            skipped.append({"name": mod, "reason": f"dtype {source.dtype(mod + '.weight')} is not a float"})
            continue
        chosen.append(Candidate(mod, kind, m, n, shape))
    return chosen, skipped


def _layout(source: Any, mod: str) -> str | None:
    """'linear' or 'conv1d' when the bias settles how a 2-D weight is stored, else None (4-D: 'conv2d')."""
    shape = tuple(source.shape(mod + ".weight"))
    if len(shape) != 2:
        return "conv2d"
    bias = mod + ".bias"
    if shape[0] == shape[1] or bias not in source.names():
        return None
    length = tuple(source.shape(bias))
    if length == (shape[1],):
        return "conv1d"
    return "linear" if length == (shape[0],) else None


def lowrank_bare(ref: ModelRef, cfg: Any, output: str | None, *, force: bool,
                 progress: ProgressReporter | None = None) -> dict[str, Any]:
    """SVD truncation of a bare file; writes `output` (atomically) unless it is None (dry run)."""
    from dnnkit.models.registry import open_weights
    from dnnkit.surgery.lowrank.api import check_params_floor, layer_rows
    from dnnkit.surgery.lowrank.decompose import (
        decompose,
        global_allocation,
        rank_by_params,
        rank_by_ratio,
    )

    progress = or_null(progress)
    started = time.perf_counter()
    source = open_weights(ref)
    cands, skipped = bare_candidates(source, cfg.include, cfg.exclude, cfg.factor_head)
    if not cands:
        raise InputError(f"{ref.raw} has no factorable weight (2-D or 4-D `*.weight` tensors)",
                         hint="check --include/--exclude")
    if cfg.rule == "params":
        check_params_floor(cands, cfg.value)
    spectra: dict[str, torch.Tensor] = {}
    if cfg.rule == "energy" or cfg.allocate == "global":
        for c in cands:
            spectra[c.name] = torch.linalg.svdvals(_matrix(source, c))
    ranks: dict[str, int] = {}
    if cfg.allocate == "global":
        ranks = global_allocation({c.name: (c.m, c.n, spectra[c.name]) for c in cands}, cfg.value)
    else:
        for c in cands:
            if cfg.rule == "ratio":
                r = rank_by_ratio(c.m, c.n, cfg.value)
            elif cfg.rule == "params":
                r = rank_by_params(c.m, c.n, cfg.value)
            else:
                sq = spectra[c.name] ** 2
                cum = torch.cumsum(sq, 0) / sq.sum().clamp_min(1e-300)
                hits = (cum >= cfg.value - 1e-12).nonzero()
                r = int(hits[0]) + 1 if len(hits) else c.full_rank
            ranks[c.name] = min(r, c.full_rank)
    factored = {c.name: ranks[c.name] for c in cands if ranks[c.name] * (c.m + c.n) < c.m * c.n}
    energy = {}
    for c in cands:
        if c.name in spectra:
            sq = spectra[c.name] ** 2
            energy[c.name] = float(sq[: ranks[c.name]].sum() / sq.sum().clamp_min(1e-300))
    rows = layer_rows(cands, ranks, factored, None, {})
    for row in rows:
        row["energy_kept"] = energy.get(row["name"]) if row["factored"] else (1.0 if row["name"] in energy else None)
    total = sum(int(torch.Size(source.shape(n)).numel()) for n in source.names())
    sel_b = sum(r["params_before"] for r in rows)
    sel_a = sum(r["params_after"] for r in rows)
    warnings = [] if factored else ["the rank rule keeps every selected layer dense (no layer shrinks); "
                                    "nothing factored"]
    step = {"op": "lowrank", "params": {"method": "svd", "rule": cfg.rule, "value": cfg.value,
                                        "allocate": cfg.allocate, "alpha": None, "lambda_gl": None, "eps": None,
                                        "sampler": None, "epochs": 0, "seed": cfg.seed, "calib": None},
            "layers": {c.name: {"kind": c.kind, "shape": list(c.weight_shape), "rank": factored[c.name]}
                       for c in cands if c.name in factored}}
    tot = {"selected": {"params_before": sel_b, "params_after": sel_a, "macs_before": sel_b, "macs_after": sel_a,
                        "params_kept": sel_a / sel_b if sel_b else 1.0},
           "model": {"params_before": total, "params_after": total - sel_b + sel_a, "macs_before": None,
                     "macs_after": None, "params_kept": (total - sel_b + sel_a) / total if total else 1.0}}
    if output is not None:
        _write(source, ref, cands, factored, step, tot, output, force, decompose, progress)
    return {"method": "svd", "rule": cfg.rule, "value": cfg.value, "allocate": cfg.allocate, "task": "unknown",
            "layers": rows, "totals": tot, "fidelity": {},
            "kept_dense": [{"name": r["name"], "reason": r["reason"]} for r in rows if not r["factored"]],
            "skipped": skipped, "warnings": warnings, "sweep": [], "macs_unit": "per output position",
            "bare": True, "timings": {"total_s": round(time.perf_counter() - started, 3)}}


def _weight(source: Any, c: Candidate) -> torch.Tensor:
    w = source.get(c.name + ".weight").to(torch.float64)
    if not torch.isfinite(w).all():
        raise InputError(f"tensor {c.name}.weight holds NaN or Inf values")
    return w


def _matrix(source: Any, c: Candidate) -> torch.Tensor:
    """The m x n (out x in) matrix of a candidate: a conv unrolled, a Conv1D weight transposed."""
    w = _weight(source, c)
    return w.t() if c.kind == "conv1d" else w.reshape(c.m, c.n)


def _write(source: Any, ref: ModelRef, cands: list[Candidate], factored: dict[str, int], step: dict[str, Any],
           tot: dict[str, Any], output: str, force: bool, decompose: Any, progress: ProgressReporter) -> None:
    from dnnkit.models.atomic import atomic_file, check_output_path
    from dnnkit.models.registry import files_sha256
    from dnnkit.models.safetensors_io import DTYPE_SIZES, StreamingWriter, torch_dtype_name
    from dnnkit.models.save import _json_default, complete_record
    from dnnkit.models.weights import natural_key

    path = check_output_path(output, force)
    by_name = {c.name: c for c in cands}
    specs: dict[str, tuple[str, tuple[int, ...]]] = {}
    plan: list[tuple[str, str, str]] = []  # (out name, source tensor, part)
    for name in sorted(source.names(), key=natural_key):
        mod = name[: -len(".weight")] if name.endswith(".weight") else name[: -len(".bias")]
        dtype = source.dtype(name)
        dtype = dtype if dtype in DTYPE_SIZES else torch_dtype_name(getattr(torch, dtype))
        if mod in factored and name.endswith((".weight", ".bias")):
            c, r = by_name[mod], factored[mod]
            if name.endswith(".weight"):
                extra = (1, 1) if c.kind == "conv2d" else ()
                down_in = (c.n,) if c.kind == "conv1d" else c.weight_shape[1:]
                specs[f"{mod}.down.weight"] = (dtype, (r, *down_in))
                specs[f"{mod}.up.weight"] = (dtype, (c.m, r, *extra))
                plan += [(f"{mod}.down.weight", name, "down"), (f"{mod}.up.weight", name, "up")]
            else:
                specs[f"{mod}.up.bias"] = (dtype, tuple(source.shape(name)))
                plan.append((f"{mod}.up.bias", name, "copy"))
            continue
        specs[name] = (dtype, tuple(source.shape(name)))
        plan.append((name, name, "copy"))
    sha = files_sha256([ref.path]) if ref.path.is_file() else None
    record = complete_record({"arch": None, "recipe": [step], "source": {"reference": ref.raw, "sha256": sha},
                              "metrics": {"lowrank": {"totals": tot}}})
    metadata = {"format": "pt", "dnnkit": json.dumps(record, default=_json_default)}
    task = progress.task("factor tensors", len(plan))
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with atomic_file(path) as tmp, StreamingWriter(Path(tmp), specs, metadata) as writer:
        for out_name, src, part in plan:
            t = source.get(src)
            if part != "copy":
                mod = src[: -len(".weight")]
                if mod not in cache:
                    c = by_name[mod]
                    up, down = decompose(_matrix(source, c)).factors(factored[mod])
                    cache[mod] = (up.to(t.dtype).contiguous(), down.to(t.dtype).contiguous())
                up, down = cache[mod]
                t = (down if part == "down" else up).reshape(specs[out_name][1])
                if part == "up":
                    cache.pop(mod)
            writer.write(out_name, t.contiguous())
            task.advance(1)
