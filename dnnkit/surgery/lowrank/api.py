"""`lowrank(loaded, config)`: factor the selected layers of a built model and report what it cost.

Flow: check the configuration and the layer selection (cheap, before heavy work) -> calibrate the
dense model when the method needs activations -> decompose every layer in float64 -> pick ranks
(ratio / energy / parameter budget, uniform or global) -> replace layers whose factors are smaller
(never enlarge) -> optional fine-tune -> held-out fidelity. `--maestro` trains instead (maestro.py).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.metrics import Inputs, check_task_data, load_inputs
from dnnkit.models.registry import LoadedModel
from dnnkit.nn.lowrank import dense_matrix, layer_kind, make_lowrank, set_factors, set_module
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.lowrank.calibrate import calibrate
from dnnkit.surgery.lowrank.decompose import (
    Decomposition,
    asvd_scale,
    decompose,
    global_allocation,
    rank_by_energy,
    rank_by_params,
    rank_by_ratio,
    whitening_factor,
)
from dnnkit.surgery.lowrank.fidelity import Reference, fidelity, make_reference, unique_params
from dnnkit.surgery.lowrank.select import Candidate, select_layers

METHODS = ("svd", "asvd", "whiten", "maestro", "truncate")
RULES = ("ratio", "energy", "params")
NEEDS_DATA = ("asvd", "whiten", "maestro")
TEXT_TASKS = ("causal-lm", "encoder")


@dataclass
class LowRankConfig:
    """Every option of `dnnkit lowrank` (library defaults = CLI defaults)."""

    method: str = "svd"
    rule: str | None = None  # ratio | energy | params
    value: float | None = None
    allocate: str = "uniform"  # uniform | global
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    factor_head: bool = False
    data: str | None = None
    calib: int = 256
    seq_len: int = 128
    alpha: float = 0.5
    finetune_epochs: int = 0
    lr: float | None = None
    train_limit: int | None = None
    eval_limit: int | None = 1000
    # maestro
    from_scratch: bool = False
    epochs: int = 100
    lambda_gl: float = 1e-3
    eps: float = 1e-5
    sampler: str = "independent"
    min_rank: int = 1
    full_pass: bool = False
    seed: int = 0
    batch_size: int = 64
    sweep: bool = False  # metric vs params over a truncation sweep (for the trade-off plot)
    plots: bool = False  # PNGs beside the output on save (spectra, Maestro ranks, the sweep when measured)

    def check(self) -> None:
        """Cheap checks of the options alone (before any loading); InputError on bad input."""
        validate_config(self)


@dataclass
class LowRankResult:
    """The factored model, the recipe step to record, and the report."""

    model: nn.Module
    step: dict[str, Any]
    report: dict[str, Any]
    decompositions: dict[str, Decomposition] = field(default_factory=dict)


def validate_config(cfg: LowRankConfig) -> None:
    """Range and combination checks of the options (exit 2)."""
    if cfg.method not in METHODS:
        raise InputError(f"unknown method {cfg.method!r}", hint="use --svd, --asvd, --whiten, --maestro or --truncate")
    if cfg.method != "maestro" and cfg.rule is None:
        raise InputError(f"--{cfg.method} needs a rank rule", hint="pass one of --rank-ratio, --energy, --params")
    if cfg.method == "maestro" and cfg.rule not in (None, "params"):
        raise InputError("--maestro finds its own ranks; it takes only an optional --params budget")
    if cfg.rule is not None:
        if cfg.rule not in RULES:
            raise InputError(f"unknown rank rule {cfg.rule!r}")
        if cfg.value is None or not (0 < cfg.value <= 1):
            flag = {"ratio": "--rank-ratio", "energy": "--energy", "params": "--params"}[cfg.rule]
            raise InputError(f"{flag} must be in (0, 1], got {cfg.value}")
    if cfg.allocate not in ("uniform", "global"):
        raise InputError(f"--allocate must be uniform or global, got {cfg.allocate!r}")
    if cfg.allocate == "global" and cfg.method == "truncate":
        raise InputError("--truncate re-cuts each layer on its own; --allocate global is not supported")
    if cfg.allocate == "global" and cfg.rule != "params":
        raise InputError("--allocate global needs --params (a global parameter budget)")
    if cfg.method in NEEDS_DATA and not cfg.data:
        raise InputError(f"--{cfg.method} needs calibration/training data", hint="pass --data (e.g. digits, wiki)")
    if not cfg.alpha > 0:
        raise InputError(f"--alpha must be > 0, got {cfg.alpha}")
    if cfg.sampler not in ("independent", "pair"):
        raise InputError(f"--sampler must be independent or pair, got {cfg.sampler!r}")
    if cfg.min_rank < 1:
        raise InputError("--min-rank must be >= 1")
    if cfg.lambda_gl < 0 or cfg.eps < 0:
        raise InputError("--lambda-gl and --eps must be >= 0")
    if cfg.epochs < 1 or cfg.finetune_epochs < 0:
        raise InputError("--epochs must be >= 1 and --finetune-epochs >= 0")
    if cfg.from_scratch and cfg.method != "maestro":
        raise InputError("--from-scratch applies to --maestro only")


@dataclass
class Plan:
    """What a run will do, known before heavy work."""

    candidates: list[Candidate]
    skipped: list[dict[str, str]]
    data: str | None
    seq_len: int | None = None  # token block length when --seq-len exceeds the model's position table
    warnings: list[str] = field(default_factory=list)


def plan(loaded: LoadedModel, cfg: LowRankConfig) -> Plan:
    """Check the configuration against the model (cheap): selection, data, parameter floor."""
    validate_config(cfg)
    model = loaded.require_network(f"--{cfg.method}" if cfg.method in NEEDS_DATA else "lowrank")
    if cfg.method == "truncate":
        from dnnkit.surgery.lowrank.truncate import factored_layers

        factored_layers(model, cfg.include, cfg.exclude)
        candidates, skipped = [], []
    else:
        candidates, skipped = select_layers(model, cfg.include, cfg.exclude, cfg.factor_head)
    if not candidates and cfg.method != "truncate":
        why = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:3])
        raise InputError(f"{loaded.ref.raw} has no factorable layer" + (f" ({why})" if why else ""),
                         hint="Linear, Conv2d (groups = 1) and transformers Conv1D layers are factored; "
                              "check --include/--exclude")
    if cfg.rule == "params":
        check_params_floor(candidates, cfg.value)
    seq_len, notes = None, []
    data = cfg.data or loaded.info.default_data
    if cfg.data is None and data is not None and loaded.info.task in ("causal-lm", "encoder") \
            and loaded.tokenizer_dir is None:
        data = None  # no tokenizer: the default text data cannot be read; fidelity is skipped
    if data is not None:
        if loaded.info.task not in ("classifier", "causal-lm", "encoder"):
            if cfg.method in NEEDS_DATA:
                raise InputError(f"{loaded.ref.raw}: the model's task is unknown; --{cfg.method} needs a "
                                 "classifier, causal LM or encoder")
            data = None
        else:
            check_task_data(loaded, data)
            limit = position_limit(model)
            if loaded.info.task in TEXT_TASKS and limit is not None and limit < cfg.seq_len:
                seq_len = limit
                notes.append(f"--seq-len {cfg.seq_len} is longer than the model's {limit} positions; token "
                             f"blocks of {limit} are used")
    return Plan(candidates, skipped, data, seq_len, notes)


def position_limit(model: nn.Module) -> int | None:
    """Length of a HF model's position table (None when it has none or does not say)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def check_params_floor(candidates: list[Candidate], fraction: float) -> None:
    """`--params P` below the rank-1 floor of the selected layers is an error naming the minimum."""
    need = sum(c.m + c.n for c in candidates)
    total = sum(c.dense_params for c in candidates)
    if fraction * total < need:
        raise InputError(f"--params {fraction} is below the rank-1 floor of the selected layers: rank 1 "
                         f"everywhere keeps {need} of {total} weights", hint=f"use --params >= {need / total:.4g}")


def choose_ranks(cfg: LowRankConfig, candidates: list[Candidate], decs: dict[str, Decomposition]) -> dict[str, int]:
    """The rank of every candidate under the configured rule."""
    if cfg.rule == "params" and cfg.allocate == "global":
        return global_allocation({c.name: (c.m, c.n, decs[c.name].s) for c in candidates}, cfg.value)
    ranks = {}
    for c in candidates:
        if cfg.rule == "ratio":
            r = rank_by_ratio(c.m, c.n, cfg.value)
        elif cfg.rule == "energy":
            r = rank_by_energy(decs[c.name], cfg.value)
        else:
            r = rank_by_params(c.m, c.n, cfg.value)
        ranks[c.name] = min(r, c.full_rank)
    return ranks


def _load_split(loaded: LoadedModel, data: str, split: str, n: int | None, cfg: LowRankConfig) -> Inputs:
    return load_inputs(loaded, data, split, n, cfg.seed, cfg.seq_len)


def calibration_inputs(loaded: LoadedModel, data: str, cfg: LowRankConfig) -> Inputs:
    """`--calib` samples of the training split (all of it when smaller)."""
    inputs = _load_split(loaded, data, "train", None, cfg) if loaded.info.task == "classifier" else None
    if inputs is not None:
        if len(inputs) > cfg.calib:
            from dnnkit.data import subset_indices

            inputs = inputs.take(subset_indices(len(inputs), cfg.calib, cfg.seed))
        return inputs
    try:
        return _load_split(loaded, data, "train", cfg.calib, cfg)
    except InputError:
        return _load_split(loaded, data, "train", None, cfg)


def eval_inputs(loaded: LoadedModel, data: str, cfg: LowRankConfig) -> Inputs:
    """Held-out inputs: the test split, at most `eval_limit` samples."""
    try:
        return _load_split(loaded, data, "test", cfg.eval_limit, cfg)
    except InputError:
        return _load_split(loaded, data, "test", None, cfg)


def decompose_layers(model: nn.Module, candidates: list[Candidate], cfg: LowRankConfig, calib: Any,
                     warnings: list[str], progress: ProgressReporter) -> dict[str, Decomposition]:
    """float64 SVD of every candidate in the metric of the method."""
    decs: dict[str, Decomposition] = {}
    factors: dict[str, tuple[torch.Tensor, float, bool]] = {}
    task = progress.task("decompose", len(candidates))
    for c in candidates:
        w = dense_matrix(model.get_submodule(c.name))  # m x n, whatever the layer stores
        if not torch.isfinite(w).all():
            raise InputError(f"layer {c.name}: its weight holds NaN or Inf values")
        if cfg.method == "asvd":
            scale, clamped = asvd_scale(calib.mean_abs(c.name), cfg.alpha)
            if clamped:
                warnings.append(f"{c.name}: {clamped} input channels never active in calibration; scale clamped "
                                "to 1e-6")
            decs[c.name] = decompose(w, "diag", scale)
        elif cfg.method == "whiten":
            owner = calib.shared_with.get(c.name, c.name)
            if owner not in factors:
                gram = calib.of(c.name).gram
                factors[owner] = whitening_factor(gram, c.name)
                dead = int((torch.diagonal(gram) == 0).sum())
                if dead:
                    warnings.append(f"{c.name}: {dead} input channels never active in calibration (singular "
                                    f"covariance); regularised by the diagonal jitter")
                chol, rel, escalated = factors[owner]
                if escalated:
                    warnings.append(f"{c.name}: activation covariance singular; regularised with "
                                    f"{rel:g} x mean(diag G) on the diagonal")
            chol, rel, escalated = factors[owner]
            decs[c.name] = decompose(w, "cholesky", chol)
        else:
            decs[c.name] = decompose(w)
        task.advance(1)
    return decs


def apply_ranks(model: nn.Module, candidates: list[Candidate], decs: dict[str, Decomposition],
                ranks: dict[str, int]) -> dict[str, int]:
    """Replace each candidate whose rank shrinks it by its factored module; returns {name: rank} factored."""
    done = {}
    for c in candidates:
        r = ranks[c.name]
        if r * (c.m + c.n) >= c.m * c.n:
            continue
        layer = model.get_submodule(c.name)
        new = make_lowrank(layer, r)
        up, down = decs[c.name].factors(r)
        set_factors(new, up.to(layer.weight.dtype), down.to(layer.weight.dtype),
                    None if layer.bias is None else layer.bias.detach())
        set_module(model, c.name, new)
        done[c.name] = r
    return done


def layer_rows(candidates: list[Candidate], ranks: dict[str, int], factored: dict[str, int],
               decs: dict[str, Decomposition] | None, positions: dict[str, float]) -> list[dict[str, Any]]:
    """The per-layer report rows."""
    rows = []
    for c in candidates:
        r = ranks.get(c.name, c.full_rank)
        is_f = c.name in factored
        pos = positions.get(c.name, 1.0)
        after = r * (c.m + c.n) if is_f else c.dense_params
        energy = None
        if decs is not None and c.name in decs:
            energy = float(decs[c.name].energy[min(r, c.full_rank) - 1]) if is_f else 1.0
        reason = None if is_f else f"rank {r} >= break-even {c.m * c.n / (c.m + c.n):.1f} (never enlarge)"
        rows.append({"name": c.name, "kind": c.kind, "shape": list(c.weight_shape), "full_rank": c.full_rank,
                     "rank": r if is_f else c.full_rank, "rule_rank": r, "energy_kept": energy,
                     "params_before": c.dense_params, "params_after": after,
                     "macs_before": int(round(c.dense_params * pos)), "macs_after": int(round(after * pos)),
                     "factored": is_f, "reason": reason})
    return rows


def totals(model_before: nn.Module, rows: list[dict[str, Any]], all_macs: int) -> dict[str, Any]:
    """Selected-layer and whole-model parameter / MAC totals (weights of Linear/Conv layers for MACs)."""
    sel_b = sum(r["params_before"] for r in rows)
    sel_a = sum(r["params_after"] for r in rows)
    mac_b = sum(r["macs_before"] for r in rows)
    mac_a = sum(r["macs_after"] for r in rows)
    model_b = unique_params(model_before)
    return {
        "selected": {"params_before": sel_b, "params_after": sel_a, "macs_before": mac_b, "macs_after": mac_a,
                     "params_kept": sel_a / sel_b if sel_b else 1.0},
        "model": {"params_before": model_b, "params_after": model_b - sel_b + sel_a,
                  "macs_before": all_macs, "macs_after": all_macs - mac_b + mac_a,
                  "params_kept": (model_b - sel_b + sel_a) / model_b if model_b else 1.0},
    }


def linear_conv_macs(model: nn.Module, positions: dict[str, float]) -> int:
    """MACs per sample (per token for text) of every Linear / Conv2d / Conv1D layer whose positions are known."""
    total = 0.0
    for name, mod in model.named_modules():
        if layer_kind(mod) is not None and name in positions:
            total += mod.weight.numel() * positions[name]
    return int(round(total))


def _macs_unit(task: str, ref: Reference | None) -> str:
    """MACs are counted per token for token inputs (and text models measured without data), else per sample."""
    tokens = ref.inputs.kind == "tokens" if ref is not None else task in TEXT_TASKS
    return "per token" if tokens else "per sample"


def measure_positions(model: nn.Module, task: str, sample: Inputs | None, info_shape: Any) -> dict[str, float]:
    """Output positions per sample of every Linear / Conv2d / Conv1D layer (one small forward pass)."""
    names = [n for n, m in model.named_modules() if layer_kind(m) is not None]
    if sample is None:
        if task in TEXT_TASKS:  # no tokenizer or data: every layer runs once per token
            return {n: 1.0 for n in names}
        if not info_shape:
            return {}
        sample = Inputs("images", torch.zeros(1, *info_shape, dtype=next(model.parameters()).dtype))
    return calibrate(model, task, sample.slice(0, 2), names).positions


def lowrank(loaded: LoadedModel, cfg: LowRankConfig, progress: ProgressReporter | None = None) -> LowRankResult:
    """Run the configured method on `loaded` (a built network) and return model, recipe step, report."""
    progress = or_null(progress)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    the_plan = plan(loaded, cfg)
    dense = loaded.require_network()
    task = loaded.info.task
    warnings: list[str] = list(the_plan.warnings)
    if the_plan.seq_len is not None:  # blocks longer than the position table would fail inside forward
        cfg = dataclasses.replace(cfg, seq_len=the_plan.seq_len)
    t0 = time.perf_counter()
    ref: Reference | None = None
    if the_plan.data is not None:
        ref = make_reference(dense, task, eval_inputs(loaded, the_plan.data, cfg))
    timings["reference_eval_s"] = time.perf_counter() - t0
    positions = measure_positions(dense, task, ref.inputs if ref else None, loaded.info.input_shape)
    all_macs = linear_conv_macs(dense, positions)
    names = [c.name for c in the_plan.candidates]
    maestro_report = None
    decs: dict[str, Decomposition] = {}
    if cfg.method == "truncate":
        return _truncate(loaded, cfg, ref, positions, all_macs, warnings, timings, started)
    if cfg.method == "maestro":
        from dnnkit.surgery.lowrank.maestro import run_maestro

        t0 = time.perf_counter()
        train = training_inputs(loaded, the_plan.data, cfg)
        out = run_maestro(dense, task, the_plan.candidates, train, ref, cfg, warnings, progress)
        timings["train_s"] = time.perf_counter() - t0
        model, ranks, factored, maestro_report = out.model, out.ranks, out.factored, out.report
    else:
        calib = None
        if cfg.method in ("asvd", "whiten"):
            t0 = time.perf_counter()
            cin = calibration_inputs(loaded, the_plan.data, cfg)
            calib = calibrate(dense, task, cin, names, want_abs=cfg.method == "asvd",
                              want_gram=cfg.method == "whiten", batch_size=cfg.batch_size, progress=progress)
            timings["calibration_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        decs = decompose_layers(dense, the_plan.candidates, cfg, calib, warnings, progress)
        timings["decompose_s"] = time.perf_counter() - t0
        ranks = choose_ranks(cfg, the_plan.candidates, decs)
        model = copy.deepcopy(dense)
        factored = apply_ranks(model, the_plan.candidates, decs, ranks)
        if cfg.finetune_epochs and factored:
            t0 = time.perf_counter()
            finetune(model, dense, loaded, the_plan.data, cfg, progress)
            timings["finetune_s"] = time.perf_counter() - t0
    rows = layer_rows(the_plan.candidates, ranks, factored, decs or None, positions)
    if not factored:
        warnings.append("the rank rule keeps every selected layer dense (no layer shrinks); nothing factored")
    tot = totals(dense, rows, all_macs)
    t0 = time.perf_counter()
    fid: dict[str, Any] = {}
    if ref is not None:
        fid = {"data": the_plan.data, "samples": len(ref.inputs), "dense": ref.metrics,
               "factored": fidelity(model, ref)}
    timings["eval_s"] = time.perf_counter() - t0
    sweep = truncation_sweep(model, factored, ref) if cfg.sweep and ref is not None and factored else []
    step = {"op": "lowrank",
            "params": {"method": cfg.method, "rule": cfg.rule, "value": cfg.value, "allocate": cfg.allocate,
                       "alpha": cfg.alpha if cfg.method == "asvd" else None,
                       "lambda_gl": cfg.lambda_gl if cfg.method == "maestro" else None,
                       "eps": cfg.eps if cfg.method == "maestro" else None,
                       "sampler": cfg.sampler if cfg.method == "maestro" else None,
                       "epochs": cfg.epochs if cfg.method == "maestro" else cfg.finetune_epochs,
                       "seed": cfg.seed, "calib": cfg.calib if cfg.method in NEEDS_DATA else None},
            "layers": {c.name: {"kind": c.kind, "shape": list(c.weight_shape), "rank": factored[c.name]}
                       for c in the_plan.candidates if c.name in factored}}
    timings["total_s"] = time.perf_counter() - started
    report = {"method": cfg.method, "rule": cfg.rule, "value": cfg.value, "allocate": cfg.allocate,
              "task": task, "layers": rows, "totals": tot, "fidelity": fid,
              "kept_dense": [{"name": r["name"], "reason": r["reason"]} for r in rows if not r["factored"]],
              "skipped": the_plan.skipped, "warnings": warnings, "sweep": sweep,
              "macs_unit": _macs_unit(loaded.info.task, ref),
              "timings": {k: round(v, 3) for k, v in timings.items()}}
    if maestro_report is not None:
        report["maestro"] = maestro_report
    return LowRankResult(model, step, report, decs)


def training_inputs(loaded: LoadedModel, data: str, cfg: LowRankConfig) -> Inputs:
    """Training split for fine-tuning / Maestro: all of it for classifiers (or `train_limit`), `--calib`
    samples for text models."""
    if loaded.info.task == "classifier":
        inputs = _load_split(loaded, data, "train", None, cfg)
        if cfg.train_limit is not None and len(inputs) > cfg.train_limit:
            from dnnkit.data import subset_indices

            inputs = inputs.take(subset_indices(len(inputs), cfg.train_limit, cfg.seed))
        return inputs
    return calibration_inputs(loaded, data, cfg)


def finetune(model: nn.Module, dense: nn.Module, loaded: LoadedModel, data: str, cfg: LowRankConfig,
             progress: ProgressReporter) -> None:
    """`--finetune-epochs` of Adam on the training split (labels, or distillation from the dense model)."""
    from dnnkit.surgery.lowrank.training import train_model
    from dnnkit.train import TrainConfig

    train = training_inputs(loaded, data, cfg)
    tcfg = TrainConfig(epochs=cfg.finetune_epochs, lr=cfg.lr or 1e-3, batch_size=cfg.batch_size, seed=cfg.seed)
    train_model(model, loaded.info.task, train, tcfg, dense=dense, progress=progress, description="fine-tune")


@torch.no_grad()
def truncation_sweep(model: nn.Module, factored: dict[str, int], ref: Reference,
                     fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """Metric vs parameters when every factored layer keeps the first fraction f of its rank.

    Runs on a subset of the evaluation inputs (512 images or 64 text samples) to stay cheap.
    """
    from dnnkit.surgery.lowrank.fidelity import headline, make_reference

    keep = 512 if ref.inputs.kind == "images" else 64
    if len(ref.inputs) > keep:
        ref = make_reference(ref.dense, ref.task, ref.inputs.slice(0, keep))

    mods = {n: model.get_submodule(n) for n in factored}
    base = unique_params(model)
    points = []
    for f in fractions:
        removed = 0
        for mod in mods.values():
            b = max(1, int(round(f * mod.rank)))
            mod.active_rank = b
            m_, n_ = mod.up.weight.shape[0], mod.down.weight[0].numel()
            removed += (mod.rank - b) * (m_ + n_)
        head = headline(fidelity(model, ref))
        points.append({"fraction": f, "params": base - removed, "metric": head[0] if head else None,
                       "value": head[1] if head else None})
    for mod in mods.values():
        mod.active_rank = None
    return points


def _truncate(loaded: LoadedModel, cfg: LowRankConfig, ref: Reference | None, positions: dict[str, float],
              all_macs: int, warnings: list[str], timings: dict[str, float], started: float) -> LowRankResult:
    """`--truncate`: re-cut the factored layers of a lowrank checkpoint (see truncate.py)."""
    from dnnkit.surgery.lowrank.truncate import truncate_model

    dense = loaded.require_network()
    model, info = truncate_model(dense, cfg, warnings)
    rows = []
    for name, i in info.items():
        m, n = i["shape"][0], int(torch.Size(i["shape"][1:]).numel())
        pos = positions.get(f"{name}.up", 1.0)
        before, after = i["rank_before"] * (m + n), i["rank"] * (m + n)
        rows.append({"name": name, "kind": i["kind"], "shape": i["shape"], "full_rank": min(m, n), "rank": i["rank"],
                     "rule_rank": i["rank"], "rank_before": i["rank_before"], "energy_kept": i["energy_kept"],
                     "out_of_order": i["out_of_order"], "params_before": before, "params_after": after,
                     "macs_before": int(round(before * pos)), "macs_after": int(round(after * pos)),
                     "factored": True, "reason": None})
    tot = totals(dense, rows, all_macs)
    fid: dict[str, Any] = {}
    if ref is not None:
        fid = {"data": ref_data(loaded, cfg), "samples": len(ref.inputs), "dense": ref.metrics,
               "factored": fidelity(model, ref), "reference": "the input checkpoint"}
    step = {"op": "lowrank",
            "params": {"method": "truncate", "rule": cfg.rule, "value": cfg.value, "allocate": "uniform",
                       "alpha": None, "lambda_gl": None, "eps": None, "sampler": None, "epochs": 0,
                       "seed": cfg.seed, "calib": None},
            "layers": {n: {"kind": i["kind"], "shape": i["shape"], "rank": i["rank"]} for n, i in info.items()}}
    timings["total_s"] = time.perf_counter() - started
    sweep = truncation_sweep(model, {n: i["rank"] for n, i in info.items()}, ref) if cfg.sweep and ref else []
    report = {"method": "truncate", "rule": cfg.rule, "value": cfg.value, "allocate": "uniform",
              "task": loaded.info.task, "layers": rows, "totals": tot, "fidelity": fid, "kept_dense": [],
              "skipped": [], "warnings": warnings, "sweep": sweep,
              "macs_unit": _macs_unit(loaded.info.task, ref),
              "timings": {k: round(v, 3) for k, v in timings.items()}}
    return LowRankResult(model, step, report)


def ref_data(loaded: LoadedModel, cfg: LowRankConfig) -> str | None:
    """The data spec the fidelity ran on."""
    return cfg.data or loaded.info.default_data
