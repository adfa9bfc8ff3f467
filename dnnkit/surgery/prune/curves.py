"""Per-layer rate-distortion curves with prefix reuse and level batching (spec section 4).

`DistortionMeter` holds a model, calibration inputs and the reference output Y. For one layer it
measures the output distortion of many weight variants (the layer alone at several sparsity
levels) without redundant work:

* prefix reuse: one reference pass records the output of every module that finishes before the
  perturbed layer starts (and is called once per forward); while that layer is measured, those
  modules return their cached outputs instead of computing, so only the suffix runs;
* level batching: the cached inputs are repeated G times and the perturbed layer applies the g-th
  variant to the g-th copy (a batched matmul for Linear, a loop for Conv), so the suffix runs once
  over G*N rows;
* LM head: with a `HeadShortcut` (causal LMs whose head is not perturbed) the meter compares final
  hidden states and turns them into the exact logit error through W_h^T W_h (see `lm_head`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.metrics import Inputs
from dnnkit.surgery.prune.lm_head import HeadShortcut
from dnnkit.surgery.prune.masks import magnitude_ranks

ACTIVATION_BUDGET = 4_000_000  # floats per batched forward; big batches of small convs run slower


def forward_y(model: nn.Module, task: str, inputs: Inputs) -> torch.Tensor:
    """The model output Y (logits, or the pooled embedding for encoders) in fp32."""
    if inputs.kind == "images":
        out = model(inputs.x)
        out = out.logits if hasattr(out, "logits") else out
        return out.float()
    kwargs: dict[str, Any] = {"input_ids": inputs.x, "attention_mask": inputs.attention_mask}
    if task == "causal-lm":
        kwargs["use_cache"] = False
    out = model(**kwargs)
    if task == "encoder":
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        mask = inputs.attention_mask.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1)).float()
    return out.logits.float()


@torch.no_grad()
def reference_outputs(model: nn.Module, task: str, inputs: Inputs, batch: int,
                      head: HeadShortcut | None = None) -> torch.Tensor:
    """Y on `inputs` in chunks of `batch`: the model output, or its final hidden states under `head`."""
    model.eval()
    with head.hidden_outputs() if head is not None else nullcontext():
        return torch.cat([forward_y(model, task, inputs.slice(i, i + batch)) for i in range(0, len(inputs), batch)])


def per_sample_error(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/C) * sum_c (y - y_hat)^2 for each sample (C = all non-batch elements)."""
    return ((y_hat - y) ** 2).reshape(y.shape[0], -1).mean(dim=1)


def reduce_errors(errors: torch.Tensor, objective: str) -> float:
    """The objective over samples: mean (default) or worst-case (max)."""
    return float(errors.max()) if objective == "worst-case" else float(errors.mean())


def _repeat(obj: Any, groups: int, rows: int) -> Any:
    if isinstance(obj, torch.Tensor):
        if obj.dim() > 0 and obj.shape[0] == rows and groups > 1:
            return obj.repeat(groups, *([1] * (obj.dim() - 1)))
        return obj
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_repeat(o, groups, rows) for o in obj)
    if isinstance(obj, list):
        return [_repeat(o, groups, rows) for o in obj]
    if isinstance(obj, dict):  # plain dicts and transformers' ModelOutput
        items = {k: _repeat(v, groups, rows) for k, v in obj.items()}
        return items if type(obj) is dict else type(obj)(**items)
    return obj


def _detach(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_detach(o) for o in obj)
    if isinstance(obj, list):
        return [_detach(o) for o in obj]
    return obj


def _repeat_inputs(inputs: Inputs, groups: int) -> Inputs:
    if groups == 1:
        return inputs
    rep = lambda t: None if t is None else t.repeat(groups, *([1] * (t.dim() - 1)))  # noqa: E731
    return Inputs(inputs.kind, rep(inputs.x), rep(inputs.y), rep(inputs.attention_mask))


def _batched_forward(module: nn.Module, weights: torch.Tensor) -> Callable[..., torch.Tensor]:
    """A forward that applies weights[g] to the g-th block of rows of the input."""
    groups = weights.shape[0]
    bias = getattr(module, "bias", None)
    if isinstance(module, nn.Linear):
        def linear(x: torch.Tensor) -> torch.Tensor:
            xs = x.reshape(groups, -1, x.shape[-1])
            y = torch.bmm(xs, weights.transpose(1, 2))
            if bias is not None:
                y = y + bias
            return y.reshape(*x.shape[:-1], weights.shape[1])
        return linear
    if type(module).__name__ == "Conv1D":  # transformers' GPT-2 style: y = x @ W + b, W is (in, out)
        def conv1d_t(x: torch.Tensor) -> torch.Tensor:
            xs = x.reshape(groups, -1, x.shape[-1])
            y = torch.bmm(xs, weights) + bias
            return y.reshape(*x.shape[:-1], weights.shape[2])
        return conv1d_t

    def conv(x: torch.Tensor) -> torch.Tensor:
        parts = x.chunk(groups, dim=0)
        return torch.cat([module._conv_forward(p, weights[g], bias) for g, p in enumerate(parts)])
    return conv


@dataclass
class MeterStats:
    """Work counters: rows pushed through suffixes, full passes, seconds."""

    suffix_rows: int = 0
    measure_seconds: float = 0.0
    layers_with_reuse: int = 0
    layers_without_reuse: int = 0
    skipped_levels: int = 0
    measured_levels: int = 0
    proxy_levels: int = 0  # levels read off a proxy, not measured
    per_layer_seconds: dict[str, float] = field(default_factory=dict)


class DistortionMeter:
    """Measures output distortion of weight variants of one layer at a time (see module doc)."""

    def __init__(self, model: nn.Module, task: str, inputs: Inputs, reference: torch.Tensor, layer_names: list[str],
                 objective: str = "mean", batch_size: int = 256, reuse: bool = True,
                 head: HeadShortcut | None = None) -> None:
        """`reference` is Y on `inputs` (from `reference_outputs` with the same `head`)."""
        self.model, self.task, self.inputs, self.reference = model, task, inputs, reference
        if head is not None and not any(m is head.module for m in model.modules()):
            raise ValueError("the HeadShortcut belongs to another model (build it with head_shortcut(model, ...))")
        self.head = head
        self.objective = objective
        self.modules = dict(model.named_modules())
        self.layer_modules = [n[: -len(".weight")] if n.endswith(".weight") else n for n in layer_names]
        self.rows = max(1, min(batch_size, len(inputs)))
        self.stats = MeterStats()
        self.patched: dict[str, list[str]] = {}
        self.dead: dict[str, set[str]] = {}
        self.cache: dict[str, list[Any]] = {}
        self.per_row_floats = 1
        self._trace_structure(reuse)
        self.full_pass_seconds = self._reference_pass()

    def _forward(self, inputs: Inputs) -> torch.Tensor:
        with self.head.hidden_outputs() if self.head is not None else nullcontext():
            return forward_y(self.model, self.task, inputs)

    def _errors(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head.per_sample_error(y_hat, y) if self.head is not None else per_sample_error(y_hat, y)

    # -- structure and reference pass -------------------------------------------------------------
    def _trace_structure(self, reuse: bool) -> None:
        """Call intervals of every module on a tiny slice; choose each layer's patched prefix."""
        start: dict[str, int] = {}
        end: dict[str, int] = {}
        calls: dict[str, int] = {}
        counter = [0]
        handles = []
        biggest = [1]
        rows = min(2, len(self.inputs))

        def pre(name: str) -> Callable:
            def hook(mod: nn.Module, args: Any, kwargs: Any = None) -> None:
                counter[0] += 1
                calls[name] = calls.get(name, 0) + 1
                start.setdefault(name, counter[0])
            return hook

        def post(name: str) -> Callable:
            def hook(mod: nn.Module, args: Any, output: Any) -> None:
                counter[0] += 1
                end[name] = counter[0]
                if isinstance(output, torch.Tensor) and output.dim() > 0:
                    biggest[0] = max(biggest[0], output.numel() // max(rows, 1))
            return hook

        for name, mod in self.modules.items():
            if name == "":
                continue
            handles.append(mod.register_forward_pre_hook(pre(name)))
            handles.append(mod.register_forward_hook(post(name)))
        try:
            with torch.no_grad():
                y = self._forward(self.inputs.slice(0, rows))
        finally:
            for h in handles:
                h.remove()
        self.per_row_floats = max(biggest[0], y.numel() // max(rows, 1))
        for layer in self.layer_modules:
            if not reuse or layer not in start:
                self.patched[layer] = []
                continue
            ok = {n for n in start if calls.get(n) == 1 and end.get(n, 1 << 60) < start[layer]}
            chosen = [n for n in ok if n.rpartition(".")[0] not in ok]  # maximal: the parent does not qualify
            self.patched[layer] = sorted(chosen, key=lambda n: start[n])
            self.dead[layer] = self._dead_outputs(set(chosen))

    def _dead_outputs(self, chosen: set[str]) -> set[str]:
        """Patched children of an nn.Sequential whose next sibling is patched too: their output feeds
        only that sibling, which ignores it, so they may return it without the G-fold repetition."""
        dead = set()
        for name in chosen:
            parent, _, idx = name.rpartition(".")
            container = self.modules.get(parent)
            if isinstance(container, nn.Sequential) and idx.isdigit():
                nxt = f"{parent}.{int(idx) + 1}" if parent else str(int(idx) + 1)
                if nxt in chosen:
                    dead.add(name)
        return dead

    def _chunks(self) -> list[tuple[int, int]]:
        n = len(self.inputs)
        return [(i, min(n, i + self.rows)) for i in range(0, n, self.rows)]

    @torch.no_grad()
    def _reference_pass(self) -> float:
        """One full pass that caches the outputs of every module some layer patches; timed."""
        wanted = sorted({m for mods in self.patched.values() for m in mods})
        self.cache = {m: [] for m in wanted}
        handles = []
        for name in wanted:
            def hook(mod: nn.Module, args: Any, output: Any, name: str = name) -> None:
                self.cache[name].append(_detach(output))
            handles.append(self.modules[name].register_forward_hook(hook))
        try:
            for a, b in self._chunks():
                self._forward(self.inputs.slice(a, b))
        finally:
            for h in handles:
                h.remove()
        t0 = time.perf_counter()  # a second, plain pass: the naive per-level cost, without hooks or warm-up
        for a, b in self._chunks():
            self._forward(self.inputs.slice(a, b))
        return time.perf_counter() - t0

    # -- measuring ----------------------------------------------------------------------------------
    def group_size(self, levels: int) -> int:
        """Levels per batched forward, bounded by the activation budget."""
        per_copy = self.rows * self.per_row_floats
        return max(1, min(levels, ACTIVATION_BUDGET // max(per_copy, 1)))

    @torch.no_grad()
    def measure(self, layer: str, variants: list[torch.Tensor]) -> list[float]:
        """Distortion of the model with `layer`'s weight replaced by each variant in turn."""
        module_name = layer[: -len(".weight")] if layer.endswith(".weight") else layer
        module = self.modules[module_name]
        patched = self.patched.get(module_name, [])
        dead = self.dead.get(module_name, set())
        if patched:
            self.stats.layers_with_reuse += 1
        else:
            self.stats.layers_without_reuse += 1
        t0 = time.perf_counter()
        group = self.group_size(len(variants))
        results: list[float] = []
        for g0 in range(0, len(variants), group):
            stack = torch.stack(variants[g0:g0 + group]).to(module.weight.dtype)
            results += self._measure_group(module, stack, patched, dead)
        dt = time.perf_counter() - t0
        self.stats.measure_seconds += dt
        self.stats.per_layer_seconds[layer] = self.stats.per_layer_seconds.get(layer, 0.0) + dt
        return results

    def _measure_group(self, module: nn.Module, stack: torch.Tensor, patched: list[str], dead: set[str],
                       ) -> list[float]:
        groups = stack.shape[0]
        errors: list[torch.Tensor] = []
        module.forward = _batched_forward(module, stack)
        try:
            for c, (a, b) in enumerate(self._chunks()):
                n = b - a
                for name in patched:
                    cached = self.cache[name][c]
                    reps = 1 if name in dead else groups
                    self.modules[name].forward = (lambda *args, _o=cached, _g=reps, _n=n, **kw: _repeat(_o, _g, _n))
                try:
                    y_hat = self._forward(_repeat_inputs(self.inputs.slice(a, b), groups))
                finally:
                    for name in patched:
                        del self.modules[name].forward
                self.stats.suffix_rows += n * groups
                err = self._errors(y_hat, self.reference[a:b].repeat(groups, *([1] * (y_hat.dim() - 1))))
                errors.append(err.reshape(groups, n))
        finally:
            del module.forward
        per_sample = torch.cat(errors, dim=1)
        return [reduce_errors(per_sample[g], self.objective) for g in range(groups)]

    @torch.no_grad()
    def measure_model(self) -> float:
        """Distortion of the model as it is now (one full pass), against the reference."""
        parts = [self._errors(self._forward(self.inputs.slice(a, b)), self.reference[a:b])
                 for a, b in self._chunks()]
        return reduce_errors(torch.cat(parts), self.objective)


@dataclass
class Curves:
    """Single-layer distortion curves: per layer, the zero counts measured and their distortion."""

    names: list[str]
    sizes: list[int]
    zeros: list[list[int]]
    distortion: list[list[float]]
    seconds: float = 0.0
    full_pass_seconds: float = 0.0
    naive_passes: int = 0
    reuse: str = "none"
    levels: int = 0
    source: str = "measured"  # or "proxy": one measured level per layer, the rest scaled reconstruction errors

    @property
    def naive_estimate_seconds(self) -> float:
        return self.naive_passes * self.full_pass_seconds


def layer_variants(weight: torch.Tensor, zero_counts: list[int]) -> list[torch.Tensor]:
    """The weight with the first z entries of its magnitude order zeroed, for each z."""
    ranks = magnitude_ranks(weight).reshape(weight.shape)
    return [weight * (ranks >= z).to(weight.dtype) for z in zero_counts]


def _anchor_index(todo: list[int], n: int, anchor: float) -> int:
    """The option whose sparsity is nearest the anchor (the run's target ratio)."""
    return min(range(len(todo)), key=lambda i: (abs(todo[i] / n - anchor), i))


def proxy_values(meter: DistortionMeter, name: str, todo: list[int], made: list[torch.Tensor],
                 errors: list[float], anchor: float) -> list[float] | None:
    """D_l(z) ~ c_l * E_l(z): the reconstruction errors E scaled by one measured level (the one nearest the
    anchor), c_l = D_l(z_a) / E_l(z_a). None when the errors are unusable (the caller measures every level)."""
    if not errors or not all(math.isfinite(e) and e >= 0 for e in errors):
        return None
    k = _anchor_index(todo, made[0].numel(), anchor)
    measured = meter.measure(name, [made[k]])[0]
    scale = measured / errors[k] if errors[k] > 0 else 0.0
    return [scale * e for e in errors]


def measure_curves(meter: DistortionMeter, weights: dict[str, torch.Tensor], zero_options: dict[str, list[int]],
                   current_zeros: dict[str, int] | None = None, progress: Any = None,
                   variants: Callable[[str, torch.Tensor, list[int]], list[torch.Tensor]] | None = None,
                   proxy: Callable[[str, torch.Tensor, torch.Tensor], float] | None = None,
                   anchor: float = 0.5) -> Curves:
    """D_l(z) for every layer and option; options at or below the layer's current zeros cost 0
    (the mask does not change), repeated counts are measured once. `variants(name, weight, zs)` makes
    each level's weight (default: magnitude masks; rd over Wanda/SparseGPT passes the criterion's).
    With `proxy(name, weight, variant)` (a reconstruction error), one level per layer is measured and
    the others are that measurement scaled by their proxy (`proxy_values`)."""
    names = list(zero_options)
    t0 = time.perf_counter()
    task = progress.task("rd curves", len(names)) if progress is not None else None
    out_z, out_d = [], []
    for name in names:
        opts = zero_options[name]
        have = (current_zeros or {}).get(name, 0)
        todo = sorted({z for z in opts if z > have})
        meter.stats.skipped_levels += len(opts) - len(todo)
        made = variants(name, weights[name], todo) if variants is not None else layer_variants(weights[name], todo)
        scaled = None
        if proxy is not None and todo:
            scaled = proxy_values(meter, name, todo, made, [proxy(name, weights[name], v) for v in made], anchor)
        if scaled is not None:
            meter.stats.measured_levels += 1
            meter.stats.proxy_levels += len(todo) - 1
            values = dict(zip(todo, scaled, strict=True))
        else:
            meter.stats.measured_levels += len(todo)
            values = dict(zip(todo, meter.measure(name, made), strict=True)) if todo else {}
        out_z.append(list(opts))
        out_d.append([values.get(z, 0.0) for z in opts])
        if task is not None:
            task.advance(1)
    seconds = time.perf_counter() - t0
    naive = sum(len([z for z in o if z > 0]) for o in zero_options.values())
    return Curves(names, [weights[n].numel() for n in names], out_z, out_d, seconds, meter.full_pass_seconds,
                  naive, "prefix" if meter.stats.layers_with_reuse else "none",
                  source="proxy" if meter.stats.proxy_levels else "measured")


def grid_options(n: int, levels: int, cap: float, floor_zeros: int = 0) -> list[int]:
    """Allowed grid zero counts of a layer: p <= cap and (iterative) p >= current sparsity. The cap
    itself is added when it falls between grid levels, so every budget the cap allows stays reachable."""
    limit = math.floor(cap * n)
    zs = sorted({d * n // (levels - 1) for d in range(levels)} | {limit})
    return [z for z in zs if floor_zeros <= z <= limit]
