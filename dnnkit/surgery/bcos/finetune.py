"""Fine-tuning a B-cos network with the B-cos papers' loss, through the shared `dnnkit.train.fit` loop.

Loss (authors' training loss): binary cross-entropy on every logit with targets max(onehot, 1/C).
Augmentation: random shifts of up to 1 pixel (zero fill). Optional B ramp: B_t = 1 + (B - 1) min(1, t/E)
with t the epochs completed (`--b-warmup E`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from dnnkit.nn.bcos import set_b
from dnnkit.progress import ProgressReporter
from dnnkit.train import TrainConfig, fit


def bce_targets(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """max(onehot, 1/C): the off-class targets are 1/C (uniform off labels)."""
    onehot = F.one_hot(y, num_classes).to(dtype)
    return onehot.clamp_min(1.0 / num_classes)


def bce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss on logits (mean over samples and classes)."""
    return F.binary_cross_entropy_with_logits(logits, bce_targets(y, logits.shape[-1], logits.dtype))


def random_shift(x: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels in each direction (zero fill)."""
    if max_shift <= 0:
        return x
    n, _c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    span = 2 * max_shift + 1
    dy = torch.randint(0, span, (n,), generator=generator)
    dx = torch.randint(0, span, (n,), generator=generator)
    out = torch.empty_like(x)
    for oy in range(span):
        for ox in range(span):
            sel = ((dy == oy) & (dx == ox)).nonzero().flatten()
            if len(sel):
                out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
    return out


@dataclass
class FinetuneResult:
    """Per-epoch figures of a fine-tune."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)
    seconds: float = 0.0


def b_at(epoch: float, b: float, warmup: int) -> float:
    """B after `epoch` completed epochs of a linear ramp from 1 over `warmup` epochs."""
    if warmup <= 0:
        return b
    return 1.0 + (b - 1.0) * min(1.0, epoch / warmup)


def finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 3e-3,
             batch_size: int = 64, b: float = 2.0, b_warmup: int = 0, augment: str = "shift", seed: int = 0,
             eval_fn: Callable[[nn.Module], float] | None = None, progress: ProgressReporter | None = None,
             description: str = "bcosify fine-tune") -> FinetuneResult:
    """Adam + cosine schedule, BCE loss, shift augmentation, optional B ramp; trains `model` in place."""
    import time

    gen = torch.Generator().manual_seed(seed + 1)
    result = FinetuneResult()
    if epochs <= 0:
        return result
    set_b(model, b_at(0, b, b_warmup))
    result.b.append(b_at(0, b, b_warmup))
    marks = [time.perf_counter()]

    def loss_fn(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if augment == "shift":
            xb = random_shift(xb, 1, gen)
        return bce_loss(m(xb), yb)

    def on_epoch_end(epoch: int, m: nn.Module) -> None:
        marks.append(time.perf_counter())
        if epoch + 1 < epochs:
            nb = b_at(epoch + 1, b, b_warmup)
            set_b(m, nb)
            result.b.append(nb)

    cfg = TrainConfig(epochs=epochs, lr=lr, optimizer="adam", batch_size=batch_size, seed=seed, cosine=True)
    hist = fit(model, x, y, cfg, loss_fn=loss_fn, eval_fn=eval_fn, on_epoch_end=on_epoch_end, progress=progress,
               description=description)
    set_b(model, b)
    result.loss = list(hist.loss)
    result.accuracy = list(hist.metric)
    result.seconds = hist.seconds
    result.seconds_per_epoch = [marks[i + 1] - marks[i] for i in range(len(marks) - 1)]
    return result


@torch.no_grad()
def bce_eval_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Plain BCE (one-hot targets) on held-out data."""
    model.eval()
    total = 0.0
    logits = torch.zeros(1, 1)
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        total += float(F.binary_cross_entropy_with_logits(logits, F.one_hot(y[i:i + batch_size], logits.shape[-1])
                                                          .to(logits.dtype), reduction="sum"))
    return total / max(len(x) * int(logits.shape[-1]), 1)
