"""The LM-head shortcut for rd curves on causal LMs (spec section 4.4).

When the output head W_h (V x d) is not among the perturbed layers, the logit error at one position
is exact from the hidden state alone: ||delta logits||^2 = delta_h . (W_h^T W_h) . delta_h^T (a head
bias cancels in the difference). So the curves compare final hidden states (d = 576 for SmolLM2)
instead of V-wide logits (V = 49 152): no head matmul per level, no V-wide reference, and level
batching fits in memory again.

The shortcut is only taken after checking, on one calibration row, that the model's logits are the
head applied to its input (no soft-capping or scaling after the head); otherwise full logits are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dnnkit.metrics import Inputs


@dataclass
class HeadShortcut:
    """The head module, its Gram matrix W^T W (d x d, fp32) and the vocabulary size V."""

    name: str
    module: nn.Linear
    gram: torch.Tensor
    vocab: int

    @contextmanager
    def hidden_outputs(self) -> Iterator[None]:
        """While active, the head returns its input, so the model's `logits` are the hidden states."""
        self.module.forward = lambda x: x  # type: ignore[method-assign]
        try:
            yield
        finally:
            del self.module.forward

    def per_sample_error(self, h_hat: torch.Tensor, h_ref: torch.Tensor) -> torch.Tensor:
        """(1/(T*V)) * sum_t ||W_h (h_hat_t - h_ref_t)||^2 per sample: the mean squared logit error."""
        delta = (h_hat - h_ref).float()
        quad = ((delta @ self.gram) * delta).reshape(delta.shape[0], -1).sum(dim=1)
        positions = delta[0].numel() // delta.shape[-1]
        return quad / (positions * self.vocab)


def _output_head(model: nn.Module) -> tuple[str, nn.Linear] | None:
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, nn.Linear):
        return None
    for name, mod in model.named_modules():
        if mod is head:
            return name, head
    return None


@torch.no_grad()
def head_shortcut(model: nn.Module, task: str, pruned_modules: list[str], probe: Inputs) -> HeadShortcut | None:
    """The shortcut for a causal LM whose head is a Linear that is not pruned and whose logits are
    exactly the head's output (checked on the first row of `probe`); None otherwise."""
    if task != "causal-lm" or len(probe) == 0:
        return None
    found = _output_head(model)
    if found is None or found[0] in pruned_modules:
        return None
    name, head = found
    seen: dict[str, Any] = {}
    handle = head.register_forward_hook(lambda mod, args, out: seen.update(out=out))
    try:
        row = probe.slice(0, 1)
        out = model(input_ids=row.x, attention_mask=row.attention_mask, use_cache=False)
    finally:
        handle.remove()
    logits = getattr(out, "logits", None)
    if logits is None or "out" not in seen or logits.shape != seen["out"].shape:
        return None
    if not torch.equal(logits, seen["out"]):
        return None
    weight = head.weight.detach().float()
    return HeadShortcut(name, head, weight.T @ weight, weight.shape[0])
