"""Calibration statistics at each selected layer's input, from the dense model in one pass.

For `--asvd`: mean |x_j| per input channel; for `--whiten`: the Gram matrix G = sum_t x_t x_t^T
in float64. Tokens are rows of the layer input (padding excluded through the attention mask);
a Conv2d input is unrolled to (c_in*kh*kw)-vectors, one per output position. A transformers Conv1D
reads x like a Linear (its weight is stored (in, out), the input is (..., in)), so its rows are the
n-vectors of the matrix W^T it is factored as. Layers that read the
same tensor (q/k/v) share one statistic. Also records output positions per sample (for MACs).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from dnnkit.errors import InputError
from dnnkit.metrics import Inputs, forward_output
from dnnkit.nn.lowrank import out_features
from dnnkit.progress import ProgressReporter, or_null


@dataclass
class LayerStats:
    """Accumulated input statistics of one layer (or of several that share an input)."""

    tokens: int = 0
    abs_sum: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    nonfinite: bool = False


@dataclass
class Calibration:
    """Per-layer statistics and output positions per sample."""

    stats: dict[str, LayerStats] = field(default_factory=dict)
    shared_with: dict[str, str] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)

    def of(self, name: str) -> LayerStats:
        return self.stats[self.shared_with.get(name, name)]

    def mean_abs(self, name: str) -> torch.Tensor:
        st = self.of(name)
        return st.abs_sum / max(st.tokens, 1)


def _conv_key(module: nn.Module) -> tuple | None:
    if isinstance(module, nn.Conv2d):
        return (module.kernel_size, module.stride, module.padding, module.dilation, module.padding_mode)
    return None


def _rows(module: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The layer input as a (tokens x n) float64 matrix."""
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            x = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
            pad = 0
        else:
            pad = module.padding
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=pad, stride=module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1]).double()
    if mask is not None and x.dim() == 3 and x.shape[:2] == mask.shape:
        return x[mask.bool()].double()
    return x.reshape(-1, x.shape[-1]).double()


@torch.no_grad()
def calibrate(model: nn.Module, task: str, inputs: Inputs, names: list[str], *, want_abs: bool = False,
              want_gram: bool = False, batch_size: int = 64, progress: ProgressReporter | None = None) -> Calibration:
    """Run `inputs` through the dense model with hooks on `names`; returns their input statistics."""
    progress = or_null(progress)
    calib = Calibration()
    current: dict[str, torch.Tensor | None] = {"mask": None}
    batch_owner: dict[tuple, tuple[weakref.ref, str]] = {}
    samples = {"n": 0}

    def hook_for(name: str, module: nn.Module):
        def hook(mod: nn.Module, args: tuple, output: torch.Tensor) -> None:
            x = args[0]
            per_sample = output.numel() / max(output.shape[0], 1) / out_features(module)
            if x.dim() == 3 and current["mask"] is not None:
                per_sample = 1.0  # per token for text models
            calib.positions[name] = float(per_sample)
            if not (want_abs or want_gram):
                return
            key = (id(x), _conv_key(module))
            seen = batch_owner.get(key)
            if seen is not None and seen[0]() is x:
                owner = seen[1]
            else:
                owner = name
                batch_owner[key] = (weakref.ref(x), name)
            if owner != name:
                calib.shared_with[name] = owner
                return
            rows = _rows(module, x, current["mask"])
            st = calib.stats.setdefault(name, LayerStats())
            if not torch.isfinite(rows).all():
                st.nonfinite = True
                rows = torch.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
            st.tokens += rows.shape[0]
            if want_abs:
                a = rows.abs().sum(0)
                st.abs_sum = a if st.abs_sum is None else st.abs_sum + a
            if want_gram:
                g = rows.t() @ rows
                st.gram = g if st.gram is None else st.gram + g
        return hook

    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(hook_for(n, modules[n])) for n in names]
    task_bar = progress.task("calibration", len(inputs))
    try:
        model.eval()
        for i in range(0, len(inputs), batch_size):
            part = inputs.slice(i, i + batch_size)
            current["mask"] = part.attention_mask if part.kind == "tokens" else None
            batch_owner.clear()
            forward_output(model, task, part)
            samples["n"] += len(part)
            task_bar.advance(len(part))
    finally:
        for h in handles:
            h.remove()
    if want_abs or want_gram:
        for n in names:
            st = calib.stats.get(calib.shared_with.get(n, n))
            if st is None or st.tokens == 0:
                raise InputError(f"layer {n} never fired during calibration",
                                 hint="exclude it with --exclude, or check that the model uses it")
            if st.nonfinite:
                raise InputError(f"layer {n}: NaN/Inf in its calibration activations",
                                 hint="check the model weights (dnnkit inspect --stats) and the data")
    return calib


@torch.no_grad()
def output_positions(model: nn.Module, task: str, sample: Inputs, names: list[str]) -> dict[str, float]:
    """Output positions per sample of each named layer (1 for Linear on vectors; per token for text)."""
    return calibrate(model, task, sample, names).positions
