"""A B-cos network trained from scratch: the converted architecture with random weights, made trainable.

A B-cos layer keeps its weights un-normalised (spec 2.1), so its output scales as ||w||^B * |cos|^(B-1) ||x||.
With PyTorch's default initialisation (||w||^2 about 1/3) and the small alignment of random weights, every
B = 2 layer shrinks its input by one to two orders of magnitude: the five B-cos layers of `zoo:digits-cnn`
(no normalisation layer) bring the logits to about 4e-9, below the float32 resolution of b0 = -log(C - 1),
and the gradients to about Adam's epsilon, so training never starts (10 %, chance). Normalisation layers hide
this until the last layer (the GAP-reordered 1x1 head conv of `zoo:fashion-cnn`).

`unit_gain_init` is the fix, a data-dependent initialisation in the manner of LSUV (Mishkin & Matas, 2016):
in forward order, each B-cos conv/linear weight is multiplied by r^(-1/B), r the RMS of the layer's output on
a batch of training images, so every layer starts with unit-RMS outputs (the layers are positively
homogeneous of degree B in their weight). dnnkit's choice for the from-scratch baseline, not the papers'
(the CVPR 2022 code divides each layer's output by sqrt(k^2 C_in) / 100 instead).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dnnkit.nn.bcos import BcosClassifier, BcosConv2d, BcosLinear
from dnnkit.surgery.bcos.convert import BcosOptions, ConversionPlan, convert, resolve_logit_scale


def bcos_layers_in_order(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The B-cos conv/linear layers in the order one forward pass on `x` runs them (each once)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod) if mod not in order else None)
             for m in model.modules() if isinstance(m, (BcosConv2d, BcosLinear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return order


@torch.no_grad()
def unit_gain_init(model: nn.Module, x: torch.Tensor, passes: int = 2) -> list[float]:
    """Rescale each B-cos layer's weight (forward order, eval mode) so its output RMS on `x` is 1.

    Returns the factor applied to each layer (the product over `passes`). Layers with a zero output keep
    their weight. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    layers = bcos_layers_in_order(model, x)
    factors = [1.0] * len(layers)
    try:
        for _ in range(passes):
            for i, layer in enumerate(layers):
                seen: list[torch.Tensor] = []
                hook = layer.register_forward_hook(lambda _m, _i, out, _s=seen: _s.append(out))
                try:
                    model(x)
                finally:
                    hook.remove()
                rms = float(seen[0].double().pow(2).mean().sqrt())
                if not rms > 0 or not torch.isfinite(torch.tensor(rms)):
                    continue
                factor = rms ** (-1.0 / max(layer.b, 1.0))
                layer.weight.mul_(factor)
                factors[i] *= factor
    finally:
        model.train(was_training)
    return factors


def scratch_bcos(fresh: nn.Module, input_shape: tuple[int, ...], opts: BcosOptions, init_x: torch.Tensor,
                 check_inputs: torch.Tensor | None = None) -> tuple[BcosClassifier, ConversionPlan]:
    """A randomly initialised network `fresh` converted to B-cos, unit-gain initialised on `init_x`, with
    the logit scale of `opts` resolved after the initialisation (`auto` calibrates against `fresh`)."""
    unscaled = dataclasses.replace(opts, logit_scale=1.0)
    model, plan, _changes, _delta = convert(fresh, input_shape, unscaled, check_inputs)
    unit_gain_init(model, init_x)
    resolved = dataclasses.replace(unscaled, logit_scale=opts.logit_scale)  # mean/std as convert resolved them
    model.logit_scale = resolve_logit_scale(fresh, model, plan, resolved,
                                            check_inputs if check_inputs is not None else init_x)
    return model, plan
