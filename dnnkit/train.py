"""The one small training loop that the zoo and every surgery share.

Supervised training on in-memory tensors (images or token blocks) with optional distillation
from a teacher, masks held (pruned weights stay zero: gradients and weights re-masked after
every optimiser step), and frozen parameters. Progress goes to a `ProgressReporter`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from dnnkit.progress import ProgressReporter, or_null

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainConfig:
    """Hyper-parameters of `fit`."""

    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 64
    seed: int = 0
    cosine: bool = False
    distill_temperature: float = 2.0
    distill_alpha: float = 1.0  # weight of the distillation term when a teacher is given
    max_grad_norm: float | None = None


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and optional evaluation metric."""

    loss: list[float] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)
    seconds: float = 0.0


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Classification loss on logits."""
    return nn.functional.cross_entropy(model(x), y)


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in `cfg`."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked-out entries of the named parameters (masks are boolean keep-masks)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].dtype))


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    loss_fn: LossFn = cross_entropy_loss,
    teacher: nn.Module | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    frozen: set[str] | None = None,
    eval_fn: Callable[[nn.Module], float] | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    progress: ProgressReporter | None = None,
    description: str = "training",
) -> TrainHistory:
    """Train `model` in place on (x, y) for `cfg.epochs`; returns the loss/metric history.

    With `teacher`, the loss adds `distill_alpha` times the KL divergence to the teacher's
    temperature-softened outputs. `masks` (name -> bool keep-mask) are held through training;
    `frozen` names parameters that do not train. `extra_loss(model)` adds a regulariser.
    """
    import time

    progress = or_null(progress)
    frozen = frozen or set()
    masks = masks or {}
    named = dict(model.named_parameters())
    unknown = (set(masks) | frozen) - set(named)
    if unknown:
        raise KeyError(f"unknown parameter names: {sorted(unknown)[:3]}")
    for name, p in named.items():
        p.requires_grad_(name not in frozen)
    params = [p for n, p in named.items() if n not in frozen]
    opt = make_optimizer(params, cfg)
    steps_per_epoch = max(1, -(-len(x) // cfg.batch_size))
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
             if cfg.cosine else None)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist = TrainHistory()
    apply_masks(model, masks)
    if teacher is not None:
        teacher.eval()
    start = time.perf_counter()
    task = progress.task(description, cfg.epochs * steps_per_epoch)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, count = 0.0, 0
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            xb, yb = x[idx], y[idx]
            loss = _step_loss(model, xb, yb, cfg, loss_fn, teacher)
            if extra_loss is not None:
                loss = loss + extra_loss(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for name, mask in masks.items():
                if named[name].grad is not None:
                    named[name].grad.mul_(mask.to(named[name].grad.dtype))
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            if sched is not None:
                sched.step()
            apply_masks(model, masks)
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            task.advance(1, epoch=epoch + 1, loss=total / count)
        hist.loss.append(total / max(count, 1))
        model.eval()
        if eval_fn is not None:
            hist.metric.append(float(eval_fn(model)))
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
        msg = f"{description}: epoch {epoch + 1}/{cfg.epochs} loss {hist.loss[-1]:.4f}"
        progress.log(msg + (f" metric {hist.metric[-1]:.4f}" if hist.metric else ""))
    model.eval()
    for p in named.values():
        p.requires_grad_(True)
    hist.seconds = time.perf_counter() - start
    return hist


def _step_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, cfg: TrainConfig, loss_fn: LossFn,
               teacher: nn.Module | None) -> torch.Tensor:
    if teacher is None:
        return loss_fn(model, xb, yb)
    out = model(xb)
    out = out.logits if hasattr(out, "logits") else out
    with torch.no_grad():
        t_out = teacher(xb)
        t_out = t_out.logits if hasattr(t_out, "logits") else t_out
    temp = cfg.distill_temperature
    kd = nn.functional.kl_div(nn.functional.log_softmax(out / temp, dim=-1),
                              nn.functional.softmax(t_out / temp, dim=-1), reduction="batchmean") * temp * temp
    if yb is None or yb.dtype not in (torch.int64, torch.int32) or yb.dim() != 1:
        return kd
    return nn.functional.cross_entropy(out, yb) + cfg.distill_alpha * kd


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of a classifier on (x, y)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size])
        out = out.logits if hasattr(out, "logits") else out
        correct += int((out.argmax(-1) == y[i:i + batch_size]).sum())
    return correct / max(len(x), 1)
