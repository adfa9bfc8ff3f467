"""Held-out fidelity of a factored model against the dense one, and parameter / MAC accounting.

Classifiers: accuracy; causal LMs: perplexity; encoders: mean / min cosine of the mean-pooled
embeddings to the dense model's and nearest-neighbour agreement. Always: relative output MSE
sum((Y' - Y)^2) / sum(Y^2) over the evaluation set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dnnkit.metrics import Inputs, forward_output, outputs, token_nll


@dataclass
class Reference:
    """The dense model's outputs on the evaluation inputs (None for causal LMs: compared batch by batch, and
    the dense perplexity in `metrics` is filled by the first `fidelity` call, from the same dense forward)."""

    task: str
    inputs: Inputs
    dense: nn.Module
    y: torch.Tensor | None
    metrics: dict[str, Any]


def _batch(inputs: Inputs) -> int:
    return 256 if inputs.kind == "images" else 16


def nn_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of rows whose nearest neighbour (cosine, excluding itself) is the same in a and b."""
    if a.shape[0] < 2:
        return 1.0

    def nearest(e: torch.Tensor) -> torch.Tensor:
        e = nn.functional.normalize(e.double(), dim=-1)
        sim = e @ e.t()
        sim.fill_diagonal_(-float("inf"))
        return sim.argmax(1)

    return float((nearest(a) == nearest(b)).double().mean())


def _task_metrics(task: str, model: nn.Module, inputs: Inputs, y: torch.Tensor | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if task == "classifier" and inputs.y is not None and y is not None:
        out["accuracy"] = float((y.argmax(-1) == inputs.y).double().mean())
    return out


def make_reference(dense: nn.Module, task: str, inputs: Inputs) -> Reference:
    """Evaluate the dense model once (a causal LM's at the first `fidelity` call, one forward per batch)."""
    y = None if task == "causal-lm" else outputs(dense, task, inputs, _batch(inputs))
    return Reference(task, inputs, dense, y, _task_metrics(task, dense, inputs, y))


@torch.no_grad()
def fidelity(model: nn.Module, ref: Reference) -> dict[str, Any]:
    """Metrics of `model` on the reference inputs, plus its distance to the dense outputs."""
    inputs = ref.inputs
    if ref.task == "causal-lm":
        return _lm_fidelity(model, ref)
    y = outputs(model, ref.task, inputs, _batch(inputs))
    result = _task_metrics(ref.task, model, inputs, y)
    yd, rd = y.double(), ref.y.double()
    result["relative_output_mse"] = float(((yd - rd) ** 2).sum() / (rd ** 2).sum().clamp_min(1e-300))
    if ref.task == "encoder":
        cos = nn.functional.cosine_similarity(yd, rd, dim=-1)
        result["cosine_mean"] = float(cos.mean())
        result["cosine_min"] = float(cos.min())
        result["nn_agreement"] = nn_agreement(y, ref.y)
    return result


def _lm_fidelity(model: nn.Module, ref: Reference, batch_size: int = 8) -> dict[str, Any]:
    """Perplexity and relative logit MSE from one forward of each model per batch (logits never all held)."""
    model.eval()
    ref.dense.eval()
    num = den = nll = nll_dense = 0.0
    count = 0
    for i in range(0, len(ref.inputs), batch_size):
        part = ref.inputs.slice(i, i + batch_size)
        a = forward_output(model, ref.task, part).float()
        b = forward_output(ref.dense, ref.task, part).float()
        num += float(((a.double() - b.double()) ** 2).sum())
        den += float((b.double() ** 2).sum())
        step, n = token_nll(a, part.x)
        nll += step
        nll_dense += token_nll(b, part.x)[0]
        count += n
    ref.metrics.setdefault("perplexity", math.exp(nll_dense / max(count, 1)))
    return {"perplexity": math.exp(nll / max(count, 1)), "relative_output_mse": num / max(den, 1e-300)}


def headline(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The one figure that summarises fidelity: accuracy, perplexity or mean cosine."""
    for key in ("accuracy", "perplexity", "cosine_mean"):
        if key in metrics:
            return key, float(metrics[key])
    return None


def unique_params(model: nn.Module) -> int:
    """Parameter count with shared (tied) tensors counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() yields each shared Parameter once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
