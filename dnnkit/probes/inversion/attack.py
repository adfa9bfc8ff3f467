"""GMI stage 2 (latent search under the prior) and the direct pixel-optimisation baseline.

Both minimise a per-sample loss with the authors' Nesterov update v <- mu*v - lr*grad; x <- x - mu*v_prev +
(1+mu)*v, then clamp (z to [-1, 1], pixels to [0, 1]). dnnkit sums per-sample losses and divides by the fixed
constant LOSS_SCALE = 100 (the authors attack 100 targets per batch with batch-mean losses), so a sample's path
does not depend on how many targets share a batch. Per (class, attempt) the restart with the highest *target
logit* is kept; the evaluator never takes part in the selection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from dnnkit.errors import RuntimeFailure
from dnnkit.probes.inversion.config import AttackConfig
from dnnkit.progress import ProgressReporter, or_null

LOSS_SCALE = 100.0
METHODS = ("gmi", "pixel")


@dataclass
class AttackResult:
    """Best-restart images (n_classes*per_class, C, H, W) with their dataset class, attempt and restart ids."""

    method: str
    images: torch.Tensor
    classes: torch.Tensor
    attempts: torch.Tensor
    restarts: torch.Tensor
    target_logit: torch.Tensor
    final_loss: float
    seconds: float
    extra: dict = field(default_factory=dict)


def nesterov_step(x: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, lr: float,
                  momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the authors' Nesterov update; returns (new x, new v) before clamping."""
    v_new = momentum * v - lr * grad
    return x - momentum * v + (1 + momentum) * v_new, v_new


def select_best(score: torch.Tensor, n_items: int, restarts: int) -> torch.Tensor:
    """Row indices of the best restart per item; rows are laid out restart-major (row = r * n_items + i)."""
    best_r = score.view(restarts, n_items).argmax(dim=0)
    return best_r * n_items + torch.arange(n_items)


def target_logits(target: nn.Module, images: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """T(images)[i, outputs[i]]: the logit of each row's own target output (indexed by label, never by row)."""
    return target(images).gather(1, outputs.view(-1, 1)).squeeze(1)


def _layout(classes: list[int], cfg: AttackConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Dataset class and attempt id of each item (classes x attempts)."""
    cls = torch.tensor(classes, dtype=torch.int64).repeat_interleave(cfg.per_class)
    att = torch.arange(cfg.per_class).repeat(len(classes))
    return cls, att


def run_inversion(method: str, target: nn.Module, classes: list[int], output_of: dict[int, int], cfg: AttackConfig,
                  *, generator: nn.Module | None = None, critic: nn.Module | None = None, z_dim: int = 0,
                  image_shape: tuple[int, ...] = (), device: str = "cpu",
                  progress: ProgressReporter | None = None) -> AttackResult:
    """Attack every class in `classes` (dataset ids; `output_of` maps them to T's outputs) with `method`."""
    progress = or_null(progress)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    start = time.perf_counter()
    target.eval()
    cls, att = _layout(classes, cfg)
    n_items = len(cls)
    outs = torch.tensor([output_of[int(c)] for c in cls], dtype=torch.int64)
    outs_all = outs.repeat(cfg.restarts).to(device)
    x = _starts(method, n_items, cfg, z_dim, image_shape).to(device)
    lo, hi = (-1.0, 1.0) if method == "gmi" else (0.0, 1.0)
    # z0 is not clamped: the authors' code clamps only after each step
    v = torch.zeros_like(x)
    decode = (lambda z: generator(z)) if method == "gmi" else (lambda p: p)
    task = progress.task(f"{method} attack ({n_items * cfg.restarts} candidates)", cfg.steps)
    loss_value = float("nan")
    for step in range(1, cfg.steps + 1):
        x.requires_grad_(True)
        images = decode(x)
        ce = nn.functional.cross_entropy(target(images), outs_all, reduction="none")
        per_sample = cfg.id_weight * ce
        if method == "gmi":
            per_sample = per_sample - critic(images)
        loss = per_sample.sum() / LOSS_SCALE
        (grad,) = torch.autograd.grad(loss, x)
        loss_value = float(loss.detach()) * LOSS_SCALE / len(per_sample)
        if not torch.isfinite(loss).item():
            raise RuntimeFailure(f"the {method} attack loss became {loss_value} at attack step {step}",
                                 hint="lower --lr")
        with torch.no_grad():
            x, v = nesterov_step(x.detach(), v, grad, cfg.lr, cfg.momentum)
            x = x.clamp(lo, hi)
        task.advance(1, loss=loss_value)
        if step % max(1, cfg.steps // 5) == 0 or step == cfg.steps:
            progress.log(f"{method} step {step}/{cfg.steps}: mean loss per candidate {loss_value:.4f}")
    with torch.no_grad():
        images = decode(x)
        score = target_logits(target, images, outs_all)
    rows = select_best(score.cpu(), n_items, cfg.restarts)
    best = images.cpu()[rows]
    return AttackResult(method, best, cls, att, rows // n_items, score.cpu()[rows], loss_value,
                        round(time.perf_counter() - start, 2),
                        {"latents": x.detach().cpu()[rows]} if method == "gmi" else {})


def _starts(method: str, n_items: int, cfg: AttackConfig, z_dim: int, image_shape: tuple[int, ...]) -> torch.Tensor:
    """Restart-major starting points: z ~ N(0, I) per restart seed (gmi); zeros then U[0, 0.05] (pixel)."""
    parts = []
    for r in range(cfg.restarts):
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + r)
        if method == "gmi":
            parts.append(torch.randn(n_items, z_dim, generator=gen))
        elif r == 0:
            parts.append(torch.zeros(n_items, *image_shape))
        else:
            parts.append(torch.rand(n_items, *image_shape, generator=gen) * 0.05)
    return torch.cat(parts)
