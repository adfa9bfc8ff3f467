"""`swap-projection`: replace Linear layers by Tversky projections (or fresh Linear controls), fine-tune, report.

Procedure (spec 2.9): resolve layers; metric before; calibrate the input mean/std of each matched layer;
install the new layers; train (a frozen final layer trains on cached inputs, full batch, Adam 1e-2,
1500 steps; otherwise the shared loop, 10 epochs, batch 64, Adam 1e-3); metric after; per-layer report.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.metrics import Inputs, load_inputs, outputs, perplexity
from dnnkit.models.registry import LoadedModel
from dnnkit.nn.tversky import StandardizedLinear, TverskyProjection
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.tversky.plan import install, parameter_count, plan_layers, resolve_layers
from dnnkit.train import TrainConfig, fit

OP = "swap-projection"
SLOW_ELEMENTS = 1 << 28


@dataclass
class SwapConfig:
    """Everything `swap_projection` needs besides the model and data (CLI defaults in the spec, 2.9)."""

    kind: str = "tversky"
    layers: str = ""
    features: int | None = None
    prototypes: int | None = None  # None = out_features
    num_classes: int | None = None
    share_features: bool = False
    tie_prototypes: str | None = None
    similarity: str = "contrast"
    alpha: float = 0.5
    beta: float = 0.5
    theta: float = 1.0
    intersection: str = "product"
    difference: str = "substractmatch"
    reduction: str = "per-feature"
    init: str = "uniform"
    standardize: bool = True
    calib: int = 256
    freeze_rest: bool = False
    epochs: int | None = None
    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    seed: int = 0
    limit: int | None = None  # training samples / token blocks (None: the whole train split)
    eval_limit: int | None = None
    seq_len: int = 128
    data: str | None = None  # default: the model's own dataset
    plots: bool = False  # PNGs of the first Tversky layer beside the output on save

    def check(self) -> None:
        """Option checks that need no model (exit 2)."""
        if self.kind == "tversky":
            if self.features is None or self.features <= 0:
                raise InputError("--features must be a positive integer (the size of the feature bank)",
                                 hint="e.g. --features 64")
            if self.prototypes is not None and self.prototypes <= 0:
                raise InputError(f"--prototypes must be positive or 'out', got {self.prototypes}")
            if self.alpha < 0 or self.beta < 0:
                raise InputError(f"initial --alpha/--beta must be >= 0, got {self.alpha}/{self.beta}")
            if self.theta <= 0:
                raise InputError(f"initial --theta must be > 0, got {self.theta}")
            from dnnkit.kernels.tversky_similarity import check_options
            from dnnkit.nn.tversky import INITS

            check_options(self.intersection, self.difference, self.similarity, self.reduction)
            if self.init not in INITS:
                raise InputError(f"unknown --init {self.init!r}", hint=f"use one of {', '.join(INITS)}")
        if self.num_classes is not None and self.num_classes <= 1:
            raise InputError(f"--num-classes must be at least 2, got {self.num_classes}")
        for name in ("epochs", "steps", "batch_size", "calib"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.epochs is not None and self.steps is not None:
            raise InputError("pass --epochs or --steps, not both")
        if self.lr is not None and self.lr <= 0:
            raise InputError(f"--lr must be positive, got {self.lr}")

    def recipe_params(self, cached: bool, budget: dict[str, Any]) -> dict[str, Any]:
        """The `params` of the recipe step."""
        keys = ("kind", "features", "intersection", "difference", "reduction", "similarity", "init", "standardize",
                "share_features", "num_classes", "freeze_rest", "seed", "alpha", "beta", "theta")
        params = {k: getattr(self, k) for k in keys}
        params.update(tie=self.tie_prototypes, cached_inputs=cached, **budget)
        return params


@dataclass
class SwapResult:
    """What the command reports and writes."""

    model: nn.Module
    step: dict[str, Any]
    report: dict[str, Any]
    layers: dict[str, nn.Module] = field(default_factory=dict)
    eval_inputs: Inputs | None = None


# ------------------------------------------------------------------------------------------------ inputs / loss


class _Runner(nn.Module):
    """Maps one training tensor to the model output; keeps frozen parts in eval mode under --freeze-rest."""

    def __init__(self, model: nn.Module, task: str, kind: str, frozen_eval: bool, trainable: set[str]) -> None:
        super().__init__()
        self.model, self.task, self.kind = model, task, kind
        self.frozen_eval, self.trainable = frozen_eval, trainable

    def train(self, mode: bool = True) -> _Runner:
        super().train(mode)
        if mode and self.frozen_eval:
            for name, mod in self.model.named_modules():
                if not any(name == t or name.startswith(t + ".") for t in self.trainable):
                    mod.training = False
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "images":
            out = self.model(x)
            return out.logits if hasattr(out, "logits") else out
        if self.task == "encoder":
            ids, mask = x[:, 0], x[:, 1]
            hidden = self.model(input_ids=ids, attention_mask=mask)
            hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(1) / m.sum(1).clamp_min(1)
        return self.model(input_ids=x).logits


def _training_tensors(inputs: Inputs, task: str) -> torch.Tensor:
    if inputs.kind == "tokens" and task == "encoder":
        return torch.stack([inputs.x, inputs.attention_mask], dim=1)
    return inputs.x


def _loss_fn(task: str, kind: str) -> Any:
    if kind == "images":
        return lambda m, x, y: nn.functional.cross_entropy(m(x).float(), y)
    if task == "causal-lm":
        def lm_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = m(x).float()
            return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        return lm_loss
    return lambda m, x, y: (1 - nn.functional.cosine_similarity(m(x).float(), y.float(), dim=-1)).mean()


def _subset(inputs: Inputs, n: int | None, seed: int) -> Inputs:
    if n is None or n >= len(inputs):
        return inputs
    from dnnkit.data import subset_indices

    return inputs.take(subset_indices(len(inputs), n, seed))


# ------------------------------------------------------------------------------------------------ metrics


@torch.no_grad()
def metric(model: nn.Module, task: str, inputs: Inputs, reference: torch.Tensor | None = None) -> dict[str, float]:
    """accuracy (classifier), perplexity (causal LM), or cosine to the original embeddings (encoder)."""
    if task == "causal-lm":
        return {"perplexity": perplexity(model, inputs)}
    y = outputs(model, task, inputs, batch_size=256 if inputs.kind == "images" else 8)
    if task == "classifier":
        return {"accuracy": float((y.argmax(-1) == inputs.y).float().mean())}
    ref = reference if reference is not None else y
    return {"cosine": float(nn.functional.cosine_similarity(y, ref, dim=-1).mean())}


def _capture_inputs(model: nn.Module, names: list[str], run: Any, max_rows: int | None = None
                    ) -> dict[str, torch.Tensor]:
    """Inputs (rows x in_features) reaching each named module while `run()` executes."""
    modules = dict(model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = []
    for n in names:
        def hook(mod: nn.Module, args: tuple, n: str = n) -> None:
            rows = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            if max_rows is None or sum(len(t) for t in seen[n]) < max_rows:
                seen[n].append(rows.cpu())
        hooks.append(modules[n].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.cat(v)[:max_rows] if v else torch.empty(0) for n, v in seen.items()}


def _run_forward(runner: _Runner, x: torch.Tensor, batch: int) -> Any:
    def go() -> None:
        runner.eval()
        for i in range(0, len(x), batch):
            runner(x[i:i + batch])
    return go


# ------------------------------------------------------------------------------------------------ the swap


def swap_projection(loaded: LoadedModel, data: str, opts: SwapConfig, progress: ProgressReporter | None = None,
                    dry_run: bool = False) -> SwapResult:
    """Swap, train and measure; returns the modified model, its recipe step and the report."""
    progress = or_null(progress)
    opts.check()
    model = loaded.require_network("swap-projection")
    task = loaded.info.task
    if task not in ("classifier", "causal-lm", "encoder"):
        raise InputError(f"{loaded.ref.raw}: swap-projection needs a classifier, a causal LM or an encoder")
    names = resolve_layers(model, opts.layers)
    plan = plan_layers(model, names, kind=opts.kind, features=opts.features, prototypes=opts.prototypes,
                       num_classes=opts.num_classes, share_features=opts.share_features, tie=opts.tie_prototypes,
                       task=task)
    from dnnkit.metrics import check_task_data

    check_task_data(loaded, data)
    train = _subset(load_inputs(loaded, data, "train", None, opts.seed, opts.seq_len), opts.limit, opts.seed)
    test = load_inputs(loaded, data, "test", None, opts.seed, opts.seq_len)
    test = _subset(test, opts.eval_limit or (None if test.kind == "images" else 64), opts.seed)
    if task == "classifier" and opts.num_classes is not None and train.y is not None \
            and int(train.y.max()) >= opts.num_classes:
        raise InputError(f"--data {data} has labels up to {int(train.y.max())}, more than --num-classes "
                         f"{opts.num_classes}")
    params_before = parameter_count(model)
    modules = dict(model.named_modules())
    x_train = _training_tensors(train, task)
    reference_test = reference_train = None
    if task == "encoder":
        reference_train = outputs(model, task, train, batch_size=8)
        reference_test = outputs(model, task, test, batch_size=8)
    before = None if opts.num_classes is not None else metric(model, task, test, reference_test)
    trainable = set(names)
    runner = _Runner(model, task, train.kind, opts.freeze_rest, trainable)
    cached = _can_cache(opts, loaded, names, modules, runner, x_train)
    budget = _budget(opts, cached, len(x_train))
    if dry_run:
        report = _dry_report(opts, plan, modules, params_before, budget, cached, before, x_train)
        step = {"op": OP, "params": opts.recipe_params(cached, budget), "layers": plan}
        return SwapResult(model, step, report)
    calib = _subset(train, opts.calib, opts.seed)
    stats = _calibrate(model, names, runner, _training_tensors(calib, task), opts.standardize)
    gen = torch.Generator().manual_seed(opts.seed)
    torch.manual_seed(opts.seed)
    step_params = opts.recipe_params(cached, budget)
    new = install(model, step_params, plan, generator=gen)
    for name, mod in new.items():
        old = modules[name]
        mod.to(dtype=old.weight.dtype)
        mean, std = stats[name]
        mod.in_mean.copy_(mean.to(mod.in_mean.device))
        mod.in_std.copy_(std.to(mod.in_std.device))
    _warn_slow(opts, new, budget, progress)
    started = time.perf_counter()
    if cached:
        hist = _train_cached(runner, names[0], new[names[0]], x_train, train.y, budget, opts, progress)
    else:
        keep = trainable | ({opts.tie_prototypes} if opts.tie_prototypes else set())
        frozen = _frozen_names(runner, keep) if opts.freeze_rest else None
        cfg = TrainConfig(epochs=budget["epochs"], lr=budget["lr"], batch_size=budget["batch_size"], seed=opts.seed)
        x_fit, y_fit = _steps_subset(x_train, train.y if task != "encoder" else reference_train, budget, opts.seed)
        hist = fit(runner, x_fit, y_fit if y_fit is not None else torch.zeros(len(x_fit)), cfg,
                   loss_fn=_loss_fn(task, train.kind), frozen=frozen, progress=progress,
                   description=f"swap-projection {opts.kind}")
    train_seconds = time.perf_counter() - started
    model.eval()
    after = metric(model, task, test, reference_test)
    step = {"op": OP, "params": step_params, "layers": plan}
    report = _report(opts, plan, new, modules, model, runner, test, task, params_before, before, after, hist.loss,
                     train_seconds, budget, cached, progress)
    return SwapResult(model, step, report, new, test)


def _can_cache(opts: SwapConfig, loaded: LoadedModel, names: list[str], modules: dict[str, nn.Module],
               runner: _Runner, x: torch.Tensor) -> bool:
    """A frozen final classifier layer whose output is the model output trains on cached inputs."""
    if not (opts.freeze_rest and len(names) == 1 and loaded.info.task == "classifier"):
        return False
    captured: dict[str, torch.Tensor] = {}
    layer = modules[names[0]]
    hook = layer.register_forward_hook(lambda m, a, o: captured.setdefault("out", o.detach()))
    try:
        runner.eval()
        with torch.no_grad():
            out = runner(x[:8])
    finally:
        hook.remove()
    return "out" in captured and captured["out"].shape == out.shape and torch.allclose(captured["out"], out)


def _budget(opts: SwapConfig, cached: bool, n: int) -> dict[str, Any]:
    if cached:
        batch = opts.batch_size or min(4096, n)
        per_epoch = max(1, math.ceil(n / batch))
        steps = opts.steps or (opts.epochs * per_epoch if opts.epochs else 1500)
        return {"steps": steps, "epochs": max(1, math.ceil(steps / per_epoch)), "lr": opts.lr or 1e-2,
                "batch_size": batch, "optimizer": "adam"}
    batch = opts.batch_size or 64
    per_epoch = max(1, math.ceil(n / batch))
    if opts.steps is not None:
        return {"steps": opts.steps, "epochs": max(1, math.ceil(opts.steps / per_epoch)), "lr": opts.lr or 1e-3,
                "batch_size": batch, "optimizer": "adam"}
    epochs = opts.epochs or 10
    return {"steps": epochs * per_epoch, "epochs": epochs, "lr": opts.lr or 1e-3, "batch_size": batch,
            "optimizer": "adam"}


def _steps_subset(x: torch.Tensor, y: torch.Tensor | None, budget: dict[str, Any], seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """With --steps shorter than one epoch, train on just enough samples for that many batches."""
    need = budget["steps"] * budget["batch_size"]
    if budget["epochs"] > 1 or need >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:need]
    return x[idx], None if y is None else y[idx]


def _calibrate(model: nn.Module, names: list[str], runner: _Runner, x: torch.Tensor, standardize: bool
               ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per matched layer: mean and std (>= 1e-6) of its input over the calibration samples (identity if off)."""
    widths = {n: dict(model.named_modules())[n].in_features for n in names}
    if not standardize:
        return {n: (torch.zeros(w), torch.ones(w)) for n, w in widths.items()}
    seen = _capture_inputs(model, names, _run_forward(runner, x, 64))
    return {n: (rows.mean(0), rows.std(0, unbiased=False).clamp_min(1e-6)) for n, rows in seen.items()}


def _frozen_names(runner: _Runner, trainable: set[str]) -> set[str]:
    keep = {f"model.{t}" for t in trainable}
    frozen = set()
    for name, _ in runner.named_parameters():
        if not any(name.startswith(k + ".") for k in keep) and not name.startswith("model.tversky_bank_"):
            frozen.add(name)
    return frozen


class _Every:
    """Forwards progress, but only every `every`-th log line (the cached head logs once per step)."""

    def __init__(self, inner: ProgressReporter, every: int) -> None:
        self.inner, self.every, self.count = inner, every, 0

    def task(self, description: str, total: float | None) -> Any:
        return self.inner.task(description, total)

    def log(self, message: str) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.inner.log(message)


def _train_cached(runner: _Runner, name: str, layer: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  budget: dict[str, Any], opts: SwapConfig, progress: ProgressReporter) -> Any:
    feats = _capture_inputs(runner.model, [name], _run_forward(runner, x, 512))[name].to(layer.in_mean.device)
    cfg = TrainConfig(epochs=budget["epochs"], lr=budget["lr"], batch_size=budget["batch_size"], seed=opts.seed)
    every = max(1, budget["epochs"] // 10)
    return fit(layer, feats, y.to(feats.device), cfg, progress=_Every(progress, every),
               description=f"swap-projection {opts.kind} (cached inputs)")


def _warn_slow(opts: SwapConfig, new: dict[str, nn.Module], budget: dict[str, Any],
               progress: ProgressReporter) -> None:
    from dnnkit.kernels.tversky_similarity import kernel_backend

    for name, mod in new.items():
        if not isinstance(mod, TverskyProjection):
            continue
        elements = budget["batch_size"] * mod.out_features * mod.num_features
        probe = mod.bank.detach()[:1, :1]
        if elements > SLOW_ELEMENTS and kernel_backend(probe, probe, mod.reduction) == "torch":
            progress.log(f"warning: {name}: batch x prototypes x features = {elements:,} per step on the chunked "
                         "PyTorch reference (no fused GPU kernel): this will be slow")


# ------------------------------------------------------------------------------------------------ reports


def _naive_bytes(rows: int, p: int, k: int) -> int:
    return rows * p * k * 4


def _dry_report(opts: SwapConfig, plan: dict[str, dict[str, Any]], modules: dict[str, nn.Module],
                params_before: int, budget: dict[str, Any], cached: bool, before: dict[str, float] | None,
                x_train: torch.Tensor) -> dict[str, Any]:
    from dnnkit.kernels.tversky_similarity import CHUNK_ELEMENTS

    layers = []
    total_new = 0
    banks_counted: set[str] = set()
    rows = budget["batch_size"] * (int(x_train.shape[-1]) if x_train.dim() == 2 and x_train.dtype == torch.long
                                   else 1)
    for name, spec in plan.items():
        old = modules[name]
        p_old = sum(t.numel() for t in old.parameters())
        if opts.kind == "tversky":
            p_new = 3 + (0 if spec["tied_to"] else spec["out"] * spec["in"])
            bank = spec["bank"]
            if bank is None or bank not in banks_counted:
                p_new += spec["features"] * spec["in"]
                if bank is not None:
                    banks_counted.add(bank)
            naive = _naive_bytes(rows, spec["out"], spec["features"])
            memory = {"rows_per_step": rows, "naive_nxpxk_bytes": naive,
                      "chunked_reference_bytes": min(naive, CHUNK_ELEMENTS * 4)}
        else:
            p_new = spec["out"] * spec["in"] + (spec["out"] if spec.get("bias", True) else 0)
            memory = {}
        total_new += p_new - p_old
        layers.append({"name": name, "in_features": spec["in"], "out_features": spec["out"],
                       "features": spec.get("features"), "params_before": p_old, "params_after": p_new, **memory})
    return {"kind": opts.kind, "dry_run": True, "layers": layers, "params_before": params_before,
            "params_after": params_before + total_new, "metric_before": before, "metric_after": None,
            "loss_curve": [], "train_seconds": None, "budget": budget, "cached_inputs": cached, "kernel": None,
            "settings": _settings(opts)}


def _report(opts: SwapConfig, plan: dict[str, dict[str, Any]], new: dict[str, nn.Module],
            old_modules: dict[str, nn.Module], model: nn.Module, runner: _Runner, test: Inputs, task: str,
            params_before: int, before: dict[str, float] | None, after: dict[str, float], losses: list[float],
            seconds: float, budget: dict[str, Any], cached: bool, progress: ProgressReporter) -> dict[str, Any]:
    from dnnkit.kernels.tversky_similarity import kernel_backend

    x_test = _training_tensors(test, task)
    seen = _capture_inputs(model, list(new), _run_forward(runner, x_test[:512], 64), max_rows=8192)
    layers = []
    kernel = "torch"
    for name, mod in new.items():
        old = old_modules[name]
        entry: dict[str, Any] = {"name": name, "in_features": plan[name]["in"], "out_features": plan[name]["out"],
                                 "params_before": sum(t.numel() for t in old.parameters()),
                                 "params_after": sum(t.numel() for t in mod.parameters(recurse=False))}
        rows = seen[name].to(mod.in_mean.device)
        if isinstance(mod, TverskyProjection):
            entry.update(_tversky_stats(mod, rows))
            if mod.shares_bank:
                entry["bank"] = plan[name]["bank"]
            if mod.is_tied:
                entry["tied_to"] = plan[name]["tied_to"]
            for key in ("alpha", "beta"):
                if entry[key] < 0:
                    progress.log(f"warning: {name}: {key} = {entry[key]:.3f} < 0 after training "
                                 "(distinctive features now raise similarity)")
            with torch.no_grad():
                ma, mb = mod.measures(rows[:2])
            kernel = kernel_backend(ma, mb, mod.reduction)
        entry["timing_ms"] = _timing(mod, rows, plan[name])
        layers.append(entry)
    curve = losses if len(losses) <= 50 else [losses[int(i * (len(losses) - 1) / 49)] for i in range(50)]
    return {"kind": opts.kind, "layers": layers, "params_before": params_before,
            "params_after": parameter_count(model), "metric_before": before, "metric_after": after,
            "loss_curve": curve, "train_seconds": round(seconds, 2), "budget": budget, "cached_inputs": cached,
            "kernel": kernel, "settings": _settings(opts)}


def _settings(opts: SwapConfig) -> dict[str, Any]:
    keys = ("similarity", "intersection", "difference", "reduction", "init", "standardize", "features",
            "share_features", "tie_prototypes", "alpha", "beta", "theta") if opts.kind == "tversky" else \
        ("standardize",)
    return {k: v for k, v in asdict(opts).items() if k in keys}


@torch.no_grad()
def _tversky_stats(mod: TverskyProjection, rows: torch.Tensor) -> dict[str, Any]:
    ma, mb = mod.measures(rows)
    present_in = (ma > 0)
    in_inputs = present_in.any(0)
    in_protos = (mb > 0).any(0)
    return {"features": mod.num_features, "alpha": float(mod.alpha), "beta": float(mod.beta),
            "theta": float(mod.theta),
            "active_feature_share": float(present_in.float().mean()) if len(rows) else None,
            "dead_features": int((~in_inputs & ~in_protos).sum()),
            "absent_in_inputs": int((~in_inputs).sum())}


def _timing(mod: nn.Module, rows: torch.Tensor, spec: dict[str, Any], repeats: int = 5) -> dict[str, float]:
    """Forward+backward ms of the swapped layer and of an nn.Linear of the same shape, same rows (<= 256)."""
    x = rows[:256] if len(rows) else torch.randn(256, spec["in"])
    x = x.to(next(mod.parameters()).device)
    lin = nn.Linear(spec["in"], spec["out"]).to(x.device)

    def clock(m: nn.Module) -> float:
        times = []
        for _ in range(repeats + 1):
            xr = x.clone().requires_grad_(True)
            t0 = time.perf_counter()
            m(xr).float().sum().backward()
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
        m.zero_grad(set_to_none=True)
        return sorted(times[1:])[len(times[1:]) // 2]

    swapped, linear = clock(mod), clock(lin)
    return {"rows": len(x), "swapped": round(swapped, 3), "linear": round(linear, 3),
            "ratio": round(swapped / max(linear, 1e-9), 2)}


def original_weight_rows(old: nn.Module) -> torch.Tensor | None:
    """The replaced Linear's weight rows (a linear row is a prototype too), for the plots."""
    return old.weight.detach().float().cpu() if isinstance(old, nn.Linear | StandardizedLinear) else None
