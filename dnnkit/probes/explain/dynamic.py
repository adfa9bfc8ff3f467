"""Explanations of a classifier's logit: the dynamic linear map W(x) of a B-cos network (exact,
complete) or input x gradient for any other model (post-hoc baseline).

For a B-cos network in explanation mode the logit is y_c = W(x) . x_enc + b0 (+ constants such as
ViT position embeddings and class tokens), so W(x) = d y_c / d x_enc, taken with
`torch.autograd.grad` (never `.backward()` into `.grad`: repeated explanations must not accumulate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.nn.bcos import BcosClassifier, explanation_mode

CONSTANT_PARAMS = ("pos_embed", "cls_token", "reg_token", "dist_token")


@dataclass
class Explanation:
    """Per-input explanation tensors and figures (batch first)."""

    method: str  # "dynamic" | "ixg"
    weights: torch.Tensor  # W(x) (dynamic: N x 2C x H x W) or the input gradient (ixg: N x C x H x W)
    inputs: torch.Tensor  # x_enc (dynamic) or x (ixg)
    contributions: torch.Tensor  # R: N x H x W
    logits: torch.Tensor  # y_c: N
    classes: torch.Tensor  # c: N
    predicted: torch.Tensor  # argmax: N
    logit_bias: float
    constants: torch.Tensor  # contribution of constant parameters (ViT tokens / positions): N

    @property
    def contribution_sum(self) -> torch.Tensor:
        """Sum of R over the image (N)."""
        return self.contributions.flatten(1).sum(1)

    @property
    def target(self) -> torch.Tensor:
        """What the contributions should sum to: y_c - b0."""
        return self.logits - self.logit_bias

    @property
    def completeness_error(self) -> torch.Tensor:
        """|sum R + constants - (y_c - b0)| / max(|y_c - b0|, 1e-6), per input."""
        t = self.target
        return (self.contribution_sum + self.constants - t).abs() / t.abs().clamp_min(1e-6)

    @property
    def constant_share(self) -> torch.Tensor:
        """Share of y_c - b0 carried by constants (0 for CNNs)."""
        return self.constants / self.target.where(self.target.abs() > 1e-12, torch.ones_like(self.target))


def is_bcos(model: nn.Module) -> bool:
    """True for a B-cosified network (`BcosClassifier`)."""
    return isinstance(model, BcosClassifier)


def _classes(logits: torch.Tensor, classes: torch.Tensor | int | str | None) -> torch.Tensor:
    pred = logits.argmax(-1)
    if classes is None or classes == "pred":
        return pred
    if isinstance(classes, int):
        return torch.full_like(pred, classes)
    return classes.to(pred.device)


def _constant_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] in CONSTANT_PARAMS]


def explain_dynamic(model: BcosClassifier, x: torch.Tensor, classes: torch.Tensor | int | str | None = None
                    ) -> Explanation:
    """W(x), contributions and the completeness figures of a B-cos network for inputs x (pixels in [0, 1])."""
    if not is_bcos(model):
        raise InputError("--method dynamic needs a B-cos network (made by `dnnkit bcosify`)",
                         hint="use --method ixg for other models")
    consts = _constant_params(model)
    x_enc_all = model.encoder.encode(x.detach())
    with explanation_mode(model):
        with torch.no_grad():
            logits_all = model(x)
        cls = _classes(logits_all, classes)
        if consts:  # shared constants: one input at a time so each gets its own gradient
            parts = [_dynamic_one(model, x_enc_all[i:i + 1], cls[i:i + 1], consts) for i in range(len(x))]
            weights = torch.cat([p[0] for p in parts])
            logits = torch.cat([p[1] for p in parts])
            constants = torch.cat([p[2] for p in parts])
        else:
            weights, logits, constants = _dynamic_one(model, x_enc_all, cls, [])
    contributions = (weights * x_enc_all).sum(1)
    return Explanation("dynamic", weights, x_enc_all, contributions, logits, cls, logits_all.argmax(-1),
                       model.logit_bias, constants)


def _dynamic_one(model: BcosClassifier, x_enc: torch.Tensor, cls: torch.Tensor, consts: list[nn.Parameter]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x_enc = x_enc.clone().requires_grad_(True)
    logits = model.forward_encoded(x_enc)
    y = logits.gather(1, cls[:, None])[:, 0]
    grads = torch.autograd.grad(y.sum(), [x_enc, *consts], allow_unused=True)
    constant = torch.zeros_like(y)
    for g, p in zip(grads[1:], consts, strict=True):
        if g is not None:
            constant = constant + (g * p).sum().detach()
    return grads[0].detach(), y.detach(), constant


def input_x_gradient(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | int | str | None = None
                     ) -> Explanation:
    """Input x gradient on the model's own input: R = sum_channels x * d y_c / d x (biases make it incomplete)."""
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    logits_all = out.logits if hasattr(out, "logits") else out
    cls = _classes(logits_all.detach(), classes)
    y = logits_all.gather(1, cls[:, None])[:, 0]
    (grad,) = torch.autograd.grad(y.sum(), x)
    xd = x.detach()
    contributions = (grad * xd).sum(1)
    bias = model.logit_bias if is_bcos(model) else 0.0
    return Explanation("ixg", grad.detach(), xd, contributions, y.detach(), cls, logits_all.detach().argmax(-1),
                       bias, torch.zeros_like(y.detach()))


def explain(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | int | str | None = None,
            method: str = "auto") -> Explanation:
    """`auto`: dynamic linear map for a B-cos network, input x gradient otherwise."""
    if method not in ("auto", "dynamic", "ixg"):
        raise InputError(f"--method must be auto, dynamic or ixg, got {method!r}")
    if method == "dynamic" or (method == "auto" and is_bcos(model)):
        return explain_dynamic(model, x, classes)
    return input_x_gradient(model, x, classes)


def check_pixels(x: torch.Tensor, what: str = "input") -> None:
    """Inputs must be pixels in [0, 1]; anything else was normalised elsewhere."""
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(f"{what} values lie in [{lo:.3g}, {hi:.3g}], not pixels in [0, 1]",
                         hint="pass raw pixels: the B-cos network folds the normalisation into its first layer")
